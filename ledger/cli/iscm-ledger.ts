// iscm-ledger: the full node's command line (bundled to dist/iscm-ledger.mjs).
//
//   iscm-ledger run --config FILE                 run a ledger process
//   iscm-ledger check-config --config FILE        check a config file and exit
//   iscm-ledger key generate --out FILE [--alg ES256|EdDSA|PS256|ES256K]
//   iscm-ledger key public --key FILE             print the public key (PEM)
//   iscm-ledger enroll --config FILE --device-id ID --public-key FILE --operator-key KEYFILE [--not-after DATE]
//   iscm-ledger revoke --config FILE --device-id ID (--kid HEX | --public-key FILE) --operator-key KEYFILE [--reason TEXT]
//   iscm-ledger export-bundles --config FILE --out DIR [--device ID]
//   iscm-ledger audit --config FILE [--ledger-key PEM]
//   iscm-ledger status --config FILE
//
// Exit codes: 0 ok, 1 a check failed (invalid data, audit violations), 2 usage
// or config error, 3 a service (etcd, broker) unavailable. Passphrases come
// only from an environment variable or a file, never from an argument.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fromHex, toHex } from '../../protocol/bytes.js';
import { decodeCoseKey, coseKeyToPem, thumbprint, type CoseKey } from '../../protocol/cose/key.js';
import { SIGNING_ALG } from '../../protocol/cose/algorithms.js';
import { IscmError } from '../../protocol/errors.js';
import type { TrustedKey } from '../../protocol/receipt.js';
import { generateKeyFile, readKeyFileInfo } from '../../drivers/software/keyfile.js';
import { openSoftwareSigner } from '../../drivers/software/signer.js';
import { loadConfig, type LedgerConfig } from '../config/config.js';
import { LedgerError, errorText } from '../errors.js';
import { loadPublicKeys } from '../keys.js';
import { createLogger } from '../logger.js';

declare const __ISCM_VERSION__: string | undefined;

export const EXIT = { OK: 0, INVALID: 1, USAGE: 2, UNAVAILABLE: 3 } as const;

class UsageError extends Error {}

