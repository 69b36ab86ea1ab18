// iscm-edge keys: signing keys on a PKCS#11 token (USB token, HSM, TPM) or in
// a passphrase-encrypted key file: create, list, show, and write a PKCS#10
// CSR for the gateway's MQTT TLS client certificate. See docs/KEYS.md.
//
// PINs and passphrases come only from the environment (ISCM_PKCS11_PIN,
// ISCM_KEY_PASSPHRASE) or from files (--pin-file, --passphrase-file); an
// argument carrying one is refused.
import { writeFileSync } from 'node:fs';
import { ALG, algName, SIGNING_ALG } from '../../../protocol/cose/algorithms.js';
import { coseKeyToPem, encodeCoseKey, type CoseKey } from '../../../protocol/cose/key.js';
import { toHex } from '../../../protocol/bytes.js';
import { IscmError } from '../../../protocol/errors.js';
import type { Signer } from '../../../drivers/signer.js';
import { generateKeyFile, readKeyFileInfo, type PassphraseSource } from '../../../drivers/software/keyfile.js';
import { openSoftwareSigner } from '../../../drivers/software/signer.js';
import { createCsr } from '../../../drivers/csr/pkcs10.js';
import { Pkcs11DriverError } from '../../../drivers/pkcs11/errors.js';
import { openPkcs11Signer } from '../../../drivers/pkcs11/signer.js';
import { listTokens, Pkcs11Token, type KeyDescription, type Pkcs11Selection, type TokenDescription } from '../../../drivers/pkcs11/token.js';
import { EXIT, parse, UsageError, type Command, type Io } from '../usage.js';

const usage = `usage: iscm-edge keys <init|list|show|csr> [options]

  keys init --driver pkcs11 --module PATH (--token LABEL | --uri URI) --label NAME
            --alg ES256|EdDSA|PS256|ES256K [--id HEX] [--rsa-bits N] [--pin-file FILE]
      generates a key pair ON the token (private key sensitive, never
      extractable, sign only) and prints JSON: kid, alg, public key PEM, COSE_Key.
  keys init --driver software --key-file PATH --alg ES256|EdDSA|PS256|ES256K
            [--passphrase-file FILE] [--rsa-bits N]
      the same into a new passphrase-encrypted key file (mode 0600).
  keys list --driver pkcs11 --module PATH [--token LABEL | --uri URI] [--pin-file FILE] [--json]
      tokens present and their keys (kid, alg, label, id, attributes). Logs in
      (to see private keys) only when one token is selected and a PIN is available.
  keys show --driver pkcs11 --module PATH (--uri URI | --token LABEL --label NAME|--id HEX) [--pin-file FILE]
  keys show --driver software --key-file PATH
      one key as JSON (no PIN or passphrase needed for the public part).
  keys csr  (pkcs11 or software key options as for show) --subject DN
            [--dns NAME]… [--ip ADDR]… [--san-uri URI]… [--no-client-auth] [--out FILE]
      a PKCS#10 CSR signed by the key (for the MQTT TLS client certificate);
      DN as "CN=gw-17,O=Acme,C=DE" (RFC 4514) or "/C=DE/O=Acme/CN=gw-17".
      PEM to --out (JSON summary on stdout) or to stdout.

  --driver pkcs11|software  default: pkcs11 with --module/--uri, software with --key-file
  --module PATH             the PKCS#11 module (.so); or module-path= in the URI
  --uri URI                 RFC 7512, e.g. "pkcs11:token=gw;object=batch-key"
  --token/--serial/--label/--id   separate selection fields (token label, serial, key CKA_LABEL, CKA_ID hex)
  --pin-file FILE           the user PIN (else the environment variable ISCM_PKCS11_PIN)
  --passphrase-file FILE    key file passphrase (else ISCM_KEY_PASSPHRASE)

Exit: 0 ok, 1 failed (typed reason on stderr, e.g. PIN_INCORRECT, KEY_NOT_FOUND), 2 usage error.`;

