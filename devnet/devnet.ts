// The embedded devnet (`npm start`): the whole system in one process, for a
// newcomer's first look and for demos. An MQTT broker (aedes, in process),
// a ledger on the in-memory store (the project's full node, MQTT 3.1.1 mode:
// aedes has no MQTT 5), and K light nodes — each with a software Ed25519 key,
// a real FileJournal in a temp dir, and a firmware simulator on an
// in-process link. Every reading a simulator creates goes the real way:
// MCU link → event → journal (fsync) → ACK → signed batch → MQTT → ledger →
// receipt → verified on the device. Nothing here is the production path:
// the ledger keeps its log in memory and its keys are made at start.
//
// devnet/ may import runtime/ and ledger/ (like test/ and bench/); neither
// imports it.
import { createServer, type Server } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { ALG } from '../protocol/cose/algorithms.js';
import { coseKeyToPem } from '../protocol/cose/key.js';
import { decodeRecord } from '../protocol/record.js';
import { softwareSignerFromKey } from '../drivers/software/signer.js';
import type { Signer } from '../drivers/signer.js';
import { FirmwareSimulator } from '../firmware-bridge/simulator.js';
import { SIM_SENSOR_IDS, simSensorsConfigYaml } from '../firmware-bridge/sensors.js';
import { parseConfig as parseGatewayConfig } from '../runtime/config/index.js';
import { LightNode } from '../runtime/node/light-node.js';
import { committedProofs } from '../runtime/node/proofs.js';
import { createLogger as createNodeLogger } from '../runtime/ops/log.js';
import { parseConfig as parseLedgerConfig } from '../ledger/config/config.js';
import { LedgerNode } from '../ledger/node.js';
import { MemoryKv } from '../ledger/store/memory-kv.js';
import { createLogger as createLedgerLogger } from '../ledger/logger.js';
import { signEnrollment } from '../ledger/registry.js';
import { PipeTransport } from './pipe.js';

export interface DevnetOptions {
  devices: number;
  /** Readings per second per device. */
  rateHz: number;
  dir: string;
  /** Where the components' log lines go (a file in the work dir by default). */
  log: (line: string) => void;
}

export interface DevnetCounts {
  /** Readings the simulators created. */
  created: number;
  /** Readings the light nodes acknowledged to their firmware (durable). */
  acknowledged: number;
  /** Events the light nodes journaled. */
  events: number;
  /** Signed batches. */
  batches: number;
  /** Events the ledger committed to its log. */
  committed: number;
  /** Events whose receipt the devices verified (committed on the device). */
  verified: number;
  /** Events not yet receipted on the devices. */
  backlog: number;
}

interface Device {
  id: string;
  node: LightNode;
  sim: FirmwareSimulator;
  pipe: PipeTransport;
  signer: Signer;
  created: Set<string>;
}

const CHAIN = 'devnet';

export class Devnet {
  private broker: Aedes | undefined;
  private server: Server | undefined;
  ledger: LedgerNode | undefined;
  readonly devices: Device[] = [];
  ledgerPem = '';
  private readonly o: DevnetOptions;

  constructor(o: DevnetOptions) {
    this.o = o;
  }

