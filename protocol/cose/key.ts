// COSE_Key (RFC 9052 §7, RFC 9053 §7) for public keys, and the RFC 9679 COSE
// Key Thumbprint that is the batch `kid` (ARCHITECTURE §4.2).
//
// Only public keys travel on the wire: a COSE_Key map carrying a private
// parameter (OKP/EC2 `d` = -4, RSA -3 … -12) is refused with KEY_INVALID.
//
// Supported key types (all with integer labels):
//   OKP  {1: 1, -1: crv (6 Ed25519 | 7 Ed448), -2: x}
//   EC2  {1: 2, -1: crv (1 P-256 | 2 P-384 | 3 P-521 | 8 secp256k1), -2: x, -3: y}
//        x and y are fixed-width big-endian (leading zeros kept, RFC 9053 §7.1.1);
//        compressed points (y = true/false) are not supported.
//   RSA  {1: 3, -1: n, -2: e}  (RFC 8230 §4; n ≥ 2048 bits, no leading zero bytes)
// plus the optional common parameters 2 (kid, bstr) and 3 (alg, int). Any other
// label is refused: the device registry and event proofs hold keys we produced.
//
// A CoseKey is a frozen plain object. Treat its byte arrays as immutable: the
// node KeyObject made from it is cached, per object and (bounded) per key
// content, because createPublicKey costs about twice a P-256 verification.
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { decode, encode } from '../cbor.js';
import { sha256 } from '../bytes.js';
import { CborError, VerifyError } from '../errors.js';

export const KTY = { OKP: 1, EC2: 2, RSA: 3 } as const;
export const CRV = { P256: 1, P384: 2, P521: 3, Ed25519: 6, Ed448: 7, secp256k1: 8 } as const;
/** COSE_Key labels (RFC 9052 §7.1, RFC 9053 §7, RFC 8230 §4). */
export const KEY_LABEL = { kty: 1, kid: 2, alg: 3, crv: -1, x: -2, y: -3, n: -1, e: -2 } as const;

export type OkpCrv = 6 | 7;
export type Ec2Crv = 1 | 2 | 3 | 8;

interface KeyCommon {
  /** Optional key identifier (label 2). Not part of the thumbprint. */
  readonly kid?: Uint8Array;
  /** Optional algorithm the key is restricted to (label 3). Not part of the thumbprint. */
  readonly alg?: number;
}
export interface OkpKey extends KeyCommon {
  readonly kty: 1;
  readonly crv: OkpCrv;
  readonly x: Uint8Array;
}
export interface Ec2Key extends KeyCommon {
  readonly kty: 2;
  readonly crv: Ec2Crv;
  readonly x: Uint8Array;
  readonly y: Uint8Array;
}
export interface RsaKey extends KeyCommon {
  readonly kty: 3;
  readonly n: Uint8Array;
  readonly e: Uint8Array;
}
/** A public COSE_Key, decoded and validated. */
export type CoseKey = OkpKey | Ec2Key | RsaKey;

interface CurveInfo {
  readonly name: string; // JWK / RFC 9053 name
  readonly size: number; // coordinate (or OKP public key) length in bytes
}
const OKP_CURVES: Record<OkpCrv, CurveInfo> = {
  6: { name: 'Ed25519', size: 32 },
  7: { name: 'Ed448', size: 57 },
};
const EC2_CURVES: Record<Ec2Crv, CurveInfo> = {
  1: { name: 'P-256', size: 32 },
  2: { name: 'P-384', size: 48 },
  3: { name: 'P-521', size: 66 },
  8: { name: 'secp256k1', size: 32 },
};
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 16384;

/** Name of a COSE curve id (e.g. 1 → "P-256"), or `crv <id>` if unknown. */
export function curveName(crv: number): string {
  return (OKP_CURVES as Record<number, CurveInfo>)[crv]?.name ?? (EC2_CURVES as Record<number, CurveInfo>)[crv]?.name ?? `crv ${crv}`;
}

