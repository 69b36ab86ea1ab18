import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPublicKey, generateKeyPairSync, X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode, decode, Tag } from '../../protocol/cbor.js';
import { fromHex, sha256, toHex } from '../../protocol/bytes.js';
import { VerifyError, IscmError } from '../../protocol/errors.js';
import { leafHash, rootFromInclusionProof, rootsFromConsistencyProof, inclusionProof, consistencyProof, rootFromLeafHashes } from '../../protocol/merkle.js';
import { decodeSign1, verifySign1 } from '../../protocol/cose/sign1.js';
import { coseKeyFromKeyObject, coseKeyFromPem, thumbprint } from '../../protocol/cose/key.js';
import { receiptProofs, receiptWithoutConsistency, signReceipt, signTreeHead, verifyReceipt, verifyTreeHead, VDS } from '../../protocol/receipt.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { listFiles, readBytes, readJson, vectorDir } from '../helpers/vectors.js';

const code = (c: string) => (e: unknown) => e instanceof VerifyError && e.code === c;

const root = vectorDir('receipts');
if (root) {
  const scitt = join(root, 'scitt-cose-v1', 'v1');
  const ids = ['valid-eddsa', 'valid-es256', 'fail-tampered-path', 'fail-unsupported-vds', 'fail-bad-statement-sig', 'valid-ccf-vds2'];

  test('scitt-cose-v1: all six vectors are present', () => {
    assert.equal(readJson<{ vectors: { id: string }[] }>(root, 'scitt-cose-v1', 'manifest.json').vectors.map((v) => v.id).sort(), [...ids].sort());
  });

  for (const id of ids) {
    test(`scitt-cose-v1/${id}: verdict and reason`, () => {
      const dir = join(scitt, id);
      const exp = readJson(dir, 'expected.json');
      const statement = readBytes(dir, 'statement.cose');
      const receipt = readBytes(dir, 'receipt.cose');
      const logKey = coseKeyFromPem(readFileSync(join(dir, 'log-key.pub'), 'utf8'));
      const issuerKey = coseKeyFromPem(readFileSync(join(dir, 'issuer-key.pub'), 'utf8'));
      const leafEntry = sha256(statement);
      assert.is(toHex(leafEntry), exp.leaf_entry, 'leaf entry = SHA-256(statement bytes)');
      // CCF names its key by hex(SHA-256(SPKI DER)) as text; a trust store would record that.
      const spki = createPublicKey(readFileSync(join(dir, 'log-key.pub'), 'utf8')).export({ type: 'spki', format: 'der' });
      const trusted = [{ key: logKey }, { key: logKey, kid: new TextEncoder().encode(createHash('sha256').update(spki).digest('hex')) }];
      const statementOk = (() => {
        try {
          verifySign1(decodeSign1(statement), issuerKey, { rejectHighS: false });
          return true;
        } catch (e) {
          assert.ok(code('SIGNATURE_INVALID')(e), `statement failure is a signature failure: ${(e as Error).message}`);
          return false;
        }
      })();
      assert.is(statementOk, exp.statement_signature_valid, 'statement signature verdict');

      if (exp.failure_code === 'UNSUPPORTED_VDS') {
        // The default (ISCM) policy accepts vds 1 only, read from the protected header.
        assert.throws(() => verifyReceipt(receipt, { leafEntry, trusted }), (e: unknown) => code('RECEIPT_INVALID')(e) && /unsupported verifiable data structure vds 2/.test((e as Error).message));
        // Even a verifier that knows CCF (vds 2) refuses it: its proof is not a CCF proof.
        assert.throws(() => verifyReceipt(receipt, { leafEntry, trusted, vds: [1, 2] }), code('RECEIPT_INVALID'));
        return;
      }
      if (exp.failure_code === 'TAMPERED_INCLUSION_PATH') {
        assert.throws(() => verifyReceipt(receipt, { leafEntry, trusted }), code('SIGNATURE_INVALID'));
        return;
      }
      const vds = id === 'valid-ccf-vds2' ? [VDS.RFC9162_SHA256, VDS.CCF_LEDGER_SHA256] : [VDS.RFC9162_SHA256];
      const v = verifyReceipt(receipt, { leafEntry, trusted, vds });
      assert.is(toHex(v.root), exp.reconstructed_root);
      if (id !== 'valid-ccf-vds2') {
        assert.is(v.treeSize, exp.tree_size);
        assert.is(v.leafIndex, exp.leaf_index);
        assert.equal(receiptProofs(receipt).inclusion[0].path.map(toHex), exp.inclusion_path);
      } else {
        assert.throws(() => verifyReceipt(receipt, { leafEntry, trusted }), (e: unknown) => /unsupported verifiable data structure vds 2/.test((e as Error).message), 'vds 2 only on request');
      }
      // The receipt is for this statement only.
      assert.throws(() => verifyReceipt(receipt, { leafEntry: sha256(new Uint8Array([1])), trusted, vds }), (e: unknown) => e instanceof VerifyError);
      // And only with the log's key.
      const other = coseKeyFromKeyObject(generateKeyPairSync('ed25519').publicKey);
      assert.throws(() => verifyReceipt(receipt, { leafEntry, trusted: [{ key: other }], vds }), (e: unknown) => e instanceof VerifyError);
      assert.is(statementOk, exp.result === 'VALID', 'overall verdict = statement && receipt');
    });
  }

  test('draft-examples: both receipts parse and their proofs agree on the size-5 root', () => {
    const incl = receiptProofs(readBytes(root, 'draft-examples', 'inclusion-receipt.cbor'));
    const cons = receiptProofs(readBytes(root, 'draft-examples', 'consistency-receipt.cbor'));
    assert.is(incl.decoded.protected.get(395), 1);
    assert.is(new TextDecoder().decode(incl.decoded.kid), 'test-key-1');
    assert.is(incl.decoded.payload, null);
    assert.equal([incl.inclusion[0].treeSize, incl.inclusion[0].leafIndex, incl.inclusion[0].path.length], [5, 3, 3]);
    assert.equal([cons.consistency[0].size1, cons.consistency[0].size2, cons.consistency[0].path.length], [3, 5, 4]);
    const leaf3 = cons.consistency[0].path[1];
    const root5 = rootFromInclusionProof(leaf3, 3, 5, incl.inclusion[0].path);
    assert.is(toHex(root5), '895731b5a570ea1967dd7804b5f43146175f9ac87d1565985de3ecf09c98589c');
    const root3 = fromHex('688928db5e565af2fb9b29db5cce83de0e0352a0f0c671b450b9dc86bed2de3c');
    const r = rootsFromConsistencyProof(3, 5, root3, cons.consistency[0].path);
    assert.is(toHex(r.root2), toHex(root5));
    // Without the matching public key (none is published) verification must refuse, not crash.
    const k = coseKeyFromKeyObject(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    assert.throws(() => verifyReceipt(readBytes(root, 'draft-examples', 'inclusion-receipt.cbor'), { leafEntry: new Uint8Array(32), trusted: [{ key: k }] }), (e: unknown) => e instanceof VerifyError);
  });

  test('ccf-real: a production CCF receipt verifies (vds 2) against its trust store', () => {
    const exp = readJson(root, 'ccf-real', 'expected.json');
    const ts = decodeSign1(readBytes(root, 'ccf-real', 'uvm_0.2.10.cose'), { headerTags: [1] });
    const receipts = ts.unprotected.get(394) as Uint8Array[];
    assert.is(receipts.length, 1);
    // The Signed Statement is the Transparent Statement with its unprotected header emptied.
    const signed = encode(new Tag(18, [ts.protectedBytes, new Map(), ts.payload, ts.signature]));
    assert.is(toHex(sha256(signed)), exp.signed_statement_sha256);
    const store = readJson<{ parameters: { serviceCertificate: string }[] }>(root, 'ccf-real', 'esrp-cts-db.json');
    const trusted = store.parameters.map((p) => {
      const pk = new X509Certificate(Buffer.from(p.serviceCertificate, 'base64')).publicKey;
      const kid = new TextEncoder().encode(createHash('sha256').update(pk.export({ type: 'spki', format: 'der' })).digest('hex'));
      return { key: coseKeyFromKeyObject(pk), kid };
    });
    const v = verifyReceipt(receipts[0], { leafEntry: sha256(signed), trusted, vds: [2] });
    assert.is(toHex(v.root), exp.receipt.computed_root);
    assert.is(v.chainId, 'esrp-cts-db.confidential-ledger.azure.com');
    assert.throws(() => verifyReceipt(receipts[0], { leafEntry: sha256(signed), trusted: trusted.slice(0, 1).map((t) => ({ key: t.key, kid: new Uint8Array(3) })), vds: [2] }), code('RECEIPT_INVALID'));
  });
}

// ---- our own receipts: sign with the software signer, verify inclusion and consistency ----

function log(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => sha256(new TextEncoder().encode(`batch ${i}`)));
}

