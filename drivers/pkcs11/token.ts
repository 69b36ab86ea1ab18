// Tokens, keys and key pairs on a PKCS#11 module: finding the token a URI or
// config names, logging in (once, never retried), finding and describing
// keys (public key read from the token and turned into a COSE_Key + kid),
// and generating key pairs on the token. Used by the signer and by
// `iscm-edge keys`.
import { createPublicKey, randomBytes } from 'node:crypto';
import { ALG, algName } from '../../protocol/cose/algorithms.js';
import { coseKeyFromMap, thumbprint, type CoseKey } from '../../protocol/cose/key.js';
import { toHex } from '../../protocol/bytes.js';
import { readSingle, TAG, oidToString } from '../csr/der.js';
import {
  CKA_ALWAYS_AUTHENTICATE,
  CKA_ALWAYS_SENSITIVE,
  CKA_CLASS,
  CKA_DECRYPT,
  CKA_DERIVE,
  CKA_EC_PARAMS,
  CKA_EC_POINT,
  CKA_ENCRYPT,
  CKA_EXTRACTABLE,
  CKA_ID,
  CKA_KEY_TYPE,
  CKA_LABEL,
  CKA_LOCAL,
  CKA_MODULUS,
  CKA_MODULUS_BITS,
  CKA_NEVER_EXTRACTABLE,
  CKA_PRIVATE,
  CKA_PUBLIC_EXPONENT,
  CKA_PUBLIC_KEY_INFO,
  CKA_SENSITIVE,
  CKA_SIGN,
  CKA_SIGN_RECOVER,
  CKA_TOKEN,
  CKA_UNWRAP,
  CKA_VERIFY,
  CKA_WRAP,
  CKF_GENERATE_KEY_PAIR,
  CKF_LOGIN_REQUIRED,
  CKF_RW_SESSION,
  CKF_SERIAL_SESSION,
  CKF_SIGN,
  CKF_TOKEN_INITIALIZED,
  CKF_USER_PIN_COUNT_LOW,
  CKF_USER_PIN_FINAL_TRY,
  CKF_USER_PIN_INITIALIZED,
  CKF_USER_PIN_LOCKED,
  CKF_WRITE_PROTECTED,
  CKK_EC,
  CKK_EC_EDWARDS,
  CKK_RSA,
  CKM_EC_EDWARDS_KEY_PAIR_GEN,
  CKM_EC_KEY_PAIR_GEN,
  CKM_ECDSA,
  CKM_EDDSA,
  CKM_RSA_PKCS_KEY_PAIR_GEN,
  CKM_RSA_PKCS_PSS,
  CKM_SHA256_RSA_PKCS_PSS,
  CKO_PRIVATE_KEY,
  CKO_PUBLIC_KEY,
  CKR,
  CKU_USER,
  EC_PARAMS,
  mechanismName,
} from './constants.js';
import { ckrOf, deviceError, loginError, Pkcs11DriverError } from './errors.js';
import { acquireModule, findModuleByName, releaseModule, type ModuleHandle, type Pkcs11Api } from './module.js';
import { describePinSource, readPin, type PinSource } from './pin.js';
import { formatPkcs11Uri, parsePkcs11Uri, uriError, type Pkcs11Uri } from './uri.js';

type Handle = Buffer;

// ------------------------------------------------------------------ selection

/** Which token: any combination; all given must match. */
export interface TokenSelector {
  token?: string;
  serial?: string;
  manufacturer?: string;
  model?: string;
  slotId?: number;
  slotDescription?: string;
  slotManufacturer?: string;
  libraryManufacturer?: string;
  libraryDescription?: string;
  libraryVersion?: string;
}

/** Which key on the token: label (CKA_LABEL) and/or id (CKA_ID). */
export interface KeySelector {
  label?: string;
  id?: Uint8Array;
}

/** Module, token and key selection, from a URI and/or separate fields (config keys, CLI flags). */
export interface Pkcs11Selection {
  /** Module path (or the URI's module-path / module-name). */
  module?: string;
  /** RFC 7512 URI (text or parsed). Separate fields may add to it but not contradict it. */
  uri?: string | Pkcs11Uri;
  token?: string;
  serial?: string;
  slotId?: number;
  /** Key label (CKA_LABEL; the URI's object=). */
  label?: string;
  /** Key id (CKA_ID) as bytes or hex text. */
  id?: Uint8Array | string;
  /** PIN file (the URI's pin-source); otherwise ISCM_PKCS11_PIN. */
  pinFile?: string;
  /** PIN environment variable (default ISCM_PKCS11_PIN). */
  pinEnv?: string;
  /** Environment for the PIN (tests). */
  env?: Record<string, string | undefined>;
}

export interface ResolvedSelection {
  modulePath: string;
  token: TokenSelector;
  key: KeySelector;
  pin: PinSource;
  /** The URI type attribute, if any. */
  type?: string;
}

