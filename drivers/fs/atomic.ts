// Small durable-file helpers shared by the MCU link (dedupe state, simulator
// ring), the capture tool, and anything in runtime/ or ledger/ that needs
// "replace this small file atomically" without pulling in the journal.
//
// writeFileAtomic: write `path.tmp-PID-N`, fsync it, rename over `path`,
// fsync the directory. A crash at any point leaves the old file or the new
// one, never a mix, and never a renamed file whose data did not reach disk.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let counter = 0;
function tmpName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${++counter}`);
}

/**
 * Deletes the temp files an interrupted writeFileAtomic left in `dir` (a
 * crash between create and rename). Call before anything in that directory
 * writes; names are `.NAME.tmp-PID-N`, so only those are touched.
 */
export async function removeStaleTemps(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir).catch(() => [] as string[]))
    if (/^\..+\.tmp-\d+-\d+$/.test(f) && (await unlink(join(dir, f)).then(() => true, () => false))) n++;
  return n;
}

/** fsync of a directory: makes a create, rename or unlink in it durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close().catch(() => {});
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes all of `bytes` (looping over short writes). */
async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, done);
    if (bytesWritten <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    done += bytesWritten;
  }
}

/** Atomically replaces `path` with `data` (tmp + fsync + rename + fsync dir). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const tmp = tmpName(path);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'w', 0o644);
    await writeAll(fh, bytes);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fsyncDir(dirname(path));
}

/** The same, synchronously (for exit paths). */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const tmp = tmpName(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w', 0o644);
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, done);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) try { closeSync(fd); } catch { /* ignore */ }
    try { unlinkSync(tmp); } catch { /* ignore */ }
    throw e;
  }
  fsyncDirSync(dirname(path));
}

/** The file's bytes, or undefined when it does not exist. */
export async function readFileIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export function readFileIfExistsSync(path: string): Uint8Array | undefined {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