export interface Io {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
}
const processIo: Io = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`), env: process.env };

function version(): string {
  if (typeof __ISCM_VERSION__ === 'string') return __ISCM_VERSION__;
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0-unknown';
  }
}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw new UsageError(`${flag} is required`);
  return v;
}

function parseDate(s: string, flag: string): number {
  const t = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
  if (!Number.isFinite(t)) throw new UsageError(`${flag}: ${JSON.stringify(s)} is not a date (ISO 8601, e.g. 2027-01-01T00:00:00Z, or ms since the epoch)`);
  return t;
}

const ALGS: Record<string, number> = SIGNING_ALG;

function passphraseFlags(v: { 'passphrase-env'?: string; 'passphrase-file'?: string }, defaultEnv: string) {
  if (v['passphrase-env'] && v['passphrase-file']) throw new UsageError('give --passphrase-env or --passphrase-file, not both');
  return v['passphrase-file'] ? { passphraseFile: v['passphrase-file'] } : { passphraseEnv: v['passphrase-env'] ?? defaultEnv };
}

/** A device public key from PEM, COSE_Key CBOR, or a software key file. */
function readDeviceKey(path: string): CoseKey {
  const raw = readFileSync(path);
  if (!raw.toString('latin1').includes('-----BEGIN')) {
    try {
      return decodeCoseKey(new Uint8Array(raw), { canonical: false });
    } catch {
      /* maybe a key file or key set: below */
    }
  }
  const keys = loadPublicKeys(path);
  if (keys.length !== 1) throw new UsageError(`${path} holds ${keys.length} keys; give exactly one device public key`);
  return keys[0];
}

async function ledgerTrust(cfg: LedgerConfig, files: string[] | undefined): Promise<TrustedKey[]> {
  if (files && files.length) return files.flatMap((f) => loadPublicKeys(f)).map((key) => ({ key }));
  if (cfg.signer.kind === 'software') return [{ key: (await readKeyFileInfo(cfg.signer.keyFile)).publicKey }];
  throw new UsageError('--ledger-key FILE is required with a PKCS#11 signer (the ledger public key, PEM: iscm-ledger key public --config FILE)');
}

async function openStoreOnly(cfg: LedgerConfig, io: Io) {
  if (cfg.store.kind === 'memory') throw new UsageError('the config uses the in-memory store, which lives inside a running node; use --api URL (enroll/revoke) or an etcd config');
  const { openKv } = await import('../node.js');
  const { LedgerStore } = await import('../store/store.js');
  const { Registry } = await import('../registry.js');
  const { LogView } = await import('../log/log.js');
  const { LedgerReader } = await import('../query.js');
  const store = new LedgerStore(openKv(cfg, io.env));
  const registry = new Registry(store, cfg.registry.operatorKeys.flatMap((f) => loadPublicKeys(f)), cfg.chainId, 0);
  const log = new LogView(store);
  const reader = new LedgerReader(store, log, registry, cfg.archive?.dir);
  return { store, registry, log, reader };
}

/** Sends an operator-signed claim to a ledger's API, or straight to the store when no API is given. */
async function submitClaim(cfg: LedgerConfig, api: string | undefined, claim: Uint8Array, io: Io): Promise<void> {
  if (api) return postClaim(api, claim);
  const { store, registry } = await openStoreOnly(cfg, io);
  try {
    await registry.submit(claim);
  } finally {
    await store.close();
  }
}

async function postClaim(api: string, claim: Uint8Array): Promise<void> {
  const r = await fetch(new URL('/v1/registry/claims', api), { method: 'POST', headers: { 'content-type': 'application/cose' }, body: Buffer.from(claim) as unknown as BodyInit });
  const t = await r.text();
  if (!r.ok) throw new LedgerError(r.status === 400 ? 'REGISTRY' : 'STORE_UNAVAILABLE', `the ledger refused the claim (${r.status}): ${t}`);
}

type Run = (argv: string[], io: Io) => Promise<number>;

const commands: Record<string, { summary: string; usage: string; run: Run }> = {
  run: {
    summary: 'run a ledger process (ingest, sequencer campaign, archive, query API)',
    usage: 'usage: iscm-ledger run --config FILE',
    async run(argv, io) {
      const { values } = parse(argv, { config: { type: 'string' } });
      const cfg = loadConfig(need(values.config, '--config'), io.env);
      const { LedgerNode } = await import('../node.js');
      const node = await LedgerNode.start(cfg, { env: io.env, logger: createLogger(cfg.logLevel).child({ node: cfg.nodeId }) });
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          node.stop().finally(resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
      return EXIT.OK;
    },
  },
  'check-config': {
    summary: 'check a config file (exit 0 when valid; every problem as FILE:LINE:COL otherwise)',
    usage: 'usage: iscm-ledger check-config --config FILE',
    async run(argv, io) {
      const { values } = parse(argv, { config: { type: 'string' } });
      const cfg = loadConfig(need(values.config, '--config'), io.env);
      for (const f of cfg.registry.operatorKeys) loadPublicKeys(f);
      io.out(`${cfg.file}: ok (chain ${cfg.chainId}, store ${cfg.store.kind}, signer ${cfg.signer.kind}, block interval ${cfg.sequencer.blockIntervalMs} ms)`);
      return EXIT.OK;
    },
  },
  key: {
    summary: 'key generate --out FILE [--alg ES256] | key public --key FILE: the node or operator key',
    usage: `usage: iscm-ledger key generate --out FILE [--alg ES256|EdDSA|PS256|ES256K] [--passphrase-env NAME | --passphrase-file FILE]
       iscm-ledger key public (--key FILE | --config FILE) [--out FILE]

