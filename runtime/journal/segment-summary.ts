// What the journal keeps in memory about one segment: its ranges, the chain
// state at its durable end, and sparse indexes (seq → file offset) sampled
// every INDEX_EVERY bytes. Lookups seek to the nearest sample and read forward
// at most INDEX_EVERY bytes.
//
// Why sparse (ARCHITECTURE §2 invariant 6): memory must not grow with the
// backlog. A dense index of a 1M-record backlog would cost 8–16 MB; samples
// cost 16 bytes per 64 KiB of segment, so memory is bounded by the quota
// (1 GiB → ~0.5 MB), whatever the record count.
import { getBytes, getUint } from './container.js';
import { cloneState, stateFromCbor, stateToCbor, type ChainState } from './chain-state.js';
import { JournalError } from './errors.js';

export const INDEX_EVERY = 64 * 1024;

export class SparseIndex {
  keys: Float64Array;
  offs: Float64Array;
  n = 0;
  constructor(capacity = 16) {
    this.keys = new Float64Array(capacity);
    this.offs = new Float64Array(capacity);
  }

  /** Samples (key, off) if `off` is INDEX_EVERY past the last sample (or it is the first). */
  note(key: number, off: number): void {
    if (this.n > 0 && off - this.offs[this.n - 1] < INDEX_EVERY) return;
    if (this.n === this.keys.length) {
      const k = new Float64Array(this.n * 2);
      const o = new Float64Array(this.n * 2);
      k.set(this.keys);
      o.set(this.offs);
      this.keys = k;
      this.offs = o;
    }
    this.keys[this.n] = key;
    this.offs[this.n] = off;
    this.n++;
  }

  /** Index of the last sample with key ≤ `key`, or -1. */
  floorIndex(key: number): number {
    let lo = 0;
    let hi = this.n - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.keys[mid] <= key) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  }

  clone(): SparseIndex {
    const c = new SparseIndex(Math.max(16, this.n));
    c.keys.set(this.keys.subarray(0, this.n));
    c.offs.set(this.offs.subarray(0, this.n));
    c.n = this.n;
    return c;
  }

  toCbor(): number[] {
    const out: number[] = new Array(this.n * 2);
    for (let i = 0; i < this.n; i++) {
      out[2 * i] = this.keys[i];
      out[2 * i + 1] = this.offs[i];
    }
    return out;
  }

  static fromCbor(v: unknown, where: string): SparseIndex {
    if (!Array.isArray(v) || v.length % 2 !== 0) throw new JournalError('CORRUPT', `${where}: sparse index is not an even-length array`, { path: where });
    const s = new SparseIndex(Math.max(16, v.length / 2));
    for (let i = 0; i < v.length; i += 2) {
      const [k, o] = [v[i], v[i + 1]];
      if (!Number.isSafeInteger(k) || !Number.isSafeInteger(o)) throw new JournalError('CORRUPT', `${where}: sparse index entry is not an integer`, { path: where });
      s.keys[s.n] = k;
      s.offs[s.n] = o;
      s.n++;
    }
    return s;
  }
}

export interface UnitMark {
  end: number;
  firstSeq: number;
  lastSeq: number;
  samples: number;
  nextSeq: number;
  lastRecordHash: Uint8Array;
}

export class SegmentSummary {
  /** Durable end: entries occupy [dataStart, end). */
  end: number;
  /** Record seqs in this segment (0 = none). */
  firstSeq = 0;
  lastSeq = 0;
  firstBatch = 0;
  lastBatch = 0;
  /** Range of batch_seqs named by commit marks in this segment (0 = none). */
  minCommit = 0;
  maxCommit = 0;
  records = new SparseIndex();
  batches = new SparseIndex();
  /** The last STATE entry in this segment: frame offset and payload length (0 = none). */
  stateAt = 0;
  stateLen = 0;
  /** Chain state at `end`. */
  endState: ChainState;

  constructor(
    readonly id: number,
    readonly nonce: Uint8Array,
    readonly dataStart: number,
    base: ChainState,
    readonly path: string,
  ) {
    this.end = dataStart;
    this.endState = cloneState(base);
  }

