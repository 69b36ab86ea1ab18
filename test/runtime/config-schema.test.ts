// The JSON Schema (configs/gateway.schema.json) and the validator come from one
// description; these tests keep the file, the validator and docs/CONFIG.md in
// step: the file is what the generator prints, ajv compiles it, the example
// configs pass both, and on thousands of random structural mutations of the
// examples ajv and the validator agree (the validator's extra semantic checks
// — references, ranges, GS1 keys — are the only difference, by design).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { checkConfigFile, checkConfigText, envNameOf, formatIssue, gatewayJsonSchema, gatewayJsonSchemaText, GATEWAY_SPEC, keyPaths } from '../../runtime/config/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLES = ['reefer', 'dock-door', 'devnet'];
const ajv = new Ajv({ allErrors: true, strictTypes: true, strictTuples: true });
const validate = ajv.compile(gatewayJsonSchema());

test('configs/gateway.schema.json is exactly what the spec generates (regenerate: iscm-edge config schema > configs/gateway.schema.json)', () => {
  assert.fixture(readFileSync(join(root, 'configs', 'gateway.schema.json'), 'utf8'), gatewayJsonSchemaText());
  assert.is(JSON.parse(gatewayJsonSchemaText()).$schema, 'http://json-schema.org/draft-07/schema#');
});