function parseIdOption(id: Uint8Array | string): Uint8Array {
  if (id instanceof Uint8Array) return id;
  const hex = id.replace(/^0x/i, '').replace(/:/g, '');
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) throw uriError(`key id must be hex bytes (e.g. 01a2), got ${JSON.stringify(id)}`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Merges a URI and separate fields. Throws URI_INVALID (code USAGE) on contradictions or when no module is named. */
export function resolveSelection(sel: Pkcs11Selection): ResolvedSelection {
  const uri: Pkcs11Uri = sel.uri === undefined ? {} : typeof sel.uri === 'string' ? parsePkcs11Uri(sel.uri) : sel.uri;
  const merge = <T>(name: string, a: T | undefined, b: T | undefined, eq: (x: T, y: T) => boolean = (x, y) => x === y): T | undefined => {
    if (a !== undefined && b !== undefined && !eq(a, b)) throw uriError(`the URI's ${name} and the separate ${name} option disagree; give one`);
    return a ?? b;
  };
  const sameBytes = (x: Uint8Array, y: Uint8Array) => toHex(x) === toHex(y);
  let modulePath = merge('module', uri.modulePath, sel.module);
  if (modulePath === undefined && uri.moduleName !== undefined) modulePath = findModuleByName(uri.moduleName);
  if (modulePath === undefined) throw new Pkcs11DriverError('MODULE_LOAD_FAILED', 'no PKCS#11 module given: use --module PATH (config: module) or module-path= in the URI', { code: 'USAGE' });
  if (uri.type !== undefined && uri.type !== 'private' && uri.type !== 'public') throw uriError(`the URI names objects of type ${uri.type}; a signing key is type=private`);
  const token: TokenSelector = {
    token: merge('token', uri.token, sel.token),
    serial: merge('serial', uri.serial, sel.serial),
    manufacturer: uri.manufacturer,
    model: uri.model,
    slotId: merge('slot-id', uri.slotId, sel.slotId),
    slotDescription: uri.slotDescription,
    slotManufacturer: uri.slotManufacturer,
    libraryManufacturer: uri.libraryManufacturer,
    libraryDescription: uri.libraryDescription,
    libraryVersion: uri.libraryVersion,
  };
  const key: KeySelector = {
    label: merge('label (object)', uri.object, sel.label),
    id: merge('id', uri.id, sel.id === undefined ? undefined : parseIdOption(sel.id), sameBytes),
  };
  const pinFile = merge('pin file (pin-source)', uri.pinSource, sel.pinFile);
  const pin: PinSource = { pinFile, pinEnv: sel.pinEnv, env: sel.env };
  for (const o of [token, key, pin] as Record<string, unknown>[]) for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return { modulePath, token, key, pin, type: uri.type };
}

// ------------------------------------------------------------------ tokens

export interface TokenDescription {
  slotId: number;
  slotDescription: string;
  label: string;
  serial: string;
  manufacturer: string;
  model: string;
  flags: number;
  initialized: boolean;
  loginRequired: boolean;
  userPinInitialized: boolean;
  pinCountLow: boolean;
  pinFinalTry: boolean;
  pinLocked: boolean;
  writeProtected: boolean;
  /** RFC 7512 URI of the token. */
  uri: string;
}

const trim = (s: string) => s.replace(/[\s\0]+$/, '');

export function slotNumber(slot: Handle): number {
  return slot.length >= 8 ? Number(slot.readBigUInt64LE(0)) : slot.readUInt32LE(0);
}

export function describeToken(api: Pkcs11Api, slot: Handle): TokenDescription {
  const si = api.C_GetSlotInfo(slot);
  const ti = api.C_GetTokenInfo(slot);
  const f = ti.flags;
  const d = {
    slotId: slotNumber(slot),
    slotDescription: trim(si.slotDescription),
    label: trim(ti.label),
    serial: trim(ti.serialNumber),
    manufacturer: trim(ti.manufacturerID),
    model: trim(ti.model),
    flags: f,
    initialized: (f & CKF_TOKEN_INITIALIZED) !== 0,
    loginRequired: (f & CKF_LOGIN_REQUIRED) !== 0,
    userPinInitialized: (f & CKF_USER_PIN_INITIALIZED) !== 0,
    pinCountLow: (f & CKF_USER_PIN_COUNT_LOW) !== 0,
    pinFinalTry: (f & CKF_USER_PIN_FINAL_TRY) !== 0,
    pinLocked: (f & CKF_USER_PIN_LOCKED) !== 0,
    writeProtected: (f & CKF_WRITE_PROTECTED) !== 0,
    uri: '',
  };
  d.uri = formatPkcs11Uri({ token: d.label, manufacturer: d.manufacturer, serial: d.serial, model: d.model });
  return d;
}

/** Tokens present in the module's slots (uninitialised ones included, flagged). */
export function presentTokens(api: Pkcs11Api): { slot: Handle; desc: TokenDescription }[] {
  let slots: Handle[];
  try {
    slots = api.C_GetSlotList(true);
  } catch (e) {
    throw deviceError(e, 'C_GetSlotList');
  }
  const out: { slot: Handle; desc: TokenDescription }[] = [];
  for (const slot of slots) {
    try {
      out.push({ slot, desc: describeToken(api, slot) });
    } catch (e) {
      // A token that vanished between C_GetSlotList and C_GetTokenInfo: skip it.
      if (!ckrOf(e)) throw e;
    }
  }
  return out;
}

function tokenName(d: TokenDescription): string {
  return `"${d.label}" (serial ${d.serial || '-'}, slot ${d.slotId})`;
}

function selectorText(s: TokenSelector): string {
  const parts = Object.entries(s)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return parts.length ? parts.join(' ') : '(any token)';
}

function libraryMatches(api: Pkcs11Api, sel: TokenSelector): boolean {
  if (sel.libraryManufacturer === undefined && sel.libraryDescription === undefined && sel.libraryVersion === undefined) return true;
  const info = api.C_GetInfo();
  if (sel.libraryManufacturer !== undefined && trim(info.manufacturerID) !== sel.libraryManufacturer) return false;
  if (sel.libraryDescription !== undefined && trim(info.libraryDescription) !== sel.libraryDescription) return false;
  if (sel.libraryVersion !== undefined) {
    const [maj, min = '0'] = sel.libraryVersion.split('.');
    if (info.libraryVersion.major !== Number(maj) || info.libraryVersion.minor !== Number(min)) return false;
  }
  return true;
}

/**
 * The one present token matching `sel`. Throws TOKEN_NOT_FOUND (listing the
 * tokens found) or TOKEN_AMBIGUOUS. A token not present is TOKEN_NOT_FOUND
 * here; the signer reports it as TOKEN_NOT_PRESENT after it had the token.
 */
export function findToken(api: Pkcs11Api, modulePath: string, sel: TokenSelector): { slot: Handle; desc: TokenDescription } {
  const all = presentTokens(api);
  const lib = libraryMatches(api, sel);
  const hits = all.filter(({ slot, desc: d }) => {
    if (!lib) return false;
    if (sel.token !== undefined && d.label !== sel.token) return false;
    if (sel.serial !== undefined && d.serial !== sel.serial) return false;
    if (sel.manufacturer !== undefined && d.manufacturer !== sel.manufacturer) return false;
    if (sel.model !== undefined && d.model !== sel.model) return false;
    if (sel.slotId !== undefined && slotNumber(slot) !== sel.slotId) return false;
    if (sel.slotDescription !== undefined && d.slotDescription !== sel.slotDescription) return false;
    if (sel.slotManufacturer !== undefined) {
      try {
        if (trim(api.C_GetSlotInfo(slot).manufacturerID) !== sel.slotManufacturer) return false;
      } catch {
        return false;
      }
    }
    return d.initialized;
  });
  const found = all.map(({ desc }) => `${tokenName(desc)}${desc.initialized ? '' : ' [not initialised]'}`);
  if (hits.length === 0)
    throw new Pkcs11DriverError(
      'TOKEN_NOT_FOUND',
      `no token matching ${selectorText(sel)} in module ${modulePath}; tokens present: ${found.length ? found.join(', ') : 'none'}`,
    );
  if (hits.length > 1)
    throw new Pkcs11DriverError('TOKEN_AMBIGUOUS', `${hits.length} tokens match ${selectorText(sel)} in module ${modulePath}: ${hits.map((h) => tokenName(h.desc)).join(', ')}; add token=, serial= or slot-id=`);
  return hits[0];
}

// ------------------------------------------------------------------ login

export interface LoginOptions {
  /** Allow the login when the token reports CKF_USER_PIN_FINAL_TRY (default false: refuse, a wrong PIN would lock it). */
  allowFinalTry?: boolean;
  /** Called right before C_Login (tests count attempts). */
  onAttempt?: () => void;
}

/**
 * Logs the user in on `session`, at most ONE C_Login call. Checks the token
 * flags first: a locked PIN is PIN_LOCKED and a final-try token PIN_FINAL_TRY
 * without any attempt. Returns false when the token needs no login.
 */
export async function login(api: Pkcs11Api, session: Handle, slot: Handle, pin: PinSource, opts: LoginOptions = {}): Promise<boolean> {
  const d = describeToken(api, slot);
  const name = tokenName(d);
  if (!d.loginRequired) return false;
  if (d.pinLocked)
    throw new Pkcs11DriverError('PIN_LOCKED', `the user PIN of token ${name} is locked (CKF_USER_PIN_LOCKED): the security officer must unlock or reset it; no login was attempted`, {
      ckr: 'CKR_PIN_LOCKED',
    });
  if (!d.userPinInitialized) throw new Pkcs11DriverError('PIN_NOT_INITIALIZED', `token ${name} has no user PIN yet: initialise it (softhsm2-util --init-token, pkcs11-tool --init-pin)`);
  if (d.pinFinalTry && !opts.allowFinalTry)
    throw new Pkcs11DriverError(
      'PIN_FINAL_TRY',
      `token ${name} allows only one more PIN attempt (CKF_USER_PIN_FINAL_TRY): the node does not spend it unattended, because a wrong PIN would lock the token. Check the PIN by hand (pkcs11-tool --login --test), then restart`,
    );
  const pinText = await readPin(pin);
  opts.onAttempt?.();
  try {
    api.C_Login(session, CKU_USER, pinText);
  } catch (e) {
    if (ckrOf(e)?.value === CKR.USER_ALREADY_LOGGED_IN) return true;
    throw loginError(e, name, describePinSource(pin));
  }
  return true;
}

// ------------------------------------------------------------------ objects

export function findObjects(api: Pkcs11Api, session: Handle, template: { type: number; value?: number | boolean | string | Buffer }[]): Handle[] {
  api.C_FindObjectsInit(session, template);
  const out: Handle[] = [];
  try {
    for (;;) {
      const batch = api.C_FindObjects(session, 64);
      if (batch.length === 0) break;
      out.push(...batch);
      if (out.length > 10_000) break;
    }
  } finally {
    api.C_FindObjectsFinal(session);
  }
  return out;
}

/** Reads attributes one call for all, falling back to one by one (missing/sensitive ones are undefined). */
export function getAttributes(api: Pkcs11Api, session: Handle, obj: Handle, types: number[]): Map<number, Buffer | undefined> {
  const out = new Map<number, Buffer | undefined>();
  try {
    for (const a of api.C_GetAttributeValue(session, obj, types.map((type) => ({ type })))) out.set(a.type, a.value as Buffer);
    return out;
  } catch (e) {
    const c = ckrOf(e);
    if (c && (c.value === CKR.ATTRIBUTE_TYPE_INVALID || c.value === CKR.ATTRIBUTE_SENSITIVE)) {
      for (const type of types) {
        try {
          out.set(type, api.C_GetAttributeValue(session, obj, [{ type }])[0].value as Buffer);
        } catch (e2) {
          const c2 = ckrOf(e2);
          if (c2 && (c2.value === CKR.ATTRIBUTE_TYPE_INVALID || c2.value === CKR.ATTRIBUTE_SENSITIVE)) out.set(type, undefined);
          else throw e2;
        }
      }
      return out;
    }
    throw e;
  }
}

const bool = (b: Buffer | undefined): boolean | undefined => (b === undefined || b.length === 0 ? undefined : b[0] !== 0);
const ulong = (b: Buffer | undefined): number | undefined => (b === undefined || b.length === 0 ? undefined : b.length >= 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0));

