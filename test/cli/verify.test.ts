// The offline verifier as an auditor runs it: the esbuild bundle, a real child
// process, bundle files on disk, exit codes and one line per bundle.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode } from '../../protocol/cbor.js';
import { coseKeyFromPem, coseKeyToMap } from '../../protocol/cose/key.js';
import { ledgerPem, makeKey, produceBundles } from '../helpers/independent.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist', 'iscm-edge.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'iscm-verify-'));

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test.before(() => {
  const b = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'build', 'bundle.ts')], { cwd: root, encoding: 'utf8' });
  assert.is(b.status, 0, `npm run build failed: ${b.stderr}`);
});
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('--help and --version', () => {
  const h = run('--help');
  assert.is(h.code, 0);
  assert.match(h.out, /verify/);
  const v = run('--version');
  assert.is(v.code, 0);
  assert.match(v.out.trim(), /^\d+\.\d+\.\d+/);
  assert.is(run('verify', '--help').code, 0);
});

test('valid bundles from an independent implementation: ok, exit 0 (PEM and COSE_KeySet trust files)', () => {
  const p = produceBundles('ES256', 'EdDSA', { records: 4 });
  const dir = join(tmp, 'valid');
  mkdirSync(dir);
  p.bundles.forEach((b, i) => writeFileSync(join(dir, `e${i}.iscm`), b));
  const other = makeKey('ES256');
  writeFileSync(join(tmp, 'ledger.pem'), ledgerPem(other) + ledgerPem(p.ledgerKey));
  writeFileSync(join(tmp, 'ledger.cbor'), encode([coseKeyToMap(coseKeyFromPem(ledgerPem(p.ledgerKey)))]));
  for (const keyFile of ['ledger.pem', 'ledger.cbor']) {
    const r = run('verify', '--ledger-key', join(tmp, keyFile), dir);
    assert.is(r.code, 0, r.out + r.err);
    const lines = r.out.trim().split('\n');
    assert.is(lines.length, 4);
    lines.forEach((l, i) => assert.match(l, new RegExp(`e${i}\\.iscm: ok \\(device independent-1 seq ${i + 1}, batch 1, log leaf 3 of 6\\)`)));
  }
  const j = run('verify', '--json', '--ledger-key', join(tmp, 'ledger.pem'), join(dir, 'e0.iscm'));
  assert.equal(JSON.parse(j.out), { path: join(dir, 'e0.iscm'), ok: true, device: 'independent-1', seq: 1, batch_seq: 1, leaf_index: 3, tree_size: 6 });
});

test('tampered, truncated, foreign-key and missing bundles: invalid with a reason, exit 1', () => {
  const p = produceBundles('EdDSA', 'ES256', { records: 2 });
  writeFileSync(join(tmp, 'l2.pem'), ledgerPem(p.ledgerKey));
  const good = join(tmp, 'good.iscm');
  writeFileSync(good, p.bundles[0]);
  const flipped = Uint8Array.from(p.bundles[0]);
  flipped[flipped.length - 40] ^= 0x10;
  writeFileSync(join(tmp, 'flipped.iscm'), flipped);
  writeFileSync(join(tmp, 'trunc.iscm'), p.bundles[0].subarray(0, 100));
  const r = run('verify', '--ledger-key', join(tmp, 'l2.pem'), good, join(tmp, 'flipped.iscm'), join(tmp, 'trunc.iscm'), join(tmp, 'nope.iscm'));
  assert.is(r.code, 1);
  const lines = r.out.trim().split('\n');
  assert.match(lines[0], /good\.iscm: ok/);
  assert.match(lines[1], /flipped\.iscm: invalid: \S/);
  assert.match(lines[2], /trunc\.iscm: invalid: not a valid bundle \(truncated or corrupted file\?\)/);
  assert.match(lines[3], /nope\.iscm: invalid: cannot read the file \(ENOENT\)/);
  // The right bundle with another ledger's key.
  writeFileSync(join(tmp, 'other.pem'), ledgerPem(makeKey('ES256')));
  const w = run('verify', '--ledger-key', join(tmp, 'other.pem'), good);
  assert.is(w.code, 1);
  assert.match(w.out, /invalid: receipt: .*untrusted key/);
});

test('usage errors: exit 2 with a message that says what to do', () => {
  const cases: [string[], RegExp][] = [
    [['verify'], /--ledger-key FILE is required/],
    [['verify', '--ledger-key', join(tmp, 'l2.pem')], /give at least one bundle/],
    [['verify', '--ledger-key', join(tmp, 'missing.pem'), 'x.iscm'], /cannot read ledger key file .*ENOENT/],
    [['verify', '--bogus'], /Unknown option '--bogus'/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ];
  writeFileSync(join(tmp, 'priv.pem'), makeKey('ES256').priv.export({ type: 'pkcs8', format: 'pem' }) as string);
  cases.push([['verify', '--ledger-key', join(tmp, 'priv.pem'), 'x.iscm'], /is a private key; give the ledger's public key/]);
  writeFileSync(join(tmp, 'junk.key'), 'not a key');
  cases.push([['verify', '--ledger-key', join(tmp, 'junk.key'), 'x.iscm'], /neither PEM public keys nor a CBOR COSE_KeySet/]);
  for (const [args, msg] of cases) {
    const r = run(...args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, msg);
    assert.not.match(r.err, /at .*\.mjs:\d+/, 'no stack trace for a usage error');
  }
});

test.run();
