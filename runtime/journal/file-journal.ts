// FileJournal: the light node's durable store-and-forward outbox on the local
// filesystem (docs/JOURNAL.md). Segmented, append-only, preallocated files;
// group commit; recovery from a checkpoint; sparse on-disk indexes; quota and
// back-pressure; compaction only behind verified receipts.
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
//   sparse indexes and the pending group only, whatever the backlog.
import { mkdir, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { batchHeaderOfSign1, type BatchHeader } from '../../protocol/batch.js';
import { sha256 } from '../../protocol/bytes.js';
import { abytes } from '../../protocol/errors.js';
import { MAX_RECEIPT_BYTES } from '../../protocol/limits.js';
import { decodeRecord, DEVICE_ID_RE } from '../../protocol/record.js';
import { bytesToLatin1, latin1ToBytes, recordHashLatin1 } from './record-hash.js';
import { Quota, stateNumber, type QuotaOptions } from './backpressure.js';
import { applyBatch, applyCommit, checkBatch, checkCommit, checkRecord, recordContinues, cloneState, genesisState, isCommitted, sameState, type ChainState } from './chain-state.js';
import { CHECKPOINT_NAME, writeCheckpoint, writeIndex } from './checkpoint.js';
import { lockDir } from './dir-lock.js';
import { fsError, JournalError } from './errors.js';
import { commitHead, EntryType, FRAME_OVERHEAD, MAX_PAYLOAD, readCommit, writeFrame } from './frame.js';
import { readFrames } from './frame-reader.js';
import { fsyncDir, readAt, writeAll, zeroFill } from './fs-util.js';
import type { Backpressure, CompactResult, Journal, JournalEvent, JournalHead, JournalMetrics, JournalStats, RecoveryReport, StoredBatch, StoredRecord } from './journal.js';
import { readRecordHead } from './record-head.js';
import { recover, SPARE_NAME } from './recovery.js';
import { nonZeroExtent, scanSegment } from './scan.js';
import { decodeSegmentHeader, encodeSegmentHeader, HEADER_ALIGN, indexName, MAX_HEADER_BYTES, newNonce, segmentName } from './segment-header.js';
import { SegmentSummary } from './segment-summary.js';

const MiB = 1024 * 1024;

export interface FileJournalOptions extends QuotaOptions {
  /** The journal directory (one per device stream). Created by open() if missing. */
  dir: string;
  /** The device whose stream this is; records and batches of any other device are refused. */
  deviceId: string;
  /** Quota: the most disk space the journal may use, segments included (default 1 GiB). */
  maxBytes?: number;
  /** Segment file size (default maxBytes / 16, within 1..64 MiB, a multiple of 4 KiB). */
  segmentBytes?: number;
  /** Longest an append waits before its group's write + fsync starts (default 2 ms). */
  groupCommitMs?: number;
  /** Most bytes written between two fsyncs (default min(4 MiB, segmentBytes / 4)); bounds a torn tail. */
  maxGroupBytes?: number;
  /** Zero-fill segments when creating them (default true); see docs/JOURNAL.md. */
  preallocate?: boolean;
  /** Rewrite the checkpoint after this many appended bytes (default 16 MiB). */
  checkpointEveryBytes?: number;
  /** Open for reading only: no lock, no repair, appends refused with READ_ONLY. */
  readOnly?: boolean;
  /** Compact by itself after commit marks (default true). */
  autoCompact?: boolean;
  /** 'head' (default): check the chain fields; 'full': decodeRecord every record on append too. */
  verifyRecords?: 'head' | 'full';
}

interface Roll {
  id: number;
  nonce: Uint8Array;
  header: Buffer;
  base: ChainState;
}

interface Pending {
  type: EntryType;
  /** The frame is chunk[start, start + size): frames of a group sit side by side in chunks. */
  chunk: Buffer;
  start: number;
  size: number;
  /** This entry opens a new segment. */
  roll: Roll | undefined;
  off: number;
  /** Record seq, batch_seq, or the batch_seq a commit mark names. */
  key: number;
  /** Records: SHA-256 as a latin1 string. Batches: SHA-256 of the COSE_Sign1. */
  hash: Uint8Array | string | undefined;
  batch: BatchHeader | undefined;
  lastSeq: number;
  result: unknown;
  resolve: (v: never) => void;
  reject: (e: unknown) => void;
}

type Lifecycle = 'new' | 'opening' | 'open' | 'closing' | 'closed';

const CHUNK_BYTES = MiB;

export class FileJournal implements Journal {
  readonly dir: string;
  readonly deviceId: string;
  readonly readOnly: boolean;
  readonly segmentBytes: number;
  readonly maxSegments: number;
  readonly maxGroupBytes: number;
  readonly groupCommitMs: number;
  readonly preallocate: boolean;
  readonly checkpointEveryBytes: number;
  readonly autoCompact: boolean;
  readonly verifyFull: boolean;
  private readonly deviceIdBytes: Uint8Array;
  /** Bytes of the active segment records may not use while the disk is full. */
  readonly segmentReserve: number;
  private readonly quota: Quota;

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
  /** SHA-256 of the last appended record as a latin1 string; tip.lastRecordHash lags it while tipHashStale. */
  private tipHash = '\0'.repeat(32);
  private tipHashStale = false;
  private tipSeg = 0;
  private tipOff = 0;

  // Group commit.
  private queue: Pending[] = [];
  private qHead = 0;
  private queueBytes = 0;
  private chunk: Buffer = Buffer.allocUnsafe(0);
  private chunkUsed = 0;
  /** Chunks holding pending frames, oldest first (frames never span chunks). */
  private chunksInUse: Buffer[] = [];
  private freeChunks: Buffer[] = [];
  private flushing = false;
  private timer: NodeJS.Timeout | undefined;
  private immediate = false;
  private idleWaiters: Array<() => void> = [];

  // Background work.
  private spare: Promise<string> | undefined;
  private ckBusy: Promise<void> | undefined;
  private ckAgain = false;
  private sinceCheckpoint = 0;
  private compacting: Promise<CompactResult> | undefined;
  private compactQueued = false;
  private recentBatches = new Map<number, number>(); // batch_seq → last seq, bounded
  private oldest: { seq: number; time: number } | undefined;
  private ageRefreshing = false;

  private m = {
    records: 0,
    batches: 0,
    commits: 0,
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
    const bad = (field: string, why: string) => new JournalError('CONFIG', `journal.${field}: ${why}`, { field: `journal.${field}` });
    if (typeof o?.dir !== 'string' || o.dir === '') throw bad('dir', 'a directory path is required');
    if (typeof o.deviceId !== 'string' || !DEVICE_ID_RE.test(o.deviceId)) throw bad('deviceId', 'must match [a-z0-9][a-z0-9_-]{0,63}');
    const maxBytes = o.maxBytes ?? 1024 * MiB;
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 512 * 1024) throw bad('maxBytes', `expected at least 512 KiB, got ${maxBytes}`);
    const seg = o.segmentBytes ?? Math.min(64 * MiB, Math.max(MiB, Math.floor(maxBytes / 16 / HEADER_ALIGN) * HEADER_ALIGN));
    const minSeg = MAX_HEADER_BYTES + 2 * (FRAME_OVERHEAD + MAX_PAYLOAD);
    if (!Number.isSafeInteger(seg) || seg % HEADER_ALIGN !== 0 || seg < minSeg) throw bad('segmentBytes', `expected a multiple of ${HEADER_ALIGN} of at least ${minSeg}, got ${seg}`);
    if (Math.floor(maxBytes / seg) < 2) throw bad('segmentBytes', `the quota (${maxBytes}) must hold at least two segments of ${seg} bytes`);
    this.dir = o.dir;
    this.deviceId = o.deviceId;
    this.deviceIdBytes = Buffer.from(o.deviceId, 'latin1');
    this.readOnly = o.readOnly === true;
    this.segmentBytes = seg;
    this.maxSegments = Math.floor(maxBytes / seg);
    this.maxGroupBytes = o.maxGroupBytes ?? Math.max(FRAME_OVERHEAD + MAX_PAYLOAD, Math.min(4 * MiB, Math.floor(seg / 4)));
    if (!Number.isSafeInteger(this.maxGroupBytes) || this.maxGroupBytes < FRAME_OVERHEAD + MAX_PAYLOAD) throw bad('maxGroupBytes', `expected at least ${FRAME_OVERHEAD + MAX_PAYLOAD}`);
    this.groupCommitMs = o.groupCommitMs ?? 2;
    if (!(this.groupCommitMs >= 0 && this.groupCommitMs <= 1000)) throw bad('groupCommitMs', 'expected 0..1000');
    this.preallocate = o.preallocate ?? true;
    this.checkpointEveryBytes = o.checkpointEveryBytes ?? 16 * MiB;
    this.autoCompact = o.autoCompact ?? true;
    this.verifyFull = o.verifyRecords === 'full';
    this.quota = new Quota(this.maxSegments * seg, o);
    this.segmentReserve = Math.min(this.quota.capacity - this.quota.recordLimit, Math.floor(seg / 4));
    if (this.readOnly) this.quota.readOnly = true;
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
      }
      const rec = await recover({ dir: this.dir, deviceId: this.deviceId, readOnly: this.readOnly, preallocate: this.preallocate, segmentBytes: this.segmentBytes, maxGroupBytes: this.maxGroupBytes });
      this.segments = rec.segments;
      this.active = rec.segments[rec.segments.length - 1];
      this.activeFh = rec.activeFh;
      this.report = rec.report;
      this.setTip(cloneState(this.durable()));
      this.tipSeg = this.active?.id ?? 0;
      this.tipOff = this.active?.end ?? 0;
      if (!this.readOnly) {
        // Mark the checkpoint dirty before any append: a later crash must not
        // be mistaken for a clean close (which skips the torn-tail check).
        try {
          await writeCheckpoint(this.dir, { summary: this.active!.snapshot(), clean: false });
          this.m.checkpoints++;
        } catch (e) {
          this.m.checkpointErrors++;
          await unlink(join(this.dir, CHECKPOINT_NAME)).catch(() => {});
          this.alarm('CHECKPOINT', `could not write the checkpoint at open (${(e as Error).message}); the next open will scan the last segment`);
        }
        if (rec.spareReady) this.spare = Promise.resolve(join(this.dir, SPARE_NAME));
        this.maybePrepareSpare(true);
      }
      this.life = 'open';
    } catch (e) {
      await this.activeFh?.close().catch(() => {});
      this.activeFh = undefined;
      await this.unlock?.();
      this.unlock = undefined;
      this.life = 'closed';
      throw e;
    }
    this.emit({ type: 'recovered', report: this.report! });
    if (this.report!.dropped) this.alarm('RECOVERY', `recovery dropped a torn tail: ${this.report!.dropped.bytes} bytes at offset ${this.report!.dropped.offset} of ${this.report!.dropped.path} (${this.report!.dropped.reason}); kept records through ${this.report!.dropped.keptThroughSeq}`);
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
    await this.spare?.catch(() => {});
    await Promise.all(this.background);
    while (this.ckBusy) await this.ckBusy;
    if (!this.readOnly && !this.failure && this.active) {
      try {
        await writeCheckpoint(this.dir, { summary: this.active.snapshot(), clean: true });
        this.m.checkpoints++;
      } catch (e) {
        this.m.checkpointErrors++;
        this.alarm('CHECKPOINT', `could not write the clean checkpoint at close (${(e as Error).message}); the next open scans the last segment`);
      }
    }
    await this.activeFh?.close().catch(() => {});
    this.activeFh = undefined;
    await this.unlock?.();
    this.unlock = undefined;
    this.life = 'closed';
  }

  // ------------------------------------------------------------ appends

  appendRecord(bytes: Uint8Array): Promise<{ seq: number }> {
    try {
      this.assertWritable();
      const seq = recordContinues(this.tip.nextSeq, this.tipHash, bytes, this.deviceIdBytes);
      if (seq < 0) {
        checkRecord(this.tipState(), readRecordHead(bytes), this.deviceId); // throws the exact CHAIN error
        throw new JournalError('CHAIN', 'record: does not continue the chain');
      }
      if (this.verifyFull) decodeRecord(bytes);
      const place = this.place(FRAME_OVERHEAD + bytes.length, true);
      const hash = recordHashLatin1(bytes);
      this.tip.nextSeq = seq + 1;
      this.tipHash = hash;
      this.tipHashStale = true;
      return this.enqueue(EntryType.RECORD, bytes, undefined, place, seq, hash, undefined, 0, { seq });
    } catch (e) {
      return this.refuse(e);
    }
  }

  appendBatch(sign1: Uint8Array): Promise<{ batchSeq: number; firstSeq: number; count: number }> {
    try {
      this.assertWritable();
      const h = batchHeaderOfSign1(sign1);
      checkBatch(this.tip, h, this.deviceId);
      const place = this.place(FRAME_OVERHEAD + sign1.length, false);
      const hash = sha256(sign1);
      applyBatch(this.tipState(), h, hash);
      this.rememberBatch(h.batchSeq, h.firstSeq + h.count - 1);
      return this.enqueue(EntryType.BATCH, sign1, undefined, place, h.batchSeq, hash, h, 0, { batchSeq: h.batchSeq, firstSeq: h.firstSeq, count: h.count });
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
      const place = this.place(FRAME_OVERHEAD + head.length + receipt.length, false);
      applyCommit(this.tip, batchSeq, lastSeq);
      return await this.enqueue(EntryType.COMMIT, head, receipt, place, batchSeq, undefined, undefined, lastSeq, { batchSeq, duplicate: false });
    } catch (e) {
      return this.refuse(e);
    }
  }

  head(): JournalHead {
    const t = this.tipState();
    return { nextSeq: t.nextSeq, prev: new Uint8Array(t.lastRecordHash), nextBatchSeq: t.nextBatchSeq, prevBatch: new Uint8Array(t.lastBatchHash), batchedThroughSeq: t.batchedThroughSeq };
  }

  /** The tip with its record hash materialised (appends keep it as a string). */
  private tipState(): ChainState {
    if (this.tipHashStale) {
      this.tip.lastRecordHash = latin1ToBytes(this.tipHash);
      this.tipHashStale = false;
    }
    return this.tip;
  }

  private setTip(s: ChainState): void {
    this.tip = s;
    this.tipHash = bytesToLatin1(s.lastRecordHash);
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

  /** Where an entry of `size` bytes goes; throws QUOTA if it may not be placed. */
  private place(size: number, isRecord: boolean): { roll: Roll | undefined; off: number } {
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
      // The new segment's base is the chain state before this entry: the tip now.
      const base = cloneState(this.tipState());
      const nonce = newNonce();
      const header = encodeSegmentHeader({ id: this.tipSeg + 1, nonce, deviceId: this.deviceId, createdMs: Date.now(), base });
      roll = { id: this.tipSeg + 1, nonce, header, base };
      off = header.length;
    }
    const used = (live - 1) * this.segmentBytes + off + size;
    if (used > (isRecord ? this.quota.recordLimit : this.quota.capacity)) throw this.quotaError(isRecord);
    if (roll) this.tipSeg = roll.id;
    this.tipOff = off + size;
    return { roll, off };
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

  private enqueue<T>(type: EntryType, payload: Uint8Array, more: Uint8Array | undefined, place: { roll: Roll | undefined; off: number }, key: number, hash: Uint8Array | string | undefined, batch: BatchHeader | undefined, lastSeq: number, result: T): Promise<T> {
    const size = FRAME_OVERHEAD + payload.length + (more ? more.length : 0);
    if (size > this.chunk.length - this.chunkUsed) {
      // Recycled chunks: a fresh 1 MiB buffer per MiB appended would be
      // external memory churn that makes V8 collect far more often.
      this.chunk = this.freeChunks.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
      this.chunkUsed = 0;
      this.chunksInUse.push(this.chunk);
    }
    const chunk = this.chunk;
    const start = this.chunkUsed;
    this.chunkUsed += size;
    writeFrame(chunk, start, type, payload, more);
    this.queueBytes += size;
    this.sinceCheckpoint += size;
    const p = new Promise<T>((resolve, reject) => {
      this.queue.push({ type, chunk, start, size, roll: place.roll, off: place.off, key, hash, batch, lastSeq, result, resolve: resolve as (v: never) => void, reject });
    });
    this.schedule();
    this.updateBackpressure();
    return p;
  }

  // ------------------------------------------------------------ group commit

  private schedule(): void {
    if (this.flushing || this.qHead >= this.queue.length) return;
    const now = this.groupCommitMs === 0 || this.queueBytes >= this.maxGroupBytes;
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
    let lastRecord: Pending | undefined;
    let failed: Pending[] | undefined;
    try {
      for (;;) {
        if (this.qHead >= this.queue.length) {
          if (acked) acked = this.acknowledge(acked);
          // Under load, appends woken by the acknowledgements just sent arrive
          // within this turn: take them into the next group at once instead of
          // going idle (the group-commit delay is for an idle journal).
          await new Promise((r) => setImmediate(r));
          if (this.qHead >= this.queue.length) break;
        }
        if (this.queue[this.qHead].roll) {
          if (acked) acked = this.acknowledge(acked);
          await this.rollover(this.queue[this.qHead].roll!);
        }
        const active = this.active!;
        const { group, iov, bytes } = this.takeGroup();
        failed = group;
        if (group[0].off !== active.end) throw new JournalError('IO', `internal: group placed at ${group[0].off}, segment ends at ${active.end}`);
        const io = this.writeGroup(iov, group[0].off, bytes).then(() => this.syncActive());
        io.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
        if (acked) acked = this.acknowledge(acked);
        await io;
        failed = undefined;
        // Durable now: fold into the active segment's state (readers see it).
        const st = active.endState;
        for (const it of group) {
          if (it.type === EntryType.RECORD) {
            st.nextSeq = it.key + 1;
            active.noteRecord(it.key, it.off);
            this.m.records++;
            lastRecord = it;
          } else if (it.type === EntryType.BATCH) {
            if (lastRecord) st.lastRecordHash = latin1ToBytes(lastRecord.hash as string);
            lastRecord = undefined;
            applyBatch(st, it.batch!, it.hash as Uint8Array);
            active.noteBatch(it.key, it.off);
            this.m.batches++;
          } else {
            applyCommit(st, it.key, it.lastSeq);
            active.noteCommit(it.key);
            this.m.commits++;
          }
        }
        // Only the last record's hash is state: convert it once per group.
        if (lastRecord) st.lastRecordHash = latin1ToBytes(lastRecord.hash as string);
        lastRecord = undefined;
        const last = group[group.length - 1];
        active.end = last.off + last.size;
        this.m.bytes += bytes;
        this.m.groupEntries += group.length;
        acked = group;
      }
    } catch (e) {
      if (acked) this.acknowledge(acked);
      this.rejectPending(e, failed);
    } finally {
      this.flushing = false;
      if (this.qHead < this.queue.length) this.schedule();
      else {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      }
    }
  }

  /** Takes the next group off the queue: frames up to maxGroupBytes, within one segment. */
  private takeGroup(): { group: Pending[]; iov: Buffer[]; bytes: number } {
    // One write vector per run of frames that sit side by side in a chunk.
    const iov: Buffer[] = [];
    let runChunk: Buffer | undefined;
    let runStart = 0;
    let runEnd = 0;
    let n = 0;
    let bytes = 0;
    for (let i = this.qHead; i < this.queue.length; i++) {
      const it = this.queue[i];
      if (n > 0 && (it.roll || bytes + it.size > this.maxGroupBytes)) break;
      if (it.chunk === runChunk && it.start === runEnd) runEnd += it.size;
      else {
        if (runChunk) iov.push(runChunk.subarray(runStart, runEnd));
        runChunk = it.chunk;
        runStart = it.start;
        runEnd = it.start + it.size;
      }
      bytes += it.size;
      n++;
    }
    iov.push(runChunk!.subarray(runStart, runEnd));
    const group = this.queue.slice(this.qHead, this.qHead + n);
    this.qHead += n;
    this.queueBytes -= bytes;
    if (this.qHead === this.queue.length) {
      this.queue = [];
      this.qHead = 0;
    } else if (this.qHead > 65536) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
    return { group, iov, bytes };
  }

  /** Resolves a durable group's appends (invariant 1: only now may the MCU link ACK). */
  private acknowledge(group: Pending[]): undefined {
    const last = group[group.length - 1];
    // Chunks wholly before the last written frame's chunk are free again.
    while (this.chunksInUse.length > 1 && this.chunksInUse[0] !== last.chunk) this.releaseChunk(this.chunksInUse.shift()!);
    let commits = false;
    for (const it of group) {
      if (it.type === EntryType.COMMIT) commits = true;
      (it.resolve as (v: unknown) => void)(it.result);
    }
    this.afterFlush(commits);
    return undefined;
  }

  private async writeGroup(iov: Buffer[], pos: number, bytes: number): Promise<void> {
    try {
      await writeAll(this.activeFh!, iov, pos);
    } catch (e) {
      // Undo what may have reached the file, best effort: the bytes are not
      // acknowledged, and recovery would treat leftovers as a torn tail anyway.
      try {
        if (this.preallocate) await zeroFill(this.activeFh!, pos, pos + bytes);
        else await this.activeFh!.truncate(pos);
      } catch {
        /* the original error is what matters */
      }
      throw fsError(e, 'append to', this.active!.path);
    }
  }

  private async syncActive(): Promise<void> {
    const t0 = performance.now();
    try {
      await this.activeFh!.datasync();
    } catch (e) {
      // After a failed fsync the kernel may have dropped the dirty pages and
      // cleared the error (the "fsyncgate" lesson): nothing since the last good
      // fsync can be trusted, and retrying would report success over lost data.
      const err = new JournalError(
        'IO',
        `fsync of ${this.active!.path} failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): data written since the last good fsync may be lost, so the journal stops accepting appends (nothing after record ${this.durable().nextSeq - 1} was acknowledged). Check the disk (dmesg), then restart the node: reopening recovers from what is on disk`,
        { path: this.active!.path, errno: (e as NodeJS.ErrnoException).code, cause: e },
      );
      this.failure = err;
      this.quota.failed = true;
      this.alarm('IO', err.message);
      throw err;
    }
    this.m.fsyncs++;
    this.m.fsyncSeconds += (performance.now() - t0) / 1000;
  }

  /** Rejects everything pending (and `inFlight`, the group whose write failed) with `e`; rolls the tip back to the durable state. */
  private rejectPending(e: unknown, inFlight: Pending[] = []): void {
    const err = e instanceof JournalError ? e : fsError(e, 'append to', this.active?.path ?? this.dir);
    const items = [...inFlight, ...this.queue.slice(this.qHead)];
    this.queue = [];
    this.qHead = 0;
    this.queueBytes = 0;
    for (const c of this.chunksInUse) if (c !== this.chunk) this.releaseChunk(c);
    this.chunksInUse = this.chunk.length ? [this.chunk] : [];
    this.setTip(cloneState(this.durable()));
    this.tipSeg = this.active!.id;
    this.tipOff = this.active!.end;
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
    this.maybeCheckpoint(false);
    this.maybePrepareSpare(false);
    if (commits) {
      this.refreshAge();
      if (this.autoCompact && this.compactable()) void this.compact().catch((e) => this.alarm('COMPACTION', (e as Error).message));
    } else if (this.oldest === undefined) this.refreshAge();
  }

  private releaseChunk(c: Buffer): void {
    if (c.length === CHUNK_BYTES && this.freeChunks.length < 8) this.freeChunks.push(c);
  }

  /** Resolves when no append is pending. */
  private idle(): Promise<void> {
    if (!this.flushing && this.qHead >= this.queue.length) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  // ------------------------------------------------------------ segments

  /** Seals the active segment and opens segment `roll.id` (all of the old one is durable). */
  private async rollover(roll: Roll): Promise<void> {
    const old = this.active!;
    if (!sameState(roll.base, old.endState)) throw new JournalError('IO', `internal: segment ${roll.id} base differs from the end of segment ${old.id}`);
    // The sealed segment's index sidecar lets the next open skip scanning it.
    // A cache, so not on the appends' critical path: written in the background
    // (a crash before it lands costs one segment scan at the next open).
    const idx = writeIndex(this.dir, old.snapshot()).catch((e) => {
      this.m.checkpointErrors++;
      this.alarm('CHECKPOINT', `could not write ${indexName(old.id)} (${(e as Error).message}); the next open rescans that segment`);
    });
    this.background.add(idx);
    void idx.finally(() => this.background.delete(idx));
    const path = join(this.dir, segmentName(roll.id));
    let fh: FileHandle | undefined;
    let src = '';
    try {
      if (this.preallocate) {
        src = await this.takeSpare();
        fh = await open(src, 'r+');
      } else {
        src = `${path}.tmp`;
        fh = await open(src, 'w+');
      }
      // Zeros after the header up to the largest header size: a spare reused
      // after a crash mid-rollover may hold an older, longer header.
      await writeAll(fh, this.preallocate && roll.header.length < MAX_HEADER_BYTES ? [roll.header, Buffer.alloc(MAX_HEADER_BYTES - roll.header.length)] : [roll.header], 0);
      await fh.datasync();
      await rename(src, path);
    } catch (e) {
      await fh?.close().catch(() => {});
      if (src) await unlink(src).catch(() => {});
      const err = fsError(e, 'create segment', path);
      if (err.kind === 'DISK_FULL') this.alarm('DISK_FULL', `the next journal segment (${this.segmentBytes} bytes) cannot be allocated: ${err.message}`);
      throw err;
    }
    await fsyncDir(this.dir);
    const s = new SegmentSummary(roll.id, roll.nonce, roll.header.length, roll.base, path);
    this.segments.push(s);
    const oldFh = this.activeFh;
    this.active = s;
    this.activeFh = fh;
    await oldFh?.close().catch(() => {});
    this.maybeCheckpoint(true);
    this.maybePrepareSpare(true); // the whole segment's time to zero-fill the next one
  }

  private maybePrepareSpare(eager: boolean): void {
    if (!this.preallocate || this.readOnly || this.spare || this.life === 'closing' || this.failure || !this.active) return;
    if (this.segments.length + 1 > this.maxSegments) return;
    // Zero-fill the next segment from the start of this one (rollover and
    // open ask eagerly), so a rollover never waits for it; later calls
    // only retry after a failure, once this segment is a quarter full.
    if (!eager && this.active.end < this.segmentBytes / 4) return;
    const p = this.createSpare();
    this.spare = p;
    p.catch(() => {
      if (this.spare === p) this.spare = undefined;
    });
  }

  private async createSpare(): Promise<string> {
    const tmp = join(this.dir, `${SPARE_NAME}.tmp`);
    const fin = join(this.dir, SPARE_NAME);
    let fh: FileHandle | undefined;
    try {
      fh = await open(tmp, 'w');
      // fsync'd every 4 MiB: one 64 MiB burst of write-back would queue in
      // front of the appends' own fsyncs and stall acknowledgements.
      await zeroFill(fh, 0, this.segmentBytes, 4 * MiB);
      await fh.datasync();
      await fh.close();
      fh = undefined;
      await rename(tmp, fin);
    } catch (e) {
      await fh?.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      const err = fsError(e, 'preallocate the next segment', fin);
      if (err.kind === 'DISK_FULL') {
        this.quota.diskFull = true;
        this.alarm('DISK_FULL', `the next journal segment (${this.segmentBytes} bytes) cannot be preallocated; appends continue until the current segment is full: ${err.message}`);
        this.updateBackpressure();
      }
      throw err;
    }
    if (this.quota.diskFull) {
      this.quota.diskFull = false;
      this.updateBackpressure();
    }
    return fin;
  }

  private background = new Set<Promise<unknown>>();

  private async takeSpare(): Promise<string> {
    const p = this.spare ?? this.createSpare();
    this.spare = undefined;
    return await p;
  }

  private maybeCheckpoint(force: boolean): void {
    if (this.readOnly || !this.active) return;
    if (!force && this.sinceCheckpoint < this.checkpointEveryBytes) return;
    if (this.ckBusy) {
      this.ckAgain = true;
      return;
    }
    this.sinceCheckpoint = 0;
    const snap = this.active.snapshot();
    this.ckBusy = writeCheckpoint(this.dir, { summary: snap, clean: false })
      .then(
        () => void this.m.checkpoints++,
        (e) => {
          this.m.checkpointErrors++;
          this.alarm('CHECKPOINT', `could not write the checkpoint (${(e as Error).message}); the next open scans more of the last segment`);
        },
      )
      .finally(() => {
        this.ckBusy = undefined;
        if (this.ckAgain) {
          this.ckAgain = false;
          this.maybeCheckpoint(true);
        }
      });
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
    // where the deleted ones ended (its header holds that chain state).
    while (this.compactable()) {
      const s = this.segments[0];
      const size = await stat(s.path).then((x) => x.size, () => 0);
      try {
        await unlink(s.path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(e, 'delete committed segment', s.path);
      }
      this.segments.shift();
      await unlink(join(this.dir, indexName(s.id))).catch(() => {});
      deleted++;
      freed += size;
    }
    if (deleted) {
      await fsyncDir(this.dir);
      this.m.segmentsDeleted += deleted;
      this.maybePrepareSpare(true);
      // On a full disk, the freed space goes to the next segment first; records
      // are accepted again once it is preallocated (diskFull clears).
      if (this.quota.diskFull && this.spare) await this.spare.catch(() => {});
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
    return this.recordsGen(fromSeq, toSeq);
  }

  private async *recordsGen(fromSeq: number, toSeq: number | undefined): AsyncGenerator<StoredRecord> {
    const to = Math.min(toSeq ?? Infinity, this.durable().nextSeq - 1);
    let seq = Math.max(1, fromSeq);
    for (const s of [...this.segments]) {
      if (seq > to) return;
      if (s.lastSeq === 0 || s.lastSeq < seq) continue;
      const i = s.records.floorIndex(seq);
      const off = i < 0 ? s.dataStart : s.records.offs[i];
      let cur = i < 0 ? s.firstSeq : s.records.keys[i];
      for await (const f of readFrames(s.path, off, s.end)) {
        if (f.type !== EntryType.RECORD) continue;
        if (cur > to) return;
        if (cur >= seq) {
          yield { seq: cur, bytes: new Uint8Array(f.payload) };
          seq = cur + 1;
        }
        cur++;
      }
    }
  }

  unreceiptedBatches(fromBatchSeq = 1): AsyncIterable<StoredBatch> {
    this.assertOpen();
    return this.batchesGen(Math.max(fromBatchSeq, this.durable().committedThrough + 1), this.durable().nextBatchSeq - 1, true);
  }

  private async *batchesGen(from: number, to: number, unreceiptedOnly: boolean): AsyncGenerator<StoredBatch> {
    let b = Math.max(1, from);
    for (const s of [...this.segments]) {
      if (b > to) return;
      if (s.lastBatch === 0 || s.lastBatch < b) continue;
      const i = s.batches.floorIndex(b);
      const off = i < 0 ? s.dataStart : s.batches.offs[i];
      let cur = i < 0 ? s.firstBatch : s.batches.keys[i];
      for await (const f of readFrames(s.path, off, s.end)) {
        if (f.type !== EntryType.BATCH) continue;
        if (cur > to) return;
        if (cur >= b) {
          b = cur + 1;
          const committed = isCommitted(this.durable(), cur);
          if (!unreceiptedOnly || !committed) {
            const sign1 = new Uint8Array(f.payload);
            const h = batchHeaderOfSign1(sign1);
            this.rememberBatch(h.batchSeq, h.firstSeq + h.count - 1);
            yield { batchSeq: cur, firstSeq: h.firstSeq, count: h.count, sign1, committed };
          }
        }
        cur++;
      }
    }
  }

  async getRecord(seq: number): Promise<Uint8Array | undefined> {
    for await (const r of this.records(seq, seq)) return r.bytes;
    return undefined;
  }

  async getBatch(batchSeq: number): Promise<StoredBatch | undefined> {
    this.assertOpen();
    for await (const b of this.batchesGen(batchSeq, Math.min(batchSeq, this.durable().nextBatchSeq - 1), false)) return b;
    return undefined;
  }

  async getReceipt(batchSeq: number): Promise<Uint8Array | undefined> {
    this.assertOpen();
    for (const s of [...this.segments]) {
      if (s.minCommit === 0 || batchSeq < s.minCommit || batchSeq > s.maxCommit) continue;
      for await (const f of readFrames(s.path, s.dataStart, s.end)) {
        if (f.type !== EntryType.COMMIT) continue;
        const c = readCommit(f.payload);
        if (c.batchSeq === batchSeq) return new Uint8Array(c.receipt);
      }
    }
    return undefined;
  }

  private rememberBatch(batchSeq: number, lastSeq: number): void {
    this.recentBatches.set(batchSeq, lastSeq);
    if (this.recentBatches.size > 256) this.recentBatches.delete(this.recentBatches.keys().next().value!);
  }

  /**
   * Scans every segment in full (CRCs and chain), for an operator's check or
   * after a CORRUPT error. Returns the problems found; an empty list is a
   * healthy journal.
   */
  async verify(): Promise<Array<{ path: string; offset: number; problem: string }>> {
    this.assertOpen();
    const problems: Array<{ path: string; offset: number; problem: string }> = [];
    const headBuf = Buffer.allocUnsafe(MAX_HEADER_BYTES);
    for (const seg of [...this.segments]) {
      let fh: FileHandle;
      try {
        fh = await open(seg.path, 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw fsError(e, 'open', seg.path);
      }
      try {
        const end = seg.end;
        const h = decodeSegmentHeader(await readAt(fh, headBuf, MAX_HEADER_BYTES, 0), seg.path);
        const s = new SegmentSummary(h.id, h.nonce, h.dataStart, h.base, seg.path);
        try {
          const out = await scanSegment(fh, s, this.deviceId, h.dataStart, end);
          if (out.end < end) problems.push({ path: seg.path, offset: out.end, problem: out.why });
          else if (seg !== this.active) {
            const nz = await nonZeroExtent(fh, end, (await fh.stat()).size, 0);
            if (nz.beyond) problems.push({ path: seg.path, offset: nz.beyondAt, problem: 'non-zero bytes after the end of a sealed segment' });
          }
        } catch (e) {
          problems.push({ path: seg.path, offset: (e as JournalError).offset ?? -1, problem: (e as Error).message });
        }
      } finally {
        await fh.close();
      }
    }
    return problems;
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
      pending_bytes: this.queueBytes,
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
