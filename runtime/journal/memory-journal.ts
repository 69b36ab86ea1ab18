// MemoryJournal: the Journal interface over plain arrays, for unit tests of
// the pipeline, batcher and sync. It enforces the same chain rules
// (chain-state.ts), quota and back-pressure (backpressure.ts) and passes the
// same conformance suite (test/runtime/journal-conformance.ts) as FileJournal;
// it is never the production path (nothing here survives the process).
//
// A MemoryStore stands in for the disk: hand the same store to a new
// MemoryJournal to "reopen" it.
//
// Unlike FileJournal (which trusts them for speed), it checks every record
// hash a caller passes by default (verifyHashes): the pipeline's unit tests
// run on it, and a caller handing the wrong hash is the bug they should catch.
import { batchHeaderOfSign1 } from '../../protocol/batch.js';
import { sha256 } from '../../protocol/bytes.js';
import { abytes } from '../../protocol/errors.js';
import { MAX_RECEIPT_BYTES } from '../../protocol/limits.js';
import { DEVICE_ID_RE, recordHash } from '../../protocol/record.js';
import { Quota, stateNumber, type QuotaOptions } from './backpressure.js';
import { applyBatch, applyCommit, applyRecord, checkBatch, checkCommit, checkRecord, cloneState, genesisState, isCommitted, type ChainState } from './chain-state.js';
import { JournalError } from './errors.js';
import { FRAME_OVERHEAD, COMMIT_FIXED } from './frame.js';
import type { Backpressure, CompactResult, Journal, JournalEvent, JournalHead, JournalMetrics, JournalStats, RecoveryReport, StoredBatch, StoredRecord } from './journal.js';
import { readRecordHead } from './record-head.js';
import { checkHashShape, inUnit, unitSize, wrongHash } from './unit.js';

export class MemoryStore {
  records: Uint8Array[] = [];
  /** seq of records[0]. */
  firstSeq = 1;
  batches: Array<{ sign1: Uint8Array; firstSeq: number; count: number }> = [];
  firstBatch = 1;
  receipts = new Map<number, Uint8Array>();
  state: ChainState = genesisState();
  /** The state blob of the last unit (only the latest is kept, as FileJournal keeps only the latest in reach). */
  lastState: Uint8Array | undefined;
  /**
   * [last record seq before it, framed bytes] of every state written: each
   * takes room until compaction frees the records before it, as FileJournal's
   * state entries do until their segment is deleted (the latest never).
   */
  stateRoom: Array<[number, number]> = [];
  usedBytes = 0;
  inUse = false;
}

export interface MemoryJournalOptions extends QuotaOptions {
  deviceId: string;
  /** Quota in bytes of stored entries, counted as framed on disk (default 64 MiB). */
  maxBytes?: number;
  store?: MemoryStore;
  /** Largest unit, framed as FileJournal frames it (default 4 MiB, FileJournal's default group bound). */
  maxUnitBytes?: number;
  /** Check every hash a caller passes against the record's bytes (default true). */
  verifyHashes?: boolean;
}

interface Item {
  apply: () => void;
  result: unknown;
  resolve: (v: never) => void;
}

export class MemoryJournal implements Journal {
  readonly store: MemoryStore;
  readonly deviceId: string;
  readonly maxUnitBytes: number;
  readonly verifyHashes: boolean;
  private readonly quota: Quota;
  private life: 'new' | 'open' | 'closed' = 'new';
  private tip: ChainState = genesisState();
  private tipUsed = 0;
  private pending: Item[] = [];
  private flushScheduled = false;
  private listeners = new Set<(e: JournalEvent) => void>();
  private report: RecoveryReport | undefined;
  private m = { records: 0, batches: 0, commits: 0, units: 0, stateBytes: 0, refused: 0, bytes: 0, fsyncs: 0, groupEntries: 0 };

