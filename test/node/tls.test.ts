// The light node's MQTT link over mutual TLS, against a real mosquitto with
// a TLS-only listener that requires client certificates (certificates made
// by openssl for the test): the node connects with the CA, certificate and
// key from files, publishes its retained status and its batches; its will
// says "offline" when it dies; without a client certificate, or trusting the
// wrong CA, it does not connect — and says so — and keeps journaling.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { ALG } from '../../protocol/cose/algorithms.js';
import { decode } from '../../protocol/cbor.js';
import { topics } from '../../protocol/topics.js';
import { generateKeyFile } from '../../drivers/software/keyfile.js';
import { haveCommand, type Proc } from '../helpers/proc.js';
import { mosquittoAvailable, startTlsBroker, type Broker } from '../helpers/mosquitto.js';
import { freePort, metric, metricsText, startNode, status, tempDir, waitUntil, writeNodeConfig } from './_env.js';

const SUITE = 'light node MQTT over mutual TLS';
const ok = mosquittoAvailable(SUITE) && haveCommand('openssl', 'openssl', SUITE);
const DEVICE = 'tls-dev';
const PASS = 'tls test passphrase';
let dir: string;
let broker: Broker;
let spy: MqttClient;
const seen: { topic: string; payload: Buffer; retain: boolean }[] = [];

function ossl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A CA and a certificate it signs (EC P-256). */
function makeCa(name: string): void {
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`);
}
function makeCert(ca: string, name: string, ext: string): void {
  ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  writeFileSync(join(dir, `${name}.ext`), ext);
  ossl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
}

async function node(o: { cert?: boolean; ca?: string }) {
  const keyFile = join(dir, `device-${Math.random().toString(36).slice(2)}.key`);
  await generateKeyFile(keyFile, ALG.EdDSA, { passphraseEnv: 'DEV_PASS', env: { DEV_PASS: PASS } }, { scrypt: { N: 2 ** 10 } });
  const metricsPort = await freePort();
  const ndir = join(dir, `node-${metricsPort}`);
  const sock = join(ndir, 'in.sock');
  const tls = `\n  tls:\n    ca_file: ${join(dir, `${o.ca ?? 'ca'}.pem`)}${o.cert === false ? '' : `\n    cert_file: ${join(dir, `${DEVICE}.pem`)}\n    key_file: ${join(dir, `${DEVICE}.key`)}`}`;
  const config = writeNodeConfig({ deviceId: DEVICE, dir: ndir, mqttUrl: broker.url, ledgerPem: join(dir, 'ledger.pem'), softwareKey: { file: keyFile, passEnv: 'DEV_PASS' }, metricsPort, batching: { max_records: 10, max_delay: '100ms' }, mqtt: { keepalive: '5s' }, extra: `local_input:\n  socket: ${sock}` });
  // The mqtt section gets its tls block (writeNodeConfig knows no TLS).
  writeFileSync(config, readFileSync(config, 'utf8').replace(/^(mqtt:\n  url: .*)$/m, `$1${tls}`));
  const proc = await startNode(config, { DEV_PASS: PASS });
  const send = (n: number) =>
    new Promise<void>((resolve) => {
      const s = createConnection(sock, () => {
        for (let i = 0; i < n; i++) s.write(`{"sensor":"t1","kind":"temperature","values":{"celsius":${i}}}\n`);
      });
      let answers = 0;
      s.on('data', (d) => {
        answers += d.toString().split('\n').length - 1;
        if (answers >= n) {
          s.end();
          resolve();
        }
      });
    });
  return { proc, metricsPort, send };
}

if (ok) {
  test.before(async () => {
    dir = tempDir('iscm-tls-');
    makeCa('ca');
    makeCa('other-ca');
    makeCert('ca', 'broker', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    makeCert('ca', DEVICE, 'extendedKeyUsage=clientAuth\n');
    makeCert('ca', 'spy', 'extendedKeyUsage=clientAuth\n');
    const { generateKeyPairSync } = await import('node:crypto');
    writeFileSync(join(dir, 'ledger.pem'), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    broker = await startTlsBroker({ ca: join(dir, 'ca.pem'), cert: join(dir, 'broker.pem'), key: join(dir, 'broker.key'), dir: join(dir, 'mosq') });
    spy = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'spy', ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'spy.pem')), key: readFileSync(join(dir, 'spy.key')) });
    spy.on('message', (topic, payload, packet) => seen.push({ topic, payload, retain: packet.retain }));
    await spy.subscribeAsync([topics.status('iscm/v1', DEVICE), topics.batch('iscm/v1', DEVICE)], { qos: 1 });
  });
  test.after(async () => {
    await spy?.endAsync();
    await broker?.stop();
  });

  test('mutual TLS from files: the node connects, announces itself (retained), publishes batches; its will says offline when it dies', async () => {
    const n = await node({});
    await waitUntil(async () => (await status(n.metricsPort)).sync.state === 'online', 20_000, 'online over TLS');
    await waitUntil(() => seen.some((m) => m.topic.endsWith('/status') && (decode(new Uint8Array(m.payload)) as Map<number, unknown>).get(1) === 'online'), 10_000, 'status online');
    await n.send(25);
    await waitUntil(() => seen.filter((m) => m.topic.endsWith('/batch')).length >= 2, 20_000, 'batches over TLS');
    const before = seen.length;
    await n.proc.kill9();
    await waitUntil(() => seen.slice(before).some((m) => m.topic.endsWith('/status') && (decode(new Uint8Array(m.payload)) as Map<number, unknown>).get(1) === 'offline'), 60_000, 'the will: offline');
  });

  test('without a client certificate, or trusting another CA, the node does not connect — it says why and keeps journaling', async () => {
    for (const o of [{ cert: false }, { ca: 'other-ca' }]) {
      const n = await node(o);
      await n.send(5);
      await waitUntil(async () => metric(await metricsText(n.metricsPort), 'iscm_mqtt_reconnects_total') >= 2, 30_000, 'reconnect attempts with backoff');
      const s = await status(n.metricsPort);
      assert.is.not(s.sync.state, 'online', JSON.stringify(o));
      assert.ok(s.journal.last_seq >= 5, 'readings still journaled');
      assert.match(n.proc.output(), /"msg":"mqtt (error|disconnected; reconnecting)"/);
      if (o.ca) assert.match(n.proc.output(), /certificate|self.signed|unable to verify/i, 'the TLS reason is in the log');
      await n.proc.stop();
    }
  });
}

test.run();
