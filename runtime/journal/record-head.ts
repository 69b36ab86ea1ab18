// Reads the head of a record — device_id, seq, prev, time — straight from its
// canonical CBOR bytes, without decoding the EPCIS event.
//
// Why not decodeRecord: the journal needs only the chain fields to enforce
// invariant 3 on append, and a full decode (JSON validation of the event) costs
// ~15 µs per 600-byte record, more than the fsync share of a record at the
// 100k records/s goal. Records reach the journal from encodeRecord, which
// emits the deterministic encoding (ARCHITECTURE §4: keys ascending, shortest
// integers), so the head has one fixed shape:
//   a5|a6, 01 tstr(device_id), 02 uint(seq), 03 58 20 <32 bytes prev>, 04 uint(time), 05 …
// Anything else is refused; FileJournal can still run the full decodeRecord
// on every append (option verifyRecords: 'full').
import { ValidationError } from '../../protocol/errors.js';
import { MAX_RECORD_BYTES } from '../../protocol/limits.js';
import { DEVICE_ID_RE } from '../../protocol/record.js';

export interface RecordHead {
  deviceId: string;
  seq: number;
  /** A view into the record bytes (not a copy). */
  prev: Uint8Array;
  time: number;
}

/** Where uintAt leaves the position after the integer (no tuple per call: the append hot path). */
let uintEnd = 0;

/** Reads a canonical CBOR unsigned integer (major type 0) at `pos`; the position after it goes to uintEnd. */
function uintAt(b: Uint8Array, pos: number, field: string): number {
  const ib = b[pos];
  if (ib === undefined || ib >> 5 !== 0) throw new ValidationError(field, 'expected an unsigned integer');
  const ai = ib & 0x1f;
  if (ai < 24) {
    uintEnd = pos + 1;
    return ai;
  }
  let n: number;
  let next: number;
  if (ai === 24) {
    n = b[pos + 1];
    next = pos + 2;
    if (n < 24) throw new ValidationError(field, 'integer not in its shortest form');
  } else if (ai === 25) {
    n = (b[pos + 1] << 8) | b[pos + 2];
    next = pos + 3;
    if (n < 0x100) throw new ValidationError(field, 'integer not in its shortest form');
  } else if (ai === 26) {
    n = ((b[pos + 1] << 24) >>> 0) + ((b[pos + 2] << 16) | (b[pos + 3] << 8) | b[pos + 4]);
    next = pos + 5;
    if (n < 0x10000) throw new ValidationError(field, 'integer not in its shortest form');
  } else if (ai === 27) {
    const hi = ((b[pos + 1] << 24) >>> 0) + ((b[pos + 2] << 16) | (b[pos + 3] << 8) | b[pos + 4]);
    const lo = ((b[pos + 5] << 24) >>> 0) + ((b[pos + 6] << 16) | (b[pos + 7] << 8) | b[pos + 8]);
    if (hi > 0x1fffff) throw new ValidationError(field, 'integer beyond 2^53-1');
    n = hi * 0x100000000 + lo;
    next = pos + 9;
    if (n <= 0xffffffff) throw new ValidationError(field, 'integer not in its shortest form');
  } else throw new ValidationError(field, 'expected an unsigned integer');
  if (next > b.length || Number.isNaN(n)) throw new ValidationError(field, 'truncated');
  uintEnd = next;
  return n;
}

/** Positions of the head fields inside the record bytes (no allocation: the append hot path). */
export interface RecordHeadAt {
  devStart: number;
  devLen: number;
  seq: number;
  prevStart: number;
  time: number;
}

/** Parses the head of `b` into `at`; throws a ValidationError naming the field. The device_id is not yet checked against the pattern. */
export function scanRecordHead(b: Uint8Array, at: RecordHeadAt): void {
  if (!(b instanceof Uint8Array)) throw new ValidationError('record', 'expected a byte string');
  if (b.length > MAX_RECORD_BYTES) throw new ValidationError('record', `${b.length} bytes exceeds the limit of ${MAX_RECORD_BYTES}`);
  if (b.length < 44) throw new ValidationError('record', `${b.length} bytes is too short for a record`);
  if (b[0] !== 0xa5 && b[0] !== 0xa6) throw new ValidationError('record', 'expected a CBOR map of 5 or 6 entries');
  if (b[1] !== 0x01) throw new ValidationError('record.1', 'device_id (key 1) must come first');
  let pos = 2;
  const ib = b[pos];
  let len: number;
  if (ib >= 0x61 && ib <= 0x77) {
    len = ib - 0x60;
    pos += 1;
  } else if (ib === 0x78 && b[pos + 1] >= 24 && b[pos + 1] <= 64) {
    len = b[pos + 1];
    pos += 2;
  } else throw new ValidationError('record.device_id', 'expected a text string of 1..64 bytes');
  at.devStart = pos;
  at.devLen = len;
  pos += len;
  if (b[pos] !== 0x02) throw new ValidationError('record.2', 'seq (key 2) must follow device_id');
  const seq = uintAt(b, pos + 1, 'record.seq');
  const p1 = uintEnd;
  if (seq < 1) throw new ValidationError('record.seq', 'must be ≥ 1');
  if (b[p1] !== 0x03 || b[p1 + 1] !== 0x58 || b[p1 + 2] !== 0x20) throw new ValidationError('record.prev', 'expected key 3 with a 32-byte string');
  if (p1 + 35 > b.length) throw new ValidationError('record.prev', 'truncated');
  if (b[p1 + 35] !== 0x04) throw new ValidationError('record.4', 'time (key 4) must follow prev');
  const time = uintAt(b, p1 + 36, 'record.time');
  at.seq = seq;
  at.prevStart = p1 + 3;
  at.time = time;
}

export function readRecordHead(b: Uint8Array): RecordHead {
  const at: RecordHeadAt = { devStart: 0, devLen: 0, seq: 0, prevStart: 0, time: 0 };
  scanRecordHead(b, at);
  const deviceId = Buffer.from(b.buffer, b.byteOffset + at.devStart, at.devLen).toString('latin1');
  if (!DEVICE_ID_RE.test(deviceId)) throw new ValidationError('record.device_id', `${JSON.stringify(deviceId)} does not match [a-z0-9][a-z0-9_-]{0,63}`);
  return { deviceId, seq: at.seq, prev: b.subarray(at.prevStart, at.prevStart + 32), time: at.time };
}
