// COSE signature algorithms (RFC 9053 §2, RFC 8230 §2, RFC 8812 §3.2) over a
// message (the Sig_structure bytes) and a public COSE_Key.
//
// Implementations were picked by measurement (node 20, x86-64, 2 cores; per
// second, one thread; `createPublicKey` excluded because KeyObjects are cached):
//
//   alg / curve            node:crypto sign / verify     @noble/curves sign / verify
//   EdDSA Ed25519          33 300 / 10 800                1 660 /   530
//   ES256 P-256            35 000 / 16 300                2 140 /   520
//   ES256K secp256k1        3 100 /  3 450                1 580 /   770
//   ES384 P-384             1 550 /  1 870                1 160 /   250
//   ES512 P-521               650 /    810                  620 /   120
//   EdDSA Ed448             4 440 /  3 620                    - /     -
//   PS256 RSA-2048          2 860 / 31 200                    - /     -
//
// So node:crypto (OpenSSL) is used for everything, secp256k1 included. A node
// built against an OpenSSL without secp256k1 falls back to @noble/curves for
// ES256K (detected at load; `setSecp256k1Backend` forces either, for tests).
//
// ECDSA signatures are the raw fixed-width r‖s of RFC 9053 §2.1 (never DER).
//
// POLICIES
// - High-S (ARCHITECTURE §4.2): our signers always emit low-S (s ≤ n/2), and
//   verification REJECTS high-S ECDSA signatures by default (`rejectHighS`
//   defaults to true here, in verifySign1, and so for batches and receipts).
//   RFC 9053 itself does not require low-S, so a verifier of foreign COSE
//   (e.g. the cose-wg examples, or @auth0/cose output, which is high-S half of
//   the time) must pass `rejectHighS: false` explicitly. Applies to every ECDSA
//   curve.
// - Curve/alg binding is strict: ES256 ⇔ P-256, ES384 ⇔ P-384, ES512 ⇔ P-521,
//   ES256K ⇔ secp256k1, EdDSA ⇔ OKP Ed25519/Ed448, PS256/384/512 ⇔ RSA (≥ 2048 bits).
//   A mismatch (cose-wg `ecdsa-sig-04`: ES512 with a P-256 key) is rejected with
//   KEY_INVALID before any cryptography: RFC 9053 §2.1 recommends exactly these
//   pairs, WebCrypto and JOSE (RFC 7518) bind them, and accepting "SHA-512 with
//   P-256" would let the alg header choose a weaker pairing than the key's owner
//   intended. A key whose own `alg` parameter (label 3) differs is rejected too.
// - Ed448 (alg -8 with an OKP crv 7 key) is accepted: node:crypto supports it
//   at no extra cost. Batch signers use Ed25519.
// - PS384 (-38) and PS512 (-39) verify too (same code as PS256; CCF-issued
//   statements use PS384). Batch algs remain -7, -8, -37, -47.
import { constants, getCurves, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { secp256k1 as nobleSecp256k1 } from '@noble/curves/secp256k1.js';
import { VerifyError, IscmError } from '../errors.js';
import { CRV, KTY, coseKeyToKeyObject, curveName, type CoseKey } from './key.js';

export const ALG = {
  ES256: -7,
  EdDSA: -8,
  ES384: -35,
  ES512: -36,
  PS256: -37,
  PS384: -38,
  PS512: -39,
  ES256K: -47,
} as const;
export type CoseAlg = (typeof ALG)[keyof typeof ALG];

/** The algorithms batches are signed with (a device's or a ledger's key); the others only verify. */
export const SIGNING_ALG = { ES256: ALG.ES256, EdDSA: ALG.EdDSA, PS256: ALG.PS256, ES256K: ALG.ES256K } as const;
export type SigningAlgName = keyof typeof SIGNING_ALG;

/** Curves with ECDSA support (low-S helpers work on all of them). */
export type EcdsaCurve = 'P-256' | 'P-384' | 'P-521' | 'secp256k1';

export interface AlgInfo {
  readonly name: string;
  readonly kind: 'ecdsa' | 'eddsa' | 'rsapss';
  readonly hash: 'sha256' | 'sha384' | 'sha512' | null;
  readonly curve?: EcdsaCurve; // ECDSA: the one curve bound to the alg
  readonly coseCrv?: number;
}

const ALGS: ReadonlyMap<number, AlgInfo> = new Map<number, AlgInfo>([
  [ALG.ES256, { name: 'ES256', kind: 'ecdsa', hash: 'sha256', curve: 'P-256', coseCrv: CRV.P256 }],
  [ALG.EdDSA, { name: 'EdDSA', kind: 'eddsa', hash: null }],
  [ALG.ES384, { name: 'ES384', kind: 'ecdsa', hash: 'sha384', curve: 'P-384', coseCrv: CRV.P384 }],
  [ALG.ES512, { name: 'ES512', kind: 'ecdsa', hash: 'sha512', curve: 'P-521', coseCrv: CRV.P521 }],
  [ALG.PS256, { name: 'PS256', kind: 'rsapss', hash: 'sha256' }],
  [ALG.PS384, { name: 'PS384', kind: 'rsapss', hash: 'sha384' }],
  [ALG.PS512, { name: 'PS512', kind: 'rsapss', hash: 'sha512' }],
  [ALG.ES256K, { name: 'ES256K', kind: 'ecdsa', hash: 'sha256', curve: 'secp256k1', coseCrv: CRV.secp256k1 }],
]);

/** True for the alg ids this project implements. */
export function isKnownAlg(alg: unknown): alg is CoseAlg {
  return typeof alg === 'number' && ALGS.has(alg);
}

/** "ES256" for -7 etc.; `alg <n>` if unknown. */
export function algName(alg: number): string {
  return ALGS.get(alg)?.name ?? `alg ${alg}`;
}

/** The ECDSA curve bound to an alg, or undefined for non-ECDSA algs. */
export function ecdsaCurve(alg: number): EcdsaCurve | undefined {
  return ALGS.get(alg)?.curve;
}

// ------------------------------------------------------------------ low-S

const CURVE_ORDER: Record<EcdsaCurve, { n: bigint; size: number }> = {
  'P-256': { n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n, size: 32 },
  secp256k1: { n: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n, size: 32 },
  'P-384': {
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    size: 48,
  },
  'P-521': {
    n: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    size: 66,
  },
};

/** Order n of an ECDSA curve (exported for tests). */
export function curveOrder(curve: EcdsaCurve): bigint {
  return CURVE_ORDER[curve].n;
}

function curveParams(curve: EcdsaCurve): { n: bigint; size: number } {
  const c = CURVE_ORDER[curve];
  if (!c) throw new VerifyError('COSE_INVALID', `unsupported ECDSA curve ${String(curve)}`);
  return c;
}

function readUint(b: Uint8Array, from: number, to: number): bigint {
  let hex = '';
  for (let i = from; i < to; i++) hex += (b[i] < 16 ? '0' : '') + b[i].toString(16);
  return hex === '' ? 0n : BigInt('0x' + hex);
}

function checkSigLength(sig: Uint8Array, size: number, curve: EcdsaCurve): void {
  if (!(sig instanceof Uint8Array) || sig.length !== 2 * size)
    throw new VerifyError('SIGNATURE_INVALID', `${curve} ECDSA signature must be ${2 * size} bytes (raw r‖s), got ${sig instanceof Uint8Array ? sig.length : typeof sig}`);
}

/** True when the raw r‖s signature has s > n/2. Throws SIGNATURE_INVALID on a wrong length. */
export function isHighS(sig: Uint8Array, curve: EcdsaCurve): boolean {
  const { n, size } = curveParams(curve);
  checkSigLength(sig, size, curve);
  return readUint(sig, size, 2 * size) > n >> 1n;
}

/**
 * The low-S form of a raw r‖s signature: s → n − s when s > n/2 (both forms
 * verify; only the low one is accepted by our verifiers). Returns `sig` itself
 * when it is already low-S, a new array otherwise.
 */
export function normalizeLowS(sig: Uint8Array, curve: EcdsaCurve): Uint8Array {
  const { n, size } = curveParams(curve);
  checkSigLength(sig, size, curve);
  const s = readUint(sig, size, 2 * size);
  if (s <= n >> 1n) return sig;
  const out = new Uint8Array(sig);
  let v = n - s;
  for (let i = 2 * size - 1; i >= size; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

// ------------------------------------------------------------------ secp256k1 backend

export type Secp256k1Backend = 'node' | 'noble';
const NODE_HAS_SECP256K1 = getCurves().includes('secp256k1');
let secpBackend: Secp256k1Backend = NODE_HAS_SECP256K1 ? 'node' : 'noble';

/** The implementation used for ES256K (node:crypto when OpenSSL has the curve: about 2× faster sign, 4.5× verify). */
export function secp256k1Backend(): Secp256k1Backend {
  return secpBackend;
}

/** Forces the ES256K implementation (tests and benchmarks). 'node' fails if OpenSSL lacks secp256k1. */
export function setSecp256k1Backend(b: Secp256k1Backend): void {
  if (b === 'node' && !NODE_HAS_SECP256K1) throw new IscmError('USAGE', 'this node:crypto has no secp256k1');
  if (b !== 'node' && b !== 'noble') throw new IscmError('USAGE', `unknown secp256k1 backend ${String(b)}`);
  secpBackend = b;
}

function uncompressedPoint(key: CoseKey): Uint8Array {
  if (key.kty !== KTY.EC2) throw new VerifyError('KEY_INVALID', 'expected an EC2 key');
  const out = new Uint8Array(1 + key.x.length + key.y.length);
  out[0] = 4;
  out.set(key.x, 1);
  out.set(key.y, 1 + key.x.length);
  return out;
}

// ------------------------------------------------------------------ key / alg binding

function unsupportedAlg(alg: unknown): VerifyError {
  return new VerifyError('COSE_INVALID', `unsupported alg ${typeof alg === 'number' ? alg : JSON.stringify(alg)}`, 'alg');
}

function keyDesc(key: CoseKey): string {
  return key.kty === KTY.RSA ? 'an RSA key' : key.kty === KTY.OKP ? `an OKP ${curveName(key.crv)} key` : `an EC2 ${curveName(key.crv)} key`;
}

/**
 * Checks that `key` may be used with `alg` (strict curve/alg binding, see the
 * header). Throws COSE_INVALID for an unknown alg, KEY_INVALID for a mismatch.
 */
export function checkKeyForAlg(alg: number, key: CoseKey): AlgInfo {
  const info = ALGS.get(alg);
  if (!info) throw unsupportedAlg(alg);
  if (key.alg !== undefined && key.alg !== alg)
    throw new VerifyError('KEY_INVALID', `the key is restricted to ${algName(key.alg)}, the message uses ${info.name}`, 'alg');
  let ok: boolean;
  switch (info.kind) {
    case 'ecdsa':
      ok = key.kty === KTY.EC2 && key.crv === info.coseCrv;
      break;
    case 'eddsa':
      ok = key.kty === KTY.OKP && (key.crv === CRV.Ed25519 || key.crv === CRV.Ed448);
      break;
    case 'rsapss':
      ok = key.kty === KTY.RSA;
      break;
  }
  if (!ok) {
    const want = info.kind === 'ecdsa' ? `an EC2 ${info.curve} key` : info.kind === 'eddsa' ? 'an OKP Ed25519 or Ed448 key' : 'an RSA key';
    throw new VerifyError('KEY_INVALID', `${info.name} requires ${want}, got ${keyDesc(key)}`, 'alg');
  }
  return info;
}

export interface SignatureVerifyOptions {
  /** Reject ECDSA signatures with s > n/2 (default true; see the header). */
  rejectHighS?: boolean;
}

// RFC 8230 §2: RSASSA-PSS with MGF1 over the same hash, salt length = hash length.
const PSS_SALT = { sha256: 32, sha384: 48, sha512: 64 } as const;

/**
 * Verifies `signature` over `message` (the Sig_structure bytes) with `key`
 * under `alg`. Returns normally when valid; otherwise throws VerifyError:
 * COSE_INVALID (unknown alg), KEY_INVALID (key unusable for alg) or
 * SIGNATURE_INVALID (wrong length, high-S, or does not verify).
 */
export function verifySignature(alg: number, key: CoseKey, message: Uint8Array, signature: Uint8Array, opts: SignatureVerifyOptions = {}): void {
  const info = checkKeyForAlg(alg, key);
  if (!(signature instanceof Uint8Array)) throw new VerifyError('SIGNATURE_INVALID', 'signature is not a byte string');
  let ok = false;
  if (info.kind === 'ecdsa') {
    const curve = info.curve!;
    if (isHighS(signature, curve) && (opts.rejectHighS ?? true))
      throw new VerifyError('SIGNATURE_INVALID', `high-S ${info.name} signature (s > n/2); signers must normalise to low-S`);
    if (curve === 'secp256k1' && secpBackend === 'noble') {
      try {
        ok = nobleSecp256k1.verify(signature, message, uncompressedPoint(key), { prehash: true, lowS: false, format: 'compact' });
      } catch {
        ok = false;
      }
    } else {
      ok = nodeVerifySafe(info.hash, message, { key: coseKeyToKeyObject(key), dsaEncoding: 'ieee-p1363' }, signature);
    }
  } else if (info.kind === 'eddsa') {
    const ed448 = key.kty === KTY.OKP && key.crv === CRV.Ed448;
    const want = ed448 ? 114 : 64;
    if (signature.length !== want)
      throw new VerifyError('SIGNATURE_INVALID', `EdDSA ${ed448 ? 'Ed448' : 'Ed25519'} signature must be ${want} bytes, got ${signature.length}`);
    ok = nodeVerifySafe(null, message, coseKeyToKeyObject(key), signature);
  } else {
    const n = key.kty === KTY.RSA ? key.n : new Uint8Array(0);
    if (signature.length !== n.length)
      throw new VerifyError('SIGNATURE_INVALID', `${info.name} signature must be ${n.length} bytes (the modulus size), got ${signature.length}`);
    const hash = info.hash!;
    ok = nodeVerifySafe(hash, message, { key: coseKeyToKeyObject(key), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT[hash] }, signature);
  }
  if (!ok) throw new VerifyError('SIGNATURE_INVALID', `${info.name} signature does not verify`);
}

function nodeVerifySafe(hash: string | null, message: Uint8Array, key: Parameters<typeof nodeVerify>[2], signature: Uint8Array): boolean {
  try {
    return nodeVerify(hash, message, key, signature);
  } catch {
    // OpenSSL refuses some malformed inputs (e.g. r or s out of range) by throwing.
    return false;
  }
}

// ------------------------------------------------------------------ signing

export type RawSign = (data: Uint8Array) => Uint8Array;

/**
 * Prepares a synchronous signing function for `alg` with a node private key
 * (for software signers and tests; hardware signers sign in the token).
 * Checks the key against the alg once. ECDSA output is raw r‖s, low-S;
 * PS256 uses SHA-256, MGF1-SHA-256 and a 32-byte salt. Throws KEY_INVALID for
 * an unusable key.
 */
export function createRawSigner(alg: number, privateKey: KeyObject): RawSign {
  const info = ALGS.get(alg);
  if (!info) throw unsupportedAlg(alg);
  if (privateKey?.type !== 'private') throw new VerifyError('KEY_INVALID', 'expected a private key');
  const t = privateKey.asymmetricKeyType;
  switch (info.kind) {
    case 'eddsa':
      if (t !== 'ed25519' && t !== 'ed448') throw new VerifyError('KEY_INVALID', `EdDSA requires an Ed25519 or Ed448 key, got ${t}`);
      return (data) => new Uint8Array(nodeSign(null, data, privateKey));
    case 'rsapss': {
      if (t !== 'rsa') throw new VerifyError('KEY_INVALID', `${info.name} requires an RSA key, got ${t}`);
      const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) throw new VerifyError('KEY_INVALID', `${info.name} requires an RSA modulus of at least 2048 bits, got ${bits}`);
      const hash = info.hash!;
      const opts = { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT[hash] };
      return (data) => new Uint8Array(nodeSign(hash, data, opts));
    }
    case 'ecdsa': {
      const curve = info.curve!;
      const named = privateKey.asymmetricKeyDetails?.namedCurve;
      const nodeName = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1', secp256k1: 'secp256k1' }[curve];
      if (t !== 'ec' || named !== nodeName) throw new VerifyError('KEY_INVALID', `${info.name} requires a ${curve} key, got ${t === 'ec' ? named : t}`);
      if (curve === 'secp256k1' && secpBackend === 'noble') {
        const d = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
        const secret = new Uint8Array(d);
        d.fill(0);
        return (data) => nobleSecp256k1.sign(data, secret, { prehash: true, lowS: true, format: 'compact' });
      }
      const opts = { key: privateKey, dsaEncoding: 'ieee-p1363' as const };
      const hash = info.hash!;
      return (data) => normalizeLowS(new Uint8Array(nodeSign(hash, data, opts)), curve);
    }
  }
}
