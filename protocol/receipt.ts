// COSE Receipts (RFC 9942) over the ledger's RFC 9162 log (ARCHITECTURE §4.4).
//
//   protected   { 1: alg, 4: kid, 395: vds (1 = RFC9162_SHA256), 15: { 1: chain_id, 6: iat } }
//   unprotected { 396: { -1: [ bstr .cbor [tree_size, leaf_index, [path …]] ],
//                      ? -2: [ bstr .cbor [size1, size2, [path …]] ] } }
//   payload     nil (detached) = the root at tree_size
//
// The verifier recomputes the root from the inclusion proof (RFC 9942 §5:
// the receipt carries no root) and checks the log's signature over it with the
// root as the detached payload; a wrong leaf, path or index therefore shows up
// as a signature that does not verify, exactly as the RFC intends.
//
// vds 2 (CCF_LEDGER_SHA256) is verified too, on request, so that receipts of
// other SCITT services can be checked by the same tool; the ISCM ledger only
// ever issues vds 1 and the light node accepts only vds 1.
import { decode, encode, Tag } from './cbor.js';
import { sha256, equalBytes, toHex } from './bytes.js';
import { CborError, IscmError, VerifyError } from './errors.js';
import { MAX_RECEIPT_BYTES } from './limits.js';
import { leafHash, rootFromInclusionProof, rootsFromConsistencyProof } from './merkle.js';
import { decodeSign1, signSign1, verifySign1, HEADER, type CoseSigner, type DecodedSign1 } from './cose/sign1.js';
import { thumbprint, type CoseKey } from './cose/key.js';

/** COSE header labels of RFC 9942 (IANA COSE Header Parameters). */
export const RECEIPT_LABEL = { vds: 395, vdp: 396, cwtClaims: 15, receipts: 394 } as const;
/** Verifiable data structures (RFC 9942 §6 / IANA "COSE Verifiable Data Structures"). */
export const VDS = { RFC9162_SHA256: 1, CCF_LEDGER_SHA256: 2 } as const;
/** Proof types inside 396 (RFC 9942 §4). */
export const PROOF = { inclusion: -1, consistency: -2 } as const;
/**
 * Protected header label (COSE private use, < -65536) carrying the tree size
 * the signature is for. RFC 9942 signs only the root; the tree_size of an
 * inclusion proof is unprotected, and one path can lead to the same root for
 * several sizes (leaf 3's path is identical in trees of 6 and 7 leaves), so a
 * relay could change the size a device then stores as its trusted head. ISCM
 * receipts and tree heads sign the size here; verifiers of ISCM receipts
 * require it to equal the proof's size.
 */
export const ISCM_TREE_SIZE_LABEL = -65537;
/** CWT claims used in the protected header (RFC 8392). */
export const CWT = { iss: 1, sub: 2, iat: 6 } as const;

const fail = (message: string, field?: string) => new VerifyError('RECEIPT_INVALID', message, field);

export interface InclusionProof {
  treeSize: number;
  leafIndex: number;
  path: Uint8Array[];
}
export interface ConsistencyProof {
  size1: number;
  size2: number;
  path: Uint8Array[];
}

/** A signer that also names its key (drivers' Signer is one). */
export interface ReceiptSigner extends CoseSigner {
  readonly kid: Uint8Array;
}

export interface ReceiptContent {
  /** The root at treeSize (signed as the detached payload). */
  root: Uint8Array;
  inclusion: InclusionProof;
  /** From the device's known_size to treeSize, when known_size > 0. */
  consistency?: ConsistencyProof;
  /** The ledger's chain id (CWT iss). */
  chainId: string;
  /** Seconds since the epoch (CWT iat). */
  iat: number;
}

function proofBstr(a: number, b: number, path: Uint8Array[]): Uint8Array {
  return encode([a, b, path]);
}

/**
 * The protected header of every log signature: receipts and tree heads share
 * it, so a head and a receipt for the same size and root have the same
 * Sig_structure (the ledger signs once per block and reuses the signature).
 */
