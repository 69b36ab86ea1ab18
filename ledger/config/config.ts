// The full node's config file (YAML or JSON): schema, defaults, and the
// checks that need more than one key. Every error names FILE:LINE:COL and
// the key path; see check.ts. docs/LEDGER.md lists every key.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { hostname } from 'node:os';
import { LedgerError, errorText } from '../errors.js';
import { checkConfigText, configError, type Issue, type Schema } from './check.js';

const NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const CHAIN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ENV = /^[A-Za-z_][A-Za-z0-9_]*$/;

const str = (o: Partial<Extract<Schema, { type: 'string' }>> = {}): Schema => ({ type: 'string', minLength: 1, ...o });
const envName: Schema = { type: 'string', pattern: ENV, patternText: 'an environment variable name' };
const tls: Schema = { type: 'object', props: { ca_file: str(), cert_file: str(), key_file: str() } };

export const LEDGER_SCHEMA: Schema = {
  type: 'object',
  required: ['chain_id', 'store', 'signer', 'registry'],
  props: {
    chain_id: str({ pattern: CHAIN, patternText: 'a chain id ([A-Za-z0-9._-], 1..64 characters)' }),
    node_id: str({ pattern: NAME, patternText: 'a node id ([a-z0-9_.-], 1..64 characters)' }),
    log_level: { type: 'string', enum: ['debug', 'info', 'warn', 'error'] },
    store: {
      type: 'object',
      required: ['kind'],
      props: {
        kind: { type: 'string', enum: ['etcd', 'memory'] },
        endpoints: { type: 'array', min: 1, items: str({ pattern: /^https?:\/\/[^\s/]+$/, patternText: 'an etcd client URL like http://127.0.0.1:2379' }) },
        prefix: str({ pattern: /^\/[\x21-\x7e]*\/$/, patternText: 'a key prefix starting and ending with "/"' }),
        max_request_bytes: { type: 'size', min: 64 * 1024, max: 64 * 1024 * 1024 },
        max_txn_ops: { type: 'int', min: 16, max: 100_000 },
        call_timeout: { type: 'duration', min: 500, max: 120_000 },
        tls,
        username: str(),
        password_env: envName,
        password_file: str(),
      },
    },
    mqtt: {
      type: 'object',
      required: ['url'],
      props: {
        url: str({ pattern: /^(mqtts?|wss?|tcp|ssl):\/\/[^\s]+$/, patternText: 'a broker URL like mqtt://127.0.0.1:1883' }),
        prefix: str({ pattern: /^[^#+\s/][^#+\s]*[^#+\s/]$|^[^#+\s/]$/, patternText: 'a topic prefix without wildcards or leading/trailing "/"' }),
        share_group: str({ pattern: /^[A-Za-z0-9_-]{1,64}$/, patternText: 'a share group name' }),
        protocol: { type: 'string', enum: ['5', '3.1.1'] },
        client_id: str({ pattern: /^[\x21-\x7e]{1,128}$/, patternText: 'a client id' }),
        username: str(),
        password_env: envName,
        password_file: str(),
        tls,
        concurrency: { type: 'int', min: 1, max: 256 },
        max_message_bytes: { type: 'size', min: 1024, max: 16 * 1024 * 1024 },
        ingest: { type: 'bool' },
        reconnect_max: { type: 'duration', min: 1000, max: 600_000 },
      },
    },
    signer: {
      type: 'object',
      required: ['kind'],
      props: {
        kind: { type: 'string', enum: ['software', 'pkcs11'] },
        key_file: str(),
        passphrase_env: envName,
        passphrase_file: str(),
        module: str({ pattern: /^\//, patternText: 'an absolute path to the PKCS#11 module' }),
        uri: str({ pattern: /^pkcs11:/, patternText: 'an RFC 7512 pkcs11: URI' }),
        token: str(),
        serial: str(),
        slot_id: { type: 'int', min: 0 },
        label: str(),
        id: str({ pattern: /^([0-9a-fA-F]{2})+$/, patternText: 'hex bytes (CKA_ID)' }),
        pin_env: envName,
        pin_file: str(),
      },
    },
    sequencer: {
      type: 'object',
      props: {
        enabled: { type: 'bool' },
        block_interval: { type: 'duration', min: 100, max: 60_000 },
        max_batches_per_block: { type: 'int', min: 1, max: 1_000_000 },
        election_ttl: { type: 'duration', min: 2000, max: 60_000 },
        gap_timeout: { type: 'duration', min: 100, max: 3_600_000 },
        pending_ttl: { type: 'duration', min: 1000, max: 7 * 86_400_000 },
        max_pending_per_device: { type: 'int', min: 1, max: 100_000 },
      },
    },
    registry: {
      type: 'object',
      required: ['operator_keys'],
      props: {
        operator_keys: { type: 'array', min: 1, items: str() },
        cache_ttl: { type: 'duration', min: 0, max: 600_000 },
      },
    },
    archive: {
      type: 'object',
      required: ['dir'],
      props: {
        dir: str(),
        hot_max_age: { type: 'duration', min: 1000 },
        hot_max_bytes: { type: 'size', min: 1024 },
        interval: { type: 'duration', min: 200, max: 86_400_000 },
        segment_max_bytes: { type: 'size', min: 64 * 1024, max: 4 * 1024 ** 3 },
        compact: { type: 'bool' },
        defragment: { type: 'bool' },
      },
    },
    api: {
      type: 'object',
      props: {
        listen: str({ pattern: /^(off|\[?[0-9a-fA-F:.]+\]?:\d{1,5}|localhost:\d{1,5})$/, patternText: 'HOST:PORT (an IP address), or "off"' }),
        allow_remote: { type: 'bool' },
      },
    },
  },
};

export interface SecretRef {
  env?: string;
  file?: string;
}

export interface LedgerConfig {
  file: string;
  chainId: string;
  nodeId: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  store:
    | { kind: 'memory'; maxRequestBytes: number; maxTxnOps: number }
    | {
        kind: 'etcd';
        endpoints: string[];
        prefix: string;
        maxRequestBytes: number;
        maxTxnOps: number;
        callTimeoutMs: number;
        tls?: { caFile?: string; certFile?: string; keyFile?: string };
        username?: string;
        password?: SecretRef;
      };
  mqtt?: {
    url: string;
    prefix: string;
    shareGroup: string;
    /** 5 (default): a shared subscription spreads batches over the ledger processes. 3.1.1: a plain subscription, for brokers without MQTT 5 (one ledger process per broker). */
    protocol: 5 | 4;
    clientId: string;
    username?: string;
    password?: SecretRef;
    tls?: { caFile?: string; certFile?: string; keyFile?: string };
    concurrency: number;
    maxMessageBytes: number;
    /** Longest wait between reconnect attempts (capped exponential backoff from 0.5 s, with jitter). */
    reconnectMaxMs: number;
    ingest: boolean;
  };
  signer:
    | { kind: 'software'; keyFile: string; passphrase: SecretRef }
    | { kind: 'pkcs11'; module: string; uri?: string; token?: string; serial?: string; slotId?: number; label?: string; id?: string; pin: SecretRef };
  sequencer: {
    enabled: boolean;
    blockIntervalMs: number;
    maxBatchesPerBlock: number;
    electionTtlS: number;
    gapTimeoutMs: number;
    pendingTtlMs: number;
    maxPendingPerDevice: number;
  };
  registry: { operatorKeys: string[]; cacheTtlMs: number };
  archive?: { dir: string; hotMaxAgeMs: number; hotMaxBytes: number; intervalMs: number; segmentMaxBytes: number; compact: boolean; defragment: boolean };
  api: { listen: string | null; allowRemote: boolean };
}

type Raw = Record<string, unknown>;

/** Reads, checks and resolves a config file. Relative paths in it are relative to the file. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): LedgerConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LedgerError('CONFIG', `${file}: cannot read the config file (${(e as NodeJS.ErrnoException).code ?? errorText(e)})`);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, file: string, _env: NodeJS.ProcessEnv = process.env): LedgerConfig {
  const { value: v, positions } = checkConfigText(text, file, LEDGER_SCHEMA);
  const issues: Issue[] = [];
  const at = (path: string, message: string) => {
    const p = positions.get(path) ?? positions.get(path.split('.').slice(0, -1).join('.')) ?? { line: 1, col: 1 };
    issues.push({ path, ...p, message });
  };
  const base = dirname(resolve(file));
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const secret = (o: Raw, name: string, where: string, required: boolean): SecretRef | undefined => {
    const e = o[`${name}_env`] as string | undefined;
    const f = o[`${name}_file`] as string | undefined;
    if (e && f) at(`${where}.${name}_file`, `give ${name}_env or ${name}_file, not both`);
    if (!e && !f && required) at(where, `${name}_env or ${name}_file is required`);
    if (!e && !f) return undefined;
    return e ? { env: e } : { file: path(f!) };
  };
  const tlsOf = (o: Raw | undefined) => (o ? { caFile: o.ca_file ? path(o.ca_file as string) : undefined, certFile: o.cert_file ? path(o.cert_file as string) : undefined, keyFile: o.key_file ? path(o.key_file as string) : undefined } : undefined);

  const chainId = v.chain_id as string;
  const nodeId = (v.node_id as string | undefined) ?? `${hostname().toLowerCase().replace(/[^a-z0-9_.-]/g, '-').slice(0, 40)}-${process.pid}`;

  // store
  const s = v.store as Raw;
  let store: LedgerConfig['store'];
  const maxRequestBytes = (s.max_request_bytes as number | undefined) ?? 1_572_864;
  const maxTxnOps = (s.max_txn_ops as number | undefined) ?? 128;
  if (s.kind === 'etcd') {
    if (!s.endpoints) at('store', 'endpoints is required for store kind "etcd"');
    if (s.username && !s.password_env && !s.password_file) at('store.username', 'username needs password_env or password_file');
    store = {
      kind: 'etcd',
      endpoints: (s.endpoints as string[] | undefined) ?? [],
      prefix: (s.prefix as string | undefined) ?? `/iscm/${chainId}/`,
      maxRequestBytes,
      maxTxnOps,
      callTimeoutMs: (s.call_timeout as number | undefined) ?? 5000,
      tls: tlsOf(s.tls as Raw | undefined),
      username: s.username as string | undefined,
      password: secret(s, 'password', 'store', false),
    };
  } else {
    for (const k of ['endpoints', 'prefix', 'tls', 'username', 'password_env', 'password_file', 'call_timeout']) if (k in s) at(`store.${k}`, `only for store kind "etcd" (this store is "memory")`);
    store = { kind: 'memory', maxRequestBytes, maxTxnOps };
  }

  // mqtt
  let mqtt: LedgerConfig['mqtt'];
  if (v.mqtt) {
    const m = v.mqtt as Raw;
    if (m.username && !m.password_env && !m.password_file) at('mqtt.username', 'username needs password_env or password_file');
    if (m.protocol === '3.1.1' && m.share_group !== undefined) at('mqtt.share_group', 'shared subscriptions need MQTT 5; with protocol "3.1.1" there is no share group (run one ledger process per broker)');
    mqtt = {
      url: m.url as string,
      prefix: (m.prefix as string | undefined) ?? 'iscm/v1',
      shareGroup: (m.share_group as string | undefined) ?? 'ledger',
      protocol: m.protocol === '3.1.1' ? 4 : 5,
      clientId: (m.client_id as string | undefined) ?? `iscm-ledger-${nodeId}`,
      username: m.username as string | undefined,
      password: secret(m, 'password', 'mqtt', false),
      tls: tlsOf(m.tls as Raw | undefined),
      concurrency: (m.concurrency as number | undefined) ?? 16,
      maxMessageBytes: (m.max_message_bytes as number | undefined) ?? 16 * 1024 * 1024,
      ingest: (m.ingest as boolean | undefined) ?? true,
      reconnectMaxMs: (m.reconnect_max as number | undefined) ?? 15_000,
    };
  }

  // signer
  const g = v.signer as Raw;
  let signer: LedgerConfig['signer'];
  if (g.kind === 'software') {
    if (!g.key_file) at('signer', 'key_file is required for signer kind "software"');
    for (const k of ['module', 'uri', 'token', 'serial', 'slot_id', 'label', 'id', 'pin_env', 'pin_file']) if (k in g) at(`signer.${k}`, 'only for signer kind "pkcs11"');
    signer = { kind: 'software', keyFile: path((g.key_file as string | undefined) ?? ''), passphrase: secret(g, 'passphrase', 'signer', false) ?? { env: 'ISCM_LEDGER_KEY_PASSPHRASE' } };
  } else {
    if (!g.module) at('signer', 'module (the PKCS#11 library) is required for signer kind "pkcs11"');
    if (!g.uri && g.token === undefined && g.serial === undefined && g.slot_id === undefined) at('signer', 'uri, or token, serial or slot_id, is required for signer kind "pkcs11"');
    if (!g.uri && g.label === undefined && g.id === undefined) at('signer', 'uri, or the key label or id, is required for signer kind "pkcs11"');
    for (const k of ['key_file', 'passphrase_env', 'passphrase_file']) if (k in g) at(`signer.${k}`, 'only for signer kind "software"');
    signer = {
      kind: 'pkcs11',
      module: path((g.module as string | undefined) ?? '/'),
      uri: g.uri as string | undefined,
      token: g.token as string | undefined,
      serial: g.serial as string | undefined,
      slotId: g.slot_id as number | undefined,
      label: g.label as string | undefined,
      id: g.id as string | undefined,
      pin: secret(g, 'pin', 'signer', false) ?? { env: 'ISCM_PKCS11_PIN' },
    };
  }

  const q = (v.sequencer as Raw | undefined) ?? {};
  const electionTtl = (q.election_ttl as number | undefined) ?? 3000;
  if (electionTtl % 1000 !== 0) at('sequencer.election_ttl', 'must be whole seconds (an etcd lease TTL)');
  const blockInterval = (q.block_interval as number | undefined) ?? 1000;
  const gapTimeout = (q.gap_timeout as number | undefined) ?? Math.max(5000, 3 * blockInterval);
  const pendingTtl = (q.pending_ttl as number | undefined) ?? 10 * 60_000;
  if (pendingTtl <= gapTimeout) at('sequencer.pending_ttl', `must be longer than gap_timeout (${gapTimeout} ms)`);

  const r = v.registry as Raw;
  const a = v.archive as Raw | undefined;
  const api = (v.api as Raw | undefined) ?? {};
  const listen = (api.listen as string | undefined) ?? '127.0.0.1:8480';
  const allowRemote = (api.allow_remote as boolean | undefined) ?? false;
  if (listen !== 'off' && !allowRemote && !/^(127\.\d+\.\d+\.\d+|\[::1\]|localhost):\d+$/.test(listen))
    at('api.listen', `${listen} is not a loopback address; the query API is loopback-only unless api.allow_remote is true (put a TLS proxy in front)`);
  if (listen !== 'off') {
    const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
    if (port > 65535) at('api.listen', `port ${port} is out of range`);
  }
  if (issues.length) throw configError(file, issues);

  return {
    file,
    chainId,
    nodeId,
    logLevel: (v.log_level as LedgerConfig['logLevel'] | undefined) ?? 'info',
    store,
    mqtt,
    signer,
    sequencer: {
      enabled: (q.enabled as boolean | undefined) ?? true,
      blockIntervalMs: blockInterval,
      maxBatchesPerBlock: (q.max_batches_per_block as number | undefined) ?? 10_000,
      electionTtlS: electionTtl / 1000,
      gapTimeoutMs: gapTimeout,
      pendingTtlMs: pendingTtl,
      maxPendingPerDevice: (q.max_pending_per_device as number | undefined) ?? 64,
    },
    registry: { operatorKeys: (r.operator_keys as string[]).map(path), cacheTtlMs: (r.cache_ttl as number | undefined) ?? 2000 },
    archive: a
      ? {
          dir: path(a.dir as string),
          hotMaxAgeMs: (a.hot_max_age as number | undefined) ?? 24 * 3_600_000,
          hotMaxBytes: (a.hot_max_bytes as number | undefined) ?? 1024 ** 3,
          intervalMs: (a.interval as number | undefined) ?? 30_000,
          segmentMaxBytes: (a.segment_max_bytes as number | undefined) ?? 256 * 1024 * 1024,
          compact: (a.compact as boolean | undefined) ?? true,
          defragment: (a.defragment as boolean | undefined) ?? false,
        }
      : undefined,
    api: { listen: listen === 'off' ? null : listen, allowRemote },
  };
}

/** Reads a secret from its reference (environment variable or file), for passwords and PINs. */
export function readSecret(ref: SecretRef, what: string, env: NodeJS.ProcessEnv = process.env): string {
  if (ref.env) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new LedgerError('CONFIG', `${what}: environment variable ${ref.env} is not set`);
    return v;
  }
  if (ref.file) {
    try {
      return readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new LedgerError('CONFIG', `${what}: cannot read ${ref.file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  throw new LedgerError('CONFIG', `${what}: no secret reference`);
}
