// Config validation with positions: YAML → a small node tree that remembers
// where every value came from (file:line:col, or the environment variable
// that overrode it) → checked against the spec → typed values and a list of
// issues, each with where, the key path, what was expected and how to fix it.
// Secret-bearing keys never have their value printed.
import { dirname, isAbsolute, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { ArraySpec, Field, MapSpec, ObjectSpec, Spec, StringSpec } from './spec.js';
import { DURATION_RE, formatDuration, formatSize, parseDuration, parseSize, SIZE_RE } from './spec.js';
import { didYouMean } from './suggest.js';

export interface ConfigIssue {
  /** "file:line:col", "env ISCM__…", or the file name when there is no better place. */
  where: string;
  /** Key path, e.g. "mqtt.tls.ca_file", "sensors.t1.window", "assets.epcs[2]"; "" for the whole file. */
  path: string;
  message: string;
  /** syntax: YAML itself; structure: what the JSON Schema also checks; semantic: checks beyond it (references, ranges, GS1 keys). */
  kind: 'syntax' | 'structure' | 'semantic';
  severity: 'error' | 'warning';
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.where}: ${i.severity === 'warning' ? 'warning: ' : ''}${i.path ? `${i.path}: ` : ''}${i.message}`;
}

// ---- the node tree ----

export type VNode = VMap | VSeq | VScalar;
export interface VMap {
  k: 'map';
  where: string;
  entries: Map<string, { keyWhere: string; value: VNode }>;
}
export interface VSeq {
  k: 'seq';
  where: string;
  items: VNode[];
}
export interface VScalar {
  k: 'scalar';
  where: string;
  value: string | number | boolean | null;
  /** The text as written (to suggest quotes when a number should have been text). */
  src?: string;
}

export interface Parsed {
  root: VNode | undefined;
  issues: ConfigIssue[];
}

/** Parses YAML text into the node tree; syntax errors (with positions, never with source excerpts) become issues. */
export function parseYaml(text: string, file: string, whereOverride?: string): Parsed {
  const lc = new LineCounter();
  const issues: ConfigIssue[] = [];
  const at = (offset: number) => {
    if (whereOverride) return whereOverride;
    const p = lc.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, merge: false, keepSourceTokens: false });
  } catch (e) {
    issues.push({ where: whereOverride ?? file, path: '', message: `not YAML: ${(e as Error).message}`, kind: 'syntax', severity: 'error' });
    return { root: undefined, issues };
  }
  for (const e of doc.errors) issues.push({ where: at(e.pos[0]), path: '', message: yamlMessage(e.code, e.message), kind: 'syntax', severity: 'error' });
  if (doc.errors.length) return { root: undefined, issues };
  const seen = new Set<Node>();
  const convert = (n: unknown, fallback: number, depth: number): VNode => {
    if (depth > 64) throw new Error('nesting deeper than 64 levels');
    if (n === null || n === undefined) return { k: 'scalar', where: at(fallback), value: null };
    if (isAlias(n)) {
      const target = n.resolve(doc);
      if (!target || seen.has(target)) return { k: 'scalar', where: at(n.range?.[0] ?? fallback), value: null };
      seen.add(target);
      const out = convert(target, n.range?.[0] ?? fallback, depth + 1);
      seen.delete(target);
      return out;
    }
    const start = (n as Node).range?.[0] ?? fallback;
    if (isMap(n)) {
      const entries = new Map<string, { keyWhere: string; value: VNode }>();
      for (const pair of n.items) {
        const kStart = (pair.key as Node | null)?.range?.[0] ?? start;
        let key: string;
        if (isScalar(pair.key)) key = String(pair.key.value);
        else if (isAlias(pair.key)) key = String((pair.key.resolve(doc) as { value?: unknown } | undefined)?.value);
        else {
          issues.push({ where: at(kStart), path: '', message: 'keys must be plain names, not lists or sections', kind: 'structure', severity: 'error' });
          continue;
        }
        entries.set(key, { keyWhere: at(kStart), value: convert(pair.value, kStart, depth + 1) });
      }
      return { k: 'map', where: at(start), entries };
    }
    if (isSeq(n)) return { k: 'seq', where: at(start), items: n.items.map((x) => convert(x, start, depth + 1)) };
    if (isScalar(n)) {
      let v = n.value as unknown;
      if (typeof v === 'bigint') v = Number(v);
      if (v instanceof Date) v = v.toISOString();
      const value = v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : String(v);
      return { k: 'scalar', where: at(start), value, src: typeof n.source === 'string' ? n.source : undefined };
    }
    return { k: 'scalar', where: at(start), value: null };
  };
  try {
    return { root: convert(doc.contents, 0, 0), issues };
  } catch (e) {
    issues.push({ where: whereOverride ?? file, path: '', message: (e as Error).message, kind: 'syntax', severity: 'error' });
    return { root: undefined, issues };
  }
}

function yamlMessage(code: string, message: string): string {
  const first = message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  if (code === 'DUPLICATE_KEY') return 'this key appears twice in the same section (YAML keys must be unique)';
  if (code === 'TAB_AS_INDENT') return 'tab used for indentation (YAML needs spaces)';
  return `YAML: ${first}`;
}

/** Plain JavaScript value of a node tree (for JSON Schema validators and `config show`). */
export function toPlain(n: VNode | undefined): unknown {
  if (!n) return undefined;
  if (n.k === 'scalar') return n.value;
  if (n.k === 'seq') return n.items.map(toPlain);
  const o: Record<string, unknown> = {};
  for (const [k, e] of n.entries) o[k] = toPlain(e.value);
  return o;
}

// ---- environment overrides: ISCM__SECTION__KEY=value ----

export const ENV_PREFIX = 'ISCM__';

/** The environment variable that overrides a key path ("mqtt.tls.ca_file" → ISCM__MQTT__TLS__CA_FILE). */
export function envNameOf(path: string): string {
  return ENV_PREFIX + path.replace(/\[(\d+)\]/g, '.$1').split('.').map((s) => s.toUpperCase().replace(/-/g, '_')).join('__');
}

/**
 * Applies ISCM__… variables onto the tree: each names a key path, sections
 * and map entries by their names in upper case ('-' written '_'), list items
 * by index. Text-typed keys take the value as it is; others parse it as YAML
 * (so lists and sections can be given too: ISCM__ASSETS__EPCS='[urn:…, urn:…]').
 * Returns the names applied.
 */
export function applyEnv(root: VNode | undefined, env: Record<string, string | undefined>, spec: ObjectSpec, issues: ConfigIssue[]): { root: VNode; applied: string[] } {
  let top: VNode = root ?? { k: 'map', where: 'env', entries: new Map() };
  const applied: string[] = [];
  const names = Object.keys(env).filter((n) => n.startsWith(ENV_PREFIX)).sort();
  for (const name of names) {
    const raw = env[name];
    if (raw === undefined) continue;
    const where = `env ${name}`;
    const segs = name.slice(ENV_PREFIX.length).split('__');
    const fail = (path: string, message: string) => issues.push({ where, path, message, kind: 'structure', severity: 'error' });
    if (segs.some((s) => s === '')) {
      fail('', 'empty segment in the variable name (sections are separated by two underscores: ISCM__MQTT__URL)');
      continue;
    }
    if (top.k !== 'map') {
      fail('', 'the config file is not a section of keys, so it cannot be overridden');
      continue;
    }
    let node: VMap | VSeq = top;
    let s: Spec = spec;
    let path = '';
    let ok = true;
    for (let i = 0; i < segs.length && ok; i++) {
      const seg = segs[i];
      const last = i === segs.length - 1;
      let key: string | number;
      let childSpec: Spec;
      if (s.t === 'object') {
        const f: string | undefined = Object.keys(s.fields).find((k) => k.toUpperCase() === seg.toUpperCase());
        if (!f) {
          fail(join(path, seg.toLowerCase()), `unknown key${didYouMean(seg.toLowerCase(), Object.keys(s.fields))}; ${path || 'the top level'} has: ${Object.keys(s.fields).join(', ')}`);
          ok = false;
          break;
        }
        key = f;
        childSpec = s.fields[f].spec;
      } else if (s.t === 'map') {
        const m = node as VMap;
        key = [...m.entries.keys()].find((k) => k.toUpperCase().replace(/-/g, '_') === seg.toUpperCase()) ?? seg.toLowerCase();
        childSpec = s.value;
      } else if (s.t === 'array') {
        if (!/^\d+$/.test(seg)) {
          fail(path, `"${seg}" is not a list index (0, 1, …)`);
          ok = false;
          break;
        }
        key = Number(seg);
        childSpec = s.items;
      } else {
        fail(path, 'is a single value, not a section');
        ok = false;
        break;
      }
      path = typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
      if (last) {
        const value = envValue(raw, childSpec, where, issues, path);
        if (!value) {
          ok = false;
          break;
        }
        if (!setChild(node, key, value, where)) {
          fail(path, `list index ${key} is past the end of the list`);
          ok = false;
        }
      } else {
        let child = getChild(node, key);
        const wantSeq = childSpec.t === 'array';
        if (!child || child.k !== (wantSeq ? 'seq' : 'map')) {
          child = wantSeq ? { k: 'seq', where, items: [] } : { k: 'map', where, entries: new Map() };
          if (!setChild(node, key, child, where)) {
            fail(path, `list index ${key} is past the end of the list`);
            ok = false;
            break;
          }
        }
        node = child as VMap | VSeq;
        s = childSpec;
      }
    }
    if (ok) applied.push(name);
  }
  return { root: top, applied };
}

function getChild(n: VMap | VSeq, key: string | number): VNode | undefined {
  return n.k === 'map' ? n.entries.get(String(key))?.value : n.items[key as number];
}

function setChild(n: VMap | VSeq, key: string | number, v: VNode, where: string): boolean {
  if (n.k === 'map') {
    n.entries.set(String(key), { keyWhere: where, value: v });
    return true;
  }
  const i = key as number;
  if (i > n.items.length) return false;
  n.items[i] = v;
  return true;
}

function envValue(raw: string, spec: Spec, where: string, issues: ConfigIssue[], path: string): VNode | undefined {
  if (spec.t === 'string' || spec.t === 'duration' || spec.t === 'forbidden') return { k: 'scalar', where, value: raw };
  if (spec.t === 'choice' && spec.values.includes(raw)) return { k: 'scalar', where, value: raw };
  const p = parseYaml(raw, where, where);
  if (!p.root) {
    issues.push({ where, path, message: `the value is not valid YAML (${p.issues[0]?.message ?? 'empty'})`, kind: 'structure', severity: 'error' });
    return undefined;
  }
  return p.root;
}

// ---- validation against the spec ----

export interface ValidateContext {
  /** The config file (relative paths in it resolve against its folder). */
  file: string;
  issues: ConfigIssue[];
  /** Key path → where its value (or its key) is: for semantic checks run on the typed result. */
  whereOf: Map<string, string>;
}

function issue(ctx: ValidateContext, where: string, path: string, message: string, kind: ConfigIssue['kind'] = 'structure', severity: ConfigIssue['severity'] = 'error') {
  ctx.issues.push({ where, path, message, kind, severity });
}

const quoteList = (xs: readonly (string | number)[], max = 12) =>
  xs.length > max ? `${xs.slice(0, max).map((x) => JSON.stringify(x)).join(', ')} … (${xs.length} in all)` : xs.map((x) => JSON.stringify(x)).join(', ');

function describe(n: VNode, secret: boolean): string {
  if (n.k === 'map') return 'a section (key: value lines)';
  if (n.k === 'seq') return 'a list';
  if (n.value === null) return 'nothing (an empty value)';
  if (secret) return `a ${typeof n.value === 'string' ? 'text' : typeof n.value} (value not shown)`;
  if (typeof n.value === 'string') return JSON.stringify(n.value.length > 80 ? n.value.slice(0, 77) + '...' : n.value);
  return String(n.value);
}

export function expected(s: Spec): string {
  switch (s.t) {
    case 'object':
      return 'a section of keys';
    case 'map':
      return `a section of entries by ${s.keyDesc}`;
    case 'array':
      return 'a list';
    case 'string':
      if (s.expect) return s.expect;
      return s.enum ? `one of ${quoteList(s.enum)}` : 'a text';
    case 'int':
      if (s.enum) return `one of ${s.enum.join(', ')}`;
      return `an integer${s.min !== undefined && s.max !== undefined ? ` from ${s.min} to ${s.max}` : s.min !== undefined ? ` ≥ ${s.min}` : ''}`;
    case 'number':
      return `a number${s.min !== undefined ? (s.exclusiveMin ? ` > ${s.min}` : ` ≥ ${s.min}`) : ''}${s.max !== undefined ? ` and ≤ ${s.max}` : ''}`;
    case 'bool':
      return 'true or false';
    case 'duration':
      return 'a duration with a unit, like 500ms, 30s, 5m, 1h30m or 1d';
    case 'size':
      return 'a size: a byte count or a number with a unit, like 64KiB, 16MiB or 1GiB';
    case 'choice':
      return `one of ${s.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'forbidden':
      return 'nothing (this key is not allowed)';
  }
}

