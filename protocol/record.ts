// Record: one tracking event (ARCHITECTURE §4.1, normative).
//
//   Record = { 1: device_id tstr, 2: seq uint, 3: prev bstr(32), 4: time uint,
//              5: event map, ? 6: source map }
//
// Records are hashed as the exact bytes received (the chain link `prev` of the
// next record, and the leaves of the batch tree), so decoding insists on the
// deterministic encoding: two encoders cannot produce two hashes of one record.
import { decode, encode, Json } from './cbor.js';
import { abytes, amap, akeys, astr, auint, CborError, ValidationError } from './errors.js';
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

export function encodeRecord(r: Record): Uint8Array {
  assertDeviceId(r.deviceId, 'record.device_id');
  auint(r.seq, 'record.seq', 1);
  abytes(r.prev, 'record.prev', 32);
  auint(r.time, 'record.time');
  jsonObject(r.event, 'record.event');
  const m = new Map<number, unknown>([
    [1, r.deviceId],
    [2, r.seq],
    [3, r.prev],
    [4, r.time],
    [5, new Json(r.event, 'event')],
  ]);
  if (r.source !== undefined) {
    jsonObject(r.source, 'record.source');
    m.set(6, new Json(r.source, 'source'));
  }
  let bytes: Uint8Array;
  try {
    bytes = encode(m);
  } catch (e) {
    throw asField(e, 'record');
  }
  if (bytes.length > MAX_RECORD_BYTES) throw new ValidationError('record', `${bytes.length} bytes exceeds the limit of ${MAX_RECORD_BYTES}`);
  return bytes;
}

function jsonObject(v: unknown, field: string): void {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype)
    throw new ValidationError(field, 'expected a JSON object');
}

/** Turns a JSON-mode codec error ("event.a.b: why", or "5.a.b: why" from the decoder) into a ValidationError naming the record field. */
function asField(e: unknown, base: string): unknown {
  if (!(e instanceof CborError)) return e;
  const m = /^(event|source|5|6)((?:[.[][^:]*)?): (.*?)(?: \(at byte \d+\))?$/s.exec(e.message);
  if (!m) return e;
  const top = m[1] === '5' ? 'event' : m[1] === '6' ? 'source' : m[1];
  return new ValidationError(`${base}.${top}${m[2]}`, m[3]);
}

export function decodeRecord(bytes: Uint8Array): Record {
  abytes(bytes, 'record');
  if (bytes.length > MAX_RECORD_BYTES) throw new ValidationError('record', `${bytes.length} bytes exceeds the limit of ${MAX_RECORD_BYTES}`);
  let top: unknown;
  try {
    top = decode(bytes, { maxBytes: MAX_RECORD_BYTES, maxDepth: MAX_EVENT_DEPTH, jsonKeys: [5, 6] });
  } catch (e) {
    throw asField(e, 'record');
  }
  const m = amap(top, 'record');
  akeys(m, 'record', [1, 2, 3, 4, 5], [6]);
  const seq = auint(m.get(2), 'record.seq', 1);
  const prev = abytes(m.get(3), 'record.prev', 32);
  if (seq === 1 && !prev.every((b) => b === 0)) throw new ValidationError('record.prev', 'must be 32 zero bytes for seq 1');
  const event = m.get(5);
  if (event === null || typeof event !== 'object' || Array.isArray(event)) throw new ValidationError('record.event', 'expected a map');
  const r: Record = {
    deviceId: assertDeviceId(m.get(1), 'record.device_id'),
    seq,
    prev,
    time: auint(m.get(4), 'record.time'),
    event: event as JsonObject,
  };
  if (m.has(6)) {
    const source = m.get(6);
    if (source === null || typeof source !== 'object' || Array.isArray(source)) throw new ValidationError('record.source', 'expected a map');
    r.source = source as JsonObject;
  }
  return r;
}

/** The record's hash: what the next record's `prev` holds. */
export function recordHash(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

/** The `prev` of record seq 1. */
export const GENESIS_PREV = ZERO32;
