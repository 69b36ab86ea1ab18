// FileJournal's options, checked and resolved to the values the journal runs
// with (docs/JOURNAL.md). Bad options are CONFIG errors naming the field.
import { DEVICE_ID_RE } from '../../protocol/record.js';
import type { QuotaOptions } from './backpressure.js';
import { JournalError } from './errors.js';
import { FRAME_OVERHEAD, MAX_PAYLOAD } from './frame.js';
import { MAX_STATE_BYTES } from './journal.js';
import type { PreallocateMethod } from './preallocate.js';
import { HEADER_ALIGN, MAX_HEADER_BYTES } from './segment-header.js';

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
  /** Most bytes written between two fsyncs (default min(4 MiB, segmentBytes / 4)); bounds a torn tail, and a unit. */
  maxGroupBytes?: number;
  /**
   * How segment files get their blocks before appends land in them (docs/JOURNAL.md "Preallocation"):
   * true / 'fallocate' (default): fallocate(1), falling back to zero-fill where unsupported;
   * 'zero-fill': write zeros over each new segment; false: none, files grow as they fill.
   */
  preallocate?: boolean | PreallocateMethod;
  /** Rewrite the checkpoint after this many appended bytes (default 16 MiB). */
  checkpointEveryBytes?: number;
  /** Open for reading only: no lock, no repair, appends refused with READ_ONLY. */
  readOnly?: boolean;
  /** Compact by itself after commit marks (default true). */
  autoCompact?: boolean;
  /** 'head' (default): check the chain fields; 'full': decodeRecord every record on append too. */
  verifyRecords?: 'head' | 'full';
  /** Debug: hash every record even when the caller passes its hash, and refuse a wrong one (CHAIN, record.hash). */
  verifyHashes?: boolean;
}

export interface ResolvedOptions {
  dir: string;
  deviceId: string;
  readOnly: boolean;
  segmentBytes: number;
  maxSegments: number;
  maxGroupBytes: number;
  maxUnitBytes: number;
  groupCommitMs: number;
  preallocate: PreallocateMethod | undefined;
  checkpointEveryBytes: number;
  autoCompact: boolean;
  verifyFull: boolean;
  verifyHashes: boolean;
  capacity: number;
}

export function resolveOptions(o: FileJournalOptions): ResolvedOptions {
  const bad = (field: string, why: string) => new JournalError('CONFIG', `journal.${field}: ${why}`, { field: `journal.${field}` });
  if (typeof o?.dir !== 'string' || o.dir === '') throw bad('dir', 'a directory path is required');
  if (typeof o.deviceId !== 'string' || !DEVICE_ID_RE.test(o.deviceId)) throw bad('deviceId', 'must match [a-z0-9][a-z0-9_-]{0,63}');
  const maxBytes = o.maxBytes ?? 1024 * MiB;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 512 * 1024) throw bad('maxBytes', `expected at least 512 KiB, got ${maxBytes}`);
  const seg = o.segmentBytes ?? Math.min(64 * MiB, Math.max(MiB, Math.floor(maxBytes / 16 / HEADER_ALIGN) * HEADER_ALIGN));
  // A new segment must hold its header, the state carried into it and the largest entry.
  const minSeg = MAX_HEADER_BYTES + 2 * (FRAME_OVERHEAD + MAX_PAYLOAD);
  if (!Number.isSafeInteger(seg) || seg % HEADER_ALIGN !== 0 || seg < minSeg) throw bad('segmentBytes', `expected a multiple of ${HEADER_ALIGN} of at least ${minSeg}, got ${seg}`);
  if (Math.floor(maxBytes / seg) < 2) throw bad('segmentBytes', `the quota (${maxBytes}) must hold at least two segments of ${seg} bytes`);
  const maxGroupBytes = o.maxGroupBytes ?? Math.max(FRAME_OVERHEAD + MAX_PAYLOAD, Math.min(4 * MiB, Math.floor(seg / 4)));
  if (!Number.isSafeInteger(maxGroupBytes) || maxGroupBytes < FRAME_OVERHEAD + MAX_PAYLOAD) throw bad('maxGroupBytes', `expected at least ${FRAME_OVERHEAD + MAX_PAYLOAD}`);
  const groupCommitMs = o.groupCommitMs ?? 2;
  if (!(groupCommitMs >= 0 && groupCommitMs <= 1000)) throw bad('groupCommitMs', 'expected 0..1000');
  const p = o.preallocate ?? true;
  if (p !== true && p !== false && p !== 'fallocate' && p !== 'zero-fill') throw bad('preallocate', `expected true, false, 'fallocate' or 'zero-fill', got ${JSON.stringify(p)}`);
  return {
    dir: o.dir,
    deviceId: o.deviceId,
    readOnly: o.readOnly === true,
    segmentBytes: seg,
    maxSegments: Math.floor(maxBytes / seg),
    maxGroupBytes,
    // One group, and what a fresh segment holds after its header and the carried state.
    maxUnitBytes: Math.min(maxGroupBytes, seg - MAX_HEADER_BYTES - (FRAME_OVERHEAD + MAX_STATE_BYTES)),
    groupCommitMs,
    preallocate: p === true ? 'fallocate' : p === false ? undefined : p,
    checkpointEveryBytes: o.checkpointEveryBytes ?? 16 * MiB,
    autoCompact: o.autoCompact ?? true,
    verifyFull: o.verifyRecords === 'full',
    verifyHashes: o.verifyHashes === true,
    capacity: Math.floor(maxBytes / seg) * seg,
  };
}