// ------------------------------------------------------------------ public keys

export type KeyKind = 'EC' | 'EC_EDWARDS' | 'RSA' | 'other';

function curveOfParams(params: Buffer | undefined): { name: 'P-256' | 'secp256k1' | 'Ed25519' | string; supported: boolean } {
  if (!params || params.length === 0) return { name: 'unknown curve', supported: false };
  const hex = params.toString('hex');
  if (hex === EC_PARAMS.P256) return { name: 'P-256', supported: true };
  if (hex === EC_PARAMS.secp256k1) return { name: 'secp256k1', supported: true };
  if (hex === EC_PARAMS.Ed25519 || hex === EC_PARAMS.Ed25519Name) return { name: 'Ed25519', supported: true };
  if (hex === EC_PARAMS.P384) return { name: 'P-384', supported: false };
  try {
    const t = readSingle(params);
    if (t.tag === TAG.OID) return { name: `OID ${oidToString(t.value)}`, supported: false };
    if (t.tag === TAG.PrintableString) return { name: Buffer.from(t.value).toString('latin1'), supported: false };
  } catch {
    /* fall through */
  }
  return { name: `EC params ${hex.slice(0, 40)}`, supported: false };
}

/** CKA_EC_POINT: a DER OCTET STRING (PKCS#11) holding the point; some tokens give the raw point. */
export function unwrapEcPoint(point: Uint8Array, rawLength: number): Uint8Array {
  if (point.length !== rawLength && point[0] === TAG.OCTET_STRING) {
    try {
      const t = readSingle(point, TAG.OCTET_STRING);
      if (t.value.length === rawLength) return t.value;
    } catch {
      /* not DER */
    }
  }
  if (point.length === rawLength) return point;
  throw new Pkcs11DriverError('KEY_UNSUPPORTED', `CKA_EC_POINT of ${point.length} bytes is neither a ${rawLength}-byte point nor a DER OCTET STRING holding one`);
}

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

