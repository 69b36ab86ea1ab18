// The light node: `iscm-edge run --config gateway.yaml` (ARCHITECTURE §1).
// Wires the components and owns their lifecycle:
//
//   MCU links / NMEA ports / local socket ─▶ pipeline (events → records + state, journal unit)
//        ▲ ACK on durability ──────────────────┘        │
//                                                         ▼ durable records
//                         batcher (Merkle root, signer) ─▶ signed batch in the journal
//                                                         ▼
//                         sync (MQTT) ─▶ ledger ─▶ receipt ─▶ verified ─▶ commit mark ─▶ compaction
//
// The constructor does no I/O. start() fails only for what the node cannot
// run without (the journal, a corrupt trusted-head file); everything else —
// a missing serial port, an unplugged token, a broker that is down, a busy
// ops port — is reported (log line, metric, /status alarm) and retried,
// never fatal. stop() takes no more readings, lets what is in flight become
// durable, and closes the journal cleanly, so the next start is fast.
import { mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayLink, type LinkEvent, type LinkTransport } from '../../firmware-bridge/link.js';
import type { Signer } from '../../drivers/signer.js';
import { removeStaleTemps } from '../../drivers/fs/atomic.js';
import { readSecretFile } from '../../drivers/fs/secret-file.js';
import { errorMessage } from '../../protocol/errors.js';
import type { Reading } from '../../protocol/reading.js';
import type { TrustedKey } from '../../protocol/receipt.js';
import type { DeliverResult } from '../../firmware-bridge/session.js';
import type { GatewayConfig } from '../config/types.js';
import type { Clock } from '../events/clock.js';
import { FileJournal, MAX_STATE_BYTES, type Journal, type JournalEvent } from '../journal/index.js';
import { Batcher } from '../batcher/batcher.js';
import { Sync } from '../sync/sync.js';
import { TrustedHeadStore } from '../sync/receipt-check.js';
import { createLogger, type Logger } from '../ops/log.js';
import { Registry } from '../ops/metrics.js';
import { OpsServer } from '../ops/http.js';
import { SystemdNotifier } from '../ops/systemd.js';
import { loadTrustedKeys } from '../cli/trust.js';
import { version } from '../cli/version.js';
import { LocalInput, LOCAL_SOURCE } from '../inputs/local-socket.js';
import { NmeaPort } from '../inputs/nmea-port.js';
import { Pipeline } from './pipeline.js';
import { openConfiguredSigner, SignerHandle } from './signer-handle.js';
import { nodeStatus, nodeHealth, type StatusParts } from './status.js';
import { RecordCache } from './record-cache.js';

export const TRUSTED_HEAD_FILE = 'trusted-head.cbor';

export interface LightNodeOptions {
  config: GatewayConfig;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  metrics?: Registry;
  /** Opens the device key (default: from config.signer). Tests, benchmarks and the devnet pass their own. */
  openSigner?: () => Promise<Signer>;
  /** In-process transports for ports (devnet, benchmarks): port name → transport instead of the serial device. */
  transports?: Record<string, LinkTransport>;
  /** The event builder's clock (default: the system clock with config.clock.ntp_check). */
  clock?: Clock;
  /** Journal override (tests: a MemoryJournal). */
  journal?: Journal;
  /** Serve /metrics, /healthz, /status (default: config.metrics.enabled). */
  ops?: boolean;
  /** Sync to the broker (default true; false: journal and sign only). */
  sync?: boolean;
  /** Pipeline tick interval (default 1000 ms). */
  tickMs?: number;
}

