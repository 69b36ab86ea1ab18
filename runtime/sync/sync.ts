// Sync: streams signed batches from the journal to the ledger over MQTT and
// turns verified receipts into commit marks (ARCHITECTURE §4.3, §4.4).
//
// - The journal is the queue (invariant 2, 6): at most `window` batches are in
//   flight, read from the journal cursor; nothing else is held in memory, and
//   mqtt.js's own store only ever holds those.
// - Persistent session (clean start off, long session expiry) so receipts
//   queue at the broker while the device is away; a stable client id.
// - Reconnect is ours, with capped exponential backoff and jitter; every
//   in-flight batch is re-sent after a reconnect or a timeout (the ledger is
//   idempotent).
// - Receipts: committed/duplicate → verified against the trust anchors and the
//   trusted head (receipt-check.ts) before the commit mark; gap → resume from
//   next_seq; rejected → alarm, keep the data, stop this stream until an
//   operator acts; a fork → alarm, no commits on the ledger's word.
// - Refusals by the broker (a CONNACK, PUBACK or SUBACK reason code ≥ 0x80,
//   MQTT 5 §2.4; 3.1.1 CONNACK codes 1–5) are misconfiguration, not weather:
//   each raises an alarm naming what to check, is counted, and is cleared by
//   the next success. A refused batch is retried at the resend timeout, not on
//   every kick. (Over 3.1.1 a broker drops a publish its ACL denies without a
//   word, and mosquitto 2.0 grants any subscription and filters at delivery:
//   then the only symptom is receipts that never come — so that is an alarm
//   too: online, batches in flight, and no receipt message of any kind for
//   three resend timeouts.)
import type { IClientOptions, MqttClient } from 'mqtt';
import { encode } from '../../protocol/cbor.js';
import { encodeBatchMessage } from '../../protocol/batch.js';
import { decodeReceiptMsg, ReceiptStatus } from '../../protocol/receipt-msg.js';
import { topics } from '../../protocol/topics.js';
import { brokerRefusal, isLoginRefusal } from '../../protocol/mqtt-refusal.js';
import type { TrustedKey } from '../../protocol/receipt.js';
import type { Journal, StoredBatch } from '../journal/index.js';
import type { Logger } from '../ops/log.js';
import type { Registry } from '../ops/metrics.js';
import { Backoff } from '../../drivers/backoff.js';
import { checkReceipt, type TrustedHeadStore } from './receipt-check.js';

export interface SyncOptions {
  url: string;
  prefix: string;
  deviceId: string;
  protocolVersion?: 5 | 4;
  clientId?: string;
  tls?: { ca?: Uint8Array; cert?: Uint8Array; key?: Uint8Array; rejectUnauthorized?: boolean };
  username?: string;
  password?: Uint8Array;
  /**
   * Reads the password again (its file): called before the next attempt after
   * the broker refused the login, so a rotated password takes effect without
   * a restart.
   */
  rereadPassword?: () => Promise<Uint8Array>;
  /** Unreceipted batches in flight. */
  window?: number;
  /** Re-send a batch not receipted within this. */
  resendTimeoutMs?: number;
  backoff?: { initialMs?: number; maxMs?: number };
  /** Session expiry (MQTT 5), seconds: how long the broker keeps receipts for an absent device. */
  sessionExpirySec?: number;
  status?: { version: string; firmware?: Record<string, unknown> };
  journal: Journal;
  trusted: readonly TrustedKey[];
  head: TrustedHeadStore;
  log: Logger;
  metrics: Registry;
  /** Compact the journal after this many new commit marks. */
  compactEvery?: number;
  /** Records just made durable, when the caller holds them (saves reading a fresh batch back from the journal). */
  cachedRecords?: (firstSeq: number, count: number) => Uint8Array[] | undefined;
  /** MQTT keepalive, seconds (default 30). */
  keepaliveSec?: number;
  /** Told when the stream halts (rejected batch, fork) or the broker refuses us: operator action needed. */
  onAlarm?: (kind: string, message: string) => void;
  /** Told when the cause of an alarm of `kind` is gone (the broker accepted what it refused). */
  onAlarmClear?: (kind: string) => void;
}

