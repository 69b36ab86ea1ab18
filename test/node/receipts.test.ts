// What the light node does with receipts it must not believe (ARCHITECTURE
// §2 invariant 2, §4.4), through the real node process and a real broker.
// The test plays the ledger: it takes the node's batch messages off the
// broker and answers with receipts it signs itself — with an untrusted key,
// for another device's batch, with a consistency proof that does not link,
// and for a tree size the node already trusts with another root (a fork).
// None of them commits anything or lets the journal compact; the fork halts
// the stream with an alarm. A genuine receipt commits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { ALG } from '../../protocol/cose/algorithms.js';
import { coseKeyToPem } from '../../protocol/cose/key.js';
import { sha256 } from '../../protocol/bytes.js';
import { leafHash, MerkleTree } from '../../protocol/merkle.js';
import { signReceipt } from '../../protocol/receipt.js';
import { decodeBatchMessage, batchHeaderOfSign1 } from '../../protocol/batch.js';
import { encodeReceiptMsg, ReceiptStatus } from '../../protocol/receipt-msg.js';
import { topics } from '../../protocol/topics.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { generateKeyFile } from '../../drivers/software/keyfile.js';
import { mosquittoAvailable, startConsortiumBroker, type Broker } from '../helpers/mosquitto.js';
import { haveSocat, ptyPair, type PtyPair } from '../helpers/socat.js';
import type { Proc } from '../helpers/proc.js';
import { freePort, metric, metricSum, metricsText, simFirmware, startNode, status, tempDir, waitUntil, writeNodeConfig } from './_env.js';

const SUITE = 'light node receipt checks';
const ok = mosquittoAvailable(SUITE) && haveSocat(SUITE);
const DEVICE = 'rcpt-dev';
const PASS = 'receipt test passphrase';

let broker: Broker;
let node: Proc;
let pty: PtyPair;
let sim: { proc: Proc; log: string };
let client: MqttClient;
let metricsPort: number;
const ledger = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
const stranger = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
/** The batches the node published, by batch_seq (the latest copy). */
const batches = new Map<number, Uint8Array>();
/** Every batch message: its batch_seq, how many records it carried, and its known_size. */
const messages: { batchSeq: number; records: number; knownSize: number }[] = [];
/** The test's log: other devices' leaves, then ours as they come. */
const tree = new MerkleTree();
const leafOf = new Map<number, number>();

function addToLog(batchSeq: number): number {
  if (!leafOf.has(batchSeq)) {
    tree.append(leafHash(sha256(new Uint8Array([0xee, batchSeq])))); // another device's batch before ours
    leafOf.set(batchSeq, tree.append(leafHash(sha256(batches.get(batchSeq)!))));
  }
  return leafOf.get(batchSeq)!;
}

async function answer(batchSeq: number, receipt: Uint8Array): Promise<void> {
  await client.publishAsync(topics.receipt('iscm/v1', DEVICE), Buffer.from(encodeReceiptMsg({ batchSeq, status: ReceiptStatus.COMMITTED, receipt })), { qos: 1 });
}

const committed = async () => (await status(metricsPort)).journal.committed_through_batch as number;
const rejected = async () => metricSum(await metricsText(metricsPort), 'iscm_receipts_rejected_total');