function typeMismatch(ctx: ValidateContext, n: VNode, s: Spec, path: string, secret: boolean): undefined {
  let hint = '';
  if (n.k === 'scalar' && !secret) {
    if (typeof n.value === 'number' && s.t === 'string') hint = `; YAML read a number: write it in quotes ("${n.src ?? n.value}")`;
    if (typeof n.value === 'string' && (s.t === 'int' || s.t === 'number') && /^-?\d+(\.\d+)?$/.test(n.value)) hint = '; remove the quotes';
    if (typeof n.value === 'string' && s.t === 'bool' && /^(yes|no|on|off|y|n)$/i.test(n.value)) hint = '; YAML 1.2 reads yes/no/on/off as text';
    if (typeof n.value === 'number' && s.t === 'duration') hint = '; a bare number is ambiguous, add a unit';
  }
  if (n.k === 'scalar' && n.value === null) hint = '; give a value or remove the key';
  issue(ctx, n.where, path, `expected ${expected(s)}, got ${describe(n, secret)}${hint}`);
  return undefined;
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

/** Validates `n` against `s`; returns the typed value, or undefined when it has errors (reported in ctx). */
export function validateNode(n: VNode, s: Spec, path: string, ctx: ValidateContext, field?: Field): unknown {
  ctx.whereOf.set(path, n.where);
  const secret = !!field?.secret;
  switch (s.t) {
    case 'object':
      return validateObject(n, s, path, ctx);
    case 'map':
      return validateMap(n, s, path, ctx);
    case 'array':
      return validateArray(n, s, path, ctx, field);
    case 'forbidden':
      issue(ctx, n.where, path, s.hint);
      return undefined;
  }
  if (n.k !== 'scalar') return typeMismatch(ctx, n, s, path, secret);
  const v = n.value;
  switch (s.t) {
    case 'string': {
      if (typeof v !== 'string') return typeMismatch(ctx, n, s, path, secret);
      return validateString(v, n, s, path, ctx, field);
    }
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) return typeMismatch(ctx, n, s, path, secret);
      if (s.enum && !s.enum.includes(v)) return void issue(ctx, n.where, path, `expected one of ${s.enum.join(', ')}, got ${v}`);
      if ((s.min !== undefined && v < s.min) || (s.max !== undefined && v > s.max)) return void issue(ctx, n.where, path, `expected ${expected(s)}, got ${v}`);
      return v;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) return typeMismatch(ctx, n, s, path, secret);
      if ((s.min !== undefined && (s.exclusiveMin ? v <= s.min : v < s.min)) || (s.max !== undefined && v > s.max)) return void issue(ctx, n.where, path, `expected ${expected(s)}, got ${v}`);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') return typeMismatch(ctx, n, s, path, secret);
      return v;
    case 'duration': {
      if (typeof v !== 'string' || !DURATION_RE.test(v)) return typeMismatch(ctx, n, s, path, secret);
      const ms = parseDuration(v)!;
      if ((s.min !== undefined && ms < s.min) || (s.max !== undefined && ms > s.max))
        return void issue(ctx, n.where, path, `${v} is out of range: expected ${s.min !== undefined ? formatDuration(s.min) : '0ms'} to ${s.max !== undefined ? formatDuration(s.max) : 'any'}`, 'semantic');
      return ms;
    }
    case 'size': {
      if (!((typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'string' && SIZE_RE.test(v)))) return typeMismatch(ctx, n, s, path, secret);
      const b = parseSize(v)!;
      if ((s.min !== undefined && b < s.min) || (s.max !== undefined && b > s.max))
        return void issue(ctx, n.where, path, `${v} is out of range: expected ${s.min !== undefined ? formatSize(s.min) : '0'} to ${s.max !== undefined ? formatSize(s.max) : 'any'}`, 'semantic');
      return b;
    }
    case 'choice':
      if (v === null || typeof v === 'boolean' || !s.values.includes(v)) {
        const hint = typeof v === 'number' && s.values.includes(String(v)) ? `; write it in quotes ("${v}")` : typeof v === 'string' && s.values.includes(Number(v)) ? '; write it without quotes' : '';
        return void issue(ctx, n.where, path, `expected ${expected(s)}, got ${describe(n, secret)}${hint}`);
      }
      return v;
  }
}

