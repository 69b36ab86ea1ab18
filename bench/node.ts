// `npm run bench -- node`: the light node alone (issue 8), JSON lines.
//
// The node runs in its own process (bench/node-child.ts, bundled with esbuild
// like dist/iscm-edge.mjs and run by plain node, so its RSS and CPU are its
// own): in-process reading source, the real FileJournal with fsync, a
// software Ed25519 key (node:crypto), sync over MQTT. mosquitto and the
// project's ledger (in-memory store) run in processes of their own.
//
// Figures:
// - steady (closed loop, BENCH_INFLIGHT groups of BENCH_GROUP readings in
//   flight): events/s made durable, and per CPU-second of the node process
//   ("per core"; goal ≥ 30 000).
// - offered (open loop at BENCH_RATE readings/s, default 10 000, arriving in
//   groups of 32 as from a busy MCU link): p50/p99 reading → durable (the ACK
//   point; goal p99 ≤ 20 ms) and reading → verified receipt; RSS at steady
//   state (goal ≤ 60 MB); bytes on the wire per event (batch messages out +
//   receipt messages in, amortised over the events committed).
// - backlog: the broker stopped, BENCH_BACKLOG events (default 1 000 000)
//   journaled; RSS before/after; then the broker back and the drain rate
//   (events/s receipted, verified and committed on the device; goal ≥ 20 000).
import { fork } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { emit, table } from './_util.js';
import { ALG } from '../protocol/cose/algorithms.js';
import { softwareSignerFromKey } from '../drivers/software/signer.js';
import { NATIVE_EXTERNALS } from '../build/bundle.js';
import { startConsortium, tempDir } from '../test/node/_env.js';
import { startConsortiumBroker } from '../test/helpers/mosquitto.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const GROUP = Number(process.env.BENCH_GROUP ?? 128);
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 8);
const RATES = (process.env.BENCH_RATES ?? '1000,5000,10000').split(',').filter(Boolean).map(Number);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 32);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 1_000_000);
const DEVICE = 'bench-node';
const log = (m: string) => process.stderr.write(`[bench node] ${m}\n`);

// The node under test, bundled (resolves its external packages from the repo's node_modules).
const childFile = join(root, '.cache', 'bench', 'node-child.mjs');
mkdirSync(join(root, '.cache', 'bench'), { recursive: true });
await build({
  entryPoints: [join(root, 'bench/node-child.ts')],
  outfile: childFile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node18',
  minify: !process.env.BENCH_PROF && !process.env.BENCH_ALLOCPROF, // names in the profile
  external: NATIVE_EXTERNALS,
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  define: { __ISCM_VERSION__: '"bench"', __ISCM_BUILD_DATE__: JSON.stringify(new Date().toISOString().slice(0, 10)) },
  logLevel: 'warning',
});

