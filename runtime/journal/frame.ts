// Entry framing inside a segment file (docs/JOURNAL.md "On-disk format"):
//
//   len u32 LE | type u8 | payload (len bytes) | crc32c u32 LE
//
// The CRC-32C (protocol/crc32c.ts, the project's one CRC) covers len, type and
// payload, so a torn length is caught like a torn payload. A frame whose first
// five bytes are zero (len 0, type 0) marks the end of the written data:
// segments are preallocated with zeros, and no real entry has an empty payload.
// Payloads are the exact bytes received (record CBOR, batch COSE_Sign1), never
// re-encoded: hashes are taken over them (ARCHITECTURE §4).
//
// Units (appendUnit): zero or more UNIT_RECORD entries closed by one STATE
// entry, always written in one group commit. A UNIT_RECORD is a record like
// any other for the readers; what its type adds is "the unit is not whole
// until its STATE entry follows", so recovery can drop a unit torn at the tail
// as one piece.
import { crc32c } from '../../protocol/crc32c.js';
import { MAX_RECEIPT_BYTES, MAX_RECORD_BYTES, MAX_SIGN1_BYTES } from '../../protocol/limits.js';
import { MAX_STATE_BYTES } from './journal.js';

export const EntryType = {
  /** payload = the record's CBOR bytes (§4.1) */
  RECORD: 1,
  /** payload = the batch COSE_Sign1 bytes (§4.2) */
  BATCH: 2,
  /** payload = batch_seq u64 LE | last record seq of that batch u64 LE | receipt bytes (§4.4) */
  COMMIT: 3,
  /** payload = the opaque state blob of a unit (appendUnit), 1..MAX_STATE_BYTES; closes the unit */
  STATE: 4,
  /** payload = the record's CBOR bytes, inside a unit: a STATE entry must follow the unit's records */
  UNIT_RECORD: 5,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export const FRAME_HEAD = 5;
export const FRAME_OVERHEAD = 9;
export const COMMIT_FIXED = 16;

/** Largest payload any entry type may have; a larger length is damage. */
export const MAX_PAYLOAD = Math.max(MAX_RECORD_BYTES, MAX_SIGN1_BYTES, COMMIT_FIXED + MAX_RECEIPT_BYTES, MAX_STATE_BYTES);

/** Record entries, inside a unit or not: what the record readers return. */
export function isRecordEntry(type: number): boolean {
  return type === EntryType.RECORD || type === EntryType.UNIT_RECORD;
}

export function maxPayloadOf(type: number): number {
  switch (type) {
    case EntryType.RECORD:
    case EntryType.UNIT_RECORD:
      return MAX_RECORD_BYTES;
    case EntryType.STATE:
      return MAX_STATE_BYTES;
    case EntryType.BATCH:
      return MAX_SIGN1_BYTES;
    case EntryType.COMMIT:
      return COMMIT_FIXED + MAX_RECEIPT_BYTES;
    default:
      return -1;
  }
}

/** Writes one frame at `pos` of `dst`: payload, then `more` if given (a commit's head and receipt). Returns the frame length. */
export function writeFrame(dst: Buffer, pos: number, type: EntryType, payload: Uint8Array, more?: Uint8Array): number {
  const len = payload.length + (more ? more.length : 0);
  dst.writeUInt32LE(len, pos);
  dst[pos + 4] = type;
  dst.set(payload, pos + FRAME_HEAD);
  if (more) dst.set(more, pos + FRAME_HEAD + payload.length);
  const o = pos + FRAME_HEAD + len;
  dst.writeUInt32LE(crc32c(dst, 0, pos, o), o);
  return o + 4 - pos;
}

export function commitHead(batchSeq: number, lastSeq: number): Uint8Array {
  const b = Buffer.alloc(COMMIT_FIXED);
  b.writeBigUInt64LE(BigInt(batchSeq), 0);
  b.writeBigUInt64LE(BigInt(lastSeq), 8);
  return b;
}

export function readCommit(payload: Uint8Array): { batchSeq: number; lastSeq: number; receipt: Uint8Array } {
  const v = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  return { batchSeq: Number(v.readBigUInt64LE(0)), lastSeq: Number(v.readBigUInt64LE(8)), receipt: payload.subarray(COMMIT_FIXED) };
}

export type FrameCheck =
  | { ok: true; type: EntryType; len: number; size: number }
  /** `end`: five zero bytes, the end of written data. `short`: the frame runs past `limit`. */
  | { ok: false; why: 'end' | 'short' | 'type' | 'length' | 'crc' };

/**
 * Checks the frame at `pos` of `buf` (bytes valid up to `limit`). `short`
 * means more bytes are needed (or the data ends inside the frame).
 */
export function checkFrame(buf: Buffer, pos: number, limit: number): FrameCheck {
  // Fewer than five bytes: the caller reads more, or at the end of the file
  // decides between an end (all zero) and a torn frame.
  if (limit - pos < FRAME_HEAD) return { ok: false, why: 'short' };
  const len = buf.readUInt32LE(pos);
  const type = buf[pos + 4];
  if (len === 0 && type === 0) return { ok: false, why: 'end' };
  const max = maxPayloadOf(type);
  if (max < 0) return { ok: false, why: 'type' };
  if (len === 0 || len > max) return { ok: false, why: 'length' };
  const size = FRAME_OVERHEAD + len;
  if (limit - pos < size) return { ok: false, why: 'short' };
  if (crc32c(buf, 0, pos, pos + FRAME_HEAD + len) !== buf.readUInt32LE(pos + FRAME_HEAD + len)) return { ok: false, why: 'crc' };
  return { ok: true, type: type as EntryType, len, size };
}
