// The device registry: operator-signed enrollment and revocation claims
// (format in ledger/registry.ts and docs/LEDGER.md), verified on submit and
// again on every load from the store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { decode, encode, Tag } from '../../protocol/cbor.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { thumbprint } from '../../protocol/cose/key.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { LedgerError } from '../../ledger/errors.js';
import { MemoryKv } from '../../ledger/store/memory-kv.js';
import { LedgerStore } from '../../ledger/store/store.js';
import { Registry, signEnrollment, signRevocation, verifyClaim, ENROLL_CONTENT_TYPE } from '../../ledger/registry.js';

const op = softwareSignerFromKey(ALG.ES256, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
const rogue = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
const dev = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
const dev2 = softwareSignerFromKey(ALG.ES256, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);

function fresh() {
  const store = new LedgerStore(new MemoryKv());
  return { store, reg: new Registry(store, [op.publicKey], 'chain-a', 0) };
}

async function refused(p: Promise<unknown> | (() => unknown), re: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.instance(e, LedgerError);
    assert.is((e as LedgerError).code, 'REGISTRY');
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`accepted; expected ${re}`);
}

test('an enrollment claim round-trips and enables the key for its validity window', async () => {
  const { reg } = fresh();
  const now = Date.now();
  const claim = await signEnrollment(op, { deviceId: 'truck-7', key: dev.publicKey, notBefore: now - 1000, notAfter: now + 60_000, issuedAt: now, chainId: 'chain-a' });
  const c = verifyClaim(claim, [op.publicKey], 'chain-a');
  assert.is(c.kind, 'enroll');
  assert.is(c.deviceId, 'truck-7');
  await reg.submit(claim);
  const ok = await reg.lookup('truck-7', dev.kid, now);
  assert.ok(ok.ok);
  assert.match(((await reg.lookup('truck-7', dev.kid, now - 5000)) as { reason: string }).reason, /not valid before/);
  assert.match(((await reg.lookup('truck-7', dev.kid, now + 61_000)) as { reason: string }).reason, /expired/);
  assert.match(((await reg.lookup('truck-7', dev2.kid, now)) as { reason: string }).reason, /no enrolled key with kid/);
  assert.match(((await reg.lookup('truck-8', dev.kid, now)) as { reason: string }).reason, /not enrolled/);
});

test('claims from an untrusted operator, for another chain, tampered, or malformed are refused', async () => {
  const { reg } = fresh();
  const now = Date.now();
  await refused(reg.submit(await signEnrollment(rogue, { deviceId: 'd', key: dev.publicKey, notBefore: 0, issuedAt: now })), /not among the trusted operator keys/);
  await refused(reg.submit(await signEnrollment(op, { deviceId: 'd', key: dev.publicKey, notBefore: 0, issuedAt: now, chainId: 'chain-b' })), /for chain "chain-b"/);
  const good = await signEnrollment(op, { deviceId: 'd', key: dev.publicKey, notBefore: 0, issuedAt: now });
  const t = decode(good, { tags: [18] }) as Tag;
  const a = t.value as Uint8Array[];
  const payload = decode(a[2]) as Map<number, unknown>;
  payload.set(1, 'other-device');
  const tampered = encode(new Tag(18, [a[0], a[1], encode(payload), a[3]]));
  await refused(reg.submit(tampered), /signature|verify/i);
  await refused(reg.submit(new Uint8Array([1, 2, 3])), /invalid claim|COSE/);
  // Unknown payload key.
  payload.set(1, 'd').set(99, 'x');
  const extra = await (async () => {
    const { signSign1 } = await import('../../protocol/cose/sign1.js');
    return signSign1(op, { protectedHeader: new Map<number, unknown>([[1, op.alg], [3, ENROLL_CONTENT_TYPE], [4, op.kid]]), payload: encode(payload) });
  })();
  await refused(reg.submit(extra), /unknown key 99/);
  assert.is((await reg.keys('d')).length, 0);
});

test('revocation is final for that key; a newer enrollment cannot undo it; another key still works', async () => {
  const { reg } = fresh();
  const now = Date.now();
  await reg.submit(await signEnrollment(op, { deviceId: 'r', key: dev.publicKey, notBefore: 0, issuedAt: now }));
  await reg.submit(await signEnrollment(op, { deviceId: 'r', key: dev2.publicKey, notBefore: 0, issuedAt: now }));
  await reg.submit(await signRevocation(op, { deviceId: 'r', kid: dev.kid, issuedAt: now + 1, reason: 'stolen' }));
  await reg.submit(await signEnrollment(op, { deviceId: 'r', key: dev.publicKey, notBefore: 0, issuedAt: now + 2 }));
  const l = await reg.lookup('r', dev.kid);
  assert.not.ok(l.ok);
  assert.match((l as { reason: string }).reason, /revoked \(stolen\)/);
  assert.ok((await reg.lookup('r', dev2.kid)).ok);
  // An older enrollment than the stored one is refused (no rollback of not_after).
  await refused(reg.submit(await signEnrollment(op, { deviceId: 'r', key: dev2.publicKey, notBefore: 0, notAfter: now + 10, issuedAt: now - 5 })), /later enrollment/);
});

test('a claim written to the store behind the ledger\'s back is ignored on load', async () => {
  const { store, reg } = fresh();
  const forged = await signEnrollment(rogue, { deviceId: 'sneaky', key: dev.publicKey, notBefore: 0, issuedAt: Date.now() });
  await store.putClaim({ kind: 'enroll', deviceId: 'sneaky', kid: thumbprint(dev.publicKey), claim: forged });
  const l = await reg.lookup('sneaky', dev.kid);
  assert.not.ok(l.ok);
  assert.is(reg.invalidStored.length > 0, true);
  assert.match(reg.invalidStored[0], /not among the trusted operator keys/);
});

test.run();
