// PKCS#11 signer driver against a real SoftHSM2 token (Debian softhsm2) in a
// temp dir: key generation on the token, attributes read back (and checked
// with OpenSC's pkcs11-tool), signing and verification per mechanism, session
// reuse under concurrency, and every typed error (the process stays up).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fail } from '../helpers/fail.js';
import { execFileSync } from 'node:child_process';
import { constants, verify as nodeVerify } from 'node:crypto';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { toHex, ZERO32 } from '../../protocol/bytes.js';
import { IscmError } from '../../protocol/errors.js';
import { ALG, isHighS } from '../../protocol/cose/algorithms.js';
import { coseKeyToPem, thumbprint } from '../../protocol/cose/key.js';
import { decodeSign1, sigStructure, signSign1, verifySign1 } from '../../protocol/cose/sign1.js';
import { signBatch, verifyBatch } from '../../protocol/batch-sign.js';
import { openPkcs11Signer, Pkcs11Signer, type Pkcs11SignerOptions } from '../../drivers/pkcs11/signer.js';
import { Pkcs11Token, listTokens } from '../../drivers/pkcs11/token.js';
import { Pkcs11DriverError } from '../../drivers/pkcs11/errors.js';
import { pkcs11OptionsFromConfig } from '../../drivers/pkcs11/config.js';
import type { Pkcs11Api } from '../../drivers/pkcs11/module.js';
import { CKA_EXTRACTABLE, CKA_SENSITIVE, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED, CKM_EDDSA, CKO_PRIVATE_KEY, CKA_CLASS, CKA_LABEL, CKA_EC_POINT } from '../../drivers/pkcs11/constants.js';
import { createSoftHsm, haveSoftHsm, useSoftHsm } from '../helpers/softhsm.js';
import { haveCommand, tempDir } from '../helpers/proc.js';

const SUITE = 'pkcs11 driver (SoftHSM2)';
const te = new TextEncoder();


async function rejectsReason(p: Promise<unknown>, reason: string, re?: RegExp): Promise<Pkcs11DriverError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof Pkcs11DriverError)) fail(`expected Pkcs11DriverError ${reason}, got ${(e as Error)?.stack ?? e}`);
    assert.is(e.reason, reason, `reason (message: ${e.message})`);
    assert.ok(e instanceof IscmError);
    if (re) assert.match(e.message, re);
    return e;
  }
  fail(`expected ${reason}, nothing thrown`);
}

function assertNoSecret(e: Error, ...secrets: string[]): void {
  const text = `${e.message} ${e.stack ?? ''} ${JSON.stringify(e)} ${String((e as { cause?: unknown }).cause ?? '')}`;
  for (const s of secrets) assert.not.ok(text.includes(s), `error text contains a secret: ${e.message}`);
}

