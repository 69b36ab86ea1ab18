// Quota and back-pressure (ARCHITECTURE §2 invariant 6): the backlog lives on
// disk within a configured capacity. Near it (the high-water mark) the journal
// says "high": the MCU link stops acknowledging, so the sensors keep their
// readings, and an alarm metric goes up. At it, records are refused with a
// QUOTA error. Batches and commit marks may still use a reserve above the
// record limit: without it a full journal could never write the batch whose
// receipt would let compaction free space (a deadlock).
import type { Backpressure, BackpressureReason, BackpressureState } from './journal.js';

export interface QuotaOptions {
  /** High-water mark as a fraction of capacity (default 0.8). */
  highWaterRatio?: number;
  /** Back-pressure clears below this fraction (default 0.7): hysteresis. */
  lowWaterRatio?: number;
  /** Bytes kept for batches and commit marks (default 2 % of capacity, at least 64 KiB, at most capacity / 4). */
  reserveBytes?: number;
}

export class Quota {
  readonly capacity: number;
  readonly recordLimit: number;
  readonly high: number;
  readonly low: number;
  private state: BackpressureState = 'ok';
  private reason: BackpressureReason = 'none';
  private used = 0;
  diskFull = false;
  readOnly = false;
  failed = false;
  /** Set when a record was refused for quota; cleared below the low-water mark. */
  private refused = false;

  constructor(capacity: number, o: QuotaOptions = {}) {
    this.capacity = capacity;
    const reserve = o.reserveBytes ?? Math.min(Math.floor(capacity / 4), Math.max(64 * 1024, Math.floor(capacity * 0.02)));
    this.recordLimit = capacity - reserve;
    this.high = Math.floor(capacity * (o.highWaterRatio ?? 0.8));
    this.low = Math.floor(capacity * (o.lowWaterRatio ?? 0.7));
  }

  noteRefused(): void {
    this.refused = true;
  }

  /** Recomputes the state for `usedBytes`; returns the new value when it changed. */
  update(usedBytes: number): Backpressure | undefined {
    this.used = usedBytes;
    if (this.refused && usedBytes < this.low) this.refused = false;
    let state: BackpressureState;
    let reason: BackpressureReason;
    if (this.failed) [state, reason] = ['full', 'failed'];
    else if (this.readOnly) [state, reason] = ['full', 'read_only'];
    else if (this.diskFull) [state, reason] = ['full', 'disk_full'];
    else if (this.refused || usedBytes >= this.recordLimit) [state, reason] = ['full', 'quota'];
    else if (usedBytes >= this.high || (this.state !== 'ok' && usedBytes >= this.low)) [state, reason] = ['high', 'quota'];
    else [state, reason] = ['ok', 'none'];
    if (state === this.state && reason === this.reason) return undefined;
    this.state = state;
    this.reason = reason;
    return this.current();
  }

  current(): Backpressure {
    return { state: this.state, reason: this.reason, usedBytes: this.used, capacityBytes: this.capacity };
  }
}

export function stateNumber(s: BackpressureState): number {
  return s === 'ok' ? 0 : s === 'high' ? 1 : 2;
}
