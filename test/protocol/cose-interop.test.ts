// Interop with an independent COSE implementation (@auth0/cose 1.x, node
// runtime, node:crypto KeyObjects): the project signs and @auth0/cose
// verifies, and the reverse, for EdDSA, ES256, PS256 and PS384, attached and detached.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Sign1 } from '@auth0/cose';
import { IscmError } from '../../protocol/errors.js';
import { toHex } from '../../protocol/bytes.js';
import { ALG, createRawSigner, isHighS, normalizeLowS } from '../../protocol/cose/algorithms.js';
import { coseKeyFromKeyObject, thumbprint } from '../../protocol/cose/key.js';
import { decodeSign1, signSign1, verifySign1, type CoseSigner } from '../../protocol/cose/sign1.js';

const te = new TextEncoder();
const PAYLOAD = te.encode('batch header bytes');

interface Case {
  name: string;
  alg: number;
  pair: { privateKey: KeyObject; publicKey: KeyObject };
}
const CASES: Case[] = [
  { name: 'EdDSA', alg: ALG.EdDSA, pair: generateKeyPairSync('ed25519') },
  { name: 'ES256', alg: ALG.ES256, pair: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) },
  { name: 'PS256', alg: ALG.PS256, pair: generateKeyPairSync('rsa', { modulusLength: 2048 }) },
  { name: 'PS384', alg: ALG.PS384, pair: generateKeyPairSync('rsa', { modulusLength: 2048 }) },
];

function projectSigner(c: Case): CoseSigner {
  const raw = createRawSigner(c.alg, c.pair.privateKey);
  return { alg: c.alg, publicKey: coseKeyFromKeyObject(c.pair.publicKey), sign: async (d) => raw(d) };
}

async function auth0Rejects(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, Error);
    return;
  }
  assert.unreachable('@auth0/cose accepted a bad message');
}

for (const c of CASES) {
  test(`${c.name}: project signs (attached), @auth0/cose verifies`, async () => {
    const kid = thumbprint(coseKeyFromKeyObject(c.pair.publicKey));
    const bytes = await signSign1(projectSigner(c), { protectedHeader: new Map<number, unknown>([[4, kid]]), payload: PAYLOAD });
    const msg = Sign1.decode(bytes);
    assert.is(msg.alg as number, c.alg);
    assert.is(toHex(msg.payload), toHex(PAYLOAD));
    await msg.verify(c.pair.publicKey);
    // And @auth0/cose notices a wrong external AAD or another key.
    await auth0Rejects(msg.verify(c.pair.publicKey, { externalAAD: te.encode('x') }));
    const other =
      c.alg === ALG.EdDSA ? generateKeyPairSync('ed25519') : c.alg === ALG.ES256 ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
    await auth0Rejects(msg.verify(other.publicKey));
  });

  test(`${c.name}: project signs (detached, external AAD), @auth0/cose verifies`, async () => {
    const aad = te.encode('aad');
    const bytes = await signSign1(projectSigner(c), { protectedHeader: new Map(), payload: PAYLOAD, detached: true, externalAad: aad });
    const msg = Sign1.decode(bytes);
    assert.is(msg.payload, null as unknown as Uint8Array);
    await msg.verify(c.pair.publicKey, { detachedPayload: PAYLOAD, externalAAD: aad });
    await auth0Rejects(msg.verify(c.pair.publicKey, { detachedPayload: te.encode('other'), externalAAD: aad }));
  });

  test(`${c.name}: @auth0/cose signs (attached and detached), project verifies`, async () => {
    const pub = coseKeyFromKeyObject(c.pair.publicKey);
    const signed = await Sign1.sign(new Map([[1, c.alg]]) as never, new Map([[4, new Uint8Array([1, 2, 3])]]) as never, PAYLOAD, c.pair.privateKey);
    const bytes = new Uint8Array(signed.encode());
    const d = decodeSign1(bytes);
    assert.is(d.alg, c.alg);
    assert.is(toHex(d.kid!), '010203');
    // Foreign ECDSA is not normalised to low-S, so verify it as foreign COSE.
    verifySign1(d, pub, { rejectHighS: false });
    // Detached: same signature, payload replaced by nil on the wire.
    const detached = new Uint8Array(new Sign1(d.protectedBytes, d.unprotected as Map<number, unknown>, null as unknown as Uint8Array, d.signature).encode());
    const dd = decodeSign1(detached);
    assert.is(dd.payload, null);
    verifySign1(dd, pub, { detachedPayload: PAYLOAD, rejectHighS: false });
    try {
      verifySign1(dd, pub, { detachedPayload: te.encode('tampered'), rejectHighS: false });
      assert.unreachable('tampered detached payload verified');
    } catch (e) {
      assert.instance(e, IscmError);
      assert.is((e as IscmError).code, 'SIGNATURE_INVALID');
    }
  });
}

test('ES256 from @auth0/cose: high-S output is rejected by default and verifies once normalised', async () => {
  const c = CASES[1];
  const pub = coseKeyFromKeyObject(c.pair.publicKey);
  let high = 0;
  let low = 0;
  for (let i = 0; i < 64 && (high < 2 || low < 2); i++) {
    const signed = await Sign1.sign(new Map([[1, c.alg]]) as never, undefined, te.encode(`m${i}`), c.pair.privateKey);
    const d = decodeSign1(new Uint8Array(signed.encode()));
    if (isHighS(d.signature, 'P-256')) {
      high++;
      try {
        verifySign1(d, pub);
        assert.unreachable('high-S accepted by default');
      } catch (e) {
        assert.is((e as IscmError).code, 'SIGNATURE_INVALID');
        assert.match((e as Error).message, /high-S/);
      }
      const fixed = { ...d, signature: normalizeLowS(d.signature, 'P-256') };
      verifySign1(fixed, pub);
      // @auth0/cose accepts the normalised form as well (both are valid ECDSA).
      await Sign1.decode(new Uint8Array(new Sign1(d.protectedBytes, new Map(), d.payload!, fixed.signature).encode())).verify(c.pair.publicKey);
    } else {
      low++;
      verifySign1(d, pub);
    }
  }
  assert.ok(high >= 2 && low >= 2, `saw ${high} high-S and ${low} low-S signatures`);
});

test.run();
