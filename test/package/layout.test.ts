// The package step itself, natively (no emulator): argument errors an
// operator can act on, the linux-x64 package run from a folder outside the
// repo through its launcher (also via a version symlink, as /opt/iscm-edge
// is), its manifest and SHA256SUMS, the systemd unit's hardening, the example
// config valid for the bundled CLI, the ARMv7 and MIPS32 packages' addons of
// the right machine, and Dockerfile.arm64 running the same package step.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { buildBundles, packageVersion } from '../../build/bundle.js';
import { listFiles as files, sha256File } from '../../build/manifest.js';
import { checkElf } from '../../build/native.js';
import { target, TARGET_NAMES, type TargetName } from '../../build/targets.js';
import { tempDir } from '../helpers/proc.js';
import { buildAndUnpack, type Packaged } from './_packaged.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const version = packageVersion();

function packageCli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'build/package.ts'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
}

test('npm run package: an unknown or missing target exits 2 and lists the valid targets', () => {
  const bad = packageCli(['--target', 'linux-sparc']);
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /unknown target "linux-sparc"/);
  for (const t of TARGET_NAMES) assert.ok(bad.stderr.includes(t), `lists ${t}`);
  const none = packageCli([]);
  assert.is(none.status, 2);
  assert.match(none.stderr, /give --target NAME \(one of: linux-x64, linux-arm64/);
  const extra = packageCli(['--target', 'linux-x64', '--tarball']);
  assert.is(extra.status, 2);
  assert.match(extra.stderr, /unknown argument "--tarball"/);
  assert.is(packageCli(['--target']).status, 2);
});

let x64: Packaged;
test.before(async () => {
  x64 = await buildAndUnpack('linux-x64');
});

test('linux-x64 package: launcher runs both bundles from outside the repo, also through a version symlink', () => {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const bin = (cmd: string, args: string[], dir = x64.dir, e: Record<string, string> = env) =>
    spawnSync(join(dir, 'bin', cmd), args, { cwd: tempDir('iscm-cwd-'), env: e, encoding: 'utf8', timeout: 60_000 });
  assert.ok(!relative(root, x64.dir).match(/^[^.]/), 'unpacked outside the repo');
  const v = bin('iscm-edge', ['--version']);
  assert.is(v.status, 0, v.stderr);
  assert.is(v.stdout.trim(), version);
  const ledger = bin('iscm-ledger', ['--help']);
  assert.is(ledger.status, 0, ledger.stderr);
  // /opt/iscm-edge is a symlink to the version folder.
  const link = join(tempDir('iscm-opt-'), 'iscm-edge');
  symlinkSync(x64.dir, link);
  const check = bin('iscm-edge', ['config', 'check', join(link, 'share/examples/gateway.yaml')], link);
  assert.is(check.status, 0, `the example config is valid: ${check.stdout}${check.stderr}`);
  // The ledger's etcd3 and the light node's serialport resolve from lib/node_modules.
  const probe = spawnSync(process.execPath, ['-e', `const r=require('module').createRequire(${JSON.stringify(`${x64.dir}/lib/`)});for(const m of ['etcd3','serialport','pkcs11js'])console.log(m, r.resolve(m))`], { encoding: 'utf8' });
  assert.is(probe.status, 0, probe.stderr);
  for (const line of probe.stdout.trim().split('\n')) assert.ok(line.split(' ')[1].startsWith(join(x64.dir, 'lib/node_modules/')), line);
  const noNode = bin('iscm-edge', ['--version'], x64.dir, { ...env, ISCM_NODE: '/nonexistent/node' });
  assert.is(noNode.status, 127);
  assert.match(noNode.stderr, /Node\.js not found .*ISCM_NODE/);
});

test('linux-x64 package: MANIFEST.json and SHA256SUMS cover every file; addons are x64 ELF; no host build leftovers', () => {
  const m = JSON.parse(readFileSync(join(x64.dir, 'MANIFEST.json'), 'utf8')) as {
    target: string; version: string; requires: { node: string; napi_min: number; node_abi_min: number }; files: Record<string, string>; addons: { package: string; file: string }[];
  };
  assert.is(m.target, 'linux-x64');
  assert.is(m.version, version);
  assert.is(m.requires.node, '>=18');
  assert.ok(m.requires.napi_min >= 8 && m.requires.node_abi_min === 108);
  const all = files(x64.dir).map((f) => relative(x64.dir, f)).filter((f) => f !== 'MANIFEST.json' && f !== 'SHA256SUMS').sort();
  assert.equal(Object.keys(m.files).sort(), all, 'the manifest lists exactly the files');
  for (const f of all) assert.is(m.files[f], sha256File(join(x64.dir, f)), f);
  execFileSync('sha256sum', ['-c', '--quiet', 'SHA256SUMS'], { cwd: x64.dir });
  const nodes = all.filter((f) => f.endsWith('.node'));
  assert.equal(nodes.sort(), m.addons.map((a) => `lib/node_modules/${a.package}/${a.file}`).sort());
  for (const n of nodes) checkElf(join(x64.dir, n), target('linux-x64'));
  assert.not.ok(all.some((f) => /\.(o|d\.ts|map|gyp)$|\/obj\.target\/|\/build\/config\.gypi$/.test(f)), 'no compiler output, types or gyp files');
  assert.not.ok(all.some((f) => /prebuilds\/(?!linux-x64\/)/.test(f)), 'no other platforms\' prebuilds');
});

