// The full node end to end with real services: a 3-member etcd cluster, the
// consortium mosquitto, two `iscm-ledger run` processes (one from the built
// bundle, one from source) sharing the MQTT 5 subscription, devices that
// publish real signed batches. Receipts verify with the project's verifier
// and an independent COSE library; bad input of each kind gets its status
// over MQTT; the query API answers; bundles exported by the CLI pass
// `iscm-edge verify`; the CLI's audit passes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sign1 } from '@auth0/cose';
import { encodeCoseKey, coseKeyToKeyObject } from '../../protocol/cose/key.js';
import { verifyEventProof } from '../../protocol/bundle.js';
import { ReceiptStatus } from '../../protocol/receipt-msg.js';
import { receiptProofs, verifyReceipt, verifyTreeHead } from '../../protocol/receipt.js';
import { rootFromInclusionProof, leafHash } from '../../protocol/merkle.js';
import { fromHex } from '../../protocol/bytes.js';
import { EtcdCluster } from '../helpers/etcd.js';
import { mosquittoAvailable, startConsortiumBroker, type Broker } from '../helpers/mosquitto.js';
import { DeviceChain, SimDevice, batchMessage } from '../helpers/device-sim.js';
import { waitUntil } from '../helpers/proc.js';
import { activeLedger, apiJson, enroll, makeKeys, openTestStore, root, startLedger, tempDir, writeLedgerConfig, PASS, type Keys, type LedgerProc } from './_env.js';

const SUITE = 'ledger end to end (etcd + mosquitto)';
const ok = EtcdCluster.available(SUITE) && mosquittoAvailable(SUITE);

let etcd: EtcdCluster;
let broker: Broker;
let keys: Keys;
let dir: string;
let ledgers: LedgerProc[] = [];
let t: ReturnType<typeof openTestStore>;
const devices: SimDevice[] = [];
let configFile: string;

function cli(bundle: 'iscm-ledger' | 'iscm-edge', ...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'dist', `${bundle}.mjs`), ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ISCM_LEDGER_KEY_PASSPHRASE: PASS, ISCM_OPERATOR_PASSPHRASE: PASS },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Waits for f() to return something (throws after ms). */
const found = <T>(f: () => T | undefined, ms: number, what: string) => waitUntil(f, ms, what) as Promise<T>;
const lastOf = (d: SimDevice, batchSeq: number) => found(() => d.received.filter((r) => r.msg.batchSeq === batchSeq).at(-1), 60_000, `a receipt message for ${d.deviceId} batch ${batchSeq}`);

