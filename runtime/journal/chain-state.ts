// The chain rules of one device stream (ARCHITECTURE §2 invariant 3, §4.1,
// §4.2), and the state they fold over: what every entry appended to a journal
// must continue, and what recovery re-checks on the entries it reads back.
// FileJournal and MemoryJournal share this file, so both enforce the same rules.
import type { BatchHeader } from '../../protocol/batch.js';
import { equalBytes, toHex, ZERO32 } from '../../protocol/bytes.js';
import { JournalError } from './errors.js';
import { scanRecordHead, type RecordHead, type RecordHeadAt } from './record-head.js';

export interface ChainState {
  /** The seq the next record must have (1 for an empty stream). */
  nextSeq: number;
  /** SHA-256 of the last record's bytes: the next record's `prev` (zeros before seq 1). */
  lastRecordHash: Uint8Array;
  /** The batch_seq the next batch must have. */
  nextBatchSeq: number;
  /** SHA-256 of the last batch's COSE_Sign1 bytes: the next batch's `prev`. */
  lastBatchHash: Uint8Array;
  /** Last record seq covered by a batch (0 = none). */
  batchedThroughSeq: number;
  /** Every batch ≤ this has a commit mark (a verified receipt). */
  committedThrough: number;
  /** Last record seq of batch `committedThrough` (0 = none). */
  committedThroughSeq: number;
  /** Commit marks above the contiguous watermark: [batch_seq, its last record seq], ascending. */
  committedAbove: Array<[number, number]>;
}

/** Bound on commit marks held above the watermark (receipts arriving out of order). */
export const MAX_COMMITTED_ABOVE = 1024;

export function genesisState(): ChainState {
  return {
    nextSeq: 1,
    lastRecordHash: ZERO32,
    nextBatchSeq: 1,
    lastBatchHash: ZERO32,
    batchedThroughSeq: 0,
    committedThrough: 0,
    committedThroughSeq: 0,
    committedAbove: [],
  };
}

export function cloneState(s: ChainState): ChainState {
  return { ...s, committedAbove: s.committedAbove.map(([b, l]) => [b, l] as [number, number]) };
}

export function sameState(a: ChainState, b: ChainState): boolean {
  return (
    a.nextSeq === b.nextSeq &&
    equalBytes(a.lastRecordHash, b.lastRecordHash) &&
    a.nextBatchSeq === b.nextBatchSeq &&
    equalBytes(a.lastBatchHash, b.lastBatchHash) &&
    a.batchedThroughSeq === b.batchedThroughSeq &&
    a.committedThrough === b.committedThrough &&
    a.committedThroughSeq === b.committedThroughSeq &&
    a.committedAbove.length === b.committedAbove.length &&
    a.committedAbove.every(([x, y], i) => x === b.committedAbove[i][0] && y === b.committedAbove[i][1])
  );
}

export function describeState(s: ChainState): string {
  return `next seq ${s.nextSeq}, next batch ${s.nextBatchSeq}, batched through seq ${s.batchedThroughSeq}, committed through batch ${s.committedThrough}`;
}

function chainError(field: string, message: string): JournalError {
  return new JournalError('CHAIN', `${field}: ${message}`, { field });
}

/** Throws unless the record continues the chain of `s` for device `deviceId`. */
export function checkRecord(s: ChainState, h: RecordHead, deviceId: string): void {
  if (h.deviceId !== deviceId) throw chainError('record.device_id', `${JSON.stringify(h.deviceId)} does not belong in the journal of device ${JSON.stringify(deviceId)}`);
  if (h.seq !== s.nextSeq) throw chainError('record.seq', `expected ${s.nextSeq} (the next in this device's chain), got ${h.seq}`);
  if (!bytesAt(h.prev, 0, s.lastRecordHash, 32))
    throw chainError('record.prev', `record ${h.seq} links to ${toHex(h.prev).slice(0, 16)}…, but the hash of record ${h.seq - 1} is ${toHex(s.lastRecordHash).slice(0, 16)}…`);
}

function bytesAt(a: Uint8Array, aStart: number, b: Uint8Array, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[aStart + i] !== b[i]) return false;
  return true;
}

const scratch: RecordHeadAt = { devStart: 0, devLen: 0, seq: 0, prevStart: 0, time: 0 };

/**
 * The record rule on the append hot path, without allocating: device_id
 * bytes, seq and `prev` compared in place against `lastHash`, the previous
 * record's hash. Returns the seq, or -1 when anything differs: the caller
 * then runs checkRecord for the exact error. Throws a ValidationError if the
 * bytes are not a record head.
 */
export function recordContinues(nextSeq: number, lastHash: Uint8Array, b: Uint8Array, deviceIdBytes: Uint8Array): number {
  scanRecordHead(b, scratch);
  if (scratch.seq !== nextSeq || scratch.devLen !== deviceIdBytes.length || !bytesAt(b, scratch.devStart, deviceIdBytes, deviceIdBytes.length)) return -1;
  if (!bytesAt(b, scratch.prevStart, lastHash, 32)) return -1;
  return scratch.seq;
}

/** Where the `prev` field of the record `b` starts (its head already passed recordContinues or checkRecord). */
export function prevOffset(b: Uint8Array): number {
  scanRecordHead(b, scratch);
  return scratch.prevStart;
}