interface InFlight {
  batch: StoredBatch;
  sentAt: number;
  /** performance.now() of the first publish (for the round-trip histogram). */
  firstSentAt: number;
  /**
   * The ledger holds this batch (a receipt came, but proven from an older
   * head): ask for a fresh receipt with a message without records instead of
   * sending the batch again (docs/PROTOCOL.md §3, receipt requests).
   */
  request?: boolean;
  bytes: number;
}

export type SyncState = 'stopped' | 'connecting' | 'online' | 'offline';

export class Sync {
  private client: MqttClient | undefined;
  private readonly inflight = new Map<number, InFlight>();
  /** Next batch_seq to read from the journal for the window. */
  private cursor = 1;
  private pumping = false;
  private wake = false;
  private stopped = true;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private resendTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private commitsSinceCompact = 0;
  private inconsistentInARow = 0;
  /** Why this stream is halted (rejected batch or fork): operator action needed. */
  halted: string | undefined;
  state: SyncState = 'stopped';
  lastReceiptAt = 0;
  /** When the stream last showed it works (connected, any receipt message, nothing awaited). */
  private lastProgressAt = 0;
  private noReceiptsAlarm = false;
  private readonly m;

  constructor(private readonly o: SyncOptions) {
    this.backoff = new Backoff(o.backoff);
    const r = o.metrics;
    this.m = {
      published: r.counter('iscm_batches_published_total', 'Batch messages published (including re-sends)'),
      resent: r.counter('iscm_batches_resent_total', 'Batch messages re-sent, records included, after a timeout, a reconnect or a gap'),
      requests: r.counter('iscm_receipt_requests_total', 'Receipt requests (a batch message without its records) for batches the ledger holds, after a receipt proven from an older tree head'),
      bytes: r.counter('iscm_sync_bytes_published_total', 'Bytes of batch messages published'),
      bytesIn: r.counter('iscm_sync_bytes_received_total', 'Bytes of receipt messages received'),
      receipts: r.counter('iscm_receipts_total', 'Receipt messages received, by status and verdict'),
      verified: r.counter('iscm_receipts_verified_total', 'Receipts verified and committed'),
      rejected: r.counter('iscm_receipts_rejected_total', 'Receipt messages refused (malformed, forged, wrong device, unknown batch)'),
      inflight: r.gauge('iscm_batches_in_flight', 'Batches published and not yet receipted'),
      state: r.gauge('iscm_mqtt_connected', '1 while connected to the broker'),
      reconnects: r.counter('iscm_mqtt_reconnects_total', 'Reconnect attempts'),
      refused: r.counter('iscm_mqtt_refused_total', 'Connections, publishes and subscriptions the broker refused, by what and reason code (see /status alarms)'),
      alarm: r.gauge('iscm_sync_alarm', '1 when the stream is halted (ledger rejected a batch, or the ledger forked): operator action needed'),
      head: r.gauge('iscm_trusted_tree_size', 'Tree size of the ledger head the device verified'),
      rtt: r.histogram('iscm_receipt_seconds', 'First publish of a batch to its verified receipt', [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300]),
    };
  }

  private mqtt: typeof import('mqtt').default | undefined;
  private password: Uint8Array | undefined;
  /** The broker refused the login: read the password again before the next attempt. */
  private loginRefused = false;

  /** Connects and starts streaming. Errors of the link are reported, never thrown later. */
  async start(): Promise<void> {
    // mqtt.js is loaded here, not at import, so CLI commands that never sync start faster.
    this.mqtt ??= (await import('mqtt')).default;
    this.password ??= this.o.password;
    this.stopped = false;
    const u = this.o.journal.stats();
    this.cursor = Math.max(u.committedThroughBatch + 1, u.firstBatchSeq, 1);
    this.m.head.set(this.o.head.current()?.size ?? 0);
    this.connect();
    this.resendTimer = setInterval(() => this.checkTimeouts(), Math.max(250, Math.floor((this.o.resendTimeoutMs ?? 30_000) / 4)));
    this.resendTimer.unref();
  }

