// COSE_Sign1 (RFC 9052 §4.2, §4.4): encode, strict decode, Sig_structure,
// sign with any signer (software or PKCS#11), verify.
//
// COSE_Sign1 = #6.18([ protected: bstr .cbor header_map / bstr .size 0,
//                      unprotected: header_map, payload: bstr / nil, signature: bstr ])
// Sig_structure = [ "Signature1", body_protected, external_aad, payload ]
//
// The Sig_structure is always built over the EXACT protected bytes received
// (ARCHITECTURE §4: nobody re-encodes to hash or verify).
//
// Decoding rules (everything else is COSE_INVALID, never an untyped exception):
// - tag 18 required by default (`tagged: 'optional'` also accepts the untagged
//   array, for applications that know from context that it is a Sign1); any
//   other tag is refused;
// - a 4-element array; protected is a bstr that is either empty or the
//   encoding of a NON-EMPTY map; unprotected is a map; payload bstr or nil;
//   signature bstr;
// - no CBOR tags inside header values unless the caller allows them
//   (`headerTags`); tag 18 is only accepted as the outer tag;
// - header labels are ints or text; no label may appear in both buckets
//   (RFC 9052 §3); duplicate labels inside a bucket are refused by the decoder;
// - alg (1) must be in the protected bucket, an integer, and one we implement;
// - crit (2), when present, must be protected, a non-empty array of labels that
//   are present in the protected bucket and that we understand;
// - kid (4) is a bstr, content type (3) a uint (≤ 65535) or tstr.
// The COSE wire is decoded with `canonical: false` (other implementations,
// such as the cose-wg examples, do not all encode deterministically); since
// verification uses the exact received bytes, that is safe.
//
// POLICY for cose-wg `sign-pass-01`: protected = h'A0' (an encoded empty map)
// while the signer used h'' in its Sig_structure. We REJECT it (COSE_INVALID):
// RFC 9052 §3 says an empty protected bucket is encoded as a zero-length bstr,
// so h'A0' is non-conforming, and accepting it would mean verifying over bytes
// other than those received. (That message also has alg only in the
// unprotected bucket, which we refuse as well.)
import { decode, encode, Tag } from '../cbor.js';
import { CborError, IscmError, VerifyError } from '../errors.js';
import { algName, checkKeyForAlg, ecdsaCurve, isKnownAlg, normalizeLowS, verifySignature, type CoseAlg } from './algorithms.js';
import type { CoseKey } from './key.js';

export const COSE_SIGN1_TAG = 18;
/** Common header parameter labels (RFC 9052 §3.1). */
export const HEADER = { alg: 1, crit: 2, contentType: 3, kid: 4 } as const;

export type HeaderLabel = number | string;
export type HeaderMap = Map<HeaderLabel, unknown>;

const EMPTY = new Uint8Array(0);

export interface Sign1Parts {
  /** Protected header parameters; encoded deterministically (an empty map becomes h''). */
  protectedHeader: Map<HeaderLabel, unknown>;
  unprotected?: Map<HeaderLabel, unknown>;
  /** null = detached payload (RFC 9052 §2). */
  payload: Uint8Array | null;
  signature: Uint8Array;
}

export interface DecodedSign1 {
  /** The protected bucket exactly as received (a view into the input bytes). */
  readonly protectedBytes: Uint8Array;
  /** The decoded protected header (empty when protectedBytes is empty). */
  readonly protected: Map<HeaderLabel, unknown>;
  readonly unprotected: Map<HeaderLabel, unknown>;
  /** null when the payload is detached. */
  readonly payload: Uint8Array | null;
  readonly signature: Uint8Array;
  /** The protected alg. */
  readonly alg: CoseAlg;
  /** kid (label 4) from the protected bucket, else the unprotected one, if any. */
  readonly kid: Uint8Array | undefined;
}

/** Encodes the protected bucket: h'' for an empty map, else the deterministic map encoding. */
export function encodeProtected(header: Map<HeaderLabel, unknown>): Uint8Array {
  return header.size === 0 ? EMPTY : encode(header);
}

