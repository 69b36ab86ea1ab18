// The project's one CBOR codec (RFC 8949), strict and deterministic.
//
// Why not cbor-x for the wire: the protocol hashes exact bytes (ARCHITECTURE §4),
// so every producer must emit RFC 8949 §4.2.1 deterministic encoding (shortest
// integers and floats, definite lengths, map keys sorted by their encoded bytes)
// and every consumer must be able to refuse anything else from a hostile peer
// (duplicate keys, unbounded nesting, lengths past the end, unexpected tags).
// cbor-x sorts no keys, does not pick the shortest float, rounds float32 on
// decode and builds typed arrays from tags 64..87; bolting checks onto it costs
// a second pass. This codec does it in one pass and is measured against cbor-x
// in `npm run bench -- protocol` (cbor-x remains the test oracle).
//
// Value mapping: unsigned/negative int <-> number (safe range only), bstr <->
// Uint8Array, tstr <-> string, array <-> Array, map <-> Map (plain objects are
// accepted on encode and become text-keyed maps), tag <-> Tag, false/true/null,
// floats <-> number (non-integral numbers, -0, NaN and ±Infinity only).
import { CborError } from './errors.js';
import { sortFew } from './sort.js';

export class Tag {
  constructor(
    readonly tag: number,
    readonly value: unknown,
  ) {}
}

/**
 * Marks a value to be encoded as JSON data (RFC 8949 §6.2): only null,
 * booleans, finite numbers, text, arrays and plain objects with text keys.
 * Records carry their EPCIS event this way; anything else is refused.
 */
export class Json {
  /** `name` starts the path named in errors (e.g. "event" → "event.sensorElementList"). */
  constructor(
    readonly value: unknown,
    readonly name = 'json',
  ) {}
}

export type CborMap = Map<unknown, unknown>;

// ---------------------------------------------------------------- encoding

const textEncoder = new TextEncoder();
const f32 = new Float32Array(1);
const f64 = new Float64Array(1);
const f64b = new Uint8Array(f64.buffer);