function validateString(v: string, n: VScalar, s: StringSpec, path: string, ctx: ValidateContext, field?: Field): string | undefined {
  const secret = !!field?.secret;
  const shown = secret ? '' : ` got ${JSON.stringify(v.length > 80 ? v.slice(0, 77) + '...' : v)}`;
  if (s.maxLength !== undefined && v.length > s.maxLength) return void issue(ctx, n.where, path, `expected at most ${s.maxLength} characters, got ${v.length}`);
  if (s.enum && !s.enum.includes(v) && !(s.orPattern && s.orPattern.test(v))) {
    const dym = secret ? '' : didYouMean(v, s.enum);
    return void issue(ctx, n.where, path, `expected ${s.expect ? `${s.expect} (${quoteList(s.enum, 8)}${s.orPattern ? ', or a URI' : ''})` : `one of ${quoteList(s.enum)}`},${shown}${dym}`);
  }
  if (s.pattern && !s.pattern.test(v)) return void issue(ctx, n.where, path, `expected ${s.expect ?? `text matching ${s.pattern.source}`},${shown || ' got another value (not shown)'}`);
  if (s.check) {
    const problem = s.check(v);
    if (problem) return void issue(ctx, n.where, path, secret ? problem : `${JSON.stringify(v)} ${problem}`, 'semantic');
  }
  if (field?.path && !isAbsolute(v) && ctx.file) return resolve(dirname(ctx.file), v);
  return s.toValue ? (s.toValue(v) as string) : v;
}

