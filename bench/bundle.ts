// npm run bench -- bundle: the bundles' sizes (goal ≤ 1 MiB each before
// compression) and cold start: wall time from spawning
// `node dist/<bundle>.mjs --version` (and `--help`) to its exit, goal
// ≤ 400 ms. Builds the bundles first (npm run build), so it measures the
// current sources. BENCH_RUNS (default 15) spawns per figure, after one
// warm-up spawn (file cache); median, p90 and min are printed.
import { spawnSync } from 'node:child_process';
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

for (const b of await buildBundles()) {
  emit({ bench: 'bundle_size', bundle: b.bundle, bytes: b.bytes, gzip_bytes: b.gzip_bytes, goal_bytes: b.goal_bytes, within_goal: b.within_goal });
  for (const args of [['--version'], ['--help']]) {
    const ms = coldStart(b.file, args);
    emit({ bench: 'cold_start', bundle: b.bundle, args: args.join(' '), runs: RUNS, median_ms: q(ms, 0.5), p90_ms: q(ms, 0.9), min_ms: ms[0], goal_ms: GOAL_MS, within_goal: q(ms, 0.5) <= GOAL_MS, node: process.version, loadavg: loadavg()[0] });
  }
}
table();
