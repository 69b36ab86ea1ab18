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
import { SegmentSummary, type SparseIndex } from './segment-summary.js';

/**
 * The frames of one kind (`isKind`) numbered `from` … `to` across `segments`,
 * in order, each with its number: `range` gives a segment's first and last
 * number and its sparse index, so a reader starts at most one index step
 * before `from`.
 */
async function* numbered(segments: SegmentSummary[], from: number, to: number, range: (s: SegmentSummary) => [number, number, SparseIndex], isKind: (type: number) => boolean): AsyncGenerator<{ n: number; payload: Buffer }> {
  let next = Math.max(1, from);
  for (const s of segments) {
    if (next > to) return;
    const [first, last, index] = range(s);
    if (last === 0 || last < next) continue;
    const i = index.floorIndex(next);
    let cur = i < 0 ? first : index.keys[i];
    for await (const f of readFrames(s.path, i < 0 ? s.dataStart : index.offs[i], s.end)) {
      if (!isKind(f.type)) continue;
      if (cur > to) return;
      if (cur >= next) {
        yield { n: cur, payload: f.payload };
        next = cur + 1;
      }
      cur++;
    }
  }
}

/** Durable records fromSeq..toSeq, in seq order, from `segments` (a snapshot: compaction may delete files meanwhile). */
export async function* readRecords(segments: SegmentSummary[], fromSeq: number, toSeq: number): AsyncGenerator<StoredRecord> {
  for await (const { n, payload } of numbered(segments, fromSeq, toSeq, (s) => [s.firstSeq, s.lastSeq, s.records], isRecordEntry)) yield { seq: n, bytes: new Uint8Array(payload) };
}

/**
 * Durable batches from..to, in order; only those without a commit mark when
 * `unreceiptedOnly`. `seen` is told each batch's last record seq (the
 * journal's cache of recent batch ranges, for commit marks).
 */
export async function* readBatches(segments: SegmentSummary[], from: number, to: number, isCommitted: (batchSeq: number) => boolean, unreceiptedOnly: boolean, seen: (batchSeq: number, lastSeq: number) => void): AsyncGenerator<StoredBatch> {
  for await (const { n, payload } of numbered(segments, from, to, (s) => [s.firstBatch, s.lastBatch, s.batches], (t) => t === EntryType.BATCH)) {
    const committed = isCommitted(n);
    if (unreceiptedOnly && committed) continue;
    const sign1 = new Uint8Array(payload);
    const h = batchHeaderOfSign1(sign1);
    seen(h.batchSeq, h.firstSeq + h.count - 1);
    yield { batchSeq: n, firstSeq: h.firstSeq, count: h.count, sign1, committed };
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