function validateArray(n: VNode, s: ArraySpec, path: string, ctx: ValidateContext, field?: Field): unknown[] | undefined {
  if (n.k !== 'seq') return typeMismatch(ctx, n, s, path, !!field?.secret);
  if (s.min !== undefined && n.items.length < s.min) return void issue(ctx, n.where, path, `expected at least ${s.min} item${s.min === 1 ? '' : 's'}, got ${n.items.length}`);
  if (s.max !== undefined && n.items.length > s.max) return void issue(ctx, n.where, path, `expected at most ${s.max} items, got ${n.items.length}`);
  const out: unknown[] = [];
  let ok = true;
  const seen = new Map<string, number>();
  n.items.forEach((item, i) => {
    const p = `${path}[${i}]`;
    if (s.unique) {
      const key = JSON.stringify(toPlain(item));
      const first = seen.get(key);
      if (first !== undefined) {
        issue(ctx, item.where, p, `duplicate of item ${first} (${path}[${first}]); list each once`);
        ok = false;
      } else seen.set(key, i);
    }
    const v = validateNode(item, s.items, p, ctx, field?.path ? { spec: s.items, path: true, secret: field.secret } : undefined);
    if (v === undefined) ok = false;
    out.push(v);
  });
  return ok ? out : undefined;
}