/** Encodes a tagged (18) COSE_Sign1. */
export function encodeSign1(parts: Sign1Parts): Uint8Array {
  const protectedBytes = encodeProtected(parts.protectedHeader);
  return encode(new Tag(COSE_SIGN1_TAG, [protectedBytes, parts.unprotected ?? new Map(), parts.payload, parts.signature]));
}

/** Sig_structure bytes for COSE_Sign1: ["Signature1", protectedBytes, externalAad, payload]. */
export function sigStructure(protectedBytes: Uint8Array, externalAad: Uint8Array, payload: Uint8Array): Uint8Array {
  return encode(['Signature1', protectedBytes, externalAad, payload]);
}

function invalid(message: string, field?: string): VerifyError {
  return new VerifyError('COSE_INVALID', message, field);
}

function labelText(l: unknown): string {
  return typeof l === 'string' ? JSON.stringify(l) : String(l);
}

const DEFAULT_UNDERSTOOD: readonly HeaderLabel[] = [HEADER.alg, HEADER.crit, HEADER.contentType, HEADER.kid];

/** Validates the two header buckets (rules in the file header); returns the alg. */
function checkHeaders(prot: Map<unknown, unknown>, unprot: Map<unknown, unknown>, understood: readonly HeaderLabel[]): CoseAlg {
  for (const [bucket, m] of [
    ['protected', prot],
    ['unprotected', unprot],
  ] as const) {
    for (const [label, value] of m) {
      if (typeof label !== 'number' && typeof label !== 'string') throw invalid(`${bucket} header: labels must be integers or text`);
      if (bucket === 'unprotected' && prot.has(label)) throw invalid(`header label ${labelText(label)} appears in both buckets (RFC 9052 §3)`, `${bucket}.${label}`);
      switch (label) {
        case HEADER.alg:
        case HEADER.crit:
          if (bucket !== 'protected') throw invalid(`${label === HEADER.alg ? 'alg' : 'crit'} must be in the protected header`, `${bucket}.${label}`);
          break;
        case HEADER.kid:
          if (!(value instanceof Uint8Array)) throw invalid('kid must be a byte string', `${bucket}.4`);
          break;
        case HEADER.contentType:
          if (!(typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff)))
            throw invalid('content type must be a uint ≤ 65535 or a text string', `${bucket}.3`);
          break;
      }
    }
  }
  const alg = prot.get(HEADER.alg);
  if (alg === undefined) throw invalid('alg is missing from the protected header', 'protected.1');
  if (typeof alg !== 'number' || !Number.isInteger(alg)) throw invalid('alg must be an integer', 'protected.1');
  if (!isKnownAlg(alg)) throw invalid(`unsupported alg ${alg}`, 'protected.1');
  if (prot.has(HEADER.crit)) {
    const crit = prot.get(HEADER.crit);
    if (!Array.isArray(crit) || crit.length === 0) throw invalid('crit must be a non-empty array of labels', 'protected.2');
    for (const l of crit) {
      if (typeof l !== 'number' && typeof l !== 'string') throw invalid('crit labels must be integers or text', 'protected.2');
      if (!prot.has(l)) throw invalid(`crit lists ${labelText(l)}, which is not in the protected header`, 'protected.2');
      if (!understood.includes(l)) throw invalid(`critical header parameter ${labelText(l)} is not understood`, 'protected.2');
    }
  }
  return alg;
}

export interface DecodeSign1Options {
  /** 'required' (default): must carry tag 18. 'optional': the bare array is accepted too. */
  tagged?: 'required' | 'optional';
  /** Input size limit in bytes (default 1 MiB). */
  maxBytes?: number;
  /** Header labels the application understands when they are listed in crit (beyond 1, 2, 3, 4). */
  understood?: readonly HeaderLabel[];
  /**
   * CBOR tags allowed inside header values, in either bucket (default none).
   * E.g. [1] for producers that put an epoch-time tag in a header (CCF).
   */
  headerTags?: readonly number[];
}

/**
 * Decodes and validates a COSE_Sign1 (structure and headers only; the
 * signature is checked by verifySign1). Throws VerifyError('COSE_INVALID').
 */
