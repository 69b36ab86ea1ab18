// The device's receipt rules (runtime/sync/receipt-check.ts): forged receipts,
// receipts for another device's batch, stale proofs and forks never commit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { sha256, toHex } from '../../protocol/bytes.js';
import { leafHash, MerkleTree } from '../../protocol/merkle.js';
import { signReceipt } from '../../protocol/receipt.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { checkReceipt, TrustedHeadStore } from '../../runtime/sync/receipt-check.js';
import { tempDir } from '../helpers/proc.js';

const ledger = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
const trusted = [{ key: ledger.publicKey }];
const batchA = new Uint8Array([1, 2, 3]);
const batchB = new Uint8Array([4, 5, 6]);

/** A log with batchA at index 2 (and batchB at 5), receipts at any size with consistency from any size. */
function log(n = 8) {
  const t = new MerkleTree();
  for (let i = 0; i < n; i++) t.append(leafHash(i === 2 ? sha256(batchA) : i === 5 ? sha256(batchB) : sha256(new Uint8Array([0xf0, i]))));
  const receipt = (index: number, size: number, from?: number, signer = ledger) =>
    signReceipt(signer, { root: t.root(size), inclusion: { treeSize: size, leafIndex: index, path: t.inclusionProof(index, size) }, ...(from ? { consistency: { size1: from, size2: size, path: t.consistencyProof(from, size) } } : {}), chainId: 'c', iat: 1 });
  return { t, receipt, head: (size: number) => ({ size, root: t.root(size) }) };
}

test('first receipt: verified and trusted (no head yet); the head advances', async () => {
  const l = log();
  const v = checkReceipt(await l.receipt(2, 6), batchA, trusted, undefined);
  assert.is(v.kind, 'commit');
  if (v.kind === 'commit') assert.equal([v.head.size, v.advanced, v.leafIndex], [6, true, 2]);
});

test('a receipt with a consistency proof from the trusted head commits and advances it', async () => {
  const l = log();
  const v = checkReceipt(await l.receipt(5, 8, 4), batchB, trusted, l.head(4));
  assert.is(v.kind, 'commit');
  if (v.kind === 'commit') assert.equal([v.head.size, toHex(v.head.root), v.advanced], [8, toHex(l.t.root(8)), true]);
});

test('a receipt at the trusted head itself (another batch of the same block) commits without moving it', async () => {
  const l = log();
  const v = checkReceipt(await l.receipt(2, 6, 3), batchA, trusted, l.head(6));
  assert.is(v.kind, 'commit');
  if (v.kind === 'commit') assert.is(v.advanced, false);
});

test('a proof from an older head is stale: nothing commits, the batch is re-sent for a fresh proof', async () => {
  const l = log();
  const v = checkReceipt(await l.receipt(5, 8, 3), batchB, trusted, l.head(6));
  assert.is(v.kind, 'stale');
  const none = checkReceipt(await l.receipt(5, 8), batchB, trusted, l.head(6));
  assert.is(none.kind, 'stale', 'no proof at all from the trusted head');
});

test('forged receipts are invalid: another key, another batch (another device\'s), bytes flipped', async () => {
  const l = log();
  const mallory = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
  assert.is(checkReceipt(await l.receipt(2, 6, undefined, mallory), batchA, trusted, undefined).kind, 'invalid');
  assert.is(checkReceipt(await l.receipt(5, 6), batchA, trusted, undefined).kind, 'invalid', "receipt for batchB's leaf presented for batchA");
  const r = await l.receipt(2, 6);
  for (let i = 0; i < r.length; i += 7) {
    const t = Uint8Array.from(r);
    t[i] ^= 0x04;
    assert.is.not(checkReceipt(t, batchA, trusted, undefined).kind, 'commit', `byte ${i}`);
  }
});

test('an inconsistent ledger: a different signed root for the trusted size is a fork; a proof that does not link is inconsistent', async () => {
  const honest = log();
  const forked = (() => {
    const t = new MerkleTree();
    for (let i = 0; i < 8; i++) t.append(leafHash(i === 2 ? sha256(batchA) : i === 5 ? sha256(batchB) : sha256(new Uint8Array([0xee, i]))));
    return t;
  })();
  // The same size with another root.
  const r6 = await signReceipt(ledger, { root: forked.root(6), inclusion: { treeSize: 6, leafIndex: 2, path: forked.inclusionProof(2, 6) }, chainId: 'c', iat: 1 });
  assert.is(checkReceipt(r6, batchA, trusted, honest.head(6)).kind, 'fork');
  // A consistency proof from our size that does not reach our root.
  const r8 = await signReceipt(ledger, { root: forked.root(8), inclusion: { treeSize: 8, leafIndex: 5, path: forked.inclusionProof(5, 8) }, consistency: { size1: 4, size2: 8, path: forked.consistencyProof(4, 8) }, chainId: 'c', iat: 1 });
  assert.is(checkReceipt(r8, batchB, trusted, honest.head(4)).kind, 'inconsistent', 'unsigned proof: re-asked, alarm only if it persists');
});

test('the trusted head survives a restart (atomic file) and a corrupt file is an actionable error', async () => {
  const dir = tempDir();
  const s = new TrustedHeadStore(join(dir, 'head.cbor'));
  assert.is(await s.load(), undefined);
  const l = log();
  await s.save(l.head(7));
  const again = new TrustedHeadStore(join(dir, 'head.cbor'));
  assert.equal(await again.load(), { size: 7, root: l.t.root(7) });
  writeFileSync(join(dir, 'head.cbor'), 'garbage');
  try {
    await new TrustedHeadStore(join(dir, 'head.cbor')).load();
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /corrupt; restore it from backup or remove it/);
  }
});

test.run();
