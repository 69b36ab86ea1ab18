// npm run bench -- bundle: the bundles' sizes (goal ≤ 1 MiB each before
// compression) and cold start: wall time from spawning
// `node dist/<bundle>.mjs --version` (and `--help`) to its exit, goal
// ≤ 400 ms. Builds the bundles first (npm run build), so it measures the
// current sources. BENCH_RUNS (default 15) spawns per figure, after one
// warm-up spawn (file cache); median, p90 and min are printed.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALG } from '../protocol/cose/algorithms.js';
import { generateKeyFile } from '../drivers/software/keyfile.js';
import { loadavg } from 'node:os';
import { buildBundles } from '../build/bundle.js';
import { emit, table } from './_util.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const GOAL_MS = 400;

function coldStart(file: string, args: string[]): number[] {
  const ms: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [file, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const t = performance.now() - t0;
    if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    if (i > 0) ms.push(t);
  }
  return ms.sort((a, b) => a - b);
}

const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];

/**
 * `iscm-edge run` from spawn to "light node running" (journal opened and
 * recovered, key opened, ops endpoint up), on an existing journal after a
 * clean stop: what a gateway restart costs. Stopped by SIGTERM each time.
 */
async function runToReady(file: string): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'iscm-bench-ready-'));
  await generateKeyFile(join(dir, 'device.key'), ALG.EdDSA, { passphraseEnv: 'P', env: { P: 'bench passphrase' } }, { scrypt: { N: 2 ** 10 } });
  writeFileSync(join(dir, 'ledger.pem'), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const cfg = join(dir, 'gateway.yaml');
  writeFileSync(cfg, `device: { id: ready-bench }\nclock: { ntp_check: "off" }\nsensors: { t1: { kind: temperature } }\nlocations: { read_point: "urn:epc:id:sgln:4012345.00001.0" }\nsigner: { driver: software, key_file: device.key, passphrase_env: P }\njournal: { dir: journal, quota: 64MiB }\nmqtt: { url: "mqtt://127.0.0.1:9" }\ntrust: { ledger_keys: [ledger.pem] }\nmetrics: { listen: "127.0.0.1:0" }\nstate: { dir: state }\n`);
  const ms: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    const t0 = performance.now();
    const c = spawn(process.execPath, [file, 'run', '--config', cfg, '--log-format', 'json'], { env: { ...process.env, P: 'bench passphrase' }, stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      c.stderr.on('data', (d) => {
        out += d;
        if (out.includes('light node running')) resolve();
      });
      c.on('exit', (code) => reject(new Error(`run exited ${code} before ready: ${out.slice(-500)}`)));
    });
    const t = performance.now() - t0;
    c.removeAllListeners('exit');
    const exited = new Promise((r) => c.on('exit', r));
    c.kill('SIGTERM');
    await exited;
    if (i > 0) ms.push(t);
  }
  rmSync(dir, { recursive: true, force: true });
  return ms.sort((a, b) => a - b);
}

for (const b of await buildBundles()) {
  emit({ bench: 'bundle_size', bundle: b.bundle, bytes: b.bytes, gzip_bytes: b.gzip_bytes, goal_bytes: b.goal_bytes, within_goal: b.within_goal });
  for (const args of [['--version'], ['--help']]) {
    const ms = coldStart(b.file, args);
    emit({ bench: 'cold_start', bundle: b.bundle, args: args.join(' '), runs: RUNS, median_ms: q(ms, 0.5), p90_ms: q(ms, 0.9), min_ms: ms[0], goal_ms: GOAL_MS, within_goal: q(ms, 0.5) <= GOAL_MS, node: process.version, loadavg: loadavg()[0] });
  }
  if (b.bundle.endsWith('iscm-edge.mjs')) {
    const ms = await runToReady(b.file);
    emit({ bench: 'cold_start', bundle: b.bundle, args: 'run --config … (to "light node running")', runs: RUNS, median_ms: q(ms, 0.5), p90_ms: q(ms, 0.9), min_ms: ms[0], goal_ms: GOAL_MS, within_goal: q(ms, 0.5) <= GOAL_MS, node: process.version, loadavg: loadavg()[0] });
  }
}
table();