  private connect(): void {
    if (this.stopped) return;
    this.state = 'connecting';
    const o = this.o;
    const statusTopic = topics.status(o.prefix, o.deviceId);
    const v5 = (o.protocolVersion ?? 5) === 5;
    const opts: IClientOptions = {
      clientId: o.clientId ?? `iscm-${o.deviceId}`,
      protocolVersion: v5 ? 5 : 4,
      clean: false,
      reconnectPeriod: 0, // ours: capped exponential backoff with jitter
      connectTimeout: 15_000,
      keepalive: o.keepaliveSec ?? 30,
      // mqtt-packet's default number cache is 65,536 two-byte Buffers (~6 MB
      // of old space, measured): a third of the node's heap after start, and
      // every major GC marks it. Off, a packet id costs one small allocation.
      writeCache: false,
      will: { topic: statusTopic, payload: Buffer.from(encode(new Map<number, unknown>([[1, 'offline'], [2, o.status?.version ?? '']]))), qos: 1, retain: true },
      ...(v5 ? { properties: { sessionExpiryInterval: o.sessionExpirySec ?? 7 * 24 * 3600 } } : {}),
      ...(o.tls ? { ca: o.tls.ca && Buffer.from(o.tls.ca), cert: o.tls.cert && Buffer.from(o.tls.cert), key: o.tls.key && Buffer.from(o.tls.key), rejectUnauthorized: o.tls.rejectUnauthorized ?? true } : {}),
      ...(o.username ? { username: o.username } : {}),
      ...(this.password ? { password: Buffer.from(this.password) } : {}),
    };
    const client = this.mqtt!.connect(o.url, opts);
    this.client = client;
    client.on('connect', (ack) => {
      this.state = 'online';
      this.backoff.reset();
      this.lastProgressAt = Date.now();
      this.m.state.set(1);
      o.log.info('mqtt connected', { url: o.url, session_present: ack.sessionPresent });
      this.cleared('broker_refused_connection');
      const receiptTopic = topics.receipt(o.prefix, o.deviceId);
      client.subscribe(receiptTopic, { qos: 1 }, (err) => {
        const r = brokerRefusal(err);
        if (r) this.refused('subscription', `the broker refused the subscription to ${receiptTopic}: ${r.reason} (reason code ${r.code}); no receipt can arrive, so nothing is committed or freed: its ACL must let this gateway's user read the topic`, r.code);
        else if (err) o.log.warn('receipt subscription failed', { error: err });
        else this.cleared('broker_refused_subscription');
      });
      const online = new Map<number, unknown>([[1, 'online'], [2, o.status?.version ?? '']]);
      if (o.status?.firmware) online.set(3, o.status.firmware);
      client.publish(statusTopic, Buffer.from(encode(online)), { qos: 1, retain: true }, (err) => {
        const r = brokerRefusal(err);
        if (r) this.refused('status', `the broker refused the retained status on ${statusTopic}: ${r.reason} (reason code ${r.code}): its ACL must let this gateway's user write the topic`, r.code);
      });
      // Everything in flight is re-sent after a reconnect.
      for (const f of this.inflight.values()) f.sentAt = 0;
      this.kick();
    });
    client.on('message', (_t, payload) => {
      this.m.bytesIn.inc(undefined, payload.length);
      void this.onReceipt(new Uint8Array(payload.buffer, payload.byteOffset, payload.length));
    });
    client.on('error', (err) => {
      const r = brokerRefusal(err, true);
      if (!r) return o.log.warn('mqtt error', { error: err, url: o.url });
      const login = isLoginRefusal(r.code);
      if (login) this.loginRefused = true;
      this.refused(
        'connection',
        `the broker refused the connection: ${r.reason} (reason code ${r.code})${login ? ': check mqtt.username and the password (mqtt.password_file or mqtt.password_env) against the broker\'s password file and ACL' : ''}; retrying with backoff, readings are kept`,
        r.code,
      );
    });
    client.on('close', () => {
      if (this.client !== client) return;
      this.m.state.set(0);
      if (this.stopped) return;
      this.state = 'offline';
      client.removeAllListeners();
      client.end(true);
      this.client = undefined;
      const delay = this.backoff.next();
      this.m.reconnects.inc();
      o.log.info('mqtt disconnected; reconnecting', { in_ms: delay, attempt: this.backoff.attempts });
      this.reconnectTimer = setTimeout(() => void this.reconnect(), delay);
    });
  }