function keyError(field: string, message: string): VerifyError {
  return new VerifyError('KEY_INVALID', `${field}: ${message}`, field);
}

function kbytes(v: unknown, field: string, length?: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw keyError(field, 'expected a byte string');
  if (length !== undefined && v.length !== length) throw keyError(field, `expected ${length} bytes, got ${v.length}`);
  return v;
}

function kint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw keyError(field, 'expected an integer');
  return v;
}

function copy(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

function bitLength(b: Uint8Array): number {
  if (b.length === 0) return 0;
  return (b.length - 1) * 8 + (32 - Math.clz32(b[0]));
}

function checkRsa(n: Uint8Array, e: Uint8Array, field: string): void {
  if (n.length === 0 || n[0] === 0) throw keyError(`${field}.n`, 'modulus must be a positive big-endian integer without leading zero bytes');
  if (e.length === 0 || e[0] === 0) throw keyError(`${field}.e`, 'exponent must be a positive big-endian integer without leading zero bytes');
  if (e.length > 8) throw keyError(`${field}.e`, `exponent of ${e.length} bytes is not supported`);
  const bits = bitLength(n);
  if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) throw keyError(`${field}.n`, `RSA modulus of ${bits} bits; ${RSA_MIN_BITS}..${RSA_MAX_BITS} required`);
  if ((n[n.length - 1] & 1) === 0 || (e[e.length - 1] & 1) === 0) throw keyError(field, 'RSA modulus and exponent must be odd');
}

function freezeKey<T extends CoseKey>(k: T): T {
  // Drop undefined optionals so two equal keys compare and print the same.
  const o = k as unknown as Record<string, unknown>;
  for (const name of ['kid', 'alg']) if (o[name] === undefined) delete o[name];
  return Object.freeze(k);
}

// ------------------------------------------------------------------ COSE_Key map

export interface KeyDecodeOptions {
  /** Also import the key into node:crypto, which checks that an EC point is on its curve (default true). */
  validate?: boolean;
}

/**
 * Validates a decoded COSE_Key map (integer labels) and returns a CoseKey.
 * Throws VerifyError('KEY_INVALID') naming the offending field.
 */
export function coseKeyFromMap(m: unknown, field = 'cose_key', opts: KeyDecodeOptions = {}): CoseKey {
  if (!(m instanceof Map)) throw keyError(field, 'expected a map');
  const kty = m.get(KEY_LABEL.kty);
  if (kty === undefined) throw keyError(`${field}.1`, 'kty is missing');
  if (kty !== KTY.OKP && kty !== KTY.EC2 && kty !== KTY.RSA)
    throw keyError(`${field}.1`, `unsupported kty ${typeof kty === 'number' || typeof kty === 'string' ? JSON.stringify(kty) : typeof kty}`);
  const allowed = kty === KTY.OKP ? [1, 2, 3, -1, -2] : kty === KTY.EC2 ? [1, 2, 3, -1, -2, -3] : [1, 2, 3, -1, -2];
  const privateLabels = kty === KTY.RSA ? [-3, -4, -5, -6, -7, -8, -9, -10, -11, -12] : [-4];
  for (const label of m.keys()) {
    if (privateLabels.includes(label as number)) throw keyError(`${field}.${label}`, 'private key parameters are not allowed');
    if (!allowed.includes(label as number)) throw keyError(field, `unsupported label ${JSON.stringify(label)}`);
  }
  const common: { kid?: Uint8Array; alg?: number } = {};
  if (m.has(KEY_LABEL.kid)) common.kid = copy(kbytes(m.get(KEY_LABEL.kid), `${field}.2`));
  if (m.has(KEY_LABEL.alg)) common.alg = kint(m.get(KEY_LABEL.alg), `${field}.3`);

  let key: CoseKey;
  if (kty === KTY.OKP) {
    const crv = kint(m.get(-1), `${field}.-1`);
    const info = (OKP_CURVES as Record<number, CurveInfo>)[crv];
    if (!info) throw keyError(`${field}.-1`, `unsupported OKP curve ${crv}`);
    const x = kbytes(m.get(-2), `${field}.-2`, info.size);
    key = freezeKey<OkpKey>({ kty: 1, crv: crv as OkpCrv, x: copy(x), ...common });
  } else if (kty === KTY.EC2) {
    const crv = kint(m.get(-1), `${field}.-1`);
    const info = (EC2_CURVES as Record<number, CurveInfo>)[crv];
    if (!info) throw keyError(`${field}.-1`, `unsupported EC2 curve ${crv}`);
    const x = kbytes(m.get(-2), `${field}.-2`, info.size);
    const yv = m.get(-3);
    if (typeof yv === 'boolean') throw keyError(`${field}.-3`, 'compressed EC points are not supported');
    const y = kbytes(yv, `${field}.-3`, info.size);
    key = freezeKey<Ec2Key>({ kty: 2, crv: crv as Ec2Crv, x: copy(x), y: copy(y), ...common });
  } else {
    const n = kbytes(m.get(-1), `${field}.-1`);
    const e = kbytes(m.get(-2), `${field}.-2`);
    checkRsa(n, e, field);
    key = freezeKey<RsaKey>({ kty: 3, n: copy(n), e: copy(e), ...common });
  }
  if (opts.validate ?? true) coseKeyToKeyObject(key, field);
  return key;
}

