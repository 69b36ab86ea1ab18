// Receipts from one signature per block (ARCHITECTURE §5: "signs the new
// tree head once and publishes one receipt per batch").
//
// A signed tree head (protocol/receipt.ts signTreeHead) and a COSE Receipt for
// the same (size, root) have byte-identical protected headers and the same
// Sig_structure — both say "the log of this size has root R" — so the
// sequencer signs the head once and every receipt of the block reuses that
// signature: protected bytes and signature from the head, the batch's proofs
// in the unprotected header, payload detached. A 10-signatures-per-second
// HSM therefore carries any number of batches per block, and every ledger
// process (not only the sequencer, not only the key holder) can answer a
// duplicate with a receipt against the latest signed head.
//
// (A candidate for protocol/receipt.ts, beside signReceipt.)
import { decode, encode, Tag } from '../protocol/cbor.js';
import { MAX_RECEIPT_BYTES } from '../protocol/limits.js';
import { decodeSign1 } from '../protocol/cose/sign1.js';
import { ISCM_TREE_SIZE_LABEL, PROOF, RECEIPT_LABEL, type ConsistencyProof, type InclusionProof } from '../protocol/receipt.js';
import { LedgerError } from './errors.js';

export interface ParsedTreeHead {
  size: number;
  root: Uint8Array;
  protectedBytes: Uint8Array;
  signature: Uint8Array;
}

/** The parts of our own signed tree head that receipts reuse (no signature check: we made it). */
export function parseTreeHead(sth: Uint8Array): ParsedTreeHead {
  const d = decodeSign1(sth, { tagged: 'optional', maxBytes: MAX_RECEIPT_BYTES });
  const size = d.protected.get(ISCM_TREE_SIZE_LABEL);
  if (typeof size !== 'number' || !(d.payload instanceof Uint8Array) || d.payload.length !== 32)
    throw new LedgerError('STORE_CORRUPT', 'stored tree head lacks its signed size or root');
  return { size, root: d.payload, protectedBytes: d.protectedBytes, signature: d.signature };
}

/** A COSE Receipt (vds 1) for leaf `inclusion.leafIndex` of the tree the head signs. */
export function receiptFromTreeHead(head: ParsedTreeHead, inclusion: InclusionProof, consistency?: ConsistencyProof): Uint8Array {
  if (inclusion.treeSize !== head.size) throw new LedgerError('NOT_FOUND', `inclusion proof is for size ${inclusion.treeSize}, the head for ${head.size}`);
  const vdp = new Map<number, unknown>([[PROOF.inclusion, [encode([inclusion.treeSize, inclusion.leafIndex, inclusion.path])]]]);
  if (consistency) {
    if (consistency.size2 !== head.size) throw new LedgerError('NOT_FOUND', `consistency proof ends at ${consistency.size2}, the head is ${head.size}`);
    vdp.set(PROOF.consistency, [encode([consistency.size1, consistency.size2, consistency.path])]);
  }
  return encode(new Tag(18, [head.protectedBytes, new Map([[RECEIPT_LABEL.vdp, vdp]]), null, head.signature]));
}

/** The tree size a receipt's inclusion proof is for (undefined if it has none). */
export function receiptTreeSize(receipt: Uint8Array): number | undefined {
  const t = decode(receipt, { tags: [18], canonical: false, maxBytes: MAX_RECEIPT_BYTES });
  const a = t instanceof Tag ? (t.value as unknown[]) : (t as unknown[]);
  const vdp = (a[1] as Map<number, unknown>).get(RECEIPT_LABEL.vdp) as Map<number, unknown> | undefined;
  const incl = vdp?.get(PROOF.inclusion) as Uint8Array[] | undefined;
  if (!incl?.[0]) return undefined;
  return (decode(incl[0], { canonical: false }) as number[])[0];
}
