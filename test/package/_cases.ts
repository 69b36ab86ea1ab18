// What every emulated package suite proves on its target, with the target's
// own Node under qemu: the launcher and both bundles start, the addons in the
// package are the ones loaded, a device key is made and a CSR signed through
// the target's SoftHSM2 (on a token the host's softhsm2-util initialised: the
// file format is the same), and the firmware link works over a socat pty with
// the host's simulator on the other end.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseReadingLine } from '../../protocol/reading.js';
import { packageVersion } from '../../build/bundle.js';
import type { EmulatedArch } from '../../build/cross-sysroots.js';
import { haveCommand, start, tempDir, waitUntil, type Proc } from '../helpers/proc.js';
import { haveSocat, ptyPair, type PtyPair } from '../helpers/socat.js';
import { createSoftHsm, haveSoftHsm } from '../helpers/softhsm.js';
import { emulatedPackage, type Ran } from './_emulated.js';
import { writeFileSync } from 'node:fs';
import { decodeCoseKey } from '../../protocol/cose/key.js';
import { mosquittoAvailable } from '../helpers/mosquitto.js';
import { freePort, startConsortium, writeNodeConfig } from '../node/_env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PIN = '564738';
const version = packageVersion();

function ok(r: Ran, what: string): Ran {
  assert.is(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.out}\nstderr: ${r.err}`);
  return r;
}

const timings: Record<string, number> = {};
const timed = (name: string, r: Ran): Ran => ((timings[name] = r.ms), r);

export async function registerEmulatedSuite(arch: EmulatedArch): Promise<void> {
  const suite = `package ${arch} (qemu)`;
  const t0 = Date.now();
  const emu = await emulatedPackage(arch, suite);
  if (!emu) return;
  const procs: Proc[] = [];
  const pairs: PtyPair[] = [];
  test.after.each(async () => {
    for (const p of procs.splice(0)) await p.stop(5000).catch(() => {});
    for (const p of pairs.splice(0)) await p.stop().catch(() => {});
  });
  test.after(() => {
    process.stderr.write(`     ${suite}: package built in ${emu.pkg.buildSeconds.toFixed(1)} s, ${JSON.stringify(timings)} ms, suite ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  });

  test(`${arch}: the target's Node loads the package's own addons`, () => {
    const lib = join(emu.pkg.dir, 'lib');
    const probe = `const r=require('module').createRequire(${JSON.stringify(`${lib}/`)});` +
      `const k=r('pkcs11js');const s=r('@serialport/bindings-cpp');` +
      `console.log(JSON.stringify({arch:process.arch,node:process.version,pkcs11:typeof k.PKCS11,serial:typeof s.autoDetect,` +
      `addons:Object.keys(require.cache).filter(f=>f.endsWith('.node'))}))`;
    const r = ok(timed('node-probe', emu.node(['-e', probe])), 'addon probe');
    const j = JSON.parse(r.out.trim()) as { arch: string; node: string; pkcs11: string; serial: string; addons: string[] };
    assert.is(j.addons.length, 2, `two addons loaded: ${j.addons.join(', ')}`);
    for (const a of j.addons) assert.ok(a.startsWith(`${lib}/node_modules/`), `${a} is the package's own`);
    assert.is(j.arch, arch);
    assert.match(j.node, /^v18\./);
    assert.is(j.pkcs11, 'function');
    assert.is(j.serial, 'function');
  });

  test(`${arch}: bin/iscm-edge and bin/iscm-ledger start (--version, --help)`, () => {
    assert.is(ok(timed('edge --version', emu.run('iscm-edge', ['--version'])), 'iscm-edge --version').out.trim(), version);
    assert.match(ok(timed('edge --help', emu.run('iscm-edge', ['--help'])), 'iscm-edge --help').out, /usage: iscm-edge <command>/);
    assert.match(ok(timed('ledger --help', emu.run('iscm-ledger', ['--help'])), 'iscm-ledger --help').out, /usage: iscm-ledger <command>/);
  });

  if (haveSoftHsm(suite)) {
    test(`${arch}: keys init on a SoftHSM2 token through the ${arch} module, keys csr verified by the host's openssl`, () => {
      const hsm = createSoftHsm(['edge-gw'], PIN);
      const env = { ...hsm.env, ISCM_PKCS11_PIN: PIN };
      const M = emu.emu.softhsmModule;
      const init = ok(timed('keys init', emu.run('iscm-edge', ['keys', 'init', '--driver', 'pkcs11', '--module', M, '--token', 'edge-gw', '--label', 'batch-key', '--alg', 'ES256'], env)), 'keys init');
      assert.not.ok((init.out + init.err).includes(PIN), 'the PIN is never printed');
      const key = JSON.parse(init.out) as { kid: string; attributes: Record<string, boolean> };
      assert.match(key.kid, /^[0-9a-f]{64}$/);
      assert.equal([key.attributes.sensitive, key.attributes.extractable], [true, false]);
      const csrFile = join(hsm.dir, 'gw.csr');
      const csr = ok(timed('keys csr', emu.run('iscm-edge', ['keys', 'csr', '--module', M, '--token', 'edge-gw', '--label', 'batch-key', '--subject', `CN=gw-${arch},O=Acme,C=DE`, '--out', csrFile], env)), 'keys csr');
      assert.is((JSON.parse(csr.out) as { kid: string }).kid, key.kid, 'the CSR is signed by the key keys init made');
      if (haveCommand('openssl', 'openssl', `${suite}: CSR check`)) {
        const v = spawnSync('openssl', ['req', '-in', csrFile, '-verify', '-noout', '-subject', '-nameopt', 'RFC2253'], { encoding: 'utf8' });
        const text = `${v.stdout}\n${v.stderr}`;
        assert.match(text, /self-signature verify OK/, text);
        assert.match(text, new RegExp(`CN=gw-${arch},O=Acme,C=DE`));
      }
    });
  }

  if (haveSocat(suite)) {
    test(`${arch}: firmware listen (${arch}) ↔ the host's sim-firmware over a socat pty: readings captured and acknowledged`, async () => {
      const COUNT = 40;
      const dir = tempDir(`iscm-pkg-link-${arch}-`);
      const pair = await ptyPair(dir);
      pairs.push(pair);
      const out = join(dir, 'capture.jsonl');
      const t1 = Date.now();
      const listener = emu.start('iscm-edge', ['firmware', 'listen', '--port', pair.b, '--out', out]);
      procs.push(listener);
      await listener.waitFor(/listening/, 120_000);
      timings['listen ready'] = Date.now() - t1;
      const sim = start(process.execPath, ['--import', 'tsx', join(root, 'runtime/cli/iscm-edge.ts'), 'sim-firmware', '--port', pair.a, '--rate', '20', '--count', String(COUNT), '--seed', '5', '--sensors', 'temp,humidity,door'], { cwd: root, name: 'sim-firmware (host)' });
      procs.push(sim);
      await sim.waitFor(new RegExp(`all ${COUNT} readings acknowledged`), 120_000);
      timings['readings acked'] = Date.now() - t1;
      await sim.stop(5000);
      await listener.stop(10_000);
      const lines = existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : [];
      const readings = lines.map((l, i) => parseReadingLine(l, `capture:${i + 1}`));
      const keys = new Set(readings.map((r) => `${r.bootId}:${r.seq}`));
      assert.is(readings.length, COUNT, `captured ${readings.length} of ${COUNT}`);
      assert.is(keys.size, COUNT, 'each reading once');
      assert.ok(readings.every((r) => ['temperature', 'humidity', 'door'].includes(r.kind)), 'the sensors simulated');
      await waitUntil(() => listener.child.exitCode !== null || listener.child.signalCode !== null, 10_000, 'the listener to exit');
    });
  }

  if (haveSoftHsm(suite) && haveSocat(suite) && mosquittoAvailable(suite)) {
    test(`${arch}: iscm-edge run (${arch}) end to end: host simulator over a pty → events → journal → batches signed on the ${arch} SoftHSM → host ledger → receipts verified on the gateway`, async () => {
      const COUNT = 60;
      const DEVICE = `pkg-${arch}`;
      const dir = tempDir(`iscm-pkg-run-${arch}-`);
      const hsm = createSoftHsm([DEVICE], PIN);
      const pinFile = join(dir, 'pin');
      writeFileSync(pinFile, PIN + '\n', { mode: 0o600 });
      const M = emu.emu.softhsmModule;
      const init = ok(emu.run('iscm-edge', ['keys', 'init', '--driver', 'pkcs11', '--module', M, '--token', DEVICE, '--label', 'device-key', '--alg', 'ES256', '--pin-file', pinFile], hsm.env), 'keys init');
      const key = decodeCoseKey(new Uint8Array(Buffer.from((JSON.parse(init.out) as { cose_key: string }).cose_key, 'hex')));
      const c = await startConsortium({ etcd: false, blockInterval: '200ms' });
      try {
        await c.enroll(DEVICE, key);
        const pair = await ptyPair(dir);
        pairs.push(pair);
        const metricsPort = await freePort();
        const config = writeNodeConfig({ deviceId: DEVICE, dir: join(dir, 'node'), mqttUrl: c.consortium.url, ledgerPem: c.keys.ledgerPem, token: { hsm: { ...hsm, module: M }, pinFile, publicKey: key, label: 'device-key' }, metricsPort, ports: { mcu: { path: pair.b, sensors: ['t1', 'h1', 'd1'] } }, batching: { max_records: 16, max_delay: '300ms' } });
        const t1 = Date.now();
        const node = emu.start('iscm-edge', ['run', '--config', config], hsm.env);
        procs.push(node);
        await node.waitFor(/light node running/, 180_000);
        timings['run ready'] = Date.now() - t1;
        const sim = start(process.execPath, ['--import', 'tsx', join(root, 'runtime/cli/iscm-edge.ts'), 'sim-firmware', '--port', pair.a, '--rate', '20', '--count', String(COUNT), '--seed', '7', '--sensors', 'temp,humidity,door'], { cwd: root, name: 'sim-firmware (host)' });
        procs.push(sim);
        await sim.waitFor(new RegExp(`all ${COUNT} readings acknowledged`), 180_000);
        timings['run readings acked'] = Date.now() - t1;
        let st: Record<string, any> = {};
        await waitUntil(async () => {
          st = (await (await fetch(`http://127.0.0.1:${metricsPort}/status`)).json()) as Record<string, any>;
          return st.journal.last_seq >= COUNT && st.journal.committed_through_seq === st.journal.last_seq;
        }, 180_000, 'every event receipted and verified on the emulated gateway');
        timings['run all receipted'] = Date.now() - t1;
        assert.is(st.signer.state, 'ready');
        assert.ok(st.journal.committed_through_batch >= 4, `batches signed on the ${arch} token and receipted (${st.journal.committed_through_batch})`);
        assert.is(await c.ledgerLastSeq(DEVICE), st.journal.last_seq, 'the ledger holds every event');
        await node.stop(20_000);
        assert.match(node.output(), /light node stopped/);
      } finally {
        await c.stop();
      }
    });
  }
}