if (ok) {
  test.before(async () => {
    const b = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'build', 'bundle.ts')], { cwd: root, encoding: 'utf8' });
    assert.is(b.status, 0, `npm run build failed: ${b.stderr}`);
    etcd = await EtcdCluster.start();
    broker = await startConsortiumBroker();
    keys = await makeKeys();
    dir = tempDir('iscm-e2e-');
    // Operator keys made with the CLI: one the ledgers trust, one they do not.
    for (const name of ['operator', 'rogue']) {
      const k = cli('iscm-ledger', 'key', 'generate', '--out', join(dir, `${name}.key`), '--alg', 'EdDSA', '--passphrase-env', 'ISCM_OPERATOR_PASSPHRASE');
      assert.is(k.code, 0, k.out + k.err);
      assert.is(cli('iscm-ledger', 'key', 'public', '--key', join(dir, `${name}.key`), '--out', join(dir, `${name}.pem`)).code, 0);
    }
    writeFileSync(keys.operatorPem, readFileSync(keys.operatorPem, 'utf8') + readFileSync(join(dir, 'operator.pem'), 'utf8'));
    for (const [i, id] of ['ledger-a', 'ledger-b'].entries()) {
      const cfg = writeLedgerConfig(dir, keys, { nodeId: id, endpoints: etcd.endpoints, mqttUrl: broker.url, blockInterval: '250ms', gapTimeout: '2s', maxPendingPerDevice: 16 });
      // A small MQTT message limit, to test "oversize".
      writeFileSync(cfg, readFileSync(cfg, 'utf8').replace('  concurrency: 16', '  concurrency: 16\n  max_message_bytes: 256KiB'));
      if (i === 0) configFile = cfg;
      ledgers.push(await startLedger(cfg, id, { bundle: i === 0 }));
    }
    t = openTestStore(etcd.endpoints, '/iscm/test/', keys);
  });

  test.after(async () => {
    for (const d of devices) await d.close();
    for (const l of ledgers) await l.proc.stop();
    await t?.store.close();
    await broker?.stop();
    await etcd?.stop();
  });

  test('devices publish signed batches; every receipt verifies (project verifier with consistency, and @auth0/cose)', async () => {
    for (let i = 0; i < 4; i++) {
      const d = new SimDevice(`truck-${i}`, { url: broker.url, trusted: keys.trusted, window: 4, resendMs: 20_000 });
      if (i === 0) {
        // Enrolled through the CLI (operator key file, passphrase from the environment);
        // an operator key the ledgers do not trust is refused.
        const devKey = join(dir, 'truck-0.cose');
        writeFileSync(devKey, encodeCoseKey(d.publicKey));
        const refused = cli('iscm-ledger', 'enroll', '--config', configFile, '--device-id', d.deviceId, '--public-key', devKey, '--operator-key', join(dir, 'rogue.key'));
        assert.is(refused.code, 1, refused.out + refused.err);
        assert.match(refused.err, /not among the trusted operator keys/);
        const r = cli('iscm-ledger', 'enroll', '--config', configFile, '--device-id', d.deviceId, '--public-key', devKey, '--operator-key', join(dir, 'operator.key'));
        assert.is(r.code, 0, r.out + r.err);
        assert.match(r.out, /enrolled truck-0: key [0-9a-f]{64}/);
      } else await enroll(t.registry, keys.operator, d.deviceId, d.publicKey);
      await d.connect();
      devices.push(d);
    }
    await activeLedger(ledgers);
    await Promise.all(devices.map((d) => d.run(6, 32, 180_000)));
    for (const d of devices) {
      assert.is(d.committed.size, 6);
      assert.equal(d.received.filter((r) => r.error), [], 'no receipt failed verification');
      // Independently: textbook root from the proof, @auth0/cose over it.
      const r = d.committed.get(3)!;
      const p = receiptProofs(r.msg.receipt!).inclusion[0];
      const rootX = rootFromInclusionProof(leafHash(createHash('sha256').update(d.batches.get(3)!.sign1).digest()), p.leafIndex, p.treeSize, p.path);
      await Sign1.decode(r.msg.receipt!).verify(coseKeyToKeyObject(keys.nodeKey), { detachedPayload: rootX });
    }
    // Both processes took batches from the shared subscription.
    const m = await Promise.all(ledgers.map((l) => fetch(l.apiUrl + '/metrics').then((x) => x.text())));
    const pending = m.map((x) => Number(/iscm_ledger_batches_pending_total (\d+)/.exec(x)?.[1] ?? 0));
    assert.ok(pending.every((n) => n > 0), `pending written per process: ${pending}`);
  });

  test('bad input over MQTT: malformed, oversize, unknown device, replay, reordered — each gets its status', async () => {
    const bad = new SimDevice('bad-actor', { url: broker.url, trusted: keys.trusted, resendMs: 600_000 });
    await enroll(t.registry, keys.operator, bad.deviceId, bad.publicKey);
    await bad.connect();
    devices.push(bad);
    bad.publishRaw(new Uint8Array([0x83, 0x41, 0x00]));
    let m = await lastOf(bad, 0);
    assert.is(m.msg.status, ReceiptStatus.REJECTED);
    assert.match(m.msg.reason!, /malformed batch message/);
    // Oversize: over the configured 256 KiB (refused before anything is decoded).
    const big = await new DeviceChain('bad-actor').next(500);
    bad.publishRaw(batchMessage(big));
    m = await found(() => bad.received.find((r) => /exceeds the limit of 262144/.test(r.msg.reason ?? '')), 60_000, 'oversize rejection');
    assert.is(m.msg.status, ReceiptStatus.REJECTED);
    // Unknown device.
    const ghost = new SimDevice('ghost-1', { url: broker.url, trusted: keys.trusted, resendMs: 600_000 });
    await ghost.connect();
    devices.push(ghost);
    await ghost.send(2);
    m = await lastOf(ghost, 1);
    assert.is(m.msg.status, ReceiptStatus.REJECTED);
    assert.match(m.msg.reason!, /unknown device ghost-1: not enrolled/);
    // Reordered: batches 3, 2, 1 published in that order all commit, in order.
    const bs = [await bad.chain.next(4), await bad.chain.next(4), await bad.chain.next(4)];
    for (const b of bs) bad.batches.set(b.batchSeq, { ...b, sentAt: Date.now(), firstSentAt: Date.now(), known: undefined, sends: 1 });
    for (const b of [...bs].reverse()) bad.publishRaw(batchMessage(b));
    await waitUntil(() => bad.committed.size === 3, 60_000, 'reordered batches committed');
    const leaves = [1, 2, 3].map((s) => bad.committed.get(s)!.verified!.leafIndex!);
    assert.ok(leaves[0] < leaves[1] && leaves[1] < leaves[2], `leaves in batch order: ${leaves}`);
    // Replay of batch 2: duplicate, the receipt again.
    const before = bad.received.length;
    bad.publishRaw(batchMessage(bs[1], bad.known!.size));
    m = await found(() => bad.received.slice(before).find((r) => r.msg.batchSeq === 2), 60_000, 'duplicate receipt');
    assert.is(m.msg.status, ReceiptStatus.DUPLICATE);
    assert.is(m.error, undefined);
    const v = verifyReceipt(m.msg.receipt!, { leafEntry: bs[1].entry, trusted: keys.trusted, knownHead: bad.known, requireSignedSize: true });
    assert.is(v.leafIndex, leaves[1]);
    // Far ahead: gap with next_seq.
    const ahead = [];
    for (let i = 0; i < 20; i++) ahead.push(await bad.chain.next(1));
    bad.publishRaw(batchMessage(ahead[19]));
    m = await lastOf(bad, ahead[19].batchSeq);
    assert.equal([m.msg.status, m.msg.nextSeq], [ReceiptStatus.GAP, 4]);
    // Both ledger processes are still up and ready.
    for (const l of ledgers) assert.is((await apiJson<{ store: string }>(l.apiUrl, '/v1/health')).store, 'ok');
  });

  test('query API: head, block, proofs, receipts, device status, event bundle, metrics', async () => {
    const api = ledgers[1].apiUrl;
    // Any ledger process serves queries; this one may see the last block a moment later.
    const head = await waitUntil(async () => {
      const h = await apiJson<{ size: number; height: number; root: string; sth: string }>(api, '/v1/head');
      return h.size >= 27 ? h : undefined;
    }, 30_000, 'the second ledger process to serve a head of at least 27 leaves');
    assert.ok(head.size >= 27);
    const th = verifyTreeHead(new Uint8Array(Buffer.from(head.sth, 'base64')), keys.trusted);
    assert.is(th.size, head.size);
    const sth = new Uint8Array(await (await fetch(api + '/v1/head.cose')).arrayBuffer());
    assert.is(verifyTreeHead(sth, keys.trusted).size >= head.size, true);
    const b1 = await apiJson<{ height: number; batches: { entry: string }[] }>(api, '/v1/blocks/1');
    assert.is(b1.height, 1);
    const d = devices[1];
    const inc = await apiJson<{ leaf_index: number; tree_size: number; path: string[]; root: string; receipt: string }>(api, `/v1/proofs/inclusion?device=${d.deviceId}&batch_seq=2`);
    const root = rootFromInclusionProof(leafHash(d.batches.get(2)!.entry), inc.leaf_index, inc.tree_size, inc.path.map(fromHex));
    assert.is(Buffer.from(root).toString('hex'), inc.root);
    verifyReceipt(new Uint8Array(Buffer.from(inc.receipt, 'base64')), { leafEntry: d.batches.get(2)!.entry, trusted: keys.trusted });
    const cons = await apiJson<{ first_root: string; second_root: string; path: string[] }>(api, `/v1/proofs/consistency?first=3&second=${inc.tree_size}`);
    const { verifyConsistency } = await import('../../protocol/merkle.js');
    verifyConsistency(3, inc.tree_size, fromHex(cons.first_root), fromHex(cons.second_root), cons.path.map(fromHex));
    // The receipt route a light node uses after missing a receipt.
    const known = d.known!;
    const rr = await fetch(`${api}/v1/receipts/${d.deviceId}/1?known_size=${known.size}`);
    assert.is(rr.status, 200);
    verifyReceipt(new Uint8Array(await rr.arrayBuffer()), { leafEntry: d.batches.get(1)!.entry, trusted: keys.trusted, knownHead: known, requireSignedSize: true });
    type DeviceStatus = { head: { batch_seq: number; last_seq: number }; last_seen: number; keys: unknown[]; rejects: number };
    const st = await waitUntil(async () => {
      const x = await apiJson<DeviceStatus>(api, `/v1/devices/${d.deviceId}`);
      return x.last_seen > 0 && x.head.batch_seq >= 6 ? x : undefined;
    }, 30_000, 'device status with last_seen and its sixth batch');
    assert.is(st.head.batch_seq, 6);
    assert.is(st.head.last_seq, 6 * 32);
    assert.ok(st.last_seen > 0);
    assert.is(st.keys.length, 1);
    await waitUntil(async () => (await apiJson<{ rejects: number }>(api, '/v1/devices/bad-actor')).rejects >= 2, 20_000, 'rejects counted');
    const ev = d.batches.get(4)!.eventIds[7];
    const bundle = await fetch(`${api}/v1/events/${encodeURIComponent(ev)}/bundle`);
    assert.is(bundle.status, 200);
    const v = verifyEventProof(new Uint8Array(await bundle.arrayBuffer()), keys.trusted);
    assert.is(v.record.event.eventID, ev);
    assert.is((await fetch(`${api}/v1/events/${encodeURIComponent('ni:///sha-256;00?ver=CBV2.0')}/bundle`)).status, 404);
    assert.is((await fetch(`${api}/v1/devices/NOT VALID`)).status, 400);
    assert.is((await fetch(`${api}/v1/blocks/999999`)).status, 404);
    const metrics = await (await fetch(ledgers[0].apiUrl + '/metrics')).text();
    for (const name of ['iscm_ledger_batches_received_total', 'iscm_ledger_batches_rejected_total', 'iscm_ledger_block_commit_seconds_bucket', 'iscm_ledger_sequencer_active', 'iscm_ledger_etcd_db_size_bytes', 'iscm_ledger_commit_lag_seconds_count'])
      assert.match(metrics, new RegExp(`^${name}`, 'm'));
    const roles = await Promise.all(ledgers.map((l) => apiJson<{ role: string }>(l.apiUrl, '/v1/health').then((h) => h.role)));
    assert.equal(roles.sort(), ['active', 'standby']);
  });

  test('revoke through the CLI: the device\'s next batch is rejected', async () => {
    const d = devices[2];
    const r = cli('iscm-ledger', 'revoke', '--config', configFile, '--device-id', d.deviceId, '--kid', Buffer.from(d.chain.signer.kid).toString('hex'), '--operator-key', join(dir, 'operator.key'), '--reason', 'decommissioned');
    assert.is(r.code, 0, r.out + r.err);
    await new Promise((res) => setTimeout(res, 1200)); // registry cache TTL of the ledgers (500 ms)
    const b = await d.send(2);
    const m = await lastOf(d, b.batchSeq);
    assert.is(m.msg.status, ReceiptStatus.REJECTED);
    assert.match(m.msg.reason!, /revoked \(decommissioned\)/);
  });

  test('export-bundles writes one bundle per committed event; iscm-edge verify accepts them all; audit passes', async () => {
    const out = join(dir, 'bundles');
    const e = cli('iscm-ledger', 'export-bundles', '--config', configFile, '--out', out);
    assert.is(e.code, 0, e.out + e.err);
    const files = readdirSync(out).filter((f) => f.endsWith('.iscm'));
    const expected = devices.reduce((a, d) => a + [...d.committed.keys()].reduce((x, s) => x + d.batches.get(s)!.count, 0), 0);
    assert.is(files.length, expected);
    const v = cli('iscm-edge', 'verify', '--ledger-key', keys.ledgerPem, out);
    assert.is(v.code, 0, v.out.slice(-2000) + v.err);
    assert.is(v.out.trim().split('\n').filter((l) => /: ok \(/.test(l)).length, expected);
    // One device only.
    const one = join(dir, 'one');
    assert.is(cli('iscm-ledger', 'export-bundles', '--config', configFile, '--out', one, '--device', devices[0].deviceId).code, 0);
    assert.is(readdirSync(one).length, 6 * 32);
    // A bundle signed by another ledger key fails verification.
    const other = join(dir, 'other.pem');
    writeFileSync(other, (await import('../helpers/independent.js')).ledgerPem((await import('../helpers/independent.js')).makeKey('ES256')));
    assert.is(cli('iscm-edge', 'verify', '--ledger-key', other, join(one, readdirSync(one)[0])).code, 1);
    const a = cli('iscm-ledger', 'audit', '--config', configFile, '--json');
    assert.is(a.code, 0, a.out + a.err);
    const rep = JSON.parse(a.out);
    assert.is(rep.ok, true);
    assert.is(rep.events, expected);
  });
}

test.run();
