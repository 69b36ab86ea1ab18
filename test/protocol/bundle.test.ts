import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, Tag } from '../../protocol/cbor.js';
import { IscmError, VerifyError } from '../../protocol/errors.js';
import { coseKeyFromPem } from '../../protocol/cose/key.js';
import { decodeEventProof, encodeEventProof, verifyEventProof } from '../../protocol/bundle.js';
import { ledgerPem, makeKey, produceBundles } from '../helpers/independent.js';

const trustedOf = (pem: string) => [{ key: coseKeyFromPem(pem) }];

test('bundles from the independent implementation verify, for each device/ledger algorithm pair', () => {
  for (const dev of ['EdDSA', 'ES256'] as const)
    for (const led of ['EdDSA', 'ES256'] as const) {
      const p = produceBundles(dev, led, { records: 5 });
      p.bundles.forEach((b, i) => {
        const v = verifyEventProof(b, trustedOf(ledgerPem(p.ledgerKey)));
        assert.equal([v.record.seq, v.batch.batchSeq, v.receipt.leafIndex, v.receipt.treeSize], [i + 1, 1, 3, 6]);
      });
    }
});

test('the bundle codec round-trips exactly', () => {
  const p = produceBundles('EdDSA', 'EdDSA', { records: 3 });
  for (const b of p.bundles) assert.equal(Buffer.from(encodeEventProof(decodeEventProof(b))), Buffer.from(b));
});

function reason(b: Uint8Array, trusted: ReturnType<typeof trustedOf>): string {
  try {
    verifyEventProof(b, trusted);
  } catch (e) {
    assert.ok(e instanceof IscmError, `typed error, got ${String(e)}`);
    return (e as Error).message;
  }
  return 'ok';
}

test('tampering: every flipped bit of a bundle is rejected with a typed error', () => {
  const p = produceBundles('ES256', 'EdDSA', { records: 3 });
  const trusted = trustedOf(ledgerPem(p.ledgerKey));
  const b = p.bundles[1];
  let n = 0;
  for (let i = 0; i < b.length; i++)
    for (const bit of [0x01, 0x80]) {
      const t = Uint8Array.from(b);
      t[i] ^= bit;
      assert.is.not(reason(t, trusted), 'ok', `byte ${i} bit ${bit}`);
      n++;
    }
  assert.is(n, b.length * 2);
});

test('tampering: wrong path, leaf index, keys, vds, high-S and truncation each say why', () => {
  const p = produceBundles('ES256', 'ES256', { records: 4 });
  const trusted = trustedOf(ledgerPem(p.ledgerKey));
  const parts = decode(p.bundles[2]) as unknown[];
  const rebuild = (i: number, v: unknown) => encode(parts.map((x, j) => (j === i ? v : x)));
  const pos = parts[1] as [number, Uint8Array[]];

  assert.match(reason(rebuild(1, [pos[0], [...pos[1]].reverse()]), trusted), /record in batch: .*inclusion proof/);
  assert.match(reason(rebuild(1, [3, pos[1]]), trusted), /leaf index 3 does not match seq 3/);
  assert.match(reason(rebuild(1, [2, pos[1].slice(1)]), trusted), /record in batch: proof: has 1 entries/);
  assert.match(reason(rebuild(0, p.records[0]), trusted), /leaf index 2 does not match seq 1/);
  assert.match(reason(rebuild(4, makeKey('ES256').coseKey), trusted), /batch signature: batch kid .* is not the thumbprint/);
  assert.match(reason(p.bundles[2], trustedOf(ledgerPem(makeKey('ES256')))), /receipt: .*untrusted key/);
  const other = produceBundles('ES256', 'ES256', { records: 4 });
  assert.match(reason(rebuild(3, other.receipt), trusted), /receipt: /, 'a receipt for another batch');

  const vds2 = produceBundles('EdDSA', 'EdDSA', { vds: 2 });
  assert.match(reason(vds2.bundles[0], trustedOf(ledgerPem(vds2.ledgerKey))), /unsupported verifiable data structure vds 2/);
  const high = produceBundles('ES256', 'EdDSA', { highS: true });
  assert.match(reason(high.bundles[0], trustedOf(ledgerPem(high.ledgerKey))), /batch signature: .*high-S/i);
  for (const cut of [1, 10, 100, p.bundles[2].length - 1]) assert.is.not(reason(p.bundles[2].subarray(0, cut), trusted), 'ok');
  assert.match(reason(encode(new Tag(18, parts)), trusted), /tag 18 is not allowed/);
});

test('a valid bundle is only valid with the right ledger key set', () => {
  const p = produceBundles('EdDSA', 'ES256');
  const right = trustedOf(ledgerPem(p.ledgerKey));
  const wrong = trustedOf(ledgerPem(makeKey('ES256')));
  assert.is(reason(p.bundles[0], [...wrong, ...right]), 'ok');
  assert.throws(() => verifyEventProof(p.bundles[0], []), (e: unknown) => e instanceof VerifyError);
});

test.run();
