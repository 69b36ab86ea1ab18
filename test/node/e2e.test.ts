// The whole system once, with real parts only: the firmware simulator on a
// socat pty → `iscm-edge run` (device key on a SoftHSM token) → the gateway's
// mosquitto, bridged to the consortium mosquitto → the project's ledger on a
// 3-member etcd cluster → receipts back over the bridge. Then: every reading
// the simulator created is in the ledger exactly once, the node committed
// everything on verified receipts only, `iscm-edge status` says so, and every
// event's proof bundle verifies with `iscm-edge verify`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdCluster } from '../helpers/etcd.js';
import { mosquittoAvailable } from '../helpers/mosquitto.js';
import { haveSoftHsm } from '../helpers/softhsm.js';
import { haveSocat, ptyPair, type PtyPair } from '../helpers/socat.js';
import type { Proc } from '../helpers/proc.js';
import { deviceToken, edge, freePort, metric, metricsText, simFirmware, simLog, startConsortium, startGatewayBridge, startNode, status, tempDir, waitUntil, writeNodeConfig, type Consortium, type DeviceToken } from './_env.js';
import type { Broker } from '../helpers/mosquitto.js';
import { FileJournal } from '../../runtime/journal/index.js';
import { committedProofs } from '../../runtime/node/proofs.js';

const SUITE = 'light node end to end';
const ok = mosquittoAvailable(SUITE) && EtcdCluster.available(SUITE) && haveSoftHsm(SUITE) && haveSocat(SUITE);
const DEVICE = 'reefer-e2e';
const COUNT = 600;

let c: Consortium;
let gw: Broker;
let pty: PtyPair;
let node: Proc;
let sim: { proc: Proc; log: string };
let token: DeviceToken;
let dir: string;
let metricsPort: number;
let config: string;

