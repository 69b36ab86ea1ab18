// Reading the log: proofs for any tree size from the stored tiles, and
// receipts against a signed head. Shared by the sequencer (receipts of a new
// block), ingest (duplicates: "the same receipt again") and the query API.
import { consistencyProof, inclusionProof, EMPTY_ROOT, type HashSource } from '../../protocol/merkle.js';
import { LedgerError } from '../errors.js';
import { parseTreeHead, receiptFromTreeHead } from '../receipts.js';
import type { LedgerStore } from '../store/store.js';
import type { HeadState } from '../store/types.js';
import { TileCache, withTiles, type TileReader } from './tiles.js';

export class LogView {
  readonly cache: TileCache;
  readonly read: TileReader;
  constructor(readonly store: LedgerStore, cache?: TileCache) {
    this.cache = cache ?? new TileCache();
    this.read = (level, index) => store.tile(level, index);
  }

  /** Runs a computation over the tree of `size` leaves. */
  withTree<T>(size: number, fn: (src: HashSource) => T): Promise<T> {
    return withTiles(size, this.cache, this.read, fn);
  }

  async inclusion(leafIndex: number, size: number): Promise<Uint8Array[]> {
    if (!(leafIndex < size)) throw new LedgerError('NOT_FOUND', `leaf ${leafIndex} is not in a tree of ${size} leaves`);
    return this.withTree(size, (src) => inclusionProof(src, leafIndex, size));
  }

  async consistency(size1: number, size2: number): Promise<Uint8Array[]> {
    if (!(size1 > 0 && size1 <= size2)) throw new LedgerError('NOT_FOUND', `no consistency proof from ${size1} to ${size2} (need 0 < first ≤ second)`);
    return this.withTree(size2, (src) => consistencyProof(src, size1, size2));
  }

  async rootAt(size: number): Promise<Uint8Array> {
    if (size === 0) return Uint8Array.from(EMPTY_ROOT);
    return this.withTree(size, (src) => src.subtree!(0, size));
  }

  /**
   * A COSE Receipt for leaf `leafIndex` against `head`'s signed tree head, with a
   * consistency proof from `knownSize` when 0 < knownSize < head.size.
   */
  async receipt(head: HeadState, leafIndex: number, knownSize = 0): Promise<Uint8Array> {
    const th = parseTreeHead(head.sth);
    const path = await this.inclusion(leafIndex, th.size);
    let consistency;
    if (knownSize > 0 && knownSize < th.size) consistency = { size1: knownSize, size2: th.size, path: await this.consistency(knownSize, th.size) };
    return receiptFromTreeHead(th, { treeSize: th.size, leafIndex, path }, consistency);
  }
}