export interface KeyDescription {
  label: string;
  id: Uint8Array;
  kind: KeyKind;
  /** Curve name, or `RSA-<bits>`. */
  curve: string;
  /** COSE alg the driver uses for this key, or null if unsupported. */
  alg: number | null;
  publicKey: CoseKey | null;
  kid: Uint8Array | null;
  /** Handle of the private key (null when only a public key object was found, e.g. before login). */
  privateHandle: Handle | null;
  publicHandle: Handle | null;
  /** Private key attributes, as read back from the token. */
  attributes: {
    token?: boolean;
    private?: boolean;
    sensitive?: boolean;
    extractable?: boolean;
    alwaysSensitive?: boolean;
    neverExtractable?: boolean;
    sign?: boolean;
    decrypt?: boolean;
    derive?: boolean;
    unwrap?: boolean;
    local?: boolean;
    alwaysAuthenticate?: boolean;
  };
  /** Why the key is unusable, when alg is null. */
  problem?: string;
  uri: string;
}

function keyName(label: string, id: Uint8Array): string {
  return `${label ? `"${label}"` : '(no label)'} id ${id.length ? toHex(id) : '-'}`;
}

function coseKeyFrom(kind: KeyKind, curve: string, parts: { point?: Uint8Array; n?: Uint8Array; e?: Uint8Array }, alg: number): CoseKey {
  const m = new Map<number, unknown>();
  if (kind === 'RSA') {
    m.set(1, 3).set(-1, stripZeros(parts.n!)).set(-2, stripZeros(parts.e!));
  } else if (curve === 'Ed25519') {
    m.set(1, 1).set(-1, 6).set(-2, unwrapEcPoint(parts.point!, 32));
  } else {
    const raw = unwrapEcPoint(parts.point!, 65);
    if (raw[0] !== 0x04) throw new Pkcs11DriverError('KEY_UNSUPPORTED', 'compressed EC points are not supported');
    m.set(1, 2).set(-1, curve === 'P-256' ? 1 : 8).set(-2, raw.subarray(1, 33)).set(-3, raw.subarray(33));
  }
  m.set(3, alg);
  return coseKeyFromMap(m, 'token public key');
}

/**
 * Describes a key from its private and/or public object: type, curve, the
 * public key as COSE_Key with kid, the driver's alg for it, and the private
 * key's security attributes.
 */
export function describeKey(api: Pkcs11Api, session: Handle, priv: Handle | null, pubHint: Handle | null, uriBase: Pkcs11Uri): KeyDescription {
  const base = priv ?? pubHint;
  if (!base) throw new Pkcs11DriverError('KEY_NOT_FOUND', 'no key object');
  const common = getAttributes(api, session, base, [CKA_LABEL, CKA_ID, CKA_KEY_TYPE, CKA_EC_PARAMS]);
  const label = common.get(CKA_LABEL)?.toString('utf8') ?? '';
  const id = new Uint8Array(common.get(CKA_ID) ?? Buffer.alloc(0));
  const kt = ulong(common.get(CKA_KEY_TYPE));
  const kind: KeyKind = kt === CKK_EC ? 'EC' : kt === CKK_EC_EDWARDS ? 'EC_EDWARDS' : kt === CKK_RSA ? 'RSA' : 'other';
  const attributes: KeyDescription['attributes'] = {};
  if (priv) {
    const a = getAttributes(api, session, priv, [
      CKA_TOKEN,
      CKA_PRIVATE,
      CKA_SENSITIVE,
      CKA_EXTRACTABLE,
      CKA_ALWAYS_SENSITIVE,
      CKA_NEVER_EXTRACTABLE,
      CKA_SIGN,
      CKA_DECRYPT,
      CKA_DERIVE,
      CKA_UNWRAP,
      CKA_LOCAL,
      CKA_ALWAYS_AUTHENTICATE,
    ]);
    Object.assign(attributes, {
      token: bool(a.get(CKA_TOKEN)),
      private: bool(a.get(CKA_PRIVATE)),
      sensitive: bool(a.get(CKA_SENSITIVE)),
      extractable: bool(a.get(CKA_EXTRACTABLE)),
      alwaysSensitive: bool(a.get(CKA_ALWAYS_SENSITIVE)),
      neverExtractable: bool(a.get(CKA_NEVER_EXTRACTABLE)),
      sign: bool(a.get(CKA_SIGN)),
      decrypt: bool(a.get(CKA_DECRYPT)),
      derive: bool(a.get(CKA_DERIVE)),
      unwrap: bool(a.get(CKA_UNWRAP)),
      local: bool(a.get(CKA_LOCAL)),
      alwaysAuthenticate: bool(a.get(CKA_ALWAYS_AUTHENTICATE)),
    });
    for (const k of Object.keys(attributes) as (keyof typeof attributes)[]) if (attributes[k] === undefined) delete attributes[k];
  }
  const uri = formatPkcs11Uri({ ...uriBase, object: label || undefined, id: id.length ? id : undefined, type: priv ? 'private' : 'public' });
  const desc: KeyDescription = { label, id, kind, curve: '', alg: null, publicKey: null, kid: null, privateHandle: priv, publicHandle: null, attributes, uri };

  // The curve / size and the alg.
  let alg: number | null = null;
  if (kind === 'EC' || kind === 'EC_EDWARDS') {
    const c = curveOfParams(common.get(CKA_EC_PARAMS));
    desc.curve = c.name;
    if (!c.supported) desc.problem = `curve ${c.name} is not supported (P-256, secp256k1, Ed25519)`;
    else alg = c.name === 'Ed25519' ? ALG.EdDSA : c.name === 'P-256' ? ALG.ES256 : ALG.ES256K;
  } else if (kind === 'RSA') {
    alg = ALG.PS256;
  } else {
    desc.curve = `key type 0x${(kt ?? -1).toString(16)}`;
    desc.problem = `key type ${desc.curve} is not supported (EC, EC_EDWARDS, RSA)`;
  }

  // The public key: the public object with the same CKA_ID (else label), else the private object's own attributes.
  let pub = pubHint;
  if (!pub && priv) {
    const tmpl = id.length ? [{ type: CKA_CLASS, value: CKO_PUBLIC_KEY }, { type: CKA_ID, value: Buffer.from(id) }] : [{ type: CKA_CLASS, value: CKO_PUBLIC_KEY }, { type: CKA_LABEL, value: label }];
    const cands = findObjects(api, session, tmpl);
    if (cands.length === 1) pub = cands[0];
  }
  desc.publicHandle = pub;
  try {
    if (alg !== null) {
      let key: CoseKey | null = null;
      if (kind === 'RSA') {
        const src = pub ?? priv!;
        const a = getAttributes(api, session, src, [CKA_MODULUS, CKA_PUBLIC_EXPONENT]);
        const n = a.get(CKA_MODULUS);
        const e = a.get(CKA_PUBLIC_EXPONENT);
        if (n && e) key = coseKeyFrom(kind, '', { n, e }, alg);
        if (key && key.kty === 3) desc.curve = `RSA-${(stripZeros(key.n).length * 8) | 0}`;
      } else if (pub) {
        const point = getAttributes(api, session, pub, [CKA_EC_POINT]).get(CKA_EC_POINT);
        if (point) key = coseKeyFrom(kind, desc.curve, { point }, alg);
      }
      if (!key && priv) {
        const info = getAttributes(api, session, priv, [CKA_PUBLIC_KEY_INFO]).get(CKA_PUBLIC_KEY_INFO);
        if (info && info.length) key = coseKeyFromSpki(info, alg);
      }
      if (!key) desc.problem = 'no public key found on the token for this private key (no public key object with the same id or label)';
      else {
        desc.publicKey = key;
        desc.kid = thumbprint(key);
        desc.alg = alg;
      }
    }
  } catch (e) {
    desc.problem = `unusable public key: ${(e as Error).message}`;
  }
  return desc;
}

