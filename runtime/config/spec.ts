// A small description language for the gateway config: one description
// (gateway-spec.ts) drives the validator (precise errors with YAML positions),
// the JSON Schema in configs/gateway.schema.json, the environment overrides
// and the key list docs/CONFIG.md is checked against. So the three cannot
// drift apart (test/runtime/config-schema.test.ts).

export interface Field {
  spec: Spec;
  required?: boolean;
  /** Default in the typed form (ms for durations, bytes for sizes). */
  default?: unknown;
  /** The default as one writes it in the file (for the schema and the docs), e.g. "5m". */
  defaultText?: string | number | boolean;
  /** Never echo this field's value in an error (it may hold a secret by mistake). */
  secret?: boolean;
  /** A file or directory path: relative paths are resolved against the config file's folder. */
  path?: boolean;
}

export interface When {
  /** When `key` equals `equals` … */
  key: string;
  equals: string | number | boolean;
  /** … these keys are required, */
  require?: string[];
  /** … at least one key of each group is required, */
  requireOneOf?: string[][];
  /** … and these keys are not allowed. */
  forbid?: string[];
}

export interface ObjectSpec {
  t: 'object';
  doc: string;
  fields: Record<string, Field>;
  /** At most one key of each group. */
  exclusive?: string[][];
  /** At least one key of each group. */
  requireOneOf?: string[][];
  when?: When[];
}
export interface MapSpec {
  t: 'map';
  doc: string;
  keyPattern: RegExp;
  keyDesc: string;
  value: Spec;
  minEntries?: number;
}
export interface ArraySpec {
  t: 'array';
  doc?: string;
  items: Spec;
  min?: number;
  max?: number;
  unique?: boolean;
}
export interface StringSpec {
  t: 'string';
  doc?: string;
  pattern?: RegExp;
  /** What the pattern means, for messages ("an EPC URI like urn:epc:id:sscc:…"). */
  expect?: string;
  enum?: readonly string[];
  /** With `enum`: other values matching this pattern are allowed too (e.g. a CBV word or any URI). */
  orPattern?: RegExp;
  maxLength?: number;
  /** A check the JSON Schema cannot express; returns the problem or undefined. */
  check?: (s: string) => string | undefined;
  /** The typed value (default: the text itself), e.g. a date as ms since the epoch. */
  toValue?: (s: string) => unknown;
}
export interface IntSpec {
  t: 'int';
  doc?: string;
  min?: number;
  max?: number;
  enum?: readonly number[];
}
export interface NumberSpec {
  t: 'number';
  doc?: string;
  min?: number;
  max?: number;
  /** Strictly greater than min. */
  exclusiveMin?: boolean;
}
export interface BoolSpec {
  t: 'bool';
  doc?: string;
}
export interface DurationSpec {
  t: 'duration';
  doc?: string;
  /** ms */
  min?: number;
  max?: number;
}
export interface SizeSpec {
  t: 'size';
  doc?: string;
  /** bytes */
  min?: number;
  max?: number;
}
/** One of a few literal values of mixed types (e.g. MQTT protocol 5 or "3.1.1"). */
export interface ChoiceSpec {
  t: 'choice';
  doc?: string;
  values: readonly (string | number)[];
}
/** A key that must not be there, with the fix (e.g. a literal PIN). */
export interface ForbiddenSpec {
  t: 'forbidden';
  doc?: string;
  hint: string;
}

export type Spec = ObjectSpec | MapSpec | ArraySpec | StringSpec | IntSpec | NumberSpec | BoolSpec | DurationSpec | SizeSpec | ChoiceSpec | ForbiddenSpec;

// ---- durations and sizes ----

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** "500ms", "5s", "5m", "1h30m", "1.5h", "1d". */
export const DURATION_RE = /^(\d+(\.\d+)?(ms|s|m|h|d))+$/;

export function parseDuration(s: string): number | undefined {
  if (!DURATION_RE.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNIT_MS[m[2]];
  return Math.round(ms);
}

export function formatDuration(ms: number): string {
  for (const [u, f] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms >= f && ms % f === 0) return `${ms / f}${u}`;
  return `${ms}ms`;
}

const UNIT_B: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };
/** "4096", "64KiB", "1 GiB", "500MB". */
export const SIZE_RE = /^\d+(\.\d+)? ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/;

export function parseSize(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  const m = /^(\d+(?:\.\d+)?) ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/.exec(v);
  return m ? Math.round(Number(m[1]) * UNIT_B[m[2]]) : undefined;
}

export function formatSize(b: number): string {
  for (const [u, f] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) if (b >= f && b % f === 0) return `${b / f}${u}`;
  return `${b}`;
}

/** Every key path of a spec, as written in docs ("mqtt.tls.ca_file", "sensors.<id>.kind", "assets.quantities[].uom"). */
export function keyPaths(spec: Spec, prefix = ''): string[] {
  switch (spec.t) {
    case 'object':
      return Object.entries(spec.fields).flatMap(([k, f]) => {
        const p = prefix ? `${prefix}.${k}` : k;
        return [p, ...keyPaths(f.spec, p)];
      });
    case 'map':
      return keyPaths(spec.value, `${prefix}.<${spec.keyDesc.split(' ')[0]}>`);
    case 'array':
      return keyPaths(spec.items, `${prefix}[]`);
    default:
      return [];
  }
}