if (ok) {
  test.before(async () => {
    try {
      await setup();
    } catch (e) {
      console.error('setup failed:', e);
      throw e;
    }
  });
  async function setup() {
    const dir = tempDir('iscm-rcpt-');
    broker = await startConsortiumBroker({ dir: join(dir, 'mosq') });
    const ledgerPem = join(dir, 'ledger.pem');
    writeFileSync(ledgerPem, coseKeyToPem(ledger.publicKey));
    const keyFile = join(dir, 'device.key');
    await generateKeyFile(keyFile, ALG.EdDSA, { passphraseEnv: 'DEV_PASS', env: { DEV_PASS: PASS } }, { scrypt: { N: 2 ** 10 } });
    client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'fake-ledger' });
    client.on('message', (_t, p) => {
      const m = decodeBatchMessage(new Uint8Array(p));
      const seq = batchHeaderOfSign1(m.sign1).batchSeq;
      batches.set(seq, m.sign1);
      messages.push({ batchSeq: seq, records: m.records.length, knownSize: m.knownSize });
    });
    await client.subscribeAsync(topics.batch('iscm/v1', DEVICE), { qos: 1 });
    pty = await ptyPair(dir, 'mcu');
    metricsPort = await freePort();
    const config = writeNodeConfig({ deviceId: DEVICE, dir: join(dir, 'node'), mqttUrl: broker.url, ledgerPem, softwareKey: { file: keyFile, passEnv: 'DEV_PASS' }, metricsPort, ports: { mcu: { path: pty.a, sensors: ['t1', 'h1'] } }, batching: { max_records: 20, max_delay: '100ms' }, mqtt: { resend_timeout: '60s' } });
    node = await startNode(config, { DEV_PASS: PASS });
    sim = simFirmware(pty.b, dir, { count: 200, rate: 100, sensors: 'temp,humidity' });
    await waitUntil(() => batches.size >= 3, 60_000, 'the node published batches');
  }

  test.after(async () => {
    await client?.endAsync();
    await sim?.proc.stop();
    await node?.stop();
    await pty?.stop();
    await broker?.stop();
  });

  test('a receipt signed by a key the node does not trust commits nothing', async () => {
    const i = addToLog(1);
    const r = await signReceipt(stranger, { root: tree.root(), inclusion: { treeSize: tree.size, leafIndex: i, path: tree.inclusionProof(i) }, chainId: 'c', iat: 1 });
    const before = await rejected();
    await answer(1, r);
    await waitUntil(async () => (await rejected()) > before, 20_000, 'refused');
    assert.is(await committed(), 0);
  });

  test("a receipt for another device's batch (the proof is for another leaf) commits nothing", async () => {
    addToLog(1);
    const other = leafOf.get(1)! - 1; // the foreign leaf right before ours
    const r = await signReceipt(ledger, { root: tree.root(), inclusion: { treeSize: tree.size, leafIndex: other, path: tree.inclusionProof(other) }, chainId: 'c', iat: 1 });
    const before = await rejected();
    await answer(1, r);
    await waitUntil(async () => (await rejected()) > before, 20_000, 'refused');
    assert.is(await committed(), 0);
  });

  test('a genuine receipt commits, and the node now trusts that tree head', async () => {
    const i = addToLog(1);
    const size = tree.size;
    await answer(1, await signReceipt(ledger, { root: tree.root(size), inclusion: { treeSize: size, leafIndex: i, path: tree.inclusionProof(i, size) }, chainId: 'c', iat: 1 }));
    await waitUntil(async () => (await committed()) === 1, 20_000, 'batch 1 committed');
    assert.is((await status(metricsPort)).sync.trusted_tree_size, size);
  });

  test('a receipt proven from an older head is stale: nothing commits, and the node asks for a fresh one without sending the records again', async () => {
    const trustedSize = (await status(metricsPort)).sync.trusted_tree_size as number;
    const i = addToLog(2);
    const size = tree.size;
    const n = messages.length;
    // Proven from size 1 (an older head), not from the trusted one.
    await answer(2, await signReceipt(ledger, { root: tree.root(size), inclusion: { treeSize: size, leafIndex: i, path: tree.inclusionProof(i, size) }, consistency: { size1: 1, size2: size, path: tree.consistencyProof(1, size) }, chainId: 'c', iat: 1 }));
    const req = await waitUntil(() => messages.slice(n).find((m) => m.batchSeq === 2), 20_000, 'a receipt request for batch 2');
    assert.equal([req.records, req.knownSize], [0, trustedSize], 'no records; known_size = the trusted head');
    assert.is(await committed(), 1);
    assert.ok(metric(await metricsText(metricsPort), 'iscm_receipt_requests_total') >= 1);
  });

  test('a consistency proof that does not link to the trusted head commits nothing; repeated, it halts the stream', async () => {
    const trustedSize = (await status(metricsPort)).sync.trusted_tree_size as number;
    const i = addToLog(2);
    const size = tree.size;
    const bad = tree.consistencyProof(trustedSize, size).map((h) => h.map((b) => b ^ 0x5a));
    for (let k = 0; k < 3; k++) {
      await answer(2, await signReceipt(ledger, { root: tree.root(size), inclusion: { treeSize: size, leafIndex: i, path: tree.inclusionProof(i, size) }, consistency: { size1: trustedSize, size2: size, path: bad }, chainId: 'c', iat: 1 }));
      await new Promise((r) => setTimeout(r, 300));
    }
    await waitUntil(async () => (await status(metricsPort)).sync.halted !== null, 20_000, 'halted');
    const s = await status(metricsPort);
    assert.match(s.sync.halted, /inconsisten/);
    assert.is(s.journal.committed_through_batch, 1, 'nothing more committed');
    assert.is(s.sync.trusted_tree_size, trustedSize, 'the trusted head did not move');
    assert.ok(s.alarms.some((a: { key: string }) => a.key.startsWith('sync:')), 'an alarm an operator sees');
    const h = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    assert.is(h.status, 503);
    assert.is(metric(await metricsText(metricsPort), 'iscm_sync_alarm'), 1);
  });

  test('two signed roots for the trusted size are a fork: nothing commits, the data stays', async () => {
    const s0 = await status(metricsPort);
    const size = s0.sync.trusted_tree_size as number;
    // Another tree of the same size with batch 2 in it: the ledger signed two different roots for `size`.
    const fork = new MerkleTree();
    for (let k = 0; k < size - 1; k++) fork.append(leafHash(sha256(new Uint8Array([0xaa, k]))));
    const i = fork.append(leafHash(sha256(batches.get(2)!)));
    await answer(2, await signReceipt(ledger, { root: fork.root(), inclusion: { treeSize: size, leafIndex: i, path: fork.inclusionProof(i) }, chainId: 'c', iat: 1 }));
    await new Promise((r) => setTimeout(r, 1000));
    const s = await status(metricsPort);
    assert.is(s.journal.committed_through_batch, 1);
    assert.match(s.sync.halted, /fork/, 'the halt names the fork');
    assert.ok(s.journal.last_seq >= 200, 'every record is still in the journal');
    assert.is(s.journal.backlog_records, s.journal.last_seq - s.journal.committed_through_seq, 'the backlog is kept, not compacted');
  });
}

test.run();
