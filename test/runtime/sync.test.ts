// The light node's signing and sync path against real parts: mosquitto, the
// project's ledger (in process, in-memory store), a FileJournal on disk, the
// adaptive batcher with a software key. Every record ends up committed on the
// device only after a verified receipt, and the trusted head follows the log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { ALG } from '../../protocol/cose/algorithms.js';
import { recordHash, encodeRecord, GENESIS_PREV } from '../../protocol/record.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { slowSigner } from '../../drivers/slow-signer.js';
import { FileJournal } from '../../runtime/journal/index.js';
import { Batcher } from '../../runtime/batcher/batcher.js';
import { Sync } from '../../runtime/sync/sync.js';
import { brokerRefusal } from '../../protocol/mqtt-refusal.js';
import { TrustedHeadStore } from '../../runtime/sync/receipt-check.js';
import { memoryLogger } from '../../runtime/ops/log.js';
import { Registry as Metrics } from '../../runtime/ops/metrics.js';
import { LedgerNode } from '../../ledger/node.js';
import { parseConfig } from '../../ledger/config/config.js';
import { MemoryKv } from '../../ledger/store/memory-kv.js';
import { LedgerStore } from '../../ledger/store/store.js';
import { Registry, signEnrollment } from '../../ledger/registry.js';
import { mosquittoAvailable, startConsortiumBroker, type Broker } from '../helpers/mosquitto.js';
import { tempDir, waitUntil } from '../helpers/proc.js';
import { makeKeys, writeLedgerConfig, PASS, type Keys } from '../ledger/_env.js';
import { sampleEvent } from '../helpers/fixtures.js';

const SUITE = 'light node sync against mosquitto and the ledger';

// Pure: which mqtt.js errors are the broker saying no (MQTT 5 §2.4 reason
// codes ≥ 0x80; 3.1.1 CONNACK return codes 1–5 only for a CONNACK).
test('brokerRefusal: reason codes ≥ 0x80, 3.1.1 CONNACK codes 1–5, nothing else', () => {
  const e = (message: string, code?: unknown) => Object.assign(new Error(message), code === undefined ? {} : { code });
  assert.equal(brokerRefusal(e('Publish error: Not authorized', 135)), { code: 135, reason: 'Not authorized' });
  assert.equal(brokerRefusal(e('Connection refused: Not authorized', 5), true), { code: 5, reason: 'Not authorized' });
  assert.equal(brokerRefusal(e('Subscribe error: Topic Filter invalid', 0x8f)), { code: 0x8f, reason: 'Topic Filter invalid' });
  assert.is(brokerRefusal(e('Connection refused: Not authorized', 5)), undefined, 'code 5 is a refusal only in a CONNACK');
  assert.is(brokerRefusal(e('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED')), undefined, 'a socket error is not the broker refusing');
  assert.is(brokerRefusal(e('Publish error: No matching subscribers', 16)), undefined, '0x10 is a success code');
  assert.is(brokerRefusal(e('client disconnecting')), undefined);
  assert.is(brokerRefusal(null), undefined);
  assert.is(brokerRefusal(undefined), undefined);
});
const have = mosquittoAvailable(SUITE);

let broker: Broker;
let brokerDir: string;
let ledger: LedgerNode;
let keys: Keys;
let kv: MemoryKv;

async function enrollDevice(deviceId: string, key: Parameters<typeof signEnrollment>[1]['key']) {
  const reg = new Registry(new LedgerStore(kv), [keys.operator.publicKey], 'iscm-test', 0);
  await reg.submit(await signEnrollment(keys.operator as never, { deviceId, key, notBefore: Date.now() - 60_000, issuedAt: Date.now(), chainId: 'iscm-test' }));
}

