// The group-commit queue of FileJournal: appended entries waiting for the
// write + fdatasync that makes them durable, their frames already encoded side
// by side in recycled 1 MiB buffers, so a group is written with one writev of
// a few large slices.
//
// Why recycled buffers: a fresh 1 MiB buffer per MiB appended is external
// memory churn that makes V8 collect far more often. Why frames are encoded
// at append time: the caller's buffer may be reused as soon as the append
// returns, and encoding then costs nothing later on the critical path.
import type { BatchHeader } from '../../protocol/batch.js';
import type { ChainState } from './chain-state.js';

/** Queue kind of a unit (appendUnit): its UNIT_RECORD frames and STATE frame, side by side, one queue item. Entry types are 1..5. */
export const UNIT = 0x100;

/** A new segment that the entry carrying it opens. */
export interface Roll {
  id: number;
  nonce: Uint8Array;
  header: Buffer;
  /** The chain state before the new segment's first entry. */
  base: ChainState;
  /** The latest state, framed as a STATE entry, written right after the header (so compaction never loses it). */
  carry: Buffer | undefined;
}

export interface Pending {
  /** EntryType, or UNIT. */
  kind: number;
  /** The frames are chunk[start, start + size). */
  chunk: Buffer;
  start: number;
  size: number;
  /** This item opens a new segment. */
  roll: Roll | undefined;
  /** File offset of the first frame in its segment. */
  off: number;
  /** Record seq, batch_seq, the batch_seq a commit mark names, or a unit's first seq. */
  key: number;
  /** Commit mark: the batch's last record seq. Unit: its last record seq. */
  lastSeq: number;
  /** Unit: how many records it holds. */
  count: number;
  /** Chunk offset of the frame of the item's last record (-1: no record). */
  lastRecAt: number;
  /** Records and units: SHA-256 of the last record as a latin1 string, when the journal computed it (undefined: the caller gave it). Batches: SHA-256 of the COSE_Sign1. */
  hash: string | Uint8Array | undefined;
  batch: BatchHeader | undefined;
  /** Unit: its state blob (the journal's own copy). */
  state: Uint8Array | undefined;
  resolve: (v: never) => void;
  reject: (e: unknown) => void;
}

const CHUNK_BYTES = 1024 * 1024;
const MAX_FREE_CHUNKS = 8;

export class FrameQueue {
  private items: Pending[] = [];
  private head = 0;
  /** Bytes of frames queued. */
  bytes = 0;
  /** The buffer the next frames go to (see reserve). */
  chunk: Buffer = Buffer.allocUnsafe(0);
  private used = 0;
  /** Chunks holding queued or in-flight frames, oldest first (an item's frames never span chunks). */
  private inUse: Buffer[] = [];
  private free: Buffer[] = [];

  get empty(): boolean {
    return this.head >= this.items.length;
  }

  peek(): Pending | undefined {
    return this.items[this.head];
  }

  /** The first queued item that holds a record. */
  firstWithRecord(): Pending | undefined {
    for (let i = this.head; i < this.items.length; i++) if (this.items[i].lastRecAt >= 0) return this.items[i];
    return undefined;
  }

  /** Room for `size` contiguous bytes of frames; returns their start in `this.chunk`. */
  reserve(size: number): number {
    if (size > this.chunk.length - this.used) {
      // A unit larger than a chunk gets a buffer of its own (not recycled).
      this.chunk = size > CHUNK_BYTES ? Buffer.allocUnsafe(size) : (this.free.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES));
      this.used = 0;
      this.inUse.push(this.chunk);
    }
    const start = this.used;
    this.used += size;
    return start;
  }

  push(p: Pending): void {
    this.items.push(p);
    this.bytes += p.size;
  }

  /** Takes the next group: items up to `maxBytes` (at least one), stopping before an item that opens a new segment. */
  take(maxBytes: number): { group: Pending[]; iov: Buffer[]; bytes: number } {
    // One write vector per run of frames that sit side by side in a chunk.
    const iov: Buffer[] = [];
    let runChunk: Buffer | undefined;
    let runStart = 0;
    let runEnd = 0;
    let n = 0;
    let bytes = 0;
    for (let i = this.head; i < this.items.length; i++) {
      const it = this.items[i];
      if (n > 0 && (it.roll || bytes + it.size > maxBytes)) break;
      if (it.chunk === runChunk && it.start === runEnd) runEnd += it.size;
      else {
        if (runChunk) iov.push(runChunk.subarray(runStart, runEnd));
        runChunk = it.chunk;
        runStart = it.start;
        runEnd = it.start + it.size;
      }
      bytes += it.size;
      n++;
    }
    iov.push(runChunk!.subarray(runStart, runEnd));
    const group = this.items.slice(this.head, this.head + n);
    this.head += n;
    this.bytes -= bytes;
    // Drop taken items soon: under load the queue never drains, and taken
    // items left in the array would live long enough to be promoted to V8's
    // old space (every scavenge copying them first), then die there.
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return { group, iov, bytes };
  }

  /** Frees the chunks wholly before `chunk` (the chunk of the last frame written). */
  releaseBefore(chunk: Buffer): void {
    while (this.inUse.length > 1 && this.inUse[0] !== chunk) this.recycle(this.inUse.shift()!);
  }

  /** Empties the queue (a refused group); returns what was queued. */
  clear(): Pending[] {
    const out = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    for (const c of this.inUse) if (c !== this.chunk) this.recycle(c);
    this.inUse = this.chunk.length ? [this.chunk] : [];
    return out;
  }

  private recycle(c: Buffer): void {
    if (c.length === CHUNK_BYTES && this.free.length < MAX_FREE_CHUNKS) this.free.push(c);
  }
}
