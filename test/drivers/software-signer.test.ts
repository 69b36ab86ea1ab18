// Software signer and its passphrase-encrypted key file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fail } from '../helpers/fail.js';
import { mkdtempSync, rmSync, statSync, readFileSync, writeFileSync, chmodSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, generateKeyPairSync, verify as nodeVerify } from 'node:crypto';
import { IscmError } from '../../protocol/errors.js';
import { decode, encode } from '../../protocol/cbor.js';
import { toHex } from '../../protocol/bytes.js';
import { ALG, isHighS } from '../../protocol/cose/algorithms.js';
import { coseKeyToPem, encodeCoseKey, thumbprint } from '../../protocol/cose/key.js';
import { decodeSign1, sigStructure, signSign1, verifySign1 } from '../../protocol/cose/sign1.js';
import type { Signer } from '../../drivers/signer.js';
import {
  DEFAULT_PASSPHRASE_ENV,
  generateKeyFile,
  readKeyFile,
  readKeyFileInfo,
  readPassphrase,
  writeKeyFile,
  type PassphraseSource,
} from '../../drivers/software/keyfile.js';
import { openSoftwareSigner, softwareSignerFromKey } from '../../drivers/software/signer.js';


const PASS = 'correct horse battery staple';
const WRONG = 'incorrect mule battery staple';
const FAST = { scrypt: { N: 2 ** 10 } }; // tests only; the default is 2^15
const envSource = (pass = PASS): PassphraseSource => ({ env: { [DEFAULT_PASSPHRASE_ENV]: pass } });
const te = new TextEncoder();

const dir = mkdtempSync(join(tmpdir(), 'iscm-swsigner-'));
let seq = 0;
const fresh = (name = 'key') => join(dir, `${name}-${++seq}.cbor`);

async function rejectsCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<IscmError> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof IscmError)) fail(`expected IscmError ${code}, got ${(e as Error)?.stack ?? e}`);
    assert.is(e.code, code, `code (message: ${e.message})`);
    if (re) assert.match(e.message, re);
    return e;
  }
  fail(`expected IscmError ${code}, nothing thrown`);
}

function assertNoSecret(e: Error, ...secrets: string[]): void {
  const text = `${e.message} ${e.stack ?? ''} ${JSON.stringify(e)} ${String((e as { cause?: unknown }).cause ?? '')}`;
  for (const s of secrets) assert.not.ok(text.includes(s), `error text contains a secret: ${e.message}`);
}

const ALGS = [
  { name: 'EdDSA', alg: ALG.EdDSA, sigLen: 64 },
  { name: 'ES256', alg: ALG.ES256, sigLen: 64 },
  { name: 'ES256K', alg: ALG.ES256K, sigLen: 64 },
  { name: 'PS256', alg: ALG.PS256, sigLen: 256 },
];

