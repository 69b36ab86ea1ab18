// Batch header (ARCHITECTURE §4.2, normative): the payload a device signs in a
// COSE_Sign1, and the MQTT batch message that carries it with its records (§4.3).
//
//   BatchHeader = { 1: device_id, 2: batch_seq uint, 3: first_seq uint, 4: count uint,
//                   5: root bstr(32), 6: prev bstr(32), 7: time uint }
//   BatchMessage = [ sign1 bstr, [ record bstr … ], known_size uint ]
import { decode, encode, Tag } from './cbor.js';
import { aarray, abytes, amap, akeys, auint, ValidationError } from './errors.js';
import { MAX_BATCH_MESSAGE_BYTES, MAX_BATCH_RECORDS, MAX_RECORD_BYTES, MAX_SIGN1_BYTES } from './limits.js';
import { assertDeviceId } from './record.js';

/** Content type of the batch payload, in the protected header (label 3). */
export const BATCH_CONTENT_TYPE = 'application/vnd.iscm.batch+cbor';

export interface BatchHeader {
  deviceId: string;
  batchSeq: number;
  firstSeq: number;
  count: number;
  /** RFC 9162 root over the records' bytes, in seq order. */
  root: Uint8Array;
  /** SHA-256 of the previous batch's COSE_Sign1 bytes; zeros for batch 1. */
  prev: Uint8Array;
  time: number;
}

function check(h: BatchHeader, f: string): void {
  assertDeviceId(h.deviceId, `${f}.device_id`);
  auint(h.batchSeq, `${f}.batch_seq`, 1);
  auint(h.firstSeq, `${f}.first_seq`, 1);
  auint(h.count, `${f}.count`, 1, MAX_BATCH_RECORDS);
  abytes(h.root, `${f}.root`, 32);
  abytes(h.prev, `${f}.prev`, 32);
  auint(h.time, `${f}.time`);
  if (h.batchSeq === 1 && !h.prev.every((b) => b === 0)) throw new ValidationError(`${f}.prev`, 'must be 32 zero bytes for batch 1');
  if (h.firstSeq + h.count - 1 > Number.MAX_SAFE_INTEGER) throw new ValidationError(`${f}.count`, 'last seq overflows');
}

export function encodeBatchHeader(h: BatchHeader): Uint8Array {
  check(h, 'batch');
  return encode(
    new Map<number, unknown>([
      [1, h.deviceId],
      [2, h.batchSeq],
      [3, h.firstSeq],
      [4, h.count],
      [5, h.root],
      [6, h.prev],
      [7, h.time],
    ]),
  );
}

export function decodeBatchHeader(bytes: Uint8Array): BatchHeader {
  abytes(bytes, 'batch');
  const m = amap(decode(bytes, { maxBytes: MAX_SIGN1_BYTES, maxDepth: 2 }), 'batch');
  akeys(m, 'batch', [1, 2, 3, 4, 5, 6, 7]);
  const h: BatchHeader = {
    deviceId: m.get(1) as string,
    batchSeq: m.get(2) as number,
    firstSeq: m.get(3) as number,
    count: m.get(4) as number,
    root: m.get(5) as Uint8Array,
    prev: m.get(6) as Uint8Array,
    time: m.get(7) as number,
  };
  check(h, 'batch');
  return h;
}

export interface BatchMessage {
  /** The batch COSE_Sign1 bytes, exactly as signed. */
  sign1: Uint8Array;
  /**
   * Each record's bytes, in seq order — or none: a *receipt request* for a
   * batch the ledger already committed (a fresh receipt proven from
   * `knownSize`, without sending the records again; docs/PROTOCOL.md §3).
   */
  records: Uint8Array[];
  /** Tree size of the last tree head the device verified (0 if none). */
  knownSize: number;
}

export function encodeBatchMessage(m: BatchMessage): Uint8Array {
  abytes(m.sign1, 'batch_message.sign1');
  aarray(m.records, 'batch_message.records', 0, MAX_BATCH_RECORDS);
  m.records.forEach((r, i) => abytes(r, `batch_message.records[${i}]`));
  auint(m.knownSize, 'batch_message.known_size');
  const out = encode([m.sign1, m.records, m.knownSize]);
  if (out.length > MAX_BATCH_MESSAGE_BYTES)
    throw new ValidationError('batch_message', `${out.length} bytes exceeds the limit of ${MAX_BATCH_MESSAGE_BYTES}`);
  return out;
}

export function decodeBatchMessage(bytes: Uint8Array): BatchMessage {
  abytes(bytes, 'batch_message');
  if (bytes.length > MAX_BATCH_MESSAGE_BYTES)
    throw new ValidationError('batch_message', `${bytes.length} bytes exceeds the limit of ${MAX_BATCH_MESSAGE_BYTES}`);
  const a = aarray(decode(bytes, { maxBytes: MAX_BATCH_MESSAGE_BYTES, maxDepth: 2 }), 'batch_message', 3, 3);
  const sign1 = abytes(a[0], 'batch_message.sign1');
  if (sign1.length > MAX_SIGN1_BYTES) throw new ValidationError('batch_message.sign1', `${sign1.length} bytes exceeds ${MAX_SIGN1_BYTES}`);
  const records = aarray(a[1], 'batch_message.records', 0, MAX_BATCH_RECORDS).map((r, i) => {
    const b = abytes(r, `batch_message.records[${i}]`);
    if (b.length > MAX_RECORD_BYTES) throw new ValidationError(`batch_message.records[${i}]`, `${b.length} bytes exceeds ${MAX_RECORD_BYTES}`);
    return b;
  });
  return { sign1, records, knownSize: auint(a[2], 'batch_message.known_size') };
}

/**
 * The batch header inside batch COSE_Sign1 bytes, read without verifying the
 * signature: for stores (the journal) that index batches they signed or
 * already verified. Verification proper is `verifyBatch` in batch-verify.ts.
 */
export function batchHeaderOfSign1(sign1: Uint8Array): BatchHeader {
  abytes(sign1, 'batch.sign1');
  if (sign1.length > MAX_SIGN1_BYTES) throw new ValidationError('batch.sign1', `${sign1.length} bytes exceeds ${MAX_SIGN1_BYTES}`);
  const t = decode(sign1, { tags: [18], maxBytes: MAX_SIGN1_BYTES, maxDepth: 4 });
  const arr = t instanceof Tag && t.tag === 18 ? t.value : t;
  const a = aarray(arr, 'batch.sign1', 4, 4);
  return decodeBatchHeader(abytes(a[2], 'batch.sign1.payload'));
}