/** The COSE_Key as a CBOR map with integer labels (public parameters, kid and alg when set). */
export function coseKeyToMap(key: CoseKey): Map<number, unknown> {
  const m = new Map<number, unknown>();
  m.set(KEY_LABEL.kty, key.kty);
  if (key.kid !== undefined) m.set(KEY_LABEL.kid, key.kid);
  if (key.alg !== undefined) m.set(KEY_LABEL.alg, key.alg);
  switch (key.kty) {
    case KTY.OKP:
      m.set(-1, key.crv);
      m.set(-2, key.x);
      break;
    case KTY.EC2:
      m.set(-1, key.crv);
      m.set(-2, key.x);
      m.set(-3, key.y);
      break;
    case KTY.RSA:
      m.set(-1, key.n);
      m.set(-2, key.e);
      break;
  }
  return m;
}

/** Deterministic CBOR encoding of the COSE_Key. */
export function encodeCoseKey(key: CoseKey): Uint8Array {
  return encode(coseKeyToMap(key));
}

/**
 * Decodes a COSE_Key from CBOR bytes. `canonical` (default true) requires
 * deterministic encoding, as for every structure of this protocol.
 */
export function decodeCoseKey(bytes: Uint8Array, opts: KeyDecodeOptions & { canonical?: boolean } = {}): CoseKey {
  let m: unknown;
  try {
    m = decode(bytes, { canonical: opts.canonical ?? true, maxBytes: 8192 });
  } catch (e) {
    if (e instanceof CborError) throw new VerifyError('KEY_INVALID', `cose_key: malformed CBOR (${e.message})`, 'cose_key');
    throw e;
  }
  return coseKeyFromMap(m, 'cose_key', opts);
}

// ------------------------------------------------------------------ thumbprint

/**
 * The bytes RFC 9679 hashes: the deterministic encoding of ONLY the required
 * parameters (OKP {1,-1,-2}, EC2 {1,-1,-2,-3}, RSA {1,-1,-2}); kid, alg and
 * anything else are left out.
 */
export function thumbprintInput(key: CoseKey): Uint8Array {
  const m = new Map<number, unknown>([[KEY_LABEL.kty, key.kty]]);
  switch (key.kty) {
    case KTY.OKP:
      m.set(-1, key.crv).set(-2, key.x);
      break;
    case KTY.EC2:
      m.set(-1, key.crv).set(-2, key.x).set(-3, key.y);
      break;
    case KTY.RSA:
      m.set(-1, key.n).set(-2, key.e);
      break;
  }
  return encode(m);
}