export function logProtectedHeader(signer: ReceiptSigner, treeSize: number, chainId: string, iat: number): Map<number, unknown> {
  return new Map<number, unknown>([
    [HEADER.alg, signer.alg],
    [HEADER.kid, signer.kid],
    [RECEIPT_LABEL.vds, VDS.RFC9162_SHA256],
    [RECEIPT_LABEL.cwtClaims, new Map<number, unknown>([[CWT.iss, chainId], [CWT.iat, iat]])],
    [ISCM_TREE_SIZE_LABEL, treeSize],
  ]);
}

/** Signs a receipt (the ledger side). */
export async function signReceipt(signer: ReceiptSigner, c: ReceiptContent): Promise<Uint8Array> {
  const vdp = new Map<number, unknown>([[PROOF.inclusion, [proofBstr(c.inclusion.treeSize, c.inclusion.leafIndex, c.inclusion.path)]]]);
  if (c.consistency) {
    if (c.consistency.size2 !== c.inclusion.treeSize) throw new IscmError('INVALID_FIELD', 'consistency proof must end at the inclusion tree size', 'consistency.size2');
    vdp.set(PROOF.consistency, [proofBstr(c.consistency.size1, c.consistency.size2, c.consistency.path)]);
  }
  return signSign1(signer, {
    protectedHeader: logProtectedHeader(signer, c.inclusion.treeSize, c.chainId, c.iat),
    unprotected: new Map([[RECEIPT_LABEL.vdp, vdp]]),
    payload: c.root,
    detached: true,
  });
}

/** A trusted log key; `kid` defaults to its RFC 9679 thumbprint. */
export interface TrustedKey {
  key: CoseKey;
  kid?: Uint8Array;
}

export interface VerifyReceiptOptions {
  /** The log leaf entry the receipt must cover (ours: SHA-256 of the batch COSE_Sign1 bytes). */
  leafEntry: Uint8Array;
  /** Keys of the logs trusted to sign receipts. */
  trusted: readonly TrustedKey[];
  /** The tree head the verifier already trusts; the receipt must prove consistency with it. */
  knownHead?: { size: number; root: Uint8Array };
  /** Verifiable data structures accepted (default [1]). */
  vds?: readonly number[];
  /** Require the signed tree size (ISCM_TREE_SIZE_LABEL) of ISCM receipts (default false: foreign receipts lack it). */
  requireSignedSize?: boolean;
  /**
   * 'ignore': verify signature and inclusion only, leaving any consistency
   * proof unchecked (the caller judges the root itself, e.g. against a head it
   * holds for another size). Default 'check'.
   */
  consistency?: 'check' | 'ignore';
}

export interface VerifiedReceipt {
  vds: number;
  root: Uint8Array;
  /** vds 1 only. */
  treeSize?: number;
  leafIndex?: number;
  kid?: Uint8Array;
  chainId?: string;
  iat?: number;
  /** The size the consistency proof started from, when there was one. */
  consistentFrom?: number;
}

function decodeProofArray(b: unknown, field: string): [number, number, Uint8Array[]] {
  if (!(b instanceof Uint8Array)) throw fail('proof must be a byte string (bstr .cbor)', field);
  let v: unknown;
  try {
    v = decode(b, { canonical: false, maxBytes: b.length, maxDepth: 3 });
  } catch (e) {
    if (e instanceof CborError) throw fail(`proof is not valid CBOR: ${e.message}`, field);
    throw e;
  }
  if (!Array.isArray(v) || v.length !== 3) throw fail('proof must be [size, index, [path …]]', field);
  const [a, c, path] = v;
  if (typeof a !== 'number' || typeof c !== 'number' || !Array.isArray(path)) throw fail('proof must be [uint, uint, [bstr …]]', field);
  if (path.length > 64) throw fail(`proof path has ${path.length} entries (at most 64)`, field);
  for (const p of path) if (!(p instanceof Uint8Array)) throw fail('proof path entries must be byte strings', field);
  return [a, c, path as Uint8Array[]];
}

