// The GS1 EPCIS Event Hash ID (CBV 2.0 §8.9): eventID = "ni:///sha-256;" +
// hex(SHA-256(UTF-8 pre-hash string)) + "?ver=CBV2.0".
//
// The pre-hash string is the event's content in a canonical order with
// canonical values, independent of JSON key order, EPC URI versus Digital
// Link, bare CBV words versus their Web URIs, time zones and number spelling.
// The rules, as the vectors in ../shared/vectors/epcis/hash-vectors show them
// (their README lists them; every case there is a test):
//  - "eventType=<type>" first, then the standard fields in the order below;
//    a list names itself once and each child before its value
//    ("epcListepc=…epc=…"); siblings of one name are sorted by their string;
//  - then every other field (bizTransactionList, sourceList, destinationList,
//    ilmd, user extensions) rendered generically, sorted by their string;
//    user extensions nested in an element come at the end of that element;
//  - times → UTC "…ss.mmmZ" rounded to ms (half to even on the µs, as the
//    reference implementation); numbers without trailing zeros (Python float
//    spelling); bare CBV words → https://ref.gs1.org/cbv/<Type>-<word>;
//    measurement and alert types → https://gs1.org/voc/<word>; GS1 keys in any
//    URI form → canonical https://id.gs1.org/… Digital Links; CURIEs → IRIs
//    (user extension keys as "{namespace}local");
//  - eventID, recordTime, errorDeclaration, type (it leads) and @context (the
//    JSON-LD machinery, not event data; its prefixes are used) are left out.
import { sha256HexOfText } from '../../protocol/bytes.js';
import { sortFew } from '../../protocol/sort.js';
import { canonicalGs1Uri } from './epc.js';
import { BIZ_STEPS, BIZ_TRANSACTION_TYPES, CBV, COMPONENTS, DISPOSITIONS, ERROR_REASONS, GS1_VOC, MEASUREMENT_TYPES, SENSOR_ALERTS, SOURCE_DEST_TYPES, STANDARD_PREFIXES } from './vocab.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

// ---- value canonicalisation ----

type Role = 'bizStep' | 'disp' | 'btt' | 'sdt' | 'er' | 'measure' | 'alert' | 'comp' | undefined;
const VOCAB: Record<Exclude<Role, undefined>, { words: Set<string>; base: string }> = {
  bizStep: { words: new Set(BIZ_STEPS), base: `${CBV}BizStep-` },
  disp: { words: new Set(DISPOSITIONS), base: `${CBV}Disp-` },
  btt: { words: new Set(BIZ_TRANSACTION_TYPES), base: `${CBV}BTT-` },
  sdt: { words: new Set(SOURCE_DEST_TYPES), base: `${CBV}SDT-` },
  er: { words: new Set(ERROR_REASONS), base: `${CBV}ER-` },
  measure: { words: new Set(MEASUREMENT_TYPES), base: GS1_VOC },
  alert: { words: new Set(SENSOR_ALERTS), base: GS1_VOC },
  comp: { words: new Set(COMPONENTS), base: `${CBV}Comp-` },
};
const CBV_URNS: [string, string][] = [
  ['urn:epcglobal:cbv:bizstep:', `${CBV}BizStep-`],
  ['urn:epcglobal:cbv:disp:', `${CBV}Disp-`],
  ['urn:epcglobal:cbv:btt:', `${CBV}BTT-`],
  ['urn:epcglobal:cbv:sdt:', `${CBV}SDT-`],
  ['urn:epcglobal:cbv:er:', `${CBV}ER-`],
];

/** A number as Python's str(float(x)) with integral values as int: how the reference implementation spells numbers. */
export function pythonNumber(x: number): string {
  const ax = Math.abs(x);
  // Where JavaScript and Python spell numbers alike (shortest round trip, no exponent), skip the work.
  if (Number.isInteger(x)) return ax <= Number.MAX_SAFE_INTEGER ? String(x === 0 ? 0 : x) : BigInt(x).toString();
  if (ax >= 1e-4) return String(x);
  const [mant, expS] = x.toExponential().split('e');
  const exp = Number(expS);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let s: string;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    s = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  } else if (exp < 0) s = `0.${'0'.repeat(-exp - 1)}${digits}`;
  else {
    const int = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
    const frac = digits.slice(exp + 1);
    s = frac ? `${int}.${frac}` : int;
  }
  return neg ? `-${s}` : s;
}

