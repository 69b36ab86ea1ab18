// The adaptive batcher: batches close at max_records / max_bytes / max_delay;
// roots are the RFC 9162 root of the records' bytes in seq order, whether the
// leaf hashes came from the pipeline (in memory) or from the journal (after a
// restart, or when the in-memory feed overflowed behind a slow signer).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { ALG } from '../../protocol/cose/algorithms.js';
import { batchHeaderOfSign1 } from '../../protocol/batch.js';
import { merkleRoot } from '../../protocol/merkle.js';
import { toHex } from '../../protocol/bytes.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { slowSigner } from '../../drivers/slow-signer.js';
import { MemoryJournal, MemoryStore, type Journal } from '../../runtime/journal/index.js';
import { Batcher } from '../../runtime/batcher/batcher.js';
import { memoryLogger } from '../../runtime/ops/log.js';
import { Registry } from '../../runtime/ops/metrics.js';
import { recordChain } from '../helpers/fixtures.js';
import { waitUntil } from '../helpers/proc.js';

const DEV = 'batch-dev';
const signer = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);

async function batches(j: Journal) {
  const out = [];
  for (let b = 1; b <= j.stats().lastBatchSeq; b++) out.push(batchHeaderOfSign1((await j.getBatch(b))!.sign1));
  return out;
}

test('roots over the records whether the leaves come from the pipeline feed or the journal; chains contiguous', async () => {
  const store = new MemoryStore();
  const j = new MemoryJournal({ deviceId: DEV, store });
  await j.open();
  const { bytes } = recordChain(DEV, 300);
  let metrics = new Registry();
  const readBack = () => metrics.counter('iscm_batcher_records_read_total', '').get();
  let b = new Batcher({ journal: j, signer, deviceId: DEV, maxRecords: 64, maxDelayMs: 20, log: memoryLogger('warn'), metrics });
  await b.start();
  // 200 records through the feed, in units as the pipeline makes them.
  for (let i = 0; i < 200; i += 25) {
    const chunk = bytes.slice(i, i + 25);
    await j.appendUnit(chunk, new Uint8Array([1]));
    b.addedRecords(i + 1, chunk);
  }
  await waitUntil(() => j.stats().batchedThroughSeq === 200, 10_000, '200 batched');
  await b.stop();
  assert.is(readBack(), 0, 'every leaf came from the feed');
  // A restart: the next 100 are in the journal only (no feed), as after a crash.
  await j.appendUnit(bytes.slice(200), new Uint8Array([2]));
  metrics = new Registry();
  b = new Batcher({ journal: j, signer, deviceId: DEV, maxRecords: 64, maxDelayMs: 20, log: memoryLogger('warn'), metrics });
  await b.start();
  await waitUntil(() => j.stats().batchedThroughSeq === 300, 10_000, '300 batched');
  await b.stop();
  assert.is(readBack(), 100, 'after the restart the journal is read');
  const hs = await batches(j);
  let next = 1;
  for (const h of hs) {
    assert.is(h.firstSeq, next, 'contiguous');
    assert.ok(h.count <= 64);
    assert.is(toHex(h.root), toHex(merkleRoot(bytes.slice(h.firstSeq - 1, h.firstSeq - 1 + h.count))), `root of batch ${h.batchSeq}`);
    next = h.firstSeq + h.count;
  }
  assert.is(next, 301);
});

test('behind a slow signer the feed overflows and batches read the journal instead; batches grow', async () => {
  const j = new MemoryJournal({ deviceId: DEV });
  await j.open();
  const { bytes } = recordChain(DEV, 2000);
  const metrics = new Registry();
  const b = new Batcher({ journal: j, signer: slowSigner(signer, { latencyMs: 300 }), deviceId: DEV, maxRecords: 256, maxDelayMs: 10, log: memoryLogger('warn'), metrics });
  await b.start();
  for (let i = 0; i < 2000; i += 100) {
    const chunk = bytes.slice(i, i + 100);
    await j.appendUnit(chunk, new Uint8Array([1]));
    b.addedRecords(i + 1, chunk);
    await new Promise((r) => setTimeout(r, 5));
  }
  await waitUntil(() => j.stats().batchedThroughSeq === 2000, 30_000, 'all batched');
  await b.stop();
  const hs = await batches(j);
  assert.ok(hs.length <= 12, `batches grew behind the slow token (${hs.length})`);
  assert.ok(metrics.counter('iscm_batcher_records_read_total', '').get() > 0, 'the feed overflowed: some batches read the journal');
  for (const h of hs) assert.is(toHex(h.root), toHex(merkleRoot(bytes.slice(h.firstSeq - 1, h.firstSeq - 1 + h.count))));
});

for (const latencyMs of [100, 1000]) {
  test(`a token at ${latencyMs} ms per signature carries the whole record rate: batches grow to what arrives meanwhile`, async () => {
    const j = new MemoryJournal({ deviceId: DEV });
    await j.open();
    const rate = 2000; // records/s offered
    const seconds = 4;
    const { bytes } = recordChain(DEV, rate * seconds);
    const slow = slowSigner(signer, { latencyMs });
    const b = new Batcher({ journal: j, signer: slow, deviceId: DEV, maxRecords: 16384, maxBytes: 15 << 20, maxDelayMs: 10, log: memoryLogger('warn'), metrics: new Registry() });
    await b.start();
    const t0 = Date.now();
    for (let i = 0; i < bytes.length; i += rate / 20) {
      const chunk = bytes.slice(i, i + rate / 20);
      await j.appendUnit(chunk, new Uint8Array([1]));
      b.addedRecords(i + 1, chunk);
      const due = t0 + ((i + rate / 20) / rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    }
    await waitUntil(() => j.stats().batchedThroughSeq === bytes.length, 60_000, 'all batched');
    await b.stop();
    const hs = await batches(j);
    // One signature at a time: about one batch per signature time while records arrive, whatever their rate.
    const bound = Math.ceil((seconds * 1000) / latencyMs) + 3;
    assert.ok(hs.length <= bound, `${hs.length} batches for ${bytes.length} records (at most ${bound} with a ${latencyMs} ms token)`);
    const mean = bytes.length / hs.length;
    assert.ok(mean >= (rate * latencyMs) / 1000 / 2, `batches grow with the token's latency (mean ${mean.toFixed(0)} records)`);
    assert.is(slow.stats().signs, hs.length, 'one signature per batch');
  });
}

test.run();
