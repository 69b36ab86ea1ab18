// The gateway path end to end, once: a device talks only to its gateway's
// mosquitto (configs/mosquitto/gateway-bridge.conf), which bridges to the
// consortium mosquitto (configs/mosquitto/consortium.conf), where the ledger
// subscribes. Batches go out over the bridge, receipts and the retained
// signed tree head come back over it; while the uplink is down batches queue
// on the gateway and receipts queue at the consortium (persistent sessions).
// The ledger here is the devnet kind (in-memory store; devices enrolled
// through `iscm-ledger enroll --api`).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { encodeCoseKey } from '../../protocol/cose/key.js';
import { verifyTreeHead } from '../../protocol/receipt.js';
import { topics } from '../../protocol/topics.js';
import { mosquittoAvailable, startConsortiumBroker, startGatewayBridge, type Broker } from '../helpers/mosquitto.js';
import { SimDevice } from '../helpers/device-sim.js';
import { waitUntil } from '../helpers/proc.js';
import { apiJson, makeKeys, root, startLedger, tempDir, writeLedgerConfig, PASS, type Keys, type LedgerProc } from './_env.js';

const ok = mosquittoAvailable('ledger gateway bridge');
let consortium: Broker;
let gateway: Broker;
let ledger: LedgerProc;
let keys: Keys;
let dir: string;
const devs: SimDevice[] = [];

if (ok) {
  test.before(async () => {
    keys = await makeKeys();
    dir = tempDir('iscm-bridge-');
    consortium = await startConsortiumBroker();
    gateway = await startGatewayBridge(consortium, 'truck-42', ['reefer-1', 'reefer-2']);
    // An operator key made with the CLI, trusted by the node.
    const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(root, 'ledger/cli/iscm-ledger.ts'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, ISCM_KEY_PASSPHRASE: PASS, ISCM_OPERATOR_PASSPHRASE: PASS } });
    const opKey = join(dir, 'operator.key');
    const gen = cli('key', 'generate', '--out', opKey, '--alg', 'EdDSA');
    assert.is(gen.status, 0, gen.stderr);
    const pub = cli('key', 'public', '--key', opKey);
    assert.is(pub.status, 0, pub.stderr);
    writeFileSync(keys.operatorPem, readFileSync(keys.operatorPem, 'utf8') + pub.stdout);
    const cfg = writeLedgerConfig(dir, keys, { nodeId: 'devnet', mqttUrl: consortium.url, blockInterval: '200ms' });
    ledger = await startLedger(cfg, 'devnet');
    for (const id of ['reefer-1', 'reefer-2']) {
      const d = new SimDevice(id, { url: gateway.url, trusted: keys.trusted, window: 3, resendMs: 20_000, clientId: `light-node-${id}` });
      const kf = join(dir, `${id}.cose`);
      writeFileSync(kf, encodeCoseKey(d.publicKey));
      const r = cli('enroll', '--config', cfg, '--api', ledger.apiUrl, '--device-id', id, '--public-key', kf, '--operator-key', opKey);
      assert.is(r.status, 0, r.stdout + r.stderr);
      await d.connect();
      devs.push(d);
    }
  });

  test.after(async () => {
    for (const d of devs) await d.close();
    await ledger?.proc.stop();
    await gateway?.stop();
    await consortium?.stop();
  });

  test('batches out over the bridge, receipts back over it; the retained tree head reaches the gateway', async () => {
    await Promise.all(devs.map((d) => d.run(5, 20, 120_000)));
    for (const d of devs) {
      assert.is(d.committed.size, 5);
      assert.equal(d.received.filter((r) => r.error), []);
    }
    // A fresh client on the gateway broker gets the ledger's retained head through the bridge.
    const c = await mqtt.connectAsync(gateway.url, { protocolVersion: 4, clientId: 'head-reader' });
    const head = new Promise<Buffer>((resolve) => c.on('message', (_t, p) => resolve(p)));
    await c.subscribeAsync(topics.head('iscm/v1'), { qos: 1 });
    const th = verifyTreeHead(new Uint8Array(await head), keys.trusted);
    assert.ok(th.size >= 1);
    await c.endAsync();
    // The gateway does not carry other devices' topics.
    const spy = await mqtt.connectAsync(gateway.url, { protocolVersion: 4, clientId: 'spy' });
    const seen: string[] = [];
    spy.on('message', (t) => seen.push(t));
    await spy.subscribeAsync('iscm/v1/dev/+/receipt', { qos: 1 });
    const foreign = await mqtt.connectAsync(consortium.url, { protocolVersion: 4, clientId: 'foreign' });
    await foreign.publishAsync('iscm/v1/dev/other-device/receipt', Buffer.from([0xa0]), { qos: 1 });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(seen.filter((t) => t.includes('other-device')), []);
    await spy.endAsync();
    await foreign.endAsync();
  });

  test('uplink down: batches queue on the gateway, then flow; receipts come back', async () => {
    const d = devs[0];
    await consortium.stop();
    const before = d.committed.size;
    for (let i = 0; i < 3; i++) await d.send(10);
    await new Promise((r) => setTimeout(r, 1500));
    assert.is(d.committed.size, before, 'nothing receipted while the uplink is down');
    consortium = await startConsortiumBroker({ dir: consortium.dir, port: consortium.port });
    await waitUntil(() => d.committed.size === before + 3, 90_000, 'receipts after the uplink returned');
    assert.equal(d.received.filter((r) => r.error), []);
    const st = await apiJson<{ head: { batch_seq: number } }>(ledger.apiUrl, `/v1/devices/${d.deviceId}`);
    assert.is(st.head.batch_seq, before + 3);
  });
}

test.run();
