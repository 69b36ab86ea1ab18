// Receipts from one signed tree head per block (ledger/receipts.ts): the
// receipt reuses the head's protected header and signature, carries the
// batch's proofs, and verifies with the project's verifier and with an
// independent stack (@auth0/cose for COSE, cbor-x for CBOR, a textbook
// RFC 9162 §2.1.3.2 root computation here).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { Sign1 } from '@auth0/cose';
import { Decoder } from 'cbor-x';
import { sha256, toHex } from '../../protocol/bytes.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { coseKeyToKeyObject } from '../../protocol/cose/key.js';
import { MerkleTree } from '../../protocol/merkle.js';
import { signReceipt, signTreeHead, verifyReceipt, verifyTreeHead, batchLeafEntry } from '../../protocol/receipt.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { parseTreeHead, receiptFromTreeHead, receiptTreeSize } from '../../ledger/receipts.js';
import { IscmError } from '../../protocol/errors.js';

const xdec = new Decoder({ mapsAsObjects: false, useRecords: false } as ConstructorParameters<typeof Decoder>[0]);
// @auth0/cose registers tag 18 with cbor-x (decoding to its Sign1); take the raw array by dropping the tag byte.
const sign1Array = (b: Uint8Array): unknown[] => {
  assert.is(b[0], 0xd2, 'tag 18');
  return xdec.decode(b.subarray(1)) as unknown[];
};
const H = (...p: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const x of p) h.update(x);
  return new Uint8Array(h.digest());
};

/** RFC 9162 §2.1.3.2, as written there. */
function textbookRoot(leafEntry: Uint8Array, index: number, size: number, path: Uint8Array[]): Uint8Array {
  let fn = index;
  let sn = size - 1;
  let r = H(new Uint8Array([0]), leafEntry);
  for (const p of path) {
    if (sn === 0) throw new Error('path too long');
    if (fn % 2 === 1 || fn === sn) {
      r = H(new Uint8Array([1]), p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else r = H(new Uint8Array([1]), r, p);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('path too short');
  return r;
}

for (const [name, alg, pair] of [
  ['ES256', ALG.ES256, generateKeyPairSync('ec', { namedCurve: 'prime256v1' })],
  ['EdDSA', ALG.EdDSA, generateKeyPairSync('ed25519')],
] as const) {
  test(`${name}: receipts from one signed head verify (project verifier, consistency from known size)`, async () => {
    const signer = softwareSignerFromKey(alg, pair.privateKey);
    const entries = Array.from({ length: 37 }, (_, i) => sha256(new TextEncoder().encode(`batch ${i}`)));
    const tree = MerkleTree.fromLeaves(entries);
    const sth = await signTreeHead(signer, { size: 37, root: tree.root(), chainId: 'c', iat: 1_764_000_000 });
    const th = parseTreeHead(sth);
    assert.is(th.size, 37);
    for (const i of [0, 17, 36]) {
      const known = 20;
      const r = receiptFromTreeHead(th, { treeSize: 37, leafIndex: i, path: tree.inclusionProof(i) }, { size1: known, size2: 37, path: tree.consistencyProof(known, 37) });
      assert.is(receiptTreeSize(r), 37);
      const v = verifyReceipt(r, { leafEntry: entries[i], trusted: [{ key: signer.publicKey }], knownHead: { size: known, root: tree.root(known) }, requireSignedSize: true });
      assert.is(v.leafIndex, i);
      assert.is(v.consistentFrom, known);
      assert.is(toHex(v.root), toHex(tree.root()));
      // The wrong leaf does not verify: the signature is over the recomputed root.
      try {
        verifyReceipt(r, { leafEntry: entries[(i + 1) % 37], trusted: [{ key: signer.publicKey }], knownHead: { size: known, root: tree.root(known) } });
        assert.unreachable('receipt verified for another leaf');
      } catch (e) {
        assert.instance(e, IscmError);
      }
    }
    // Same protected bytes as a receipt signed the usual way for that root and size.
    const direct = await signReceipt(signer, { root: tree.root(), inclusion: { treeSize: 37, leafIndex: 3, path: tree.inclusionProof(3) }, chainId: 'c', iat: 1_764_000_000 });
    const viaHead = receiptFromTreeHead(th, { treeSize: 37, leafIndex: 3, path: tree.inclusionProof(3) });
    const pd = sign1Array(direct)[0] as Uint8Array;
    const ph = sign1Array(viaHead)[0] as Uint8Array;
    assert.is(toHex(ph), toHex(pd));
    assert.is(verifyTreeHead(sth, [{ key: signer.publicKey }]).size, 37);
  });

  test(`${name}: an independent stack verifies the receipt (cbor-x, textbook RFC 9162, @auth0/cose)`, async () => {
    const signer = softwareSignerFromKey(alg, pair.privateKey);
    const batch = new TextEncoder().encode('a batch COSE_Sign1, for the leaf rule');
    const entries = [sha256(new TextEncoder().encode('x')), batchLeafEntry(batch), sha256(new TextEncoder().encode('y')), sha256(new TextEncoder().encode('z')), sha256(new TextEncoder().encode('w'))];
    const tree = MerkleTree.fromLeaves(entries);
    const th = parseTreeHead(await signTreeHead(signer, { size: 5, root: tree.root(), chainId: 'c', iat: 1 }));
    const receipt = receiptFromTreeHead(th, { treeSize: 5, leafIndex: 1, path: tree.inclusionProof(1) });
    const [, unprot, payload] = sign1Array(receipt) as [Uint8Array, Map<number, unknown>, null, Uint8Array];
    assert.is(payload, null);
    const vdp = unprot.get(396) as Map<number, Uint8Array[]>;
    const [size, index, path] = xdec.decode(vdp.get(-1)![0]) as [number, number, Uint8Array[]];
    assert.equal([size, index], [5, 1]);
    const root = textbookRoot(H(batch), index, size, path);
    const msg = Sign1.decode(receipt);
    await msg.verify(coseKeyToKeyObject(signer.publicKey), { detachedPayload: root });
    let refused = false;
    try {
      await msg.verify(coseKeyToKeyObject(signer.publicKey), { detachedPayload: textbookRoot(H(new Uint8Array([1])), index, size, path) });
    } catch {
      refused = true;
    }
    assert.ok(refused, '@auth0/cose refused a receipt for another leaf');
  });
}

test.run();
