// The journal's interface: the seam between the light node's pipeline and its
// durable store-and-forward outbox (ARCHITECTURE §1, §2 invariants 1, 2, 6).
// FileJournal (segmented files, production) and MemoryJournal (unit tests)
// implement it; test/runtime/journal-conformance.ts holds the one suite both pass.
//
// One journal holds one device stream: the records, batches and commit marks
// of one device_id, in the order they were appended, and the pipeline's state
// blob of its last unit (appendUnit).

/** Max bytes of one state blob (appendUnit). */
export const MAX_STATE_BYTES = 64 * 1024;

export interface JournalHead {
  /** The seq the next record must carry. */
  nextSeq: number;
  /** The `prev` the next record must carry: SHA-256 of the last record's bytes. */
  prev: Uint8Array;
  /** The batch_seq of the next batch. */
  nextBatchSeq: number;
  /** The `prev` of the next batch: SHA-256 of the last batch's COSE_Sign1 bytes. */
  prevBatch: Uint8Array;
  /** Last record seq covered by a batch; the next batch starts after it. */
  batchedThroughSeq: number;
}

export interface StoredRecord {
  seq: number;
  /** The record's exact bytes, as appended (a copy the caller owns). */
  bytes: Uint8Array;
}

export interface StoredBatch {
  batchSeq: number;
  firstSeq: number;
  count: number;
  /** The batch COSE_Sign1's exact bytes, as appended. */
  sign1: Uint8Array;
  /** A commit mark (verified receipt) covers it. */
  committed: boolean;
}

export type BackpressureState =
  /** Below the high-water mark: acknowledge freely. */
  | 'ok'
  /** At or above the high-water mark: the MCU link stops acknowledging; appends still succeed. */
  | 'high'
  /** Records are refused (quota, disk full, read-only or failed). */
  | 'full';
export type BackpressureReason = 'none' | 'quota' | 'disk_full' | 'read_only' | 'failed';

export interface Backpressure {
  state: BackpressureState;
  reason: BackpressureReason;
  usedBytes: number;
  capacityBytes: number;
}

/** What recovery dropped from a torn tail (never acknowledged data; see docs/JOURNAL.md). */
export interface DroppedTail {
  path: string;
  /** Offset of the first byte that was not a whole, valid entry. */
  offset: number;
  /** Bytes discarded from `offset` to the last non-zero byte. */
  bytes: number;
  reason: string;
  /** The last record seq and batch_seq kept. */
  keptThroughSeq: number;
  keptThroughBatchSeq: number;
  /**
   * The drop started at a unit (appendUnit) whose STATE entry was missing:
   * the whole unit went, records included (it was in the last, unsynced
   * group, so none of it had been acknowledged).
   */
  tornUnit: { firstSeq: number; records: number } | undefined;
}

export interface RecoveryReport {
  ms: number;
  /** The previous close was clean (checkpoint marked clean). */
  clean: boolean;
  /** The checkpoint was usable, so only the tail after it was scanned. */
  usedCheckpoint: boolean;
  segments: number;
  /** Sealed segments whose index sidecar was missing or stale and had to be scanned. */
  segmentsRescanned: number;
  bytesScanned: number;
  entriesScanned: number;
  dropped: DroppedTail | undefined;
}

export interface JournalStats {
  deviceId: string;
  readOnly: boolean;
  /** Last durable record seq (0 = none). */
  lastSeq: number;
  /** Oldest record still stored (compaction deletes committed ones); lastSeq + 1 when none. */
  firstSeq: number;
  lastBatchSeq: number;
  firstBatchSeq: number;
  batchedThroughSeq: number;
  committedThroughBatch: number;
  committedThroughSeq: number;
  /** Commit marks above the contiguous watermark (receipts that arrived out of order). */
  committedAbove: number[];
  segments: number;
  usedBytes: number;
  capacityBytes: number;
  backpressure: Backpressure;
  recovery: RecoveryReport | undefined;
}

/**
 * Counters and gauges, plain numbers, for the runtime's /metrics. Totals count
 * since open(); gauges are current values.
 */
export interface JournalMetrics {
  records_appended_total: number;
  batches_appended_total: number;
  commits_appended_total: number;
  appends_refused_total: number;
  bytes_appended_total: number;
  fsyncs_total: number;
  /** Sum of fsync durations, seconds. */
  fsync_seconds_total: number;
  /** Entries made durable by the fsyncs (entries / fsyncs = mean group size). */
  group_entries_total: number;
  /** Bytes waiting in memory for the next group commit. */
  pending_bytes: number;
  backlog_bytes: number;
  backlog_records: number;
  backlog_unbatched_records: number;
  backlog_unreceipted_batches: number;
  /** Age of the oldest record without a receipt, seconds (0 when none). */
  backlog_age_seconds: number;
  capacity_bytes: number;
  quota_used_ratio: number;
  /** 0 ok, 1 high, 2 full. */
  backpressure_state: number;
  /** 1 while back-pressure is on or the journal is failed: page someone. */
  alarm: number;
  disk_full: number;
  read_only: number;
  failed: number;
  segments: number;
  segments_deleted_total: number;
  checkpoints_total: number;
  checkpoint_errors_total: number;
  recovery_ms: number;
  recovery_dropped_bytes: number;
  /** Units made durable by appendUnit. */
  units_appended_total: number;
  /** STATE entries written: one per unit, plus the copies carried to the start of each new segment. */
  state_entries_total: number;
  state_bytes_total: number;
  /** Size of the state blob lastState() returns (0 when none). */
  last_state_bytes: number;
}

