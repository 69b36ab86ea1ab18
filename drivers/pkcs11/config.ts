// The `signer` section of a gateway config (driver: pkcs11), validated into
// signer options. Field names are snake_case like the rest of the config:
//
//   signer:
//     driver: pkcs11
//     module: /usr/lib/softhsm/libsofthsm2.so      # or module-path= in the URI
//     uri: "pkcs11:token=gw;object=batch-key"       # or token/serial/slot_id + label/id
//     pin_file: /run/credentials/iscm-edge.service/pkcs11-pin   # else ISCM_PKCS11_PIN
//     alg: ES256                                     # optional check
//     sessions: 2
//     blocking: false
//     reopen_interval_ms: 1000
//     expect_kid: "9f…"                              # optional: pin the key
//
// A `pin` (or pin_value, user_pin, password) field is refused: PINs never sit
// in config files (ARCHITECTURE §2 inv. 4). Unknown fields are refused too.
import { SIGNING_ALG } from '../../protocol/cose/algorithms.js';
import { Pkcs11DriverError } from './errors.js';
import type { Pkcs11SignerOptions } from './signer.js';

const ALGS: Record<string, number> = SIGNING_ALG;
const FIELDS = ['driver', 'module', 'uri', 'token', 'serial', 'slot_id', 'label', 'id', 'pin_file', 'pin_env', 'alg', 'sessions', 'blocking', 'reopen_interval_ms', 'expect_kid', 'allow_final_pin_try'];
const SECRET_FIELDS = ['pin', 'pin_value', 'user_pin', 'password', 'passphrase', 'so_pin'];

function bad(field: string, message: string): Pkcs11DriverError {
  return new Pkcs11DriverError('URI_INVALID', `signer.${field}: ${message}`, { code: 'USAGE', field: `signer.${field}` });
}

function str(o: Record<string, unknown>, k: string): string | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw bad(k, 'expected non-empty text');
  return v;
}

function hex(o: Record<string, unknown>, k: string): Uint8Array | undefined {
  const v = str(o, k);
  if (v === undefined) return undefined;
  if (v.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(v)) throw bad(k, 'expected hex bytes');
  return new Uint8Array(Buffer.from(v, 'hex'));
}

/** Validates the config section and returns signer options. Throws Pkcs11DriverError (code USAGE) naming the field. */
export function pkcs11OptionsFromConfig(section: unknown): Pkcs11SignerOptions {
  if (typeof section !== 'object' || section === null || Array.isArray(section)) throw bad('', 'expected a map');
  const o = section as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (SECRET_FIELDS.includes(k.toLowerCase()))
      throw bad(k, 'PINs never go in a config file: set ISCM_PKCS11_PIN in the service environment or name a file with pin_file');
    if (!FIELDS.includes(k)) throw bad(k, `unknown field (known: ${FIELDS.join(', ')})`);
  }
  if (o.driver !== undefined && o.driver !== 'pkcs11') throw bad('driver', `expected "pkcs11", got ${JSON.stringify(o.driver)}`);
  const out: Pkcs11SignerOptions = {};
  const module = str(o, 'module');
  if (module !== undefined) {
    if (!module.startsWith('/')) throw bad('module', 'must be an absolute path');
    out.module = module;
  }
  const uri = str(o, 'uri');
  if (uri !== undefined) out.uri = uri;
  const token = str(o, 'token');
  if (token !== undefined) out.token = token;
  const serial = str(o, 'serial');
  if (serial !== undefined) out.serial = serial;
  if (o.slot_id !== undefined) {
    if (!Number.isSafeInteger(o.slot_id) || (o.slot_id as number) < 0) throw bad('slot_id', 'expected a non-negative integer');
    out.slotId = o.slot_id as number;
  }
  const label = str(o, 'label');
  if (label !== undefined) out.label = label;
  const id = hex(o, 'id');
  if (id !== undefined) out.id = id;
  const pinFile = str(o, 'pin_file');
  if (pinFile !== undefined) out.pinFile = pinFile;
  const pinEnv = str(o, 'pin_env');
  if (pinEnv !== undefined) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(pinEnv)) throw bad('pin_env', 'expected an environment variable name');
    out.pinEnv = pinEnv;
  }
  const alg = o.alg;
  if (alg !== undefined) {
    if (typeof alg === 'string' && ALGS[alg] !== undefined) out.alg = ALGS[alg];
    else if (typeof alg === 'number' && Object.values(ALGS).includes(alg)) out.alg = alg;
    else throw bad('alg', `expected one of ${Object.keys(ALGS).join(', ')}`);
  }
  if (o.sessions !== undefined) {
    if (!Number.isSafeInteger(o.sessions) || (o.sessions as number) < 1 || (o.sessions as number) > 64) throw bad('sessions', 'expected 1..64');
    out.sessions = o.sessions as number;
  }
  for (const [k, name] of [
    ['blocking', 'blocking'],
    ['allow_final_pin_try', 'allowFinalPinTry'],
  ] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'boolean') throw bad(k, 'expected true or false');
    out[name] = o[k] as boolean;
  }
  if (o.reopen_interval_ms !== undefined) {
    const v = o.reopen_interval_ms;
    if (!Number.isSafeInteger(v) || (v as number) < 10 || (v as number) > 3_600_000) throw bad('reopen_interval_ms', 'expected 10..3600000');
    out.reopenIntervalMs = v as number;
  }
  const kid = hex(o, 'expect_kid');
  if (kid !== undefined) {
    if (kid.length !== 32) throw bad('expect_kid', 'expected 32 bytes (64 hex digits)');
    out.expectKid = kid;
  }
  if (out.module === undefined && (uri === undefined || !/[?&]module-(path|name)=/.test(uri))) throw bad('module', 'required (or module-path= in the uri)');
  return out;
}