// Python float() syntax: optional sign, digits with single underscores between them, optional fraction and exponent.
const PY_FLOAT = /^[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;

/** Numeric spelling of a text that Python's float() accepts; the text itself otherwise. */
function canonNumericText(t: string): string {
  if (!PY_FLOAT.test(t)) return t;
  const x = Number(t.replace(/_/g, ''));
  return Number.isFinite(x) ? pythonNumber(x) : t;
}

/** Python str() of a JSON scalar (the reference implementation's spelling of booleans and null too). */
function scalarText(v: Json): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return pythonNumber(v);
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  return 'None';
}

const MEMO_MAX = 20_000;

function canonValue(raw: string, role: Role, ns: Prefixes): string {
  const memo = ns.memo;
  const key = role === undefined ? raw : role + '\u0000' + raw;
  const hit = memo.get(key);
  if (hit !== undefined) return hit;
  let t = raw.trim();
  if (role && VOCAB[role].words.has(t)) t = VOCAB[role].base + t;
  else t = expandCurie(t, ns);
  for (const [urn, web] of CBV_URNS) if (t.includes(urn)) t = t.split(urn).join(web);
  t = canonNumericText(t);
  t = canonicalGs1Uri(t) ?? t;
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(key, t);
  return t;
}

const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/** An ISO 8601 date-time as UTC with milliseconds ("…ss.mmmZ"); the text itself when it is not one. */
const CANONICAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function canonTime(raw: string): string {
  if (CANONICAL_TIME.test(raw)) return raw; // already UTC with milliseconds (what the builder writes)
  const t = raw.trim();
  const m = TIME_RE.exec(t);
  if (!m) return t;
  const [, y, mo, d, h, mi, s = '0', frac = '', tz = 'Z'] = m;
  // Microseconds (digits past the sixth are dropped), rounded to ms half to even.
  const us = Number(frac.slice(0, 6).padEnd(6, '0'));
  const q = Math.floor(us / 1000);
  const r = us % 1000;
  const ms = r > 500 || (r === 500 && q % 2 === 1) ? q + 1 : q;
  let offMin = 0;
  if (tz !== 'Z' && tz !== 'z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const hh = Number(tz.slice(1, 3));
    const mm = tz.length > 3 ? Number(tz.slice(-2)) : 0;
    offMin = sign * (hh * 60 + mm);
  }
  const ms0 = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (!Number.isFinite(ms0)) return t;
  const date = new Date(ms0 - offMin * 60_000 + ms);
  if (Number.isNaN(date.getTime())) return t;
  const iso = date.toISOString();
  return iso.length === 24 ? iso : t; // years outside 0000..9999 are not xsd:dateTimeStamp here
}

// ---- namespaces ----

interface Prefixes {
  id: string;
  map: Map<string, string>;
  /** Canonical values already computed under these prefixes. */
  memo: Map<string, string>;
  /** Rendered fields of frozen (immutable, shared) objects: a builder's asset list, read point … */
  frozen: WeakMap<object, string>;
}
const standard: Prefixes = { id: 'std', map: new Map(Object.entries(STANDARD_PREFIXES)), memo: new Map(), frozen: new WeakMap() };
const prefixCache = new Map<string, Prefixes>();
// Events of one builder share one @context object: look it up by identity first.
const byContextObject = new WeakMap<object, Prefixes>();

function prefixesOf(documentContext: unknown, eventContext: unknown): Prefixes {
  if (documentContext === undefined && eventContext === undefined) return standard;
  if (documentContext === undefined && eventContext !== null && typeof eventContext === 'object') {
    let p = byContextObject.get(eventContext);
    if (!p) byContextObject.set(eventContext, (p = collectPrefixes(eventContext)));
    return p;
  }
  return collectPrefixes(documentContext, eventContext);
}

function collectPrefixes(...contexts: unknown[]): Prefixes {
  const extra: [string, string][] = [];
  const visit = (c: unknown) => {
    if (Array.isArray(c)) c.forEach(visit);
    else if (c && typeof c === 'object') for (const [k, v] of Object.entries(c)) if (typeof v === 'string' && !k.startsWith('@')) extra.push([k, v]);
  };
  contexts.forEach(visit);
  if (extra.length === 0) return standard;
  const id = JSON.stringify(extra);
  let p = prefixCache.get(id);
  if (!p) {
    p = { id, map: new Map([...standard.map, ...extra]), memo: new Map(), frozen: new WeakMap() };
    if (prefixCache.size > 256) prefixCache.clear();
    prefixCache.set(id, p);
  }
  return p;
}