/** Finds the trusted key for a receipt: by kid when it has one, else every trusted key is tried. */
function candidates(decoded: DecodedSign1, trusted: readonly TrustedKey[]): TrustedKey[] {
  if (trusted.length === 0) throw fail('no trusted ledger keys were given');
  const kid = decoded.kid;
  if (!(kid instanceof Uint8Array)) return [...trusted];
  const hits = trusted.filter((t) => {
    const k = t.kid ?? thumbprint(t.key);
    if (equalBytes(k, kid)) return true;
    // Foreign logs (CCF) use their own kid scheme; a key's own kid also counts.
    return t.key.kid instanceof Uint8Array && equalBytes(t.key.kid, kid);
  });
  if (hits.length === 0) throw fail(`signed by an untrusted key (kid ${kidText(kid)})`, 'protected.4');
  return hits;
}

function kidText(kid: Uint8Array): string {
  return kid.every((b) => b >= 0x20 && b < 0x7f) ? JSON.stringify(new TextDecoder().decode(kid)) : toHex(kid);
}

/**
 * Verifies a COSE Receipt for `leafEntry`. Returns what it proves; throws
 * VerifyError('RECEIPT_INVALID' / 'MERKLE_INVALID' / 'SIGNATURE_INVALID') with the reason.
 */