export function decodeSign1(bytes: Uint8Array, opts: DecodeSign1Options = {}): DecodedSign1 {
  const headerTags = opts.headerTags ?? [];
  let top: unknown;
  try {
    top = decode(bytes, { canonical: false, tags: [COSE_SIGN1_TAG, ...headerTags], maxBytes: opts.maxBytes ?? 1 << 20 });
  } catch (e) {
    if (e instanceof CborError) throw invalid(`malformed COSE_Sign1: ${e.message}`);
    throw e;
  }
  let arr: unknown = top;
  if (top instanceof Tag) {
    if (top.tag !== COSE_SIGN1_TAG) throw invalid(`tag ${top.tag} is not COSE_Sign1 (18)`);
    arr = top.value;
  } else if ((opts.tagged ?? 'required') === 'required') throw invalid('COSE_Sign1 tag 18 is missing');
  if (!Array.isArray(arr) || arr.length !== 4) throw invalid('COSE_Sign1 must be an array of 4 elements');
  const [protectedBytes, unprotected, payload, signature] = arr as unknown[];
  if (!(protectedBytes instanceof Uint8Array)) throw invalid('protected header must be a byte string', 'protected');
  if (!(unprotected instanceof Map)) throw invalid('unprotected header must be a map', 'unprotected');
  if (!(payload === null || payload instanceof Uint8Array)) throw invalid('payload must be a byte string or nil', 'payload');
  if (!(signature instanceof Uint8Array)) throw invalid('signature must be a byte string', 'signature');
  for (const v of unprotected.values()) if (containsTag(v, headerTags)) throw invalid('a CBOR tag that is not allowed appears in the unprotected header', 'unprotected');

  let prot: Map<unknown, unknown>;
  if (protectedBytes.length === 0) prot = new Map();
  else {
    let p: unknown;
    try {
      p = decode(protectedBytes, { canonical: false, tags: headerTags, maxBytes: protectedBytes.length });
    } catch (e) {
      if (e instanceof CborError) throw invalid(`protected header is not valid CBOR: ${e.message}`, 'protected');
      throw e;
    }
    if (!(p instanceof Map)) throw invalid('protected header must encode a map', 'protected');
    if (p.size === 0) throw invalid("protected header encodes an empty map; RFC 9052 §3 requires a zero-length bstr (h'') instead", 'protected');
    prot = p;
  }
  const alg = checkHeaders(prot, unprotected, [...DEFAULT_UNDERSTOOD, ...(opts.understood ?? [])]);
  const kid = (prot.get(HEADER.kid) ?? unprotected.get(HEADER.kid)) as Uint8Array | undefined;
  return {
    protectedBytes,
    protected: prot as HeaderMap,
    unprotected: unprotected as HeaderMap,
    payload,
    signature,
    alg,
    kid,
  };
}

/** True when v contains a tag outside `allowed` (18 is never allowed inside headers). */
function containsTag(v: unknown, allowed: readonly number[], depth = 0): boolean {
  if (v instanceof Tag) return !allowed.includes(v.tag) || containsTag(v.value, allowed, depth + 1);
  if (depth > 64) return false; // the decoder already bounds depth
  if (Array.isArray(v)) return v.some((x) => containsTag(x, allowed, depth + 1));
  if (v instanceof Map) for (const x of v.values()) if (containsTag(x, allowed, depth + 1)) return true;
  return false;
}

export interface VerifySign1Options {
  /** External AAD bound into the Sig_structure (default h''). */
  externalAad?: Uint8Array;
  /** The payload, when the message carries nil (detached). */
  detachedPayload?: Uint8Array;
  /** Reject high-S ECDSA signatures (default true: batches and receipts; pass false for foreign COSE). */
  rejectHighS?: boolean;
}

/**
 * Verifies a decoded COSE_Sign1 with `publicKey`. Returns normally when the
 * signature is valid; otherwise throws VerifyError with a reason: COSE_INVALID
 * (detached/attached payload misuse), KEY_INVALID (key unusable for the alg),
 * SIGNATURE_INVALID (does not verify, wrong length, high-S).
 */