const OPTIONS = {
  driver: { type: 'string' },
  module: { type: 'string' },
  uri: { type: 'string' },
  token: { type: 'string' },
  serial: { type: 'string' },
  'slot-id': { type: 'string' },
  label: { type: 'string' },
  id: { type: 'string' },
  alg: { type: 'string' },
  'rsa-bits': { type: 'string' },
  'pin-file': { type: 'string' },
  'key-file': { type: 'string' },
  'passphrase-file': { type: 'string' },
  subject: { type: 'string' },
  dns: { type: 'string', multiple: true },
  ip: { type: 'string', multiple: true },
  'san-uri': { type: 'string', multiple: true },
  'no-client-auth': { type: 'boolean' },
  out: { type: 'string' },
  json: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parse<typeof OPTIONS>>['values'];

/** Case-insensitive, and Ed25519 as another name of EdDSA. */
const ALGS: Record<string, number> = { ...Object.fromEntries(Object.entries(SIGNING_ALG).map(([name, alg]) => [name.toUpperCase(), alg])), ED25519: ALG.EdDSA };

function parseAlg(v: string | undefined): number {
  if (v === undefined) throw new UsageError('--alg is required (ES256, EdDSA, PS256 or ES256K)');
  const a = ALGS[v.toUpperCase()];
  if (a === undefined) throw new UsageError(`unknown --alg ${JSON.stringify(v)} (use ES256, EdDSA, PS256 or ES256K)`);
  return a;
}

function parseIntOpt(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${name} must be an integer ${min}..${max}`);
  return Number(v);
}

function refuseSecretsInArgs(argv: string[]): void {
  for (const a of argv) {
    const name = a.split('=')[0];
    if (['--pin', '--user-pin', '--so-pin', '-p'].includes(name))
      throw new UsageError('a PIN is never taken as an argument (it would show in ps and shell history): set ISCM_PKCS11_PIN or use --pin-file FILE');
    if (['--passphrase', '--password'].includes(name)) throw new UsageError('a passphrase is never taken as an argument: set ISCM_KEY_PASSPHRASE or use --passphrase-file FILE');
    if (/^pkcs11:.*[;?&]pin-value=/i.test(a)) throw new UsageError('pin-value is not accepted in a pkcs11 URI: set ISCM_PKCS11_PIN or use pin-source=FILE / --pin-file');
  }
}

function driverOf(v: Values): 'pkcs11' | 'software' {
  const d = v.driver ?? (v['key-file'] !== undefined ? 'software' : v.module !== undefined || v.uri !== undefined ? 'pkcs11' : undefined);
  if (d === undefined) throw new UsageError('--driver pkcs11|software is required (or give --module/--uri, or --key-file)');
  if (d !== 'pkcs11' && d !== 'software') throw new UsageError(`unknown --driver ${JSON.stringify(d)} (pkcs11 or software)`);
  if (d === 'software') {
    for (const o of ['module', 'uri', 'token', 'serial', 'slot-id', 'pin-file', 'id'] as const) if (v[o] !== undefined) throw new UsageError(`--${o} is for --driver pkcs11`);
    if (v['key-file'] === undefined) throw new UsageError('--key-file PATH is required for --driver software');
  } else {
    for (const o of ['key-file', 'passphrase-file'] as const) if (v[o] !== undefined) throw new UsageError(`--${o} is for --driver software`);
  }
  return d;
}

function selection(v: Values, io: Io): Pkcs11Selection {
  return {
    module: v.module,
    uri: v.uri,
    token: v.token,
    serial: v.serial,
    slotId: parseIntOpt(v['slot-id'], '--slot-id', 0, Number.MAX_SAFE_INTEGER),
    label: v.label,
    id: v.id,
    pinFile: v['pin-file'],
    env: io.env,
  };
}

function passphrase(v: Values, io: Io): PassphraseSource {
  return { passphraseFile: v['passphrase-file'], env: io.env };
}

function keyJson(alg: number, key: CoseKey, kid: Uint8Array): Record<string, unknown> {
  return {
    kid: toHex(kid),
    alg: algName(alg),
    alg_id: alg,
    public_key_pem: coseKeyToPem(key),
    cose_key: toHex(encodeCoseKey(key)),
  };
}

function tokenJson(t: TokenDescription): Record<string, unknown> {
  return {
    label: t.label,
    serial: t.serial,
    manufacturer: t.manufacturer,
    model: t.model,
    slot_id: t.slotId,
    uri: t.uri,
    login_required: t.loginRequired,
    pin_count_low: t.pinCountLow,
    pin_final_try: t.pinFinalTry,
    pin_locked: t.pinLocked,
  };
}

function pkcs11KeyJson(d: KeyDescription): Record<string, unknown> {
  const out: Record<string, unknown> = {
    label: d.label,
    id: toHex(d.id),
    type: d.privateHandle ? 'private' : 'public',
    key_type: d.kind,
    curve: d.curve,
    uri: d.uri,
  };
  if (d.alg !== null && d.publicKey && d.kid) Object.assign(out, keyJson(d.alg, d.publicKey, d.kid));
  else out.problem = d.problem ?? 'unsupported key';
  if (d.privateHandle) out.attributes = d.attributes;
  return out;
}

function summary(d: KeyDescription): string {
  const kind = d.privateHandle ? 'private' : 'public ';
  const alg = d.alg !== null ? algName(d.alg).padEnd(6) : '-     ';
  const kid = d.kid ? toHex(d.kid) : `(${d.problem ?? 'unsupported'})`;
  const flags = d.privateHandle ? ` sensitive=${d.attributes.sensitive} extractable=${d.attributes.extractable}` : '';
  return `  ${kind} ${alg} kid ${kid}  label ${JSON.stringify(d.label)} id ${toHex(d.id) || '-'}${flags}`;
}

// ------------------------------------------------------------------ subcommands

async function init(v: Values, io: Io): Promise<number> {
  const alg = parseAlg(v.alg);
  const rsaBits = parseIntOpt(v['rsa-bits'], '--rsa-bits', 2048, 8192);
  if (rsaBits !== undefined && alg !== ALG.PS256) throw new UsageError('--rsa-bits is only for --alg PS256');
  if (driverOf(v) === 'software') {
    const path = v['key-file']!;
    const info = await generateKeyFile(path, alg, passphrase(v, io), { rsaBits });
    io.out(JSON.stringify({ driver: 'software', key_file: path, ...keyJson(info.alg, info.publicKey, info.kid) }, null, 2));
    return EXIT.OK;
  }
  if (v.label === undefined && v.uri === undefined) throw new UsageError('--label NAME is required (the key label on the token)');
  const sel = selection(v, io);
  const t = await Pkcs11Token.open({ ...sel, rw: true, login: true });
  try {
    const label = t.selection.key.label;
    if (label === undefined) throw new UsageError('--label NAME (or object= in the URI) is required');
    const d = t.generateKeyPair({ alg, label, id: t.selection.key.id, rsaBits });
    io.out(JSON.stringify({ driver: 'pkcs11', module: t.module.path, token: tokenJson(t.desc), ...pkcs11KeyJson(d) }, null, 2));
  } finally {
    await t.close();
  }
  return EXIT.OK;
}

async function list(v: Values, io: Io): Promise<number> {
  if (driverOf(v) === 'software') return show(v, io);
  const sel = selection(v, io);
  const selected = v.uri !== undefined || v.token !== undefined || v.serial !== undefined || v['slot-id'] !== undefined;
  const modulePath = sel.module ?? undefined;
  const out: { module: string; tokens: Record<string, unknown>[] } = { module: '', tokens: [] };
  const lines: string[] = [];
  if (selected) {
    const t = await Pkcs11Token.open({ ...sel, login: 'if-pin' });
    try {
      out.module = t.module.path;
      const keys = t.listKeys();
      out.tokens.push({ ...tokenJson(t.desc), logged_in: t.loggedIn, keys: keys.map(pkcs11KeyJson) });
      lines.push(`token ${JSON.stringify(t.desc.label)} serial ${t.desc.serial} slot ${t.desc.slotId}${t.loggedIn ? '' : ' (not logged in: public keys only; set ISCM_PKCS11_PIN or --pin-file to see private keys)'}`);
      lines.push(...(keys.length ? keys.map(summary) : ['  (no keys)']));
    } finally {
      await t.close();
    }
  } else {
    if (modulePath === undefined) throw new UsageError('--module PATH is required');
    const tokens = await listTokens(modulePath);
    out.module = modulePath;
    for (const td of tokens) {
      if (!td.initialized) continue;
      // Not logged in: a PIN is only ever tried on a token chosen explicitly.
      const t = await Pkcs11Token.open({ module: modulePath, slotId: td.slotId, login: false });
      try {
        const keys = t.listKeys();
        out.tokens.push({ ...tokenJson(t.desc), logged_in: false, keys: keys.map(pkcs11KeyJson) });
        lines.push(`token ${JSON.stringify(td.label)} serial ${td.serial} slot ${td.slotId} (public keys; select the token with --token/--uri and give a PIN to see private keys)`);
        lines.push(...(keys.length ? keys.map(summary) : ['  (no public keys)']));
      } finally {
        await t.close();
      }
    }
    if (out.tokens.length === 0) lines.push(`no initialised token in ${modulePath}`);
  }
  if (v.json) io.out(JSON.stringify(out, null, 2));
  else for (const l of lines) io.out(l);
  return EXIT.OK;
}

async function show(v: Values, io: Io): Promise<number> {
  if (driverOf(v) === 'software') {
    const path = v['key-file']!;
    const info = await readKeyFileInfo(path);
    io.out(JSON.stringify({ driver: 'software', key_file: path, ...keyJson(info.alg, info.publicKey, info.kid) }, null, 2));
    return EXIT.OK;
  }
  const sel = selection(v, io);
  if (sel.label === undefined && sel.id === undefined && !(v.uri && /[;:](object|id)=/.test(v.uri))) throw new UsageError('select the key: --label NAME, --id HEX, or object=/id= in --uri');
  const t = await Pkcs11Token.open({ ...sel, login: 'if-pin' });
  try {
    const d = t.loggedIn ? t.findKey() : t.findPublicKey();
    io.out(JSON.stringify({ driver: 'pkcs11', module: t.module.path, token: tokenJson(t.desc), logged_in: t.loggedIn, ...pkcs11KeyJson(d) }, null, 2));
  } finally {
    await t.close();
  }
  return EXIT.OK;
}

async function csr(v: Values, io: Io): Promise<number> {
  if (v.subject === undefined) throw new UsageError('--subject DN is required, e.g. --subject "CN=gateway-17,O=Acme Logistics,C=DE"');
  let signer: Signer;
  if (driverOf(v) === 'software') signer = await openSoftwareSigner(v['key-file']!, passphrase(v, io));
  else {
    const sel = selection(v, io);
    if (sel.label === undefined && sel.id === undefined && !(v.uri && /[;:](object|id)=/.test(v.uri))) throw new UsageError('select the key: --label NAME, --id HEX, or object=/id= in --uri');
    signer = await openPkcs11Signer({ ...sel, sessions: 1, selfTest: false });
  }
  try {
    const req = await createCsr(signer, { subject: v.subject, dns: v.dns, ip: v.ip, uri: v['san-uri'], clientAuth: !v['no-client-auth'] });
    if (v.out !== undefined) {
      try {
        writeFileSync(v.out, req.pem, { mode: 0o644, flag: 'wx' });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new IscmError('USAGE', code === 'EEXIST' ? `${v.out} already exists (refusing to overwrite)` : `cannot write ${v.out} (${code ?? (e as Error).message})`);
      }
      io.out(JSON.stringify({ out: v.out, subject: req.subject, kid: toHex(signer.kid), alg: algName(signer.alg), bytes: req.der.length }));
    } else io.out(req.pem.trimEnd());
  } finally {
    await signer.close?.();
  }
  return EXIT.OK;
}

const SUBCOMMANDS: Record<string, (v: Values, io: Io) => Promise<number>> = { init, list, show, csr };

export const command: Command = {
  name: 'keys',
  summary: 'create, list and show signing keys (PKCS#11 token or key file); write a CSR',
  usage,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === undefined) throw new UsageError('give a subcommand: init, list, show or csr');
    const fn = SUBCOMMANDS[sub];
    if (!fn) throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (init, list, show, csr)`);
    refuseSecretsInArgs(rest);
    const { values, positionals } = parse(rest, OPTIONS, true);
    if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    try {
      return await fn(values, io);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      if (e instanceof IscmError && e.code === 'USAGE') throw new UsageError(e.message);
      if (e instanceof Pkcs11DriverError) {
        io.err(`iscm-edge keys ${sub}: ${e.reason}: ${e.message}`);
        return EXIT.INVALID;
      }
      throw e;
    }
  },
};