export class LightNode {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly metrics: Registry;
  readonly journal: Journal;
  readonly pipeline: Pipeline;
  readonly signer: SignerHandle;
  readonly batcher: Batcher;
  readonly head: TrustedHeadStore;
  /** Records just made durable, for sync's first publish of their batch. */
  readonly records: RecordCache;
  sync: Sync | undefined;
  readonly links = new Map<string, GatewayLink>();
  readonly nmea = new Map<string, NmeaPort>();
  local: LocalInput | undefined;
  ops: OpsServer | undefined;
  private readonly o: LightNodeOptions;
  private readonly systemd: SystemdNotifier;
  private readonly alarms = new Map<string, { message: string; since: number }>();
  private readonly linkInfo = new Map<string, { state: string; lastEvent?: string; firmware?: string; bootId?: number }>();
  private tickTimer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private trusted: TrustedKey[] = [];
  private readonly m;

  constructor(o: LightNodeOptions) {
    this.o = o;
    const c = o.config;
    this.config = c;
    this.log = o.log ?? createLogger({ level: c.logging.level, base: { device: c.device.id } });
    this.metrics = o.metrics ?? new Registry();
    this.systemd = new SystemdNotifier(o.env ?? process.env);
    this.records = new RecordCache(2 * c.batching.max_bytes);
    this.journal =
      o.journal ??
      new FileJournal({ dir: c.journal.dir, deviceId: c.device.id, maxBytes: c.journal.quota, highWaterRatio: c.journal.high_water, lowWaterRatio: Math.min(c.journal.high_water - 0.05, 0.7), groupCommitMs: c.journal.group_commit });
    this.pipeline = new Pipeline({
      deviceId: c.device.id,
      journal: this.journal,
      config: c,
      builder: { ...(o.clock ? { clock: o.clock } : {}), onWarning: (m) => this.log.warn(m) },
      log: this.log.child({ component: 'pipeline' }),
      metrics: this.metrics,
      // A unit must fit one journal group with its state beside it (and one reading's events past the budget).
      unitBytes: Math.max(8 * 1024, Math.min(256 * 1024, Math.floor((this.journal.maxUnitBytes - MAX_STATE_BYTES) * 0.6))),
      onRecords: (firstSeq, records) => {
        this.records.add(firstSeq, records);
        this.batcher.addedRecords(firstSeq, records);
      },
      onAck: (source, boot, seq) => this.acknowledge(source, boot, seq),
    });
    this.signer = new SignerHandle({ open: o.openSigner ?? (() => openConfiguredSigner(c.signer, o.env ?? process.env)), stateDir: c.state.dir, log: this.log.child({ component: 'signer' }) });
    this.head = new TrustedHeadStore(join(c.state.dir, TRUSTED_HEAD_FILE));
    this.batcher = new Batcher({
      journal: this.journal,
      signer: () => this.signer.get(),
      deviceId: c.device.id,
      maxRecords: c.batching.max_records,
      maxBytes: c.batching.max_bytes,
      maxDelayMs: c.batching.max_delay,
      log: this.log.child({ component: 'batcher' }),
      metrics: this.metrics,
      onBatch: (b) => this.sync?.offer({ ...b, committed: false }),
    });
    const r = this.metrics;
    this.m = {
      up: r.gauge('iscm_up', '1 while the node runs'),
      linkEvents: r.counter('iscm_link_events_total', 'MCU link events, by port and event'),
      linkErrors: r.counter('iscm_link_errors_total', 'Link and port errors, by port and kind'),
      badFrames: r.counter('iscm_link_bad_frames_total', 'Bad frames on an MCU link (CRC, COBS, length, version), by port and kind'),
      alarms: r.gauge('iscm_alarms', 'Alarms raised and not cleared (see /status)'),
      journalAlarms: r.counter('iscm_journal_alarms_total', 'Journal alarms, by kind'),
    };
    r.collect(() => this.collectJournal());
  }