/** RFC 9679 COSE Key Thumbprint with SHA-256 (32 bytes): the batch `kid`. */
export function thumbprint(key: CoseKey): Uint8Array {
  return sha256(thumbprintInput(key));
}

/** True when both keys are the same public key (kid/alg ignored). */
export function sameKey(a: CoseKey, b: CoseKey): boolean {
  const ta = thumbprintInput(a);
  const tb = thumbprintInput(b);
  if (ta.length !== tb.length) return false;
  for (let i = 0; i < ta.length; i++) if (ta[i] !== tb[i]) return false;
  return true;
}

// ------------------------------------------------------------------ JWK

const B64URL = /^[A-Za-z0-9_-]*$/;
function b64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64url');
}
function fromB64u(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string' || !B64URL.test(v) || v.length % 4 === 1) throw keyError(field, 'expected unpadded base64url text');
  return new Uint8Array(Buffer.from(v, 'base64url'));
}
function fromHexField(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string' || v.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(v)) throw keyError(field, 'expected hex text');
  return new Uint8Array(Buffer.from(v, 'hex'));
}

const JWK_EC_CRV: Record<string, Ec2Crv> = { 'P-256': 1, 'P-384': 2, 'P-521': 3, secp256k1: 8 };
const JWK_OKP_CRV: Record<string, OkpCrv> = { Ed25519: 6, Ed448: 7 };

/** The public key as a JWK (RFC 7517/8037), e.g. for node:crypto or WebCrypto. */
export function coseKeyToJwk(key: CoseKey): JsonWebKey {
  switch (key.kty) {
    case KTY.OKP:
      return { kty: 'OKP', crv: OKP_CURVES[key.crv].name, x: b64u(key.x) };
    case KTY.EC2:
      return { kty: 'EC', crv: EC2_CURVES[key.crv].name, x: b64u(key.x), y: b64u(key.y) };
    case KTY.RSA:
      return { kty: 'RSA', n: b64u(key.n), e: b64u(key.e) };
  }
}

/**
 * A CoseKey from a JWK. Accepts standard JWKs (base64url members) and the
 * cose-wg examples' variant where OKP keys carry `x_hex`. Only the public part
 * is taken: private members (`d`, `d_hex`, RSA primes …) are ignored, and the
 * JWK's own `kid`/`alg` are not carried over (pass them in `extra`).
 */
export function coseKeyFromJwk(jwk: unknown, extra: { kid?: Uint8Array; alg?: number } = {}, opts: KeyDecodeOptions = {}): CoseKey {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw keyError('jwk', 'expected an object');
  const j = jwk as Record<string, unknown>;
  const m = new Map<number, unknown>();
  if (j.kty === 'OKP') {
    const crv = typeof j.crv === 'string' ? JWK_OKP_CRV[j.crv] : undefined;
    if (crv === undefined) throw keyError('jwk.crv', `unsupported OKP curve ${JSON.stringify(j.crv)}`);
    const x = j.x !== undefined ? fromB64u(j.x, 'jwk.x') : fromHexField(j.x_hex, 'jwk.x_hex');
    m.set(1, KTY.OKP).set(-1, crv).set(-2, x);
  } else if (j.kty === 'EC') {
    const crv = typeof j.crv === 'string' ? JWK_EC_CRV[j.crv] : undefined;
    if (crv === undefined) throw keyError('jwk.crv', `unsupported EC curve ${JSON.stringify(j.crv)}`);
    const x = j.x !== undefined ? fromB64u(j.x, 'jwk.x') : fromHexField(j.x_hex, 'jwk.x_hex');
    const y = j.y !== undefined ? fromB64u(j.y, 'jwk.y') : fromHexField(j.y_hex, 'jwk.y_hex');
    m.set(1, KTY.EC2).set(-1, crv).set(-2, x).set(-3, y);
  } else if (j.kty === 'RSA') {
    m.set(1, KTY.RSA).set(-1, fromB64u(j.n, 'jwk.n')).set(-2, fromB64u(j.e, 'jwk.e'));
  } else {
    throw keyError('jwk.kty', `unsupported kty ${JSON.stringify(j.kty)}`);
  }
  if (extra.kid !== undefined) m.set(KEY_LABEL.kid, extra.kid);
  if (extra.alg !== undefined) m.set(KEY_LABEL.alg, extra.alg);
  return coseKeyFromMap(m, 'jwk', opts);
}

