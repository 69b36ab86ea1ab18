// The log's Merkle tree as RFC 9162 tiles (the tlog tiling of transparency-dev
// and Certificate Transparency's static logs): tile (L, i) holds up to 256
// hashes of the nodes at height 8·L, nodes 256·i … 256·i + 255. Level 0 holds
// leaf hashes. A tile is complete at 256 hashes and never changes after; the
// last tile of each level grows until then.
//
// With the tiles stored, any inclusion or consistency proof for any tree size
// needs O(log n) tile reads and at most 128 hash operations per proof entry,
// and restarting needs no rehashing: the sequencer reloads the compact range
// from the head and the last (partial) tile of each level.
//
// The protocol's proof functions take a synchronous HashSource; tiles come from
// the store asynchronously. `withTiles` runs a proof computation against the
// cached tiles, collects the tiles it was missing (answering zeros meanwhile),
// fetches them and runs it again: the ranges a proof visits depend only on the
// sizes and indices, so the second run needs nothing more.
import { HASH_SIZE, nodeHash, rootFromLeafHashes, type HashSource } from '../../protocol/merkle.js';
import { LedgerError } from '../errors.js';

export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;
const TILE_BYTES = TILE_WIDTH * HASH_SIZE;
const ZERO = new Uint8Array(HASH_SIZE);

const pow2 = (k: number) => 2 ** k;

/** Complete nodes at height 8·level in a tree of `size` leaves. */
export function nodesAt(level: number, size: number): number {
  return Math.floor(size / pow2(TILE_HEIGHT * level));
}

export type TileReader = (level: number, index: number) => Promise<Uint8Array | null>;

const tileKey = (level: number, index: number) => `${level}/${index}`;

/** Appends leaves to the tile set of a log and reports the tiles it changed. */
export class TileAppender {
  #size: number;
  /** Per level: index and content of the last, partial tile. */
  #partial: { index: number; bytes: Buffer; count: number }[] = [];
  #dirty = new Map<string, [number, number, Uint8Array]>();

  private constructor(size: number) {
    this.#size = size;
  }

  /** Loads the partial tiles of a tree of `size` leaves (one read per level that has one). */
  static async load(size: number, read: TileReader): Promise<TileAppender> {
    const t = new TileAppender(size);
    for (let level = 0; ; level++) {
      const n = nodesAt(level, size);
      if (n === 0 && level > 0) break;
      const index = Math.floor(n / TILE_WIDTH);
      const count = n % TILE_WIDTH;
      const bytes = Buffer.alloc(TILE_BYTES);
      if (count > 0) {
        const stored = await read(level, index);
        if (!stored || stored.length < count * HASH_SIZE)
          throw new LedgerError('STORE_CORRUPT', `tile ${level}/${index} holds ${stored ? stored.length / HASH_SIZE : 0} hashes; a tree of ${size} leaves needs ${count}`);
        bytes.set(stored.subarray(0, count * HASH_SIZE));
      }
      t.#partial[level] = { index, bytes, count };
      if (n === 0) break;
    }
    return t;
  }

  get size(): number {
    return this.#size;
  }