  noteRecord(seq: number, off: number): void {
    if (this.firstSeq === 0) this.firstSeq = seq;
    this.lastSeq = seq;
    this.records.note(seq, off);
  }

  noteBatch(batchSeq: number, off: number): void {
    if (this.firstBatch === 0) this.firstBatch = batchSeq;
    this.lastBatch = batchSeq;
    this.batches.note(batchSeq, off);
  }

  noteState(off: number, len: number): void {
    this.stateAt = off;
    this.stateLen = len;
  }

  /** What a unit's records change here, to put back if the unit turns out torn (recovery). */
  saveBeforeUnit(): UnitMark {
    return { end: this.end, firstSeq: this.firstSeq, lastSeq: this.lastSeq, samples: this.records.n, nextSeq: this.endState.nextSeq, lastRecordHash: this.endState.lastRecordHash };
  }

  restoreUnit(m: UnitMark): void {
    this.end = m.end;
    this.firstSeq = m.firstSeq;
    this.lastSeq = m.lastSeq;
    this.records.n = m.samples;
    this.endState.nextSeq = m.nextSeq;
    this.endState.lastRecordHash = m.lastRecordHash;
  }

  noteCommit(batchSeq: number): void {
    if (this.minCommit === 0 || batchSeq < this.minCommit) this.minCommit = batchSeq;
    if (batchSeq > this.maxCommit) this.maxCommit = batchSeq;
  }

  /** An independent copy (for a checkpoint written while appends go on). */
  snapshot(): SegmentSummary {
    const s = new SegmentSummary(this.id, this.nonce, this.dataStart, this.endState, this.path);
    Object.assign(s, { end: this.end, firstSeq: this.firstSeq, lastSeq: this.lastSeq, firstBatch: this.firstBatch, lastBatch: this.lastBatch, minCommit: this.minCommit, maxCommit: this.maxCommit, stateAt: this.stateAt, stateLen: this.stateLen });
    s.records = this.records.clone();
    s.batches = this.batches.clone();
    return s;
  }

  toCbor(): Map<number, unknown> {
    return new Map<number, unknown>([
      [1, this.id],
      [2, this.nonce],
      [3, this.dataStart],
      [4, this.end],
      [5, [this.firstSeq, this.lastSeq, this.firstBatch, this.lastBatch, this.minCommit, this.maxCommit]],
      [6, this.records.toCbor()],
      [7, this.batches.toCbor()],
      [8, stateToCbor(this.endState)],
      [9, [this.stateAt, this.stateLen]],
    ]);
  }

  static fromCbor(v: unknown, path: string, where: string): SegmentSummary {
    if (!(v instanceof Map)) throw new JournalError('CORRUPT', `${where}: summary is not a map`, { path: where });
    const s = new SegmentSummary(getUint(v, 1, where), getBytes(v, 2, where, 16), getUint(v, 3, where), stateFromCbor(v.get(8), where), path);
    s.end = getUint(v, 4, where);
    const r = v.get(5);
    if (!Array.isArray(r) || r.length !== 6 || !r.every((x) => Number.isSafeInteger(x) && x >= 0)) throw new JournalError('CORRUPT', `${where}: summary ranges are malformed`, { path: where });
    [s.firstSeq, s.lastSeq, s.firstBatch, s.lastBatch, s.minCommit, s.maxCommit] = r as number[];
    s.records = SparseIndex.fromCbor(v.get(6), where);
    s.batches = SparseIndex.fromCbor(v.get(7), where);
    // Absent in version 1 summaries, whose segments hold no state.
    const st = v.get(9);
    if (st !== undefined) {
      if (!Array.isArray(st) || st.length !== 2 || !st.every((x) => Number.isSafeInteger(x) && x >= 0)) throw new JournalError('CORRUPT', `${where}: summary state position is malformed`, { path: where });
      [s.stateAt, s.stateLen] = st as number[];
    }
    return s;
  }
}
