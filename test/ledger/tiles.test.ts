// The log's tiles (ledger/log/tiles.ts): proofs for any size from stored
// tiles equal the protocol's MerkleTree (itself checked against RFC 9162
// vectors), across restarts at arbitrary sizes, with the number of tiles
// touched per append known before the commit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sha256, toHex } from '../../protocol/bytes.js';
import { MerkleTree, consistencyProof, inclusionProof, leafHash } from '../../protocol/merkle.js';
import { TileAppender, TileCache, TILE_WIDTH, withTiles, nodesAt } from '../../ledger/log/tiles.js';
import { LedgerError } from '../../ledger/errors.js';
import { prng } from '../helpers/prng.js';

const hex = (l: Uint8Array[]) => l.map(toHex).join(',');

async function build(n: number, rnd: () => number, restartEvery = 0.15) {
  const store = new Map<string, Uint8Array>();
  const reads = { n: 0 };
  const read = async (l: number, i: number) => {
    reads.n++;
    return store.get(`${l}/${i}`) ?? null;
  };
  const leaves = Array.from({ length: n }, (_, i) => leafHash(sha256(new Uint8Array([i & 255, (i >> 8) & 255, i >> 16]))));
  const mt = new MerkleTree();
  let app = await TileAppender.load(0, read);
  let i = 0;
  while (i < n) {
    const k = Math.min(n - i, 1 + Math.floor(rnd() * 600));
    const predicted = app.tilesTouched(k);
    for (let j = 0; j < k; j++) {
      app.append(leaves[i + j]);
      mt.append(leaves[i + j]);
    }
    const dirty = app.takeDirty();
    assert.is(dirty.length, predicted, `tiles touched by ${k} leaves after ${i}`);
    for (const [l, x, b] of dirty) store.set(`${l}/${x}`, b);
    i += k;
    if (rnd() < restartEvery) app = await TileAppender.load(i, read); // a new sequencer takes over
  }
  return { store, read, reads, mt, leaves };
}

test('proofs from tiles equal MerkleTree proofs for random sizes up to 70 000 leaves, across restarts', async () => {
  const rnd = prng(7);
  const N = 70_000;
  const { read, mt } = await build(N, rnd);
  const cache = new TileCache(32);
  for (let t = 0; t < 400; t++) {
    const size = 1 + Math.floor(rnd() * N);
    const idx = Math.floor(rnd() * size);
    assert.is(toHex(await withTiles(size, cache, read, (s) => s.subtree!(0, size))), toHex(mt.root(size)), `root ${size}`);
    assert.is(hex(await withTiles(size, cache, read, (s) => inclusionProof(s, idx, size))), hex(mt.inclusionProof(idx, size)), `inclusion ${idx}/${size}`);
    const m = 1 + Math.floor(rnd() * size);
    assert.is(hex(await withTiles(size, cache, read, (s) => consistencyProof(s, m, size))), hex(mt.consistencyProof(m, size)), `consistency ${m}/${size}`);
  }
});

test('sizes at tile boundaries (255, 256, 257, 65 535, 65 536, 65 537)', async () => {
  const { read, mt } = await build(65_600, prng(3), 0.5);
  const cache = new TileCache();
  for (const size of [1, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 65_600]) {
    for (const idx of [0, size - 1, Math.floor(size / 2)]) {
      assert.is(hex(await withTiles(size, cache, read, (s) => inclusionProof(s, idx, size))), hex(mt.inclusionProof(idx, size)), `${idx}/${size}`);
    }
    if (size > 1) assert.is(hex(await withTiles(size, cache, read, (s) => consistencyProof(s, size - 1, size))), hex(mt.consistencyProof(size - 1, size)));
  }
  assert.is(nodesAt(1, 65_600), 256);
  assert.is(nodesAt(2, 65_600), 1);
});

test('a proof reads O(log n) tiles, and cached tiles are not read again', async () => {
  const { read, reads, mt } = await build(40_000, prng(11), 0);
  const cache = new TileCache();
  reads.n = 0;
  const p = await withTiles(40_000, cache, read, (s) => inclusionProof(s, 12_345, 40_000));
  assert.is(hex(p), hex(mt.inclusionProof(12_345, 40_000)));
  assert.ok(reads.n > 0 && reads.n <= 8, `${reads.n} tile reads`);
  const before = reads.n;
  await withTiles(40_000, cache, read, (s) => inclusionProof(s, 12_346, 40_000));
  assert.is(reads.n, before, 'neighbouring proof served from the cache');
});

test('a missing or short tile is STORE_CORRUPT, not a wrong proof', async () => {
  const { store, read } = await build(3 * TILE_WIDTH + 10, prng(5), 0);
  store.set('0/1', store.get('0/1')!.subarray(0, 32 * 10));
  try {
    await withTiles(3 * TILE_WIDTH + 10, new TileCache(), read, (s) => inclusionProof(s, TILE_WIDTH + 100, 3 * TILE_WIDTH + 10));
    assert.unreachable('short tile accepted');
  } catch (e) {
    assert.instance(e, LedgerError);
    assert.is((e as LedgerError).code, 'STORE_CORRUPT');
  }
  try {
    await TileAppender.load(3 * TILE_WIDTH + 10, async () => null);
    assert.unreachable('missing partial tile accepted');
  } catch (e) {
    assert.is((e as LedgerError).code, 'STORE_CORRUPT');
  }
});

test.run();