  /** Starts everything; rejects only when the journal or the trusted head cannot be used. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`light node: start() called in state ${this.state}`);
    this.state = 'starting';
    this.startedAt = Date.now();
    const c = this.config;
    await mkdir(c.state.dir, { recursive: true });
    await removeStaleTemps(c.state.dir);
    this.journal.subscribe((e) => this.onJournalEvent(e));
    await this.journal.open();
    await this.pipeline.start();
    await this.head.load();
    this.trusted = c.trust.ledger_keys.flatMap((p) => loadTrustedKeys(p));
    this.signer.start();
    await this.batcher.start();
    if (this.o.sync !== false) {
      this.sync = new Sync({
        url: c.mqtt.url,
        prefix: c.mqtt.prefix,
        deviceId: c.device.id,
        protocolVersion: c.mqtt.protocol === '3.1.1' ? 4 : 5,
        clientId: c.mqtt.client_id,
        ...(await this.mqttSecrets()),
        ...(c.mqtt.password_file ? { rereadPassword: () => this.readMqttPasswordFile(c.mqtt.password_file!) } : {}),
        window: c.mqtt.window,
        resendTimeoutMs: c.mqtt.resend_timeout,
        keepaliveSec: Math.round(c.mqtt.keepalive / 1000),
        backoff: { initialMs: 500, maxMs: c.mqtt.reconnect_max },
        status: { version: version(), firmware: { ports: Object.keys(c.ports) } },
        journal: this.journal,
        trusted: this.trusted,
        head: this.head,
        log: this.log.child({ component: 'sync' }),
        metrics: this.metrics,
        onAlarm: (kind, message) => this.raise(`sync:${kind}`, message),
        onAlarmClear: (kind) => this.clear(`sync:${kind}`),
        cachedRecords: (first, count) => this.records.range(first, count),
      });
      await this.sync.start();
    }
    for (const [name, p] of Object.entries(c.ports)) {
      if (p.protocol === 'nmea') this.startNmea(name, p);
      else await this.startLink(name);
    }
    if (c.local_input) {
      const li = new LocalInput({ path: c.local_input.socket, mode: parseInt(c.local_input.mode, 8), maxClients: c.local_input.max_clients, sensors: c.sensors, submit: (s, r) => this.pipeline.submit(s, r), log: this.log.child({ component: 'local' }), metrics: this.metrics });
      try {
        await li.start();
        this.local = li;
      } catch (e) {
        this.raise('local_input', `local input not available: ${errorMessage(e)}`);
      }
    }
    if (this.o.ops ?? c.metrics.enabled) {
      const [host, port] = splitHostPort(c.metrics.listen);
      const ops = new OpsServer({ host, port, registry: this.metrics, status: () => this.status(), health: () => this.health() });
      try {
        await ops.start();
        this.ops = ops;
      } catch (e) {
        this.raise('ops', `the ops endpoint cannot listen on ${c.metrics.listen}: ${errorMessage(e)}`);
      }
    }
    this.tickTimer = setInterval(() => this.pipeline.tick(), this.o.tickMs ?? 1000);
    this.tickTimer.unref();
    this.m.up.set(1);
    this.state = 'running';
    this.systemd.ready(`device ${c.device.id}: running`);
    this.systemd.startWatchdog(() => this.health().ok || !this.journalFailed());
    this.log.info('light node running', { version: version(), journal: c.journal.dir, ports: Object.keys(c.ports), ops: this.ops ? `${c.metrics.listen.replace(/:\d+$/, '')}:${this.ops.port}` : null, recovery_ms: this.journal.stats().recovery?.ms });
  }

  /** In-process readings (benchmarks, devnet, embedding): like a port's, acknowledged on durability. */
  submit(source: string, readings: Reading[]): Promise<DeliverResult> {
    return this.pipeline.submit(source, readings);
  }

