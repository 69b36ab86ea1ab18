// iscm-ledger as an operator runs it: the esbuild bundle (dist/iscm-ledger.mjs),
// exit codes, messages, config checking, keys, the devnet (in-memory) node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { coseKeyFromPem } from '../../protocol/cose/key.js';
import { makeKeys, root, startLedger, tempDir, writeLedgerConfig, apiJson, PASS } from './_env.js';

const cliPath = join(root, 'dist', 'iscm-ledger.mjs');
const dir = tempDir('iscm-cli-');

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [cliPath, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test.before(() => {
  const b = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'build', 'bundle.ts')], { cwd: root, encoding: 'utf8' });
  assert.is(b.status, 0, `npm run build failed: ${b.stderr}`);
});

test('help, version, unknown command, unknown flag', () => {
  const h = run(['--help']);
  assert.is(h.code, 0);
  for (const c of ['run', 'check-config', 'enroll', 'revoke', 'export-bundles', 'audit', 'status']) assert.match(h.out, new RegExp(`\\n  ${c} `));
  assert.match(run(['--version']).out.trim(), /^\d+\.\d+\.\d+/);
  assert.is(run([]).code, 2);
  const u = run(['frobnicate']);
  assert.is(u.code, 2);
  assert.match(u.err, /unknown command "frobnicate"/);
  const f = run(['audit', '--config', 'x.yaml', '--passphrase', 'secret']);
  assert.is(f.code, 2);
  assert.match(f.err, /Unknown option '--passphrase'/);
  assert.match(run(['export-bundles', '--help']).out, /iscm-edge verify --ledger-key/);
});

test('check-config: ok for the shipped examples (keys present), FILE:LINE:COL errors otherwise', async () => {
  const keys = await makeKeys(dir);
  const good = writeLedgerConfig(dir, keys, { nodeId: 'cc', endpoints: ['http://127.0.0.1:2379'] });
  const r = run(['check-config', '--config', good]);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /ok \(chain iscm-test, store etcd, signer software, block interval 300 ms\)/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, readFileSync(good, 'utf8').replace('block_interval: 300ms', 'block_intervall: 300ms').replace('  kind: software', '  kind: software\n  passphrase: swordfish'));
  const e = run(['check-config', '--config', bad]);
  assert.is(e.code, 2);
  assert.match(e.err, /bad\.yaml:\d+:3: signer\.passphrase: secrets are never written in config files/);
  assert.match(e.err, /bad\.yaml:\d+:3: sequencer\.block_intervall: unknown key \(did you mean "block_interval"\?\)/);
  assert.not.match(e.err, /swordfish/);
  const missing = run(['check-config', '--config', join(dir, 'nope.yaml')]);
  assert.is(missing.code, 2);
  assert.match(missing.err, /nope\.yaml: cannot read the config file \(ENOENT\)/);
});

test('key generate / public: passphrase only from the environment or a file; public key as PEM', () => {
  const noPass = run(['key', 'generate', '--out', join(dir, 'k1.key')], { ISCM_KEY_PASSPHRASE: '' });
  assert.is(noPass.code, 2);
  assert.match(noPass.err, /ISCM_KEY_PASSPHRASE is empty|not set/);
  const g = run(['key', 'generate', '--out', join(dir, 'k1.key'), '--alg', 'EdDSA'], { ISCM_KEY_PASSPHRASE: PASS });
  assert.is(g.code, 0, g.err);
  assert.match(g.out, /EdDSA key, kid [0-9a-f]{64}/);
  const again = run(['key', 'generate', '--out', join(dir, 'k1.key')], { ISCM_KEY_PASSPHRASE: PASS });
  assert.is(again.code, 2);
  assert.match(again.err, /already exists/);
  writeFileSync(join(dir, 'pass.txt'), `${PASS}\n`);
  assert.is(run(['key', 'generate', '--out', join(dir, 'k2.key'), '--passphrase-file', join(dir, 'pass.txt')]).code, 0);
  const p = run(['key', 'public', '--key', join(dir, 'k1.key')]);
  assert.is(p.code, 0);
  assert.is(coseKeyFromPem(p.out).kty, 1);
  assert.is(run(['key', 'generate', '--out', join(dir, 'k3.key'), '--alg', 'RSA1024'], { ISCM_KEY_PASSPHRASE: PASS }).code, 2);
});

test('store unavailable: exit 3 with the reason; a missing key file: exit 2', async () => {
  const keys = await makeKeys(tempDir('iscm-cli-k-'));
  const cfg = writeLedgerConfig(dir, keys, { nodeId: 'down', endpoints: ['http://127.0.0.1:1'] });
  const s = run(['status', '--config', cfg]);
  assert.is(s.code, 3, s.out + s.err);
  assert.match(s.err, /etcd .* failed/);
  const broken = join(dir, 'nokey.yaml');
  writeFileSync(broken, readFileSync(cfg, 'utf8').replace(/key_file: .*/, 'key_file: /nonexistent/node.key').replace(/kind: etcd[\s\S]*?call_timeout: 4s\n/, 'kind: memory\n'));
  const r = run(['run', '--config', broken], { ISCM_LEDGER_KEY_PASSPHRASE: PASS });
  assert.is(r.code, 2, r.out + r.err);
  assert.match(r.err, /node\.key/);
});

test('devnet: `run` with the in-memory store serves the API; claims are accepted over it', async () => {
  const keys = await makeKeys(tempDir('iscm-cli-d-'));
  const cfg = writeLedgerConfig(dir, keys, { nodeId: 'devnet' });
  const l = await startLedger(cfg, 'devnet', { bundle: true });
  try {
    const h = await apiJson<{ role: string; store: string; size: number }>(l.apiUrl, '/v1/health');
    assert.equal([h.role, h.store, h.size], ['active', 'ok', 0]);
    assert.is((await fetch(l.apiUrl + '/v1/head')).status, 404);
    const bad = await fetch(l.apiUrl + '/v1/registry/claims', { method: 'POST', body: new Uint8Array([1, 2, 3]) });
    assert.is(bad.status, 400);
    assert.match(await bad.text(), /REGISTRY/);
    assert.match(await (await fetch(l.apiUrl + '/metrics')).text(), /iscm_ledger_sequencer_active 1/);
  } finally {
    await l.proc.stop();
  }
  assert.match(l.proc.output(), /ledger: stopped/);
});

test.run();
