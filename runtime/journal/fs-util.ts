// Small filesystem helpers with the durability steps spelled out.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fsError } from './errors.js';

/** fsync of a directory: makes a create, rename or unlink in it durable. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    throw fsError(e, 'fsync of directory', dir);
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * Flags for a segment the journal appends to: read-write and O_DSYNC, so
 * every write returns only once durable (synchronized I/O data integrity, as
 * write + fdatasync). `create` also creates and truncates.
 */
export function appendFlags(create = false): number {
  return constants.O_RDWR | constants.O_DSYNC | (create ? constants.O_CREAT | constants.O_TRUNC : 0);
}

/** Writes all of `bufs` at `pos`, looping over short writes. */
export async function writeAll(fh: FileHandle, bufs: Uint8Array[], pos: number): Promise<void> {
  let total = 0;
  for (const b of bufs) total += b.length;
  let done = 0;
  while (done < total) {
    let list = bufs;
    if (done > 0) {
      // A short write: rebuild the remaining views.
      list = [];
      let skip = done;
      for (const b of bufs) {
        if (skip >= b.length) {
          skip -= b.length;
          continue;
        }
        list.push(skip ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    const { bytesWritten } = list.length === 1 ? await fh.write(list[0], 0, list[0].length, pos + done) : await fh.writev(list, pos + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    done += bytesWritten;
  }
}

const ZEROS = Buffer.alloc(1 << 20);

/**
 * Writes zeros over [from, to): real block allocation. Node has no
 * fallocate(2), and ftruncate only makes a sparse file that reserves nothing,
 * so ENOSPC would surface later, at write-back or fsync time, when the page
 * cache state is no longer known. After zeroFill + fsync the blocks are ours.
 */
export async function zeroFill(fh: FileHandle, from: number, to: number, syncEvery = 0): Promise<void> {
  let unsynced = 0;
  for (let p = from; p < to; p += ZEROS.length) {
    const n = Math.min(ZEROS.length, to - p);
    await writeAll(fh, [ZEROS.subarray(0, n)], p);
    unsynced += n;
    if (syncEvery && unsynced >= syncEvery) {
      await fh.datasync();
      unsynced = 0;
    }
  }
}

export function isZero(b: Uint8Array, from = 0, to = b.length): boolean {
  const v = Buffer.from(b.buffer, b.byteOffset + from, to - from);
  for (let p = 0; p < v.length; p += ZEROS.length) {
    const n = Math.min(ZEROS.length, v.length - p);
    if (!v.subarray(p, p + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

/** Reads up to `len` bytes at `pos`; returns the filled view. */
export async function readAt(fh: FileHandle, buf: Buffer, len: number, pos: number): Promise<Buffer> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}