export function verifyReceipt(bytes: Uint8Array, opts: VerifyReceiptOptions): VerifiedReceipt {
  if (!(bytes instanceof Uint8Array)) throw fail('receipt must be bytes');
  if (bytes.length > MAX_RECEIPT_BYTES) throw fail(`receipt of ${bytes.length} bytes exceeds ${MAX_RECEIPT_BYTES}`);
  let d: DecodedSign1;
  try {
    d = decodeSign1(bytes, { tagged: 'optional', maxBytes: MAX_RECEIPT_BYTES });
  } catch (e) {
    if (e instanceof VerifyError) throw fail(`not a COSE_Sign1: ${e.message}`);
    throw e;
  }
  // RFC 9942 §4: vds is read from the protected header, never the unprotected one.
  const vds = d.protected.get(RECEIPT_LABEL.vds);
  if (vds === undefined) throw fail('protected header has no vds (label 395)', 'protected.395');
  const accepted = opts.vds ?? [VDS.RFC9162_SHA256];
  if (typeof vds !== 'number' || !accepted.includes(vds)) throw fail(`unsupported verifiable data structure vds ${String(vds)} (accepted: ${accepted.join(', ')})`, 'protected.395');
  if (d.payload !== null) throw fail('payload must be detached (nil): the verifier recomputes the root', 'payload');
  const vdp = d.unprotected.get(RECEIPT_LABEL.vdp);
  if (!(vdp instanceof Map)) throw fail('unprotected header has no proofs (label 396)', 'unprotected.396');
  for (const k of vdp.keys()) if (k !== PROOF.inclusion && k !== PROOF.consistency) throw fail(`unknown proof type ${String(k)} in 396`, 'unprotected.396');
  const incl = vdp.get(PROOF.inclusion);
  if (!Array.isArray(incl) || incl.length !== 1) throw fail('exactly one inclusion proof (396 / -1) is required', 'unprotected.396.-1');
  if (!(opts.leafEntry instanceof Uint8Array)) throw fail('leaf entry must be bytes');

  const claims = d.protected.get(RECEIPT_LABEL.cwtClaims);
  const out: VerifiedReceipt = { vds, root: new Uint8Array(0), kid: d.kid };
  if (claims instanceof Map) {
    const iss = claims.get(CWT.iss);
    const iat = claims.get(CWT.iat);
    if (typeof iss === 'string') out.chainId = iss;
    if (typeof iat === 'number') out.iat = iat;
  }

  if (vds === VDS.RFC9162_SHA256) {
    const [treeSize, leafIndex, path] = decodeProofArray(incl[0], 'unprotected.396.-1');
    // RFC 9162 §2.1.3.2; a malformed proof is a MERKLE_INVALID VerifyError with its reason.
    out.root = rootFromInclusionProof(leafHash(opts.leafEntry), leafIndex, treeSize, path);
    out.treeSize = treeSize;
    out.leafIndex = leafIndex;
    const signedSize = d.protected.get(ISCM_TREE_SIZE_LABEL);
    if (signedSize === undefined) {
      if (opts.requireSignedSize) throw fail(`protected header has no signed tree size (label ${ISCM_TREE_SIZE_LABEL})`, `protected.${ISCM_TREE_SIZE_LABEL}`);
    } else if (signedSize !== treeSize) {
      throw fail(`inclusion proof is for tree size ${treeSize}, the signature for ${String(signedSize)}`, `protected.${ISCM_TREE_SIZE_LABEL}`);
    }
  } else {
    out.root = ccfRoot(incl[0], opts.leafEntry);
  }

  let lastError: unknown;
  let ok = false;
  for (const t of candidates(d, opts.trusted)) {
    try {
      verifySign1(d, t.key, { detachedPayload: out.root, rejectHighS: false });
      ok = true;
      break;
    } catch (e) {
      lastError = e;
    }
  }
  if (!ok) {
    const why = lastError instanceof Error ? lastError.message : String(lastError);
    throw new VerifyError('SIGNATURE_INVALID', `receipt signature does not verify over the root recomputed from the proof (${why}): wrong leaf, path, index or key`);
  }

  const cons = vdp.get(PROOF.consistency);
  if (opts.consistency === 'ignore') return out;
  if (cons !== undefined) {
    if (vds !== VDS.RFC9162_SHA256) throw fail('consistency proofs are defined here for vds 1 only', 'unprotected.396.-2');
    if (!Array.isArray(cons) || cons.length !== 1) throw fail('at most one consistency proof (396 / -2)', 'unprotected.396.-2');
    const [size1, size2, path] = decodeProofArray(cons[0], 'unprotected.396.-2');
    if (size2 !== out.treeSize) throw fail(`consistency proof ends at ${size2}, the inclusion proof at ${out.treeSize}`, 'unprotected.396.-2');
    if (!opts.knownHead) throw fail('the receipt carries a consistency proof but the verifier has no tree head to check it against');
    if (size1 !== opts.knownHead.size) throw fail(`consistency proof starts at ${size1}, the trusted tree head has size ${opts.knownHead.size}`, 'unprotected.396.-2');
    const r = rootsFromConsistencyProof(size1, size2, opts.knownHead.root, path);
    if (!equalBytes(r.root1, opts.knownHead.root) || !equalBytes(r.root2, out.root))
      throw new VerifyError('MERKLE_INVALID', `the log is not consistent with the trusted tree head of size ${size1}: possible fork`);
    out.consistentFrom = size1;
  } else if (opts.knownHead && opts.knownHead.size > 0) {
    // Without a proof the only acceptable new head is the same one.
    const same = out.treeSize === opts.knownHead.size && equalBytes(out.root, opts.knownHead.root);
    if (!same) throw fail(`no consistency proof from the trusted tree head of size ${opts.knownHead.size} to ${out.treeSize}`);
    out.consistentFrom = opts.knownHead.size;
  }
  return out;
}