export function applyRecord(s: ChainState, seq: number, hash: Uint8Array): void {
  s.nextSeq = seq + 1;
  s.lastRecordHash = hash;
}

/** Throws unless the batch continues the batch chain and covers the next unbatched records. */
export function checkBatch(s: ChainState, h: BatchHeader, deviceId: string): void {
  if (h.deviceId !== deviceId) throw chainError('batch.device_id', `${JSON.stringify(h.deviceId)} does not belong in the journal of device ${JSON.stringify(deviceId)}`);
  if (h.batchSeq !== s.nextBatchSeq) throw chainError('batch.batch_seq', `expected ${s.nextBatchSeq}, got ${h.batchSeq}`);
  if (!equalBytes(h.prev, s.lastBatchHash)) throw chainError('batch.prev', `batch ${h.batchSeq} does not link to the hash of batch ${h.batchSeq - 1}`);
  if (h.firstSeq !== s.batchedThroughSeq + 1) throw chainError('batch.first_seq', `expected ${s.batchedThroughSeq + 1} (the first unbatched record), got ${h.firstSeq}`);
  const last = h.firstSeq + h.count - 1;
  if (last > s.nextSeq - 1) throw chainError('batch.count', `batch ${h.batchSeq} covers records ${h.firstSeq}..${last}, but the journal holds records only up to ${s.nextSeq - 1}`);
}

export function applyBatch(s: ChainState, h: BatchHeader, hash: Uint8Array): void {
  s.nextBatchSeq = h.batchSeq + 1;
  s.lastBatchHash = hash;
  s.batchedThroughSeq = h.firstSeq + h.count - 1;
}

export function isCommitted(s: ChainState, batchSeq: number): boolean {
  return batchSeq <= s.committedThrough || s.committedAbove.some(([b]) => b === batchSeq);
}

/** Throws unless a commit mark for `batchSeq` may be written now; returns false for a duplicate. */
export function checkCommit(s: ChainState, batchSeq: number): boolean {
  if (!Number.isSafeInteger(batchSeq) || batchSeq < 1) throw chainError('commit.batch_seq', `expected a batch_seq ≥ 1, got ${batchSeq}`);
  if (batchSeq >= s.nextBatchSeq)
    throw new JournalError('NOT_FOUND', `commit.batch_seq: batch ${batchSeq} is not in the journal (last batch is ${s.nextBatchSeq - 1}); a receipt for it cannot be ours`, { field: 'commit.batch_seq' });
  if (isCommitted(s, batchSeq)) return false;
  if (batchSeq > s.committedThrough + 1 && s.committedAbove.length >= MAX_COMMITTED_ABOVE)
    throw chainError('commit.batch_seq', `${MAX_COMMITTED_ABOVE} receipts are already held above batch ${s.committedThrough}; receipts must arrive closer to batch order`);
  return true;
}

/** Applies a commit mark; a duplicate is a no-op (marks are idempotent). */
export function applyCommit(s: ChainState, batchSeq: number, lastSeq: number): void {
  if (isCommitted(s, batchSeq)) return;
  if (batchSeq !== s.committedThrough + 1) {
    let i = 0;
    while (i < s.committedAbove.length && s.committedAbove[i][0] < batchSeq) i++;
    s.committedAbove.splice(i, 0, [batchSeq, lastSeq]);
    return;
  }
  s.committedThrough = batchSeq;
  s.committedThroughSeq = lastSeq;
  while (s.committedAbove.length && s.committedAbove[0][0] === s.committedThrough + 1) {
    const [b, l] = s.committedAbove.shift()!;
    s.committedThrough = b;
    s.committedThroughSeq = l;
  }
}

// ---- CBOR form (segment headers, checkpoints, index sidecars) ----

export function stateToCbor(s: ChainState): Map<number, unknown> {
  return new Map<number, unknown>([
    [1, s.nextSeq],
    [2, s.lastRecordHash],
    [3, s.nextBatchSeq],
    [4, s.lastBatchHash],
    [5, s.batchedThroughSeq],
    [6, s.committedThrough],
    [7, s.committedThroughSeq],
    [8, s.committedAbove.map(([b, l]) => [b, l])],
  ]);
}

export function stateFromCbor(v: unknown, where: string): ChainState {
  const bad = (what: string) => new JournalError('CORRUPT', `${where}: chain state ${what}`, { path: where });
  if (!(v instanceof Map)) throw bad('is not a map');
  const u = (k: number) => {
    const x = v.get(k);
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw bad(`field ${k} is not an unsigned integer`);
    return x;
  };
  const h = (k: number) => {
    const x = v.get(k);
    if (!(x instanceof Uint8Array) || x.length !== 32) throw bad(`field ${k} is not a 32-byte hash`);
    return new Uint8Array(x); // a copy: never pin the decoded file's buffer
  };
  const above = v.get(8);
  if (!Array.isArray(above)) throw bad('field 8 is not an array');
  return {
    nextSeq: u(1),
    lastRecordHash: h(2),
    nextBatchSeq: u(3),
    lastBatchHash: h(4),
    batchedThroughSeq: u(5),
    committedThrough: u(6),
    committedThroughSeq: u(7),
    committedAbove: above.map((p) => {
      if (!Array.isArray(p) || p.length !== 2 || !p.every((n) => Number.isSafeInteger(n))) throw bad('field 8 holds a bad pair');
      return [p[0], p[1]] as [number, number];
    }),
  };
}