  append(leafHash: Uint8Array): void {
    let h = leafHash;
    for (let level = 0; ; level++) {
      let p = this.#partial[level];
      if (!p) p = this.#partial[level] = { index: 0, bytes: Buffer.alloc(TILE_BYTES), count: 0 };
      p.bytes.set(h, p.count * HASH_SIZE);
      p.count++;
      this.#dirty.set(tileKey(level, p.index), [level, p.index, Uint8Array.from(p.bytes.subarray(0, p.count * HASH_SIZE))]);
      if (p.count < TILE_WIDTH) break;
      // The tile is complete: its root is the node one level up.
      const hashes: Uint8Array[] = [];
      for (let i = 0; i < TILE_WIDTH; i++) hashes.push(p.bytes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
      h = rootFromLeafHashes(hashes);
      this.#partial[level] = { index: p.index + 1, bytes: Buffer.alloc(TILE_BYTES), count: 0 };
    }
    this.#size++;
  }

  /** Tiles changed since the last call: [level, index, hashes]. */
  takeDirty(): [number, number, Uint8Array][] {
    const out = [...this.#dirty.values()];
    this.#dirty.clear();
    return out;
  }

  /** How many tiles appending `n` more leaves would touch (for sizing a transaction). */
  tilesTouched(n: number): number {
    let touched = 0;
    let add = n;
    for (let level = 0; add > 0; level++) {
      const count = this.#partial[level]?.count ?? 0;
      touched += Math.floor((count + add - 1) / TILE_WIDTH) + 1;
      add = Math.floor((count + add) / TILE_WIDTH);
    }
    return touched;
  }
}

/** A bounded cache of tiles (LRU); complete tiles never change, partial ones are refreshed when too short. */
export class TileCache {
  #map = new Map<string, Uint8Array>();
  /** Roots of perfect aligned subtrees computed from tiles: valid forever (the log is append-only). */
  #memo = new Map<string, Uint8Array>();
  constructor(readonly maxTiles = 4096, readonly maxMemo = 65_536) {}

  memo(key: string): Uint8Array | undefined {
    return this.#memo.get(key);
  }

  remember(key: string, h: Uint8Array): void {
    this.#memo.set(key, h);
    if (this.#memo.size > this.maxMemo) this.#memo.delete(this.#memo.keys().next().value as string);
  }

  /** The tile if cached with at least `need` hashes. */
  get(level: number, index: number, need: number): Uint8Array | undefined {
    const k = tileKey(level, index);
    const t = this.#map.get(k);
    if (!t || t.length < need * HASH_SIZE) return undefined;
    this.#map.delete(k);
    this.#map.set(k, t);
    return t;
  }

  put(level: number, index: number, bytes: Uint8Array): void {
    const k = tileKey(level, index);
    const old = this.#map.get(k);
    if (old && old.length >= bytes.length) return;
    this.#map.delete(k);
    this.#map.set(k, bytes);
    while (this.#map.size > this.maxTiles) this.#map.delete(this.#map.keys().next().value as string);
  }

  clear(): void {
    this.#map.clear();
    this.#memo.clear();
  }
}

function isPow2(n: number): boolean {
  return n > 0 && Number.isInteger(Math.log2(n)) && pow2(Math.log2(n)) === n;
}

function largestPow2Below(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * A synchronous HashSource over cached tiles for a tree of `size` leaves.
 * Missing tiles are recorded in `missing` (level/index → hashes needed) and
 * answered with zeros; the result is then discarded and the run repeated.
 */
export function tileSource(size: number, cache: TileCache, missing: Map<string, [number, number, number]>): HashSource {
  const nodes = (level: number, first: number, count: number): Uint8Array[] | null => {
    const index = Math.floor(first / TILE_WIDTH);
    const off = first % TILE_WIDTH;
    const t = cache.get(level, index, off + count);
    if (!t) {
      const k = tileKey(level, index);
      const prev = missing.get(k);
      missing.set(k, [level, index, Math.max(prev?.[2] ?? 0, off + count)]);
      return null;
    }
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) out.push(t.subarray((off + i) * HASH_SIZE, (off + i + 1) * HASH_SIZE));
    return out;
  };
  const subtree = (lo: number, hi: number): Uint8Array => {
    const n = hi - lo;
    if (isPow2(n) && lo % n === 0) {
      const h = Math.log2(n);
      const level = Math.floor(h / TILE_HEIGHT);
      const count = pow2(h - TILE_HEIGHT * level);
      const first = lo / pow2(TILE_HEIGHT * level);
      if (count === 1) {
        const hs = nodes(level, first, 1);
        return hs ? Uint8Array.from(hs[0]) : ZERO;
      }
      const mk = `${h}:${lo}`;
      const m = cache.memo(mk);
      if (m) return m;
      const hs = nodes(level, first, count);
      if (!hs) return ZERO;
      const r = rootFromLeafHashes(hs);
      cache.remember(mk, r);
      return r;
    }
    const k = largestPow2Below(n);
    return nodeHash(subtree(lo, lo + k), subtree(lo + k, hi));
  };
  return {
    size,
    leaf(i: number): Uint8Array {
      const hs = nodes(0, i, 1);
      return hs ? Uint8Array.from(hs[0]) : ZERO;
    },
    subtree(start: number, end: number): Uint8Array {
      if (!(start >= 0 && start < end && end <= size)) throw new RangeError(`subtree [${start}, ${end}) outside a tree of ${size}`);
      return subtree(start, end);
    },
  };
}

/**
 * Runs `fn` against the tiles of a tree of `size` leaves, fetching whatever
 * tiles it needs with `read` (cached in `cache`).
 */
export async function withTiles<T>(size: number, cache: TileCache, read: TileReader, fn: (src: HashSource) => T): Promise<T> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const missing = new Map<string, [number, number, number]>();
    const result = fn(tileSource(size, cache, missing));
    if (missing.size === 0) return result;
    await Promise.all(
      [...missing.values()].map(async ([level, index, need]) => {
        const t = await read(level, index);
        if (!t || t.length < need * HASH_SIZE)
          throw new LedgerError('STORE_CORRUPT', `tile ${level}/${index} holds ${t ? t.length / HASH_SIZE : 0} hashes; the tree of ${size} leaves needs ${need}`);
        cache.put(level, index, t);
      }),
    );
  }
  throw new LedgerError('STORE_CORRUPT', `tiles for a tree of ${size} leaves kept missing`);
}
