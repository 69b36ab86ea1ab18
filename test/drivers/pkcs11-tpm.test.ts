// A second, very different PKCS#11 module: Debian's tpm2-pkcs11
// (libtpm2-pkcs11-1) on a software TPM 2.0 (swtpm), started by the test on a
// free loopback port with its state in a temp dir. The same driver code
// generates an ES256 key inside the TPM, signs, verifies, and writes a CSR
// that openssl accepts. (This TPM has no RSA-PSS and no Ed25519: only ES256
// applies; RSA key generation is refused with MECHANISM_UNSUPPORTED.)
//
// Needs Debian packages swtpm, libtpm2-pkcs11-1, libtss2-tcti-swtpm0 and
// opensc (pkcs11-tool initialises the token); prints a loud SKIP otherwise.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { verify as nodeVerify } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { toHex } from '../../protocol/bytes.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { coseKeyToPem, thumbprint } from '../../protocol/cose/key.js';
import { decodeSign1, signSign1, verifySign1 } from '../../protocol/cose/sign1.js';
import { openPkcs11Signer } from '../../drivers/pkcs11/signer.js';
import { Pkcs11Token } from '../../drivers/pkcs11/token.js';
import { Pkcs11DriverError } from '../../drivers/pkcs11/errors.js';
import { createCsr } from '../../drivers/csr/pkcs10.js';
import { freePort, haveCommand, start, tempDir, waitUntil, type Proc } from '../helpers/proc.js';

const SUITE = 'pkcs11 driver on tpm2-pkcs11 + swtpm';
const MODULES = ['/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so', '/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so', '/usr/lib/arm-linux-gnueabihf/pkcs11/libtpm2_pkcs11.so'];
const TCTIS = ['/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0', '/usr/lib/aarch64-linux-gnu/libtss2-tcti-swtpm.so.0', '/usr/lib/arm-linux-gnueabihf/libtss2-tcti-swtpm.so.0'];
const PIN = '246810';
const SO_PIN = '13579135';

function available(): string | undefined {
  if (!haveCommand('swtpm', 'swtpm', SUITE)) return undefined;
  if (!haveCommand('pkcs11-tool', 'opensc', SUITE)) return undefined;
  const m = MODULES.find((p) => existsSync(p));
  if (!m) {
    process.stderr.write(`SKIP ${SUITE}: libtpm2_pkcs11.so not found (Debian package libtpm2-pkcs11-1)\n`);
    return undefined;
  }
  if (!TCTIS.some((p) => existsSync(p))) {
    process.stderr.write(`SKIP ${SUITE}: the swtpm TCTI is missing (Debian package libtss2-tcti-swtpm0)\n`);
    return undefined;
  }
  return m;
}

/** Two consecutive free loopback ports. */
async function portPair(): Promise<[number, number]> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p >= 65535) continue;
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(p + 1, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return [p, p + 1];
  }
  throw new Error('no two consecutive free ports');
}