/** The proofs a vds 1 receipt carries, parsed but not verified (for inspection tools and tests). */
export function receiptProofs(bytes: Uint8Array): { decoded: DecodedSign1; inclusion: InclusionProof[]; consistency: ConsistencyProof[] } {
  const decoded = decodeSign1(bytes, { tagged: 'optional', maxBytes: MAX_RECEIPT_BYTES });
  const vdp = decoded.unprotected.get(RECEIPT_LABEL.vdp);
  if (!(vdp instanceof Map)) throw fail('unprotected header has no proofs (label 396)', 'unprotected.396');
  const list = (k: number): unknown[] => {
    const v = vdp.get(k);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw fail(`396 / ${k} must be an array`, 'unprotected.396');
    return v;
  };
  return {
    decoded,
    inclusion: list(PROOF.inclusion).map((b) => {
      const [treeSize, leafIndex, path] = decodeProofArray(b, 'unprotected.396.-1');
      return { treeSize, leafIndex, path };
    }),
    consistency: list(PROOF.consistency).map((b) => {
      const [size1, size2, path] = decodeProofArray(b, 'unprotected.396.-2');
      return { size1, size2, path };
    }),
  };
}

/** CCF_LEDGER_SHA256 (vds 2): leaf = [internal_txid_hash, evidence, data_hash], path = [[left, hash] …], plain SHA-256 nodes. */
function ccfRoot(proofBytes: unknown, leafEntry: Uint8Array): Uint8Array {
  if (!(proofBytes instanceof Uint8Array)) throw fail('CCF proof must be a byte string', 'unprotected.396.-1');
  let p: unknown;
  try {
    p = decode(proofBytes, { canonical: false, maxBytes: proofBytes.length, maxDepth: 4 });
  } catch (e) {
    if (e instanceof CborError) throw fail(`CCF proof is not valid CBOR: ${e.message}`, 'unprotected.396.-1');
    throw e;
  }
  if (!(p instanceof Map)) throw fail('CCF proof must be a map {1: leaf, 2: path}', 'unprotected.396.-1');
  const leaf = p.get(1);
  const path = p.get(2);
  if (!Array.isArray(leaf) || leaf.length !== 3) throw fail('CCF leaf must be [txid hash, evidence, data hash]', 'unprotected.396.-1');
  const [txHash, evidence, dataHash] = leaf;
  if (!(txHash instanceof Uint8Array) || txHash.length !== 32 || typeof evidence !== 'string' || !(dataHash instanceof Uint8Array) || dataHash.length !== 32)
    throw fail('CCF leaf must be [bstr(32), tstr, bstr(32)]', 'unprotected.396.-1');
  if (!equalBytes(dataHash, leafEntry)) throw fail('the CCF leaf commits to another statement (data hash differs from the leaf entry)', 'unprotected.396.-1');
  if (!Array.isArray(path) || path.length > 64) throw fail('CCF path must be an array of at most 64 steps', 'unprotected.396.-1');
  let acc = sha256(txHash, sha256(new TextEncoder().encode(evidence)), dataHash);
  for (const step of path) {
    if (!Array.isArray(step) || step.length !== 2 || typeof step[0] !== 'boolean' || !(step[1] instanceof Uint8Array) || step[1].length !== 32)
      throw fail('CCF path steps must be [bool, bstr(32)]', 'unprotected.396.-1');
    acc = step[0] ? sha256(step[1], acc) : sha256(acc, step[1]);
  }
  return acc;
}

/**
 * The same receipt with only its inclusion proof: what an event proof bundle
 * carries. A device's receipt may hold a consistency proof from the tree head
 * that device trusted; an offline verifier has no such head, so the proof
 * could not be checked there and would be unprotected bytes nobody verifies
 * (a bundle keeps the property that every byte of it is checked). The
 * protected header, the detached payload and the signature are kept as they
 * are, so the ledger's signature still verifies (RFC 9052 §4.4 signs only the
 * protected bucket and the payload).
 */
export function receiptWithoutConsistency(bytes: Uint8Array): Uint8Array {
  const { decoded } = receiptProofs(bytes);
  const vdp = decoded.unprotected.get(RECEIPT_LABEL.vdp) as Map<number, unknown>;
  if (!vdp.has(PROOF.consistency)) return bytes;
  const unprotected = new Map(decoded.unprotected);
  unprotected.set(RECEIPT_LABEL.vdp, new Map([[PROOF.inclusion, vdp.get(PROOF.inclusion)]]));
  return encode(new Tag(18, [decoded.protectedBytes, unprotected, decoded.payload, decoded.signature]));
}

