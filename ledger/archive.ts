// Hot and cold data (ARCHITECTURE §5): etcd keeps the log (head, blocks,
// tiles, refs, device heads) and recent batch data; older batch data moves to
// sealed archive files that any node verifies against the log, and etcd is
// compacted so it stays within its quota.
//
// Archive file (one per segment of consecutive blocks), immutable once sealed:
//
//   "ISCMARC1"
//   frame*        u32 BE length ‖ deflate-raw(CBOR [leaf_index, sign1 bstr, [record bstr …]])
//   index         CBOR [1, chain_id, first_height, last_height, first_leaf, leaf_count,
//                       [[offset, length] …] (one per leaf, in leaf order),
//                       events bstr]   ; 16 bytes per event, sorted: first 8 bytes of
//                                      ; SHA-256(eventID) ‖ u32 BE leaf ordinal ‖ u32 BE record index
//   trailer       u64 BE index offset ‖ u32 BE index length ‖ "ISCMEND1"
//
// Sealing: the file is written under a temporary name, fsync'd, renamed,
// made read-only, and its SHA-256 is recorded in the store (arch/…) in a
// compare-and-set that only one node can win; then the batch data of those
// blocks is deleted from etcd. Verification recomputes everything from the
// records up: record bytes → batch Merkle root (= the signed header root) →
// SHA-256 of the COSE_Sign1 (= the log leaf entry the block committed).
import { createHash } from 'node:crypto';
import { mkdirSync, openSync, closeSync, writeSync, fsyncSync, renameSync, chmodSync, readFileSync, existsSync, statSync, readSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { decode, encode } from '../protocol/cbor.js';
import { equalBytes, sha256, toHex } from '../protocol/bytes.js';
import { parseBatch } from '../protocol/batch-sign.js';
import { decodeRecord } from '../protocol/record.js';
import { merkleRoot } from '../protocol/merkle.js';
import { LedgerError, errorText } from './errors.js';
import type { Logger } from './logger.js';
import type { LedgerMetrics } from './metrics.js';
import type { LedgerStore } from './store/store.js';
import type { ArchiveSegment, BatchData, Block } from './store/types.js';

const MAGIC = Buffer.from('ISCMARC1');
const END = Buffer.from('ISCMEND1');
const TRAILER = 8 + 4 + 8;

export function eventKey(eventId: string): Buffer {
  return createHash('sha256').update(eventId, 'utf8').digest().subarray(0, 8);
}

function eventIdOf(record: Uint8Array): string | undefined {
  try {
    const id = decodeRecord(record).event.eventID;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

export function segmentFileName(firstHeight: number, lastHeight: number): string {
  return `seg-${String(firstHeight).padStart(12, '0')}-${String(lastHeight).padStart(12, '0')}.isca`;
}

/** Writes a sealed archive file for the batches of `blocks` (data in leaf order). Returns its hash and size. */
export function writeArchiveFile(
  dir: string,
  chainId: string,
  blocks: Block[],
  data: BatchData[],
): { file: string; sha256: Uint8Array; bytes: number; events: number } {
  mkdirSync(dir, { recursive: true });
  const first = blocks[0];
  const last = blocks[blocks.length - 1];
  const file = segmentFileName(first.height, last.height);
  const tmp = join(dir, `.${file}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  const hash = createHash('sha256');
  let off = 0;
  const put = (b: Uint8Array) => {
    let done = 0;
    while (done < b.length) done += writeSync(fd, b, done, b.length - done, off + done);
    hash.update(b);
    off += b.length;
  };
  try {
    put(MAGIC);
    const frames: [number, number][] = [];
    const events: Buffer[] = [];
    let leaf = first.firstLeaf;
    let ordinal = 0;
    for (const d of data) {
      const z = deflateRawSync(encode([leaf, d.sign1, d.records]), { level: 6 });
      const len = Buffer.alloc(4);
      len.writeUInt32BE(z.length);
      frames.push([off, 4 + z.length]);
      put(len);
      put(z);
      d.records.forEach((r, j) => {
        const id = eventIdOf(r);
        if (id === undefined) return;
        const e = Buffer.alloc(16);
        eventKey(id).copy(e, 0);
        e.writeUInt32BE(ordinal, 8);
        e.writeUInt32BE(j, 12);
        events.push(e);
      });
      leaf++;
      ordinal++;
    }
    events.sort(Buffer.compare);
    const leafCount = last.size - first.firstLeaf;
    if (leafCount !== data.length) throw new LedgerError('ARCHIVE', `blocks ${first.height}..${last.height} have ${leafCount} leaves, ${data.length} batches given`);
    const index = encode([1, chainId, first.height, last.height, first.firstLeaf, leafCount, frames, Buffer.concat(events)]);
    const indexOff = off;
    put(index);
    const tr = Buffer.alloc(TRAILER);
    tr.writeBigUInt64BE(BigInt(indexOff), 0);
    tr.writeUInt32BE(index.length, 8);
    END.copy(tr, 12);
    put(tr);
    fsyncSync(fd);
    closeSync(fd);
    chmodSync(tmp, 0o444);
    renameSync(tmp, join(dir, file));
    try {
      const dfd = openSync(dir, 'r');
      fsyncSync(dfd);
      closeSync(dfd);
    } catch {
      /* directories cannot be fsync'd on every file system */
    }
    return { file, sha256: new Uint8Array(hash.digest()), bytes: off, events: events.length };
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* closed */
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* gone */
    }
    throw e;
  }
}

interface ArchiveIndex {
  chainId: string;
  firstHeight: number;
  lastHeight: number;
  firstLeaf: number;
  leafCount: number;
  frames: [number, number][];
  events: Buffer;
}

/** Read access to one sealed archive file. */
export class ArchiveFile {
  readonly index: ArchiveIndex;
  private constructor(readonly path: string, index: ArchiveIndex) {
    this.index = index;
  }

  static open(path: string): ArchiveFile {
    if (!existsSync(path)) throw new LedgerError('ARCHIVE', `archive file ${path} is not on this node`);
    const size = statSync(path).size;
    if (size < MAGIC.length + TRAILER) throw new LedgerError('ARCHIVE', `archive file ${path} is truncated`);
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(8);
      readSync(fd, head, 0, 8, 0);
      const tr = Buffer.alloc(TRAILER);
      readSync(fd, tr, 0, TRAILER, size - TRAILER);
      if (!head.equals(MAGIC) || !tr.subarray(12).equals(END)) throw new LedgerError('ARCHIVE', `${path} is not an ISCM archive file (bad magic)`);
      const indexOff = Number(tr.readBigUInt64BE(0));
      const indexLen = tr.readUInt32BE(8);
      if (indexOff + indexLen + TRAILER !== size) throw new LedgerError('ARCHIVE', `${path}: index position does not match the file size`);
      const ib = Buffer.alloc(indexLen);
      readSync(fd, ib, 0, indexLen, indexOff);
      const a = decode(ib, { maxBytes: indexLen, maxDepth: 4 }) as unknown[];
      if (!Array.isArray(a) || a[0] !== 1 || a.length !== 8) throw new Error('unknown index format');
      return new ArchiveFile(path, {
        chainId: a[1] as string,
        firstHeight: a[2] as number,
        lastHeight: a[3] as number,
        firstLeaf: a[4] as number,
        leafCount: a[5] as number,
        frames: a[6] as [number, number][],
        events: Buffer.from(a[7] as Uint8Array),
      });
    } catch (e) {
      if (e instanceof LedgerError) throw e;
      throw new LedgerError('ARCHIVE', `${path}: unreadable archive index: ${errorText(e)}`);
    } finally {
      closeSync(fd);
    }
  }

  /** The batch at log leaf `leafIndex`. */
  batch(leafIndex: number): BatchData {
    const i = leafIndex - this.index.firstLeaf;
    if (i < 0 || i >= this.index.leafCount) throw new LedgerError('NOT_FOUND', `leaf ${leafIndex} is not in ${this.path}`);
    const [off, len] = this.index.frames[i];
    const fd = openSync(this.path, 'r');
    try {
      const b = Buffer.alloc(len);
      readSync(fd, b, 0, len, off);
      const z = b.subarray(4, 4 + b.readUInt32BE(0));
      const a = decode(new Uint8Array(inflateRawSync(z, { maxOutputLength: 64 * 1024 * 1024 })), { maxBytes: 64 * 1024 * 1024, maxDepth: 3 }) as unknown[];
      if (a[0] !== leafIndex) throw new Error(`frame holds leaf ${String(a[0])}`);
      return { sign1: a[1] as Uint8Array, records: a[2] as Uint8Array[] };
    } catch (e) {
      if (e instanceof LedgerError) throw e;
      throw new LedgerError('ARCHIVE', `${this.path}: leaf ${leafIndex} unreadable: ${errorText(e)}`);
    } finally {
      closeSync(fd);
    }
  }

  /** Candidate (leaf, record index) pairs for an event id (by its hash prefix). */
  findEvent(eventId: string): [number, number][] {
    const k = eventKey(eventId);
    const ev = this.index.events;
    const n = ev.length / 16;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(ev.subarray(mid * 16, mid * 16 + 8), k) < 0) lo = mid + 1;
      else hi = mid;
    }
    const out: [number, number][] = [];
    for (let i = lo; i < n && ev.subarray(i * 16, i * 16 + 8).equals(k); i++) out.push([this.index.firstLeaf + ev.readUInt32BE(i * 16 + 8), ev.readUInt32BE(i * 16 + 12)]);
    return out;
  }
}

/** Full verification of a sealed archive file against the log. Returns the events it holds. */
export async function verifyArchiveFile(path: string, seg: ArchiveSegment, store: LedgerStore): Promise<{ batches: number; events: number }> {
  const bytes = readFileSync(path);
  if (!equalBytes(sha256(bytes), seg.sha256)) throw new LedgerError('ARCHIVE', `${path}: SHA-256 ${toHex(sha256(bytes))} is not the sealed ${toHex(seg.sha256)}`);
  const f = ArchiveFile.open(path);
  const ix = f.index;
  if (ix.firstHeight !== seg.firstHeight || ix.lastHeight !== seg.lastHeight || ix.firstLeaf !== seg.firstLeaf || ix.leafCount !== seg.leafCount)
    throw new LedgerError('ARCHIVE', `${path}: index covers blocks ${ix.firstHeight}..${ix.lastHeight}, the segment record ${seg.firstHeight}..${seg.lastHeight}`);
  let events = 0;
  let batches = 0;
  for (let h = seg.firstHeight; h <= seg.lastHeight; h += 256) {
    for (const b of await store.blocks(h, Math.min(seg.lastHeight, h + 255))) {
      for (let i = 0; i < b.batches.length; i++) {
        const leaf = b.firstLeaf + i;
        const bb = b.batches[i];
        const d = f.batch(leaf);
        checkBatchData(d, bb.entry, bb.deviceId, bb.batchSeq, bb.firstSeq, bb.count, `${path} leaf ${leaf}`);
        events += d.records.length;
        batches++;
      }
    }
  }
  if (batches !== seg.leafCount) throw new LedgerError('ARCHIVE', `${path}: ${batches} batches verified, the segment has ${seg.leafCount}`);
  return { batches, events };
}

/** Checks batch data against what the log committed for it (entry, device, seq range, Merkle root). */
export function checkBatchData(d: BatchData, entry: Uint8Array, deviceId: string, batchSeq: number, firstSeq: number, count: number, where: string): void {
  if (!equalBytes(sha256(d.sign1), entry)) throw new LedgerError('ARCHIVE', `${where}: COSE_Sign1 hash is not the committed leaf entry ${toHex(entry)}`);
  const h = parseBatch(d.sign1).header;
  if (h.deviceId !== deviceId || h.batchSeq !== batchSeq || h.firstSeq !== firstSeq || h.count !== count)
    throw new LedgerError('ARCHIVE', `${where}: batch header (${h.deviceId} #${h.batchSeq}) does not match the block (${deviceId} #${batchSeq})`);
  if (d.records.length !== count) throw new LedgerError('ARCHIVE', `${where}: ${d.records.length} records, the batch has ${count}`);
  if (!equalBytes(merkleRoot(d.records), h.root)) throw new LedgerError('ARCHIVE', `${where}: the records' Merkle root is not the signed root`);
}

export interface ArchiverOptions {
  dir: string;
  chainId: string;
  nodeId: string;
  hotMaxAgeMs: number;
  hotMaxBytes: number;
  segmentMaxBytes: number;
  compact: boolean;
  defragment: boolean;
}

/**
 * etcd compaction the way etcd's periodic auto-compaction does it: each run
 * compacts to the revision the previous run saw, so one interval of history
 * stays (recent watches — the election's — remain valid) and nothing older.
 */
export class Compactor {
  #last = 0;
  constructor(readonly store: LedgerStore, readonly logger: Logger) {}
  async run(): Promise<void> {
    const st = await this.store.kv.status();
    if (this.#last > 1 && this.#last < st.revision) {
      await this.store.kv.compact(this.#last);
      this.logger.debug('etcd compacted', { revision: this.#last });
    }
    this.#last = st.revision;
  }
}

/** Moves cold batch data out of etcd into sealed archive files (run by the active sequencer). */
export class Archiver {
  #archivedHeight = -1;
  readonly compactor: Compactor;
  constructor(readonly store: LedgerStore, readonly o: ArchiverOptions, readonly logger: Logger, readonly metrics: LedgerMetrics) {
    this.compactor = new Compactor(store, logger);
  }

  /** Highest archived block height (cached; refreshed by runOnce and archivedHeight()). */
  get archived(): number {
    return Math.max(0, this.#archivedHeight);
  }

  async archivedHeight(): Promise<number> {
    const segs = await this.store.segments();
    this.#archivedHeight = segs.reduce((m, s) => Math.max(m, s.lastHeight), 0);
    return this.#archivedHeight;
  }

  /** Seals what is due; returns the segments written. */
  async runOnce(now = Date.now()): Promise<ArchiveSegment[]> {
    const out: ArchiveSegment[] = [];
    const from = (await this.archivedHeight()) + 1;
    const { head } = await this.store.head();
    if (!head || head.height < from) return out;
    // The hot blocks, oldest first (the hot tier is bounded, so this is too).
    const hot: Block[] = [];
    for (let h = from; h <= head.height; h += 512) hot.push(...(await this.store.blocks(h, Math.min(head.height, h + 511))));
    this.metrics.hotBlocks.set(hot.length);
    let hotBytes = hot.reduce((a, b) => a + b.batches.reduce((x, y) => x + y.bytes, 0), 0);
    let i = 0;
    while (i < hot.length) {
      // One segment: blocks that are due (too old, or over the byte budget), up to segment_max_bytes.
      const seg: Block[] = [];
      let segBytes = 0;
      while (i < hot.length) {
        const b = hot[i];
        const bytes = b.batches.reduce((x, y) => x + y.bytes, 0);
        const due = now - b.time > this.o.hotMaxAgeMs || hotBytes > this.o.hotMaxBytes;
        if (!due || (seg.length > 0 && segBytes + bytes > this.o.segmentMaxBytes)) break;
        seg.push(b);
        segBytes += bytes;
        hotBytes -= bytes;
        i++;
      }
      if (seg.length === 0) break;
      out.push(await this.#seal(seg));
    }
    await this.maintain();
    return out;
  }

  async #seal(blocks: Block[]): Promise<ArchiveSegment> {
    const data: BatchData[] = [];
    for (const b of blocks)
      for (const bb of b.batches) {
        const d = await this.store.batchData(bb.entry);
        if (!d) throw new LedgerError('ARCHIVE', `batch data ${toHex(bb.entry)} of block ${b.height} is missing from the hot tier`);
        checkBatchData(d, bb.entry, bb.deviceId, bb.batchSeq, bb.firstSeq, bb.count, `block ${b.height}`);
        data.push(d);
      }
    const w = writeArchiveFile(this.o.dir, this.o.chainId, blocks, data);
    const first = blocks[0];
    const last = blocks[blocks.length - 1];
    const seg: ArchiveSegment = {
      firstHeight: first.height,
      lastHeight: last.height,
      firstLeaf: first.firstLeaf,
      leafCount: last.size - first.firstLeaf,
      file: w.file,
      sha256: w.sha256,
      bytes: w.bytes,
      events: data.reduce((a, d) => a + d.records.length, 0),
      created: Date.now(),
      node: this.o.nodeId,
    };
    if (!(await this.store.putSegment(seg))) throw new LedgerError('ARCHIVE', `segment from block ${first.height} was sealed by another node meanwhile`);
    await this.store.deleteBatchData(blocks.flatMap((b) => b.batches.map((x) => x.entry)));
    this.#archivedHeight = last.height;
    this.metrics.archived.inc();
    this.logger.info('archive: segment sealed', { file: w.file, blocks: `${first.height}..${last.height}`, batches: seg.leafCount, events: seg.events, bytes: w.bytes });
    return seg;
  }

  /** etcd compaction (and defragmentation when configured and worthwhile). */
  async maintain(): Promise<void> {
    if (this.o.compact) await this.compactor.run();
    if (this.o.defragment) {
      const after = await this.store.kv.status();
      if (after.dbSizeBytes > 2 * after.dbSizeInUseBytes && after.dbSizeBytes > 64 * 1024 * 1024) {
        await this.store.kv.defragment();
        this.logger.info('archive: etcd defragmented', { before_bytes: after.dbSizeBytes, in_use_bytes: after.dbSizeInUseBytes });
      }
    }
  }
}