function expandCurie(t: string, ns: Prefixes): string {
  const i = t.indexOf(':');
  if (i <= 0) return t;
  const iri = ns.map.get(t.slice(0, i));
  return iri === undefined ? t : iri + t.slice(i + 1);
}

/** Field name as it enters the pre-hash: CURIEs as "{namespace}local". */
function keyName(k: string, ns: Prefixes): string {
  const i = k.indexOf(':');
  if (i <= 0) return k;
  const iri = ns.map.get(k.slice(0, i));
  return iri === undefined ? k : `{${iri}}${k.slice(i + 1)}`;
}

// ---- structure ----

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// Per event this sorts a handful of short lists: by insertion (protocol/
// sort.ts), which allocates nothing, instead of Array.prototype.sort, which
// allocates its TimSort state on every call. Same order: UTF-16 code units.
const lt = (a: string, b: string) => a < b;
const numLt = (a: number, b: number) => a < b;
const sortSmall = (a: string[]): string[] => (a.length > 16 ? a.sort(cmp) : sortFew(a, lt));

function sortJoin(parts: string[]): string {
  if (parts.length === 0) return '';
  if (parts.length === 1) return parts[0];
  sortSmall(parts);
  let out = '';
  for (let i = 0; i < parts.length; i++) out += parts[i];
  return out;
}

/** The rendering of entries that are not "" (the rendering of a list), sorted and joined. */
function sortJoinNonEmpty(parts: string[]): string {
  let n = 0;
  for (let i = 0; i < parts.length; i++) if (parts[i]) parts[n++] = parts[i];
  parts.length = n;
  return sortJoin(parts);
}

const isObj = (v: Json | undefined): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const asList = (v: Json | undefined): Json[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** "name=value", or "" for an empty value. */
function leaf(name: string, v: Json | undefined, role: Role, ns: Prefixes, time = false): string {
  if (v === undefined) return '';
  if (typeof v === 'number' && !time) return `${name}=${pythonNumber(v)}`; // its own canonical form
  const text = scalarText(v).trim();
  if (!text) return '';
  return `${name}=${time ? canonTime(text) : canonValue(text, role, ns)}`;
}

/** Generic rendering (fields outside the canonical order, user extensions): name, "=value" for scalars, children sorted. */
function generic(name: string, v: Json, ns: Prefixes, out: string[] = []): string[] {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) generic(name, v[i], ns, out);
    return out;
  }
  if (isObj(v)) {
    const kids: string[] = [];
    for (const k in v) generic(keyName(k, ns), v[k], ns, kids);
    out.push(name + sortJoin(kids));
    return out;
  }
  const text = scalarText(v).trim();
  out.push(text ? `${name}=${canonValue(text, undefined, ns)}` : name);
  return out;
}

type ElementSpec = [field: string, role?: Role | 'time'][];

/** An element whose fields have a canonical order; any other field is an extension, appended sorted. */
interface CompiledSpec {
  /** field → [position in the canonical order, role] */
  index: Map<string, [number, Role | 'time']>;
  names: string[];
}
const compiledSpecs = new WeakMap<ElementSpec, CompiledSpec>();
function compile(spec: ElementSpec): CompiledSpec {
  let c = compiledSpecs.get(spec);
  if (!c) compiledSpecs.set(spec, (c = { index: new Map(spec.map(([f, role], i) => [f, [i, role as Role | 'time']])), names: spec.map(([f]) => f) }));
  return c;
}

/** One field of an element: "name=value" (a list: each entry, sorted). */
function field(name: string, v: Json, role: Role | 'time', ns: Prefixes): string {
  const time = role === 'time';
  const r = time ? undefined : role;
  if (!Array.isArray(v)) return leaf(name, v, r, ns, time);
  return sortJoinNonEmpty(v.map((x) => leaf(name, x, r, ns, time)));
}

