// The consortium broker with its production auth: configs/mosquitto/
// consortium.conf's auth block as shipped (no anonymous users, a password
// file) and configs/mosquitto/consortium.acl rendered for two gateway users;
// the ledger logs in as "ledger" with a password file. Then, through the real
// `iscm-edge run`:
// - a node logs in directly (mqtt.username + mqtt.password_file) and every
//   reading is committed on verified receipts;
// - a gateway's mosquitto bridges up with the gateway's login (the template's
//   remote_username) and the node behind it is committed the same way;
// - a wrong password: no connection, an alarm in /status that names what to
//   check, counted refusals, backoff, readings still journaled; the right
//   password written to the file is read at the next attempt (no restart),
//   the alarm clears and the backlog is committed;
// - a user whose ACL does not cover the device: the broker refuses its batches
//   (PUBACK "Not authorized"), the node says so in an alarm, keeps the data and
//   retries at the resend timeout — not in a loop — and nothing reaches the ledger.
// - the same over MQTT 3.1.1, where mosquitto drops the denied publishes
//   without a word: the node raises "no receipts" (connected, batches in
//   flight, nothing back for three resend timeouts); once the broker's ACL is
//   fixed and reloaded (SIGHUP), the backlog is committed and the alarm clears.
// No password ever shows in a log line, /status or /metrics.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createConnection } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALG } from '../../protocol/cose/algorithms.js';
import { generateKeyFile } from '../../drivers/software/keyfile.js';
import type { BrokerAuth, Broker } from '../helpers/mosquitto.js';
import { mosquittoAvailable, renderConsortiumAcl } from '../helpers/mosquitto.js';
import type { Proc } from '../helpers/proc.js';
import { freePort, metric, metricsText, startConsortium, startGatewayBridge, startNode, status, tempDir, waitUntil, writeNodeConfig, type Consortium } from './_env.js';

const SUITE = 'light node and ledger with broker logins and ACLs';
const ok = mosquittoAvailable(SUITE);
const PASS = 'auth test key passphrase';
// Distinctive, so a leak anywhere is found by a plain substring search.
const AUTH: BrokerAuth = {
  ledgerPassword: 'ledger-Secret-7f3a9c',
  gateways: {
    'gw-alpha': { password: 'alpha-Secret-1b8e2d', devices: ['auth-direct', 'auth-wrong-pw', 'auth-alpha-2', 'auth-alpha-3'] },
    'gw-bravo': { password: 'bravo-Secret-5c4f60', devices: ['auth-bridged'] },
  },
};
const SECRETS = [AUTH.ledgerPassword, ...Object.values(AUTH.gateways).map((g) => g.password), 'wrong-Secret-000000'];

let c: Consortium;
let dir: string;
const procs: Proc[] = [];
const brokers: Broker[] = [];

function noSecrets(where: string, text: string): void {
  for (const s of SECRETS) assert.not.ok(text.includes(s), `a password is in ${where}`);
}

/** A node for `deviceId`, logging in as `login` (or anonymous to `url`), with a local input socket. */
async function node(deviceId: string, o: { url?: string; login?: { username: string; password: string }; protocol?: '3.1.1' }) {
  const ndir = join(dir, `${deviceId}-${await freePort()}`);
  mkdirSync(ndir, { recursive: true });
  const keyFile = join(ndir, 'device.key');
  const info = await generateKeyFile(keyFile, ALG.EdDSA, { passphraseEnv: 'DEV_PASS', env: { DEV_PASS: PASS } }, { scrypt: { N: 2 ** 10 } });
  await c.enroll(deviceId, info.publicKey);
  const metricsPort = await freePort();
  const sock = join(ndir, 'in.sock');
  const mqtt: Record<string, string | number> = { resend_timeout: '2s', keepalive: '5s', reconnect_max: '2s', ...(o.protocol ? { protocol: `"${o.protocol}"` } : {}) };
  const pf = join(ndir, 'mqtt.pass');
  if (o.login) {
    writeFileSync(pf, o.login.password + '\n', { mode: 0o600 });
    mqtt.username = o.login.username;
    mqtt.password_file = pf;
  }
  const config = writeNodeConfig({ deviceId, dir: ndir, mqttUrl: o.url ?? c.consortium.url, ledgerPem: c.keys.ledgerPem, softwareKey: { file: keyFile, passEnv: 'DEV_PASS' }, metricsPort, batching: { max_records: 10, max_delay: '100ms' }, mqtt, extra: `local_input:\n  socket: ${sock}` });
  const proc = await startNode(config, { DEV_PASS: PASS }, `node ${deviceId}`);
  procs.push(proc);
  /** n readings through the local socket; resolves when each is durable (answered). */
  const send = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const s = createConnection(sock, () => {
        for (let i = 0; i < n; i++) s.write(`{"sensor":"t1","kind":"temperature","values":{"celsius":${i % 30}}}\n`);
      });
      let answers = 0;
      s.on('error', reject);
      s.on('data', (d) => {
        answers += d.toString().split('\n').length - 1;
        if (answers >= n) {
          s.end();
          resolve();
        }
      });
    });
  const everything = async (where: string) => {
    noSecrets(`${where}: the node's log`, proc.output());
    noSecrets(`${where}: /status`, JSON.stringify(await status(metricsPort)));
    noSecrets(`${where}: /metrics`, await metricsText(metricsPort));
  };
  return { proc, metricsPort, send, everything, passwordFile: pf };
}

