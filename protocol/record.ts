// Record: one tracking event (ARCHITECTURE §4.1, normative).
//
//   Record = { 1: device_id tstr, 2: seq uint, 3: prev bstr(32), 4: time uint,
//              5: event map, ? 6: source map }
//
// Records are hashed as the exact bytes received (the chain link `prev` of the
// next record, and the leaves of the batch tree), so decoding insists on the
// deterministic encoding: two encoders cannot produce two hashes of one record.
import { decode, encode, toPlain } from './cbor.js';
import { abytes, amap, akeys, astr, auint, ValidationError } from './errors.js';
import { MAX_EVENT_DEPTH, MAX_RECORD_BYTES } from './limits.js';
import { sha256, ZERO32 } from './bytes.js';

/** [a-z0-9][a-z0-9_-]{0,63}: safe as an MQTT topic level and an etcd key part. */
export const DEVICE_ID_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };

export interface Record {
  deviceId: string;
  /** 1, 2, 3 … per device. */
  seq: number;
  /** SHA-256 of the previous record's bytes; 32 zero bytes for seq 1. */
  prev: Uint8Array;
  /** ms since the Unix epoch, gateway clock. */
  time: number;
  /** The EPCIS 2.0 event as its JSON object. */
  event: JsonObject;
  /** Provenance: sensor id, firmware boot id, frame seq … */
  source?: JsonObject;
}

export function assertDeviceId(v: unknown, field = 'device_id'): string {
  return astr(v, field, DEVICE_ID_RE, '[a-z0-9][a-z0-9_-]{0,63}');
}

/** Checks that a decoded value is JSON: text-keyed maps, no bytes, no tags, finite numbers. */
function assertJson(v: unknown, field: string): void {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ValidationError(field, 'JSON has no NaN or Infinity');
    return;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) assertJson(v[i], `${field}[${i}]`);
    return;
  }
  if (v instanceof Map) {
    for (const [k, x] of v) {
      if (typeof k !== 'string') throw new ValidationError(field, 'JSON object keys must be text');
      assertJson(x, `${field}.${k}`);
    }
    return;
  }
  throw new ValidationError(field, 'not a JSON value (byte string or tag)');
}

function assertJsonObject(v: unknown, field: string): void {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array)
    throw new ValidationError(field, 'expected a JSON object');
  const check = (x: unknown, f: string): void => {
    if (x === null || typeof x === 'boolean' || typeof x === 'string') return;
    if (typeof x === 'number') {
      if (!Number.isFinite(x)) throw new ValidationError(f, 'JSON has no NaN or Infinity');
      return;
    }
    if (Array.isArray(x)) return x.forEach((y, i) => check(y, `${f}[${i}]`));
    if (typeof x === 'object' && !(x instanceof Uint8Array) && !(x instanceof Map)) {
      for (const [k, y] of Object.entries(x)) {
        if (y === undefined) throw new ValidationError(`${f}.${k}`, 'undefined is not JSON');
        check(y, `${f}.${k}`);
      }
      return;
    }
    throw new ValidationError(f, 'not a JSON value');
  };
  check(v, field);
}

export function encodeRecord(r: Record): Uint8Array {
  assertDeviceId(r.deviceId, 'record.device_id');
  auint(r.seq, 'record.seq', 1);
  abytes(r.prev, 'record.prev', 32);
  auint(r.time, 'record.time');
  assertJsonObject(r.event, 'record.event');
  const m = new Map<number, unknown>([
    [1, r.deviceId],
    [2, r.seq],
    [3, r.prev],
    [4, r.time],
    [5, r.event],
  ]);
  if (r.source !== undefined) {
    assertJsonObject(r.source, 'record.source');
    m.set(6, r.source);
  }
  const bytes = encode(m);
  if (bytes.length > MAX_RECORD_BYTES) throw new ValidationError('record', `${bytes.length} bytes exceeds the limit of ${MAX_RECORD_BYTES}`);
  return bytes;
}

export function decodeRecord(bytes: Uint8Array): Record {
  abytes(bytes, 'record');
  if (bytes.length > MAX_RECORD_BYTES) throw new ValidationError('record', `${bytes.length} bytes exceeds the limit of ${MAX_RECORD_BYTES}`);
  const m = amap(decode(bytes, { maxBytes: MAX_RECORD_BYTES, maxDepth: MAX_EVENT_DEPTH }), 'record');
  akeys(m, 'record', [1, 2, 3, 4, 5], [6]);
  const seq = auint(m.get(2), 'record.seq', 1);
  const prev = abytes(m.get(3), 'record.prev', 32);
  if (seq === 1 && !prev.every((b) => b === 0)) throw new ValidationError('record.prev', 'must be 32 zero bytes for seq 1');
  const event = m.get(5);
  if (!(event instanceof Map)) throw new ValidationError('record.event', 'expected a map');
  assertJson(event, 'record.event');
  const r: Record = {
    deviceId: assertDeviceId(m.get(1), 'record.device_id'),
    seq,
    prev,
    time: auint(m.get(4), 'record.time'),
    event: toPlain(event) as JsonObject,
  };
  if (m.has(6)) {
    const source = m.get(6);
    if (!(source instanceof Map)) throw new ValidationError('record.source', 'expected a map');
    assertJson(source, 'record.source');
    r.source = toPlain(source) as JsonObject;
  }
  return r;
}

/** The record's hash: what the next record's `prev` holds. */
export function recordHash(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

/** The `prev` of record seq 1. */
export const GENESIS_PREV = ZERO32;
