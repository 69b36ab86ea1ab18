// The journal: the light node's durable store-and-forward outbox (docs/JOURNAL.md).
export type { Journal, JournalHead, StoredRecord, StoredBatch, JournalStats, JournalMetrics, JournalEvent, Backpressure, BackpressureState, BackpressureReason, RecoveryReport, DroppedTail, CompactResult } from './journal.js';
export { MAX_STATE_BYTES } from './journal.js';
export { FileJournal, type FileJournalOptions } from './file-journal.js';
export type { PreallocateMethod } from './preallocate.js';
export { MemoryJournal, MemoryStore, type MemoryJournalOptions } from './memory-journal.js';
export { JournalError, isJournalError, type JournalErrorKind } from './errors.js';
export { readRecordHead, type RecordHead } from './record-head.js';
