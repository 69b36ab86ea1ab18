// The checkpoint and the index sidecars: what lets open() skip rescanning
// (a 1 GB journal opens in well under 2 s).
//
// - `seg-N.idx`, one per sealed segment, written once when the segment is
//   sealed: its summary (ranges, sparse indexes) and the chain state at its end.
// - `checkpoint`: the summary of the active segment at a durable offset, and
//   whether the journal was closed cleanly. Rewritten atomically every
//   `checkpointEveryBytes` of appends, at rollover and at close.
//
// Both are caches: the segments are the truth. Each is bound to its segment
// file by the segment's random nonce and protected by a CRC; a missing, torn,
// stale or foreign one is ignored and the segment is scanned instead.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeContainer, encodeContainer } from './container.js';
import { SegmentSummary } from './segment-summary.js';
import { writeFileAtomic } from '../../drivers/fs/atomic.js';
import { indexName } from './segment-header.js';

export const CHECKPOINT_NAME = 'checkpoint';
const CHECKPOINT_MAGIC = 'ISCMJCKP';
const INDEX_MAGIC = 'ISCMJIDX';

export interface Checkpoint {
  /** The active segment's summary; `summary.end` is the durable offset it describes. */
  summary: SegmentSummary;
  /** Written by close(): nothing was appended after it. */
  clean: boolean;
}

export function encodeCheckpoint(c: Checkpoint): Buffer {
  return encodeContainer(CHECKPOINT_MAGIC, new Map<number, unknown>([[1, c.summary.toCbor()], [2, c.clean]]));
}

export async function writeCheckpoint(dir: string, c: Checkpoint): Promise<void> {
  await writeFileAtomic(join(dir, CHECKPOINT_NAME), encodeCheckpoint(c));
}

/** The checkpoint, or undefined when absent or unusable (the reason is returned for the report). */
export async function readCheckpoint(dir: string, segmentPath: (id: number) => string): Promise<Checkpoint | string> {
  const path = join(dir, CHECKPOINT_NAME);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    return `no checkpoint (${(e as NodeJS.ErrnoException).code})`;
  }
  try {
    const m = decodeContainer(bytes, CHECKPOINT_MAGIC, path);
    const sv = m.get(1);
    const id = sv instanceof Map ? sv.get(1) : undefined;
    if (typeof id !== 'number') return 'checkpoint names no segment';
    return { summary: SegmentSummary.fromCbor(sv, segmentPath(id), path), clean: m.get(2) === true };
  } catch (e) {
    return (e as Error).message;
  }
}

export async function writeIndex(dir: string, s: SegmentSummary): Promise<void> {
  await writeFileAtomic(join(dir, indexName(s.id)), encodeContainer(INDEX_MAGIC, new Map<number, unknown>([[1, s.toCbor()]])));
}

/** The sidecar summary of a sealed segment, if present and bound to this very file (same nonce). */
export async function readIndex(dir: string, id: number, nonce: Uint8Array, segmentPath: string): Promise<SegmentSummary | undefined> {
  const path = join(dir, indexName(id));
  try {
    const m = decodeContainer(await readFile(path), INDEX_MAGIC, path);
    const s = SegmentSummary.fromCbor(m.get(1), segmentPath, path);
    if (s.id !== id || !Buffer.from(s.nonce).equals(Buffer.from(nonce))) return undefined;
    return s;
  } catch {
    return undefined;
  }
}