for (const name of EXAMPLES) {
  test(`example configs/${name}.yaml: valid for the validator (no warnings) and for the JSON Schema`, () => {
    const file = join(root, 'configs', `${name}.yaml`);
    const r = checkConfigFile(file, { env: {} });
    assert.ok(r.config, r.issues.map(formatIssue).join('\n'));
    assert.equal(r.issues.map(formatIssue), [], 'no warnings either');
    assert.ok(validate(parse(readFileSync(file, 'utf8'))), JSON.stringify(validate.errors));
  });
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObj = (v: Json): v is { [k: string]: Json } => v !== null && typeof v === 'object' && !Array.isArray(v);
/** Every path to a value in a JSON tree. */
function paths(v: Json, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = at.length ? [at] : [];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
  else if (isObj(v)) for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}
function getAt(v: Json, p: (string | number)[]): Json {
  return p.reduce<Json>((x, k) => (x as any)[k], v);
}
const REPLACEMENTS: Json[] = [null, true, false, 0, -1, 1.5, 70000, '', 'x', 'five', '5m', '1GiB', '3.1.1', 5, [], ['a'], {}, { a: 1 }, 'urn:epc:id:sscc:4012345.0000000101', 'pkcs11', 'software', 'temperature', 'none', 'mqtt://h:1'];

test('JSON Schema and validator agree on random structural mutations of the examples', () => {
  const bases = EXAMPLES.map((n) => parse(readFileSync(join(root, 'configs', `${n}.yaml`), 'utf8')) as Json);
  let disagreements = 0;
  let invalid = 0;
  fc.assert(
    fc.property(fc.nat(bases.length - 1), fc.nat(10_000), fc.nat(3), fc.nat(REPLACEMENTS.length - 1), fc.string({ minLength: 1, maxLength: 8 }), (b, pick, op, rep, newKey) => {
      const doc = structuredClone(bases[b]);
      const ps = paths(doc);
      const p = ps[pick % ps.length];
      const parent = getAt(doc, p.slice(0, -1));
      const key = p[p.length - 1];
      if (op === 0) {
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete (parent as any)[key];
      } else if (op === 1) {
        const target = getAt(doc, p);
        if (isObj(target)) target[newKey] = 1;
        else (parent as any)[key] = REPLACEMENTS[rep];
      } else (parent as any)[key] = REPLACEMENTS[rep];
      const schemaOk = validate(doc) as boolean;
      const r = checkConfigText(stringify(doc), 'mutated.yaml');
      const structural = r.issues.filter((i) => i.severity === 'error' && i.kind !== 'semantic');
      if (!schemaOk) invalid++;
      if (schemaOk !== (structural.length === 0)) {
        disagreements++;
        throw new Error(`disagree at ${p.join('.')} (op ${op}): schema ${schemaOk ? 'valid' : JSON.stringify(validate.errors?.slice(0, 3))}; validator: ${structural.map(formatIssue).join('; ')}`);
      }
      return true;
    }),
    { numRuns: 2000, seed: 20251120 },
  );
  assert.is(disagreements, 0);
  assert.ok(invalid > 700, `most mutations should break something (${invalid})`);
});

test('semantic checks are the validator\'s own: the schema accepts these, the validator refuses them', () => {
  const base = parse(readFileSync(join(root, 'configs', 'reefer.yaml'), 'utf8'));
  const cases: [string, (c: any) => void][] = [
    ['a port naming an undefined sensor', (c) => c.ports.mcu.sensors.push('nope')],
    ['a window that does not exist', (c) => (c.sensors['t-air'].window = 'hourly')],
    ['an invalid SSCC', (c) => (c.assets.epcs[1] = 'urn:epc:id:sscc:4012345.000000010')],
    ['a duration out of range', (c) => (c.windows['five-min'].period = '100ms')],
    ['metrics on every interface', (c) => (c.metrics = { listen: '0.0.0.0:9464' })],
    ['credentials in the MQTT URL', (c) => (c.mqtt.url = 'mqtt://u:p@h:1883')],
  ];
  for (const [what, mutate] of cases) {
    const c = structuredClone(base);
    mutate(c);
    assert.ok(validate(c), `${what}: schema ${JSON.stringify(validate.errors)}`);
    const r = checkConfigText(stringify(c), 'x.yaml');
    assert.ok(r.issues.some((i) => i.severity === 'error' && i.kind === 'semantic'), `${what}: ${r.issues.map(formatIssue)}`);
  }
});

test('every default in the schema is a valid value of its key, and the validator fills the same defaults', () => {
  const defaults: [string, unknown, object][] = [];
  const walk = (node: any, at: string) => {
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries<any>(node.properties ?? {})) {
      if (v && 'default' in v) defaults.push([`${at}${k}`, v.default, v]);
      walk(v, `${at}${k}.`);
    }
    if (node.additionalProperties && typeof node.additionalProperties === 'object') walk(node.additionalProperties, `${at}<entry>.`);
    if (node.items) walk(node.items, `${at}[].`);
  };
  walk(gatewayJsonSchema(), '');
  assert.ok(defaults.length > 40, `${defaults.length} defaults`);
  for (const [path, value, schema] of defaults) {
    const { default: _, ...rest } = schema as Record<string, unknown>;
    assert.ok(ajv.validate(rest, value), `${path}: default ${JSON.stringify(value)} does not satisfy its own schema`);
  }
  // The same defaults, written out, give the same typed config as leaving them out.
  const minimal = 'device: { id: d }\nsigner: { driver: software, key_file: k, passphrase_env: P }\nmqtt: { url: "mqtt://h:1" }\ntrust: { ledger_keys: [l] }\n';
  const top = Object.fromEntries(defaults.filter(([p]) => /^(clock|journal|batching|metrics|logging|business|locations)\.[a-z_]+$/.test(p)).map(([p, v]) => [p, v]));
  const sections: Record<string, Record<string, unknown>> = {};
  for (const [p, v] of Object.entries(top)) (sections[p.split('.')[0]] ??= {})[p.split('.')[1]] = v;
  const explicit = minimal + stringify(sections);
  const a = checkConfigText(minimal, 'a.yaml').config!;
  const b = checkConfigText(explicit, 'a.yaml').config!;
  assert.ok(a && b);
  for (const sec of Object.keys(sections)) assert.equal((b as any)[sec], (a as any)[sec], sec);
});

test('docs/CONFIG.md documents every key, its environment variable form, and the secret rules', () => {
  const doc = readFileSync(join(root, 'docs', 'CONFIG.md'), 'utf8');
  const missing = keyPaths(GATEWAY_SPEC).filter((p) => !doc.includes(`\`${p}\``));
  assert.equal(missing, [], `keys missing from docs/CONFIG.md: ${missing.join(', ')}`);
  for (const p of ['mqtt.url', 'signer.pin_file', 'sensors.t-air.window']) assert.ok(doc.includes(envNameOf(p)), envNameOf(p));
  assert.match(doc, /_file/);
  assert.match(doc, /_env/);
});

test.run();