test('systemd unit: hardened, Type=notify with watchdog, writes only the example config\'s journal and state dirs', () => {
  const unit = readFileSync(join(x64.dir, 'share/systemd/iscm-edge.service'), 'utf8');
  const kv = new Map<string, string[]>();
  for (const l of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(l);
    if (m) kv.set(m[1], [...(kv.get(m[1]) ?? []), m[2]]);
  }
  const one = (k: string) => kv.get(k)?.at(-1);
  assert.is(one('ExecStart'), '/opt/iscm-edge/bin/iscm-edge run --config /etc/iscm-edge/gateway.yaml');
  assert.is(one('Type'), 'notify');
  assert.is(one('NotifyAccess'), 'all');
  assert.match(one('WatchdogSec') ?? '', /^\d+s$/);
  assert.is(one('ProtectSystem'), 'strict');
  assert.is(one('NoNewPrivileges'), 'yes');
  assert.is(one('User'), 'iscm-edge');
  assert.is(one('CapabilityBoundingSet'), '');
  const writable = (kv.get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/));
  const cfg = parseYaml(readFileSync(join(x64.dir, 'share/examples/gateway.yaml'), 'utf8')) as { journal: { dir: string }; state: { dir: string }; signer: { pin_file: string } };
  for (const d of [cfg.journal.dir, cfg.state.dir]) assert.ok(writable.some((w) => d === w || d.startsWith(`${w}/`)), `${d} is writable under ProtectSystem=strict`);
  const cred = one('LoadCredential') ?? '';
  assert.is(`/run/credentials/iscm-edge.service/${cred.split(':')[0]}`, cfg.signer.pin_file, 'the config reads the PIN from the unit\'s credential');
});

for (const name of ['linux-armv7', 'linux-mipsel'] as TargetName[]) {
  test(`${name} package: every addon is an ELF for ${name}; MIPS builds serialport from source`, async () => {
    const p = await buildAndUnpack(name);
    const t = target(name);
    const nodes = files(p.dir).filter((f) => f.endsWith('.node'));
    assert.is(nodes.length, 2, nodes.join(', '));
    for (const n of nodes) checkElf(n, t);
    const serial = join(p.dir, 'lib/node_modules/@serialport/bindings-cpp');
    if (t.serialPrebuild) assert.ok(existsSync(join(serial, 'prebuilds', t.serialPrebuild.dir, t.serialPrebuild.file)));
    else assert.ok(existsSync(join(serial, 'build/Release/bindings.node')));
    assert.match(readFileSync(join(p.dir, 'PACKAGE-NOTES.md'), 'utf8'), /## What this package lacks\n\n- Not run under emulation/);
    process.stderr.write(`     ${name}: ${p.result.bytes} bytes, built in ${p.buildSeconds.toFixed(1)} s\n`);
  });
}

test('Dockerfile.arm64: the same package step, every source folder the bundles use, a non-root arm64 runtime under tini', async () => {
  const df = readFileSync(join(root, 'Dockerfile.arm64'), 'utf8');
  assert.match(df, /^RUN npm run package -- --target linux-arm64 --out \/out/m);
  assert.match(df, /^FROM --platform=\$BUILDPLATFORM \S+ AS build$/m);
  assert.match(df, /^FROM arm64v8\/debian:bookworm-slim AS runtime$/m);
  assert.match(df, /g\++-aarch64-linux-gnu/);
  assert.match(df, /sha256sum -c --quiet SHA256SUMS/);
  assert.match(df, /^USER iscm-edge$/m);
  assert.match(df, /^ENTRYPOINT \["\/usr\/bin\/tini", "--", "\/opt\/iscm-edge\/bin\/iscm-edge"\]$/m);
  const copied = [...df.matchAll(/^COPY (?!--from)(\S+) /gm)].map((m) => m[1]);
  for (const c of copied) assert.ok(existsSync(join(root, c)), `COPY ${c} exists`);
  const needed = new Set((await buildBundles(tempDir('iscm-bundles-'))).flatMap((b) => b.source_dirs));
  for (const d of [...needed, 'build', 'configs']) assert.ok(copied.includes(d), `Dockerfile.arm64 copies ${d}/`);
  for (const f of ['share/examples/gateway.yaml']) assert.ok(existsSync(join(x64.dir, f)) && df.includes(f), `the runtime stage uses the package's ${f}`);
});

test.run();
