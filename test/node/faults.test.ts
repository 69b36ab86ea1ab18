// The light node under the faults gateways see, with real parts (firmware
// simulator on socat ptys, mosquitto bridged to the consortium's, the ledger
// on a 3-member etcd cluster, SoftHSM): after each, every reading the
// firmware created is in the ledger exactly once.
// - kill -9 of the node at random moments, ISCM_NODE_KILL_CYCLES times (20);
// - the broker down under load, then back: the backlog drains, RSS stays flat;
// - the token removed and returned: readings keep being journaled, batches
//   wait, then everything is signed and receipted;
// - the journal quota reached: the firmware is no longer acknowledged (it
//   keeps its readings), then receipts free space and it resumes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALG } from '../../protocol/cose/algorithms.js';
import { generateKeyFile } from '../../drivers/software/keyfile.js';
import { EtcdCluster } from '../helpers/etcd.js';
import { mosquittoAvailable, type Broker } from '../helpers/mosquitto.js';
import { haveSoftHsm } from '../helpers/softhsm.js';
import { haveSocat, ptyPair } from '../helpers/socat.js';
import { prng } from '../helpers/prng.js';
import { start, type Proc } from '../helpers/proc.js';
import { deviceToken, edgeArgs, freePort, metric, metricsText, root, simFirmware, simLog, startConsortium, startGatewayBridge, startNode, status, tempDir, waitUntil, writeNodeConfig, type Consortium } from './_env.js';

const SUITE = 'light node faults';
const ok = mosquittoAvailable(SUITE) && EtcdCluster.available(SUITE) && haveSoftHsm(SUITE) && haveSocat(SUITE);
const CYCLES = Number(process.env.ISCM_NODE_KILL_CYCLES ?? 20);
const PASS = 'faults test passphrase';

let c: Consortium;
const stops: (() => Promise<void>)[] = [];

/** A device with a software key, enrolled; its own pty and (optionally) its own gateway broker. */
async function device(id: string, o: { quota?: string; ownBroker?: boolean; token?: boolean; batching?: { max_records?: number; max_delay?: string } } = {}) {
  const dir = tempDir(`iscm-${id}-`);
  let token;
  let softwareKey;
  if (o.token) {
    token = deviceToken(id, dir);
    await c.enroll(id, token.publicKey);
  } else {
    const file = join(dir, 'device.key');
    const info = await generateKeyFile(file, ALG.EdDSA, { passphraseEnv: 'DEV_PASS', env: { DEV_PASS: PASS } }, { scrypt: { N: 2 ** 10 } });
    await c.enroll(id, info.publicKey);
    softwareKey = { file, passEnv: 'DEV_PASS' };
  }
  const gw = await startGatewayBridge(c.consortium, `gw-${id}`, [id], { dir: join(dir, 'gw-mosq') });
  stops.push(() => gw.stop());
  const pty = await ptyPair(dir, 'mcu');
  stops.push(() => pty.stop());
  const metricsPort = await freePort();
  const config = writeNodeConfig({ deviceId: id, dir: join(dir, 'node'), mqttUrl: gw.url, ledgerPem: c.keys.ledgerPem, token, softwareKey, metricsPort, quota: o.quota, ports: { mcu: { path: pty.a, sensors: ['t1', 'h1', 's1', 'd1', 'g1', 'r1'] } }, batching: o.batching });
  const env = { DEV_PASS: PASS, ...(token?.hsm.env ?? {}) };
  return { id, dir, gw, pty, metricsPort, config, env, token };
}