  async start(): Promise<void> {
    const dir = this.o.dir;
    mkdirSync(dir, { recursive: true });
    // The broker.
    this.broker = await Aedes.createBroker();
    const server = createServer(this.broker.handle);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
    // The ledger: keys made now, store in memory.
    const ledgerSigner = softwareSignerFromKey(ALG.ES256, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    const operator = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
    this.ledgerPem = join(dir, 'ledger-key.pem');
    writeFileSync(this.ledgerPem, coseKeyToPem(ledgerSigner.publicKey));
    const cfgText = `chain_id: ${CHAIN}
node_id: devnet-ledger
store: { kind: memory }
mqtt: { url: "${url}", protocol: "3.1.1" }
signer: { kind: software, key_file: in-memory.key }
sequencer: { block_interval: 250ms, election_ttl: 2s }
registry: { operator_keys: [in-memory.pem], cache_ttl: 100ms }
api: { listen: "127.0.0.1:0" }
log_level: warn
`;
    const ledgerCfg = parseLedgerConfig(cfgText, join(dir, 'ledger.yaml'), { ISCM_LEDGER_KEY_PASSPHRASE: 'unused' });
    this.ledger = await LedgerNode.start(ledgerCfg, {
      kv: new MemoryKv({ maxRequestBytes: 4 << 20, maxTxnOps: 1024 }),
      signer: ledgerSigner,
      operatorKeys: [operator.publicKey],
      logger: createLedgerLogger('warn', this.o.log, { part: 'ledger' }),
    });
    // The light nodes.
    for (let i = 1; i <= this.o.devices; i++) {
      const id = `devnet-${i}`;
      const signer = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
      await this.ledger.registry.submit(await signEnrollment(operator as never, { deviceId: id, key: signer.publicKey, notBefore: Date.now() - 60_000, issuedAt: Date.now(), chainId: CHAIN }));
      const ddir = join(dir, id);
      const yaml = `device: { id: ${id} }
clock: { ntp_check: "off" }
ports: { mcu: { path: in-process, sensors: [${SIM_SENSOR_IDS.join(', ')}] } }
${simSensorsConfigYaml()}assets: { epcs: ["urn:epc:id:sscc:4012345.${String(1000000000 + i).slice(-10)}"] }
locations: { read_point: "urn:epc:id:sgln:4012345.00001.0" }
signer: { driver: software, key_file: in-memory.key, passphrase_env: UNUSED }
journal: { dir: ${join(ddir, 'journal')}, quota: 1GiB }
batching: { max_records: 512, max_delay: 250ms }
mqtt: { url: "${url}", protocol: "3.1.1", window: 8, resend_timeout: 10s }
trust: { ledger_keys: [${this.ledgerPem}] }
metrics: { enabled: false }
state: { dir: ${join(ddir, 'state')} }
`;
      const config = parseGatewayConfig(yaml, join(ddir, 'gateway.yaml'));
      const pipe = new PipeTransport(`${id}/mcu`);
      const created = new Set<string>();
      const sim = new FirmwareSimulator({
        send: pipe.toGateway,
        rateHz: this.o.rateHz,
        firmware: 'iscm-sim/1.0 (devnet)',
        log: (e) => {
          if (e.event === 'created') created.add(`${e.boot_id}:${e.seq}`);
        },
      });
      pipe.attach(sim);
      const node = new LightNode({ config, openSigner: async () => signer, transports: { mcu: pipe }, log: createNodeLogger({ level: 'warn', base: { device: id }, sink: { write: (l) => this.o.log(l) } }) });
      await node.start();
      sim.start();
      this.devices.push({ id, node, sim, pipe, signer, created });
    }
  }

  /** The simulators stop creating readings; everything created is still delivered. */
  stopCreating(): void {
    for (const d of this.devices) d.sim.stopCreating();
  }

  async counts(): Promise<DevnetCounts> {
    const c: DevnetCounts = { created: 0, acknowledged: 0, events: 0, batches: 0, committed: 0, verified: 0, backlog: 0 };
    for (const d of this.devices) {
      const st = d.node.journal.stats();
      c.created += d.sim.counters.created;
      c.acknowledged += d.sim.counters.acked;
      c.events += st.lastSeq;
      c.batches += st.lastBatchSeq;
      c.verified += st.committedThroughSeq;
      c.backlog += st.lastSeq - st.committedThroughSeq;
      const s = await this.ledger!.reader.deviceStatus(d.id).catch(() => undefined);
      c.committed += s?.head?.lastSeq ?? 0;
    }
    return c;
  }

  /** True when everything created is acknowledged, in the ledger, and verified on its device. */
  async settled(): Promise<boolean> {
    const c = await this.counts();
    return c.created === c.acknowledged && c.events === c.created && c.committed === c.events && c.verified === c.events && this.devices.every((d) => d.sim.idle);
  }

  /**
   * Readings the simulators created that are not in the ledger (lost), and
   * those in it more than once, by the provenance each record carries.
   */
  async audit(): Promise<{ lost: number; duplicated: number; ledgerEvents: number }> {
    let lost = 0;
    let duplicated = 0;
    let ledgerEvents = 0;
    for (const d of this.devices) {
      const seen = new Map<string, number>();
      const head = (await this.ledger!.reader.deviceStatus(d.id)).head;
      for (let b = 1; b <= (head?.batchSeq ?? 0); b++) {
        const data = await this.ledger!.reader.batchData(await this.ledger!.reader.ref(d.id, b));
        for (const r of data.records) {
          const src = decodeRecord(r).source as { boot_id?: number; seq?: number } | undefined;
          ledgerEvents++;
          if (src?.boot_id === undefined) continue;
          const k = `${src.boot_id}:${src.seq}`;
          seen.set(k, (seen.get(k) ?? 0) + 1);
        }
      }
      for (const k of d.created) if (!seen.has(k)) lost++;
      for (const n of seen.values()) if (n > 1) duplicated += n - 1;
    }
    return { lost, duplicated, ledgerEvents };
  }

  /** Writes every committed event's proof bundle as DIR/<device>-<seq>.iscm and the ledger key as DIR/ledger-key.pem. */
  async export(dir: string): Promise<number> {
    mkdirSync(dir, { recursive: true });
    copyFileSync(this.ledgerPem, join(dir, 'ledger-key.pem'));
    let n = 0;
    for (const d of this.devices)
      for await (const p of committedProofs(d.node.journal, d.signer.publicKey)) {
        writeFileSync(join(dir, `${d.id}-${String(p.seq).padStart(7, '0')}.iscm`), p.bundle);
        n++;
      }
    return n;
  }

  async stop(): Promise<void> {
    for (const d of this.devices) await d.sim.stop();
    for (const d of this.devices) await d.node.stop();
    await this.ledger?.stop();
    const b = this.broker;
    if (b) await new Promise<void>((r) => b.close(() => r()));
    const s = this.server;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