class Writer {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  /** Where the current item starts (earlier bytes belong to earlier results). */
  start = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    // Grow into a buffer of its own, keeping only the item being written.
    const used = this.pos - this.start;
    let size = Math.max(4096, (this.buf.length - this.start) * 2);
    while (size < used + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(this.start, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
    this.pos = used;
    this.start = 0;
  }
  head(major: number, arg: number): void {
    // RFC 8949 §4.2.1: the argument is always encoded in the shortest form.
    this.ensure(9);
    const m = major << 5;
    const b = this.buf;
    if (arg < 24) b[this.pos++] = m | arg;
    else if (arg < 0x100) {
      b[this.pos++] = m | 24;
      b[this.pos++] = arg;
    } else if (arg < 0x10000) {
      b[this.pos++] = m | 25;
      this.view.setUint16(this.pos, arg);
      this.pos += 2;
    } else if (arg < 0x100000000) {
      b[this.pos++] = m | 26;
      this.view.setUint32(this.pos, arg);
      this.pos += 4;
    } else {
      b[this.pos++] = m | 27;
      this.view.setUint32(this.pos, Math.floor(arg / 0x100000000));
      this.view.setUint32(this.pos + 4, arg >>> 0);
      this.pos += 8;
    }
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

function isWellFormedString(s: string): boolean {
  // A lone surrogate would be silently replaced by U+FFFD: refuse instead.
  const f = (s as { isWellFormed?: () => boolean }).isWellFormed;
  if (f) return f.call(s);
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

function writeText(w: Writer, s: string): void {
  const n = s.length;
  // Optimistic ASCII: one byte per char, written straight into the buffer;
  // on the first non-ASCII char, rewind and take the UTF-8 encoder.
  if (n < 0x10000) {
    const start = w.pos;
    w.head(3, n);
    w.ensure(n);
    const b = w.buf;
    let p = w.pos;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) break;
      b[p++] = c;
    }
    if (i === n) {
      w.pos = p;
      return;
    }
    w.pos = start;
  }
  if (!isWellFormedString(s)) throw new CborError('CBOR_UNSUPPORTED', 'text string has a lone surrogate (not valid UTF-8)', w.pos);
  const utf8 = textEncoder.encode(s);
  w.head(3, utf8.length);
  w.bytes(utf8);
}

/** Shortest IEEE 754 form that preserves the value (RFC 8949 §4.2.1, §3.3). */
function writeFloat(w: Writer, v: number): void {
  w.ensure(9);
  if (Number.isNaN(v)) {
    w.buf[w.pos++] = 0xf9; // canonical quiet NaN, §4.2.2
    w.buf[w.pos++] = 0x7e;
    w.buf[w.pos++] = 0x00;
    return;
  }
  const h = toHalf(v);
  if (h !== -1) {
    w.buf[w.pos++] = 0xf9;
    w.view.setUint16(w.pos, h);
    w.pos += 2;
    return;
  }
  f32[0] = v;
  if (f32[0] === v) {
    w.buf[w.pos++] = 0xfa;
    w.view.setFloat32(w.pos, v);
    w.pos += 4;
    return;
  }
  w.buf[w.pos++] = 0xfb;
  w.view.setFloat64(w.pos, v);
  w.pos += 8;
}

/** Half-precision bits of v if v is exactly representable, else -1. */
function toHalf(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  if (!Number.isFinite(v)) return v > 0 ? 0x7c00 : 0xfc00;
  f64[0] = v;
  const hi = (f64b[7] << 24) | (f64b[6] << 16) | (f64b[5] << 8) | f64b[4];
  const lo = (f64b[3] << 24) | (f64b[2] << 16) | (f64b[1] << 8) | f64b[0];
  const sign = (hi >>> 31) << 15;
  const exp = ((hi >>> 20) & 0x7ff) - 1023;
  const mantHi = hi & 0xfffff; // top 20 of 52 mantissa bits
  if (exp >= -14 && exp <= 15) {
    // normal half: 10 mantissa bits, the other 42 must be zero
    if (lo !== 0 || (mantHi & 0x3ff) !== 0) return -1;
    return sign | ((exp + 15) << 10) | (mantHi >>> 10);
  }
  if (exp >= -24 && exp < -14) {
    // subnormal half: value = m * 2^-24 with m < 1024
    const m = Math.abs(v) * 2 ** 24;
    if (!Number.isInteger(m)) return -1;
    return sign | m;
  }
  return -1;
}

/** Encoded-key comparison of RFC 8949 §4.2.1: bytewise lexicographic. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

const keyCache = new Map<string, Uint8Array>();
const keyWriter = new Writer(256);

function encodedKey(k: unknown): Uint8Array {
  if (typeof k === 'string') {
    const hit = keyCache.get(k);
    if (hit) return hit;
  }
  keyWriter.pos = 0;
  writeValue(keyWriter, k, 0);
  const out = keyWriter.buf.slice(0, keyWriter.pos);
  if (typeof k === 'string' && keyCache.size < 4096) keyCache.set(k, out);
  return out;
}

const MAX_ENCODE_DEPTH = 64;

/**
 * A Map. The protocol's maps have unsigned integer keys inserted in ascending
 * order, which is already RFC 8949 §4.2.1 order: written straight from the
 * Map, without an array of entries and a sort (both were a fifth of the
 * garbage of encoding a record). Any other Map takes the general path.
 */
function writeMap(w: Writer, m: Map<unknown, unknown>, depth: number): void {
  let prev = -1;
  for (const k of m.keys()) {
    if (typeof k !== 'number' || !Number.isSafeInteger(k) || k <= prev) return writeEntries(w, [...m.entries()], depth);
    prev = k;
  }
  w.head(5, m.size);
  m.forEach((v, k) => {
    w.head(0, k as number);
    writeValue(w, v, depth + 1);
  });
}

function writeEntries(w: Writer, entries: [unknown, unknown][], depth: number): void {
  w.head(5, entries.length);
  if (entries.length === 0) return;
  // Integer keys (the protocol's maps) sort without encoding them first.
  let allUint = true;
  for (const [k] of entries) if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0) allUint = false;
  if (allUint) {
    if (entries.length <= 16) sortFew(entries, (x, y) => (x[0] as number) < (y[0] as number));
    else entries.sort((a, b) => (a[0] as number) - (b[0] as number));
    for (let i = 0; i < entries.length; i++) {
      if (i > 0 && entries[i][0] === entries[i - 1][0]) throw new CborError('CBOR_UNSUPPORTED', `duplicate map key ${entries[i][0]}`, w.pos);
      w.head(0, entries[i][0] as number);
      writeValue(w, entries[i][1], depth + 1);
    }
    return;
  }
  const keyed = entries.map(([k, v]) => ({ k: encodedKey(k), v }));
  keyed.sort((a, b) => compareBytes(a.k, b.k));
  for (let i = 0; i < keyed.length; i++) {
    if (i > 0 && compareBytes(keyed[i].k, keyed[i - 1].k) === 0) throw new CborError('CBOR_UNSUPPORTED', 'duplicate map key', w.pos);
    w.bytes(keyed[i].k);
    writeValue(w, keyed[i].v, depth + 1);
  }
}

// ---- JSON mode: objects are sorted once per key set ("shape") and cached ----

interface Shape {
  /** Keys in RFC 8949 §4.2.1 order. */
  keys: string[];
  /** Their encodings, same order. */
  enc: Uint8Array[];
}
// A trie over the key sequence: interned key strings hash once, so finding a
// known shape allocates nothing (a joined-string key cost 15% of encoding).
interface ShapeNode {
  next: Map<string, ShapeNode>;
  shape?: Shape;
}
const shapeRoot: ShapeNode = { next: new Map() };
let shapeNodes = 0;

function buildShape(keys: string[]): Shape {
  const enc = keys.map((k) => encodedKey(k));
  const order = keys.map((_, i) => i).sort((a, b) => compareBytes(enc[a], enc[b]));
  for (let i = 1; i < order.length; i++)
    if (compareBytes(enc[order[i]], enc[order[i - 1]]) === 0) throw new CborError('CBOR_UNSUPPORTED', 'duplicate map key', 0);
  return { keys: order.map((i) => keys[i]), enc: order.map((i) => enc[i]) };
}

function shapeOf(keys: string[]): Shape {
  let node = shapeRoot;
  for (let i = 0; i < keys.length; i++) {
    let c = node.next.get(keys[i]);
    if (c === undefined) {
      // Bounded: objects with ever-new keys are sorted every time instead.
      if (shapeNodes >= 16_384) return buildShape(keys);
      c = { next: new Map() };
      node.next.set(keys[i], c);
      shapeNodes++;
    }
    node = c;
  }
  return (node.shape ??= buildShape(keys));
}

class JsonPathError extends CborError {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super('CBOR_UNSUPPORTED', `${path}: ${reason}`, 0);
  }
}