function validateMap(n: VNode, s: MapSpec, path: string, ctx: ValidateContext): Record<string, unknown> | undefined {
  if (n.k !== 'map') return typeMismatch(ctx, n, s, path, false);
  if (s.minEntries !== undefined && n.entries.size < s.minEntries) return void issue(ctx, n.where, path, `expected at least ${s.minEntries} entr${s.minEntries === 1 ? 'y' : 'ies'}`);
  const out: Record<string, unknown> = {};
  let ok = true;
  for (const [k, e] of n.entries) {
    const p = join(path, k);
    ctx.whereOf.set(`${p}#key`, e.keyWhere);
    if (!s.keyPattern.test(k)) {
      issue(ctx, e.keyWhere, p, `"${k}" is not a valid ${s.keyDesc}`);
      ok = false;
      continue;
    }
    const v = validateNode(e.value, s.value, p, ctx);
    if (v === undefined) ok = false;
    else out[k] = v;
  }
  return ok ? out : undefined;
}

function scalarOf(e: { value: VNode } | undefined): unknown {
  return e && e.value.k === 'scalar' ? e.value.value : undefined;
}

/** Whether an absent optional section can be filled from defaults alone. */
function defaultable(s: ObjectSpec): boolean {
  return Object.values(s.fields).every((f) => !f.required) && !s.requireOneOf?.length && Object.values(s.fields).some((f) => f.default !== undefined);
}

