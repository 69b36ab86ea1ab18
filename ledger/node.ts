// One ledger process (`iscm-ledger run`): ingest from MQTT, the sequencer
// campaign, the archiver (while it is the sequencer), the query API, metrics.
// Processes are stateless beside the store: start, stop or kill any of them.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Signer } from '../drivers/signer.js';
import type { CoseKey } from '../protocol/cose/key.js';
import { createApi } from './api.js';
import { Archiver, Compactor } from './archive.js';
import { readSecret, type LedgerConfig } from './config/config.js';
import { LedgerError, errorText } from './errors.js';
import { ActivityTracker, Ingest } from './ingest.js';
import { loadPublicKeys, openLedgerSigner } from './keys.js';
import { LogView } from './log/log.js';
import { createLogger, type Logger } from './logger.js';
import { LedgerMetrics } from './metrics.js';
import { LedgerMqtt } from './mqtt.js';
import { RecordingPublisher, type Publisher } from './publisher.js';
import { LedgerReader } from './query.js';
import { Registry } from './registry.js';
import { Sequencer } from './sequencer.js';
import { EtcdKv } from './store/etcd-kv.js';
import type { Kv } from './store/kv.js';
import { MemoryKv } from './store/memory-kv.js';
import { LedgerStore } from './store/store.js';

export interface NodeDeps {
  /** Use this Kv instead of opening the configured store (in-process devnet, tests). */
  kv?: Kv;
  signer?: Signer;
  logger?: Logger;
  /** Used when the config has no mqtt section. */
  publisher?: Publisher;
  operatorKeys?: CoseKey[];
  env?: NodeJS.ProcessEnv;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens the configured store (etcd or memory). */
export function openKv(cfg: LedgerConfig, env: NodeJS.ProcessEnv = process.env): Kv {
  const s = cfg.store;
  if (s.kind === 'memory') return new MemoryKv({ maxRequestBytes: s.maxRequestBytes, maxTxnOps: s.maxTxnOps });
  const read = (f?: string) => (f ? readFileSync(f) : undefined);
  return new EtcdKv({
    endpoints: s.endpoints,
    prefix: s.prefix,
    limits: { maxRequestBytes: s.maxRequestBytes, maxTxnOps: s.maxTxnOps },
    callTimeoutMs: s.callTimeoutMs,
    credentials: s.tls?.caFile ? { rootCertificate: read(s.tls.caFile)!, certChain: read(s.tls.certFile), privateKey: read(s.tls.keyFile) } : undefined,
    auth: s.username ? { username: s.username, password: readSecret(s.password!, 'store password', env) } : undefined,
  });
}

export class LedgerNode {
  readonly metrics = new LedgerMetrics();
  store!: LedgerStore;
  registry!: Registry;
  log!: LogView;
  reader!: LedgerReader;
  ingest!: Ingest;
  activity!: ActivityTracker;
  sequencer: Sequencer | null = null;
  archiver: Archiver | null = null;
  mqtt: LedgerMqtt | null = null;
  publisher!: Publisher;
  api: Server | null = null;
  apiUrl: string | null = null;
  #timers: NodeJS.Timeout[] = [];
  #compactor: Compactor | null = null;
  #maintaining = false;
  #stopped = false;

  private constructor(readonly cfg: LedgerConfig, readonly logger: Logger) {}

  static async start(cfg: LedgerConfig, deps: NodeDeps = {}): Promise<LedgerNode> {
    const logger = deps.logger ?? createLogger(cfg.logLevel).child({ node: cfg.nodeId });
    const n = new LedgerNode(cfg, logger);
    try {
      await n.#start(deps);
    } catch (e) {
      await n.stop().catch(() => undefined);
      throw e;
    }
    return n;
  }

  async #start(deps: NodeDeps): Promise<void> {
    const cfg = this.cfg;
    const env = deps.env ?? process.env;
    const kv = deps.kv ?? openKv(cfg, env);
    this.store = new LedgerStore(kv);
    // The store may still be starting: wait for it (a minute), saying so.
    for (let i = 0; ; i++) {
      try {
        await this.store.head();
        break;
      } catch (e) {
        if (i >= 60) throw e;
        if (i % 5 === 0) this.logger.warn('store not reachable yet, retrying', { error: errorText(e) });
        await sleep(1000);
      }
    }
    const operators = deps.operatorKeys ?? cfg.registry.operatorKeys.flatMap((f) => loadPublicKeys(f));
    this.registry = new Registry(this.store, operators, cfg.chainId, cfg.registry.cacheTtlMs);
    this.log = new LogView(this.store);
    this.reader = new LedgerReader(this.store, this.log, this.registry, cfg.archive?.dir);

    if (cfg.mqtt) {
      let password: string | undefined;
      if (cfg.mqtt.password) password = readSecret(cfg.mqtt.password, 'mqtt password', env);
      const read = (f?: string) => (f ? readFileSync(f) : undefined);
      this.mqtt = new LedgerMqtt(
        {
          url: cfg.mqtt.url,
          prefix: cfg.mqtt.prefix,
          group: cfg.mqtt.shareGroup,
          protocolVersion: cfg.mqtt.protocol,
          clientId: cfg.mqtt.clientId,
          username: cfg.mqtt.username,
          password,
          ca: read(cfg.mqtt.tls?.caFile),
          cert: read(cfg.mqtt.tls?.certFile),
          key: read(cfg.mqtt.tls?.keyFile),
          concurrency: cfg.mqtt.concurrency,
          ingest: cfg.mqtt.ingest,
          backoff: { maxMs: cfg.mqtt.reconnectMaxMs },
        },
        this.logger,
        this.metrics,
      );
      this.publisher = this.mqtt;
    } else this.publisher = deps.publisher ?? new RecordingPublisher();

