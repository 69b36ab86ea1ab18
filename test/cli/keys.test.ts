// `iscm-edge keys` end to end, as child processes (the way operators run it):
// init/list/show/csr on a real SoftHSM2 token and with software key files,
// CSRs checked with `openssl req -verify`, typed errors and exit codes, the
// PIN never echoed, and the esbuild bundle loading pkcs11js only on demand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex } from '../../protocol/bytes.js';
import { coseKeyFromPem, decodeCoseKey, thumbprint } from '../../protocol/cose/key.js';
import { createSoftHsm, haveSoftHsm } from '../helpers/softhsm.js';
import { haveCommand, tempDir } from '../helpers/proc.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SUITE = 'iscm-edge keys (SoftHSM2)';
const PIN = '918273645';
const PASS = 'correct horse battery staple';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}, entry: string[] = ['--import', 'tsx', join(root, 'runtime/cli/iscm-edge.ts')]): Run {
  const fullEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined && k !== 'ISCM_PKCS11_PIN' && k !== 'ISCM_KEY_PASSPHRASE') fullEnv[k] = v;
  for (const k of ['ISCM_PKCS11_PIN', 'ISCM_KEY_PASSPHRASE']) if (env[k] !== undefined) fullEnv[k] = env[k]!;
  const r = spawnSync(process.execPath, [...entry, 'keys', ...args], { cwd: root, env: fullEnv, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function json(r: Run): Record<string, unknown> {
  assert.is(r.code, 0, `exit 0 expected; stderr: ${r.err}`);
  return JSON.parse(r.out) as Record<string, unknown>;
}

/** Checks the init/show JSON: kid is the RFC 9679 thumbprint of both the COSE_Key and the PEM. */
function checkKeyJson(j: Record<string, unknown>, alg: string): void {
  assert.is(j.alg, alg);
  assert.match(String(j.kid), /^[0-9a-f]{64}$/);
  const cose = decodeCoseKey(fromHex(String(j.cose_key)));
  assert.is(toHex(thumbprint(cose)), j.kid);
  assert.is(toHex(thumbprint(coseKeyFromPem(String(j.public_key_pem)))), j.kid);
  createPublicKey(String(j.public_key_pem)); // parses
}

function opensslVerifies(file: string): string {
  // OpenSSL 3.0 exits 0 even when the self-signature fails: look for "verify OK".
  const r = spawnSync('openssl', ['req', '-in', file, '-verify', '-noout', '-subject', '-nameopt', 'RFC2253'], { encoding: 'utf8' });
  const text = `${r.stdout}\n${r.stderr}`;
  assert.match(text, /self-signature verify OK/, text);
  return text;
}

const hasOpenssl = haveCommand('openssl', 'openssl', `${SUITE}: CSR checks`);
const dir = tempDir('iscm-keys-cli-');

test('usage errors exit 2 and PINs/passphrases in arguments are refused', () => {
  const r1 = cli([]);
  assert.is(r1.code, 2);
  assert.match(r1.err, /give a subcommand/);
  assert.is(cli(['frob']).code, 2);
  const r2 = cli(['show', '--module', '/x.so', '--pin', '1234']);
  assert.is(r2.code, 2);
  assert.match(r2.err, /never taken as an argument/);
  assert.is(cli(['init', '--driver', 'software', '--key-file', join(dir, 'k'), '--alg', 'ES256', '--passphrase=xyz12345']).code, 2);
  const r3 = cli(['show', '--uri', 'pkcs11:token=a;object=b?pin-value=1234&module-path=/x.so']);
  assert.is(r3.code, 2);
  assert.match(r3.err, /pin-value/);
  assert.is(cli(['init', '--driver', 'software', '--key-file', join(dir, 'k'), '--alg', 'ES999']).code, 2);
  assert.is(cli(['show', '--driver', 'tpm']).code, 2);
  assert.is(cli(['list']).code, 2);
  const help = cli(['--help']);
  assert.is(help.code, 0);
  assert.match(help.out, /keys init --driver pkcs11/);
});

test('software driver: init into an encrypted key file, show without passphrase, csr', () => {
  const kf = join(dir, 'device.key');
  const init = json(cli(['init', '--driver', 'software', '--key-file', kf, '--alg', 'EdDSA'], { ISCM_KEY_PASSPHRASE: PASS }));
  checkKeyJson(init, 'EdDSA');
  assert.is(statSync(kf).mode & 0o777, 0o600);
  assert.not.ok(readFileSync(kf).includes(Buffer.from(PASS)));
  const show = json(cli(['show', '--key-file', kf]));
  assert.is(show.kid, init.kid);
  const again = cli(['init', '--driver', 'software', '--key-file', kf, '--alg', 'EdDSA'], { ISCM_KEY_PASSPHRASE: PASS });
  assert.is(again.code, 1, 'never overwrites a key');
  assert.match(again.err, /already exists/);
  const pf = join(dir, 'pass');
  writeFileSync(pf, `${PASS}\n`, { mode: 0o600 });
  const out = join(dir, 'sw.csr');
  const r = cli(['csr', '--key-file', kf, '--passphrase-file', pf, '--subject', 'CN=gw-sw,O=Acme,C=DE', '--out', out]);
  assert.is(r.code, 0, r.err);
  assert.is(JSON.parse(r.out).kid, init.kid);
  if (hasOpenssl) assert.match(opensslVerifies(out), /CN=gw-sw,O=Acme,C=DE/);
  const wrong = cli(['csr', '--key-file', kf, '--subject', 'CN=x'], { ISCM_KEY_PASSPHRASE: 'not the passphrase' });
  assert.is(wrong.code, 1);
  assert.match(wrong.err, /wrong passphrase/);
  assert.not.match(wrong.err + wrong.out, /not the passphrase/);
});

if (haveSoftHsm(SUITE)) {
  const hsm = createSoftHsm(['edge-gw'], PIN);
  const env = { ...hsm.env, ISCM_PKCS11_PIN: PIN };
  const M = hsm.module;
  const kids = new Map<string, string>();
  const noPin = (r: Run) => assert.not.ok((r.out + r.err).includes(PIN), 'the PIN appears in the output');

  for (const [alg, label] of [
    ['ES256', 'batch-es256'],
    ['EdDSA', 'batch-ed25519'],
    ['PS256', 'mqtt-rsa'],
  ] as const) {
    test(`keys init --driver pkcs11 --alg ${alg}: key pair on the token, JSON out`, () => {
      const args = ['init', '--driver', 'pkcs11', '--module', M, '--token', 'edge-gw', '--label', label, '--alg', alg];
      if (alg === 'PS256') args.push('--rsa-bits', '2048');
      const r = cli(args, env);
      noPin(r);
      const j = json(r);
      checkKeyJson(j, alg);
      assert.is(j.label, label);
      assert.match(String(j.uri), new RegExp(`^pkcs11:token=edge-gw;.*object=${label};id=.*;type=private$`));
      const a = j.attributes as Record<string, boolean>;
      assert.equal([a.token, a.private, a.sensitive, a.extractable, a.neverExtractable], [true, true, true, false, true]);
      kids.set(label, String(j.kid));
    });
  }

  test('keys init refuses an existing label (KEY_EXISTS) and a wrong PIN (PIN_INCORRECT), exit 1', () => {
    const dup = cli(['init', '--module', M, '--token', 'edge-gw', '--label', 'batch-es256', '--alg', 'ES256'], env);
    assert.is(dup.code, 1);
    assert.match(dup.err, /KEY_EXISTS/);
    const wrong = cli(['init', '--module', M, '--token', 'edge-gw', '--label', 'x', '--alg', 'ES256'], { ...env, ISCM_PKCS11_PIN: '11112222' });
    assert.is(wrong.code, 1);
    assert.match(wrong.err, /PIN_INCORRECT: .*not retried/);
    assert.not.match(wrong.err, /11112222/);
    const nopin = cli(['init', '--module', M, '--token', 'edge-gw', '--label', 'x', '--alg', 'ES256'], hsm.env);
    assert.is(nopin.code, 1);
    assert.match(nopin.err, /PIN_MISSING: .*ISCM_PKCS11_PIN/);
  });

  test('keys list: tokens and keys with kid and alg; private keys only when logged in', () => {
    const all = cli(['list', '--module', M], hsm.env);
    assert.is(all.code, 0, all.err);
    assert.match(all.out, /token "edge-gw"/);
    for (const [label, kid] of kids) assert.match(all.out, new RegExp(`public  \\S+ +kid ${kid}  label "${label}"`));
    const mine = cli(['list', '--module', M, '--token', 'edge-gw', '--json'], env);
    noPin(mine);
    const j = json(mine) as { tokens: { label: string; logged_in: boolean; keys: { label: string; kid: string; alg: string; type: string; attributes?: { sensitive: boolean; extractable: boolean } }[] }[] };
    assert.is(j.tokens.length, 1);
    assert.ok(j.tokens[0].logged_in);
    for (const [label, kid] of kids) {
      const k = j.tokens[0].keys.find((x) => x.label === label && x.type === 'private');
      assert.ok(k, label);
      assert.is(k!.kid, kid);
      assert.equal([k!.attributes!.sensitive, k!.attributes!.extractable], [true, false]);
    }
  });

  test('keys show: by URI (with PIN) and by label (without PIN: the public object)', () => {
    const byUri = json(cli(['show', '--uri', `pkcs11:token=edge-gw;object=batch-ed25519?module-path=${M}`], env));
    checkKeyJson(byUri, 'EdDSA');
    assert.is(byUri.kid, kids.get('batch-ed25519'));
    assert.is(byUri.logged_in, true);
    const pub = json(cli(['show', '--module', M, '--token', 'edge-gw', '--label', 'batch-es256'], hsm.env));
    assert.is(pub.kid, kids.get('batch-es256'));
    assert.is(pub.type, 'public');
    assert.is(pub.logged_in, false);
  });

  for (const [label, alg] of [
    ['batch-es256', 'ecdsa-with-SHA256'],
    ['batch-ed25519', 'ED25519'],
    ['mqtt-rsa', 'rsassaPss'],
  ] as const) {
    test(`keys csr with the token key ${label}: PKCS#10 that openssl req -verify accepts`, () => {
      const out = join(dir, `${label}.csr`);
      const r = cli(['csr', '--module', M, '--token', 'edge-gw', '--label', label, '--subject', 'CN=gateway-17,OU=Trucks,O=Acme Logistics,C=DE', '--dns', 'gw17.iscm.example', '--out', out], env);
      noPin(r);
      assert.is(r.code, 0, r.err);
      const summary = JSON.parse(r.out) as { kid: string; subject: string };
      assert.is(summary.kid, kids.get(label));
      assert.is(summary.subject, 'CN=gateway-17,OU=Trucks,O=Acme Logistics,C=DE');
      if (!hasOpenssl) return;
      assert.match(opensslVerifies(out), /subject=CN=gateway-17,OU=Trucks,O=Acme Logistics,C=DE/);
      const text = spawnSync('openssl', ['req', '-in', out, '-noout', '-text'], { encoding: 'utf8' }).stdout;
      assert.match(text, new RegExp(alg, 'i'));
      assert.match(text, /DNS:gw17\.iscm\.example/);
      // The CSR's public key is the token key (kid of the SPKI = kid of the key).
      const spki = spawnSync('openssl', ['req', '-in', out, '-noout', '-pubkey'], { encoding: 'utf8' }).stdout;
      assert.is(toHex(thumbprint(coseKeyFromPem(spki))), kids.get(label));
      const again = cli(['csr', '--module', M, '--token', 'edge-gw', '--label', label, '--subject', 'CN=x', '--out', out], env);
      assert.is(again.code, 2, 'refuses to overwrite');
    });
  }

  test('keys csr to stdout; typed errors for a missing key, token and module', () => {
    const r = cli(['csr', '--uri', `pkcs11:token=edge-gw;object=batch-es256?module-path=${M}`, '--subject', '/C=DE/CN=stdout'], env);
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+-----END CERTIFICATE REQUEST-----\n?$/);
    const nokey = cli(['csr', '--module', M, '--token', 'edge-gw', '--label', 'nope', '--subject', 'CN=x'], env);
    assert.is(nokey.code, 1);
    assert.match(nokey.err, /KEY_NOT_FOUND: .*keys found: .*"batch-es256"/);
    const notoken = cli(['show', '--module', M, '--token', 'nope', '--label', 'x'], env);
    assert.is(notoken.code, 1);
    assert.match(notoken.err, /TOKEN_NOT_FOUND: .*"edge-gw"/);
    const nomod = cli(['show', '--module', '/nonexistent/mod.so', '--token', 'edge-gw', '--label', 'x'], env);
    assert.is(nomod.code, 1);
    assert.match(nomod.err, /MODULE_LOAD_FAILED: cannot load PKCS#11 module \/nonexistent\/mod\.so/);
    const badsubj = cli(['csr', '--module', M, '--token', 'edge-gw', '--label', 'batch-es256', '--subject', 'CN'], env);
    assert.is(badsubj.code, 2);
  });

  test('the esbuild bundle keeps pkcs11js external and loads it only for the pkcs11 driver', async () => {
    const { build } = await import('esbuild');
    const outDir = join(root, 'node_modules', '.cache', `iscm-keys-test-${process.pid}`);
    mkdirSync(outDir, { recursive: true });
    const outfile = join(outDir, 'iscm-edge.mjs');
    try {
      await build({
        entryPoints: [join(root, 'runtime/cli/iscm-edge.ts')],
        outfile,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node18',
        external: ['pkcs11js', 'serialport', '@serialport/*', 'better-sqlite3'],
        banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
        logLevel: 'error',
      });
      const text = readFileSync(outfile, 'utf8');
      assert.ok(/import\(["']pkcs11js["']\)/.test(text), 'pkcs11js is a dynamic import');
      assert.not.ok(/^import .*["']pkcs11js["']/m.test(text), 'no static import of pkcs11js');
      assert.not.ok(text.includes('Pkcs11Error.messageReg'), 'pkcs11js code is not bundled');
      const entry = [outfile];
      const r = cli(['list', '--module', M, '--token', 'edge-gw', '--json'], env, entry);
      const j = json(r) as { tokens: { keys: { kid: string }[] }[] };
      assert.ok(j.tokens[0].keys.some((k) => k.kid === kids.get('batch-es256')));
      const sw = cli(['show', '--key-file', join(dir, 'device.key')], {}, entry);
      assert.is(sw.code, 0, sw.err);
    } finally {
      if (existsSync(outDir)) rmSync(outDir, { recursive: true, force: true });
    }
  });
}

test.run();
