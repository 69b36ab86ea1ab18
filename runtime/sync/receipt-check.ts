// The device's side of §4.4: a receipt commits a batch only after it is
// verified against the ledger keys in the config AND its root is proved to
// extend the tree head the device already trusts (invariant 2: nothing is
// freed on the word of a log that might be forked).
//
// Rules, in order (the head only ever moves forward along proofs from itself):
//   1. The receipt verifies (signature, inclusion of SHA-256(batch), signed size).
//   2. Its root is trusted when
//      a. the device has no head yet (first contact: trust on first use, as CT
//         clients do; the ledger key is still required), or
//      b. it is the current head (same size and root: receipts of one block), or
//      c. it carries a consistency proof from exactly the current head.
//   3. Otherwise it is *stale* (proved against an older head, or none): not an
//      error, nothing is committed, and the batch is re-sent with the current
//      known_size so the ledger answers with a fresh proof.
//   A root signed for the trusted size that differs from the trusted root is
//   proof of a fork (the size is signed too): alarm, nothing committed. A
//   consistency proof from the trusted head that does not link is suspicious
//   but unsigned: re-asked, and an alarm once it persists (sync.ts).
import { sha256, equalBytes, toHex } from '../../protocol/bytes.js';
import { VerifyError, IscmError } from '../../protocol/errors.js';
import { decode, encode } from '../../protocol/cbor.js';
import { verifyReceipt, receiptProofs, type TrustedKey } from '../../protocol/receipt.js';
import { writeFileAtomic, readFileIfExists } from '../../drivers/fs/atomic.js';

export interface TreeHead {
  size: number;
  root: Uint8Array;
}

export type ReceiptVerdict =
  | { kind: 'commit'; head: TreeHead; advanced: boolean; treeSize: number; leafIndex: number }
  | { kind: 'stale'; reason: string }
  | { kind: 'invalid'; reason: string; code: string }
  /** The consistency proof from our head does not link: a damaged proof or a fork; re-ask, alarm if it persists. */
  | { kind: 'inconsistent'; reason: string }
  /** Proven: two signed roots for one tree size. */
  | { kind: 'fork'; reason: string };

/** Persisted trusted tree head (tiny file, replaced atomically). */
export class TrustedHeadStore {
  private head: TreeHead | undefined;
  constructor(private readonly path: string) {}

  async load(): Promise<TreeHead | undefined> {
    const bytes = await readFileIfExists(this.path);
    if (!bytes) return (this.head = undefined);
    try {
      const v = decode(bytes) as unknown[];
      if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'number' || !(v[1] instanceof Uint8Array) || v[1].length !== 32) throw new Error('shape');
      this.head = { size: v[0], root: Uint8Array.from(v[1]) };
      return this.head;
    } catch {
      throw new IscmError('INVALID_FIELD', `trusted tree head file ${this.path} is corrupt; restore it from backup or remove it to trust the ledger's next head on first use`, 'trusted_head');
    }
  }

  current(): TreeHead | undefined {
    return this.head;
  }

  async save(head: TreeHead): Promise<void> {
    await writeFileAtomic(this.path, encode([head.size, head.root]));
    this.head = { size: head.size, root: Uint8Array.from(head.root) };
  }
}

/** Checks one receipt for one batch against the trusted head (pure; the caller persists). */
export function checkReceipt(receipt: Uint8Array, batchSign1: Uint8Array, trusted: readonly TrustedKey[], head: TreeHead | undefined): ReceiptVerdict {
  const leafEntry = sha256(batchSign1);
  // Which head does the receipt's consistency proof start from? Verify against
  // ours when it starts there; otherwise only signature and inclusion are
  // checked here and the root is judged below (same head, or stale).
  let proofFrom: number | undefined;
  try {
    proofFrom = receiptProofs(receipt).consistency[0]?.size1;
  } catch (e) {
    return { kind: 'invalid', reason: (e as Error).message, code: (e as IscmError).code ?? 'RECEIPT_INVALID' };
  }
  const knownHead = head && proofFrom === head.size ? head : undefined;
  let v;
  try {
    v = knownHead
      ? verifyReceipt(receipt, { leafEntry, trusted, requireSignedSize: true, knownHead })
      : verifyReceipt(receipt, { leafEntry, trusted, requireSignedSize: true, consistency: 'ignore' });
  } catch (e) {
    // The consistency proof is unprotected: failing it proves nothing by
    // itself (a relay may have damaged it), so it is re-asked, not an alarm yet.
    if (e instanceof VerifyError && e.code === 'MERKLE_INVALID' && knownHead && /consistent/.test(e.message)) return { kind: 'inconsistent', reason: e.message };
    return { kind: 'invalid', reason: (e as Error).message, code: (e as IscmError).code ?? 'RECEIPT_INVALID' };
  }
  const treeSize = v.treeSize!;
  const leafIndex = v.leafIndex!;
  const newHead = { size: treeSize, root: v.root };
  if (!head) return { kind: 'commit', head: newHead, advanced: true, treeSize, leafIndex };
  if (treeSize === head.size) {
    if (equalBytes(v.root, head.root)) return { kind: 'commit', head, advanced: false, treeSize, leafIndex };
    return { kind: 'fork', reason: `the ledger signed two roots for size ${treeSize}: ${toHex(head.root).slice(0, 16)}… and ${toHex(v.root).slice(0, 16)}…` };
  }
  if (knownHead && v.consistentFrom === head.size) return { kind: 'commit', head: newHead, advanced: treeSize > head.size, treeSize, leafIndex };
  return { kind: 'stale', reason: `receipt for size ${treeSize} has no consistency proof from the trusted head (size ${head.size})` };
}