/** Checks a signer end to end: Sign1 via verifySign1, raw signature via node:crypto. */
async function checkSigner(signer: Signer, sigLen: number): Promise<void> {
  assert.is(toHex(signer.kid), toHex(thumbprint(signer.publicKey)));
  assert.is(signer.publicKey.alg, signer.alg);
  const payload = te.encode(`hello from ${signer.alg}`);
  const bytes = await signSign1(signer, { protectedHeader: new Map<number, unknown>([[4, signer.kid]]), payload });
  const d = decodeSign1(bytes);
  assert.is(d.signature.length, sigLen);
  verifySign1(d, signer.publicKey);
  // Independent check with node:crypto over the Sig_structure, key via PEM.
  const pem = coseKeyToPem(signer.publicKey);
  const tbs = sigStructure(d.protectedBytes, new Uint8Array(0), payload);
  const ok =
    signer.alg === ALG.EdDSA
      ? nodeVerify(null, tbs, pem, d.signature)
      : signer.alg === ALG.PS256
        ? nodeVerify('sha256', tbs, { key: pem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, d.signature)
        : nodeVerify('sha256', tbs, { key: pem, dsaEncoding: 'ieee-p1363' }, d.signature);
  assert.ok(ok, 'node:crypto verifies the signature');
  assert.not.ok(nodeVerify(signer.alg === ALG.EdDSA ? null : 'sha256', te.encode('other'), signer.alg === ALG.PS256 ? { key: pem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : signer.alg === ALG.EdDSA ? pem : { key: pem, dsaEncoding: 'ieee-p1363' }, d.signature));
}

for (const a of ALGS) {
  test(`key file round trip ${a.name}: generate, mode 0600, info without passphrase, open, sign, verify`, async () => {
    const path = fresh(a.name);
    const info = await generateKeyFile(path, a.alg, envSource(), { ...FAST, rsaBits: 2048 });
    assert.is(info.alg, a.alg);
    assert.equal(info.scrypt, { N: 1024, r: 8, p: 1 });
    assert.is(statSync(path).mode & 0o777, 0o600);
    const pub = await readKeyFileInfo(path);
    assert.is(toHex(pub.kid), toHex(info.kid));
    assert.is(toHex(encodeCoseKey(pub.publicKey)), toHex(encodeCoseKey(info.publicKey)));
    // The passphrase is not in the file, nor is the private key in clear.
    const raw = readFileSync(path);
    assert.not.ok(raw.includes(Buffer.from(PASS)));
    const signer = await openSoftwareSigner(path, envSource());
    assert.is(signer.alg, a.alg);
    assert.is(toHex(signer.kid), toHex(info.kid));
    await checkSigner(signer, a.sigLen);
    const k = await readKeyFile(path, envSource());
    const der = k.privateKey.export({ format: 'der', type: 'pkcs8' });
    assert.not.ok(raw.includes(der), 'private key not stored in clear');
    await signer.close!();
    await rejectsCode(signer.sign(new Uint8Array(1)), 'SIGNER_ERROR', /closed/);
  });
}

test('default scrypt parameters are N=2^15, r=8, p=1 and recorded in the file', async () => {
  const path = fresh();
  await generateKeyFile(path, ALG.EdDSA, envSource());
  const m = decode(new Uint8Array(readFileSync(path))) as Map<number, unknown>;
  assert.is(m.get(1), 1, 'version');
  assert.is(m.get(2), ALG.EdDSA);
  const kdf = m.get(4) as Map<number, unknown>;
  assert.equal([kdf.get(1), kdf.get(2), kdf.get(3), kdf.get(4)], ['scrypt', 32768, 8, 1]);
  assert.is((kdf.get(5) as Uint8Array).length, 32);
  assert.is((m.get(5) as Uint8Array).length, 24);
  assert.equal((await readKeyFileInfo(path)).scrypt, { N: 32768, r: 8, p: 1 });
  await checkSigner(await openSoftwareSigner(path, envSource()), 64);
});

test('wrong passphrase → KEYFILE_ERROR without any secret in the error', async () => {
  const path = fresh();
  await generateKeyFile(path, ALG.ES256, envSource(), FAST);
  const e = await rejectsCode(openSoftwareSigner(path, envSource(WRONG)), 'KEYFILE_ERROR', /wrong passphrase/);
  assertNoSecret(e, PASS, WRONG);
});

test('passphrase from a file (trailing newline stripped) and from a custom environment variable', async () => {
  const pf = join(dir, 'pass.txt');
  writeFileSync(pf, PASS + '\n', { mode: 0o600 });
  const path = fresh();
  const info = await generateKeyFile(path, ALG.EdDSA, { passphraseFile: pf }, FAST);
  // The file's passphrase equals the env one: either source opens it.
  assert.is(toHex((await openSoftwareSigner(path, envSource())).kid), toHex(info.kid));
  assert.is(toHex((await openSoftwareSigner(path, { passphraseFile: pf })).kid), toHex(info.kid));
  // CRLF too.
  writeFileSync(pf, PASS + '\r\n');
  assert.is(toHex((await openSoftwareSigner(path, { passphraseFile: pf })).kid), toHex(info.kid));
  // The file wins over the environment.
  assert.is(toHex((await openSoftwareSigner(path, { passphraseFile: pf, env: { [DEFAULT_PASSPHRASE_ENV]: WRONG } })).kid), toHex(info.kid));
  // Custom variable name.
  const custom = { passphraseEnv: 'MY_KEY_PASS', env: { MY_KEY_PASS: PASS } };
  assert.is(toHex((await openSoftwareSigner(path, custom)).kid), toHex(info.kid));
  const e = await rejectsCode(openSoftwareSigner(path, { passphraseEnv: 'MY_KEY_PASS', env: { [DEFAULT_PASSPHRASE_ENV]: PASS } }), 'KEYFILE_ERROR', /MY_KEY_PASS is not set/);
  assertNoSecret(e, PASS);
  // The real process environment is the default source.
  const saved = process.env[DEFAULT_PASSPHRASE_ENV];
  process.env[DEFAULT_PASSPHRASE_ENV] = PASS;
  try {
    assert.is(toHex((await openSoftwareSigner(path)).kid), toHex(info.kid));
  } finally {
    if (saved === undefined) delete process.env[DEFAULT_PASSPHRASE_ENV];
    else process.env[DEFAULT_PASSPHRASE_ENV] = saved;
  }
});

test('passphrase sources: missing, empty, unreadable, too short → KEYFILE_ERROR', async () => {
  await rejectsCode(readPassphrase({ env: {} }), 'KEYFILE_ERROR', /ISCM_KEY_PASSPHRASE is not set/);
  await rejectsCode(readPassphrase({ env: { ISCM_KEY_PASSPHRASE: '' } }), 'KEYFILE_ERROR', /empty/);
  await rejectsCode(readPassphrase({ passphraseFile: join(dir, 'nope.txt') }), 'KEYFILE_ERROR', /ENOENT/);
  const empty = join(dir, 'empty-pass.txt');
  writeFileSync(empty, '\n');
  await rejectsCode(readPassphrase({ passphraseFile: empty }), 'KEYFILE_ERROR', /empty/);
  await rejectsCode(readPassphrase({ passphraseFile: dir }), 'KEYFILE_ERROR', /regular file/);
  const e = await rejectsCode(generateKeyFile(fresh(), ALG.EdDSA, envSource('qz7!x'), FAST), 'KEYFILE_ERROR', /too short/);
  assertNoSecret(e, 'qz7!x');
  assert.equal([...(await readPassphrase(envSource()))], [...Buffer.from(PASS)]);
});

test('an existing key file is never overwritten unless asked; writes leave no temp files', async () => {
  const path = fresh();
  const first = await generateKeyFile(path, ALG.EdDSA, envSource(), FAST);
  await rejectsCode(generateKeyFile(path, ALG.EdDSA, envSource(), FAST), 'KEYFILE_ERROR', /already exists/);
  assert.is(toHex((await readKeyFileInfo(path)).kid), toHex(first.kid));
  const second = await generateKeyFile(path, ALG.EdDSA, envSource(), { ...FAST, overwrite: true });
  assert.not.equal(toHex(second.kid), toHex(first.kid));
  assert.is(toHex((await readKeyFileInfo(path)).kid), toHex(second.kid));
  assert.equal(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
  await rejectsCode(generateKeyFile(join(dir, 'no-such-dir', 'k.cbor'), ALG.EdDSA, envSource(), FAST), 'KEYFILE_ERROR', /ENOENT/);
});

test('writeKeyFile imports an existing key; mismatched keys and algs are refused', async () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const path = fresh();
  await writeKeyFile(path, ALG.ES256, privateKey, envSource(), FAST);
  const k = await readKeyFile(path, envSource());
  assert.equal(k.privateKey.export({ format: 'jwk' }), privateKey.export({ format: 'jwk' }));
  await rejectsCode(writeKeyFile(fresh(), ALG.ES256K, privateKey, envSource(), FAST), 'KEYFILE_ERROR', /does not fit ES256K/);
  await rejectsCode(writeKeyFile(fresh(), ALG.ES384, privateKey, envSource(), FAST), 'KEYFILE_ERROR', /not supported/);
  await rejectsCode(writeKeyFile(fresh(), ALG.EdDSA, generateKeyPairSync('ed448').privateKey, envSource(), FAST), 'KEYFILE_ERROR', /does not fit EdDSA/);
  await rejectsCode(writeKeyFile(fresh(), ALG.ES256, privateKey, envSource(), { scrypt: { N: 1000 } }), 'KEYFILE_ERROR', /power of two/);
  await rejectsCode(writeKeyFile(fresh(), ALG.ES256, privateKey, envSource(), { scrypt: { N: 2 ** 10, r: 0 } }), 'KEYFILE_ERROR', /scrypt r/);
});

test('truncated, corrupt, tampered or too-open key files → KEYFILE_ERROR', async () => {
  const path = fresh();
  await generateKeyFile(path, ALG.EdDSA, envSource(), FAST);
  const good = new Uint8Array(readFileSync(path));
  const bad = join(dir, 'bad.cbor');
  const put = (b: Uint8Array) => {
    writeFileSync(bad, b, { mode: 0o600 });
    chmodSync(bad, 0o600);
  };
  // Every truncation.
  for (let len = 0; len < good.length; len += 7) {
    put(good.subarray(0, len));
    const e = await rejectsCode(openSoftwareSigner(bad, envSource()), 'KEYFILE_ERROR');
    assertNoSecret(e, PASS);
  }
  // Garbage and wrong version.
  put(te.encode('not a key file'));
  await rejectsCode(openSoftwareSigner(bad, envSource()), 'KEYFILE_ERROR', /corrupt/);
  const m = decode(good) as Map<number, unknown>;
  const edit = (k: number, v: unknown) => encode(new Map([...m, [k, v]]));
  put(edit(1, 2));
  await rejectsCode(openSoftwareSigner(bad, envSource()), 'KEYFILE_ERROR', /version 2/);
  // A flipped ciphertext byte fails authentication.
  const box = new Uint8Array(m.get(6) as Uint8Array);
  box[box.length - 1] ^= 1;
  put(edit(6, box));
  await rejectsCode(openSoftwareSigner(bad, envSource()), 'KEYFILE_ERROR', /cannot decrypt/);
  // A swapped public key in the clear header is detected after decryption.
  const otherPath = fresh();
  await generateKeyFile(otherPath, ALG.EdDSA, envSource(), FAST);
  const other = decode(new Uint8Array(readFileSync(otherPath))) as Map<number, unknown>;
  put(edit(3, other.get(3)));
  await rejectsCode(openSoftwareSigner(bad, envSource()), 'KEYFILE_ERROR', /tampered/);
  // A changed alg in the header does not fit the key.
  put(edit(2, ALG.ES256));
  await rejectsCode(openSoftwareSigner(bad, envSource()), 'KEYFILE_ERROR');
  // Unreasonable scrypt parameters from the file are refused before running scrypt.
  const kdf = new Map(m.get(4) as Map<number, unknown>);
  kdf.set(2, 2 ** 30);
  put(edit(4, kdf));
  await rejectsCode(openSoftwareSigner(bad, envSource()), 'KEYFILE_ERROR', /scrypt N/);
  // Group/world-readable files are refused (like ssh), unless the check is off.
  put(good);
  chmodSync(bad, 0o644);
  await rejectsCode(openSoftwareSigner(bad, envSource()), 'KEYFILE_ERROR', /chmod 600/);
  assert.ok((await openSoftwareSigner(bad, envSource(), { checkMode: false })).kid.length === 32);
  // Missing file.
  await rejectsCode(openSoftwareSigner(join(dir, 'missing.cbor'), envSource()), 'KEYFILE_ERROR', /ENOENT/);
});

for (const [name, alg, curve, nodeCurve] of [
  ['ES256', ALG.ES256, 'P-256', 'prime256v1'],
  ['ES256K', ALG.ES256K, 'secp256k1', 'secp256k1'],
] as const) {
  test(`${name}: 200 signatures are all low-S and verify under the strict default`, async () => {
    const signer = softwareSignerFromKey(alg, generateKeyPairSync('ec', { namedCurve: nodeCurve }).privateKey);
    for (let i = 0; i < 200; i++) {
      const payload = te.encode(`reading ${i}`);
      const d = decodeSign1(await signSign1(signer, { protectedHeader: new Map(), payload }));
      assert.not.ok(isHighS(d.signature, curve), `signature ${i} is high-S`);
      verifySign1(d, signer.publicKey);
    }
    // The raw signer output (no signSign1 normalisation in between) is low-S too.
    for (let i = 0; i < 200; i++) assert.not.ok(isHighS(await signer.sign(te.encode(`raw ${i}`)), curve));
  });
}

test('softwareSignerFromKey: in-memory keys per alg; wrong key/alg → SIGNER_ERROR', async () => {
  await checkSigner(softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey), 64);
  await checkSigner(softwareSignerFromKey(ALG.ES256, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey), 64);
  await checkSigner(softwareSignerFromKey(ALG.ES256K, generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey), 64);
  await checkSigner(softwareSignerFromKey(ALG.PS256, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey), 256);
  const ed = generateKeyPairSync('ed25519');
  const expectThrow = (fn: () => unknown, re: RegExp) => {
    try {
      fn();
    } catch (e) {
      assert.instance(e, IscmError);
      assert.is((e as IscmError).code, 'SIGNER_ERROR');
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable('no error');
  };
  expectThrow(() => softwareSignerFromKey(ALG.ES256, ed.privateKey), /unusable key/);
  expectThrow(() => softwareSignerFromKey(ALG.EdDSA, ed.publicKey), /private/);
  expectThrow(() => softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed448').privateKey), /Ed25519/);
  expectThrow(() => softwareSignerFromKey(ALG.ES384, generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey), /not supported/);
  expectThrow(() => softwareSignerFromKey(ALG.PS256, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey), /2048/);
  const s = softwareSignerFromKey(ALG.EdDSA, ed.privateKey);
  await rejectsCode(s.sign('text' as unknown as Uint8Array), 'SIGNER_ERROR', /bytes/);
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

test.run();