/** An element whose fields have a canonical order; any other field is an extension, appended sorted. */
function element(o: Obj, spec: ElementSpec, ns: Prefixes): string {
  // Walk the object's own keys (few) rather than the canonical list (up to 23), then order them.
  // Positions in the canonical order, insertion-sorted (few; no tuples, no sort state).
  const c = compile(spec);
  let known: number[] | undefined;
  let ext: string[] | undefined;
  for (const k in o) {
    const at = c.index.get(k);
    if (at !== undefined) (known ??= []).push(at[0]);
    else if (o[k] !== undefined) generic(keyName(k, ns), o[k], ns, (ext ??= []));
  }
  let out = '';
  if (known) {
    sortFew(known, numLt);
    for (let i = 0; i < known.length; i++) {
      const [k, role] = spec[known[i]];
      const v = o[k];
      if (v !== undefined) out += field(k, v, role as Role | 'time', ns);
    }
  }
  return ext ? out + sortJoin(ext) : out;
}

const QUANTITY: ElementSpec = [['epcClass'], ['quantity'], ['uom']];
const LOCATION: ElementSpec = [['id']];
const METADATA: ElementSpec = [['time', 'time'], ['startTime', 'time'], ['endTime', 'time'], ['deviceID'], ['deviceMetadata'], ['rawData'], ['dataProcessingMethod'], ['bizRules']];
const REPORT: ElementSpec = [
  ['type', 'measure'], ['exception', 'alert'], ['deviceID'], ['deviceMetadata'], ['rawData'], ['dataProcessingMethod'], ['time', 'time'],
  ['microorganism'], ['chemicalSubstance'], ['value'], ['component', 'comp'], ['stringValue'], ['booleanValue'], ['hexBinaryValue'],
  ['uriValue'], ['minValue'], ['maxValue'], ['meanValue'], ['sDev'], ['percRank'], ['percValue'], ['uom'], ['coordinateReferenceSystem'],
];

function list(name: string, inner: string[]): string {
  const body = sortJoinNonEmpty(inner);
  return body ? name + body : '';
}

function epcs(name: string, v: Json | undefined, ns: Prefixes): string {
  return list(name, asList(v).map((x) => leaf('epc', x, undefined, ns)));
}

function quantities(name: string, v: Json | undefined, ns: Prefixes): string {
  return list(name, asList(v).map((q) => (isObj(q) ? wrap('quantityElement', element(q, QUANTITY, ns)) : '')));
}

const wrap = (name: string, body: string) => (body ? name + body : '');

function sensorElements(v: Json | undefined, ns: Prefixes): string {
  return list(
    'sensorElementList',
    asList(v).map((se) => {
      if (!isObj(se)) return '';
      let body = isObj(se.sensorMetadata) ? wrap('sensorMetadata', element(se.sensorMetadata, METADATA, ns)) : '';
      body += sortJoinNonEmpty(asList(se.sensorReport).map((r) => (isObj(r) ? wrap('sensorReport', element(r, REPORT, ns)) : '')));
      const ext: string[] = [];
      for (const k in se) if (k !== 'sensorMetadata' && k !== 'sensorReport') generic(keyName(k, ns), se[k], ns, ext);
      return wrap('sensorElement', body + sortJoin(ext));
    }),
  );
}

/** bizTransactionList / sourceList / destinationList: "type=…" then the identifier, entries sorted. */
function typedList(name: string, idKey: string, role: Role, v: Json, ns: Prefixes): string {
  const entries = asList(v).map((e) => {
    if (!isObj(e)) return generic(idKey, e, ns).join('');
    let s = leaf('type', e.type, role, ns) + leaf(idKey, e[idKey], undefined, ns);
    const ext: string[] = [];
    for (const k in e) if (k !== 'type' && k !== idKey) generic(keyName(k, ns), e[k], ns, ext);
    s += sortJoin(ext);
    return s;
  });
  return name + sortJoin(entries);
}

const ORDERED = new Set([
  'eventTime', 'eventTimeZoneOffset', 'certificationInfo', 'parentID', 'epcList', 'inputEPCList', 'childEPCs', 'quantityList', 'childQuantityList',
  'inputQuantityList', 'outputEPCList', 'outputQuantityList', 'action', 'transformationID', 'bizStep', 'disposition', 'persistentDisposition',
  'readPoint', 'bizLocation', 'sensorElementList',
]);
const IGNORED = new Set(['type', 'eventID', 'recordTime', 'errorDeclaration', '@context']);

export interface HashOptions {
  /** The enclosing document's @context, when the event came in an EPCISDocument (its prefixes name extension fields). */
  documentContext?: unknown;
}