test('receipts we sign verify, with consistency from the device\'s known tree head', async () => {
  for (const alg of [ALG.EdDSA, ALG.ES256]) {
    const priv = alg === ALG.EdDSA ? generateKeyPairSync('ed25519').privateKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const signer = softwareSignerFromKey(alg, priv);
    const trusted = [{ key: signer.publicKey }];
    const entries = log(13);
    const hashes = entries.map(leafHash);
    const root13 = rootFromLeafHashes(hashes);
    const root7 = rootFromLeafHashes(hashes.slice(0, 7));
    const r = await signReceipt(signer, {
      root: root13,
      inclusion: { treeSize: 13, leafIndex: 9, path: inclusionProof(hashes, 9) },
      consistency: { size1: 7, size2: 13, path: consistencyProof(hashes, 7, 13) },
      chainId: 'consortium-1',
      iat: 1_764_000_000,
    });
    const d = decodeSign1(r);
    assert.equal([...d.protected.keys()], [1, 4, 15, 395, -65537], 'deterministic header order');
    assert.is(toHex(d.kid!), toHex(thumbprint(signer.publicKey)));
    const v = verifyReceipt(r, { leafEntry: entries[9], trusted, knownHead: { size: 7, root: root7 } });
    assert.equal([v.treeSize, v.leafIndex, v.consistentFrom, v.chainId, v.iat], [13, 9, 7, 'consortium-1', 1_764_000_000]);
    assert.is(toHex(v.root), toHex(root13));
    // A forked log: the device's head is not a prefix of this one.
    assert.throws(() => verifyReceipt(r, { leafEntry: entries[9], trusted, knownHead: { size: 7, root: sha256(new Uint8Array(1)) } }), code('MERKLE_INVALID'));
    assert.throws(() => verifyReceipt(r, { leafEntry: entries[9], trusted, knownHead: { size: 6, root: root7 } }), code('RECEIPT_INVALID'));
    assert.throws(() => verifyReceipt(r, { leafEntry: entries[8], trusted }), code('SIGNATURE_INVALID'), 'another leaf');
    // No consistency proof: only the same head is acceptable as the known one.
    const plain = await signReceipt(signer, { root: root13, inclusion: { treeSize: 13, leafIndex: 2, path: inclusionProof(hashes, 2) }, chainId: 'c', iat: 1 });
    assert.throws(() => verifyReceipt(plain, { leafEntry: entries[2], trusted, knownHead: { size: 7, root: root7 } }), code('RECEIPT_INVALID'));
    verifyReceipt(plain, { leafEntry: entries[2], trusted, knownHead: { size: 13, root: root13 } });
    // Untrusted key: named by kid.
    const other = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
    assert.throws(() => verifyReceipt(r, { leafEntry: entries[9], trusted: [{ key: other.publicKey }] }), (e: unknown) => code('RECEIPT_INVALID')(e) && /untrusted key/.test((e as Error).message));
  }
});

