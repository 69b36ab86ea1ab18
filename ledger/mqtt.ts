// The ledger's MQTT side (ARCHITECTURE §4.3, §5): an MQTT 5 shared
// subscription `$share/{group}/{p}/dev/+/batch` spreads the devices' batches
// over the live ledger processes; receipts go to `{p}/dev/{id}/receipt` at
// QoS 1, the signed tree head to `{p}/ledger/head` retained.
//
// The session is clean (clean start, no expiry): a ledger process that dies
// must not have batches queued for it at the broker — devices resend whatever
// is not receipted, and the other processes take the resends. Flow control:
// at most `concurrency` batches are processed at once; beyond that the next
// message is not acknowledged (and the socket not read) until one finishes.
//
// Reconnect: mqtt.js's own loop (one client object, so handleMessage and the
// flow control above stay in place), but its fixed period is replaced by the
// project's capped exponential backoff with jitter before each wait: a
// consortium's ledger processes must not come back to a restarted broker in
// lock step, nor wait a fixed second forever while it is down.
import type { MqttClient, IClientOptions } from 'mqtt';
import { encodeReceiptMsg, type ReceiptMsg } from '../protocol/receipt-msg.js';
import { topics } from '../protocol/topics.js';
import { brokerRefusal, isLoginRefusal } from '../protocol/mqtt-refusal.js';
import { Backoff } from '../drivers/backoff.js';
import { errorText } from './errors.js';
import type { Logger } from './logger.js';
import type { LedgerMetrics } from './metrics.js';
import type { Publisher } from './publisher.js';

export interface LedgerMqttOptions {
  url: string;
  prefix: string;
  group: string;
  /** 5 (default): shared subscription. 4 (MQTT 3.1.1): plain subscription — one ledger process per broker. */
  protocolVersion?: 5 | 4;
  clientId: string;
  username?: string;
  password?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Batches processed at once by this process (default 16: ingest mostly waits for etcd). */
  concurrency?: number;
  /** Subscribe to batches (false: publish only, e.g. a query-only node). */
  ingest?: boolean;
  /** Reconnect backoff (default: from 500 ms, doubling, capped at 15 s, ±25 % jitter). */
  backoff?: { initialMs?: number; maxMs?: number };
}

export class LedgerMqtt implements Publisher {
  client: MqttClient | null = null;
  #inflight = 0;
  #waiting: (() => void)[] = [];
  #closing = false;
  constructor(readonly o: LedgerMqttOptions, readonly logger: Logger, readonly metrics: LedgerMetrics) {}

  /** Connects (resolves on the first connection; reconnects forever after). */
  async start(onBatch: (topic: string, payload: Uint8Array) => Promise<unknown>): Promise<void> {
    const v5 = (this.o.protocolVersion ?? 5) === 5;
    const opts: IClientOptions = {
      protocolVersion: v5 ? 5 : 4,
      clientId: this.o.clientId,
      clean: true,
      // Replaced before every wait by the backoff (see the 'close' listener); never 0, which would stop mqtt.js reconnecting.
      reconnectPeriod: this.o.backoff?.initialMs ?? 500,
      // A CONNACK refusal (bad password, server busy) must not end reconnecting
      // for good: mqtt.js suppresses it by default; the operator fixes the cause, the ledger comes back.
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      keepalive: 30,
      resubscribe: false,
      writeCache: false, // no mqtt-packet number cache: 65,536 Buffers, ~6 MB of heap
      username: this.o.username,
      password: this.o.password,
      ca: this.o.ca,
      cert: this.o.cert,
      key: this.o.key,
      ...(v5 ? { properties: { receiveMaximum: Math.max(16, (this.o.concurrency ?? 16) * 2) } } : {}),
    };
    // Loaded here, not at import: `iscm-ledger` commands without MQTT start faster.
    const { default: mqtt } = await import('mqtt');
    const client = mqtt.connect(this.o.url, opts);
    this.client = client;
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000, ...this.o.backoff });
    // Prepended: mqtt.js's own 'close' listener (registered in its constructor)
    // schedules the reconnect with options.reconnectPeriod, so the delay must be set first.
    client.prependListener('close', () => {
      if (this.#closing) return;
      const delay = backoff.next();
      client.options.reconnectPeriod = Math.max(1, delay);
      this.metrics.mqttReconnects.inc();
      this.logger.warn('mqtt: connection closed, reconnecting', { in_ms: delay, attempt: backoff.attempts });
    });
    const concurrency = Math.max(1, this.o.concurrency ?? 16);
    client.handleMessage = (packet, done) => {
      const payload = packet.payload;
      const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
      this.#inflight++;
      void onBatch(packet.topic, bytes)
        .catch((e) => this.logger.warn('mqtt: batch handler failed', { error: errorText(e) }))
        .finally(() => {
          this.#inflight--;
          this.#waiting.shift()?.();
        });
      if (this.#inflight < concurrency) done();
      else this.#waiting.push(() => done());
    };
    client.on('connect', () => {
      backoff.reset();
      this.metrics.mqttConnected.set(1);
      this.logger.info('mqtt: connected', { url: redactUrl(this.o.url), client_id: this.o.clientId });
      if (this.o.ingest !== false) {
        const t = v5 ? topics.sharedBatches(this.o.prefix, this.o.group) : topics.allBatches(this.o.prefix);
        client.subscribe(t, { qos: 1 }, (err) => {
          if (err) this.logger.error('mqtt: subscribe failed', { topic: t, error: errorText(err) });
          else this.logger.info('mqtt: subscribed', { topic: t });
        });
      }
    });
    client.on('close', () => this.metrics.mqttConnected.set(0));
    client.on('error', (e) => {
      const r = /^Connection refused/.test(e.message) ? brokerRefusal(e, true) : undefined;
      if (r)
        this.logger.error(
          isLoginRefusal(r.code) ? "mqtt: the broker refused the login: check mqtt.username and the password against the broker's password file and ACL" : 'mqtt: the broker refused the connection',
          { reason_code: r.code, error: errorText(e) },
        );
      else this.logger.warn('mqtt: error', { error: errorText(e) });
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`cannot connect to MQTT broker ${redactUrl(this.o.url)} within 30 s`)), 30_000);
      client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  receipt(deviceId: string, msg: ReceiptMsg): void {
    this.client?.publish(topics.receipt(this.o.prefix, deviceId), Buffer.from(encodeReceiptMsg(msg)), { qos: 1 }, (err) => {
      if (err && !this.#closing) this.logger.warn('mqtt: receipt not published', { device: deviceId, batch_seq: msg.batchSeq, error: errorText(err) });
    });
  }

  head(sth: Uint8Array): void {
    this.client?.publish(topics.head(this.o.prefix), Buffer.from(sth), { qos: 1, retain: true }, (err) => {
      if (err && !this.#closing) this.logger.warn('mqtt: head not published', { error: errorText(err) });
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const w of this.#waiting.splice(0)) w();
    await this.client?.endAsync(false).catch(() => undefined);
  }
}

/** The URL without user info (never log a password). */
export function redactUrl(u: string): string {
  try {
    const x = new URL(u);
    x.username = '';
    x.password = '';
    return x.toString();
  } catch {
    return u.replace(/\/\/[^@/]*@/, '//');
  }
}
