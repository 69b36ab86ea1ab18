// Shared ground of the light node's integration suites: the consortium side
// (mosquitto, optionally a 3-member etcd cluster, the project's ledger as a
// child process), a gateway's own bridged mosquitto, a SoftHSM token with the
// device key, socat ptys, the firmware simulator, and `iscm-edge run` itself
// as a child process — all real parts, on 127.0.0.1, stopped by PID.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeCoseKey, type CoseKey } from '../../protocol/cose/key.js';
import { decodeRecord, type Record as Rec } from '../../protocol/record.js';
import { EtcdCluster } from '../helpers/etcd.js';
import { simSensorsConfigYaml } from '../../firmware-bridge/sensors.js';
import { startConsortiumBroker, startGatewayBridge, type Broker, type BrokerAuth } from '../helpers/mosquitto.js';
import { createSoftHsm, type SoftHsm } from '../helpers/softhsm.js';
import { freePort, start, tempDir, waitUntil, type Proc } from '../helpers/proc.js';
import { enroll, makeKeys, openTestStore, root, startLedger, writeLedgerConfig, type Keys, type LedgerProc } from '../ledger/_env.js';

export { root };
export const EDGE = join(root, 'runtime/cli/iscm-edge.ts');
/** Node + tsx running the light node's CLI from source. */
export const edgeArgs = (...a: string[]) => ['--import', 'tsx', EDGE, ...a];