test('receiptWithoutConsistency: the inclusion-only receipt a bundle carries, still signed by the ledger', async () => {
  const signer = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
  const trusted = [{ key: signer.publicKey }];
  const entries = log(13);
  const hashes = entries.map(leafHash);
  const r = await signReceipt(signer, { root: rootFromLeafHashes(hashes), inclusion: { treeSize: 13, leafIndex: 9, path: inclusionProof(hashes, 9) }, consistency: { size1: 7, size2: 13, path: consistencyProof(hashes, 7, 13) }, chainId: 'c', iat: 1 });
  assert.throws(() => verifyReceipt(r, { leafEntry: entries[9], trusted }), (e: unknown) => e instanceof VerifyError && /no tree head to check it against/.test((e as Error).message), 'an offline verifier cannot use the consistency proof');
  const plain = receiptWithoutConsistency(r);
  assert.ok(plain.length < r.length);
  assert.equal(receiptProofs(plain).consistency, []);
  const v = verifyReceipt(plain, { leafEntry: entries[9], trusted, requireSignedSize: true });
  assert.equal([v.treeSize, v.leafIndex], [13, 9]);
  assert.is(toHex(decodeSign1(plain).signature), toHex(decodeSign1(r).signature), 'the same signature');
  assert.is(receiptWithoutConsistency(plain), plain, 'nothing to drop: the very bytes');
});

test('every single-byte change to a receipt is rejected with a typed error', async () => {
  const signer = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
  const entries = log(5);
  const hashes = entries.map(leafHash);
  const r = await signReceipt(signer, { root: rootFromLeafHashes(hashes), inclusion: { treeSize: 5, leafIndex: 4, path: inclusionProof(hashes, 4) }, chainId: 'c', iat: 1 });
  let rejected = 0;
  for (let i = 0; i < r.length; i++) {
    const t = Uint8Array.from(r);
    t[i] ^= 0x01;
    try {
      verifyReceipt(t, { leafEntry: entries[4], trusted: [{ key: signer.publicKey }] });
    } catch (e) {
      assert.ok(e instanceof IscmError, `byte ${i}: ${String(e)}`);
      rejected++;
    }
  }
  // A flip inside the CWT iss text may yield another valid string but changes the signed bytes: all must fail.
  assert.is(rejected, r.length);
});

test('signed tree heads: the same Sig_structure as a receipt, size bound by the root', async () => {
  const signer = softwareSignerFromKey(ALG.ES256, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  const hashes = log(9).map(leafHash);
  const root9 = rootFromLeafHashes(hashes);
  const head = await signTreeHead(signer, { size: 9, root: root9, chainId: 'c1', iat: 5 });
  assert.equal(verifyTreeHead(head, [{ key: signer.publicKey }]), { size: 9, root: root9, chainId: 'c1', iat: 5 });
  const tampered = decode(head, { tags: [18] }) as Tag;
  const arr = tampered.value as unknown[];
  const forged = encode(new Tag(18, [arr[0], arr[1], sha256(new Uint8Array(2)), arr[3]]));
  assert.throws(() => verifyTreeHead(forged, [{ key: signer.publicKey }]), code('SIGNATURE_INVALID'));
});

test.run();
