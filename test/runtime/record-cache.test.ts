// The light node's cache of just-durable records (runtime/node/record-cache.ts):
// ranges come back exactly, only while wholly held; bounded by bytes; a gap starts over.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RecordCache } from '../../runtime/node/record-cache.js';

const rec = (seq: number, size = 100) => new Uint8Array(size).fill(seq & 0xff);

test('ranges wholly held come back; partly evicted or beyond the end do not', () => {
  const c = new RecordCache(1000);
  c.add(1, [1, 2, 3, 4, 5].map((s) => rec(s)));
  assert.equal(c.range(2, 3)!.map((r) => r[0]), [2, 3, 4]);
  assert.is(c.range(4, 3), undefined, 'beyond the last record');
  c.add(6, [6, 7, 8, 9, 10, 11, 12].map((s) => rec(s))); // 1200 bytes: 1 and 2 evicted
  assert.is(c.range(1, 3), undefined, 'evicted');
  assert.is(c.range(2, 1), undefined);
  assert.equal(c.range(3, 10)!.map((r) => r[0]), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.equal([c.hits, c.misses], [2, 3]);
});

test('a gap (a restart, a refused unit) starts the cache over at the new seq', () => {
  const c = new RecordCache(10_000);
  c.add(1, [rec(1), rec(2)]);
  c.add(10, [rec(10), rec(11)]);
  assert.is(c.range(1, 1), undefined);
  assert.equal(c.range(10, 2)!.map((r) => r[0]), [10, 11]);
  for (let i = 12; i < 12 + 10_000; i++) c.add(i, [rec(i, 1)]);
  assert.equal(c.range(12 + 9_999, 1)!.map((r) => r[0]), [(12 + 9_999) & 0xff], 'long runs stay consistent');
});

test.run();