function notJson(path: string, why: string): never {
  throw new JsonPathError(path, why);
}

/**
 * Encodings of frozen JSON subtrees. Event builders share immutable parts
 * between events (the @context, asset lists, places): frozen all the way
 * down, such a part always encodes to the same bytes, so they are written
 * once and copied after (a WeakMap: the entry goes with the object).
 */
const frozenJson = new WeakMap<object, Uint8Array>();

function deepFrozen(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return true;
  if (!Object.isFrozen(v)) return false;
  for (const x of Array.isArray(v) ? v : Object.values(v)) if (!deepFrozen(x)) return false;
  return true;
}

function writeJson(w: Writer, v: unknown, depth: number, path: string): void {
  if (typeof v === 'object' && v !== null && depth > 0 && Object.isFrozen(v)) {
    const hit = frozenJson.get(v);
    if (hit) return w.bytes(hit);
    // Relative to the item's start: a writer that grows moves the item to offset 0.
    const rel = w.pos - w.start;
    writeJsonValue(w, v, depth, path);
    if (deepFrozen(v)) frozenJson.set(v, w.buf.slice(w.start + rel, w.pos));
    return;
  }
  writeJsonValue(w, v, depth, path);
}

function writeJsonValue(w: Writer, v: unknown, depth: number, path: string): void {
  if (depth > MAX_ENCODE_DEPTH) throw new CborError('CBOR_LIMIT', `nesting deeper than ${MAX_ENCODE_DEPTH}`, w.pos);
  switch (typeof v) {
    case 'string':
      return writeText(w, v);
    case 'number':
      if (!Number.isFinite(v)) notJson(path, 'JSON has no NaN or Infinity');
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
        if (v >= 0) w.head(0, v);
        else w.head(1, -1 - v);
      } else writeFloat(w, v);
      return;
    case 'boolean':
      w.ensure(1);
      w.buf[w.pos++] = v ? 0xf5 : 0xf4;
      return;
    case 'object': {
      if (v === null) {
        w.ensure(1);
        w.buf[w.pos++] = 0xf6;
        return;
      }
      if (Array.isArray(v)) {
        w.head(4, v.length);
        for (let i = 0; i < v.length; i++) writeJson(w, v[i], depth + 1, path);
        return;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) notJson(path, `${(v as object).constructor?.name ?? 'object'} is not a JSON value`);
      const o = v as Record<string, unknown>;
      const sh = shapeOf(Object.keys(o));
      w.head(5, sh.keys.length);
      for (let i = 0; i < sh.keys.length; i++) {
        w.bytes(sh.enc[i]);
        const k = sh.keys[i];
        const x = o[k];
        // Paths are built for nested objects and for errors only: the hot path stays allocation-free.
        if (typeof x === 'object' && x !== null) writeJson(w, x, depth + 1, `${path}.${k}`);
        else if (typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x))) writeJson(w, x, depth + 1, path);
        else notJson(`${path}.${k}`, x === undefined ? 'undefined is not JSON' : typeof x === 'number' ? 'JSON has no NaN or Infinity' : `${typeof x} is not JSON`);
      }
      return;
    }
    default:
      return notJson(path, `${typeof v} is not JSON`);
  }
}

