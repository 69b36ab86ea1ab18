// Batches and receipts (§4.2, §4.4) across an independent COSE implementation
// from the npm registry (@auth0/cose): the project signs and @auth0/cose
// verifies, and the reverse.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { Sign1 } from '@auth0/cose';
import { decode } from '../../protocol/cbor.js';
import { sha256, toHex } from '../../protocol/bytes.js';
import { BATCH_CONTENT_TYPE, decodeBatchHeader, encodeBatchHeader } from '../../protocol/batch.js';
import { signBatch, verifyBatch } from '../../protocol/batch-sign.js';
import { signReceipt, verifyReceipt, batchLeafEntry } from '../../protocol/receipt.js';
import { leafHash, rootFromLeafHashes, inclusionProof } from '../../protocol/merkle.js';
import { ALG, isHighS } from '../../protocol/cose/algorithms.js';
import { coseKeyFromKeyObject, thumbprint } from '../../protocol/cose/key.js';
import { decodeSign1 } from '../../protocol/cose/sign1.js';
import { IscmError } from '../../protocol/errors.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { recordChain } from '../helpers/fixtures.js';

const pairs = {
  EdDSA: () => generateKeyPairSync('ed25519'),
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
};

function header() {
  const { bytes } = recordChain('interop-1', 8);
  return { deviceId: 'interop-1', batchSeq: 1, firstSeq: 1, count: 8, root: rootFromLeafHashes(bytes.map(leafHash)), prev: new Uint8Array(32), time: 1_764_000_000_000 };
}

for (const [name, gen] of Object.entries(pairs)) {
  const alg = name === 'EdDSA' ? ALG.EdDSA : ALG.ES256;

  test(`${name}: a batch the project signs verifies with @auth0/cose`, async () => {
    const kp = gen();
    const signer = softwareSignerFromKey(alg, kp.privateKey);
    const h = header();
    const batch = await signBatch(signer, h);
    const msg = Sign1.decode(batch);
    await msg.verify(kp.publicKey);
    assert.equal(decodeBatchHeader(new Uint8Array(msg.payload)), h);
    assert.is((msg.protectedHeaders as unknown as Map<number, unknown>).get(3), BATCH_CONTENT_TYPE);
  });

  test(`${name}: a receipt the project signs verifies with @auth0/cose (detached root)`, async () => {
    const kp = gen();
    const signer = softwareSignerFromKey(alg, kp.privateKey);
    const entries = Array.from({ length: 11 }, (_, i) => sha256(new Uint8Array([i])));
    const hashes = entries.map(leafHash);
    const root = rootFromLeafHashes(hashes);
    const receipt = await signReceipt(signer, { root, inclusion: { treeSize: 11, leafIndex: 4, path: inclusionProof(hashes, 4) }, chainId: 'c', iat: 1 });
    const msg = Sign1.decode(receipt);
    await msg.verify(kp.publicKey, { detachedPayload: root });
    let rejected = false;
    await msg.verify(kp.publicKey, { detachedPayload: sha256(root) }).catch(() => (rejected = true));
    assert.ok(rejected, '@auth0/cose rejects another root');
  });

  test(`${name}: a batch signed by @auth0/cose verifies with the project (high-S refused by policy)`, async () => {
    const kp = gen();
    const key = coseKeyFromKeyObject(kp.publicKey);
    const h = header();
    let low = 0;
    let high = 0;
    for (let i = 0; i < 24 && (low < 2 || (alg === ALG.ES256 && high < 1)); i++) {
      const signed = await Sign1.sign(
        new Map<number, unknown>([[1, alg], [3, BATCH_CONTENT_TYPE], [4, thumbprint(key)]]) as never,
        new Map() as never,
        encodeBatchHeader({ ...h, time: h.time + i }),
        kp.privateKey,
      );
      const bytes = new Uint8Array(signed.encode());
      const d = decodeSign1(bytes);
      if (alg === ALG.ES256 && isHighS(d.signature, 'P-256')) {
        high++;
        assert.throws(() => verifyBatch(bytes, key), (e: unknown) => e instanceof IscmError && /high-S/.test((e as Error).message));
      } else {
        low++;
        assert.is(verifyBatch(bytes, key).time, h.time + i);
      }
    }
    assert.ok(low >= 2, 'low-S batches verified');
  });

  test(`${name}: a receipt signed by @auth0/cose verifies with the project`, async () => {
    const kp = gen();
    const key = coseKeyFromKeyObject(kp.publicKey);
    const batchBytes = new Uint8Array([0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40]);
    const entries = [sha256(new Uint8Array([9])), batchLeafEntry(batchBytes), sha256(new Uint8Array([7]))];
    const hashes = entries.map(leafHash);
    const root = rootFromLeafHashes(hashes);
    const proof = (await import('../../protocol/cbor.js')).encode([3, 1, inclusionProof(hashes, 1)]);
    const prot = new Map<number, unknown>([[1, alg], [4, thumbprint(key)], [395, 1], [15, new Map<number, unknown>([[1, 'auth0-chain'], [6, 5]])], [-65537, 3]]);
    const signed = await Sign1.sign(prot as never, new Map([[396, new Map([[-1, [proof]]])]]) as never, root, kp.privateKey);
    const attached = Sign1.decode(new Uint8Array(signed.encode()));
    const detached = new Uint8Array(new Sign1(attached.protectedHeaders as never, attached.unprotectedHeaders as never, null as never, attached.signature).encode());
    assert.is((decode(detached, { tags: [18] }) as { value: unknown[] }).value[2], null, 'payload detached on the wire');
    const v = verifyReceipt(detached, { leafEntry: entries[1], trusted: [{ key }], requireSignedSize: true });
    assert.equal([v.treeSize, v.leafIndex, v.chainId, toHex(v.root)], [3, 1, 'auth0-chain', toHex(root)]);
    assert.throws(() => verifyReceipt(detached, { leafEntry: entries[0], trusted: [{ key }] }), (e: unknown) => e instanceof IscmError);
  });
}

test.run();