const M = available();
if (M) {
  const dir = tempDir('iscm-tpm-');
  const state = join(dir, 'state');
  const store = join(dir, 'store');
  mkdirSync(state);
  mkdirSync(store);
  let tpm: Proc | undefined;
  let env: Record<string, string> = {};
  let kid = '';

  test('setup: swtpm on a free port, token initialised with pkcs11-tool', async () => {
    // The swtpm TCTI talks to the control channel on port+1.
    const [port, ctrl] = await portPair();
    tpm = start('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${state}`, '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrl},bindaddr=127.0.0.1`, '--flags', 'not-need-init,startup-clear'], { name: 'swtpm' });
    const tcti = `swtpm:host=127.0.0.1,port=${port}`;
    env = { TPM2_PKCS11_TCTI: tcti, TPM2TOOLS_TCTI: tcti, TPM2_PKCS11_STORE: store, TSS2_LOG: 'all+NONE' };
    Object.assign(process.env, env); // read by tpm2-pkcs11 at C_Initialize in this process
    const tool = (args: string[]) => spawnSync('pkcs11-tool', ['--module', M, ...args], { env: { ...process.env, ...env, SO: SO_PIN, UP: PIN }, encoding: 'utf8', timeout: 120_000 });
    await waitUntil(() => tool(['--list-slots']).status === 0, 30_000, 'swtpm to answer');
    const init = tool(['--slot-index', '0', '--init-token', '--label', 'tpm-gw', '--so-pin', 'env:SO']);
    assert.is(init.status, 0, init.stderr);
    const pin = tool(['--token-label', 'tpm-gw', '--login', '--login-type', 'so', '--so-pin', 'env:SO', '--init-pin', '--pin', 'env:UP']);
    assert.is(pin.status, 0, pin.stderr);
  });

  test('ES256 key generated inside the TPM: sensitive, never extractable; RSA-PSS refused as unsupported', async () => {
    const t = await Pkcs11Token.open({ module: M, token: 'tpm-gw', env: { ISCM_PKCS11_PIN: PIN }, rw: true });
    try {
      const d = t.generateKeyPair({ alg: ALG.ES256, label: 'gw-batch' });
      assert.is(d.alg, ALG.ES256);
      assert.equal([d.attributes.token, d.attributes.private, d.attributes.sensitive, d.attributes.extractable, d.attributes.neverExtractable], [true, true, true, false, true]);
      kid = toHex(d.kid!);
      assert.throws(
        () => t.generateKeyPair({ alg: ALG.PS256, label: 'rsa', rsaBits: 2048 }),
        (e: unknown) => e instanceof Pkcs11DriverError && e.reason === 'MECHANISM_UNSUPPORTED',
      );
    } finally {
      await t.close();
    }
  });

  test('signs in the TPM: COSE_Sign1 verified by the project verifier and node:crypto, low-S', async () => {
    const s = await openPkcs11Signer({ module: M, token: 'tpm-gw', label: 'gw-batch', env: { ISCM_PKCS11_PIN: PIN }, sessions: 1 });
    try {
      assert.is(toHex(s.kid), kid);
      assert.is(toHex(thumbprint(s.publicKey)), kid);
      const payload = new TextEncoder().encode('signed by a TPM');
      for (let i = 0; i < 5; i++) {
        const bytes = await signSign1(s, { protectedHeader: new Map<number, unknown>([[4, s.kid]]), payload });
        const d = decodeSign1(bytes);
        verifySign1(d, s.publicKey);
      }
      const sig = await s.sign(payload);
      assert.ok(nodeVerify('sha256', payload, { key: coseKeyToPem(s.publicKey), dsaEncoding: 'ieee-p1363' }, sig));
    } finally {
      await s.close();
    }
  });

  test('CSR signed in the TPM: openssl req -verify accepts it', async () => {
    const s = await openPkcs11Signer({ module: M, token: 'tpm-gw', label: 'gw-batch', env: { ISCM_PKCS11_PIN: PIN }, sessions: 1, selfTest: false });
    try {
      const csr = await createCsr(s, { subject: 'CN=tpm-gateway,O=Acme,C=DE', dns: ['tpm-gw.example'] });
      const f = join(dir, 'tpm.csr');
      writeFileSync(f, csr.pem);
      if (!haveCommand('openssl', 'openssl', `${SUITE}: CSR check`)) return;
      const r = spawnSync('openssl', ['req', '-in', f, '-verify', '-noout', '-subject', '-nameopt', 'RFC2253'], { encoding: 'utf8' });
      assert.match(`${r.stdout}${r.stderr}`, /self-signature verify OK/);
      assert.match(r.stdout, /CN=tpm-gateway,O=Acme,C=DE/);
    } finally {
      await s.close();
    }
  });

  test('wrong PIN on the TPM token → PIN_INCORRECT, typed', async () => {
    try {
      await openPkcs11Signer({ module: M, token: 'tpm-gw', label: 'gw-batch', env: { ISCM_PKCS11_PIN: '000000' }, sessions: 1 });
      assert.unreachable('opened with a wrong PIN');
    } catch (e) {
      assert.ok(e instanceof Pkcs11DriverError, String(e));
      assert.is((e as Pkcs11DriverError).reason, 'PIN_INCORRECT');
    }
  });

  test('teardown: swtpm stopped', async () => {
    await tpm?.stop();
    assert.ok(true);
  });
}

test.run();