/** The log leaf entry of a batch (§4.4): SHA-256 of its COSE_Sign1 bytes. */
export function batchLeafEntry(sign1: Uint8Array): Uint8Array {
  return sha256(sign1);
}

// ---- signed tree heads ({p}/ledger/head, §4.3: "a receipt with no proofs") ----
//
// The head is a receipt whose payload is attached (the root) instead of being
// recomputed from an inclusion proof, with its size signed in the protected
// header (ISCM_TREE_SIZE_LABEL) and also stated in RFC 9942 form as the trivial
// consistency proof [size, size, []]. Its Sig_structure is byte for byte the
// one a receipt for the same root and size has: both say "the log of this size
// has root R".

export interface TreeHead {
  size: number;
  root: Uint8Array;
  chainId: string;
  iat: number;
}

export async function signTreeHead(signer: ReceiptSigner, h: TreeHead): Promise<Uint8Array> {
  return signSign1(signer, {
    protectedHeader: logProtectedHeader(signer, h.size, h.chainId, h.iat),
    unprotected: new Map([[RECEIPT_LABEL.vdp, new Map([[PROOF.consistency, [proofBstr(h.size, h.size, [])]]])]]),
    payload: h.root,
  });
}

export function verifyTreeHead(bytes: Uint8Array, trusted: readonly TrustedKey[]): TreeHead {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_RECEIPT_BYTES) throw fail('tree head must be at most a receipt in size');
  let d: DecodedSign1;
  try {
    d = decodeSign1(bytes, { tagged: 'optional', maxBytes: MAX_RECEIPT_BYTES });
  } catch (e) {
    if (e instanceof VerifyError) throw fail(`not a COSE_Sign1: ${e.message}`);
    throw e;
  }
  if (d.protected.get(RECEIPT_LABEL.vds) !== VDS.RFC9162_SHA256) throw fail('tree head vds must be 1', 'protected.395');
  if (!(d.payload instanceof Uint8Array) || d.payload.length !== 32) throw fail('tree head payload must be the 32-byte root', 'payload');
  const vdp = d.unprotected.get(RECEIPT_LABEL.vdp);
  const cons = vdp instanceof Map ? vdp.get(PROOF.consistency) : undefined;
  if (!(vdp instanceof Map) || vdp.size !== 1 || !Array.isArray(cons) || cons.length !== 1) throw fail('tree head must state its size as 396 {-2: [[size, size, []]]}', 'unprotected.396');
  const [size1, size2, path] = decodeProofArray(cons[0], 'unprotected.396.-2');
  if (size1 !== size2 || path.length !== 0) throw fail('tree head size proof must be [size, size, []]', 'unprotected.396.-2');
  if (d.protected.get(ISCM_TREE_SIZE_LABEL) !== size1) throw fail(`tree head size ${size1} is not the signed size`, `protected.${ISCM_TREE_SIZE_LABEL}`);
  let lastError: unknown;
  for (const t of candidates(d, trusted)) {
    try {
      verifySign1(d, t.key, { rejectHighS: false });
      const claims = d.protected.get(RECEIPT_LABEL.cwtClaims);
      const iss = claims instanceof Map ? claims.get(CWT.iss) : undefined;
      const iat = claims instanceof Map ? claims.get(CWT.iat) : undefined;
      return { size: size1, root: d.payload, chainId: typeof iss === 'string' ? iss : '', iat: typeof iat === 'number' ? iat : 0 };
    } catch (e) {
      lastError = e;
    }
  }
  throw new VerifyError('SIGNATURE_INVALID', `tree head signature does not verify with a trusted key (${lastError instanceof Error ? lastError.message : String(lastError)})`);
}