function validateObject(n: VNode, s: ObjectSpec, path: string, ctx: ValidateContext): Record<string, unknown> | undefined {
  if (n.k !== 'map') return typeMismatch(ctx, n, s, path, false);
  const out: Record<string, unknown> = {};
  let ok = true;
  const names = Object.keys(s.fields);
  for (const [k, e] of n.entries) {
    if (s.fields[k]) continue;
    issue(ctx, e.keyWhere, join(path, k), `unknown key${didYouMean(k, names)}; ${path || 'the top level'} has: ${names.join(', ')}`);
    ok = false;
  }
  for (const [f, field] of Object.entries(s.fields)) {
    const e = n.entries.get(f);
    const p = join(path, f);
    if (!e) {
      if (field.required) {
        issue(ctx, n.where, p, `missing: ${path ? `${path} needs` : 'the config needs'} "${f}" (${firstSentence(docOf(field))})`);
        ok = false;
      } else if (field.default !== undefined) out[f] = structuredClone(field.default);
      else if (field.spec.t === 'object' && defaultable(field.spec)) out[f] = validateObject({ k: 'map', where: n.where, entries: new Map() }, field.spec, p, ctx);
      continue;
    }
    ctx.whereOf.set(`${p}#key`, e.keyWhere);
    if (field.spec.t === 'forbidden') {
      // Point at the key: the value may be a secret and is never shown.
      issue(ctx, e.keyWhere, p, field.spec.hint);
      ok = false;
      continue;
    }
    const v = validateNode(e.value, field.spec, p, ctx, field);
    if (v === undefined) ok = false;
    else out[f] = v;
  }
  for (const group of s.exclusive ?? []) {
    const present = group.filter((k) => n.entries.has(k));
    if (present.length > 1) {
      issue(ctx, n.entries.get(present[1])!.keyWhere, path, `${present.map((k) => `"${k}"`).join(' and ')} exclude each other; keep one`);
      ok = false;
    }
  }
  for (const group of s.requireOneOf ?? []) {
    if (!group.some((k) => n.entries.has(k))) {
      issue(ctx, n.where, path, `needs ${group.length === 2 ? `"${group[0]}" or "${group[1]}"` : `one of ${group.map((k) => `"${k}"`).join(', ')}`}`);
      ok = false;
    }
  }
  for (const w of s.when ?? []) {
    if (scalarOf(n.entries.get(w.key)) !== w.equals) continue;
    const cond = `with ${w.key}: ${w.equals}`;
    for (const k of w.require ?? [])
      if (!n.entries.has(k)) {
        issue(ctx, n.where, join(path, k), `missing: required ${cond} (${firstSentence(docOf(s.fields[k]))})`);
        ok = false;
      }
    for (const group of w.requireOneOf ?? [])
      if (!group.some((k) => n.entries.has(k))) {
        issue(ctx, n.where, path, `${cond}, one of ${group.map((k) => `"${k}"`).join(', ')} is required`);
        ok = false;
      }
    for (const k of w.forbid ?? [])
      if (n.entries.has(k)) {
        issue(ctx, n.entries.get(k)!.keyWhere, join(path, k), `does not apply ${cond}; remove it`);
        ok = false;
      }
  }
  return ok ? out : undefined;
}

function docOf(f: Field | undefined): string {
  if (!f) return '';
  return (f.spec as { doc?: string }).doc ?? '';
}

function firstSentence(s: string): string {
  const m = /^(.*?\.)(\s|$)/.exec(s);
  return (m ? m[1] : s).replace(/\.$/, '');
}