generate writes a passphrase-encrypted software key file (scrypt + secretbox);
the passphrase comes from --passphrase-env (default ISCM_KEY_PASSPHRASE) or
--passphrase-file. public prints the public key as PEM: of a key file (no
passphrase needed), or of the signer a config names (a PKCS#11 token: its PIN
from the configured pin_env/pin_file). Give it to iscm-edge verify
--ledger-key, and to light nodes as the trusted ledger key.`,
    async run(argv, io) {
      const [sub, ...rest] = argv;
      if (sub === 'generate') {
        const { values } = parse(rest, { out: { type: 'string' }, alg: { type: 'string' }, 'passphrase-env': { type: 'string' }, 'passphrase-file': { type: 'string' } });
        const alg = ALGS[values.alg ?? 'ES256'];
        if (alg === undefined) throw new UsageError(`--alg must be one of ${Object.keys(ALGS).join(', ')}`);
        const info = await generateKeyFile(need(values.out, '--out'), alg, { ...passphraseFlags(values, 'ISCM_KEY_PASSPHRASE'), env: io.env });
        io.out(`${values.out}: ${values.alg ?? 'ES256'} key, kid ${toHex(info.kid)}`);
        return EXIT.OK;
      }
      if (sub === 'public') {
        const { values } = parse(rest, { key: { type: 'string' }, config: { type: 'string' }, out: { type: 'string' } });
        let pub: CoseKey;
        if (values.config) {
          const cfg = loadConfig(values.config, io.env);
          if (cfg.signer.kind === 'software') pub = (await readKeyFileInfo(cfg.signer.keyFile)).publicKey;
          else {
            const { openLedgerSigner } = await import('../keys.js');
            const signer = await openLedgerSigner(cfg.signer, io.env);
            pub = signer.publicKey;
            await signer.close?.();
          }
        } else pub = (await readKeyFileInfo(need(values.key, '--key or --config'))).publicKey;
        const pem = coseKeyToPem(pub);
        if (values.out) writeFileSync(values.out, pem);
        else io.out(pem.trimEnd());
        return EXIT.OK;
      }
      throw new UsageError('key: give "generate" or "public"');
    },
  },
  enroll: {
    summary: 'enroll a device key with an operator-signed claim',
    usage: `usage: iscm-ledger enroll --config FILE --device-id ID --public-key FILE --operator-key KEYFILE
                          [--not-before DATE] [--not-after DATE] [--api URL] [--claim-out FILE]
                          [--passphrase-env NAME | --passphrase-file FILE]