if (haveSoftHsm(SUITE)) {
  const hsm = createSoftHsm(['iscm-a', 'iscm-b']);
  useSoftHsm(hsm);
  const M = hsm.module;
  const PIN = hsm.pin;
  const env = { ISCM_PKCS11_PIN: PIN };
  const dir = tempDir('iscm-pkcs11-');
  const base = (o: Partial<Pkcs11SignerOptions> = {}): Pkcs11SignerOptions => ({ module: M, token: 'iscm-a', env, ...o });

  /** Counts C_Login calls and lets a test alter what the module reports. */
  function spy(overrides: Partial<Record<keyof Pkcs11Api, (...args: never[]) => unknown>> = {}) {
    const calls = { login: 0 };
    const wrap = (api: Pkcs11Api): Pkcs11Api =>
      new Proxy(api, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (typeof v !== 'function') return v;
          const o = (overrides as Record<string | symbol, ((...a: unknown[]) => unknown) | undefined>)[prop];
          return (...args: unknown[]) => {
            if (prop === 'C_Login') calls.login++;
            return o ? o.call(target, ...args) : (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
    return { calls, wrap };
  }

  const ALGS = [
    { name: 'ES256', alg: ALG.ES256, label: 'k-es256', curve: 'P-256', sigLen: 64 },
    { name: 'EdDSA', alg: ALG.EdDSA, label: 'k-ed25519', curve: 'Ed25519', sigLen: 64 },
    { name: 'PS256', alg: ALG.PS256, label: 'k-ps256', curve: 'RSA-2048', sigLen: 256 },
    { name: 'ES256K', alg: ALG.ES256K, label: 'k-es256k', curve: 'secp256k1', sigLen: 64 },
  ];
  const kids = new Map<string, string>();
  let esPoint = 'unset';

  for (const a of ALGS) {
    test(`${a.name}: key pair generated on the token, attributes read back, sign + verify (node:crypto and the COSE verifier)`, async () => {
      const t = await Pkcs11Token.open({ module: M, token: 'iscm-a', env, rw: true });
      let uri: string;
      try {
        const d = t.generateKeyPair({ alg: a.alg, label: a.label, rsaBits: 2048 });
        assert.is(d.alg, a.alg);
        assert.is(d.curve, a.curve);
        assert.ok(d.kid && d.publicKey);
        assert.is(toHex(d.kid!), toHex(thumbprint(d.publicKey!)));
        assert.equal(
          {
            token: d.attributes.token,
            private: d.attributes.private,
            sensitive: d.attributes.sensitive,
            extractable: d.attributes.extractable,
            alwaysSensitive: d.attributes.alwaysSensitive,
            neverExtractable: d.attributes.neverExtractable,
            sign: d.attributes.sign,
            decrypt: d.attributes.decrypt,
            derive: d.attributes.derive,
            unwrap: d.attributes.unwrap,
          },
          { token: true, private: true, sensitive: true, extractable: false, alwaysSensitive: true, neverExtractable: true, sign: true, decrypt: false, derive: false, unwrap: false },
        );
        // Independently of describeKey: raw C_GetAttributeValue, and CKA_VALUE must be refused.
        const raw = t.api.C_GetAttributeValue(t.session, d.privateHandle!, [{ type: CKA_SENSITIVE }, { type: CKA_EXTRACTABLE }]);
        assert.is(raw[0].value![0], 1, 'CKA_SENSITIVE');
        assert.is(raw[1].value![0], 0, 'CKA_EXTRACTABLE');
        let refused = '';
        try {
          // CKA_VALUE (EC, EdDSA) or CKA_PRIVATE_EXPONENT (RSA).
          t.api.C_GetAttributeValue(t.session, d.privateHandle!, [{ type: a.alg === ALG.PS256 ? 0x123 : 0x11 }]);
        } catch (e) {
          refused = (e as Error).message;
        }
        assert.match(refused, /CKR_ATTRIBUTE_SENSITIVE/, 'the private key value cannot be read');
        if (a.alg === ALG.ES256 && d.publicKey!.kty === 2) esPoint = `04${toHex(d.publicKey!.x)}${toHex(d.publicKey!.y)}`;
        kids.set(a.name, toHex(d.kid!));
        uri = d.uri;
        assert.match(uri, new RegExp(`^pkcs11:token=iscm-a;.*object=${a.label};id=(%[0-9A-F]{2}){16};type=private$`));
      } finally {
        await t.close();
      }

      const signer = await openPkcs11Signer({ module: M, uri, env });
      try {
        assert.is(signer.alg, a.alg);
        assert.is(toHex(signer.kid), kids.get(a.name));
        assert.is(signer.publicKey.alg, a.alg);
        const payload = te.encode(`batch signed on the token with ${a.name}`);
        const bytes = await signSign1(signer, { protectedHeader: new Map<number, unknown>([[4, signer.kid]]), payload });
        const d = decodeSign1(bytes);
        assert.is(d.signature.length, a.sigLen);
        verifySign1(d, signer.publicKey);
        const pem = coseKeyToPem(signer.publicKey);
        const tbs = sigStructure(d.protectedBytes, new Uint8Array(0), payload);
        const opts =
          a.alg === ALG.EdDSA
            ? pem
            : a.alg === ALG.PS256
              ? { key: pem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
              : { key: pem, dsaEncoding: 'ieee-p1363' as const };
        assert.ok(nodeVerify(a.alg === ALG.EdDSA ? null : 'sha256', tbs, opts, d.signature), 'node:crypto verifies');
        assert.not.ok(nodeVerify(a.alg === ALG.EdDSA ? null : 'sha256', te.encode('other'), opts, d.signature), 'and refuses other data');
        // A real batch (§4.2), verified by the project's batch verifier.
        const batch = await signBatch(signer, { deviceId: 'gw-17', batchSeq: 1, firstSeq: 1, count: 3, root: new Uint8Array(32).fill(7), prev: ZERO32, time: 1_700_000_000_000 });
        assert.is(verifyBatch(batch, signer.publicKey).count, 3);
        if (a.alg === ALG.ES256 || a.alg === ALG.ES256K) {
          // SoftHSM returns high-S about half the time: every output must be low-S.
          const sigs = await Promise.all(Array.from({ length: 64 }, (_, i) => signer.sign(te.encode(`m${i}`))));
          for (const s of sigs) assert.not.ok(isHighS(s, a.alg === ALG.ES256 ? 'P-256' : 'secp256k1'), 'low-S');
        }
      } finally {
        await signer.close();
      }
    });
  }

  test("OpenSC pkcs11-tool sees the keys as sensitive, never extractable, sign-only, with the same public key", () => {
    if (!haveCommand('pkcs11-tool', 'opensc', `${SUITE}: pkcs11-tool inspection`)) return;
    const toolEnv = { ...process.env, ...hsm.env, ISCM_TEST_PIN: PIN };
    const out = execFileSync('pkcs11-tool', ['--module', M, '--token-label', 'iscm-a', '--login', '--pin', 'env:ISCM_TEST_PIN', '--list-objects'], { env: toolEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    for (const a of ALGS) {
      const block = out.split(/\n(?=\S)/).find((b) => b.startsWith('Private Key Object') && b.includes(`label:      ${a.label}\n`));
      assert.ok(block, `pkcs11-tool lists the private key ${a.label}:\n${out}`);
      assert.match(block!, /Access:\s+sensitive, always sensitive, never extractable, local/);
      assert.match(block!, /Usage:\s+sign\s*$/m);
    }
    // The public key pkcs11-tool reads (EC_POINT) is the one the driver turned into the COSE_Key.
    const pubBlock = out.split(/\n(?=\S)/).find((b) => b.startsWith('Public Key Object; EC') && b.includes('label:      k-es256\n'));
    assert.ok(pubBlock, out);
    const point = /EC_POINT:\s+([0-9a-f]+)/.exec(pubBlock!)?.[1] ?? '';
    assert.ok(point.endsWith(esPoint), `pkcs11-tool EC_POINT ${point} ends with the driver's 04‖x‖y ${esPoint}`);
  });

  test('key listing: private keys with kid, alg and attributes; public keys only without login', async () => {
    const t = await Pkcs11Token.open({ module: M, token: 'iscm-a', env });
    try {
      const keys = t.listKeys();
      for (const a of ALGS) {
        const k = keys.find((x) => x.label === a.label && x.privateHandle);
        assert.ok(k, a.label);
        assert.is(toHex(k!.kid!), kids.get(a.name));
        assert.is(k!.alg, a.alg);
      }
    } finally {
      await t.close();
    }
    const anon = await Pkcs11Token.open({ module: M, token: 'iscm-a', login: false });
    try {
      const keys = anon.listKeys();
      assert.ok(keys.length >= ALGS.length);
      assert.ok(keys.every((k) => k.privateHandle === null), 'no private key visible without login');
      assert.is(toHex(anon.findPublicKey({ label: 'k-es256' }).kid!), kids.get('ES256'));
    } finally {
      await anon.close();
    }
    const tokens = await listTokens(M);
    assert.ok(['iscm-a', 'iscm-b'].every((l) => tokens.some((t) => t.label === l)));
  });

  test('sessions are reused and concurrent signs are spread over the pool (async and blocking modes)', async () => {
    for (const blocking of [false, true]) {
      const { calls, wrap } = spy();
      const s = await openPkcs11Signer(base({ label: 'k-es256', sessions: 3, blocking, wrapApi: wrap }));
      try {
        const msgs = Array.from({ length: 300 }, (_, i) => te.encode(`event batch ${i}`));
        const sigs = await Promise.all(msgs.map((m) => s.sign(m)));
        for (let i = 0; i < sigs.length; i += 37) verifySign1Raw(s, msgs[i], sigs[i]);
        const st = s.status();
        assert.is(st.state, 'ready');
        if (blocking) {
          // C_Sign on the main thread never overlaps: the login session is enough.
          assert.is(st.stats.sessionsOpened, 1, 'blocking mode reuses one session');
        } else {
          assert.is(st.stats.sessionsOpened, 3, 'three sessions opened once, then reused');
          assert.is(st.sessions, 3);
        }
        assert.is(st.stats.loginAttempts, 1);
        assert.is(calls.login, 1, 'one C_Login for the whole pool');
        assert.ok(st.stats.signs >= 300);
        if (!blocking) assert.ok(st.stats.maxQueued > 0, 'calls queued for a session');
      } finally {
        await s.close();
      }
    }
  });

  function verifySign1Raw(s: Pkcs11Signer, msg: Uint8Array, sig: Uint8Array): void {
    const pem = coseKeyToPem(s.publicKey);
    assert.ok(nodeVerify('sha256', msg, { key: pem, dsaEncoding: 'ieee-p1363' }, sig));
  }

  test('wrong PIN → PIN_INCORRECT, exactly one C_Login, no PIN in the error; the right PIN still works', async () => {
    const WRONG = '97531864';
    const { calls, wrap } = spy();
    const e = await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', env: { ISCM_PKCS11_PIN: WRONG }, wrapApi: wrap })), 'PIN_INCORRECT', /CKR_PIN_INCORRECT.*not retried/);
    assert.is(e.ckr, 'CKR_PIN_INCORRECT');
    assert.is(e.code, 'SIGNER_ERROR');
    assert.is(calls.login, 1);
    assertNoSecret(e, WRONG, PIN);
    const s = await openPkcs11Signer(base({ label: 'k-es256' }));
    assert.is((await s.sign(te.encode('x'))).length, 64);
    await s.close();
  });

  test('PIN sources: a pin file (0600, trailing newline) and pin-source in the URI; a readable pin file and no PIN at all are refused', async () => {
    const pf = join(dir, 'pin');
    writeFileSync(pf, `${PIN}\n`, { mode: 0o600 });
    chmodSync(pf, 0o600);
    const s1 = await openPkcs11Signer({ module: M, token: 'iscm-a', label: 'k-ed25519', pinFile: pf, env: {} });
    await s1.close();
    const s2 = await openPkcs11Signer({ uri: `pkcs11:token=iscm-a;object=k-ed25519?module-path=${M}&pin-source=file:${pf}`, env: {} });
    await s2.close();
    const loose = join(dir, 'pin-loose');
    writeFileSync(loose, PIN);
    chmodSync(loose, 0o644);
    const e1 = await rejectsReason(openPkcs11Signer({ module: M, token: 'iscm-a', label: 'k-ed25519', pinFile: loose, env: {} }), 'PIN_MISSING', /chmod 600/);
    assertNoSecret(e1, PIN);
    await rejectsReason(openPkcs11Signer({ module: M, token: 'iscm-a', label: 'k-ed25519', env: {} }), 'PIN_MISSING', /ISCM_PKCS11_PIN/);
    await rejectsReason(openPkcs11Signer({ module: M, token: 'iscm-a', label: 'k-ed25519', pinFile: join(dir, 'none'), env: {} }), 'PIN_MISSING', /ENOENT/);
    // The default source is the process environment.
    process.env.ISCM_PKCS11_PIN = PIN;
    try {
      const s3 = await openPkcs11Signer({ module: M, token: 'iscm-a', label: 'k-ed25519' });
      await s3.close();
    } finally {
      delete process.env.ISCM_PKCS11_PIN;
    }
  });

  test('locked PIN and final try: refused without any C_Login; CKR_PIN_LOCKED from C_Login is PIN_LOCKED', async () => {
    // SoftHSM never locks a PIN (it only sets CKF_USER_PIN_COUNT_LOW), so these
    // token states are injected into the real module's answers.
    const withFlags = (flag: number) =>
      spy({
        C_GetTokenInfo(this: Pkcs11Api, slot: never) {
          const ti = this.C_GetTokenInfo(slot);
          return { ...ti, flags: ti.flags | flag };
        },
      } as never);
    const locked = withFlags(CKF_USER_PIN_LOCKED);
    await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', wrapApi: locked.wrap })), 'PIN_LOCKED', /security officer/);
    assert.is(locked.calls.login, 0);
    const finalTry = withFlags(CKF_USER_PIN_FINAL_TRY);
    await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', wrapApi: finalTry.wrap })), 'PIN_FINAL_TRY', /one more PIN attempt/);
    assert.is(finalTry.calls.login, 0);
    const allowed = withFlags(CKF_USER_PIN_FINAL_TRY);
    const s = await openPkcs11Signer(base({ label: 'k-es256', wrapApi: allowed.wrap, allowFinalPinTry: true }));
    assert.is(allowed.calls.login, 1);
    await s.close();

    const { Pkcs11Error } = createRequire(import.meta.url)('pkcs11js') as { Pkcs11Error: new (m: string, c: number, method: string) => Error };
    const lockedLogin = spy({
      C_Login() {
        throw new Pkcs11Error('CKR_PIN_LOCKED:164', 0xa4, 'C_Login');
      },
    } as never);
    const e = await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', wrapApi: lockedLogin.wrap })), 'PIN_LOCKED', /CKR_PIN_LOCKED/);
    assert.is(e.ckr, 'CKR_PIN_LOCKED');
    assert.is(lockedLogin.calls.login, 1);
  });

  test('missing token → TOKEN_NOT_FOUND listing the tokens present', async () => {
    const e = await rejectsReason(openPkcs11Signer(base({ token: 'no-such-token', label: 'k-es256' })), 'TOKEN_NOT_FOUND', /no token matching token="no-such-token"/);
    assert.match(e.message, /"iscm-a"/);
    assert.match(e.message, /"iscm-b"/);
    await rejectsReason(openPkcs11Signer({ module: M, serial: 'ffffffffffffffff', label: 'k-es256', env }), 'TOKEN_NOT_FOUND');
  });

  test('missing key → KEY_NOT_FOUND listing the keys found; several → KEY_AMBIGUOUS', async () => {
    const e = await rejectsReason(openPkcs11Signer(base({ label: 'no-such-key' })), 'KEY_NOT_FOUND', /no private key with label "no-such-key"/);
    for (const a of ALGS) assert.match(e.message, new RegExp(`"${a.label}"`));
    await rejectsReason(openPkcs11Signer(base({ id: 'deadbeef' })), 'KEY_NOT_FOUND', /id deadbeef/);
    await rejectsReason(openPkcs11Signer(base({})), 'KEY_AMBIGUOUS', /select one by id/);
    // On a token with exactly one key, no key selection is needed.
    const t = await Pkcs11Token.open({ module: M, token: 'iscm-b', env, rw: true });
    const only = t.generateKeyPair({ alg: ALG.EdDSA, label: 'only' });
    await t.close();
    const s = await openPkcs11Signer({ module: M, token: 'iscm-b', env });
    assert.is(toHex(s.kid), toHex(only.kid!));
    await s.close();
  });

  test('bad module path → MODULE_LOAD_FAILED with the path and the dlopen error', async () => {
    await rejectsReason(openPkcs11Signer(base({ module: '/nonexistent/libpkcs11.so', label: 'k' })), 'MODULE_LOAD_FAILED', /\/nonexistent\/libpkcs11\.so: no such file/);
    const notElf = join(dir, 'not-a-module.so');
    writeFileSync(notElf, 'hello');
    await rejectsReason(openPkcs11Signer(base({ module: notElf, label: 'k' })), 'MODULE_LOAD_FAILED', /not-a-module\.so.*(invalid ELF header|too short)/);
    const lib = ['/usr/lib/x86_64-linux-gnu/libz.so.1', '/lib/x86_64-linux-gnu/libz.so.1', '/usr/lib/aarch64-linux-gnu/libz.so.1'].find((p) => existsSync(p));
    if (lib) await rejectsReason(openPkcs11Signer(base({ module: lib, label: 'k' })), 'MODULE_LOAD_FAILED', /C_GetFunctionList/);
    await rejectsReason(openPkcs11Signer(base({ module: dir, label: 'k' })), 'MODULE_LOAD_FAILED', /not a regular file/);
  });

  test('mechanism missing on the token → MECHANISM_UNSUPPORTED (signing and key generation)', async () => {
    const noEddsa = spy({
      C_GetMechanismList(this: Pkcs11Api, slot: never) {
        return this.C_GetMechanismList(slot).filter((m: number) => m !== CKM_EDDSA && m !== 0x1055);
      },
    } as never);
    await rejectsReason(openPkcs11Signer(base({ label: 'k-ed25519', wrapApi: noEddsa.wrap })), 'MECHANISM_UNSUPPORTED', /CKM_EDDSA/);
    const t = await Pkcs11Token.open({ module: M, token: 'iscm-a', env, rw: true, wrapApi: noEddsa.wrap });
    try {
      assert.throws(
        () => t.generateKeyPair({ alg: ALG.EdDSA, label: 'never' }),
        (e: unknown) => e instanceof Pkcs11DriverError && e.reason === 'MECHANISM_UNSUPPORTED',
      );
    } finally {
      await t.close();
    }
  });

  test('key checks: wrong alg, pinned kid, existing label, mismatched key halves (self-test)', async () => {
    await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', alg: ALG.EdDSA })), 'KEY_UNSUPPORTED', /ES256 key.*not EdDSA/);
    await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', expectKid: new Uint8Array(32) })), 'KEY_MISMATCH', /not the expected/);
    const ok = await openPkcs11Signer(base({ label: 'k-es256', expectKid: Buffer.from(kids.get('ES256')!, 'hex') }));
    await ok.close();
    const t = await Pkcs11Token.open({ module: M, token: 'iscm-a', env, rw: true });
    try {
      assert.throws(() => t.generateKeyPair({ alg: ALG.ES256, label: 'k-es256' }), (e: unknown) => e instanceof Pkcs11DriverError && e.reason === 'KEY_EXISTS');
    } finally {
      await t.close();
    }
    // The public object of k-es256 reports the point of another P-256 key: the self-test notices.
    const other = await openPkcs11Signer(base({ label: 'k-es256k' }));
    await other.close();
    const t2 = await Pkcs11Token.open({ module: M, token: 'iscm-a', env, rw: true });
    const second = t2.generateKeyPair({ alg: ALG.ES256, label: 'k-es256-second' });
    const point = t2.api.C_GetAttributeValue(t2.session, second.publicHandle!, [{ type: CKA_EC_POINT }])[0].value as Buffer;
    await t2.close();
    const swap = spy({
      C_GetAttributeValue(this: Pkcs11Api, session: never, obj: never, tmpl: { type: number }[]) {
        const r = this.C_GetAttributeValue(session, obj, tmpl);
        if (tmpl.length === 1 && tmpl[0].type === CKA_EC_POINT) {
          const label = this.C_GetAttributeValue(session, obj, [{ type: CKA_LABEL }])[0].value!.toString();
          if (label === 'k-es256') return [{ type: CKA_EC_POINT, value: point }];
        }
        return r;
      },
    } as never);
    await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', wrapApi: swap.wrap })), 'KEY_MISMATCH', /self-test failed/);
    // A key that wants the PIN for every signature (CKA_ALWAYS_AUTHENTICATE) is refused.
    const alwaysAuth = spy({
      C_GetAttributeValue(this: Pkcs11Api, session: never, obj: never, tmpl: { type: number }[]) {
        return this.C_GetAttributeValue(session, obj, tmpl).map((a: { type: number; value?: Buffer }) => (a.type === 0x202 ? { type: a.type, value: Buffer.from([1]) } : a));
      },
    } as never);
    await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', wrapApi: alwaysAuth.wrap })), 'KEY_UNSUPPORTED', /CKA_ALWAYS_AUTHENTICATE/);
  });

  test('URI and option errors are USAGE; config sections open signers', async () => {
    const e = await rejectsReason(openPkcs11Signer({ module: M, uri: 'pkcs11:token=iscm-a;object=k-es256?pin-value=1234', env }), 'URI_INVALID');
    assert.is(e.code, 'USAGE');
    await rejectsReason(openPkcs11Signer({ module: M, uri: 'pkcs11:token=iscm-a;object=k-es256;type=public', env }), 'URI_INVALID', /type=private/);
    await rejectsReason(openPkcs11Signer(base({ label: 'k-es256', sessions: 0 })), 'URI_INVALID', /sessions/);
    // module-name is looked up in the usual directories (Debian puts SoftHSM in /usr/lib/<triplet>/softhsm).
    const byName = await openPkcs11Signer({ uri: 'pkcs11:token=iscm-a;object=k-ed25519?module-name=softhsm2', env });
    assert.is(byName.alg, ALG.EdDSA);
    await byName.close();
    const opts = pkcs11OptionsFromConfig({ driver: 'pkcs11', module: M, uri: 'pkcs11:token=iscm-a;object=k-ed25519', alg: 'EdDSA', sessions: 1 });
    const s = await openPkcs11Signer({ ...opts, env });
    assert.is(s.alg, ALG.EdDSA);
    await s.close();
  });

  test('closed signer → CLOSED; bad input → SIGN_FAILED; the process is still up and signing', async () => {
    const s = await openPkcs11Signer(base({ label: 'k-ed25519' }));
    await rejectsReason(s.sign('text' as unknown as Uint8Array), 'SIGN_FAILED', /bytes/);
    const pending = s.sign(te.encode('in flight'));
    await s.close();
    assert.is((await pending).length, 64, 'close waits for signs in flight');
    await rejectsReason(s.sign(te.encode('x')), 'CLOSED');
    assert.is(s.status().state, 'closed');
    await s.close(); // idempotent
    const again = await openPkcs11Signer(base({ label: 'k-ed25519' }));
    assert.is((await again.sign(te.encode('still up'))).length, 64);
    await again.close();
  });

  test('private keys are found by class and label only after login', async () => {
    const t = await Pkcs11Token.open({ module: M, token: 'iscm-a', login: false });
    try {
      t.api.C_FindObjectsInit(t.session, [{ type: CKA_CLASS, value: CKO_PRIVATE_KEY }]);
      const found = t.api.C_FindObjects(t.session, 10);
      t.api.C_FindObjectsFinal(t.session);
      assert.is(found.length, 0, 'CKA_PRIVATE keys are invisible without login');
    } finally {
      await t.close();
    }
  });
}

test.run();