if (have) {
  test.before(async () => {
    const dir = tempDir('iscm-sync-');
    brokerDir = join(dir, 'broker');
    (await import('node:fs')).mkdirSync(brokerDir);
    broker = await startConsortiumBroker({ dir: brokerDir });
    keys = await makeKeys(join(dir));
    const file = writeLedgerConfig(dir, keys, { nodeId: 'l1', mqttUrl: broker.url, blockInterval: '200ms' });
    const { readFileSync } = await import('node:fs');
    const cfg = parseConfig(readFileSync(file, 'utf8'), file, { ISCM_LEDGER_KEY_PASSPHRASE: PASS });
    kv = new MemoryKv({ maxRequestBytes: 4 << 20, maxTxnOps: 1024 });
    ledger = await LedgerNode.start(cfg, { kv, env: { ...process.env, ISCM_LEDGER_KEY_PASSPHRASE: PASS } });
  });
  test.after(async () => {
    await ledger?.stop().catch(() => undefined);
    await broker?.stop();
  });

  async function device(deviceId: string, o: { slowMs?: number; maxRecords?: number } = {}) {
    const dir = tempDir('iscm-dev-');
    const base = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
    await enrollDevice(deviceId, base.publicKey);
    const signer = o.slowMs ? slowSigner(base, { latencyMs: o.slowMs }) : base;
    const journal = new FileJournal({ dir: join(dir, 'journal'), deviceId, maxBytes: 64 << 20 });
    await journal.open();
    const log = memoryLogger('info');
    const metrics = new Metrics();
    const head = new TrustedHeadStore(join(dir, 'head.cbor'));
    await head.load();
    const sync = new Sync({ url: broker.url, prefix: 'iscm/v1', deviceId, journal, trusted: keys.trusted, head, log, metrics, window: 4, resendTimeoutMs: 5000, backoff: { initialMs: 100, maxMs: 1000 } });
    const batcher = new Batcher({ journal, signer, deviceId, maxRecords: o.maxRecords ?? 64, maxDelayMs: 100, log, metrics, onBatch: () => sync.kick() });
    await batcher.start();
    await sync.start();
    let prev = GENESIS_PREV;
    let seq = 0;
    const append = async (n: number) => {
      const ps: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        seq++;
        const bytes = encodeRecord({ deviceId, seq, prev, time: Date.now(), event: sampleEvent(seq) });
        prev = recordHash(bytes);
        ps.push(journal.appendRecord(bytes).then(() => batcher.added(bytes.length)));
      }
      await Promise.all(ps);
    };
    return { journal, sync, batcher, head, log, metrics, append, signer, stop: async () => { await batcher.stop(); await sync.stop(); await journal.close(); } };
  }

  test('records are batched, signed, published, receipted, verified and committed; the trusted head follows the log', async () => {
    const d = await device('sync-dev-1');
    try {
      await d.append(500);
      await waitUntil(() => d.journal.stats().committedThroughSeq === 500, 60_000, 'all 500 records committed on the device');
      const st = d.journal.stats();
      assert.is(st.lastSeq, 500);
      assert.ok(st.committedThroughBatch >= 8, `500 records in batches of at most 64 (${st.committedThroughBatch} batches)`);
      const h = d.head.current();
      assert.ok(h && h.size >= st.committedThroughBatch, 'the trusted head covers our batches');
      assert.is(d.metrics.counter('iscm_receipts_verified_total', '').get(), st.committedThroughBatch);
      assert.is(d.sync.halted, undefined);
    } finally {
      await d.stop();
    }
  });

  test('a slow token (300 ms a signature) does not slow the records: batches grow instead', async () => {
    const d = await device('sync-dev-2', { slowMs: 300, maxRecords: 4096 });
    try {
      const t0 = Date.now();
      for (let k = 0; k < 10; k++) {
        await d.append(200);
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitUntil(() => d.journal.stats().committedThroughSeq === 2000, 60_000, 'all 2000 records committed');
      const batches = d.journal.stats().committedThroughBatch;
      // 2000 records arrived over ~0.5 s + appends; at 300 ms per signature only a handful of batches fit.
      assert.ok(batches <= 12, `batches grew while the token was busy (${batches} batches for 2000 records)`);
      assert.ok(Date.now() - t0 < 60_000);
    } finally {
      await d.stop();
    }
  });

  test('the device survives a broker restart: nothing is lost, everything is committed after it returns', async () => {
    const d = await device('sync-dev-3');
    try {
      await d.append(100);
      await waitUntil(() => d.journal.stats().committedThroughSeq === 100, 60_000, 'first 100 committed');
      const port = broker.port;
      await broker.stop();
      await d.append(300); // durable locally while the broker is down
      assert.is(d.journal.stats().lastSeq, 400);
      await new Promise((r) => setTimeout(r, 500));
      broker = await startConsortiumBroker({ dir: brokerDir, port });
      await waitUntil(() => d.journal.stats().committedThroughSeq === 400, 90_000, 'the backlog drained after the broker returned');
      assert.ok(d.metrics.counter('iscm_mqtt_reconnects_total', '').get() >= 1, 'the device really lost the broker and reconnected');
      assert.is(d.journal.stats().committedThroughBatch, d.journal.stats().lastBatchSeq, 'every batch receipted');
    } finally {
      await d.stop();
    }
  });
}

test.run();
