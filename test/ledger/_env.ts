// Shared setup of the ledger's integration suites: keys, config files, ledger
// processes (the real CLI, as child processes), device enrollment.
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALG } from '../../protocol/cose/algorithms.js';
import { coseKeyToPem, type CoseKey } from '../../protocol/cose/key.js';
import type { TrustedKey } from '../../protocol/receipt.js';
import { generateKeyFile } from '../../drivers/software/keyfile.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import type { Signer } from '../../drivers/signer.js';
import { signEnrollment, Registry } from '../../ledger/registry.js';
import { LedgerStore } from '../../ledger/store/store.js';
import { EtcdKv } from '../../ledger/store/etcd-kv.js';
import { LogView } from '../../ledger/log/log.js';
import { LedgerReader } from '../../ledger/query.js';
import { freePort, start, tempDir, waitUntil, type Proc } from '../helpers/proc.js';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const PASS = 'correct horse battery staple';

export interface Keys {
  dir: string;
  nodeKeyFile: string;
  nodeKey: CoseKey;
  ledgerPem: string;
  operator: Signer;
  operatorPem: string;
  trusted: TrustedKey[];
}

export async function makeKeys(dir = tempDir('iscm-ledger-keys-')): Promise<Keys> {
  const nodeKeyFile = join(dir, 'node.key');
  const info = await generateKeyFile(nodeKeyFile, ALG.ES256, { passphraseEnv: 'ISCM_LEDGER_KEY_PASSPHRASE', env: { ISCM_LEDGER_KEY_PASSPHRASE: PASS } }, { scrypt: { N: 2 ** 10 } });
  const ledgerPem = join(dir, 'ledger.pem');
  writeFileSync(ledgerPem, coseKeyToPem(info.publicKey));
  const operator = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
  const operatorPem = join(dir, 'operator.pem');
  writeFileSync(operatorPem, coseKeyToPem(operator.publicKey));
  return { dir, nodeKeyFile, nodeKey: info.publicKey, ledgerPem, operator, operatorPem, trusted: [{ key: info.publicKey }] };
}

export interface LedgerConfigOptions {
  chainId?: string;
  nodeId: string;
  endpoints?: string[];
  prefix?: string;
  mqttUrl?: string;
  apiPort?: number;
  blockInterval?: string;
  electionTtl?: string;
  gapTimeout?: string;
  maxRequestBytes?: number;
  maxTxnOps?: number;
  archive?: { dir: string; hotMaxAge?: string; hotMaxBytes?: string; interval?: string; segmentMaxBytes?: string };
  extra?: string;
  logLevel?: string;
  sequencer?: boolean;
  maxPendingPerDevice?: number;
  concurrency?: number;
  /** The broker login (the password from a file, as in production). */
  mqttLogin?: { username: string; passwordFile: string };
}