const c = await startConsortium({ etcd: false, blockInterval: '200ms', ledgerNodeArgs: process.env.BENCH_LEDGER_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_LEDGER_PROF}`] : [] });
const dir = tempDir('iscm-bench-node-');
const { privateKey } = generateKeyPairSync('ed25519');
await c.enroll(DEVICE, softwareSignerFromKey(ALG.EdDSA, privateKey).publicKey);
const config = `
device: { id: ${DEVICE} }
clock: { ntp_check: "off", not_before: "2020-01-01T00:00:00Z" }
sensors: { t1: { kind: temperature } }
assets: { epcs: [urn:epc:id:sscc:4012345.0000000101] }
locations: { read_point: "urn:epc:id:sgln:4012345.00001.0" }
signer: { driver: software, key_file: unused.key, passphrase_env: UNUSED }
journal: { dir: ${join(dir, 'journal')}, quota: 4GiB }
batching: { max_records: 4096, max_delay: 200ms }
mqtt: { url: "${c.consortium.url}", window: ${WINDOW}, resend_timeout: 60s }
trust: { ledger_keys: [${c.keys.ledgerPem}] }
metrics: { enabled: false }
state: { dir: ${join(dir, 'state')} }
logging: { level: error }
`;
writeFileSync(join(dir, 'gateway.yaml'), config);

// The node runs as the package's launcher runs it (build/launcher.sh): a small young
// generation and two malloc arenas; BENCH_NODE_FLAGS / the environment override.
const childEnv = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', ...process.env };
const child = fork(childFile, [], { env: childEnv, execArgv: ['--expose-gc', ...(process.env.BENCH_NODE_FLAGS ?? '--max-semi-space-size=4').split(' ').filter(Boolean), ...(process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const ask = <T = Record<string, number>>(m: Record<string, unknown>): Promise<T> =>
  new Promise((resolve, reject) => {
    child.once('message', (r: { ok: boolean; error?: string } & T) => (r.ok ? resolve(r) : reject(new Error(r.error))));
    child.send(m);
  });

const init = await ask({ cmd: 'init', config, configPath: join(dir, 'gateway.yaml'), keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) });
const m0 = await ask({ cmd: 'counters' });
log(`after start: anon ${m0.anon_mb.toFixed(1)} MB, file-backed ${m0.file_mb.toFixed(1)} MB, heap ${m0.heap_mb.toFixed(1)} / ${m0.heap_total_mb.toFixed(1)} MB, external ${m0.external_mb.toFixed(1)} MB, array buffers ${m0.array_buffers_mb.toFixed(1)} MB`);
log(`node started (RSS ${init.rss_mb.toFixed(1)} MB)`);

for (const RATE of RATES) {
  log(`offered ${RATE} readings/s for ${SECONDS} s`);
  const c0 = await ask({ cmd: 'counters' });
  // As a busy link delivers: what arrived in the last 2 ms, every 2 ms.
  const o = await ask({ cmd: 'open', rate: RATE, seconds: SECONDS, group: Math.max(1, Math.round(RATE / 500)) });
  const c1 = await ask({ cmd: 'counters' });
  emit({ bench: 'node', figure: 'offered', rate: RATE, events: o.events, cpu_cores: o.cpu_cores, cpu_user_cores: o.cpu_user_cores, cpu_system_cores: o.cpu_system_cores, events_per_cpu_s: o.events_per_cpu_s, durable_p50_ms: o.durable_p50, durable_p99_ms: o.durable_p99, durable_max_ms: o.durable_max, goal_durable_p99_ms: 20, receipt_p50_ms: o.receipt_p50, receipt_p99_ms: o.receipt_p99, event_loop_delay_p99_ms: o.loop_p99_ms, gc_ms_per_s: o.gc_total_ms / o.seconds, gc_major: o.gc_major, gc_major_max_ms: o.gc_major_max_ms, load: loadavg()[0] });
  emit({ bench: 'node', figure: 'journal_during_offered', rate: RATE, fsyncs_per_s: (c1.fsyncs - c0.fsyncs) / o.seconds, fsync_mean_ms: (1000 * (c1.fsync_s - c0.fsync_s)) / (c1.fsyncs - c0.fsyncs), units_per_fsync: (c1.units - c0.units) / (c1.fsyncs - c0.fsyncs) });
  emit({ bench: 'node', figure: 'rss_steady_mb', rate: RATE, max: o.rss_max_mb, after_start: init.rss_mb, goal: 60, anon_mb: c1.anon_mb, file_backed_mb: c1.file_mb, heap_used_mb: c1.heap_mb, heap_total_mb: c1.heap_total_mb, external_mb: c1.external_mb });
  const committed = c1.committed - c0.committed;
  emit({ bench: 'node', figure: 'wire_bytes_per_event', rate: RATE, bytes: committed > 0 ? (c1.out - c0.out + c1.in - c0.in) / committed : NaN, out_per_event: (c1.out - c0.out) / committed, in_per_event: (c1.in - c0.in) / committed, journal_bytes_per_event: (c1.appended - c0.appended) / (c1.last - c0.last) });
  await ask({ cmd: 'settle' });
}

if (process.env.BENCH_STEADY !== '0') {
log(`steady, closed loop ${SECONDS} s`);
const s = await ask({ cmd: 'closed', seconds: SECONDS, group: GROUP, inflight: INFLIGHT });
emit({ bench: 'node', figure: 'steady', events_per_s: s.events_per_s, events_per_cpu_s: s.events_per_cpu_s, goal_per_cpu_s: 30_000, group: GROUP, inflight_groups: INFLIGHT, durable_p50_ms: s.durable_p50, durable_p99_ms: s.durable_p99, seconds: s.seconds, load: loadavg()[0] });
await ask({ cmd: 'settle' });

}

if (BACKLOG > 0) {
  log(`backlog of ${BACKLOG} events with the broker stopped`);
  await new Promise((r) => setTimeout(r, 1000));
  const port = c.consortium.port;
  await c.consortium.stop();
  const b = await ask({ cmd: 'backlog', total: BACKLOG, group: GROUP, inflight: INFLIGHT });
  emit({ bench: 'node', figure: 'backlog', events: b.events, journaled_per_s: b.events_per_s, events_per_cpu_s: b.events_per_cpu_s, rss_before_mb: b.rss_before_mb, rss_after_mb: b.rss_after_mb, rss_growth_mb: b.rss_after_mb - b.rss_before_mb, journal_mb: b.journal_mb });
  log('broker back: draining');
  const broker = await startConsortiumBroker({ dir: c.consortium.dir, port });
  const d = await ask({ cmd: 'drain' });
  emit({ bench: 'node', figure: 'drain', events: d.events, reconnect_s: d.reconnect_s, seconds_connected: d.seconds, events_per_s: d.events_per_s, events_per_s_connected: d.events_per_s_connected, goal_per_s: 20_000, rss_mb: d.rss_mb, load: loadavg()[0] });
  c.consortium.stop = () => broker.stop();
}

if (process.env.BENCH_TRACE) process.stderr.write(c.ledgers[0].proc.output().split('\n').filter((l) => !/debug/.test(l)).slice(-60).join('\n') + '\n');
await ask({ cmd: 'stop' }).catch(() => {});
await c.stop();
await rm(dir, { recursive: true, force: true });
table();
