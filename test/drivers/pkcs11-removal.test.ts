// Token removal mid-run, with a real SoftHSM2 token: the token's directory is
// moved out of SoftHSM's token dir (the token "is unplugged") and back. The
// signer reports TOKEN_NOT_PRESENT while it is away, re-opens when it is back
// (fresh C_Initialize), refuses a different key under the same name, never
// retries a wrong PIN, and the process stays up throughout.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../protocol/bytes.js';
import { ALG, verifySignature } from '../../protocol/cose/algorithms.js';
import { openPkcs11Signer, type Pkcs11Signer } from '../../drivers/pkcs11/signer.js';
import { Pkcs11Token } from '../../drivers/pkcs11/token.js';
import { Pkcs11DriverError } from '../../drivers/pkcs11/errors.js';
import type { Pkcs11Api } from '../../drivers/pkcs11/module.js';
import { createSoftHsm, haveSoftHsm, useSoftHsm } from '../helpers/softhsm.js';
import { tempDir, waitUntil } from '../helpers/proc.js';

const SUITE = 'pkcs11 token removal (SoftHSM2)';
const te = new TextEncoder();

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (!(e instanceof Pkcs11DriverError)) throw e;
    return e.reason;
  }
}

function loginSpy() {
  const calls = { login: 0 };
  const wrap = (api: Pkcs11Api): Pkcs11Api =>
    new Proxy(api, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (prop === 'C_Login') calls.login++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  return { calls, wrap };
}

if (haveSoftHsm(SUITE)) {
  const hsm = createSoftHsm(['gw-a', 'gw-b']);
  useSoftHsm(hsm);
  const M = hsm.module;
  const env = { ISCM_PKCS11_PIN: hsm.pin };
  const dir = tempDir('iscm-p11rm-');

  async function keygen(token: string, label: string, alg: number = ALG.ES256): Promise<string> {
    const t = await Pkcs11Token.open({ module: M, token, env, rw: true });
    try {
      return toHex(t.generateKeyPair({ alg, label }).kid!);
    } finally {
      await t.close();
    }
  }

  async function signOk(s: Pkcs11Signer, what: string): Promise<void> {
    const m = te.encode(what);
    verifySignature(s.alg, s.publicKey, m, await s.sign(m));
  }

  let kidA = '';
  let kidB = '';

  test('setup: one key on each token', async () => {
    kidA = await keygen('gw-a', 'batch');
    kidB = await keygen('gw-b', 'batch', ALG.EdDSA);
    assert.is(kidA.length, 64);
  });

  test('token removed mid-run: TOKEN_NOT_PRESENT (typed, fast), re-opened with the same key when it returns', async () => {
    const spy = loginSpy();
    const s = await openPkcs11Signer({ module: M, token: 'gw-a', label: 'batch', env, reopenIntervalMs: 50, wrapApi: spy.wrap });
    try {
      await signOk(s, 'before');
      // Signing continuously while the token goes away.
      let stop = false;
      const seen = new Map<string, number>();
      const loop = (async () => {
        while (!stop) {
          const r = await reason(s.sign(te.encode('during')));
          seen.set(r, (seen.get(r) ?? 0) + 1);
          await new Promise((res) => setImmediate(res));
        }
      })();
      await waitUntil(() => (seen.get('ok') ?? 0) > 10, 30_000, 'signs before removal');
      const putBack = hsm.removeToken('gw-a');
      await waitUntil(() => s.status().state === 'lost' && (seen.get('TOKEN_NOT_PRESENT') ?? 0) > 3, 30_000, 'the signer to notice the removal');
      const st = s.status();
      assert.is(st.lastError?.reason, 'TOKEN_NOT_PRESENT');
      assert.match(st.lastError!.message, /not present \(removed\?\).*re-opens it when it returns/);
      putBack();
      await waitUntil(() => s.status().state === 'ready', 30_000, 'the signer to re-open the returned token');
      const okBefore = seen.get('ok') ?? 0;
      await waitUntil(() => (seen.get('ok') ?? 0) > okBefore + 10, 30_000, 'signs after the return');
      stop = true;
      await loop;
      assert.equal([...seen.keys()].filter((k) => k !== 'ok' && k !== 'TOKEN_NOT_PRESENT'), [], `only ok and TOKEN_NOT_PRESENT outcomes: ${JSON.stringify([...seen])}`);
      assert.is(toHex(s.kid), kidA, 'same key after re-open');
      await signOk(s, 'after');
      const stats = s.status().stats;
      assert.ok(stats.reopens >= 1, 'reopened');
      assert.is(spy.calls.login, 1 + stats.reopens, 'one C_Login per successful (re)open, none per failed attempt while the token was away');
      assert.ok(stats.reopenAttempts < (seen.get('TOKEN_NOT_PRESENT') ?? 0) + 2, 'attempts are rate-limited, not one per sign');
    } finally {
      await s.close();
    }
  });

  test('a second signer on the same module rides out the re-initialisation', async () => {
    const a = await openPkcs11Signer({ module: M, token: 'gw-a', label: 'batch', env, reopenIntervalMs: 20 });
    const b = await openPkcs11Signer({ module: M, token: 'gw-b', label: 'batch', env, reopenIntervalMs: 20 });
    try {
      const putBack = hsm.removeToken('gw-a');
      assert.is(await reason(a.sign(te.encode('a gone'))), 'TOKEN_NOT_PRESENT');
      // b keeps signing: its sessions died with the module re-init, it re-opens transparently.
      for (let i = 0; i < 5; i++) await signOk(b, `b ${i}`);
      assert.is(toHex(b.kid), kidB);
      putBack();
      await waitUntil(async () => (await reason(a.sign(te.encode('a back')))) === 'ok', 30_000, 'a to come back');
      await signOk(b, 'b after');
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a different key under the same token label and key label → KEY_MISMATCH, never signs with it', async () => {
    const s = await openPkcs11Signer({ module: M, token: 'gw-a', label: 'batch', env, reopenIntervalMs: 20 });
    try {
      await signOk(s, 'original');
      // Replace the token: delete it, create a new one with the same label and a new key "batch".
      const putBack = hsm.removeToken('gw-a');
      hsm.addToken('gw-a');
      // The failing sign re-initialises the module and finds the new, empty token.
      assert.is(await reason(s.sign(te.encode('x'))), 'KEY_NOT_FOUND');
      assert.is(s.status().state, 'lost');
      const impostor = await keygen('gw-a', 'batch');
      assert.is.not(impostor, kidA);
      await new Promise((r) => setTimeout(r, 30));
      const r = await reason(s.sign(te.encode('to the impostor')));
      assert.is(r, 'KEY_MISMATCH');
      assert.is(s.status().state, 'lost');
      assert.match(s.status().lastError!.message, /not the expected/);
      // Put the real token back (the impostor goes): the signer recovers.
      hsm.deleteToken('gw-a');
      putBack();
      await waitUntil(async () => (await reason(s.sign(te.encode('real again')))) === 'ok', 30_000, 'the real token');
      assert.is(toHex(s.kid), kidA);
    } finally {
      await s.close();
    }
  });

  test('wrong PIN at re-open → failed for good: no further C_Login, however often sign() is called', async () => {
    const pf = join(dir, 'pin');
    writeFileSync(pf, hsm.pin, { mode: 0o600 });
    const spy = loginSpy();
    const s = await openPkcs11Signer({ module: M, token: 'gw-a', label: 'batch', pinFile: pf, env: {}, reopenIntervalMs: 10, wrapApi: spy.wrap });
    try {
      await signOk(s, 'with the right PIN');
      assert.is(spy.calls.login, 1);
      writeFileSync(pf, '00000000', { mode: 0o600 }); // someone changes the PIN file
      const putBack = hsm.removeToken('gw-a');
      assert.is(await reason(s.sign(te.encode('gone'))), 'TOKEN_NOT_PRESENT');
      putBack();
      await new Promise((r) => setTimeout(r, 20));
      assert.is(await reason(s.sign(te.encode('back, wrong PIN'))), 'PIN_INCORRECT');
      assert.is(spy.calls.login, 2);
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 15));
        assert.is(await reason(s.sign(te.encode(`retry ${i}`))), 'PIN_INCORRECT');
      }
      assert.is(spy.calls.login, 2, 'the wrong PIN was tried once, never again');
      assert.is(s.status().state, 'failed');
      assert.is(s.status().lastError?.reason, 'PIN_INCORRECT');
    } finally {
      await s.close();
    }
    // The token itself is fine: a new signer with the right PIN works.
    writeFileSync(pf, hsm.pin, { mode: 0o600 });
    const again = await openPkcs11Signer({ module: M, token: 'gw-a', label: 'batch', pinFile: pf, env: {} });
    await signOk(again, 'fixed');
    await again.close();
  });

  test('opening while the token is absent → TOKEN_NOT_FOUND; the process stays up', async () => {
    const putBack = hsm.removeToken('gw-b');
    try {
      // A new signer initialises nothing new (the module is unloaded between tests), so it sees the current dir.
      const r = await reason(openPkcs11Signer({ module: M, token: 'gw-b', label: 'batch', env }));
      assert.is(r, 'TOKEN_NOT_FOUND');
    } finally {
      putBack();
    }
    const s = await openPkcs11Signer({ module: M, token: 'gw-b', label: 'batch', env });
    await signOk(s, 'present again');
    await s.close();
  });
}

test.run();