export type JournalEvent =
  | { type: 'backpressure'; backpressure: Backpressure }
  | { type: 'recovered'; report: RecoveryReport }
  /** Something an operator must see: a refusal, a failed fsync, a checkpoint that could not be written. */
  | { type: 'alarm'; kind: string; message: string }
  | { type: 'compacted'; segmentsDeleted: number; bytesFreed: number; firstSeq: number };

export interface CompactResult {
  segmentsDeleted: number;
  bytesFreed: number;
}

export interface Journal {
  /** Creates or recovers the store. Constructors do no I/O. */
  open(): Promise<void>;
  /** Waits for pending appends, writes a clean checkpoint and releases the store. */
  close(): Promise<void>;

  /**
   * Appends a record (its exact CBOR bytes). Resolves after the fsync that
   * covers it (group commit) — acknowledge upstream only then (invariant 1).
   * `hash`, when given, is SHA-256(bytes) as the caller already computed it
   * (for the next record's `prev`), so the journal does not hash again; it
   * must be right (see docs/JOURNAL.md "Caller hashes"; option verifyHashes
   * checks every one). Rejects with JournalError: CHAIN (seq/prev/device
   * wrong), QUOTA, DISK_FULL, READ_ONLY, IO, CLOSED; nothing is then durable.
   */
  appendRecord(bytes: Uint8Array, hash?: Uint8Array): Promise<{ seq: number }>;
  /**
   * Appends `records` (exact CBOR bytes, continuing the chain like
   * appendRecord, possibly none) followed by `state` (opaque bytes,
   * 1..MAX_STATE_BYTES, never published, never returned by the record/batch
   * readers) as ONE atomic unit: after any crash, recovery keeps either all of
   * it or none of it. Resolves after the fsync covering the whole unit, with
   * the unit's record range (firstSeq = lastSeq + 1 when it has none).
   * `hashes`, when given, are the records' SHA-256 (one 32-byte array per
   * record) as computed by the caller. Rejects with JournalError (CHAIN,
   * QUOTA, DISK_FULL, READ_ONLY, IO, CLOSED, and TOO_LARGE when the unit
   * cannot fit in one group commit); then nothing of the unit is durable and
   * head() rolls back as for records. Units count against the quota like
   * records, a state-only unit included.
   */
  appendUnit(records: Uint8Array[], state: Uint8Array, hashes?: Uint8Array[]): Promise<{ firstSeq: number; lastSeq: number }>;
  /** The state blob of the last durable unit (a copy), or undefined if none was ever written. Available right after open(). */
  lastState(): Uint8Array | undefined;
  /** Largest unit appendUnit accepts: its records and state framed, in bytes. */
  readonly maxUnitBytes: number;
  /** Appends a signed batch (COSE_Sign1 bytes) over the next unbatched records. */
  appendBatch(sign1: Uint8Array): Promise<{ batchSeq: number; firstSeq: number; count: number }>;
  /**
   * Records that a verified receipt covers batch `batchSeq` (the caller
   * verified it; invariant 2). Idempotent: a second mark is `duplicate`.
   */
  markCommitted(batchSeq: number, receipt: Uint8Array): Promise<{ batchSeq: number; duplicate: boolean }>;

  /** The chain position the next appends must continue. */
  head(): JournalHead;

  /** Durable records from the first unbatched one, in seq order, streamed from storage. */
  unbatchedRecords(): AsyncIterable<StoredRecord>;
  /** Durable records fromSeq..toSeq (default: the last durable), streamed. */
  records(fromSeq: number, toSeq?: number): AsyncIterable<StoredRecord>;
  /** Durable batches without a commit mark, from `fromBatchSeq` on, in order, streamed. */
  unreceiptedBatches(fromBatchSeq?: number): AsyncIterable<StoredBatch>;
  getRecord(seq: number): Promise<Uint8Array | undefined>;
  getBatch(batchSeq: number): Promise<StoredBatch | undefined>;
  /** The receipt bytes of a commit mark, while its segment is stored. */
  getReceipt(batchSeq: number): Promise<Uint8Array | undefined>;

  /** Deletes storage whose every record and batch is covered by a commit mark. */
  compact(): Promise<CompactResult>;

  stats(): JournalStats;
  metrics(): JournalMetrics;
  backpressure(): Backpressure;
  /** Subscribes to events; returns the unsubscribe function. Subscribe before open() to see recovery. */
  subscribe(listener: (e: JournalEvent) => void): () => void;
}
