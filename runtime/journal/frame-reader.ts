// Streams the frames of one segment between two offsets, for the readers
// (unbatchedRecords, unreceiptedBatches, lookups). Reads in 256 KiB chunks, so
// memory stays flat whatever the backlog (ARCHITECTURE §2 invariant 6), and
// checks every frame's CRC: a bad frame in durable data is corruption and
// throws, loudly, instead of being skipped.
import { open, type FileHandle } from 'node:fs/promises';
import { JournalError, fsError } from './errors.js';
import { checkFrame, FRAME_HEAD, type EntryType } from './frame.js';
import { readAt } from './fs-util.js';

const CHUNK = 256 * 1024;

export interface Frame {
  type: EntryType;
  offset: number;
  /** A view valid until the next frame is requested: copy what you keep. */
  payload: Buffer;
}

/**
 * Yields the frames in [from, to). Returns nothing if the file is gone
 * (compaction deleted it after the caller chose it).
 */
export async function* readFrames(path: string, from: number, to: number): AsyncGenerator<Frame> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw fsError(e, 'open', path);
  }
  try {
    let buf = Buffer.allocUnsafe(CHUNK);
    let bufPos = from;
    let valid = 0;
    let p = 0;
    while (bufPos + p < to) {
      const r = checkFrame(buf, p, valid);
      if (r.ok) {
        yield { type: r.type, offset: bufPos + p, payload: buf.subarray(p + FRAME_HEAD, p + FRAME_HEAD + r.len) };
        p += r.size;
        continue;
      }
      if (r.why === 'short') {
        // Refill: a new buffer, so views handed out stay intact.
        const keep = valid - p;
        const nb = Buffer.allocUnsafe(CHUNK);
        buf.copy(nb, 0, p, valid);
        bufPos += p;
        buf = nb;
        p = 0;
        valid = keep;
        const want = Math.min(CHUNK - valid, to - (bufPos + valid));
        if (want > 0) {
          const got = await readAt(fh, buf.subarray(valid), want, bufPos + valid);
          valid += got.length;
          if (got.length > 0) continue;
        }
      }
      throw new JournalError('CORRUPT', `${path} at offset ${bufPos + p}: ${r.why === 'short' ? 'durable data ends inside a frame' : r.why === 'crc' ? 'CRC-32C mismatch' : r.why === 'end' ? 'zeros where durable entries must be' : `bad frame (${r.why})`} — the entry is damaged on disk and will not be skipped. Copy the journal directory for analysis; run verify() to list the damage`, { path, offset: bufPos + p });
    }
  } finally {
    await fh.close().catch(() => {});
  }
}