// ------------------------------------------------------------------ node KeyObject / PEM

// Two caches: per CoseKey object, and (bounded) per public key content, so a
// verifier that decodes the same device key for every batch still imports it
// once (P-256: ~4 100 verifies/s re-importing vs ~12 500/s cached).
const keyObjects = new WeakMap<CoseKey, KeyObject>();
const byContent = new Map<string, KeyObject>();
const BY_CONTENT_MAX = 4096;

/** The public key as a node:crypto KeyObject (imported via JWK, cached). Throws KEY_INVALID. */
export function coseKeyToKeyObject(key: CoseKey, field = 'cose_key'): KeyObject {
  const hit = keyObjects.get(key);
  if (hit) return hit;
  const id = Buffer.from(thumbprintInput(key)).toString('base64');
  let ko = byContent.get(id);
  if (!ko) {
    try {
      ko = createPublicKey({ key: coseKeyToJwk(key), format: 'jwk' });
    } catch (e) {
      throw new VerifyError('KEY_INVALID', `${field}: not a valid ${keyKindName(key)} public key (${(e as Error).message})`, field);
    }
    if (byContent.size >= BY_CONTENT_MAX) byContent.delete(byContent.keys().next().value as string);
    byContent.set(id, ko);
  }
  keyObjects.set(key, ko);
  return ko;
}

function keyKindName(key: CoseKey): string {
  if (key.kty === KTY.RSA) return 'RSA';
  return curveName(key.crv);
}

/**
 * A CoseKey from a node KeyObject (public, or private: the public part is
 * taken). Supports ed25519, ed448, ec (P-256/384/521, secp256k1) and rsa.
 */
export function coseKeyFromKeyObject(ko: KeyObject, extra: { kid?: Uint8Array; alg?: number } = {}): CoseKey {
  const pub = ko.type === 'private' ? createPublicKey(ko) : ko;
  if (pub.type !== 'public') throw keyError('key', `expected an asymmetric key, got a ${ko.type} key`);
  const t = pub.asymmetricKeyType;
  if (t !== 'ed25519' && t !== 'ed448' && t !== 'ec' && t !== 'rsa') throw keyError('key', `unsupported key type ${t}`);
  let jwk: JsonWebKey;
  try {
    jwk = pub.export({ format: 'jwk' });
  } catch (e) {
    throw keyError('key', `cannot export the public key (${(e as Error).message})`);
  }
  const key = coseKeyFromJwk(jwk, extra, { validate: false });
  keyObjects.set(key, pub);
  return key;
}

/** A CoseKey from a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) block. */
export function coseKeyFromPem(pem: string, extra: { kid?: Uint8Array; alg?: number } = {}): CoseKey {
  if (typeof pem !== 'string' || !/^\s*-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----\s*$/.test(pem))
    throw keyError('pem', 'expected exactly one PEM "PUBLIC KEY" (SPKI) block');
  let ko: KeyObject;
  try {
    ko = createPublicKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw keyError('pem', `cannot parse the public key (${(e as Error).message})`);
  }
  return coseKeyFromKeyObject(ko, extra);
}

/** The public key as a PEM SPKI block. */
export function coseKeyToPem(key: CoseKey): string {
  return coseKeyToKeyObject(key).export({ type: 'spki', format: 'pem' }).toString();
}

/** Coordinate / public key length in bytes of an EC2 or OKP curve. */
export function curveSize(crv: number): number | undefined {
  return (OKP_CURVES as Record<number, CurveInfo>)[crv]?.size ?? (EC2_CURVES as Record<number, CurveInfo>)[crv]?.size;
}