function coseKeyFromSpki(spki: Buffer, alg: number): CoseKey {
  const jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' }) as Record<string, string>;
  const b = (v: string) => new Uint8Array(Buffer.from(v, 'base64url'));
  const m = new Map<number, unknown>();
  if (jwk.kty === 'EC') m.set(1, 2).set(-1, jwk.crv === 'P-256' ? 1 : 8).set(-2, b(jwk.x)).set(-3, b(jwk.y));
  else if (jwk.kty === 'OKP') m.set(1, 1).set(-1, 6).set(-2, b(jwk.x));
  else m.set(1, 3).set(-1, b(jwk.n)).set(-2, b(jwk.e));
  m.set(3, alg);
  return coseKeyFromMap(m, 'CKA_PUBLIC_KEY_INFO');
}

/** Private keys matching `sel` (CKO_PRIVATE_KEY + label/id). */
export function findPrivateKeys(api: Pkcs11Api, session: Handle, sel: KeySelector): Handle[] {
  const tmpl: { type: number; value: number | string | Buffer }[] = [{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }];
  if (sel.label !== undefined) tmpl.push({ type: CKA_LABEL, value: sel.label });
  if (sel.id !== undefined) tmpl.push({ type: CKA_ID, value: Buffer.from(sel.id) });
  return findObjects(api, session, tmpl);
}

/** All keys on the token visible to `session`: private keys with their public halves, then public keys without a private one. */
export function listKeys(api: Pkcs11Api, session: Handle, uriBase: Pkcs11Uri): KeyDescription[] {
  const out: KeyDescription[] = [];
  const usedPublic = new Set<string>();
  for (const priv of findObjects(api, session, [{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }])) {
    const d = describeKey(api, session, priv, null, uriBase);
    if (d.publicHandle) usedPublic.add(d.publicHandle.toString('hex'));
    out.push(d);
  }
  for (const pub of findObjects(api, session, [{ type: CKA_CLASS, value: CKO_PUBLIC_KEY }])) {
    if (usedPublic.has(pub.toString('hex'))) continue;
    out.push(describeKey(api, session, null, pub, uriBase));
  }
  return out;
}

function keySelectorText(sel: KeySelector): string {
  const p: string[] = [];
  if (sel.label !== undefined) p.push(`label ${JSON.stringify(sel.label)}`);
  if (sel.id !== undefined) p.push(`id ${toHex(sel.id)}`);
  return p.length ? p.join(' and ') : '(any key)';
}

/**
 * The one usable private key matching `sel`, described. Throws KEY_NOT_FOUND
 * (listing the keys that are there), KEY_AMBIGUOUS or KEY_UNSUPPORTED.
 */