const allCommitted = async (port: number, n: number) => {
  const s = await status(port);
  return s.journal.last_seq >= n && s.journal.committed_through_seq === s.journal.last_seq;
};

if (ok) {
  test.before(async () => {
    dir = tempDir('iscm-mqtt-auth-');
    c = await startConsortium({ etcd: false, auth: AUTH });
  });

  test.after(async () => {
    for (const p of procs) await p.stop();
    for (const b of brokers) await b.stop();
    await c?.stop();
  });

  test('the ledger logs in with its password file; a node logs in directly with mqtt.username + password_file: every reading committed on verified receipts', async () => {
    const n = await node('auth-direct', { login: { username: 'gw-alpha', password: AUTH.gateways['gw-alpha'].password } });
    await waitUntil(async () => (await status(n.metricsPort)).sync.state === 'online', 20_000, 'online with a login');
    await n.send(40);
    await waitUntil(() => allCommitted(n.metricsPort, 40), 60_000, 'every record committed');
    assert.is(await c.ledgerLastSeq('auth-direct'), (await status(n.metricsPort)).journal.last_seq, 'the ledger holds the whole chain');
    const s = await status(n.metricsPort);
    assert.equal(s.alarms, []);
    assert.is(metric(await metricsText(n.metricsPort), 'iscm_mqtt_refused_total'), 0);
    await n.everything('a direct login');
    for (const l of c.ledgers) noSecrets(`ledger ${l.nodeId}'s log`, l.proc.output());
    assert.match(c.ledgers[0].proc.output(), /mqtt: connected/);
    assert.not.match(c.consortium.proc.output(), /auth-direct.*(not authorised|denied)/i);
  });

  test("a gateway's mosquitto bridges up with the gateway's login (remote_username): the node behind it is committed", async () => {
    const gw = await startGatewayBridge(c.consortium, 'bravo', ['auth-bridged'], { dir: join(dir, 'gw-bravo'), login: { username: 'gw-bravo', password: AUTH.gateways['gw-bravo'].password } });
    brokers.push(gw);
    const n = await node('auth-bridged', { url: gw.url });
    await n.send(30);
    await waitUntil(() => allCommitted(n.metricsPort, 30), 60_000, 'every record committed through the authenticated bridge');
    assert.is(await c.ledgerLastSeq('auth-bridged'), (await status(n.metricsPort)).journal.last_seq, 'the ledger holds the whole chain');
    await n.everything('behind a bridge');
  });

  test('a wrong password: no connection, an alarm naming what to check, refusals counted, backoff; readings kept; the corrected file is read again without a restart', async () => {
    const n = await node('auth-wrong-pw', { login: { username: 'gw-alpha', password: 'wrong-Secret-000000' } });
    await n.send(15);
    await waitUntil(async () => metric(await metricsText(n.metricsPort), 'iscm_mqtt_refused_total', 'what="connection"') >= 2, 30_000, 'two refused logins');
    const s = await status(n.metricsPort);
    assert.is.not(s.sync.state, 'online');
    assert.ok(s.journal.last_seq >= 15, 'readings journaled');
    const alarm = s.alarms.find((a: { key: string }) => a.key === 'sync:broker_refused_connection');
    assert.ok(alarm, `an alarm: ${JSON.stringify(s.alarms)}`);
    assert.match(alarm.message, /refused the connection: Not authorized \(reason code 135\): check mqtt\.username and the password/);
    const m = await metricsText(n.metricsPort);
    assert.ok(metric(m, 'iscm_mqtt_reconnects_total') >= 2, 'retried');
    assert.is(metric(m, 'iscm_alarms'), s.alarms.length);
    // Logged once, counted every time.
    assert.is(n.proc.output().match(/"msg":"the broker refused the connection"/g)?.length, 1, "one log line for a repeated refusal");
    await n.everything('a wrong password');
    assert.is(await c.ledgerLastSeq('auth-wrong-pw'), 0, 'nothing reached the ledger');

    // The operator puts the right password in the file: the next attempt reads it again — no restart.
    writeFileSync(n.passwordFile, AUTH.gateways['gw-alpha'].password + '\n', { mode: 0o600 });
    await waitUntil(async () => (await status(n.metricsPort)).sync.state === 'online', 20_000, 'online with the corrected password file');
    await waitUntil(() => allCommitted(n.metricsPort, 15), 60_000, 'the readings kept meanwhile are committed');
    const after = await status(n.metricsPort);
    assert.equal(after.alarms, [], 'the alarm cleared');
    assert.is(await c.ledgerLastSeq('auth-wrong-pw'), after.journal.last_seq);
    assert.match(n.proc.output(), /the broker accepts again what it refused/);
    await n.everything('after the password was corrected');
  });

  test("a user whose ACL does not cover the device: batches refused (PUBACK Not authorized), an alarm, the data kept, retried at the resend timeout and not in a loop", async () => {
    // gw-bravo serves only auth-bridged; this node claims a device of gw-alpha.
    const n = await node('auth-alpha-2', { login: { username: 'gw-bravo', password: AUTH.gateways['gw-bravo'].password } });
    await waitUntil(async () => (await status(n.metricsPort)).sync.state === 'online', 20_000, 'the login itself is fine');
    await n.send(25);
    await waitUntil(async () => (await status(n.metricsPort)).alarms.some((a: { key: string }) => a.key === 'sync:broker_refused_publish'), 20_000, 'the publish alarm');
    const t0 = Date.now();
    const m0 = metric(await metricsText(n.metricsPort), 'iscm_batches_published_total');
    await new Promise((r) => setTimeout(r, 5000));
    const m = await metricsText(n.metricsPort);
    const s = await status(n.metricsPort);
    const alarm = s.alarms.find((a: { key: string }) => a.key === 'sync:broker_refused_publish');
    assert.match(alarm.message, /refused batch \d+ on iscm\/v1\/dev\/auth-alpha-2\/batch: Not authorized \(reason code 135\).*ACL/);
    assert.ok(metric(m, 'iscm_mqtt_refused_total', 'what="publish"') >= 1);
    // At most the window (8) re-sent per resend timeout (2 s), plus one round in progress.
    const published = metric(m, 'iscm_batches_published_total') - m0;
    const rounds = Math.ceil((Date.now() - t0) / 2000) + 1;
    assert.ok(published <= 8 * rounds, `${published} publishes in ${Date.now() - t0} ms: a refused batch must wait for the resend timeout`);
    assert.ok(published >= 1, 'still retried');
    assert.ok(s.journal.last_seq >= 25 && s.journal.committed_through_seq === 0, 'kept, nothing committed');
    assert.is(await c.ledgerLastSeq('auth-alpha-2'), 0, 'nothing reached the ledger');
    await n.everything('an ACL refusal');
  });

  test('MQTT 3.1.1, where the broker drops ACL-denied publishes silently: a "no receipts" alarm; the ACL fixed and reloaded, the backlog is committed and the alarm clears', async () => {
    const n = await node('auth-alpha-3', { login: { username: 'gw-bravo', password: AUTH.gateways['gw-bravo'].password }, protocol: '3.1.1' });
    await waitUntil(async () => (await status(n.metricsPort)).sync.state === 'online', 20_000, 'online over 3.1.1');
    await n.send(20);
    await waitUntil(async () => (await status(n.metricsPort)).alarms.some((a: { key: string }) => a.key === 'sync:no_receipts'), 30_000, 'the no-receipts alarm');
    const s = await status(n.metricsPort);
    const alarm = s.alarms.find((a: { key: string }) => a.key === 'sync:no_receipts');
    assert.match(alarm.message, /connected, \d+ batches published and no receipt for \d+ s: check that the broker's ACL lets this gateway's user write iscm\/v1\/dev\/auth-alpha-3\/batch and read iscm\/v1\/dev\/auth-alpha-3\/receipt/);
    assert.not.ok(s.alarms.some((a: { key: string }) => a.key === 'sync:broker_refused_publish'), '3.1.1 has no PUBACK reason codes: nothing was refused out loud');
    assert.is(s.journal.committed_through_seq, 0);
    assert.is(await c.ledgerLastSeq('auth-alpha-3'), 0);

    // The operator adds the device to gw-bravo's ACL and reloads mosquitto.
    const gateways = { ...AUTH.gateways, 'gw-bravo': { ...AUTH.gateways['gw-bravo'], devices: [...AUTH.gateways['gw-bravo'].devices, 'auth-alpha-3'] } };
    writeFileSync(join(c.consortium.dir, 'iscm.acl'), renderConsortiumAcl(gateways));
    process.kill(c.consortium.proc.pid, 'SIGHUP');
    await waitUntil(() => allCommitted(n.metricsPort, 20), 60_000, 'the backlog committed after the ACL reload');
    assert.equal((await status(n.metricsPort)).alarms, [], 'the alarm cleared');
    assert.match(n.proc.output(), /receipts arrive again/);
    await n.everything('no receipts');
  });
}

test.run();