/** A field's rendering, cached when its value is a frozen object (immutable, so the rendering cannot go stale). */
function cached(v: Json | undefined, ns: Prefixes, render: () => string): string {
  if (v === null || typeof v !== 'object' || !Object.isFrozen(v)) return render();
  let s = ns.frozen.get(v);
  if (s === undefined) ns.frozen.set(v, (s = render()));
  return s;
}

/** The canonical pre-hash string of one EPCIS 2.0 event (JSON object form). */
export function eventPrehash(event: { [k: string]: unknown }, opts: HashOptions = {}): string {
  const e = event as Obj;
  const ns = prefixesOf(opts.documentContext, e['@context']);
  let out = `eventType=${scalarText(e.type ?? null)}`;
  out += leaf('eventTime', e.eventTime, undefined, ns, true);
  out += leaf('eventTimeZoneOffset', e.eventTimeZoneOffset, undefined, ns);
  if (e.certificationInfo !== undefined) out += sortJoinNonEmpty(asList(e.certificationInfo).map((c) => leaf('certificationInfo', c, undefined, ns)));
  out += leaf('parentID', e.parentID, undefined, ns);
  if (e.epcList !== undefined) out += cached(e.epcList, ns, () => epcs('epcList', e.epcList, ns));
  if (e.inputEPCList !== undefined) out += epcs('inputEPCList', e.inputEPCList, ns);
  if (e.childEPCs !== undefined) out += epcs('childEPCs', e.childEPCs, ns);
  if (e.quantityList !== undefined) out += cached(e.quantityList, ns, () => quantities('quantityList', e.quantityList, ns));
  if (e.childQuantityList !== undefined) out += quantities('childQuantityList', e.childQuantityList, ns);
  if (e.inputQuantityList !== undefined) out += quantities('inputQuantityList', e.inputQuantityList, ns);
  if (e.outputEPCList !== undefined) out += epcs('outputEPCList', e.outputEPCList, ns);
  if (e.outputQuantityList !== undefined) out += quantities('outputQuantityList', e.outputQuantityList, ns);
  out += leaf('action', e.action, undefined, ns);
  out += leaf('transformationID', e.transformationID, undefined, ns);
  out += leaf('bizStep', e.bizStep, 'bizStep', ns);
  out += leaf('disposition', e.disposition, 'disp', ns);
  if (isObj(e.persistentDisposition)) {
    const pd = e.persistentDisposition;
    const body =
      sortJoinNonEmpty(asList(pd.set).map((x) => leaf('set', x, 'disp', ns))) + sortJoinNonEmpty(asList(pd.unset).map((x) => leaf('unset', x, 'disp', ns)));
    out += wrap('persistentDisposition', body);
  }
  for (const loc of ['readPoint', 'bizLocation'] as const) {
    const v = e[loc];
    if (isObj(v)) out += cached(v, ns, () => wrap(loc, element(v, LOCATION, ns)));
  }
  out += sensorElements(e.sensorElementList, ns);
  // for…in, not Object.entries: the same own keys in the same order (plain JSON objects), without an array of pairs per event.
  let rest: string[] | undefined;
  for (const k in e) {
    const v = e[k];
    if (ORDERED.has(k) || IGNORED.has(k) || v === undefined) continue;
    rest ??= [];
    if (k === 'bizTransactionList') rest.push(typedList(k, 'bizTransaction', 'btt', v, ns));
    else if (k === 'sourceList') rest.push(typedList(k, 'source', 'sdt', v, ns));
    else if (k === 'destinationList') rest.push(typedList(k, 'destination', 'sdt', v, ns));
    else generic(keyName(k, ns), v, ns, rest);
  }
  return rest ? out + sortJoin(rest) : out;
}

/** The GS1 event hash ID of a pre-hash string. */
export function hashIdOfPrehash(prehash: string): string {
  return `ni:///sha-256;${sha256HexOfText(prehash)}?ver=CBV2.0`;
}

/** The GS1 event hash ID ("ni:///sha-256;…?ver=CBV2.0") of an EPCIS 2.0 event. */
export function eventHashId(event: { [k: string]: unknown }, opts: HashOptions = {}): string {
  return hashIdOfPrehash(eventPrehash(event, opts));
}

/** Exposed for tests: the value rules on their own. */
export const _canon = { value: (t: string, role?: Role) => canonValue(t, role, standard), time: canonTime };