/** Every created reading (`expected` of them) in the ledger exactly once, and the chain there has no gaps. */
async function exactlyOnce(id: string, simLogFile: string, expected: number): Promise<number> {
  // The simulator's log file trails its console line a little.
  let created: string[] = [];
  await waitUntil(() => (created = simLog(simLogFile).created).length >= expected, 10_000, `the simulator log lists ${expected} created readings`);
  let recs: Awaited<ReturnType<Consortium['ledgerRecords']>> = [];
  await waitUntil(async () => {
    recs = await c.ledgerRecords(id);
    const have = new Set(recs.map((r) => { const s = r.source as { boot_id: number; seq: number }; return `${s.boot_id}:${s.seq}`; }));
    return created.every((k) => have.has(k));
  }, 180_000, `every created reading of ${id} in the ledger`, 1000);
  const seen = new Map<string, number>();
  for (const r of recs) {
    const s = r.source as { boot_id: number; seq: number };
    const k = `${s.boot_id}:${s.seq}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  assert.equal([...seen].filter(([, n]) => n > 1), [], `readings of ${id} in the ledger twice`);
  assert.equal(recs.map((r) => r.seq), recs.map((_, i) => i + 1), `the ledger holds ${id}'s chain without gaps`);
  return created.length;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

if (ok) {
  test.before(async () => {
    c = await startConsortium({ etcd: true });
  });
  test.after(async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
    await c?.stop();
  });

  test(`kill -9 of the node at random moments (${CYCLES} cycles): nothing acknowledged is lost, nothing duplicated`, async () => {
    const d = await device('kill-dev');
    const rnd = prng(20261202);
    const sim = simFirmware(d.pty.b, d.dir, { count: 2500, rate: 120 });
    stops.push(() => sim.proc.stop());
    let node: Proc | undefined;
    for (let i = 0; i < CYCLES; i++) {
      node = start(process.execPath, edgeArgs('run', '--config', d.config), { cwd: root, name: `node cycle ${i}`, env: { ...process.env, ...d.env } });
      // Anywhere from mid-start to well into running (journal open, link handshake, units, batches, receipts).
      await new Promise((r) => setTimeout(r, 400 + Math.floor(rnd() * 3000)));
      await node.kill9();
    }
    node = await startNode(d.config, d.env, 'node after the cycles');
    stops.push(() => node!.stop());
    await sim.proc.waitFor(/all \d+ readings acknowledged/, 180_000);
    assert.is(await exactlyOnce(d.id, sim.log, 2500), 2500);
    const s = await status(d.metricsPort);
    assert.is(s.journal.recovery_ms !== null, true);
    await node.stop();
  });

  test('the broker down under load, then back: the backlog drains, RSS stays flat, nothing lost or duplicated', async () => {
    const d = await device('outage-dev');
    const node = await startNode(d.config, d.env);
    stops.push(() => node.stop());
    const sim = simFirmware(d.pty.b, d.dir, { count: 6000, rate: 300 });
    stops.push(() => sim.proc.stop());
    await waitUntil(async () => (await status(d.metricsPort)).journal.committed_through_seq > 300, 60_000, 'flowing');
    const rss0 = rssKb(node.pid);
    const port = d.gw.port;
    await d.gw.stop();
    await new Promise((r) => setTimeout(r, 8000));
    const during = await status(d.metricsPort);
    assert.ok(during.journal.backlog_records > 1000, `a backlog built up while the broker was down (${during.journal.backlog_records})`);
    assert.not.equal(during.sync.state, 'online');
    const gw2 = await startGatewayBridge(c.consortium, `gw-${d.id}`, [d.id], { dir: d.gw.dir, port });
    stops.push(() => gw2.stop());
    await sim.proc.waitFor(/all \d+ readings acknowledged/, 120_000);
    assert.is(await exactlyOnce(d.id, sim.log, 6000), 6000);
    await waitUntil(async () => (await status(d.metricsPort)).journal.backlog_records === 0, 60_000, 'drained');
    const rss1 = rssKb(node.pid);
    assert.ok(rss1 - rss0 < 40 * 1024, `RSS flat: ${rss0} kB before the outage, ${rss1} kB after the drain`);
    const m = await metricsText(d.metricsPort);
    assert.ok(metric(m, 'iscm_mqtt_reconnects_total') >= 1, 'it really lost the broker');
    await node.stop();
  });

  test('the token removed and returned: readings keep being acknowledged, batches wait, then all are signed and receipted', async () => {
    const d = await device('token-dev', { token: true });
    const node = await startNode(d.config, d.env);
    stops.push(() => node.stop());
    const sim = simFirmware(d.pty.b, d.dir, { count: 1500, rate: 150 });
    stops.push(() => sim.proc.stop());
    await waitUntil(async () => (await status(d.metricsPort)).journal.committed_through_batch >= 2, 60_000, 'signing with the token');
    const putBack = d.token!.hsm.removeToken(d.id);
    await waitUntil(async () => (await status(d.metricsPort)).batcher.last_error !== null, 60_000, 'the node noticed the token is gone');
    const a = await status(d.metricsPort);
    await new Promise((r) => setTimeout(r, 3000));
    const b = await status(d.metricsPort);
    assert.ok(b.journal.last_seq > a.journal.last_seq, 'readings still journaled (and acknowledged) without the token');
    assert.is(b.journal.last_batch_seq, a.journal.last_batch_seq, 'no batch signed without the token');
    putBack();
    await sim.proc.waitFor(/all \d+ readings acknowledged/, 120_000);
    assert.is(await exactlyOnce(d.id, sim.log, 1500), 1500);
    const m = await metricsText(d.metricsPort);
    assert.ok(metric(m, 'iscm_sign_errors_total') >= 1);
    await node.stop();
  });

  test('journal quota: at the high-water mark the firmware is not acknowledged (it keeps its readings); receipts free space and it resumes', async () => {
    const d = await device('quota-dev', { quota: '16MiB', batching: { max_records: 1024, max_delay: '200ms' } });
    const port = d.gw.port;
    await d.gw.stop(); // no uplink: nothing is receipted, the journal only fills
    const node = await startNode(d.config, d.env);
    stops.push(() => node.stop());
    const sim = simFirmware(d.pty.b, d.dir, { count: 40_000, rate: 2500, sensors: 'temp,humidity,door', ring: 8192 });
    stops.push(() => sim.proc.stop());
    await waitUntil(async () => (await status(d.metricsPort)).journal.backpressure !== 'ok', 120_000, 'back-pressure');
    const s = await status(d.metricsPort);
    assert.ok(s.alarms.some((a: { key: string }) => a.key.startsWith('journal:')), 'an alarm is raised');
    await new Promise((r) => setTimeout(r, 3000));
    const m = await metricsText(d.metricsPort);
    assert.ok(metric(m, 'iscm_readings_refused_total', 'reason="backpressure"') > 0, 'readings refused at the high-water mark');
    const held = simLog(sim.log);
    assert.ok(held.created.length - held.acked.size > 1000, `the firmware keeps what was not acknowledged (${held.created.length - held.acked.size})`);
    assert.ok(held.created.length < 40_000, 'and stops creating once its ring is full');
    const gw2 = await startGatewayBridge(c.consortium, `gw-${d.id}`, [d.id], { dir: d.gw.dir, port });
    stops.push(() => gw2.stop());
    await sim.proc.waitFor(/all \d+ readings acknowledged/, 300_000);
    assert.is(await exactlyOnce(d.id, sim.log, 40_000), 40_000);
    const after = await status(d.metricsPort);
    assert.is(after.journal.backpressure, 'ok');
    assert.ok(after.journal.used_bytes < after.journal.capacity_bytes * 0.8, 'compaction freed space');
    await node.stop();
  });
}

test.run();
