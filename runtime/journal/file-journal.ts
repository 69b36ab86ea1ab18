// FileJournal: the light node's durable store-and-forward outbox on the local
// filesystem (docs/JOURNAL.md). Segmented, append-only, preallocated files;
// group commit; recovery from a checkpoint; sparse on-disk indexes; quota and
// back-pressure; compaction only behind verified receipts; atomic units of
// records and the pipeline's state.
//
// The promises it keeps (ARCHITECTURE §2):
// - invariant 1: an append resolves only after the fsync that covers it, so
//   the MCU link acknowledges only durable readings; recovery never drops an
//   entry that was acknowledged (a torn tail holds only unacknowledged bytes).
// - invariant 2: readers return only durable entries (nothing is published
//   that is not durable); compaction deletes a segment only when every record
//   and batch in it is covered by a commit mark from a verified receipt.
// - invariant 3: every append is checked against the seq / prev-hash / batch
//   chain, and recovery re-checks the entries it reads back.
// - invariant 6: the backlog lives on disk within the quota; memory holds
//   sparse indexes, the pending group and the latest state only.
//
// Pieces elsewhere: options (file-journal-options.ts), the pending queue
// (frame-queue.ts), readers (readers.ts), recovery (recovery.ts), segment
// files (segment-files.ts), spares (spares.ts), periodic checkpoints
// (checkpoint.ts), preallocation (preallocate.ts).
import { mkdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { batchHeaderOfSign1 } from '../../protocol/batch.js';
import { sha256 } from '../../protocol/bytes.js';
import { abytes } from '../../protocol/errors.js';
import { MAX_RECEIPT_BYTES } from '../../protocol/limits.js';
import { decodeRecord } from '../../protocol/record.js';
import { Quota, stateNumber } from './backpressure.js';
import { applyBatch, applyCommit, checkBatch, checkCommit, checkRecord, cloneState, genesisState, isCommitted, prevOffset, recordContinues, type ChainState } from './chain-state.js';
import { CHECKPOINT_NAME, PeriodicCheckpoint, writeCheckpoint } from './checkpoint.js';
import { lockDir } from './dir-lock.js';
import { fsError, JournalError } from './errors.js';
import { resolveOptions, type FileJournalOptions } from './file-journal-options.js';
import { commitHead, EntryType, FRAME_HEAD, FRAME_OVERHEAD, writeFrame } from './frame.js';
import { FrameQueue, UNIT, type Pending, type Roll } from './frame-queue.js';
import { fsyncDir, writeAll, zeroFill } from './fs-util.js';
import type { Backpressure, CompactResult, Journal, JournalEvent, JournalHead, JournalMetrics, JournalStats, RecoveryReport, StoredBatch, StoredRecord } from './journal.js';
import { Preallocator, type PreallocateMethod } from './preallocate.js';
import { readBatches, readReceipt, readRecords, verifySegments, type Problem } from './readers.js';
import { readRecordHead } from './record-head.js';
import { latin1Into, latin1ToBytes, recordHashLatin1 } from './record-hash.js';
import { recover } from './recovery.js';
import { deleteSegment, openSegment, writeIndexQuietly } from './segment-files.js';
import { Spares } from './spares.js';
import { encodeSegmentHeader, newNonce } from './segment-header.js';
import { SegmentSummary } from './segment-summary.js';
import { checkHashShape, inUnit, unitSize, wrongHash } from './unit.js';

export type { FileJournalOptions } from './file-journal-options.js';

type Lifecycle = 'new' | 'opening' | 'open' | 'closing' | 'closed';

export class FileJournal implements Journal {
  readonly dir: string;
  readonly deviceId: string;
  readonly readOnly: boolean;
  readonly segmentBytes: number;
  readonly maxSegments: number;
  readonly maxGroupBytes: number;
  readonly maxUnitBytes: number;
  readonly groupCommitMs: number;
  /** Segment files are full-size from creation (preallocated). */
  readonly preallocate: boolean;
  readonly checkpointEveryBytes: number;
  readonly autoCompact: boolean;
  readonly verifyFull: boolean;
  readonly verifyHashes: boolean;
  /** Bytes of the active segment records may not use while the disk is full. */
  readonly segmentReserve: number;
  private readonly deviceIdBytes: Uint8Array;
  private readonly quota: Quota;
  /** How new segments get their blocks (undefined: not preallocated). */
  private readonly prealloc: Preallocator | undefined;

  private life: Lifecycle = 'new';
  private unlock: (() => Promise<void>) | undefined;
  private segments: SegmentSummary[] = [];
  private active: SegmentSummary | undefined;
  private activeFh: FileHandle | undefined;
  private report: RecoveryReport | undefined;
  private failure: JournalError | undefined;
  private listeners = new Set<(e: JournalEvent) => void>();

  // The tip: chain state and placement including pending appends.
  private tip: ChainState = genesisState();
  /** SHA-256 of the last appended record; tip.lastRecordHash lags it while tipHashStale. */
  private readonly tipHash = new Uint8Array(32);
  private tipHashStale = false;
  private tipSeg = 0;
  private tipOff = 0;
  /** The state of the last unit appended (pending or durable), our own copy. */
  private tipStateBlob: Uint8Array | undefined;
  /** The state of the last durable unit. */
  private durableStateBlob: Uint8Array | undefined;
  /** Set by place(): the segment the placed entry opens. */
  private placedRoll: Roll | undefined;

  // Group commit.
  private readonly q = new FrameQueue();
  private flushing = false;
  private timer: NodeJS.Timeout | undefined;
  private immediate = false;
  private idleWaiters: Array<() => void> = [];
  // One executor for every append's promise: no closure per append.
  private capRes: ((v: never) => void) | undefined;
  private capRej: ((e: unknown) => void) | undefined;
  private readonly capture = (res: (v: never) => void, rej: (e: unknown) => void): void => {
    this.capRes = res;
    this.capRej = rej;
  };

  // Background work.
  private readonly spares: Spares | undefined;
  private readonly checkpoint: PeriodicCheckpoint;
  private background = new Set<Promise<unknown>>();
  private compacting: Promise<CompactResult> | undefined;
  private compactQueued = false;
  private recentBatches = new Map<number, number>(); // batch_seq → last seq, bounded
  private oldest: { seq: number; time: number } | undefined;
  private ageRefreshing = false;

  private m = {
    records: 0,
    batches: 0,
    commits: 0,
    units: 0,
    stateEntries: 0,
    stateBytes: 0,
    refused: 0,
    bytes: 0,
    fsyncs: 0,
    fsyncSeconds: 0,
    groupEntries: 0,
    segmentsDeleted: 0,
    checkpoints: 0,
    checkpointErrors: 0,
  };

  constructor(o: FileJournalOptions) {
    const r = resolveOptions(o);
    this.dir = r.dir;
    this.deviceId = r.deviceId;
    this.deviceIdBytes = Buffer.from(r.deviceId, 'latin1');
    this.readOnly = r.readOnly;
    this.segmentBytes = r.segmentBytes;
    this.maxSegments = r.maxSegments;
    this.maxGroupBytes = r.maxGroupBytes;
    this.maxUnitBytes = r.maxUnitBytes;
    this.groupCommitMs = r.groupCommitMs;
    this.prealloc = r.preallocate && !r.readOnly ? new Preallocator(r.dir, r.preallocate) : undefined;
    this.preallocate = r.preallocate !== undefined;
    this.checkpointEveryBytes = r.checkpointEveryBytes;
    this.autoCompact = r.autoCompact;
    this.verifyFull = r.verifyFull;
    this.verifyHashes = r.verifyHashes;
    this.quota = new Quota(r.capacity, o);
    this.segmentReserve = Math.min(this.quota.capacity - this.quota.recordLimit, Math.floor(r.segmentBytes / 4));
    if (this.readOnly) this.quota.readOnly = true;
    this.spares = this.prealloc
      ? new Spares(
          {
            dir: this.dir,
            segmentBytes: this.segmentBytes,
            mayPrepare: () => this.life !== 'closing' && !this.failure && !!this.active && this.segments.length + 1 <= this.maxSegments,
            activeEnd: () => this.active?.end ?? 0,
            diskFull: (full, message) => {
              if (full === this.quota.diskFull) return;
              this.quota.diskFull = full;
              if (message) this.alarm('DISK_FULL', message);
              this.updateBackpressure();
            },
          },
          this.prealloc,
        )
      : undefined;
    this.checkpoint = new PeriodicCheckpoint(
      this.dir,
      this.checkpointEveryBytes,
      () => (this.readOnly ? undefined : this.active?.snapshot()),
      (e) => {
        if (!e) return void this.m.checkpoints++;
        this.m.checkpointErrors++;
        this.alarm('CHECKPOINT', `could not write the checkpoint (${e.message}); the next open scans more of the last segment`);
      },
    );
  }

  /** How new segments get their blocks now: 'fallocate', 'zero-fill' (where fallocate is unsupported, or chosen), or undefined (not preallocated). */
  get preallocation(): PreallocateMethod | undefined {
    return this.prealloc?.method;
  }

  // ------------------------------------------------------------ lifecycle

  async open(): Promise<void> {
    if (this.life !== 'new') throw new JournalError('CLOSED', `journal ${this.dir}: open() may be called once (state: ${this.life})`);
    this.life = 'opening';
    try {
      if (this.readOnly) {
        const st = await stat(this.dir).catch((e) => {
          throw fsError(e, 'open read-only', this.dir);
        });
        if (!st.isDirectory()) throw new JournalError('CONFIG', `${this.dir} is not a directory`, { path: this.dir });
      } else {
        const created = await mkdir(this.dir, { recursive: true }).catch((e) => {
          throw fsError(e, 'create directory', this.dir);
        });
        // A new directory's own entry must be durable too, or a power loss
        // could lose the whole journal right after its first acknowledgement.
        if (created !== undefined) {
          const stop = dirname(resolvePath(created));
          for (let d = resolvePath(this.dir); ; d = dirname(d)) {
            await fsyncDir(dirname(d));
            if (dirname(d) === stop || dirname(d) === d) break;
          }
        }
        this.unlock = await lockDir(this.dir);
        this.prealloc?.start();
      }
      const rec = await recover({ dir: this.dir, deviceId: this.deviceId, readOnly: this.readOnly, preallocate: this.prealloc, segmentBytes: this.segmentBytes, maxGroupBytes: this.maxGroupBytes });
      this.segments = rec.segments;
      this.active = rec.segments[rec.segments.length - 1];
      this.activeFh = rec.activeFh;
      this.report = rec.report;
      this.durableStateBlob = this.tipStateBlob = rec.lastState;
      this.setTip(cloneState(this.durable()));
      this.tipSeg = this.active?.id ?? 0;
      this.tipOff = this.active?.end ?? 0;
      if (!this.readOnly) {
        // Mark the checkpoint dirty before any append: a later crash must not
        // be mistaken for a clean close (which skips the torn-tail check).
        try {
          await writeCheckpoint(this.dir, { summary: this.active!.snapshot(), clean: false }, true);
          this.m.checkpoints++;
        } catch (e) {
          this.m.checkpointErrors++;
          await unlink(join(this.dir, CHECKPOINT_NAME)).catch(() => {});
          this.alarm('CHECKPOINT', `could not write the checkpoint at open (${(e as Error).message}); the next open will scan the last segment`);
        }
        if (rec.spareReady) this.spares?.adopt();
        this.spares?.prepare(true);
        // fallocate takes milliseconds: open() returns with nothing of its own
        // still in flight, so the first appends do not pay for it. (Zero-fill
        // takes seconds on slow flash; that one stays in the background.)
        if (this.prealloc?.method === 'fallocate') await this.spares?.ready();
      }
      this.life = 'open';
    } catch (e) {
      this.prealloc?.stop();
      await this.activeFh?.close().catch(() => {});
      this.activeFh = undefined;
      await this.unlock?.();
      this.unlock = undefined;
      this.life = 'closed';
      throw e;
    }
    this.emit({ type: 'recovered', report: this.report! });
    const d = this.report!.dropped;
    if (d)
      this.alarm(
        'RECOVERY',
        `recovery dropped a torn tail: ${d.bytes} bytes at offset ${d.offset} of ${d.path} (${d.reason})${d.tornUnit ? `, including a whole unit of ${d.tornUnit.records} records from seq ${d.tornUnit.firstSeq}` : ''}; kept records through ${d.keptThroughSeq}`,
      );
    this.updateBackpressure();
    this.refreshAge();
  }

  async close(): Promise<void> {
    if (this.life === 'new') {
      this.life = 'closed';
      return;
    }
    if (this.life === 'closing' || this.life === 'closed' || this.life === 'opening') return;
    this.life = 'closing';
    await this.idle();
    await this.compacting?.catch(() => {});
    await this.spares?.close();
    await Promise.all(this.background);
    await this.checkpoint.drain();
    if (!this.readOnly && !this.failure && this.active) {
      try {
        await writeCheckpoint(this.dir, { summary: this.active.snapshot(), clean: true }, true);
        this.m.checkpoints++;
      } catch (e) {
        this.m.checkpointErrors++;
        this.alarm('CHECKPOINT', `could not write the clean checkpoint at close (${(e as Error).message}); the next open scans the last segment`);
      }
    }
    this.prealloc?.stop();
    await this.activeFh?.close().catch(() => {});
    this.activeFh = undefined;
    await this.unlock?.();
    this.unlock = undefined;
    this.life = 'closed';
  }

  // ------------------------------------------------------------ appends

  appendRecord(bytes: Uint8Array, hash?: Uint8Array): Promise<{ seq: number }> {
    try {
      this.assertWritable();
      const seq = recordContinues(this.tip.nextSeq, this.tipHash, bytes, this.deviceIdBytes);
      if (seq < 0) this.throwChain(bytes, this.tip.nextSeq, this.tipHash);
      if (this.verifyFull) decodeRecord(bytes);
      // The caller's hash is trusted unless verifyHashes; the journal then
      // hashes only the last record of each group (see fold).
      let computed: string | undefined;
      if (hash === undefined) computed = recordHashLatin1(bytes);
      else {
        checkHashShape(hash, 'record.hash');
        if (this.verifyHashes) this.checkGivenHash(bytes, hash, seq, 'record.hash');
      }
      const size = FRAME_OVERHEAD + bytes.length;
      const off = this.place(size, true);
      const start = this.q.reserve(size);
      const chunk = this.q.chunk;
      writeFrame(chunk, start, EntryType.RECORD, bytes);
      this.tip.nextSeq = seq + 1;
      if (computed !== undefined) latin1Into(this.tipHash, computed);
      else this.tipHash.set(hash!);
      this.tipHashStale = true;
      return this.enqueue(EntryType.RECORD, chunk, start, size, off, seq, seq, 0, start, computed, undefined, undefined);
    } catch (e) {
      return this.refuse(e);
    }
  }

  appendUnit(records: Uint8Array[], state: Uint8Array, hashes?: Uint8Array[]): Promise<{ firstSeq: number; lastSeq: number }> {
    try {
      this.assertWritable();
      const size = unitSize(records, state, hashes, this.maxUnitBytes);
      const first = this.tip.nextSeq;
      const n = records.length;
      // Check the whole unit before anything changes: it goes in whole or not at all.
      let prev: Uint8Array = this.tipHash;
      let computed: string | undefined;
      for (let i = 0; i < n; i++) {
        const r = records[i];
        try {
          if (recordContinues(first + i, prev, r, this.deviceIdBytes) < 0) this.throwChain(r, first + i, prev);
          if (this.verifyFull) decodeRecord(r);
          if (hashes === undefined) {
            computed = recordHashLatin1(r);
            prev = latin1ToBytes(computed);
          } else {
            if (this.verifyHashes) this.checkGivenHash(r, hashes[i], first + i, `unit.hashes[${i}]`);
            prev = hashes[i];
          }
        } catch (e) {
          throw inUnit(e, i);
        }
      }
      const off = this.place(size, true);
      const start = this.q.reserve(size);
      const chunk = this.q.chunk;
      let pos = start;
      let lastRecAt = -1;
      for (const r of records) {
        lastRecAt = pos;
        pos += writeFrame(chunk, pos, EntryType.UNIT_RECORD, r);
      }
      writeFrame(chunk, pos, EntryType.STATE, state);
      if (n > 0) {
        this.tip.nextSeq = first + n;
        this.tipHash.set(prev);
        this.tipHashStale = true;
      }
      const blob = new Uint8Array(state);
      this.tipStateBlob = blob;
      return this.enqueue(UNIT, chunk, start, size, off, first, first + n - 1, n, lastRecAt, computed, undefined, blob);
    } catch (e) {
      return this.refuse(e);
    }
  }

  appendBatch(sign1: Uint8Array): Promise<{ batchSeq: number; firstSeq: number; count: number }> {
    try {
      this.assertWritable();
      const h = batchHeaderOfSign1(sign1);
      checkBatch(this.tip, h, this.deviceId);
      const size = FRAME_OVERHEAD + sign1.length;
      const off = this.place(size, false);
      const hash = sha256(sign1);
      applyBatch(this.tipState(), h, hash);
      this.rememberBatch(h.batchSeq, h.firstSeq + h.count - 1);
      const start = this.q.reserve(size);
      writeFrame(this.q.chunk, start, EntryType.BATCH, sign1);
      return this.enqueue(EntryType.BATCH, this.q.chunk, start, size, off, h.batchSeq, 0, 0, -1, hash, h, undefined);
    } catch (e) {
      return this.refuse(e);
    }
  }

  async markCommitted(batchSeq: number, receipt: Uint8Array): Promise<{ batchSeq: number; duplicate: boolean }> {
    try {
      this.assertWritable();
      abytes(receipt, 'commit.receipt');
      if (receipt.length > MAX_RECEIPT_BYTES) throw new JournalError('CHAIN', `commit.receipt: ${receipt.length} bytes exceeds ${MAX_RECEIPT_BYTES}`, { field: 'commit.receipt' });
      if (!checkCommit(this.tip, batchSeq)) return { batchSeq, duplicate: true };
      if (batchSeq >= this.durable().nextBatchSeq)
        throw new JournalError('NOT_FOUND', `commit.batch_seq: batch ${batchSeq} is not durable yet, so no receipt for it can exist (it was never published)`, { field: 'commit.batch_seq' });
      let lastSeq = this.recentBatches.get(batchSeq);
      if (lastSeq === undefined) {
        const b = await this.getBatch(batchSeq);
        if (!b) throw new JournalError('NOT_FOUND', `commit.batch_seq: batch ${batchSeq} is not stored`, { field: 'commit.batch_seq' });
        lastSeq = b.firstSeq + b.count - 1;
        // Re-check: the await let other appends and marks in.
        this.assertWritable();
        if (!checkCommit(this.tip, batchSeq)) return { batchSeq, duplicate: true };
      }
      const head = commitHead(batchSeq, lastSeq);
      const size = FRAME_OVERHEAD + head.length + receipt.length;
      const off = this.place(size, false);
      applyCommit(this.tip, batchSeq, lastSeq);
      const start = this.q.reserve(size);
      writeFrame(this.q.chunk, start, EntryType.COMMIT, head, receipt);
      return await this.enqueue(EntryType.COMMIT, this.q.chunk, start, size, off, batchSeq, lastSeq, 0, -1, undefined, undefined, undefined);
    } catch (e) {
      return this.refuse(e);
    }
  }

  head(): JournalHead {
    const t = this.tipState();
    return { nextSeq: t.nextSeq, prev: new Uint8Array(t.lastRecordHash), nextBatchSeq: t.nextBatchSeq, prevBatch: new Uint8Array(t.lastBatchHash), batchedThroughSeq: t.batchedThroughSeq };
  }

  lastState(): Uint8Array | undefined {
    return this.durableStateBlob ? new Uint8Array(this.durableStateBlob) : undefined;
  }

  /** Throws the exact CHAIN (or ValidationError) a record that failed the fast check deserves. */
  private throwChain(bytes: Uint8Array, nextSeq: number, prev: Uint8Array): never {
    const st = { ...this.tipState(), nextSeq, lastRecordHash: new Uint8Array(prev) };
    checkRecord(st, readRecordHead(bytes), this.deviceId);
    throw new JournalError('CHAIN', 'record: does not continue the chain');
  }

  private checkGivenHash(bytes: Uint8Array, given: Uint8Array, seq: number, field: string): void {
    const actual = sha256(bytes);
    for (let i = 0; i < 32; i++) if (actual[i] !== given[i]) throw wrongHash(field, seq, given, actual);
  }

  /** The tip with its record hash materialised (appends keep it in a reused buffer). */
  private tipState(): ChainState {
    if (this.tipHashStale) {
      this.tip.lastRecordHash = new Uint8Array(this.tipHash);
      this.tipHashStale = false;
    }
    return this.tip;
  }

  private setTip(s: ChainState): void {
    this.tip = s;
    this.tipHash.set(s.lastRecordHash);
    this.tipHashStale = false;
  }

  private assertOpen(): void {
    if (this.life !== 'open' && this.life !== 'closing') throw new JournalError('CLOSED', `journal ${this.dir} is ${this.life === 'new' ? 'not open yet: call open() first' : 'closed'}`);
  }

  private assertWritable(): void {
    if (this.life !== 'open') throw new JournalError('CLOSED', `journal ${this.dir} is ${this.life === 'new' ? 'not open yet: call open() first' : this.life === 'opening' ? 'still opening' : 'closed'}; nothing was written`);
    if (this.readOnly) throw new JournalError('READ_ONLY', `journal ${this.dir} was opened read-only; nothing was written`, { path: this.dir });
    if (this.failure) throw this.failure;
  }

  private refuse(e: unknown): Promise<never> {
    this.m.refused++;
    if (e instanceof JournalError && (e.kind === 'QUOTA' || e.kind === 'DISK_FULL' || e.kind === 'READ_ONLY')) this.updateBackpressure();
    return Promise.reject(e);
  }

  /**
   * Where an entry of `size` bytes goes: returns its offset and leaves the
   * segment it opens, if any, in placedRoll. Throws QUOTA / DISK_FULL if it
   * may not be placed; then nothing changed.
   */
  private place(size: number, isRecord: boolean): number {
    let off = this.tipOff;
    let roll: Roll | undefined;
    let live = this.tipSeg - this.segments[0].id + 1;
    // The disk is full (the next segment could not be preallocated): records
    // stop short of the active segment's end, so the batch that sync needs and
    // the commit marks of its receipts still fit; compaction then frees space.
    // Without this a full disk would deadlock: no batch, no receipt, no room.
    if (isRecord && this.quota.diskFull && this.preallocate && off + size > this.segmentBytes - this.segmentReserve)
      throw new JournalError(
        'DISK_FULL',
        `the filesystem under ${this.dir} is full: the next ${this.segmentBytes}-byte segment cannot be preallocated, so records are refused and not acknowledged; the rest of the current segment is kept for batches and commit marks. Space comes back when receipts let compaction delete committed segments, or when disk space is freed`,
        { path: this.dir, errno: 'ENOSPC' },
      );
    if (off + size > this.segmentBytes) {
      live++;
      if (live > this.maxSegments) throw this.quotaError(isRecord);
      // The new segment's base is the chain state before this entry: the tip
      // now. The latest state rides along right after the header, so deleting
      // older segments never loses it.
      const base = cloneState(this.tipState());
      const nonce = newNonce();
      const header = encodeSegmentHeader({ id: this.tipSeg + 1, nonce, deviceId: this.deviceId, createdMs: Date.now(), base });
      let carry: Buffer | undefined;
      if (this.tipStateBlob) {
        carry = Buffer.allocUnsafe(FRAME_OVERHEAD + this.tipStateBlob.length);
        writeFrame(carry, 0, EntryType.STATE, this.tipStateBlob);
      }
      roll = { id: this.tipSeg + 1, nonce, header, base, carry };
      off = header.length + (carry?.length ?? 0);
    }
    const used = (live - 1) * this.segmentBytes + off + size;
    if (used > (isRecord ? this.quota.recordLimit : this.quota.capacity)) throw this.quotaError(isRecord);
    if (roll) this.tipSeg = roll.id;
    this.tipOff = off + size;
    this.placedRoll = roll;
    return off;
  }

  private quotaError(isRecord: boolean): JournalError {
    if (isRecord) this.quota.noteRefused();
    const st = this.durable();
    const unreceipted = st.nextBatchSeq - 1 - st.committedThrough - st.committedAbove.length;
    return new JournalError(
      'QUOTA',
      isRecord
        ? `journal quota reached (${this.quota.capacity} bytes, records limited to ${this.quota.recordLimit}): the record is refused and not acknowledged. Space comes back when receipts arrive and compaction deletes committed segments (${unreceipted} batches await receipts, ${st.nextSeq - 1 - st.batchedThroughSeq} records await batching); check the uplink, or raise journal.maxBytes`
        : `journal quota reached (${this.quota.capacity} bytes), even the reserve kept for batches and commit marks is used; raise journal.reserveBytes or journal.maxBytes`,
      { field: 'journal.maxBytes' },
    );
  }

  private enqueue(
    kind: number,
    chunk: Buffer,
    start: number,
    size: number,
    off: number,
    key: number,
    lastSeq: number,
    count: number,
    lastRecAt: number,
    hash: string | Uint8Array | undefined,
    batch: Pending['batch'],
    state: Uint8Array | undefined,
  ): Promise<never> {
    const p = new Promise<never>(this.capture);
    this.q.push({ kind, chunk, start, size, roll: this.placedRoll, off, key, lastSeq, count, lastRecAt, hash, batch, state, resolve: this.capRes!, reject: this.capRej! });
    this.checkpoint.appended(size);
    this.schedule();
    this.updateBackpressure();
    return p;
  }

  // ------------------------------------------------------------ group commit

  private schedule(): void {
    if (this.flushing || this.q.empty) return;
    const now = this.groupCommitMs === 0 || this.q.bytes >= this.maxGroupBytes;
    if (now) {
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      if (this.immediate) return;
      this.immediate = true;
      setImmediate(() => {
        this.immediate = false;
        void this.flushLoop();
      });
    } else if (!this.timer && !this.immediate) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flushLoop();
      }, this.groupCommitMs);
    }
  }

  /**
   * The group-commit loop. Pipelined: as soon as group k is durable it is
   * folded into the segment's state, group k+1's write + fsync is started,
   * and only then are group k's appends acknowledged — so the appends that
   * the acknowledgements wake up are processed while k+1 is on its way to
   * the disk, instead of CPU and I/O taking turns.
   */
  private async flushLoop(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    let acked: Pending[] | undefined; // durable, acknowledgement pending
    let failed: Pending[] | undefined;
    try {
      for (;;) {
        if (this.q.empty) {
          if (acked) acked = this.acknowledge(acked);
          // Under load, appends woken by the acknowledgements just sent arrive
          // within this turn: take them into the next group at once instead of
          // going idle (the group-commit delay is for an idle journal).
          await new Promise((r) => setImmediate(r));
          if (this.q.empty) break;
        }
        const roll = this.q.peek()!.roll;
        if (roll) {
          if (acked) acked = this.acknowledge(acked);
          await this.rollover(roll);
        }
        const active = this.active!;
        const { group, iov, bytes } = this.q.take(this.maxGroupBytes);
        failed = group;
        if (group[0].off !== active.end) throw new JournalError('IO', `internal: group placed at ${group[0].off}, segment ends at ${active.end}`);
        const io = this.writeGroup(iov, group[0].off, bytes);
        io.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
        if (acked) acked = this.acknowledge(acked);
        await io;
        failed = undefined;
        const wrong = this.fold(group, bytes);
        acked = group;
        if (wrong) {
          // A caller's record hash was wrong: this group is durable and sound;
          // what was appended after it links to the wrong hash and is refused.
          acked = this.acknowledge(acked);
          this.rejectPending(wrong);
        }
      }
    } catch (e) {
      if (acked) this.acknowledge(acked);
      this.rejectPending(e, failed);
    } finally {
      this.flushing = false;
      if (!this.q.empty) this.schedule();
      else {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      }
    }
  }

  /**
   * Folds a durable group into the active segment's summary and chain state
   * (readers see it from now on). Returns a CHAIN error when the hash a caller
   * gave for the group's last record turns out wrong.
   */
  private fold(group: Pending[], bytes: number): JournalError | undefined {
    const active = this.active!;
    const st = active.endState;
    let lastRec: Pending | undefined;
    for (const it of group) {
      switch (it.kind) {
        case EntryType.RECORD:
          st.nextSeq = it.key + 1;
          active.noteRecord(it.key, it.off);
          this.m.records++;
          lastRec = it;
          break;
        case UNIT: {
          let pos = it.start;
          let off = it.off;
          for (let k = 0; k < it.count; k++) {
            const size = FRAME_OVERHEAD + it.chunk.readUInt32LE(pos);
            active.noteRecord(it.key + k, off);
            pos += size;
            off += size;
          }
          active.noteState(off, it.state!.length);
          if (it.count) {
            st.nextSeq = it.lastSeq + 1;
            lastRec = it;
          }
          this.durableStateBlob = it.state;
          this.m.records += it.count;
          this.m.units++;
          this.m.stateEntries++;
          this.m.stateBytes += it.state!.length;
          break;
        }
        case EntryType.BATCH:
          applyBatch(st, it.batch!, it.hash as Uint8Array);
          active.noteBatch(it.key, it.off);
          this.m.batches++;
          break;
        default:
          applyCommit(st, it.key, it.lastSeq);
          active.noteCommit(it.key);
          this.m.commits++;
      }
    }
    const last = group[group.length - 1];
    active.end = last.off + last.size;
    this.m.bytes += bytes;
    this.m.groupEntries += group.length;
    if (!lastRec) return undefined;
    // Only the last record's hash is state. When the journal computed it, it
    // is at hand; when the caller gave it, the journal hashes this one record
    // itself — the durable state never rests on a caller's word — and checks
    // that what was appended after it linked to that very hash.
    if (typeof lastRec.hash === 'string') {
      st.lastRecordHash = latin1ToBytes(lastRec.hash);
      return undefined;
    }
    const f = lastRec.lastRecAt;
    const real = sha256(lastRec.chunk.subarray(f + FRAME_HEAD, f + FRAME_HEAD + lastRec.chunk.readUInt32LE(f)));
    st.lastRecordHash = real;
    const seq = lastRec.kind === UNIT ? lastRec.lastSeq : lastRec.key;
    const next = this.q.firstWithRecord();
    let linked: Uint8Array;
    if (next) {
      // Its first frame is its first record (a unit's records come before its state).
      const p = next.start;
      const payload = next.chunk.subarray(p + FRAME_HEAD, p + FRAME_HEAD + next.chunk.readUInt32LE(p));
      const at = prevOffset(payload);
      linked = payload.subarray(at, at + 32);
    } else linked = this.tipHash;
    for (let i = 0; i < 32; i++) if (linked[i] !== real[i]) return wrongHash('record.hash', seq, linked, real);
    return undefined;
  }

  /** Resolves a durable group's appends (invariant 1: only now may the MCU link ACK). */
  private acknowledge(group: Pending[]): undefined {
    this.q.releaseBefore(group[group.length - 1].chunk);
    let commits = false;
    for (const it of group) {
      const resolve = it.resolve as (v: unknown) => void;
      switch (it.kind) {
        case EntryType.RECORD:
          resolve({ seq: it.key });
          break;
        case UNIT:
          resolve({ firstSeq: it.key, lastSeq: it.lastSeq });
          break;
        case EntryType.BATCH:
          resolve({ batchSeq: it.key, firstSeq: it.batch!.firstSeq, count: it.batch!.count });
          break;
        default:
          commits = true;
          resolve({ batchSeq: it.key, duplicate: false });
      }
    }
    this.afterFlush(commits);
    return undefined;
  }

  /**
   * Writes a group and makes it durable in one request: the active segment is
   * open with O_DSYNC, so each write returns only once its data (and the
   * metadata needed to read it) is on stable storage — an fdatasync of the
   * written range, done by the kernel inside the same system call. Why not
   * write, then fdatasync: that is two trips through libuv's thread pool, and
   * the second starts only when the event loop gets round to it, which under
   * load is after the acknowledgements of the group before (measured: ~1 ms
   * per group idle, a third of the throughput).
   */
  private async writeGroup(iov: Buffer[], pos: number, bytes: number): Promise<void> {
    const t0 = performance.now();
    try {
      await writeAll(this.activeFh!, iov, pos);
    } catch (e) {
      const err = fsError(e, 'append to', this.active!.path);
      if (err.kind === 'IO') {
        // The write may have failed in its sync: after a failed fsync the
        // kernel may have dropped the dirty pages and cleared the error (the
        // "fsyncgate" lesson), so nothing since the last good one can be
        // trusted, and retrying could report success over lost data.
        const stop = new JournalError(
          'IO',
          `durable write to ${this.active!.path} failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): data written since the last good one may be lost, so the journal stops accepting appends (nothing after record ${this.durable().nextSeq - 1} was acknowledged). Check the disk (dmesg), then restart the node: reopening recovers from what is on disk`,
          { path: this.active!.path, errno: (e as NodeJS.ErrnoException).code, cause: e },
        );
        this.failure = stop;
        this.quota.failed = true;
        this.alarm('IO', stop.message);
        throw stop;
      }
      // Refused before anything was stored (no space, not writable): undo
      // what may have reached the file, best effort — it was not
      // acknowledged, and recovery would treat leftovers as a torn tail.
      try {
        if (this.preallocate) await zeroFill(this.activeFh!, pos, pos + bytes);
        else await this.activeFh!.truncate(pos);
      } catch {
        /* the original error is what matters */
      }
      throw err;
    }
    this.m.fsyncs++;
    this.m.fsyncSeconds += (performance.now() - t0) / 1000;
  }

  /** Rejects everything pending (and `inFlight`, the group whose write failed) with `e`; rolls the tip back to the durable state. */
  private rejectPending(e: unknown, inFlight: Pending[] = []): void {
    const err = e instanceof JournalError ? e : fsError(e, 'append to', this.active?.path ?? this.dir);
    const items = [...inFlight, ...this.q.clear()];
    this.setTip(cloneState(this.durable()));
    this.tipSeg = this.active!.id;
    this.tipOff = this.active!.end;
    this.tipStateBlob = this.durableStateBlob;
    if (err.kind === 'DISK_FULL') this.quota.diskFull = true;
    if (err.kind === 'READ_ONLY') this.quota.readOnly = true;
    this.m.refused += items.length;
    this.alarm(err.kind, `${items.length} pending appends were refused and not acknowledged: ${err.message}`);
    this.updateBackpressure();
    for (const it of items) it.reject(err);
  }

  private afterFlush(commits: boolean): void {
    if (this.quota.readOnly && !this.readOnly) this.quota.readOnly = false;
    if (!this.preallocate && this.quota.diskFull) this.quota.diskFull = false;
    this.updateBackpressure();
    this.checkpoint.maybe(false);
    this.spares?.prepare(false);
    if (commits) {
      this.refreshAge();
      if (this.autoCompact && this.compactable()) void this.compact().catch((e) => this.alarm('COMPACTION', (e as Error).message));
    } else if (this.oldest === undefined) this.refreshAge();
  }

  /** Resolves when no append is pending. */
  private idle(): Promise<void> {
    if (!this.flushing && this.q.empty) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  // ------------------------------------------------------------ segments

  /** Seals the active segment and opens segment `roll.id` (all of the old one is durable). */
  private async rollover(roll: Roll): Promise<void> {
    const old = this.active!;
    let opened: Awaited<ReturnType<typeof openSegment>>;
    try {
      opened = await openSegment(this.dir, roll, old, this.spares ? () => this.spares!.take() : undefined);
    } catch (e) {
      if ((e as JournalError).kind === 'DISK_FULL') this.alarm('DISK_FULL', `the next journal segment (${this.segmentBytes} bytes) cannot be allocated: ${(e as Error).message}`);
      throw e;
    } finally {
      this.spares?.done();
    }
    const { fh, summary } = opened;
    if (roll.carry) {
      this.m.stateEntries++;
      this.m.stateBytes += roll.carry.length - FRAME_OVERHEAD;
    }
    this.segments.push(summary);
    const oldFh = this.activeFh;
    this.active = summary;
    this.activeFh = fh;
    // Off the appends' critical path from here on: closing the sealed
    // segment, and its index sidecar (a cache: a crash before it lands costs
    // one segment scan at the next open).
    this.inBackground(oldFh?.close().catch(() => {}));
    this.inBackground(
      writeIndexQuietly(this.dir, old, (msg) => {
        this.m.checkpointErrors++;
        this.alarm('CHECKPOINT', msg);
      }),
    );
    // No checkpoint now (the next periodic one covers the new segment; until
    // then an open scans it from its start), and the next spare only once
    // this segment is a little way in.
    this.spares?.prepare(false);
  }

  private inBackground(p: Promise<unknown> | undefined): void {
    if (!p) return;
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  // ------------------------------------------------------------ compaction

  private compactable(): boolean {
    if (this.segments.length < 2) return false;
    const s = this.segments[0];
    const st = this.durable();
    return (s.lastSeq === 0 || s.lastSeq <= st.committedThroughSeq) && (s.lastBatch === 0 || s.lastBatch <= st.committedThrough);
  }

  compact(): Promise<CompactResult> {
    try {
      this.assertOpen();
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.readOnly) return Promise.resolve({ segmentsDeleted: 0, bytesFreed: 0 });
    if (this.compacting) {
      if (this.compactQueued) return this.compacting;
      this.compactQueued = true;
      const next = this.compacting.catch(() => undefined).then(() => {
        this.compactQueued = false;
        return this.doCompact();
      });
      this.compacting = next;
      return next;
    }
    const p = this.doCompact().finally(() => {
      if (this.compacting === p) this.compacting = undefined;
    });
    this.compacting = p;
    return p;
  }

  private async doCompact(): Promise<CompactResult> {
    let deleted = 0;
    let freed = 0;
    // Oldest first, and only a prefix: the oldest segment left always starts
    // where the deleted ones ended (its header holds that chain state, and
    // its first entry the latest state as of then).
    while (this.compactable()) {
      freed += await deleteSegment(this.dir, this.segments[0]);
      this.segments.shift();
      deleted++;
    }
    if (deleted) {
      await fsyncDir(this.dir);
      this.m.segmentsDeleted += deleted;
      this.spares?.prepare(true);
      // On a full disk, the freed space goes to the next segment first; records
      // are accepted again once it is preallocated (diskFull clears).
      if (this.quota.diskFull) await this.spares?.ready();
      this.updateBackpressure();
      this.emit({ type: 'compacted', segmentsDeleted: deleted, bytesFreed: freed, firstSeq: this.firstSeq() });
    }
    return { segmentsDeleted: deleted, bytesFreed: freed };
  }

  // ------------------------------------------------------------ readers

  private durable(): ChainState {
    return this.active?.endState ?? genesisState();
  }

  private firstSeq(): number {
    for (const s of this.segments) if (s.firstSeq) return s.firstSeq;
    return this.durable().nextSeq;
  }

  private firstBatchSeq(): number {
    for (const s of this.segments) if (s.firstBatch) return s.firstBatch;
    return this.durable().nextBatchSeq;
  }

  unbatchedRecords(): AsyncIterable<StoredRecord> {
    return this.records(this.tip.batchedThroughSeq + 1);
  }

  records(fromSeq: number, toSeq?: number): AsyncIterable<StoredRecord> {
    this.assertOpen();
    return readRecords([...this.segments], fromSeq, Math.min(toSeq ?? Infinity, this.durable().nextSeq - 1));
  }

  unreceiptedBatches(fromBatchSeq = 1): AsyncIterable<StoredBatch> {
    this.assertOpen();
    return this.batches(Math.max(fromBatchSeq, this.durable().committedThrough + 1), this.durable().nextBatchSeq - 1, true);
  }

  private batches(from: number, to: number, unreceiptedOnly: boolean): AsyncIterable<StoredBatch> {
    return readBatches([...this.segments], from, to, (b) => isCommitted(this.durable(), b), unreceiptedOnly, (b, l) => this.rememberBatch(b, l));
  }

  async getRecord(seq: number): Promise<Uint8Array | undefined> {
    for await (const r of this.records(seq, seq)) return r.bytes;
    return undefined;
  }

  async getBatch(batchSeq: number): Promise<StoredBatch | undefined> {
    this.assertOpen();
    for await (const b of this.batches(batchSeq, Math.min(batchSeq, this.durable().nextBatchSeq - 1), false)) return b;
    return undefined;
  }

  async getReceipt(batchSeq: number): Promise<Uint8Array | undefined> {
    this.assertOpen();
    return readReceipt([...this.segments], batchSeq);
  }

  private rememberBatch(batchSeq: number, lastSeq: number): void {
    this.recentBatches.set(batchSeq, lastSeq);
    if (this.recentBatches.size > 256) this.recentBatches.delete(this.recentBatches.keys().next().value!);
  }

  /**
   * Scans every segment in full (CRCs, chain, units), for an operator's check
   * or after a CORRUPT error. Returns the problems found; an empty list is a
   * healthy journal.
   */
  async verify(): Promise<Problem[]> {
    this.assertOpen();
    return verifySegments([...this.segments], this.active, this.deviceId);
  }

  // ------------------------------------------------------------ state, metrics, events

  private usedBytes(): number {
    if (!this.active) return 0;
    return (this.tipSeg - this.segments[0].id) * this.segmentBytes + this.tipOff;
  }

  private durableUsedBytes(): number {
    if (!this.active) return 0;
    return (this.active.id - this.segments[0].id) * this.segmentBytes + this.active.end;
  }

  private updateBackpressure(): void {
    const changed = this.quota.update(this.usedBytes());
    if (changed) {
      this.emit({ type: 'backpressure', backpressure: changed });
      if (changed.state !== 'ok') this.alarm('BACKPRESSURE', `journal back-pressure ${changed.state} (${changed.reason}): ${changed.usedBytes} of ${changed.capacityBytes} bytes used`);
    }
  }

  backpressure(): Backpressure {
    return this.quota.current();
  }

  private refreshAge(): void {
    if (this.ageRefreshing || (this.life !== 'open' && this.life !== 'opening')) return;
    const st = this.durable();
    const seq = Math.max(st.committedThroughSeq + 1, this.firstSeq());
    if (seq > st.nextSeq - 1) {
      this.oldest = undefined;
      return;
    }
    if (this.oldest?.seq === seq) return;
    this.ageRefreshing = true;
    this.getRecord(seq)
      .then((b) => {
        this.oldest = b ? { seq, time: readRecordHead(b).time } : undefined;
      })
      .catch(() => {})
      .finally(() => {
        this.ageRefreshing = false;
      });
  }

  stats(): JournalStats {
    const st = this.durable();
    return {
      deviceId: this.deviceId,
      readOnly: this.readOnly,
      lastSeq: st.nextSeq - 1,
      firstSeq: this.firstSeq(),
      lastBatchSeq: st.nextBatchSeq - 1,
      firstBatchSeq: this.firstBatchSeq(),
      batchedThroughSeq: st.batchedThroughSeq,
      committedThroughBatch: st.committedThrough,
      committedThroughSeq: st.committedThroughSeq,
      committedAbove: st.committedAbove.map(([b]) => b),
      segments: this.segments.length,
      usedBytes: this.durableUsedBytes(),
      capacityBytes: this.quota.capacity,
      backpressure: this.quota.current(),
      recovery: this.report,
    };
  }

  metrics(): JournalMetrics {
    const st = this.durable();
    const bp = this.quota.current();
    const lastSeq = st.nextSeq - 1;
    const backlogRecords = Math.max(0, lastSeq - Math.max(st.committedThroughSeq, this.firstSeq() - 1));
    return {
      records_appended_total: this.m.records,
      batches_appended_total: this.m.batches,
      commits_appended_total: this.m.commits,
      appends_refused_total: this.m.refused,
      bytes_appended_total: this.m.bytes,
      fsyncs_total: this.m.fsyncs,
      fsync_seconds_total: this.m.fsyncSeconds,
      group_entries_total: this.m.groupEntries,
      pending_bytes: this.q.bytes,
      backlog_bytes: this.durableUsedBytes(),
      backlog_records: backlogRecords,
      backlog_unbatched_records: lastSeq - st.batchedThroughSeq,
      backlog_unreceipted_batches: st.nextBatchSeq - 1 - st.committedThrough - st.committedAbove.length,
      backlog_age_seconds: backlogRecords > 0 && this.oldest ? Math.max(0, (Date.now() - this.oldest.time) / 1000) : 0,
      capacity_bytes: this.quota.capacity,
      quota_used_ratio: this.quota.capacity ? this.usedBytes() / this.quota.capacity : 0,
      backpressure_state: stateNumber(bp.state),
      alarm: bp.state !== 'ok' || this.failure ? 1 : 0,
      disk_full: this.quota.diskFull ? 1 : 0,
      read_only: this.quota.readOnly ? 1 : 0,
      failed: this.failure ? 1 : 0,
      segments: this.segments.length,
      segments_deleted_total: this.m.segmentsDeleted,
      checkpoints_total: this.m.checkpoints,
      checkpoint_errors_total: this.m.checkpointErrors,
      recovery_ms: this.report?.ms ?? 0,
      recovery_dropped_bytes: this.report?.dropped?.bytes ?? 0,
      units_appended_total: this.m.units,
      state_entries_total: this.m.stateEntries,
      state_bytes_total: this.m.stateBytes,
      last_state_bytes: this.durableStateBlob?.length ?? 0,
    };
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

  private alarm(kind: string, message: string): void {
    this.emit({ type: 'alarm', kind, message });
  }
}
