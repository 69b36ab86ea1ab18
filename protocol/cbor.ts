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

export class Tag {
  constructor(
    readonly tag: number,
    readonly value: unknown,
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
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
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
  let ascii = n < 64;
  if (ascii) {
    for (let i = 0; i < n; i++)
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
  }
  if (ascii) {
    w.head(3, n);
    w.ensure(n);
    const b = w.buf;
    let p = w.pos;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    w.pos = p;
    return;
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

function writeEntries(w: Writer, entries: [unknown, unknown][], depth: number): void {
  w.head(5, entries.length);
  if (entries.length === 0) return;
  // Integer keys (the protocol's maps) sort without encoding them first.
  let allUint = true;
  for (const [k] of entries) if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0) allUint = false;
  if (allUint) {
    entries.sort((a, b) => (a[0] as number) - (b[0] as number));
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
        for (const x of v) writeValue(w, x, depth + 1);
        return;
      }
      if (v instanceof Map) return writeEntries(w, [...v.entries()], depth);
      if (v instanceof Tag) {
        w.head(6, v.tag);
        return writeValue(w, v.value, depth + 1);
      }
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

const sharedWriter = new Writer(4096);
let encoding = false;

/** Deterministic encoding (RFC 8949 §4.2.1) of a value. Returns fresh bytes. */
export function encode(value: unknown): Uint8Array {
  // The shared writer avoids an allocation per call; a re-entrant call (a
  // getter calling encode) gets its own.
  const w = encoding ? new Writer(256) : sharedWriter;
  const outer = !encoding;
  encoding = true;
  try {
    w.pos = 0;
    writeValue(w, value, 0);
    return w.buf.slice(0, w.pos);
  } finally {
    if (outer) {
      encoding = false;
      if (sharedWriter.buf.length > 1 << 20) {
        sharedWriter.buf = new Uint8Array(4096);
        sharedWriter.view = new DataView(sharedWriter.buf.buffer);
      }
    }
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
}

const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  pos = 0;
  items = 0;
  readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    readonly canonical: boolean,
    readonly tags: readonly number[],
    readonly maxDepth: number,
    readonly maxItems: number,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
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
        v = this.view.getUint16(this.pos);
        this.pos += 2;
        if (this.canonical && v < 0x100) this.fail('CBOR_NONCANONICAL', 'integer argument not in its shortest form', start);
        return v;
      case 26:
        this.need(4);
        v = this.view.getUint32(this.pos);
        this.pos += 4;
        if (this.canonical && v < 0x10000) this.fail('CBOR_NONCANONICAL', 'integer argument not in its shortest form', start);
        return v;
      case 27: {
        this.need(8);
        const hi = this.view.getUint32(this.pos);
        const lo = this.view.getUint32(this.pos + 4);
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
          out.set(k, this.value(depth + 1));
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
        const bits = this.view.getUint16(this.pos);
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
    if (n < 32) {
      // Short ASCII fast path; anything else goes through the fatal decoder.
      let s = '';
      const b = this.buf;
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
  const r = new Reader(bytes, opts.canonical ?? true, opts.tags ?? [], opts.maxDepth ?? 32, opts.maxItems ?? maxBytes);
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