export function findKey(api: Pkcs11Api, session: Handle, sel: KeySelector, token: TokenDescription, uriBase: Pkcs11Uri): KeyDescription {
  let hits: Handle[];
  try {
    hits = findPrivateKeys(api, session, sel);
  } catch (e) {
    throw deviceError(e, `searching keys on token ${tokenName(token)}`);
  }
  if (hits.length === 0) {
    let found = 'none';
    try {
      const all = listKeys(api, session, uriBase);
      if (all.length) found = all.map((k) => `${k.privateHandle ? 'private' : 'public'} ${keyName(k.label, k.id)}${k.alg !== null ? ` ${algName(k.alg)}` : ''}`).join(', ');
    } catch {
      found = '(could not list)';
    }
    throw new Pkcs11DriverError('KEY_NOT_FOUND', `no private key with ${keySelectorText(sel)} on token ${tokenName(token)}; keys found: ${found}`);
  }
  if (hits.length > 1) {
    const names = hits.map((h) => {
      const a = getAttributes(api, session, h, [CKA_LABEL, CKA_ID]);
      return keyName(a.get(CKA_LABEL)?.toString('utf8') ?? '', new Uint8Array(a.get(CKA_ID) ?? Buffer.alloc(0)));
    });
    throw new Pkcs11DriverError('KEY_AMBIGUOUS', `${hits.length} private keys match ${keySelectorText(sel)} on token ${tokenName(token)}: ${names.join(', ')}; select one by id (id= in the URI, --id)`);
  }
  const d = describeKey(api, session, hits[0], null, uriBase);
  if (d.alg === null || !d.publicKey) throw new Pkcs11DriverError('KEY_UNSUPPORTED', `key ${keyName(d.label, d.id)} on token ${tokenName(token)} cannot be used: ${d.problem}`);
  if (d.attributes.sign === false) throw new Pkcs11DriverError('KEY_UNSUPPORTED', `key ${keyName(d.label, d.id)} on token ${tokenName(token)} may not sign (CKA_SIGN is false)`);
  if (d.attributes.alwaysAuthenticate === true)
    throw new Pkcs11DriverError(
      'KEY_UNSUPPORTED',
      `key ${keyName(d.label, d.id)} on token ${tokenName(token)} needs the PIN again for every signature (CKA_ALWAYS_AUTHENTICATE, e.g. YubiKey PIV slot 9c): an unattended node cannot do that without keeping the PIN; use a key without it (PIV slot 9a or 9d)`,
    );
  return d;
}

// ------------------------------------------------------------------ mechanisms

export interface SignMechanism {
  mechanism: number;
  /** Hash the data with SHA-256 in software before the token signs it. */
  prehash: boolean;
  /** RSA-PSS parameters (pkcs11js form) when needed. */
  pss: boolean;
}

function mechanismFlags(api: Pkcs11Api, slot: Handle, mech: number): number | undefined {
  let list: number[];
  try {
    list = api.C_GetMechanismList(slot);
  } catch (e) {
    throw deviceError(e, 'C_GetMechanismList');
  }
  if (!list.includes(mech)) return undefined;
  try {
    return api.C_GetMechanismInfo(slot, mech).flags;
  } catch {
    return 0;
  }
}

/** The signing mechanism for `alg` on this token, or MECHANISM_UNSUPPORTED naming what is missing. */
export function signMechanism(api: Pkcs11Api, slot: Handle, alg: number, token: TokenDescription): SignMechanism {
  const has = (m: number) => {
    const f = mechanismFlags(api, slot, m);
    return f !== undefined && (f === 0 || (f & CKF_SIGN) !== 0);
  };
  switch (alg) {
    case ALG.ES256:
    case ALG.ES256K:
      if (has(CKM_ECDSA)) return { mechanism: CKM_ECDSA, prehash: true, pss: false };
      break;
    case ALG.EdDSA:
      if (has(CKM_EDDSA)) return { mechanism: CKM_EDDSA, prehash: false, pss: false };
      break;
    case ALG.PS256:
      if (has(CKM_RSA_PKCS_PSS)) return { mechanism: CKM_RSA_PKCS_PSS, prehash: true, pss: true };
      if (has(CKM_SHA256_RSA_PKCS_PSS)) return { mechanism: CKM_SHA256_RSA_PKCS_PSS, prehash: false, pss: true };
      break;
  }
  const want = alg === ALG.PS256 ? 'CKM_RSA_PKCS_PSS or CKM_SHA256_RSA_PKCS_PSS' : alg === ALG.EdDSA ? 'CKM_EDDSA (0x1057)' : 'CKM_ECDSA';
  throw new Pkcs11DriverError('MECHANISM_UNSUPPORTED', `token ${tokenName(token)} does not offer ${want} for signing, needed for ${algName(alg)}`, { ckr: 'CKR_MECHANISM_INVALID' });
}

// ------------------------------------------------------------------ key generation

export interface GenerateKeyOptions {
  /** ES256 (-7), EdDSA (-8, Ed25519), PS256 (-37) or ES256K (-47). */
  alg: number;
  /** CKA_LABEL of both halves. */
  label: string;
  /** CKA_ID (default: 16 random bytes). */
  id?: Uint8Array;
  /** RSA modulus bits (default 3072). */
  rsaBits?: number;
}

/**
 * Generates a key pair ON the token: private key CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE true, CKA_EXTRACTABLE false, sign only (no decrypt, derive,
 * unwrap). Reads the attributes back and destroys the pair if the token did
 * not honour them (KEY_ATTRIBUTES). Needs a R/W session, logged in.
 */
