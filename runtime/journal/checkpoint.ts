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
//
// Why most of them are not fsync'd: a checkpoint or sidecar only ever
// describes entries that were fdatasync'd before it was taken, so losing one
// (power loss within the filesystem's commit interval) costs a longer scan at
// the next open, never data. Forcing each to disk cost two filesystem journal
// commits every 16 MiB, right in the way of the appends' own fdatasyncs. The
// exceptions, fsync'd: the checkpoint open() writes before any append (it
// marks the journal dirty: a crash must not pass for a clean close) and the
// clean one close() writes.
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
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

/** Replaces the checkpoint; `durable` fsyncs it (open's dirty mark, close's clean one). */
export async function writeCheckpoint(dir: string, c: Checkpoint, durable: boolean): Promise<void> {
  const bytes = encodeCheckpoint(c);
  if (durable) await writeFileAtomic(join(dir, CHECKPOINT_NAME), bytes);
  else await replaceCache(join(dir, CHECKPOINT_NAME), bytes);
}

/** Replaces a cache file atomically (`path.tmp`, then rename) without forcing it to disk. */
async function replaceCache(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, bytes).catch(async (e) => {
    await unlink(tmp).catch(() => {});
    throw e;
  });
  await rename(tmp, path);
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
  await replaceCache(join(dir, indexName(s.id)), encodeContainer(INDEX_MAGIC, new Map<number, unknown>([[1, s.toCbor()]])));
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

/**
 * The periodic checkpoint of a running journal: one every `everyBytes`
 * appended, never two writes at once (a request while one is in flight is
 * written after it, with the summary as of then).
 */
export class PeriodicCheckpoint {
  private busy: Promise<void> | undefined;
  private again = false;
  private since = 0;

  constructor(
    private readonly dir: string,
    private readonly everyBytes: number,
    /** The active segment's summary now (a snapshot), or undefined when there is none. */
    private readonly snapshot: () => SegmentSummary | undefined,
    private readonly written: (error: Error | undefined) => void,
  ) {}

  appended(bytes: number): void {
    this.since += bytes;
  }

  /** Writes one if `everyBytes` were appended since the last (or `force`). */
  maybe(force: boolean): void {
    if (!force && this.since < this.everyBytes) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    const summary = this.snapshot();
    if (!summary) return;
    this.since = 0;
    this.busy = writeCheckpoint(this.dir, { summary, clean: false }, false)
      .then(
        () => this.written(undefined),
        (e) => this.written(e as Error),
      )
      .finally(() => {
        this.busy = undefined;
        if (this.again) {
          this.again = false;
          this.maybe(true);
        }
      });
  }

  async drain(): Promise<void> {
    while (this.busy) await this.busy;
  }
}