if (ok) {
  test.before(async () => {
    dir = tempDir('iscm-e2e-');
    c = await startConsortium({ etcd: true });
    gw = await startGatewayBridge(c.consortium, 'truck-e2e', [DEVICE], { dir: join(dir, 'gw-mosq') });
    token = deviceToken(DEVICE, dir);
    await c.enroll(DEVICE, token.publicKey);
    pty = await ptyPair(dir, 'mcu');
    metricsPort = await freePort();
    config = writeNodeConfig({ deviceId: DEVICE, dir: join(dir, 'node'), mqttUrl: gw.url, ledgerPem: c.keys.ledgerPem, token, metricsPort, ports: { mcu: { path: pty.a, sensors: ['t1', 'h1', 's1', 'd1', 'g1', 'r1'] } } });
    node = await startNode(config, token.hsm.env);
    sim = simFirmware(pty.b, dir, { count: COUNT, rate: 150 });
  });

  test.after(async () => {
    await sim?.proc.stop();
    await node?.stop();
    await pty?.stop();
    await gw?.stop();
    await c?.stop();
  });

  test('every reading the firmware created is in the ledger exactly once, committed on verified receipts', async () => {
    await sim.proc.waitFor(/all \d+ readings acknowledged/, 120_000);
    // The simulator's log file trails its console line a little.
    let log = simLog(sim.log);
    await waitUntil(() => (log = simLog(sim.log)).acked.size === COUNT, 10_000, 'the simulator log lists every ack');
    const { created, acked } = log;
    assert.is(created.length, COUNT);
    assert.is(acked.size, COUNT, 'the node acknowledged every reading (each only once durable)');
    const st0 = await status(metricsPort);
    await waitUntil(async () => {
      const s = await status(metricsPort);
      return s.journal.last_seq >= COUNT && s.journal.committed_through_seq === s.journal.last_seq;
    }, 120_000, 'every record committed on the device');
    assert.ok(st0.links.mcu.state === 'linked', `link linked (${st0.links.mcu.state})`);
    const recs = await c.ledgerRecords(DEVICE);
    const bySource = new Map<string, number>();
    for (const r of recs) {
      const s = r.source as { boot_id: number; seq: number } | undefined;
      if (!s) continue;
      const k = `${s.boot_id}:${s.seq}`;
      bySource.set(k, (bySource.get(k) ?? 0) + 1);
    }
    const missing = created.filter((k) => !bySource.has(k));
    const twice = [...bySource].filter(([, n]) => n > 1);
    assert.equal(missing, [], 'created readings missing from the ledger');
    assert.equal(twice, [], 'readings in the ledger more than once');
    assert.equal(recs.map((r) => r.seq), recs.map((_, i) => i + 1), 'the ledger holds the device chain 1..n without gaps');
    const s = await status(metricsPort);
    assert.is(s.journal.last_seq, recs.length, 'the node recorded what the ledger holds');
    assert.is(s.sync.state, 'online');
    assert.is(s.sync.halted, null);
    assert.is(s.signer.state, 'ready');
    assert.equal(s.alarms, []);
    const m = await metricsText(metricsPort);
    assert.is(metric(m, 'iscm_receipts_verified_total'), s.journal.committed_through_batch);
    assert.ok(metric(m, 'iscm_readings_total', 'source="port:mcu"') >= COUNT);
    assert.is(metric(m, 'iscm_journal_backlog_records'), 0);
  });

  test('`iscm-edge status` shows it on one screen and exits 0', async () => {
    const r = edge(['status', '--config', config], token.hsm.env);
    assert.is(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^${DEVICE} {2}iscm-edge`, 'm'));
    assert.match(r.stdout, /links +mcu: linked \(iscm-sim/);
    assert.match(r.stdout, /journal +\d+ records, \d+ receipted \(0 behind/);
    assert.match(r.stdout, /sync +online/);
    assert.match(r.stdout, /alarms +none/);
  });

  test('export-proof writes a bundle for one event; every committed event\'s bundle verifies with `iscm-edge verify`', async () => {
    const one = join(dir, 'one.iscm');
    const r = edge(['export-proof', '--config', config, '--seq', '5', '--out', one], token.hsm.env);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /event ni:\/\/\/sha-256;[0-9a-f]{64}\?ver=CBV2\.0 \(record 5, batch \d+/);
    // By eventID too.
    const eventId = /event (\S+) /.exec(r.stdout)![1];
    const again = edge(['export-proof', '--config', config, eventId, '--out', join(dir, 'again.iscm')], token.hsm.env);
    assert.is(again.status, 0, again.stderr);
    // All of them, from the journal read-only while the node runs.
    const out = join(dir, 'bundles');
    mkdirSync(out);
    const j = new FileJournal({ dir: join(dir, 'node', 'journal'), deviceId: DEVICE, readOnly: true, maxBytes: 64 << 20 });
    await j.open();
    const { decodeCoseKey } = await import('../../protocol/cose/key.js');
    const { readFileSync } = await import('node:fs');
    const key = decodeCoseKey(new Uint8Array(readFileSync(join(dir, 'node', 'state', 'device-key.cose'))));
    let n = 0;
    for await (const p of committedProofs(j, key)) {
      writeFileSync(join(out, `${String(p.seq).padStart(6, '0')}.iscm`), p.bundle);
      n++;
    }
    await j.close();
    assert.ok(n >= COUNT, `${n} bundles`);
    const v = edge(['verify', '--ledger-key', c.keys.ledgerPem, out]);
    assert.is(v.status, 0, v.stdout.slice(-2000) + v.stderr);
    assert.is(v.stdout.trim().split('\n').filter((l) => /: ok/.test(l)).length, n);
    const missing = edge(['export-proof', '--config', config, '--seq', '999999', '--out', join(dir, 'x.iscm')], token.hsm.env);
    assert.is(missing.status, 1);
    assert.match(missing.stderr, /record 999999 is not in a signed batch yet/);
  });
}

test.run();
