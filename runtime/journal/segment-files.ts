// The segment files' life outside recovery: the spare prepared ahead of time,
// a rollover turning it into the next segment, the index sidecar of a sealed
// segment, and deletion by compaction. Each step's durability order is spelled
// out; FileJournal decides when they happen.
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { sameState } from './chain-state.js';
import { writeIndex } from './checkpoint.js';
import { fsError, JournalError } from './errors.js';
import type { Roll } from './frame-queue.js';
import { FRAME_OVERHEAD } from './frame.js';
import { appendFlags, fsyncDir, writeAll } from './fs-util.js';
import type { Preallocator } from './preallocate.js';
import { SPARE_NAME } from './recovery.js';
import { indexName, MAX_HEADER_BYTES, segmentName } from './segment-header.js';
import { SegmentSummary } from './segment-summary.js';

let spares = 0;

/** A prepared next segment, open for appends: `fresh` when made by createSpare (all zeros), not when left by an earlier run. */
export interface Spare {
  path: string;
  fh: FileHandle;
  fresh: boolean;
}

/**
 * Prepares `spare`: a file of `size` bytes with its blocks allocated and
 * committed (made under a name of its own ending in .tmp, renamed when done,
 * so a leftover is never taken for ready and two creations never share a
 * file), left open for the rollover that will use it. The caller makes sure
 * no rollover holds the current spare meanwhile.
 */
export async function createSpare(dir: string, size: number, prealloc: Preallocator): Promise<Spare> {
  const tmp = join(dir, `${SPARE_NAME}-${process.pid}-${++spares}.tmp`);
  const fin = join(dir, SPARE_NAME);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, appendFlags(true));
    await prealloc.allocate(fh, tmp, 0, size);
    // Commit the allocation now, in the background, rather than inside the
    // first append's durable write that would otherwise carry it.
    await fh.datasync();
    await rename(tmp, fin);
    return { path: fin, fh, fresh: true };
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw fsError(e, 'preallocate the next segment', fin);
  }
}

/** Opens the spare an earlier run left (full-size, maybe holding the header of a rollover it did not finish). */
export async function reopenSpare(dir: string): Promise<Spare> {
  const path = join(dir, SPARE_NAME);
  try {
    return { path, fh: await open(path, appendFlags()), fresh: false };
  } catch (e) {
    throw fsError(e, 'open the spare segment', path);
  }
}

/**
 * Creates segment `roll.id` after `old` (all of which is durable): from the
 * spare (`takeSpare`, when preallocating) or a new file. The header and the
 * carried state entry are written durably (O_DSYNC) before the rename, and
 * the directory is fsync'd after it, so the segment exists, named and whole,
 * before any entry placed in it is written. This is on the appends' critical
 * path: the spare is already open, and a fresh one needs no zeros written.
 */
export async function openSegment(dir: string, roll: Roll, old: SegmentSummary, takeSpare: (() => Promise<Spare>) | undefined): Promise<{ fh: FileHandle; summary: SegmentSummary }> {
  if (!sameState(roll.base, old.endState)) throw new JournalError('IO', `internal: segment ${roll.id} base differs from the end of segment ${old.id}`);
  const path = join(dir, segmentName(roll.id));
  let fh: FileHandle | undefined;
  let src = '';
  try {
    let pad = false;
    if (takeSpare) {
      const spare = await takeSpare();
      ({ path: src, fh } = spare);
      // A spare an earlier run left may hold the longer header of a
      // rollover it did not finish: zeros over it, up to the largest header.
      pad = !spare.fresh;
    } else {
      src = `${path}.tmp`;
      fh = await open(src, appendFlags(true));
    }
    const head = roll.carry ? [roll.header, roll.carry] : [roll.header];
    const written = roll.header.length + (roll.carry?.length ?? 0);
    if (pad && written < MAX_HEADER_BYTES) head.push(Buffer.alloc(MAX_HEADER_BYTES - written));
    await writeAll(fh, head, 0);
    await rename(src, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    if (src) await unlink(src).catch(() => {});
    throw fsError(e, 'create segment', path);
  }
  try {
    await fsyncDir(dir);
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  }
  const s = new SegmentSummary(roll.id, roll.nonce, roll.header.length, roll.base, path);
  if (roll.carry) {
    s.noteState(roll.header.length, roll.carry.length - FRAME_OVERHEAD);
    s.end = roll.header.length + roll.carry.length;
  }
  return { fh, summary: s };
}

/** Writes a sealed segment's index sidecar (a cache: a failure is reported, never thrown). */
export function writeIndexQuietly(dir: string, s: SegmentSummary, onError: (message: string) => void): Promise<void> {
  return writeIndex(dir, s.snapshot()).catch((e) => onError(`could not write ${indexName(s.id)} (${(e as Error).message}); the next open rescans that segment`));
}

/** Deletes a committed segment and its sidecar; returns the bytes freed. The caller fsyncs the directory. */
export async function deleteSegment(dir: string, s: SegmentSummary): Promise<number> {
  const size = await stat(s.path).then((x) => x.size, () => 0);
  try {
    await unlink(s.path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(e, 'delete committed segment', s.path);
  }
  await unlink(join(dir, indexName(s.id))).catch(() => {});
  return size;
}