export function generateKeyPair(api: Pkcs11Api, session: Handle, slot: Handle, token: TokenDescription, opts: GenerateKeyOptions, uriBase: Pkcs11Uri): KeyDescription {
  const label = opts.label;
  if (typeof label !== 'string' || label.length === 0 || Buffer.byteLength(label) > 128) throw new Pkcs11DriverError('KEY_UNSUPPORTED', 'the key label must be 1..128 bytes', { code: 'USAGE' });
  const id = opts.id ?? new Uint8Array(randomBytes(16));
  const clash = [
    ...findObjects(api, session, [{ type: CKA_LABEL, value: label }]),
    ...(id.length ? findObjects(api, session, [{ type: CKA_ID, value: Buffer.from(id) }]) : []),
  ];
  if (clash.length)
    throw new Pkcs11DriverError(
      'KEY_EXISTS',
      `token ${tokenName(token)} already holds an object with label ${JSON.stringify(label)} or id ${toHex(id)}: choose another --label/--id (keys are never replaced; delete the old one with pkcs11-tool --delete-object if you mean it)`,
    );
  let genMech: number;
  const pubT: { type: number; value: number | boolean | string | Buffer }[] = [
    { type: CKA_CLASS, value: CKO_PUBLIC_KEY },
    { type: CKA_TOKEN, value: true },
    { type: CKA_PRIVATE, value: false },
    { type: CKA_VERIFY, value: true },
    { type: CKA_ENCRYPT, value: false },
    { type: CKA_WRAP, value: false },
    { type: CKA_LABEL, value: label },
    { type: CKA_ID, value: Buffer.from(id) },
  ];
  const privT: { type: number; value: number | boolean | string | Buffer }[] = [
    { type: CKA_CLASS, value: CKO_PRIVATE_KEY },
    { type: CKA_TOKEN, value: true },
    { type: CKA_PRIVATE, value: true },
    { type: CKA_SENSITIVE, value: true },
    { type: CKA_EXTRACTABLE, value: false },
    { type: CKA_SIGN, value: true },
    { type: CKA_SIGN_RECOVER, value: false },
    { type: CKA_DECRYPT, value: false },
    { type: CKA_UNWRAP, value: false },
    { type: CKA_DERIVE, value: false },
    { type: CKA_LABEL, value: label },
    { type: CKA_ID, value: Buffer.from(id) },
  ];
  let paramsChoices: Buffer[] = [Buffer.alloc(0)];
  switch (opts.alg) {
    case ALG.ES256:
    case ALG.ES256K:
      genMech = CKM_EC_KEY_PAIR_GEN;
      pubT.push({ type: CKA_KEY_TYPE, value: CKK_EC });
      privT.push({ type: CKA_KEY_TYPE, value: CKK_EC });
      paramsChoices = [Buffer.from(opts.alg === ALG.ES256 ? EC_PARAMS.P256 : EC_PARAMS.secp256k1, 'hex')];
      break;
    case ALG.EdDSA:
      genMech = CKM_EC_EDWARDS_KEY_PAIR_GEN;
      pubT.push({ type: CKA_KEY_TYPE, value: CKK_EC_EDWARDS });
      privT.push({ type: CKA_KEY_TYPE, value: CKK_EC_EDWARDS });
      // RFC 8410 OID first; PKCS#11 3.0 also allows the curve name.
      paramsChoices = [Buffer.from(EC_PARAMS.Ed25519, 'hex'), Buffer.from(EC_PARAMS.Ed25519Name, 'hex')];
      break;
    case ALG.PS256: {
      genMech = CKM_RSA_PKCS_KEY_PAIR_GEN;
      const bits = opts.rsaBits ?? 3072;
      if (!Number.isSafeInteger(bits) || bits < 2048 || bits > 8192 || bits % 8 !== 0) throw new Pkcs11DriverError('KEY_UNSUPPORTED', 'RSA key size must be 2048..8192 bits, a multiple of 8', { code: 'USAGE' });
      pubT.push({ type: CKA_KEY_TYPE, value: CKK_RSA }, { type: CKA_MODULUS_BITS, value: bits }, { type: CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) });
      privT.push({ type: CKA_KEY_TYPE, value: CKK_RSA });
      break;
    }
    default:
      throw new Pkcs11DriverError('KEY_UNSUPPORTED', `cannot generate keys for ${algName(opts.alg)} (use ES256, EdDSA, PS256 or ES256K)`, { code: 'USAGE' });
  }
  const f = mechanismFlags(api, slot, genMech);
  if (f === undefined || (f !== 0 && (f & CKF_GENERATE_KEY_PAIR) === 0))
    throw new Pkcs11DriverError('MECHANISM_UNSUPPORTED', `token ${tokenName(token)} cannot generate ${algName(opts.alg)} key pairs (${mechanismName(genMech)} not offered)`, { ckr: 'CKR_MECHANISM_INVALID' });
  signMechanism(api, slot, opts.alg, token); // refuse keys the token could not sign with

  // Generate with the security attributes (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE,
  // checked below) and sign/verify; then restrict the usage (no decrypt, unwrap, derive …) with
  // C_SetAttributeValue where the token allows it. Usage is not put in the generation template
  // because some tokens fix it themselves and refuse the whole template (a TPM makes every key
  // sign+decrypt+derive; tpm2-pkcs11 then fails with CKR_GENERAL_ERROR and leaks a TPM object).
  const USAGE_ONLY = new Set([CKA_ENCRYPT, CKA_WRAP, CKA_SIGN_RECOVER, CKA_DECRYPT, CKA_UNWRAP, CKA_DERIVE]);
  const genPub = pubT.filter((a) => !USAGE_ONLY.has(a.type));
  const genPriv = privT.filter((a) => !USAGE_ONLY.has(a.type));
  let pair: { publicKey: Handle; privateKey: Handle } | undefined;
  let lastErr: unknown;
  for (const params of paramsChoices) {
    const pubTmpl = params.length ? [...genPub, { type: CKA_EC_PARAMS, value: params }] : genPub;
    try {
      pair = api.C_GenerateKeyPair(session, { mechanism: genMech }, pubTmpl, genPriv);
      break;
    } catch (e) {
      lastErr = e;
      const c = ckrOf(e);
      const paramProblem = c && [CKR.ATTRIBUTE_VALUE_INVALID, CKR.DOMAIN_PARAMS_INVALID, CKR.CURVE_NOT_SUPPORTED, CKR.TEMPLATE_INCONSISTENT].includes(c.value as never);
      if (!paramProblem) break;
    }
  }
  if (pair) {
    for (const [obj, tmpl] of [
      [pair.privateKey, privT],
      [pair.publicKey, pubT],
    ] as const)
      for (const a of tmpl.filter((x) => USAGE_ONLY.has(x.type)))
        try {
          api.C_SetAttributeValue(session, obj, [a]);
        } catch {
          /* the token fixes this usage itself: reported as it is */
        }
  }
  if (!pair) {
    const c = ckrOf(lastErr);
    if (c && [CKR.DOMAIN_PARAMS_INVALID, CKR.CURVE_NOT_SUPPORTED].includes(c.value as never))
      throw new Pkcs11DriverError('MECHANISM_UNSUPPORTED', `token ${tokenName(token)} does not support the curve for ${algName(opts.alg)} (${c.name})`, { ckr: c.name, cause: lastErr });
    throw deviceError(lastErr, `generating a ${algName(opts.alg)} key pair on token ${tokenName(token)}`);
  }
  const d = describeKey(api, session, pair.privateKey, pair.publicKey, uriBase);
  const a = d.attributes;
  const bad: string[] = [];
  if (a.sensitive !== true) bad.push('CKA_SENSITIVE is not true');
  if (a.extractable !== false) bad.push('CKA_EXTRACTABLE is not false');
  if (a.token !== true) bad.push('CKA_TOKEN is not true');
  if (a.private !== true) bad.push('CKA_PRIVATE is not true');
  if (bad.length || d.alg !== opts.alg || !d.publicKey) {
    for (const h of [pair.privateKey, pair.publicKey])
      try {
        api.C_DestroyObject(session, h);
      } catch {
        /* best effort */
      }
    if (bad.length) throw new Pkcs11DriverError('KEY_ATTRIBUTES', `token ${tokenName(token)} did not honour the key attributes (${bad.join(', ')}); the key pair was destroyed`);
    throw new Pkcs11DriverError('KEY_UNSUPPORTED', `the generated key cannot be used: ${d.problem ?? 'unexpected key type'}; the key pair was destroyed`);
  }
  return d;
}