  constructor(o: MemoryJournalOptions) {
    if (typeof o?.deviceId !== 'string' || !DEVICE_ID_RE.test(o.deviceId)) throw new JournalError('CONFIG', 'journal.deviceId: must match [a-z0-9][a-z0-9_-]{0,63}', { field: 'journal.deviceId' });
    this.deviceId = o.deviceId;
    this.store = o.store ?? new MemoryStore();
    this.quota = new Quota(o.maxBytes ?? 64 << 20, o);
    this.maxUnitBytes = o.maxUnitBytes ?? 4 << 20;
    this.verifyHashes = o.verifyHashes ?? true;
  }

  async open(): Promise<void> {
    if (this.life !== 'new') throw new JournalError('CLOSED', 'open() may be called once per MemoryJournal instance');
    if (this.store.inUse) throw new JournalError('LOCKED', 'this MemoryStore is open in another MemoryJournal');
    this.store.inUse = true;
    this.tip = cloneState(this.store.state);
    this.tipUsed = this.store.usedBytes;
    this.life = 'open';
    this.report = { ms: 0, clean: true, usedCheckpoint: false, segments: 0, segmentsRescanned: 0, bytesScanned: 0, entriesScanned: 0, dropped: undefined };
    this.emit({ type: 'recovered', report: this.report });
    this.updateBackpressure();
  }

  async close(): Promise<void> {
    if (this.life !== 'open') {
      this.life = 'closed';
      return;
    }
    this.flush();
    this.life = 'closed';
    this.store.inUse = false;
  }

  private assertOpen(): void {
    if (this.life !== 'open') throw new JournalError('CLOSED', `journal is ${this.life === 'new' ? 'not open yet: call open() first' : 'closed: nothing was written (open a new instance over the store)'}`);
  }

  private refuse(e: unknown): Promise<never> {
    this.m.refused++;
    this.updateBackpressure();
    return Promise.reject(e);
  }

  private reserve(size: number, isRecord: boolean): void {
    if (this.tipUsed + size > (isRecord ? this.quota.recordLimit : this.quota.capacity)) {
      if (isRecord) this.quota.noteRefused();
      throw new JournalError('QUOTA', `journal quota reached (${this.quota.capacity} bytes): the ${isRecord ? 'record' : 'entry'} is refused and not acknowledged; receipts and compaction free space`, { field: 'journal.maxBytes' });
    }
    this.tipUsed += size;
  }