    this.activity = new ActivityTracker(this.store, cfg.nodeId);
    this.ingest = new Ingest(this.store, this.registry, this.log, this.publisher, this.metrics, this.logger, this.activity, {
      nodeId: cfg.nodeId,
      prefix: cfg.mqtt?.prefix ?? 'iscm/v1',
      maxPendingPerDevice: cfg.sequencer.maxPendingPerDevice,
      maxMessageBytes: cfg.mqtt?.maxMessageBytes,
    });

    if (cfg.archive) {
      this.archiver = new Archiver(
        this.store,
        { dir: cfg.archive.dir, chainId: cfg.chainId, nodeId: cfg.nodeId, hotMaxAgeMs: cfg.archive.hotMaxAgeMs, hotMaxBytes: cfg.archive.hotMaxBytes, segmentMaxBytes: cfg.archive.segmentMaxBytes, compact: cfg.archive.compact, defragment: cfg.archive.defragment },
        this.logger,
        this.metrics,
      );
      await this.archiver.archivedHeight();
    }

    if (cfg.sequencer.enabled) {
      const signer = deps.signer ?? (await openLedgerSigner(cfg.signer, env));
      this.sequencer = new Sequencer(this.store, this.log, signer, this.publisher, this.metrics, this.logger, {
        nodeId: cfg.nodeId,
        chainId: cfg.chainId,
        blockIntervalMs: cfg.sequencer.blockIntervalMs,
        maxBatchesPerBlock: cfg.sequencer.maxBatchesPerBlock,
        gapTimeoutMs: cfg.sequencer.gapTimeoutMs,
        pendingTtlMs: cfg.sequencer.pendingTtlMs,
        electionTtlS: cfg.sequencer.electionTtlS,
        archivedHeight: () => this.archiver?.archived ?? 0,
      });
    }

    if (cfg.api.listen) {
      const i = cfg.api.listen.lastIndexOf(':');
      const host = cfg.api.listen.slice(0, i).replace(/^\[|\]$/g, '');
      const port = Number(cfg.api.listen.slice(i + 1));
      this.api = createApi({
        chainId: cfg.chainId,
        nodeId: cfg.nodeId,
        reader: this.reader,
        registry: this.registry,
        metrics: this.metrics,
        logger: this.logger,
        role: () => (this.sequencer ? (this.sequencer.active ? 'active' : 'standby') : 'disabled'),
        mqttConnected: () => this.metrics.mqttConnected.get() === 1,
      });
      await new Promise<void>((resolve, reject) => {
        this.api!.once('error', (e) => reject(new LedgerError('CONFIG', `api.listen ${cfg.api.listen}: ${errorText(e)}`)));
        this.api!.listen(port, host, () => resolve());
      });
      const a = this.api.address() as AddressInfo;
      this.apiUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    }

    this.sequencer?.start();
    if (this.mqtt) await this.mqtt.start((topic, payload) => this.ingest.handle(topic, payload));

    this.#every(2000, () => this.activity.flush());
    this.#every(10_000, () => this.#status());
    const maintEvery = cfg.archive?.intervalMs ?? 60_000;
    this.#every(maintEvery, () => this.#maintain());
    void this.#status();
    this.logger.info('ledger: ready', { chain: cfg.chainId, store: cfg.store.kind, api: this.apiUrl ?? 'off', mqtt: cfg.mqtt ? 'on' : 'off', sequencer: cfg.sequencer.enabled ? 'campaigning' : 'disabled' });
  }

  #every(ms: number, f: () => Promise<unknown>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy || this.#stopped) return;
      busy = true;
      f()
        .catch((e) => this.logger.debug('periodic task failed', { error: errorText(e) }))
        .finally(() => (busy = false));
    }, ms);
    t.unref();
    this.#timers.push(t);
  }

  async #status(): Promise<void> {
    try {
      const s = await this.store.kv.status();
      this.metrics.dbSize.set(s.dbSizeBytes);
      this.metrics.dbInUse.set(s.dbSizeInUseBytes);
      this.metrics.etcdMembersUp.set(s.membersUp);
      const { head } = await this.store.head();
      if (head && !this.sequencer?.active) {
        this.metrics.treeSize.set(head.size);
        this.metrics.height.set(head.height);
      }
    } catch (e) {
      this.metrics.etcdMembersUp.set(0);
      this.logger.debug('status poll failed', { error: errorText(e) });
    }
  }

  /** Archive and compaction, done by the active sequencer only. */
  async #maintain(): Promise<void> {
    if (this.#maintaining || !this.sequencer?.active) return;
    this.#maintaining = true;
    try {
      await this.maintainNow();
    } catch (e) {
      this.logger.warn('maintenance (archive/compaction) failed; will retry', { error: errorText(e) });
    } finally {
      this.#maintaining = false;
    }
  }

  /** Runs archive/compaction now (tests, CLI). */
  async maintainNow(): Promise<void> {
    if (this.archiver) await this.archiver.runOnce();
    else await (this.#compactor ??= new Compactor(this.store, this.logger)).run();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    await this.mqtt?.close().catch(() => undefined);
    await this.sequencer?.stop().catch(() => undefined);
    await this.activity?.flush().catch(() => undefined);
    if (this.api) {
      const closed = new Promise<void>((r) => this.api!.close(() => r()));
      this.api.closeAllConnections?.();
      await closed;
    }
    await this.store?.close().catch(() => undefined);
    this.logger.info('ledger: stopped');
  }
}