function writeValue(w: Writer, v: unknown, depth: number): void {
  if (depth > MAX_ENCODE_DEPTH) throw new CborError('CBOR_LIMIT', `nesting deeper than ${MAX_ENCODE_DEPTH}`, w.pos);
  switch (typeof v) {
    case 'number':
      // Safe integers are CBOR integers; anything else (fractions, -0, huge
      // magnitudes that are floats in JS anyway) takes the shortest float.
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
        if (v >= 0) w.head(0, v);
        else w.head(1, -1 - v);
      } else writeFloat(w, v);
      return;
    case 'bigint':
      if (v >= 0n && v <= 0xffffffffffffffffn) return writeBigHead(w, 0, v);
      if (v < 0n && v >= -0x10000000000000000n) return writeBigHead(w, 1, -1n - v);
      throw new CborError('CBOR_UNSUPPORTED', 'integer outside 64 bits', w.pos);
    case 'string':
      return writeText(w, v);
    case 'boolean':
      w.ensure(1);
      w.buf[w.pos++] = v ? 0xf5 : 0xf4;
      return;
    case 'object':
      if (v === null) {
        w.ensure(1);
        w.buf[w.pos++] = 0xf6;
        return;
      }
      if (v instanceof Uint8Array) {
        w.head(2, v.length);
        w.bytes(v);
        return;
      }
      if (Array.isArray(v)) {
        w.head(4, v.length);
        for (let i = 0; i < v.length; i++) writeValue(w, v[i], depth + 1);
        return;
      }
      if (v instanceof Map) return writeMap(w, v, depth);
      if (v instanceof Tag) {
        w.head(6, v.tag);
        return writeValue(w, v.value, depth + 1);
      }
      if (v instanceof Json) return writeJson(w, v.value, depth + 1, v.name);
      if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
        const entries = Object.entries(v as Record<string, unknown>);
        for (const e of entries)
          if (e[1] === undefined) throw new CborError('CBOR_UNSUPPORTED', `key ${JSON.stringify(e[0])} is undefined`, w.pos);
        return writeEntries(w, entries, depth);
      }
      throw new CborError('CBOR_UNSUPPORTED', `cannot encode ${(v as object).constructor?.name ?? 'object'}`, w.pos);
    default:
      throw new CborError('CBOR_UNSUPPORTED', `cannot encode ${typeof v}`, w.pos);
  }
}

function writeBigHead(w: Writer, major: number, arg: bigint): void {
  if (arg <= BigInt(Number.MAX_SAFE_INTEGER)) return w.head(major, Number(arg));
  w.ensure(9);
  w.buf[w.pos++] = (major << 5) | 27;
  w.view.setBigUint64(w.pos, arg);
  w.pos += 8;
}

// Results are views into a shared 64 KiB pool (as Node's Buffer pool and
// cbor-x do): a fresh ArrayBuffer per record cost ~18% of encoding. Results
// never overlap; an item that outgrows the pool gets a buffer of its own.
const POOL_SIZE = 64 * 1024;
const sharedWriter = new Writer(POOL_SIZE);
let encoding = false;

/** Deterministic encoding (RFC 8949 §4.2.1) of a value. The result is a view of its own bytes (byteOffset may be > 0). */
export function encode(value: unknown): Uint8Array {
  if (encoding) {
    // Re-entrant call (a getter calling encode): a private writer.
    const w = new Writer(256);
    writeValue(w, value, 0);
    return w.buf.slice(0, w.pos);
  }
  encoding = true;
  const w = sharedWriter;
  const pool = w.buf;
  const start = w.pos;
  w.start = start;
  try {
    writeValue(w, value, 0);
    const out = w.buf.subarray(w.start, w.pos);
    if (w.buf !== pool) {
      // Outgrew the pool: `out` owns its (private) buffer; start a fresh pool.
      w.buf = new Uint8Array(POOL_SIZE);
      w.view = new DataView(w.buf.buffer);
      w.pos = 0;
    } else {
      w.pos = (w.pos + 7) & ~7;
      if (w.pos > POOL_SIZE - 4096) {
        w.buf = new Uint8Array(POOL_SIZE);
        w.view = new DataView(w.buf.buffer);
        w.pos = 0;
      }
    }
    return out;
  } catch (e) {
    if (w.buf !== pool) {
      w.buf = pool;
      w.view = new DataView(pool.buffer);
    }
    w.pos = start;
    throw e;
  } finally {
    w.start = 0;
    encoding = false;
  }
}

