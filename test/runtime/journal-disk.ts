// Helpers for journal tests that look at and damage the files on disk.
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { crc32c } from '../../protocol/crc32c.js';
import { checkFrame, FRAME_HEAD } from '../../runtime/journal/frame.js';
import { decodeSegmentHeader } from '../../runtime/journal/segment-header.js';
import { FileJournal, type FileJournalOptions } from '../../runtime/journal/file-journal.js';
import type { Test } from 'uvu';
import { DeviceStream, tempDir } from './journal-fixtures.js';

export const DEV = 'reefer-07';

export function fileJournal(dir: string, o: Partial<FileJournalOptions> = {}): FileJournal {
  return new FileJournal({ dir, deviceId: DEV, maxBytes: 64 << 20, segmentBytes: 256 << 10, groupCommitMs: 1, ...o });
}

/** Appends `n` records (in groups of 100) and returns their bytes. */
export async function fill(j: FileJournal, d: DeviceStream, n: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i += 100) {
    const recs = d.records(Math.min(100, n - i));
    await Promise.all(recs.map((r) => j.appendRecord(r)));
    out.push(...recs);
  }
  return out;
}

/**
 * A copy of the directory while the journal is open and idle: exactly what a
 * kill -9 leaves (the page cache holds every completed write). Files being
 * made in the background (`*.tmp`, renamed when done) are left out: they may
 * vanish during the copy, and recovery deletes them first thing anyway.
 */
export async function crashImage(dir: string, to: string): Promise<void> {
  await cp(dir, to, { recursive: true, filter: (src) => !src.endsWith('.tmp') });
}

/**
 * For a test file: `dirs()` gives a fresh journal directory and a second one
 * (for a crash image), both removed after each test of `t`.
 */
export function scratchDirs(t: Test, tag: string): () => Promise<{ dir: string; img: string }> {
  const cleanups: Array<() => Promise<void>> = [];
  t.after.each(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  return async () => {
    const a = await tempDir(tag);
    const b = await tempDir(`${tag}-img`);
    cleanups.push(a.cleanup, b.cleanup);
    return { dir: a.dir, img: b.dir };
  };
}

export async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /^seg-\d{10}\.log$/.test(n)).sort().map((n) => join(dir, n));
}

export interface FrameAt {
  offset: number;
  size: number;
  type: number;
}

/** The frames of a segment file, read with the journal's own framing rules. */
export async function framesOf(path: string): Promise<FrameAt[]> {
  const buf = await readFile(path);
  const h = decodeSegmentHeader(buf, path);
  const out: FrameAt[] = [];
  let p = h.dataStart;
  for (;;) {
    const r = checkFrame(buf, p, buf.length);
    if (!r.ok) break;
    out.push({ offset: p, size: r.size, type: r.type });
    p += r.size;
  }
  return out;
}

export async function flipByte(path: string, offset: number): Promise<void> {
  const b = await readFile(path);
  b[offset] ^= 0x5a;
  await writeFile(path, b);
}

/** Rewrites a frame's payload byte and its CRC: damage that framing cannot see. */
export async function rewriteWithValidCrc(path: string, f: FrameAt, payloadOffset: number): Promise<void> {
  const b = await readFile(path);
  b[f.offset + FRAME_HEAD + payloadOffset] ^= 0x01;
  const end = f.offset + f.size - 4;
  b.writeUInt32LE(crc32c(b, 0, f.offset, end), end);
  await writeFile(path, b);
}

/** SHA-256 over the journal's data files (segments, sidecars, checkpoint): did anything change? */
export async function dirDigest(dir: string): Promise<string> {
  const h = createHash('sha256');
  for (const n of (await readdir(dir)).filter((x) => /^(seg-\d{10}\.(log|idx)|checkpoint|spare)$/.test(x)).sort()) {
    h.update(n);
    h.update(await readFile(join(dir, n)));
  }
  return h.digest('hex');
}