/** Runs the CLI to completion. */
export function edge(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, edgeArgs(...args), { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface Consortium {
  keys: Keys;
  consortium: Broker;
  etcd: EtcdCluster | undefined;
  endpoints: string[] | undefined;
  ledgers: LedgerProc[];
  dir: string;
  /** Enrolls a device key in the ledger's registry. */
  enroll(deviceId: string, key: CoseKey): Promise<void>;
  /** Every record the ledger holds for a device, in seq order. */
  ledgerRecords(deviceId: string): Promise<Rec[]>;
  /** The device's last committed record seq, from the ledger's query API (any store). */
  ledgerLastSeq(deviceId: string): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The consortium: mosquitto, and a ledger on a 3-member etcd cluster (or,
 * with etcd: false, on its in-memory store). With `auth` the broker runs its
 * production auth block (password file, the shipped ACL rendered for the
 * gateways) and the ledgers log in as "ledger" with a password file.
 */
export async function startConsortium(o: { etcd?: boolean; ledgers?: number; blockInterval?: string; ledgerNodeArgs?: string[]; auth?: BrokerAuth } = {}): Promise<Consortium> {
  const dir = tempDir('iscm-consortium-');
  const keys = await makeKeys(join(dir));
  const consortium = await startConsortiumBroker({ dir: join(dir, 'mosq'), auth: o.auth });
  let mqttLogin: { username: string; passwordFile: string } | undefined;
  if (o.auth) {
    mqttLogin = { username: 'ledger', passwordFile: join(dir, 'ledger-mqtt.pass') };
    writeFileSync(mqttLogin.passwordFile, o.auth.ledgerPassword + '\n', { mode: 0o600 });
  }
  let etcd: EtcdCluster | undefined;
  let endpoints: string[] | undefined;
  if (o.etcd !== false) {
    etcd = await EtcdCluster.start({ dir: join(dir, 'etcd') });
    endpoints = etcd.members.map((m) => m.endpoint);
  }
  const ledgers: LedgerProc[] = [];
  const apiPorts: number[] = [];
  for (let i = 0; i < (o.ledgers ?? 1); i++) {
    const apiPort = await freePort();
    apiPorts.push(apiPort);
    const cfg = writeLedgerConfig(dir, keys, { nodeId: `l${i + 1}`, endpoints, mqttUrl: consortium.url, blockInterval: o.blockInterval ?? '300ms', apiPort, mqttLogin });
    ledgers.push(await startLedger(cfg, `l${i + 1}`, { nodeArgs: o.ledgerNodeArgs }));
  }
  const store = endpoints ? openTestStore(endpoints, '/iscm/test/', keys) : undefined;
  const c: Consortium = {
    keys,
    consortium,
    etcd,
    endpoints,
    ledgers,
    dir,
    async enroll(deviceId, key) {
      if (store) return enroll(store.registry, keys.operator as never, deviceId, key);
      // In-memory ledger: through its API, as an operator would (iscm-ledger enroll --api).
      const kf = join(dir, `${deviceId}.cose`);
      const { encodeCoseKey } = await import('../../protocol/cose/key.js');
      writeFileSync(kf, encodeCoseKey(key));
      const { signEnrollment } = await import('../../ledger/registry.js');
      const claim = await signEnrollment(keys.operator as never, { deviceId, key, notBefore: Date.now() - 60_000, issuedAt: Date.now(), chainId: 'iscm-test' });
      const res = await fetch(`${ledgers[0].apiUrl}/v1/registry/claims`, { method: 'POST', body: Buffer.from(claim) });
      if (!res.ok) throw new Error(`enroll ${deviceId}: ${res.status} ${await res.text()}`);
    },
    async ledgerRecords(deviceId) {
      if (!store) throw new Error('ledgerRecords needs the etcd store');
      const out: Rec[] = [];
      const n = (await store.reader.deviceStatus(deviceId)).head?.batchSeq ?? 0;
      for (let b = 1; b <= n; b++) {
        const ref = await store.reader.ref(deviceId, b);
        const data = await store.reader.batchData(ref);
        for (const r of data.records) out.push(decodeRecord(r));
      }
      return out;
    },
    async ledgerLastSeq(deviceId) {
      const r = await fetch(`${ledgers[0].apiUrl}/v1/devices/${deviceId}`);
      const j = (await r.json()) as { head?: { last_seq?: number } | null };
      return j.head?.last_seq ?? 0;
    },
    async stop() {
      for (const l of ledgers) await l.proc.stop();
      await store?.store.close();
      await consortium.stop();
      await etcd?.stop();
    },
  };
  return c;
}

export interface DeviceToken {
  hsm: SoftHsm;
  pinFile: string;
  publicKey: CoseKey;
  label: string;
}

/** A SoftHSM token with an ES256 device key made on it by `iscm-edge keys init` (non-extractable). */
export function deviceToken(deviceId: string, dir: string, alg = 'ES256'): DeviceToken {
  const hsm = createSoftHsm([deviceId]);
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, hsm.pin + '\n', { mode: 0o600 });
  const r = edge(['keys', 'init', '--driver', 'pkcs11', '--module', hsm.module, '--token', deviceId, '--label', 'device-key', '--alg', alg, '--pin-file', pinFile], hsm.env);
  if (r.status !== 0) throw new Error(`keys init: ${r.stderr}`);
  const hex = (JSON.parse(r.stdout) as { cose_key?: string }).cose_key;
  if (!hex) throw new Error(`keys init printed no COSE_Key: ${r.stdout}`);
  return { hsm, pinFile, publicKey: decodeCoseKey(new Uint8Array(Buffer.from(hex, 'hex'))), label: 'device-key' };
}

export interface NodeConfigOptions {
  deviceId: string;
  dir: string;
  mqttUrl: string;
  ledgerPem: string;
  ports?: Record<string, { path: string; sensors: string[]; protocol?: string; baud?: number }>;
  token?: DeviceToken;
  softwareKey?: { file: string; passEnv: string };
  metricsPort: number;
  quota?: string;
  batching?: { max_records?: number; max_delay?: string };
  mqtt?: Record<string, string | number>;
  extra?: string;
}

/** Sensors as the firmware simulator names them (firmware-bridge/sensors.ts). */
export const SIM_SENSORS = simSensorsConfigYaml();

export function writeNodeConfig(o: NodeConfigOptions): string {
  mkdirSync(o.dir, { recursive: true });
  const ports = o.ports ?? {};
  const signer = o.token
    ? `signer:\n  driver: pkcs11\n  module: ${o.token.hsm.module}\n  token: ${o.deviceId}\n  key_label: ${o.token.label}\n  pin_file: ${o.token.pinFile}\n`
    : `signer:\n  driver: software\n  key_file: ${o.softwareKey!.file}\n  passphrase_env: ${o.softwareKey!.passEnv}\n`;
  const yaml = [
    `device:\n  id: ${o.deviceId}`,
    'clock:\n  ntp_check: "off"\n  not_before: "2020-01-01T00:00:00Z"',
    'ports:' + (Object.keys(ports).length ? '' : ' {}'),
    ...Object.entries(ports).map(([n, p]) => `  ${n}:\n    path: ${p.path}\n    sensors: [${p.sensors.join(', ')}]${p.protocol ? `\n    protocol: ${p.protocol}` : ''}${p.baud ? `\n    baud: ${p.baud}` : ''}`),
    SIM_SENSORS.trimEnd(),
    'assets:\n  epcs: [urn:epc:id:sscc:4012345.0000000101]',
    'locations:\n  read_point: urn:epc:id:sgln:4012345.00001.0',
    signer.trimEnd(),
    `journal:\n  dir: ${join(o.dir, 'journal')}\n  quota: ${o.quota ?? '64MiB'}`,
    `batching:\n  max_records: ${o.batching?.max_records ?? 256}\n  max_delay: ${o.batching?.max_delay ?? '200ms'}`,
    `mqtt:\n  url: ${o.mqttUrl}${Object.entries({ resend_timeout: '5s', window: 8, ...o.mqtt }).map(([k, v]) => `\n  ${k}: ${v}`).join('')}`,
    `trust:\n  ledger_keys: [${o.ledgerPem}]`,
    `metrics:\n  listen: 127.0.0.1:${o.metricsPort}`,
    `state:\n  dir: ${join(o.dir, 'state')}`,
    'logging:\n  level: info\n  format: json',
    o.extra ?? '',
  ].join('\n');
  const file = join(o.dir, 'gateway.yaml');
  writeFileSync(file, yaml + '\n');
  return file;
}

/** `iscm-edge run --config FILE` as a child process; resolves once it logs "light node running". */
export async function startNode(config: string, env: NodeJS.ProcessEnv = {}, name = 'light node'): Promise<Proc> {
  const proc = start(process.execPath, edgeArgs('run', '--config', config), { cwd: root, name, env: { ...process.env, ...env } });
  await proc.waitFor(/light node running/, 60_000);
  return proc;
}

export async function status(port: number): Promise<Record<string, any>> {
  const r = await fetch(`http://127.0.0.1:${port}/status`);
  return (await r.json()) as Record<string, any>;
}

export async function metricsText(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** A value of a Prometheus metric line (first match), or NaN. */
export function metric(text: string, name: string, labels = ''): number {
  const re = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${labels ? `\\{[^}]*${labels}[^}]*\\}` : '(\\{[^}]*\\})?'} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[m.length - 1]) : NaN;
}

/** The sum of a metric over all its label sets (0 when absent). */
export function metricSum(text: string, name: string): number {
  const re = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:\\{[^}]*\\})? (\\S+)$`, 'gm');
  let sum = 0;
  for (const m of text.matchAll(re)) sum += Number(m[1]);
  return sum;
}

/** The firmware simulator (`iscm-edge sim-firmware`) on a pty end, logging created/acked readings. */
export function simFirmware(port: string, dir: string, o: { count: number; rate: number; sensors?: string; noise?: number; seed?: number; ring?: number; retransmitMs?: number }): { proc: Proc; log: string } {
  const log = join(dir, `sim-${Date.now()}.jsonl`);
  const args = ['sim-firmware', '--port', port, '--count', String(o.count), '--rate', String(o.rate), '--state', join(dir, 'sim-state.json'), '--log', log, '--seed', String(o.seed ?? 1)];
  if (o.sensors) args.push('--sensors', o.sensors);
  if (o.noise) args.push('--noise', String(o.noise));
  if (o.ring) args.push('--ring', String(o.ring));
  if (o.retransmitMs) args.push('--retransmit-ms', String(o.retransmitMs));
  const proc = start(process.execPath, edgeArgs(...args), { cwd: root, name: 'sim-firmware' });
  return { proc, log };
}

/** The simulator's log: created readings (boot:seq) and acked ones. */
export function simLog(file: string): { created: string[]; acked: Set<string> } {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { created: [], acked: new Set() };
  }
  const created: string[] = [];
  const acked = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let o: { event?: string; boot_id?: number; seq?: number };
    try {
      o = JSON.parse(line);
    } catch {
      continue; // a line being written
    }
    if (o.event === 'created') created.push(`${o.boot_id}:${o.seq}`);
    else if (o.event === 'acked') acked.add(`${o.boot_id}:${o.seq}`);
  }
  return { created, acked };
}

export { waitUntil, tempDir, freePort, startGatewayBridge };
