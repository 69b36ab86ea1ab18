// The JSON Schema (draft-07) of the gateway config, generated from the same
// description the validator uses. configs/gateway.schema.json is its output
// (`iscm-edge config schema`); a test keeps the file and this in step. The
// schema checks structure; references between sections, value ranges of
// durations and sizes, and GS1 key validity are checked by `config check`.
import type { Field, ObjectSpec, Spec } from './spec.js';
import { DURATION_RE, SIZE_RE } from './spec.js';
import { GATEWAY_SPEC } from './gateway-spec.js';

type Schema = Record<string, unknown>;

function field(f: Field): Schema {
  const s = node(f.spec);
  const d = f.defaultText ?? f.default;
  if (d !== undefined) s.default = d;
  return s;
}

function objectSchema(o: ObjectSpec): Schema {
  const properties: Record<string, Schema> = {};
  for (const [k, f] of Object.entries(o.fields)) properties[k] = field(f);
  const required = Object.entries(o.fields).filter(([, f]) => f.required).map(([k]) => k);
  const s: Schema = { type: 'object', description: o.doc, properties, additionalProperties: false };
  if (required.length) s.required = required;
  const all: Schema[] = [];
  for (const g of o.exclusive ?? []) for (let i = 0; i < g.length; i++) for (let j = i + 1; j < g.length; j++) all.push({ not: { required: [g[i], g[j]] } });
  for (const g of o.requireOneOf ?? []) all.push({ anyOf: g.map((k) => ({ required: [k] })) });
  for (const w of o.when ?? []) {
    const then: Schema = { type: 'object' };
    if (w.require?.length) then.required = w.require;
    const inner: Schema[] = [];
    for (const g of w.requireOneOf ?? []) inner.push({ anyOf: g.map((k) => ({ required: [k] })) });
    if (w.forbid?.length) inner.push({ not: { anyOf: w.forbid.map((k) => ({ required: [k] })) } });
    if (inner.length) then.allOf = inner;
    all.push({ if: { type: 'object', properties: { [w.key]: { const: w.equals } }, required: [w.key] }, then });
  }
  if (all.length) s.allOf = all;
  return s;
}

function node(s: Spec): Schema {
  switch (s.t) {
    case 'object':
      return objectSchema(s);
    case 'map': {
      const out: Schema = { type: 'object', description: s.doc, propertyNames: { pattern: s.keyPattern.source }, additionalProperties: node(s.value) };
      if (s.minEntries !== undefined) out.minProperties = s.minEntries;
      return out;
    }
    case 'array': {
      const out: Schema = { type: 'array', items: node(s.items) };
      if (s.doc) out.description = s.doc;
      if (s.min !== undefined) out.minItems = s.min;
      if (s.max !== undefined) out.maxItems = s.max;
      if (s.unique) out.uniqueItems = true;
      return out;
    }
    case 'string': {
      const base: Schema = { type: 'string' };
      if (s.maxLength !== undefined) base.maxLength = s.maxLength;
      if (s.pattern) base.pattern = s.pattern.source;
      let out: Schema = base;
      if (s.enum) out = s.orPattern ? { anyOf: [{ ...base, enum: [...s.enum] }, { ...base, pattern: s.orPattern.source }] } : { ...base, enum: [...s.enum] };
      if (s.doc) out = { description: s.doc, ...out };
      return out;
    }
    case 'int': {
      const out: Schema = { type: 'integer' };
      if (s.doc) out.description = s.doc;
      if (s.enum) out.enum = [...s.enum];
      if (s.min !== undefined) out.minimum = s.min;
      if (s.max !== undefined) out.maximum = s.max;
      return out;
    }
    case 'number': {
      const out: Schema = { type: 'number' };
      if (s.doc) out.description = s.doc;
      if (s.min !== undefined) out[s.exclusiveMin ? 'exclusiveMinimum' : 'minimum'] = s.min;
      if (s.max !== undefined) out.maximum = s.max;
      return out;
    }
    case 'bool':
      return s.doc ? { description: s.doc, type: 'boolean' } : { type: 'boolean' };
    case 'duration':
      return { description: `${s.doc ?? ''} A duration with a unit: ms, s, m, h, d (e.g. 30s, 5m, 1h30m).`.trim(), type: 'string', pattern: DURATION_RE.source };
    case 'size':
      return { description: `${s.doc ?? ''} Bytes, or a number with a unit: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB.`.trim(), anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: SIZE_RE.source }] };
    case 'choice':
      return s.doc ? { description: s.doc, enum: [...s.values] } : { enum: [...s.values] };
    case 'forbidden':
      return { description: `Not allowed: ${s.hint}.`, not: {} };
  }
}

/** The JSON Schema of the gateway config. */
export function gatewayJsonSchema(): Schema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $comment: 'Generated from runtime/config/gateway-spec.ts by `iscm-edge config schema`; do not edit by hand.',
    title: 'ISCM Edge gateway configuration',
    ...objectSchema(GATEWAY_SPEC),
  };
}

/** The schema file's exact text (what configs/gateway.schema.json holds). */
export function gatewayJsonSchemaText(): string {
  return JSON.stringify(gatewayJsonSchema(), null, 2) + '\n';
}