Signs an enrollment claim (device id, public COSE_Key, validity) with the
operator key file (passphrase from --passphrase-env, default
ISCM_OPERATOR_PASSPHRASE, or --passphrase-file) and stores it in the registry:
directly in etcd (the config's store), or through a running node's API (--api).
--public-key: PEM, a CBOR COSE_Key, or the device's software key file.`,
    async run(argv, io) {
      const { values } = parse(argv, {
        config: { type: 'string' }, 'device-id': { type: 'string' }, 'public-key': { type: 'string' }, 'operator-key': { type: 'string' },
        'not-before': { type: 'string' }, 'not-after': { type: 'string' }, api: { type: 'string' }, 'claim-out': { type: 'string' },
        'passphrase-env': { type: 'string' }, 'passphrase-file': { type: 'string' },
      });
      const cfg = loadConfig(need(values.config, '--config'), io.env);
      const deviceId = need(values['device-id'], '--device-id');
      const key = readDeviceKey(need(values['public-key'], '--public-key'));
      const op = await openSoftwareSigner(need(values['operator-key'], '--operator-key'), { ...passphraseFlags(values, 'ISCM_OPERATOR_PASSPHRASE'), env: io.env });
      const { signEnrollment, verifyClaim } = await import('../registry.js');
      const now = Date.now();
      const claim = await signEnrollment(op, {
        deviceId,
        key,
        notBefore: values['not-before'] ? parseDate(values['not-before'], '--not-before') : now - 60_000,
        notAfter: values['not-after'] ? parseDate(values['not-after'], '--not-after') : undefined,
        issuedAt: now,
        chainId: cfg.chainId,
      });
      verifyClaim(claim, cfg.registry.operatorKeys.flatMap((f) => loadPublicKeys(f)), cfg.chainId);
      if (values['claim-out']) writeFileSync(values['claim-out'], claim);
      await submitClaim(cfg, values.api, claim, io);
      io.out(`enrolled ${deviceId}: key ${toHex(thumbprint(key))}`);
      return EXIT.OK;
    },
  },
  revoke: {
    summary: 'revoke a device key with an operator-signed claim',
    usage: `usage: iscm-ledger revoke --config FILE --device-id ID (--kid HEX | --public-key FILE) --operator-key KEYFILE
                          [--reason TEXT] [--api URL] [--passphrase-env NAME | --passphrase-file FILE]`,
    async run(argv, io) {
      const { values } = parse(argv, {
        config: { type: 'string' }, 'device-id': { type: 'string' }, kid: { type: 'string' }, 'public-key': { type: 'string' }, 'operator-key': { type: 'string' },
        reason: { type: 'string' }, api: { type: 'string' }, 'passphrase-env': { type: 'string' }, 'passphrase-file': { type: 'string' },
      });
      const cfg = loadConfig(need(values.config, '--config'), io.env);
      const deviceId = need(values['device-id'], '--device-id');
      let kid: Uint8Array;
      if (values.kid) {
        if (!/^[0-9a-fA-F]{64}$/.test(values.kid)) throw new UsageError('--kid must be the 64-hex-digit key thumbprint');
        kid = fromHex(values.kid);
      } else kid = thumbprint(readDeviceKey(need(values['public-key'], '--kid or --public-key')));
      const op = await openSoftwareSigner(need(values['operator-key'], '--operator-key'), { ...passphraseFlags(values, 'ISCM_OPERATOR_PASSPHRASE'), env: io.env });
      const { signRevocation } = await import('../registry.js');
      const claim = await signRevocation(op, { deviceId, kid, issuedAt: Date.now(), chainId: cfg.chainId, reason: values.reason });
      await submitClaim(cfg, values.api, claim, io);
      io.out(`revoked ${deviceId}: key ${toHex(kid)}`);
      return EXIT.OK;
    },
  },
  'export-bundles': {
    summary: 'write one event proof bundle (.iscm) per committed event',
    usage: `usage: iscm-ledger export-bundles --config FILE --out DIR [--device ID]

Writes DIR/{device}-{seq}.iscm for every committed event (of one device with
--device), each with a receipt against the current signed tree head. Check
them with: iscm-edge verify --ledger-key LEDGER.pem DIR`,
    async run(argv, io) {
      const { values } = parse(argv, { config: { type: 'string' }, out: { type: 'string' }, device: { type: 'string' } });
      const cfg = loadConfig(need(values.config, '--config'), io.env);
      const out = need(values.out, '--out');
      mkdirSync(out, { recursive: true });
      const { store, reader } = await openStoreOnly(cfg, io);
      try {
        const head = await reader.head();
        const devices = values.device ? [values.device] : (await store.devices()).map((d) => d.deviceId);
        let n = 0;
        for (const id of devices) {
          const refs = await store.refs(id);
          if (values.device && refs.length === 0) throw new LedgerError('NOT_FOUND', `device ${id} has no committed batches`);
          for (const ref of refs) {
            if (ref.leafIndex >= head.size) continue;
            for (const b of await reader.bundles(ref, head)) {
              writeFileSync(join(out, `${id}-${String(b.seq).padStart(12, '0')}.iscm`), b.bytes);
              n++;
            }
          }
        }
        io.out(`wrote ${n} bundles to ${out} (tree size ${head.size})`);
        return EXIT.OK;
      } finally {
        await store.close();
      }
    },
  },
  audit: {
    summary: 'verify the whole log: leaves unique, heads consistent, every record hash',
    usage: `usage: iscm-ledger audit --config FILE [--ledger-key PEM …] [--json]

Recomputes the log from its data (both tiers) and checks it against every
stored head, block, tile, device head and archive file. Exit 0 when it all
verifies, 1 with the violations otherwise. The ledger key defaults to the
public part of the configured software key file.`,
    async run(argv, io) {
      const { values } = parse(argv, { config: { type: 'string' }, 'ledger-key': { type: 'string', multiple: true }, json: { type: 'boolean' } });
      const cfg = loadConfig(need(values.config, '--config'), io.env);
      const trusted = await ledgerTrust(cfg, values['ledger-key']);
      const { store, reader } = await openStoreOnly(cfg, io);
      try {
        const { auditLog } = await import('../audit.js');
        const r = await auditLog(reader, { trusted });
        if (values.json) io.out(JSON.stringify(r));
        else {
          io.out(`${r.ok ? 'ok' : 'FAILED'}: ${r.blocks} blocks, ${r.leaves} leaves, ${r.events} events, ${r.devices} devices, ${r.segments} archive segments`);
          for (const e of r.errors) io.out(`  ${e}`);
        }
        return r.ok ? EXIT.OK : EXIT.INVALID;
      } finally {
        await store.close();
      }
    },
  },
  status: {
    summary: 'print the head, the sequencer leader and pending work',
    usage: 'usage: iscm-ledger status --config FILE',
    async run(argv, io) {
      const { values } = parse(argv, { config: { type: 'string' } });
      const cfg = loadConfig(need(values.config, '--config'), io.env);
      const { store } = await openStoreOnly(cfg, io);
      try {
        const { head } = await store.head();
        const leader = await store.leader();
        const pending = (await store.listPending()).length;
        const st = await store.kv.status();
        io.out(JSON.stringify({ chain_id: cfg.chainId, height: head?.height ?? 0, size: head?.size ?? 0, root: head ? toHex(head.root) : null, sequencer: leader ?? null, pending, etcd_db_bytes: st.dbSizeBytes, etcd_members_up: `${st.membersUp}/${st.members}` }));
        return EXIT.OK;
      } finally {
        await store.close();
      }
    },
  },
};