  private enqueue<T>(size: number, apply: () => void, result: T): Promise<T> {
    return new Promise<T>((resolve) => {
      this.pending.push({
        apply: () => {
          apply();
          this.store.usedBytes += size;
          this.m.bytes += size;
        },
        result,
        resolve: resolve as (v: never) => void,
      });
      this.updateBackpressure();
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** The "fsync": applies the pending group to the store and resolves it. */
  private flush(): void {
    this.flushScheduled = false;
    const items = this.pending;
    if (!items.length) return;
    this.pending = [];
    for (const it of items) it.apply();
    this.m.fsyncs++;
    this.m.groupEntries += items.length;
    for (const it of items) (it.resolve as (v: unknown) => void)(it.result);
  }

  appendRecord(bytes: Uint8Array, hash?: Uint8Array): Promise<{ seq: number }> {
    try {
      this.assertOpen();
      const h = readRecordHead(bytes);
      checkRecord(this.tip, h, this.deviceId);
      const hashed = this.hashOf(bytes, hash, h.seq, 'record.hash');
      this.reserve(FRAME_OVERHEAD + bytes.length, true);
      applyRecord(this.tip, h.seq, hashed);
      const copy = new Uint8Array(bytes);
      return this.enqueue(
        FRAME_OVERHEAD + bytes.length,
        () => {
          this.store.records.push(copy);
          applyRecord(this.store.state, h.seq, hashed);
          this.m.records++;
        },
        { seq: h.seq },
      );
    } catch (e) {
      return this.refuse(e);
    }
  }

  appendUnit(records: Uint8Array[], state: Uint8Array, hashes?: Uint8Array[]): Promise<{ firstSeq: number; lastSeq: number }> {
    try {
      this.assertOpen();
      const size = unitSize(records, state, hashes, this.maxUnitBytes);
      // The whole unit is checked before anything changes: all of it or none.
      const run = cloneState(this.tip);
      const first = run.nextSeq;
      const seqHashes: Uint8Array[] = [];
      for (let i = 0; i < records.length; i++) {
        try {
          const h = readRecordHead(records[i]);
          checkRecord(run, h, this.deviceId);
          const hashed = this.hashOf(records[i], hashes?.[i], h.seq, `unit.hashes[${i}]`);
          applyRecord(run, h.seq, hashed);
          seqHashes.push(hashed);
        } catch (e) {
          throw inUnit(e, i);
        }
      }
      this.reserve(size, true);
      this.tip.nextSeq = run.nextSeq;
      this.tip.lastRecordHash = run.lastRecordHash;
      const copies = records.map((r) => new Uint8Array(r));
      const blob = new Uint8Array(state);
      const last = first + records.length - 1;
      return this.enqueue(
        size,
        () => {
          const s = this.store;
          s.records.push(...copies);
          if (copies.length) applyRecord(s.state, last, seqHashes[seqHashes.length - 1]);
          s.lastState = blob;
          s.stateRoom.push([last, FRAME_OVERHEAD + blob.length]);
          this.m.records += copies.length;
          this.m.units++;
          this.m.stateBytes += blob.length;
        },
        { firstSeq: first, lastSeq: last },
      );
    } catch (e) {
      return this.refuse(e);
    }
  }

  lastState(): Uint8Array | undefined {
    return this.store.lastState ? new Uint8Array(this.store.lastState) : undefined;
  }

  /** The record's hash: the caller's (checked unless verifyHashes is off) or computed. */
  private hashOf(bytes: Uint8Array, given: Uint8Array | undefined, seq: number, field: string): Uint8Array {
    if (given === undefined) return recordHash(bytes);
    checkHashShape(given, field);
    if (this.verifyHashes) {
      const actual = recordHash(bytes);
      if (!Buffer.from(actual).equals(Buffer.from(given))) throw wrongHash(field, seq, given, actual);
    }
    return new Uint8Array(given);
  }

  appendBatch(sign1: Uint8Array): Promise<{ batchSeq: number; firstSeq: number; count: number }> {
    try {
      this.assertOpen();
      const h = batchHeaderOfSign1(sign1);
      checkBatch(this.tip, h, this.deviceId);
      this.reserve(FRAME_OVERHEAD + sign1.length, false);
      const hash = sha256(sign1);
      applyBatch(this.tip, h, hash);
      const copy = new Uint8Array(sign1);
      return this.enqueue(
        FRAME_OVERHEAD + sign1.length,
        () => {
          this.store.batches.push({ sign1: copy, firstSeq: h.firstSeq, count: h.count });
          applyBatch(this.store.state, h, hash);
          this.m.batches++;
        },
        { batchSeq: h.batchSeq, firstSeq: h.firstSeq, count: h.count },
      );
    } catch (e) {
      return this.refuse(e);
    }
  }

  markCommitted(batchSeq: number, receipt: Uint8Array): Promise<{ batchSeq: number; duplicate: boolean }> {
    try {
      this.assertOpen();
      abytes(receipt, 'commit.receipt');
      if (receipt.length > MAX_RECEIPT_BYTES) throw new JournalError('CHAIN', `commit.receipt: ${receipt.length} bytes exceeds ${MAX_RECEIPT_BYTES}`, { field: 'commit.receipt' });
      if (!checkCommit(this.tip, batchSeq)) return Promise.resolve({ batchSeq, duplicate: true });
      if (batchSeq >= this.store.state.nextBatchSeq)
        throw new JournalError('NOT_FOUND', `commit.batch_seq: batch ${batchSeq} is not durable yet, so no receipt for it can exist (it was never published)`, { field: 'commit.batch_seq' });
      const b = this.store.batches[batchSeq - this.store.firstBatch];
      const lastSeq = b.firstSeq + b.count - 1;
      const size = FRAME_OVERHEAD + COMMIT_FIXED + receipt.length;
      this.reserve(size, false);
      applyCommit(this.tip, batchSeq, lastSeq);
      const copy = new Uint8Array(receipt);
      return this.enqueue(
        size,
        () => {
          this.store.receipts.set(batchSeq, copy);
          applyCommit(this.store.state, batchSeq, lastSeq);
          this.m.commits++;
        },
        { batchSeq, duplicate: false },
      );
    } catch (e) {
      return this.refuse(e);
    }
  }

  head(): JournalHead {
    return { nextSeq: this.tip.nextSeq, prev: this.tip.lastRecordHash, nextBatchSeq: this.tip.nextBatchSeq, prevBatch: this.tip.lastBatchHash, batchedThroughSeq: this.tip.batchedThroughSeq };
  }

  unbatchedRecords(): AsyncIterable<StoredRecord> {
    return this.records(this.tip.batchedThroughSeq + 1);
  }

  records(fromSeq: number, toSeq?: number): AsyncIterable<StoredRecord> {
    this.assertOpen();
    const s = this.store;
    const to = Math.min(toSeq ?? Infinity, s.state.nextSeq - 1);
    return (async function* () {
      for (let seq = Math.max(fromSeq, s.firstSeq, 1); seq <= to; seq++) {
        const b = s.records[seq - s.firstSeq];
        if (!b) return; // compacted meanwhile
        yield { seq, bytes: new Uint8Array(b) };
      }
    })();
  }

  unreceiptedBatches(fromBatchSeq = 1): AsyncIterable<StoredBatch> {
    this.assertOpen();
    const s = this.store;
    const to = s.state.nextBatchSeq - 1;
    return (async function* () {
      for (let b = Math.max(fromBatchSeq, s.firstBatch, s.state.committedThrough + 1, 1); b <= to; b++) {
        if (isCommitted(s.state, b)) continue;
        const x = s.batches[b - s.firstBatch];
        if (!x) return;
        yield { batchSeq: b, firstSeq: x.firstSeq, count: x.count, sign1: new Uint8Array(x.sign1), committed: false };
      }
    })();
  }

  async getRecord(seq: number): Promise<Uint8Array | undefined> {
    this.assertOpen();
    const s = this.store;
    if (seq >= s.state.nextSeq) return undefined;
    const b = s.records[seq - s.firstSeq];
    return b ? new Uint8Array(b) : undefined;
  }

  async getBatch(batchSeq: number): Promise<StoredBatch | undefined> {
    this.assertOpen();
    const s = this.store;
    if (batchSeq >= s.state.nextBatchSeq) return undefined;
    const x = s.batches[batchSeq - s.firstBatch];
    return x ? { batchSeq, firstSeq: x.firstSeq, count: x.count, sign1: new Uint8Array(x.sign1), committed: isCommitted(s.state, batchSeq) } : undefined;
  }

  async getReceipt(batchSeq: number): Promise<Uint8Array | undefined> {
    this.assertOpen();
    const r = this.store.receipts.get(batchSeq);
    return r ? new Uint8Array(r) : undefined;
  }

  async compact(): Promise<CompactResult> {
    this.assertOpen();
    const s = this.store;
    let freed = 0;
    let n = 0;
    while (s.records.length && s.firstSeq <= s.state.committedThroughSeq) {
      freed += FRAME_OVERHEAD + s.records.shift()!.length;
      s.firstSeq++;
    }
    // States behind the freed records go with them; the latest stays.
    while (s.stateRoom.length > 1 && s.stateRoom[0][0] < s.firstSeq) freed += s.stateRoom.shift()![1];
    while (s.batches.length && s.firstBatch <= s.state.committedThrough) {
      freed += FRAME_OVERHEAD + s.batches.shift()!.sign1.length;
      const r = s.receipts.get(s.firstBatch);
      if (r) freed += FRAME_OVERHEAD + COMMIT_FIXED + r.length;
      s.receipts.delete(s.firstBatch);
      s.firstBatch++;
      n++;
    }
    s.usedBytes -= freed;
    this.tipUsed -= freed;
    this.updateBackpressure();
    if (freed) this.emit({ type: 'compacted', segmentsDeleted: n, bytesFreed: freed, firstSeq: s.firstSeq });
    return { segmentsDeleted: n, bytesFreed: freed };
  }

  stats(): JournalStats {
    const st = this.store.state;
    return {
      deviceId: this.deviceId,
      readOnly: false,
      lastSeq: st.nextSeq - 1,
      firstSeq: this.store.firstSeq,
      lastBatchSeq: st.nextBatchSeq - 1,
      firstBatchSeq: this.store.firstBatch,
      batchedThroughSeq: st.batchedThroughSeq,
      committedThroughBatch: st.committedThrough,
      committedThroughSeq: st.committedThroughSeq,
      committedAbove: st.committedAbove.map(([b]) => b),
      segments: 0,
      usedBytes: this.store.usedBytes,
      capacityBytes: this.quota.capacity,
      backpressure: this.quota.current(),
      recovery: this.report,
    };
  }

  metrics(): JournalMetrics {
    const st = this.store.state;
    const bp = this.quota.current();
    const backlog = Math.max(0, st.nextSeq - 1 - Math.max(st.committedThroughSeq, this.store.firstSeq - 1));
    const oldest = backlog > 0 ? this.store.records[Math.max(st.committedThroughSeq + 1, this.store.firstSeq) - this.store.firstSeq] : undefined;
    return {
      records_appended_total: this.m.records,
      batches_appended_total: this.m.batches,
      commits_appended_total: this.m.commits,
      appends_refused_total: this.m.refused,
      bytes_appended_total: this.m.bytes,
      fsyncs_total: this.m.fsyncs,
      fsync_seconds_total: 0,
      group_entries_total: this.m.groupEntries,
      pending_bytes: this.tipUsed - this.store.usedBytes,
      backlog_bytes: this.store.usedBytes,
      backlog_records: backlog,
      backlog_unbatched_records: st.nextSeq - 1 - st.batchedThroughSeq,
      backlog_unreceipted_batches: st.nextBatchSeq - 1 - st.committedThrough - st.committedAbove.length,
      backlog_age_seconds: oldest ? Math.max(0, (Date.now() - readRecordHead(oldest).time) / 1000) : 0,
      capacity_bytes: this.quota.capacity,
      quota_used_ratio: this.tipUsed / this.quota.capacity,
      backpressure_state: stateNumber(bp.state),
      alarm: bp.state !== 'ok' ? 1 : 0,
      disk_full: 0,
      read_only: 0,
      failed: 0,
      segments: 0,
      segments_deleted_total: 0,
      checkpoints_total: 0,
      checkpoint_errors_total: 0,
      recovery_ms: 0,
      recovery_dropped_bytes: 0,
      units_appended_total: this.m.units,
      state_entries_total: this.m.units,
      state_bytes_total: this.m.stateBytes,
      last_state_bytes: this.store.lastState?.length ?? 0,
    };
  }

  backpressure(): Backpressure {
    return this.quota.current();
  }

  private updateBackpressure(): void {
    const c = this.quota.update(this.tipUsed);
    if (c) this.emit({ type: 'backpressure', backpressure: c });
  }

  subscribe(listener: (e: JournalEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: JournalEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        /* a listener's failure is its own */
      }
    }
  }
}