  private async mqttSecrets(): Promise<{ tls?: { ca?: Uint8Array; cert?: Uint8Array; key?: Uint8Array }; username?: string; password?: Uint8Array }> {
    const m = this.config.mqtt;
    const env = this.o.env ?? process.env;
    const read = (p: string | undefined, what: string) => {
      if (p === undefined) return undefined;
      try {
        return new Uint8Array(readFileSync(p));
      } catch (e) {
        throw new Error(`mqtt.${what}: cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
      }
    };
    const out: { tls?: { ca?: Uint8Array; cert?: Uint8Array; key?: Uint8Array }; username?: string; password?: Uint8Array } = {};
    if (m.tls) out.tls = { ca: read(m.tls.ca_file, 'tls.ca_file'), cert: read(m.tls.cert_file, 'tls.cert_file'), key: read(m.tls.key_file, 'tls.key_file') };
    if (m.username) out.username = m.username;
    if (m.password_file) out.password = await this.readMqttPasswordFile(m.password_file);
    else if (m.password_env) {
      const v = env[m.password_env];
      if (v === undefined) throw new Error(`mqtt.password_env: the environment variable ${m.password_env} is not set`);
      out.password = new TextEncoder().encode(v);
    }
    return out;
  }

  private async readMqttPasswordFile(path: string): Promise<Uint8Array> {
    return new Uint8Array(await readSecretFile(path, { what: 'mqtt.password_file', maxBytes: 4096 }));
  }

  private async startLink(name: string): Promise<void> {
    const p = this.config.ports[name];
    const source = `port:${name}`;
    const transport = this.o.transports?.[name];
    const link = new GatewayLink({
      ...(transport ? { transport } : { serial: { path: p.path, baudRate: p.baud, dataBits: p.data_bits, parity: p.parity, stopBits: p.stop_bits, ...(p.rs485 ? { rs485: { mode: 'auto' as const } } : {}) } }),
      statePath: join(this.config.state.dir, `link-${name}.json`),
      deliver: (readings) => this.pipeline.submit(source, readings),
      session: { gateway: `iscm-edge ${version()} ${this.config.device.id}` },
    });
    this.links.set(name, link);
    this.linkInfo.set(name, { state: 'starting' });
    link.on('event', (e: LinkEvent) => this.onLinkEvent(name, e));
    try {
      await link.session.open();
    } catch (e) {
      // A corrupt link state file: the journal's positions are the truth, so carry on from them.
      this.log.warn('link state file unusable; duplicates are filtered by the journal state instead', { port: name, error: e });
    }
    for (const [boot, acked] of this.pipeline.ackedBoots(source)) link.session.seed(boot, acked);
    link.transport.start();
  }

  private startNmea(name: string, p: GatewayConfig['ports'][string]): void {
    const port = new NmeaPort({ name, sensor: p.sensors[0], serial: { path: p.path, baudRate: p.baud, dataBits: p.data_bits, parity: p.parity, stopBits: p.stop_bits }, submit: (s, r) => this.pipeline.submit(s, r), log: this.log.child({ component: 'gps' }), metrics: this.metrics });
    this.nmea.set(name, port);
    port.start();
  }

  private acknowledge(source: string, boot: number, seq: number): void {
    if (source === LOCAL_SOURCE) this.local?.acknowledge(boot, seq);
    else if (source.startsWith('port:')) this.links.get(source.slice(5))?.session.acknowledge(boot, seq);
  }

  private onLinkEvent(port: string, e: LinkEvent): void {
    const info = this.linkInfo.get(port)!;
    if (e.event === 'bad_frame') {
      this.m.badFrames.inc({ port, kind: e.kind });
      return;
    }
    this.m.linkEvents.inc({ port, event: e.event });
    info.lastEvent = e.event;
    switch (e.event) {
      case 'open':
        info.state = 'open';
        this.log.info('serial port open', { port, path: e.path });
        break;
      case 'close':
        info.state = 'closed';
        if (e.reason === 'stopped') this.log.info('serial port closed', { port });
        else this.log.warn('serial port closed; reconnecting', { port, reason: e.reason });
        break;
      case 'hello':
        info.state = 'linked';
        info.firmware = e.firmware;
        info.bootId = e.boot_id;
        this.clear(`link:${port}`);
        this.log.info('firmware linked', { port, firmware: e.firmware, boot_id: e.boot_id, version: e.version });
        break;
      case 'dead':
        info.state = 'dead';
        this.raise(`link:${port}`, `port ${port}: ${e.message}`);
        break;
      case 'alive':
        info.state = 'linked';
        this.clear(`link:${port}`);
        break;
      case 'fault':
        this.m.linkErrors.inc({ port, kind: e.kind });
        if (!e.repeat) this.log.warn('serial port fault', { port, kind: e.kind, message: e.message });
        this.raise(`link:${port}`, `port ${port}: ${e.message}`);
        break;
      case 'link_error':
        this.m.linkErrors.inc({ port, kind: e.kind });
        this.log.warn('link error', { port, kind: e.kind, message: e.message });
        break;
      case 'reboot':
        this.log.info('firmware rebooted', { port, from: e.from, to: e.to });
        break;
      case 'reconnect':
        break;
    }
  }

  private onJournalEvent(e: JournalEvent): void {
    if (e.type === 'alarm') {
      this.m.journalAlarms.inc({ kind: e.kind });
      this.log.warn('journal alarm', { kind: e.kind, message: e.message });
      if (e.kind !== 'RECOVERY' && e.kind !== 'CHECKPOINT') this.raise(`journal:${e.kind}`, e.message);
    } else if (e.type === 'backpressure') {
      if (e.backpressure.state === 'ok') {
        for (const k of [...this.alarms.keys()]) if (k.startsWith('journal:')) this.clear(k);
        this.log.info('journal back-pressure cleared; the firmware is acknowledged again', { used_bytes: e.backpressure.usedBytes });
      }
    } else if (e.type === 'recovered' && e.report.dropped) this.log.warn('journal recovery dropped a torn tail (never acknowledged)', { ...e.report.dropped });
  }

  private raise(key: string, message: string): void {
    if (!this.alarms.has(key)) this.alarms.set(key, { message, since: Date.now() });
    else this.alarms.get(key)!.message = message;
    this.m.alarms.set(this.alarms.size);
  }

  private clear(key: string): void {
    if (this.alarms.delete(key)) this.m.alarms.set(this.alarms.size);
  }

  private journalFailed(): boolean {
    try {
      return this.journal.metrics().failed === 1;
    } catch {
      return true;
    }
  }

  private collectJournal(): void {
    let jm;
    try {
      jm = this.journal.metrics();
    } catch {
      return;
    }
    for (const [k, v] of Object.entries(jm)) this.metrics.gauge(`iscm_journal_${k}`, `Journal: ${k.replace(/_/g, ' ')} (runtime/journal JournalMetrics)`).set(v);
  }

  private parts(): StatusParts {
    return { node: this, alarms: this.alarms, linkInfo: this.linkInfo, startedAt: this.startedAt, state: this.state };
  }

  status(): Record<string, unknown> {
    return nodeStatus(this.parts());
  }

  health(): { ok: boolean; reasons: string[] } {
    return nodeHealth(this.parts());
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    const was = this.state;
    this.state = 'stopping';
    this.systemd.stopping();
    clearInterval(this.tickTimer);
    const step = async (what: string, f: () => Promise<unknown> | undefined) => {
      try {
        await f();
      } catch (e) {
        this.log.warn(`stop: ${what} failed`, { error: e });
      }
    };
    // Inputs first: no new readings; what they delivered is still made durable and acknowledged.
    await Promise.all([...this.links.values()].map((l) => step('link', () => l.stop())));
    await Promise.all([...this.nmea.values()].map((n) => step('gps port', () => n.stop())));
    await step('local input', () => this.local?.stop());
    await step('pipeline', () => this.pipeline.stop());
    await step('batcher', () => this.batcher.stop());
    await step('sync', () => this.sync?.stop());
    await step('signer', () => this.signer.close());
    if (was !== 'new') await step('journal', () => this.journal.close());
    await step('ops', () => this.ops?.stop());
    this.m.up.set(0);
    this.state = 'stopped';
    this.log.info('light node stopped');
  }
}

function splitHostPort(s: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  if (!m) return ['127.0.0.1', 9464];
  return [m[1] ?? m[2], Number(m[3])];
}
