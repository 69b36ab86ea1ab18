// The ledger's MQTT side against a real mosquitto that goes away and comes
// back: while the broker is down the reconnect waits grow by capped
// exponential backoff with jitter (not mqtt.js's fixed period), each attempt
// is counted; when it returns the ledger resubscribes and takes batches
// again, and the backoff starts over. A refused login (CONNACK "Not
// authorized") is retried the same way — mqtt.js would give up for good —
// so a ledger comes back once the operator fixes the broker's password file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mqtt from 'mqtt';
import { LedgerMqtt } from '../../ledger/mqtt.js';
import { LedgerMetrics } from '../../ledger/metrics.js';
import { createLogger } from '../../ledger/logger.js';
import { topics } from '../../protocol/topics.js';
import { mosquittoAvailable, startConsortiumBroker, type Broker } from '../helpers/mosquitto.js';
import { tempDir, waitUntil } from '../helpers/proc.js';

const SUITE = 'ledger MQTT reconnect backoff';
const ok = mosquittoAvailable(SUITE);

if (ok) {
  test('broker down: waits grow 100 → 200 → 400 ms and stay capped (±25 %); broker back: resubscribed, batches flow, backoff reset', async () => {
    const dir = tempDir('iscm-ledger-reconnect-');
    let broker: Broker = await startConsortiumBroker({ dir });
    const lines: string[] = [];
    const at: number[] = [];
    const metrics = new LedgerMetrics();
    const lm = new LedgerMqtt(
      { url: broker.url, prefix: 'iscm/v1', group: 'ledger', clientId: 'reconnect-test', backoff: { initialMs: 100, maxMs: 400 } },
      createLogger('info', (l) => {
        lines.push(l);
        at.push(performance.now());
      }),
      metrics,
    );
    const got: string[] = [];
    try {
      await lm.start(async (topic) => {
        got.push(topic);
      });
      const publish = async (dev: string) => {
        const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `pub-${dev}` });
        await c.publishAsync(topics.batch('iscm/v1', dev), Buffer.from([1, 2, 3]), { qos: 1 });
        await c.endAsync();
      };
      await waitUntil(() => lines.some((l) => l.includes('mqtt: subscribed')), 10_000, 'subscribed');
      await publish('dev-a');
      await waitUntil(() => got.length === 1, 10_000, 'the first batch');
      assert.is(metrics.mqttConnected.get(), 1);

      await broker.stop();
      await waitUntil(() => metrics.mqttReconnects.get() >= 6, 20_000, 'six reconnect attempts while the broker is down');
      assert.is(metrics.mqttConnected.get(), 0);
      const waits = lines.filter((l) => l.includes('mqtt: connection closed, reconnecting')).map((l) => Number(/in_ms=(\d+)/.exec(l)?.[1]));
      assert.ok(waits.length >= 6, `${waits}`);
      const expect = [100, 200, 400, 400, 400, 400];
      for (const [i, base] of expect.entries()) assert.ok(waits[i] >= base * 0.75 - 1 && waits[i] <= Math.min(400, base * 1.25) + 1, `wait ${i + 1}: ${waits[i]} ms, expected ${base} ms ±25 % capped at 400 (all: ${waits})`);
      // And mqtt.js really waits that long: the next attempt (its close) comes no sooner.
      const closes = lines.flatMap((l, i) => (l.includes('mqtt: connection closed, reconnecting') ? [at[i]] : []));
      for (let i = 0; i < 5; i++) assert.ok(closes[i + 1] - closes[i] >= waits[i] - 10, `attempt ${i + 2} came ${Math.round(closes[i + 1] - closes[i])} ms after the previous close; the backoff said ${waits[i]} ms (waits: ${waits})`);
      // Jitter, where the cap does not clip it (at the cap about half the waits
      // are exactly 400, so four capped waits are all 400 one run in sixteen):
      // the first two waits are not both exactly their base (odds ~1 in 20,000).
      assert.ok(waits[0] !== 100 || waits[1] !== 200, `jittered: ${waits}`);

      broker = await startConsortiumBroker({ dir, port: broker.port });
      await waitUntil(() => metrics.mqttConnected.get() === 1, 15_000, 'reconnected');
      await waitUntil(() => lines.filter((l) => l.includes('mqtt: subscribed')).length >= 2, 10_000, 'resubscribed');
      await publish('dev-b');
      await waitUntil(() => got.includes(topics.batch('iscm/v1', 'dev-b')), 10_000, 'a batch after the broker came back');

      // Backoff starts over: the first wait after the next loss is ~100 ms again.
      const before = lines.length;
      await broker.stop();
      await waitUntil(() => lines.slice(before).some((l) => l.includes('mqtt: connection closed, reconnecting')), 10_000, 'closed again');
      const first = Number(/in_ms=(\d+)/.exec(lines.slice(before).find((l) => l.includes('reconnecting'))!)?.[1]);
      assert.ok(first >= 74 && first <= 126, `first wait after a reset: ${first} ms`);
      assert.ok(!lines.some((l) => /password/i.test(l)), 'no password in the log');
    } finally {
      await lm.close();
      await broker.stop();
    }
  });

  test('a refused login is retried with backoff (not given up), logged as a login problem, and connects once the broker knows the password', async () => {
    const dir = tempDir('iscm-ledger-login-');
    const auth = (ledgerPassword: string) => ({ ledgerPassword, gateways: {} });
    let broker: Broker = await startConsortiumBroker({ dir, auth: auth('the-old-one') });
    const lines: string[] = [];
    const metrics = new LedgerMetrics();
    const lm = new LedgerMqtt(
      { url: broker.url, prefix: 'iscm/v1', group: 'ledger', clientId: 'login-test', username: 'ledger', password: 'Rotated-Secret-42', backoff: { initialMs: 100, maxMs: 300 } },
      createLogger('info', (l) => lines.push(l)),
      metrics,
    );
    const started = lm.start(async () => undefined);
    try {
      await waitUntil(() => metrics.mqttReconnects.get() >= 3, 20_000, 'three attempts after refused logins');
      assert.is(metrics.mqttConnected.get(), 0);
      assert.ok(lines.some((l) => l.includes('the broker refused the login') && l.includes('reason_code=135')), lines.join(''));
      // The operator rotates the broker's password file; the ledger keeps trying and gets in.
      await broker.stop();
      broker = await startConsortiumBroker({ dir, port: broker.port, auth: auth('Rotated-Secret-42') });
      await started;
      await waitUntil(() => metrics.mqttConnected.get() === 1, 15_000, 'connected with the rotated password');
      assert.not.ok(lines.some((l) => l.includes('Rotated-Secret-42')), 'no password in the log');
    } finally {
      await lm.close();
      await started.catch(() => undefined);
      await broker.stop();
    }
  });
}

test.run();