export function writeLedgerConfig(dir: string, keys: Keys, o: LedgerConfigOptions): string {
  const lines = [
    `chain_id: ${o.chainId ?? 'iscm-test'}`,
    `node_id: ${o.nodeId}`,
    `log_level: ${o.logLevel ?? 'info'}`,
    'store:',
    o.endpoints ? '  kind: etcd' : '  kind: memory',
    ...(o.endpoints ? [`  endpoints: [${o.endpoints.join(', ')}]`, `  prefix: ${o.prefix ?? '/iscm/test/'}`, '  call_timeout: 4s'] : []),
    `  max_request_bytes: ${o.maxRequestBytes ?? 4 * 1024 * 1024}`,
    `  max_txn_ops: ${o.maxTxnOps ?? 1024}`,
    ...(o.mqttUrl ? ['mqtt:', `  url: ${o.mqttUrl}`, `  concurrency: ${o.concurrency ?? 16}`] : []),
    ...(o.mqttUrl && o.mqttLogin ? [`  username: ${o.mqttLogin.username}`, `  password_file: ${o.mqttLogin.passwordFile}`] : []),
    'signer:',
    '  kind: software',
    `  key_file: ${keys.nodeKeyFile}`,
    '  passphrase_env: ISCM_LEDGER_KEY_PASSPHRASE',
    'sequencer:',
    `  enabled: ${o.sequencer ?? true}`,
    `  block_interval: ${o.blockInterval ?? '300ms'}`,
    `  election_ttl: ${o.electionTtl ?? '2s'}`,
    `  gap_timeout: ${o.gapTimeout ?? '3s'}`,
    `  max_pending_per_device: ${o.maxPendingPerDevice ?? 64}`,
    'registry:',
    `  operator_keys: [${keys.operatorPem}]`,
    '  cache_ttl: 500ms',
    ...(o.archive
      ? [
          'archive:',
          `  dir: ${o.archive.dir}`,
          `  hot_max_age: ${o.archive.hotMaxAge ?? '24h'}`,
          `  hot_max_bytes: ${o.archive.hotMaxBytes ?? '1GiB'}`,
          `  interval: ${o.archive.interval ?? '1s'}`,
          `  segment_max_bytes: ${o.archive.segmentMaxBytes ?? '64MiB'}`,
        ]
      : []),
    'api:',
    `  listen: 127.0.0.1:${o.apiPort ?? 0}`,
    o.extra ?? '',
  ];
  const file = join(dir, `${o.nodeId}.yaml`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

export interface LedgerProc {
  nodeId: string;
  config: string;
  proc: Proc;
  apiUrl: string;
}

/** Starts `iscm-ledger run` (from source via tsx, or the built bundle) and waits until it is ready. */
export async function startLedger(config: string, nodeId: string, o: { bundle?: boolean; env?: NodeJS.ProcessEnv; nodeArgs?: string[] } = {}): Promise<LedgerProc> {
  const args = [...(o.nodeArgs ?? []), ...(o.bundle ? [join(root, 'dist/iscm-ledger.mjs'), 'run', '--config', config] : ['--import', 'tsx', join(root, 'ledger/cli/iscm-ledger.ts'), 'run', '--config', config])];
  const proc = start(process.execPath, args, { cwd: root, name: `ledger ${nodeId}`, env: { ...process.env, ISCM_LEDGER_KEY_PASSPHRASE: PASS, ...o.env } });
  const line = await proc.waitFor(/ledger: ready .*api=(\S+)/, 90_000);
  const apiUrl = /api=(\S+)/.exec(line)![1];
  return { nodeId, config, proc, apiUrl };
}

export async function apiJson<T = Record<string, unknown>>(apiUrl: string, path: string): Promise<T> {
  const r = await fetch(apiUrl + path);
  const t = await r.text();
  if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${t}`);
  return JSON.parse(t) as T;
}

/** The etcd-backed store, opened from the test process (enrollment, audits). */
export function openTestStore(endpoints: string[], prefix = '/iscm/test/', keys?: Keys): { store: LedgerStore; registry: Registry; reader: LedgerReader; log: LogView } {
  const store = new LedgerStore(new EtcdKv({ endpoints, prefix, limits: { maxRequestBytes: 4 * 1024 * 1024, maxTxnOps: 1024 }, callTimeoutMs: 5000 }));
  const registry = new Registry(store, keys ? [keys.operator.publicKey] : [], 'iscm-test', 0);
  const log = new LogView(store);
  return { store, registry, log, reader: new LedgerReader(store, log, registry) };
}

export async function enroll(registry: Registry, operator: Signer & { kid: Uint8Array }, deviceId: string, key: CoseKey, o: { notAfter?: number } = {}): Promise<void> {
  await registry.submit(await signEnrollment(operator, { deviceId, key, notBefore: Date.now() - 60_000, notAfter: o.notAfter, issuedAt: Date.now(), chainId: 'iscm-test' }));
}

/** Which ledger process is the active sequencer (by /v1/health). */
export async function activeLedger(ledgers: LedgerProc[], timeoutMs = 30_000): Promise<LedgerProc> {
  return waitUntil<LedgerProc | undefined>(async () => {
    for (const l of ledgers) {
      if (l.proc.child.exitCode !== null || l.proc.child.signalCode !== null) continue;
      try {
        const h = await apiJson<{ role: string }>(l.apiUrl, '/v1/health');
        if (h.role === 'active') return l;
      } catch {
        /* not up */
      }
    }
    return undefined;
  }, timeoutMs, 'an active sequencer', 200) as Promise<LedgerProc>;
}

export { freePort, tempDir };
