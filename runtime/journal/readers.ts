// FileJournal's readers: records, batches and receipts streamed from the
// segment files, and the full verify() scan. They read only durable data
// (invariant 2: nothing is published that is not durable): each segment up to
// the durable end its summary had when the reader reached it. They skip
// STATE entries (a unit's state is never published) and return a unit's
// records like any others. Memory stays flat whatever the backlog (invariant
// 6): frames are streamed in chunks, sparse indexes say where to start.
import { open, type FileHandle } from 'node:fs/promises';
import { batchHeaderOfSign1 } from '../../protocol/batch.js';
import { fsError, type JournalError } from './errors.js';
import { EntryType, isRecordEntry, readCommit } from './frame.js';
import { readFrames } from './frame-reader.js';
import { readAt } from './fs-util.js';
import type { StoredBatch, StoredRecord } from './journal.js';
import { nonZeroExtent, scanSegment } from './scan.js';
import { decodeSegmentHeader, MAX_HEADER_BYTES } from './segment-header.js';
import { SegmentSummary } from './segment-summary.js';

/** Durable records fromSeq..toSeq, in seq order, from `segments` (a snapshot: compaction may delete files meanwhile). */
export async function* readRecords(segments: SegmentSummary[], fromSeq: number, toSeq: number): AsyncGenerator<StoredRecord> {
  let seq = Math.max(1, fromSeq);
  for (const s of segments) {
    if (seq > toSeq) return;
    if (s.lastSeq === 0 || s.lastSeq < seq) continue;
    const i = s.records.floorIndex(seq);
    const off = i < 0 ? s.dataStart : s.records.offs[i];
    let cur = i < 0 ? s.firstSeq : s.records.keys[i];
    for await (const f of readFrames(s.path, off, s.end)) {
      if (!isRecordEntry(f.type)) continue;
      if (cur > toSeq) return;
      if (cur >= seq) {
        yield { seq: cur, bytes: new Uint8Array(f.payload) };
        seq = cur + 1;
      }
      cur++;
    }
  }
}

/**
 * Durable batches from..to, in order; only those without a commit mark when
 * `unreceiptedOnly`. `seen` is told each batch's last record seq (the
 * journal's cache of recent batch ranges, for commit marks).
 */
export async function* readBatches(segments: SegmentSummary[], from: number, to: number, isCommitted: (batchSeq: number) => boolean, unreceiptedOnly: boolean, seen: (batchSeq: number, lastSeq: number) => void): AsyncGenerator<StoredBatch> {
  let b = Math.max(1, from);
  for (const s of segments) {
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
        const committed = isCommitted(cur);
        if (!unreceiptedOnly || !committed) {
          const sign1 = new Uint8Array(f.payload);
          const h = batchHeaderOfSign1(sign1);
          seen(h.batchSeq, h.firstSeq + h.count - 1);
          yield { batchSeq: cur, firstSeq: h.firstSeq, count: h.count, sign1, committed };
        }
      }
      cur++;
    }
  }
}

/** The receipt bytes of batchSeq's commit mark, while its segment is stored. */
export async function readReceipt(segments: SegmentSummary[], batchSeq: number): Promise<Uint8Array | undefined> {
  for (const s of segments) {
    if (s.minCommit === 0 || batchSeq < s.minCommit || batchSeq > s.maxCommit) continue;
    for await (const f of readFrames(s.path, s.dataStart, s.end)) {
      if (f.type !== EntryType.COMMIT) continue;
      const c = readCommit(f.payload);
      if (c.batchSeq === batchSeq) return new Uint8Array(c.receipt);
    }
  }
  return undefined;
}

export interface Problem {
  path: string;
  offset: number;
  problem: string;
}

/** Scans every segment in full (CRCs, chain, units); `active` is the one whose tail may legitimately hold zeros only. */
export async function verifySegments(segments: SegmentSummary[], active: SegmentSummary | undefined, deviceId: string): Promise<Problem[]> {
  const problems: Problem[] = [];
  const headBuf = Buffer.allocUnsafe(MAX_HEADER_BYTES);
  for (const seg of segments) {
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
        const out = await scanSegment(fh, s, deviceId, h.dataStart, end);
        if (out.end < end) problems.push({ path: seg.path, offset: out.end, problem: out.why });
        else if (seg !== active) {
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