// ---------------------------------------------------------------- decoding

export interface DecodeOptions {
  /** Require RFC 8949 §4.2.1 deterministic encoding (default true). */
  canonical?: boolean;
  /** Tags that may appear; any other tag is refused (default none). */
  tags?: readonly number[];
  /** Maximum nesting of arrays, maps and tags (default 32). */
  maxDepth?: number;
  /** Maximum input length in bytes (default 16 MiB). */
  maxBytes?: number;
  /** Maximum number of data items in total (default maxBytes). */
  maxItems?: number;
  /**
   * Integer keys of the top-level map whose values are JSON data: decoded
   * straight into plain objects and arrays, refusing byte strings, tags,
   * undefined, NaN/Infinity, non-text keys and "__proto__" (record.ts uses
   * this for the EPCIS event, saving a second walk over it).
   */
  jsonKeys?: readonly number[];
}

const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  pos = 0;
  items = 0;
  private _view: DataView | undefined;
  /** Floats only: most items need no DataView (one per decode cost a few %). */
  get view(): DataView {
    return (this._view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }
  constructor(
    readonly buf: Uint8Array,
    readonly canonical: boolean,
    readonly tags: readonly number[],
    readonly maxDepth: number,
    readonly maxItems: number,
    readonly jsonKeys: readonly number[] = [],
  ) {
  }
  fail(code: 'CBOR_MALFORMED' | 'CBOR_NONCANONICAL' | 'CBOR_LIMIT' | 'CBOR_UNSUPPORTED', msg: string, at = this.pos): never {
    throw new CborError(code, msg, at);
  }
  need(n: number): void {
    if (n > this.buf.length - this.pos) this.fail('CBOR_MALFORMED', `truncated: ${n} more bytes needed, ${this.buf.length - this.pos} left`);
  }
  /** Reads the argument of a head; returns a number (or bigint past 2^53). */
  arg(info: number, start: number): number | bigint {
    if (info < 24) return info;
    let v: number | bigint;
    switch (info) {
      case 24:
        this.need(1);
        v = this.buf[this.pos++];
        if (this.canonical && v < 24) this.fail('CBOR_NONCANONICAL', 'integer argument not in its shortest form', start);
        return v;
      case 25:
        this.need(2);
        v = (this.buf[this.pos] << 8) | this.buf[this.pos + 1];
        this.pos += 2;
        if (this.canonical && v < 0x100) this.fail('CBOR_NONCANONICAL', 'integer argument not in its shortest form', start);
        return v;
      case 26:
        this.need(4);
        v = u32at(this.buf, this.pos);
        this.pos += 4;
        if (this.canonical && v < 0x10000) this.fail('CBOR_NONCANONICAL', 'integer argument not in its shortest form', start);
        return v;
      case 27: {
        this.need(8);
        const hi = u32at(this.buf, this.pos);
        const lo = u32at(this.buf, this.pos + 4);
        this.pos += 8;
        if (this.canonical && hi === 0) this.fail('CBOR_NONCANONICAL', 'integer argument not in its shortest form', start);
        if (hi < 0x200000) return hi * 0x100000000 + lo;
        return (BigInt(hi) << 32n) | BigInt(lo);
      }
      case 31:
        return this.fail('CBOR_UNSUPPORTED', 'indefinite-length items are not allowed', start);
      default:
        return this.fail('CBOR_MALFORMED', `reserved additional information ${info}`, start);
    }
  }
  length(info: number, start: number): number {
    const n = this.arg(info, start);
    if (typeof n !== 'number' || n > this.buf.length - this.pos)
      this.fail('CBOR_MALFORMED', `length ${n} runs past the end of the input`, start);
    return n as number;
  }
  value(depth: number): unknown {
    if (++this.items > this.maxItems) this.fail('CBOR_LIMIT', `more than ${this.maxItems} data items`);
    this.need(1);
    const start = this.pos;
    const ib = this.buf[this.pos++];
    const major = ib >> 5;
    const info = ib & 0x1f;
    switch (major) {
      case 0: {
        const v = this.arg(info, start);
        if (typeof v !== 'number') this.fail('CBOR_UNSUPPORTED', 'integer larger than 2^53-1', start);
        return v;
      }
      case 1: {
        const v = this.arg(info, start);
        if (typeof v !== 'number' || v >= Number.MAX_SAFE_INTEGER) this.fail('CBOR_UNSUPPORTED', 'integer smaller than -(2^53-1)', start);
        return -1 - (v as number);
      }
      case 2: {
        const n = this.length(info, start);
        const out = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        return out;
      }
      case 3: {
        const n = this.length(info, start);
        const s = this.text(this.pos, n);
        this.pos += n;
        return s;
      }
      case 4: {
        const n = this.length(info, start); // each item is ≥ 1 byte, so n is bounded by the input
        if (depth >= this.maxDepth) this.fail('CBOR_LIMIT', `nesting deeper than ${this.maxDepth}`, start);
        const out = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
        return out;
      }
      case 5: {
        const n = this.arg(info, start);
        if (typeof n !== 'number' || n * 2 > this.buf.length - this.pos)
          this.fail('CBOR_MALFORMED', `map of ${n} entries runs past the end of the input`, start);
        if (depth >= this.maxDepth) this.fail('CBOR_LIMIT', `nesting deeper than ${this.maxDepth}`, start);
        const out = new Map<unknown, unknown>();
        let prevStart = -1;
        let prevEnd = -1;
        for (let i = 0; i < (n as number); i++) {
          const ks = this.pos;
          const k = this.value(depth + 1);
          const ke = this.pos;
          if (typeof k !== 'number' && typeof k !== 'string') this.fail('CBOR_UNSUPPORTED', 'map keys must be integers or text strings', ks);
          if (this.canonical && prevStart >= 0) {
            const c = compareRange(this.buf, prevStart, prevEnd, ks, ke);
            if (c === 0) this.fail('CBOR_MALFORMED', 'duplicate map key', ks);
            if (c > 0) this.fail('CBOR_NONCANONICAL', 'map keys not in ascending order', ks);
          }
          if (out.has(k)) this.fail('CBOR_MALFORMED', 'duplicate map key', ks);
          prevStart = ks;
          prevEnd = ke;
          if (depth === 0 && typeof k === 'number' && this.jsonKeys.includes(k)) {
            this.jsonRoot = depth + 1;
            this.jsonPath[depth] = k;
            out.set(k, this.json(depth + 1));
          } else out.set(k, this.value(depth + 1));
        }
        return out;
      }
      case 6: {
        const t = this.arg(info, start);
        if (typeof t !== 'number' || !this.tags.includes(t)) this.fail('CBOR_UNSUPPORTED', `tag ${t} is not allowed here`, start);
        if (depth >= this.maxDepth) this.fail('CBOR_LIMIT', `nesting deeper than ${this.maxDepth}`, start);
        return new Tag(t as number, this.value(depth + 1));
      }
      default:
        return this.simple(info, start);
    }
  }
  /** A JSON-only data item (see DecodeOptions.jsonKeys); `path` names it in errors. */
  /** Object keys repeat across records: intern short ones by their bytes (as cbor-x does). */
  key(at: number, n: number): string {
    const b = this.buf;
    let h = n;
    for (let i = at; i < at + n; i++) h = Math.imul(h ^ b[i], 0x01000193);
    const slot = (h >>> 0) & (KEY_CACHE_SIZE - 1);
    const e = keyCacheBytes[slot];
    if (e !== undefined && e.length === n) {
      let same = true;
      for (let i = 0; i < n; i++)
        if (e[i] !== b[at + i]) {
          same = false;
          break;
        }
      if (same) return keyCacheStrings[slot];
    }
    const s = this.text(at, n);
    keyCacheBytes[slot] = b.slice(at, at + n);
    keyCacheStrings[slot] = s;
    return s;
  }
  /** Keys from the JSON root down to the item being read; joined only for error messages. */
  readonly jsonPath: (string | number)[] = [];
  private jsonRoot = 0;
  /** The path of the item read at `depth` (keys and indexes are stored per depth: no push/pop per key). */
  jpath(depth: number): string {
    let out = '';
    for (let d = this.jsonRoot - 1; d < depth; d++) {
      const p = this.jsonPath[d];
      out += d === this.jsonRoot - 1 ? String(p) : typeof p === 'number' ? `[${p}]` : `.${p}`;
    }
    return out;
  }
  json(depth: number): unknown {
    if (++this.items > this.maxItems) this.fail('CBOR_LIMIT', `more than ${this.maxItems} data items`);
    this.need(1);
    const start = this.pos;
    const ib = this.buf[this.pos++];
    const major = ib >> 5;
    const info = ib & 0x1f;
    switch (major) {
      case 0:
        if (info < 24) return info;
        this.pos = start;
        this.items--;
        return this.value(depth);
      case 1:
        if (info < 24) return -1 - info;
        this.pos = start;
        this.items--;
        return this.value(depth);
      case 3: {
        const n = this.length(info, start);
        const s = this.text(this.pos, n);
        this.pos += n;
        return s;
      }
      case 4: {
        const n = this.length(info, start);
        if (depth >= this.maxDepth) this.fail('CBOR_LIMIT', `nesting deeper than ${this.maxDepth}`, start);
        const out = new Array(n);
        for (let i = 0; i < n; i++) {
          this.jsonPath[depth] = i;
          out[i] = this.json(depth + 1);
        }
        return out;
      }
      case 5: {
        const n = this.arg(info, start);
        if (typeof n !== 'number' || n * 2 > this.buf.length - this.pos) this.fail('CBOR_MALFORMED', `map of ${n} entries runs past the end of the input`, start);
        if (depth >= this.maxDepth) this.fail('CBOR_LIMIT', `nesting deeper than ${this.maxDepth}`, start);
        const out: Record<string, unknown> = {};
        let prevStart = -1;
        let prevEnd = -1;
        for (let i = 0; i < (n as number); i++) {
          const ks = this.pos;
          this.need(1);
          const kb = this.buf[this.pos++];
          if (kb >> 5 !== 3) this.fail('CBOR_UNSUPPORTED', `${this.jpath(depth)}: JSON object keys must be text`, ks);
          const kn = this.length(kb & 0x1f, ks);
          const k = kn <= 32 ? this.key(this.pos, kn) : this.text(this.pos, kn);
          this.pos += kn;
          const ke = this.pos;
          if (prevStart >= 0) {
            const c = compareRange(this.buf, prevStart, prevEnd, ks, ke);
            if (c === 0) this.fail('CBOR_MALFORMED', `${this.jpath(depth)}: duplicate key ${JSON.stringify(k)}`, ks);
            if (c > 0 && this.canonical) this.fail('CBOR_NONCANONICAL', `${this.jpath(depth)}: map keys not in ascending order`, ks);
          }
          if (k === '__proto__') this.fail('CBOR_UNSUPPORTED', `${this.jpath(depth)}: key "__proto__" is not allowed`, ks);
          if (!this.canonical && Object.prototype.hasOwnProperty.call(out, k)) this.fail('CBOR_MALFORMED', `${this.jpath(depth)}: duplicate key ${JSON.stringify(k)}`, ks);
          prevStart = ks;
          prevEnd = ke;
          this.jsonPath[depth] = k;
          out[k] = this.json(depth + 1);
        }
        return out;
      }
      case 7: {
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        if (info === 23) this.fail('CBOR_UNSUPPORTED', `${this.jpath(depth)}: undefined is not JSON`, start);
        this.pos = start;
        this.items--;
        const v = this.value(depth);
        if (typeof v === 'number' && !Number.isFinite(v)) this.fail('CBOR_UNSUPPORTED', `${this.jpath(depth)}: JSON has no NaN or Infinity`, start);
        return v;
      }
      default:
        return this.fail('CBOR_UNSUPPORTED', `${this.jpath(depth)}: ${major === 2 ? 'a byte string' : 'a tag'} is not JSON`, start);
    }
  }
  simple(info: number, start: number): unknown {
    switch (info) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 25: {
        this.need(2);
        const bits = (this.buf[this.pos] << 8) | this.buf[this.pos + 1];
        this.pos += 2;
        const v = fromHalf(bits);
        if (this.canonical && Number.isNaN(v) && bits !== 0x7e00) this.fail('CBOR_NONCANONICAL', 'NaN not in its canonical form f97e00', start);
        this.checkFloat(v, start);
        return v;
      }
      case 26: {
        this.need(4);
        const v = this.view.getFloat32(this.pos);
        this.pos += 4;
        if (this.canonical && (toHalf(v) !== -1 || Number.isNaN(v))) this.fail('CBOR_NONCANONICAL', 'float not in its shortest form', start);
        this.checkFloat(v, start);
        return v;
      }
      case 27: {
        this.need(8);
        const v = this.view.getFloat64(this.pos);
        this.pos += 8;
        f32[0] = v;
        if (this.canonical && (f32[0] === v || Number.isNaN(v))) this.fail('CBOR_NONCANONICAL', 'float not in its shortest form', start);
        this.checkFloat(v, start);
        return v;
      }
      case 31:
        return this.fail('CBOR_MALFORMED', 'unexpected break code', start);
      default:
        return this.fail('CBOR_UNSUPPORTED', `simple value ${info < 24 ? info : 'with extra byte'} is not allowed`, start);
    }
  }
  checkFloat(v: number, start: number): void {
    // This codec encodes integral numbers as integers, so an integral float is
    // not what it would have produced: not deterministic for this protocol.
    if (this.canonical && Number.isSafeInteger(v) && !Object.is(v, -0))
      this.fail('CBOR_NONCANONICAL', 'integral value encoded as a float', start);
  }
  text(at: number, n: number): string {
    // Short ASCII strings are cheaper to build by hand; from about 8 bytes on,
    // the fatal TextDecoder (which also validates UTF-8) is faster (measured
    // on Node 20: ~18M decodes/s whatever the length, vs ~9M for 24 bytes by hand).
    if (n < 8) {
      const b = this.buf;
      let s = '';
      for (let i = at; i < at + n; i++) {
        const c = b[i];
        if (c > 0x7f) return this.textSlow(at, n);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.textSlow(at, n);
  }
  textSlow(at: number, n: number): string {
    try {
      return textDecoder.decode(this.buf.subarray(at, at + n));
    } catch {
      return this.fail('CBOR_MALFORMED', 'text string is not valid UTF-8', at);
    }
  }
}

function u32at(b: Uint8Array, p: number): number {
  return b[p] * 0x1000000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
}

const KEY_CACHE_SIZE = 1024;
const keyCacheBytes: (Uint8Array | undefined)[] = new Array(KEY_CACHE_SIZE);
const keyCacheStrings: string[] = new Array(KEY_CACHE_SIZE);

function compareRange(b: Uint8Array, as: number, ae: number, bs: number, be: number): number {
  const n = Math.min(ae - as, be - bs);
  for (let i = 0; i < n; i++) if (b[as + i] !== b[bs + i]) return b[as + i] - b[bs + i];
  return ae - as - (be - bs);
}

function fromHalf(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Decodes exactly one CBOR data item that spans all of `bytes`. Byte strings
 * are returned as views into `bytes` (zero copy), so callers can hash exactly
 * the bytes they received. Any violation throws a CborError; nothing else escapes.
 */
export function decode(bytes: Uint8Array, opts: DecodeOptions = {}): unknown {
  if (!(bytes instanceof Uint8Array)) throw new CborError('CBOR_MALFORMED', 'input is not a byte array', 0);
  const maxBytes = opts.maxBytes ?? 16 << 20;
  if (bytes.length > maxBytes) throw new CborError('CBOR_LIMIT', `input of ${bytes.length} bytes exceeds the limit of ${maxBytes}`, 0);
  if (bytes.length === 0) throw new CborError('CBOR_MALFORMED', 'empty input', 0);
  const r = new Reader(bytes, opts.canonical ?? true, opts.tags ?? [], opts.maxDepth ?? 32, opts.maxItems ?? maxBytes, opts.jsonKeys);
  let v: unknown;
  try {
    v = r.value(0);
  } catch (e) {
    if (e instanceof CborError) throw e;
    // Defence in depth: nothing but a CborError may escape the decoder.
    throw new CborError('CBOR_MALFORMED', `undecodable input (${(e as Error)?.message ?? e})`, r.pos);
  }
  if (r.pos !== bytes.length) throw new CborError('CBOR_MALFORMED', `${bytes.length - r.pos} trailing bytes after the data item`, r.pos);
  return v;
}

/** Converts a decoded text-keyed map tree to plain JSON-like objects (for EPCIS events). */
export function toPlain(v: unknown, field = 'value'): unknown {
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) {
      if (typeof k !== 'string') throw new CborError('CBOR_UNSUPPORTED', `${field}: JSON object keys must be text`, 0);
      if (k === '__proto__') throw new CborError('CBOR_UNSUPPORTED', `${field}: key "__proto__" is not allowed`, 0);
      o[k] = toPlain(x, `${field}.${k}`);
    }
    return o;
  }
  if (Array.isArray(v)) return v.map((x, i) => toPlain(x, `${field}[${i}]`));
  return v;
}