  private async reconnect(): Promise<void> {
    if (this.loginRefused && this.o.rereadPassword) {
      this.loginRefused = false;
      try {
        this.password = await this.o.rereadPassword();
      } catch (e) {
        this.o.log.warn('could not read the MQTT password again; trying the one read before', { error: e });
      }
    }
    if (!this.stopped && !this.client) this.connect();
  }

  /** Batches just made durable, in order, handed over by the batcher (bounded). */
  private offered: StoredBatch[] = [];

  /** A batch just made durable: publish it from memory when the window has room (saves reading it back). */
  offer(b: StoredBatch): void {
    const last = this.offered.at(-1);
    if (last && b.batchSeq !== last.batchSeq + 1) this.offered = [];
    this.offered.push(b);
    if (this.offered.length > 64) this.offered.shift();
    this.kick();
  }

  /** A new batch is in the journal (or the window has room): fill the window. */
  kick(): void {
    this.wake = true;
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.wake && !this.stopped) {
        this.wake = false;
        if (this.halted || !this.client || this.state !== 'online') break;
        // Re-send what needs it, then fill the window from the journal cursor.
        for (const f of [...this.inflight.values()].sort((a, b) => a.batch.batchSeq - b.batch.batchSeq)) if (f.sentAt === 0) await this.publish(f, true);
        const window = this.o.window ?? 8;
        if (this.inflight.size >= window) continue;
        // Batches just signed come from the batcher (offer()); only a gap in
        // them (a restart, a backlog beyond the window) reads the journal.
        while (this.offered.length && this.offered[0].batchSeq < this.cursor) this.offered.shift();
        const take = async (b: StoredBatch): Promise<boolean> => {
          this.cursor = Math.max(this.cursor, b.batchSeq + 1);
          if (!this.inflight.has(b.batchSeq)) {
            const f: InFlight = { batch: b, sentAt: 0, firstSentAt: 0, bytes: 0 };
            this.inflight.set(b.batchSeq, f);
            await this.publish(f, false);
          }
          return this.inflight.size < window && !this.stopped && !!this.client;
        };
        if (this.offered.length && this.offered[0].batchSeq === this.cursor) {
          while (this.offered.length && this.offered[0].batchSeq === this.cursor) if (!(await take(this.offered.shift()!))) break;
        } else
          for await (const b of this.o.journal.unreceiptedBatches(this.cursor)) if (!(await take(b))) break;
        this.m.inflight.set(this.inflight.size);
      }
    } catch (e) {
      this.o.log.error('sync pump failed; retrying on the next event', { error: e });
    } finally {
      this.pumping = false;
    }
  }

  private async publish(f: InFlight, resend: boolean): Promise<void> {
    const client = this.client;
    if (!client) return;
    let records = f.request ? [] : resend ? undefined : this.o.cachedRecords?.(f.batch.firstSeq, f.batch.count);
    if (!records) {
      records = [];
      for await (const r of this.o.journal.records(f.batch.firstSeq, f.batch.firstSeq + f.batch.count - 1)) records.push(r.bytes);
    }
    if (records.length !== f.batch.count && !f.request) {
      this.o.log.error('journal is missing records of an unreceipted batch', { batch_seq: f.batch.batchSeq, have: records.length, want: f.batch.count });
      return;
    }
    const msg = encodeBatchMessage({ sign1: f.batch.sign1, records, knownSize: this.o.head.current()?.size ?? 0 });
    f.sentAt = Date.now();
    if (!f.firstSentAt) f.firstSentAt = performance.now();
    f.bytes = msg.length;
    this.m.published.inc();
    if (f.request) this.m.requests.inc();
    else if (resend) this.m.resent.inc();
    this.m.bytes.inc(undefined, msg.length);
    const topic = topics.batch(this.o.prefix, this.o.deviceId);
    client.publish(topic, Buffer.from(msg.buffer, msg.byteOffset, msg.length), { qos: 1 }, (err) => {
      const r = brokerRefusal(err);
      // Refused: sentAt stays, so it is tried again at the resend timeout (a
      // broker's answer will not change on the next kick).
      if (r) this.refused('publish', `the broker refused batch ${f.batch.batchSeq} on ${topic}: ${r.reason} (reason code ${r.code}); the batch is kept and retried: the broker's ACL must let this gateway's user write the topic`, r.code);
      else if (err) {
        f.sentAt = 0; // re-send after reconnect
        this.o.log.warn('batch publish failed', { batch_seq: f.batch.batchSeq, error: err });
      } else this.cleared('broker_refused_publish');
    });
  }

  private checkTimeouts(): void {
    const timeout = this.o.resendTimeoutMs ?? 30_000;
    const now = Date.now();
    if (this.inflight.size === 0 || this.state !== 'online') this.lastProgressAt = now;
    else if (!this.noReceiptsAlarm && !this.halted && now - this.lastProgressAt > 3 * timeout) {
      // Receipts normally come within a second; none for this long while
      // connected is a path that swallows them or the batches: an ACL that
      // drops silently (MQTT 3.1.1 publishes, mosquitto subscriptions), a
      // bridge without the receipt topic, or no ledger behind the broker.
      this.noReceiptsAlarm = true;
      const rt = topics.receipt(this.o.prefix, this.o.deviceId);
      const message = `connected, ${this.inflight.size} batches published and no receipt for ${Math.round((now - this.lastProgressAt) / 1000)} s: check that the broker's ACL lets this gateway's user write ${topics.batch(this.o.prefix, this.o.deviceId)} and read ${rt}, that a bridge carries both, and that the ledger runs; the data is kept`;
      this.o.log.error('no receipts', { in_flight: this.inflight.size, detail: message });
      this.o.onAlarm?.('no_receipts', message);
    }
    let any = false;
    for (const f of this.inflight.values())
      if (f.sentAt !== 0 && now - f.sentAt > timeout) {
        f.sentAt = 0;
        f.request = false; // unanswered: send it whole
        any = true;
      }
    if (any) this.kick();
  }

  private async onReceipt(payload: Uint8Array): Promise<void> {
    const log = this.o.log;
    this.lastProgressAt = Date.now();
    if (this.noReceiptsAlarm) {
      this.noReceiptsAlarm = false;
      log.info('receipts arrive again');
      this.o.onAlarmClear?.('no_receipts');
    }
    let msg;
    try {
      msg = decodeReceiptMsg(payload);
    } catch (e) {
      this.m.rejected.inc({ reason: 'malformed' });
      log.warn('malformed receipt message ignored', { error: e, bytes: payload.length });
      return;
    }
    const status = msg.status;
    const f = this.inflight.get(msg.batchSeq);
    const batch = f?.batch ?? (await this.o.journal.getBatch(msg.batchSeq).catch(() => undefined));
    if (status === ReceiptStatus.GAP) {
      this.m.receipts.inc({ status: 'gap' });
      const next = msg.nextSeq!;
      const stats = this.o.journal.stats();
      if (next <= stats.committedThroughBatch) {
        log.warn('ledger asks for a batch this device already has a verified receipt for; ignoring', { next_seq: next });
        return;
      }
      log.info('ledger reports a gap; resuming from its next batch', { next_seq: next, batch_seq: msg.batchSeq });
      for (const [seq, x] of this.inflight)
        if (seq >= next) {
          x.sentAt = 0;
          x.request = false;
        }
      if (next < this.cursor && !this.inflight.has(next)) this.cursor = next;
      this.kick();
      return;
    }
    if (status === ReceiptStatus.REJECTED) {
      this.m.receipts.inc({ status: 'rejected' });
      this.halt(`the ledger rejected batch ${msg.batchSeq}: ${msg.reason}`);
      return;
    }
    if (!batch) {
      this.m.rejected.inc({ reason: 'unknown_batch' });
      log.warn('receipt for a batch this device does not hold (already committed, or not ours)', { batch_seq: msg.batchSeq });
      return;
    }
    if (batch.committed) {
      this.m.receipts.inc({ status: 'already_committed' });
      this.inflight.delete(msg.batchSeq);
      return;
    }
    const verdict = checkReceipt(msg.receipt!, batch.sign1, this.o.trusted, this.o.head.current());
    this.m.receipts.inc({ status: status === 0 ? 'committed' : 'duplicate', verdict: verdict.kind });
    switch (verdict.kind) {
      case 'invalid':
        this.m.rejected.inc({ reason: verdict.code });
        log.warn('receipt refused: it does not verify (forged, another device\'s, or a key we do not trust); nothing committed', { batch_seq: msg.batchSeq, reason: verdict.reason });
        return;
      case 'stale':
        log.debug('receipt proved against another tree head; asking for a fresh proof', { batch_seq: msg.batchSeq, reason: verdict.reason });
        if (f) {
          f.sentAt = 0;
          f.request = true;
        }
        this.kick();
        return;
      case 'inconsistent':
        if (++this.inconsistentInARow >= 3) this.halt(`ledger inconsistency (possible fork), ${this.inconsistentInARow} receipts in a row: ${verdict.reason}`);
        else {
          log.warn('receipt consistency proof does not link to the trusted head; asking again', { batch_seq: msg.batchSeq, reason: verdict.reason });
          if (f) {
            f.sentAt = 0;
            f.request = true;
          }
          this.kick();
        }
        return;
      case 'fork':
        this.halt(`ledger fork: ${verdict.reason}`);
        return;
      case 'commit':
        this.inconsistentInARow = 0;
        try {
          if (verdict.advanced) {
            await this.o.head.save(verdict.head);
            this.m.head.set(verdict.head.size);
          }
          await this.o.journal.markCommitted(msg.batchSeq, msg.receipt!);
        } catch (e) {
          log.error('could not record a verified receipt; it will be asked for again', { batch_seq: msg.batchSeq, error: e });
          if (f) f.sentAt = 0;
          return;
        }
        this.m.verified.inc();
        if (f?.firstSentAt) this.m.rtt.observe((performance.now() - f.firstSentAt) / 1000);
        this.lastReceiptAt = Date.now();
        this.inflight.delete(msg.batchSeq);
        this.m.inflight.set(this.inflight.size);
        if (++this.commitsSinceCompact >= (this.o.compactEvery ?? 64)) {
          this.commitsSinceCompact = 0;
          this.o.journal.compact().catch((e) => log.warn('journal compaction failed', { error: e }));
        }
        this.kick();
    }
  }

  /** A refusal by the broker: counted, logged once per change, an alarm until the next success. */
  private readonly refusals = new Map<string, string>();
  private refused(what: 'connection' | 'publish' | 'subscription' | 'status', message: string, code: number): void {
    this.m.refused.inc({ what, code: String(code) });
    const kind = `broker_refused_${what === 'status' ? 'publish' : what}`;
    // The same refusal again (every retry, any batch) is counted, not logged again.
    const same = message.replace(/batch \d+/, 'batch N');
    if (this.refusals.get(kind) !== same) this.o.log.error(`the broker refused the ${what}`, { reason_code: code, detail: message });
    this.refusals.set(kind, same);
    this.o.onAlarm?.(kind, message);
  }

  private cleared(kind: string): void {
    if (!this.refusals.delete(kind)) return;
    this.o.log.info('the broker accepts again what it refused', { kind });
    this.o.onAlarmClear?.(kind);
  }

  private halt(why: string): void {
    this.halted = why;
    this.m.alarm.set(1);
    this.o.log.error('sync halted: operator action needed; data is kept', { reason: why });
    this.o.onAlarm?.('halted', why);
  }

  /** Operator action: resume a halted stream (after fixing the cause). */
  resume(): void {
    this.halted = undefined;
    this.m.alarm.set(0);
    for (const f of this.inflight.values()) f.sentAt = 0;
    this.kick();
  }

  inFlight(): number {
    return this.inflight.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    clearTimeout(this.reconnectTimer);
    clearInterval(this.resendTimer);
    const c = this.client;
    this.client = undefined;
    if (!c) return;
    await new Promise<void>((resolve) => {
      if (!c.connected) return c.end(true, {}, () => resolve());
      c.publish(topics.status(this.o.prefix, this.o.deviceId), Buffer.from(encode(new Map<number, unknown>([[1, 'offline'], [2, this.o.status?.version ?? '']]))), { qos: 1, retain: true }, () => c.end(false, {}, () => resolve()));
    });
    this.m.state.set(0);
  }
}