function help(io: Io): void {
  io.out(`iscm-ledger ${version()} — full node: the ISCM ledger on an etcd (Raft) cluster

usage: iscm-ledger <command> [options]

commands:`);
  for (const [name, c] of Object.entries(commands)) io.out(`  ${name.padEnd(15)} ${c.summary}`);
  io.out(`
options:
  -h, --help     this help (or: iscm-ledger <command> --help)
  -V, --version  print the version

exit codes: 0 ok, 1 a check failed, 2 usage or config error, 3 service unavailable`);
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    help(io);
    return first === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (first === '-V' || first === '--version') {
    io.out(version());
    return EXIT.OK;
  }
  const cmd = commands[first];
  if (!cmd) {
    io.err(`iscm-ledger: unknown command "${first}" (commands: ${Object.keys(commands).join(', ')})`);
    return EXIT.USAGE;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    io.out(cmd.usage);
    return EXIT.OK;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`iscm-ledger ${first}: ${e.message}\n\n${cmd.usage}`);
      return EXIT.USAGE;
    }
    if (e instanceof LedgerError) {
      io.err(`iscm-ledger ${first}: ${e.message}`);
      return e.code === 'CONFIG' ? EXIT.USAGE : e.code === 'STORE_UNAVAILABLE' ? EXIT.UNAVAILABLE : EXIT.INVALID;
    }
    if (e instanceof IscmError) {
      io.err(`iscm-ledger ${first}: ${e.message}`);
      return e.code === 'USAGE' || e.code === 'KEYFILE_ERROR' ? EXIT.USAGE : EXIT.INVALID;
    }
    io.err(`iscm-ledger ${first}: ${errorText(e)}`);
    return EXIT.INVALID;
  }
}

const isMain = process.argv[1] && /iscm-ledger(\.ts|\.mjs|\.js)?$/.test(process.argv[1]);
if (isMain) {
  // `… | head` closes the pipe early: that is the reader's choice, not an error.
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // gRPC and MQTT keep handles open after a one-shot command; the run command returns only when stopped.
      setTimeout(() => process.exit(code), 200).unref();
    },
    (e) => {
      process.stderr.write(`iscm-ledger: internal error: ${errorText(e)}\n`);
      process.exitCode = 70;
    },
  );
}