export function verifySign1(decoded: DecodedSign1, publicKey: CoseKey, opts: VerifySign1Options = {}): void {
  let payload: Uint8Array;
  if (decoded.payload === null) {
    if (!(opts.detachedPayload instanceof Uint8Array)) throw invalid('the payload is detached; the verifier must supply it', 'payload');
    payload = opts.detachedPayload;
  } else {
    if (opts.detachedPayload !== undefined) throw invalid('a detached payload was supplied but the message carries its own', 'payload');
    payload = decoded.payload;
  }
  const aad = opts.externalAad ?? EMPTY;
  if (!(aad instanceof Uint8Array)) throw invalid('external AAD must be bytes');
  const tbs = sigStructure(decoded.protectedBytes, aad, payload);
  verifySignature(decoded.alg, publicKey, tbs, decoded.signature, { rejectHighS: opts.rejectHighS ?? true });
}

/** What signSign1 needs from a signer (drivers/signer.ts `Signer` is one). */
export interface CoseSigner {
  readonly alg: number;
  /** Returns the COSE signature over `data` (the Sig_structure); ECDSA raw r‖s. */
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** When set, lets signSign1 check the key against the alg before signing. */
  readonly publicKey?: CoseKey;
}

export interface SignSign1Options {
  /** Protected header. alg (1) is filled from the signer when absent and must match it when present. */
  protectedHeader: Map<HeaderLabel, unknown>;
  unprotected?: Map<HeaderLabel, unknown>;
  payload: Uint8Array;
  /** Encode the message with a nil payload (the payload is still signed). */
  detached?: boolean;
  externalAad?: Uint8Array;
}

/**
 * Builds and signs a COSE_Sign1 (tag 18). The signer signs the Sig_structure
 * over the exact protected bytes that go on the wire. ECDSA signatures are
 * normalised to low-S here too, whatever the signer returned.
 */
export async function signSign1(signer: CoseSigner, opts: SignSign1Options): Promise<Uint8Array> {
  if (!(opts.payload instanceof Uint8Array)) throw invalid('payload must be bytes', 'payload');
  const prot = new Map(opts.protectedHeader);
  const headerAlg = prot.get(HEADER.alg);
  if (headerAlg === undefined) prot.set(HEADER.alg, signer.alg);
  else if (headerAlg !== signer.alg) throw invalid(`protected alg ${labelText(headerAlg)} does not match the signer's ${algName(signer.alg)}`, 'protected.1');
  const unprotected = opts.unprotected ?? new Map<HeaderLabel, unknown>();
  const alg = checkHeaders(prot, unprotected, [...DEFAULT_UNDERSTOOD, ...collectCrit(prot)]);
  if (signer.publicKey) checkKeyForAlg(alg, signer.publicKey);
  const protectedBytes = encodeProtected(prot);
  const tbs = sigStructure(protectedBytes, opts.externalAad ?? EMPTY, opts.payload);
  let sig: Uint8Array;
  try {
    sig = await signer.sign(tbs);
  } catch (e) {
    if (e instanceof IscmError) throw e;
    throw new IscmError('SIGNER_ERROR', `signer failed: ${(e as Error)?.message ?? String(e)}`, undefined, { cause: e });
  }
  if (!(sig instanceof Uint8Array) || sig.length === 0) throw new IscmError('SIGNER_ERROR', 'signer returned no signature bytes');
  const curve = ecdsaCurve(alg);
  if (curve) {
    try {
      sig = normalizeLowS(sig, curve);
    } catch (e) {
      throw new IscmError('SIGNER_ERROR', `signer returned a malformed ${algName(alg)} signature: ${(e as Error).message}`);
    }
  }
  return encode(new Tag(COSE_SIGN1_TAG, [protectedBytes, unprotected, opts.detached ? null : opts.payload, sig]));
}

function collectCrit(prot: Map<HeaderLabel, unknown>): HeaderLabel[] {
  // A producer understands what it puts in crit by definition.
  const c = prot.get(HEADER.crit);
  return Array.isArray(c) ? c.filter((l): l is HeaderLabel => typeof l === 'number' || typeof l === 'string') : [];
}