// ------------------------------------------------------------------ an open token (CLI operations)

export interface TokenOpenOptions extends Pkcs11Selection {
  /** Log in: true (PIN required), false, or 'if-pin' (when a PIN source is available). Default true. */
  login?: boolean | 'if-pin';
  /** Open a read/write session (key generation). */
  rw?: boolean;
  allowFinalPinTry?: boolean;
  /** Wraps the module API (fault-injection tests). */
  wrapApi?: (api: Pkcs11Api) => Pkcs11Api;
}

/** A token with one session open on it, for provisioning and inspection (`iscm-edge keys`). */
export class Pkcs11Token {
  readonly module: ModuleHandle;
  readonly api: Pkcs11Api;
  readonly slot: Handle;
  readonly desc: TokenDescription;
  readonly session: Handle;
  readonly loggedIn: boolean;
  readonly selection: ResolvedSelection;
  #closed = false;

  private constructor(module: ModuleHandle, api: Pkcs11Api, slot: Handle, desc: TokenDescription, session: Handle, loggedIn: boolean, selection: ResolvedSelection) {
    this.module = module;
    this.api = api;
    this.slot = slot;
    this.desc = desc;
    this.session = session;
    this.loggedIn = loggedIn;
    this.selection = selection;
  }

  static async open(opts: TokenOpenOptions): Promise<Pkcs11Token> {
    const sel = resolveSelection(opts);
    const module = await acquireModule(sel.modulePath);
    let session: Handle | undefined;
    const api = opts.wrapApi ? opts.wrapApi(module.api) : module.api;
    try {
      const { slot, desc } = findToken(api, module.path, sel.token);
      try {
        session = api.C_OpenSession(slot, CKF_SERIAL_SESSION | (opts.rw ? CKF_RW_SESSION : 0));
      } catch (e) {
        throw deviceError(e, `opening a session on token ${tokenName(desc)}`);
      }
      const want = opts.login ?? true;
      const pinAvailable = sel.pin.pinFile !== undefined || ((sel.pin.env ?? process.env)[sel.pin.pinEnv ?? 'ISCM_PKCS11_PIN'] ?? '') !== '';
      let loggedIn = false;
      if (want === true || (want === 'if-pin' && pinAvailable)) loggedIn = await login(api, session, slot, sel.pin, { allowFinalTry: opts.allowFinalPinTry });
      return new Pkcs11Token(module, api, slot, desc, session, loggedIn, sel);
    } catch (e) {
      if (session)
        try {
          api.C_CloseSession(session);
        } catch {
          /* ignore */
        }
      await releaseModule(module);
      throw e;
    }
  }

  get uriBase(): Pkcs11Uri {
    return { token: this.desc.label, manufacturer: this.desc.manufacturer, serial: this.desc.serial, model: this.desc.model };
  }

  listKeys(): KeyDescription[] {
    try {
      return listKeys(this.api, this.session, this.uriBase);
    } catch (e) {
      throw deviceError(e, `listing keys on token ${tokenName(this.desc)}`);
    }
  }

  /** The key the selection names (KEY_NOT_FOUND / KEY_AMBIGUOUS / KEY_UNSUPPORTED otherwise). */
  findKey(sel: KeySelector = this.selection.key): KeyDescription {
    return findKey(this.api, this.session, sel, this.desc, this.uriBase);
  }

  /** Public keys matching the selection, when not logged in (only public objects are visible). */
  findPublicKey(sel: KeySelector = this.selection.key): KeyDescription {
    const tmpl: { type: number; value: number | string | Buffer }[] = [{ type: CKA_CLASS, value: CKO_PUBLIC_KEY }];
    if (sel.label !== undefined) tmpl.push({ type: CKA_LABEL, value: sel.label });
    if (sel.id !== undefined) tmpl.push({ type: CKA_ID, value: Buffer.from(sel.id) });
    const hits = findObjects(this.api, this.session, tmpl);
    if (hits.length === 0) throw new Pkcs11DriverError('KEY_NOT_FOUND', `no public key with ${keySelectorText(sel)} on token ${tokenName(this.desc)} (log in with a PIN to see private keys)`);
    if (hits.length > 1) throw new Pkcs11DriverError('KEY_AMBIGUOUS', `${hits.length} public keys match ${keySelectorText(sel)} on token ${tokenName(this.desc)}; select one by id`);
    return describeKey(this.api, this.session, null, hits[0], this.uriBase);
  }

  generateKeyPair(opts: GenerateKeyOptions): KeyDescription {
    return generateKeyPair(this.api, this.session, this.slot, this.desc, opts, this.uriBase);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.api.C_CloseSession(this.session);
    } catch {
      /* ignore */
    }
    await releaseModule(this.module);
  }
}

/** The tokens present in a module (no login). */
export async function listTokens(modulePath: string): Promise<TokenDescription[]> {
  const module = await acquireModule(modulePath);
  try {
    return presentTokens(module.api).map((t) => t.desc);
  } finally {
    await releaseModule(module);
  }
}
