// `npm run bench -- node`: the light node alone (issue 8), JSON lines.
//
// In this process: a LightNode with an in-process reading source (readings
// submitted as the MCU link delivers them: groups of BENCH_GROUP, up to
// BENCH_INFLIGHT groups in flight), the real FileJournal with fsync, a
// software Ed25519 key (node:crypto), sync over MQTT. Outside it: mosquitto
// and the project's ledger (in-memory store, its own process), so their CPU
// is not the node's.
//
// Figures:
// - steady: events/s made durable (wall clock) and per CPU-second of this
//   process (user + system: "per core"); p50/p99 reading → durable (the ACK
//   point) and reading → verified receipt; RSS at steady state; bytes on the
//   wire per event (batch messages out + receipt messages in, amortised).
// - backlog: the broker stopped, BENCH_BACKLOG events (default 1M) journaled;
//   RSS before/after; then the broker back and the drain rate (events/s
//   receipted and committed).
// Goals: ≥ 30k events/s per core, p99 reading → durable ≤ 20 ms, RSS ≤ 60 MB
// steady, drain ≥ 20k events/s.
import { generateKeyPairSync } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { emit, table } from './_util.js';
import { ALG } from '../protocol/cose/algorithms.js';
import type { Reading } from '../protocol/reading.js';
import { softwareSignerFromKey } from '../drivers/software/signer.js';
import { parseConfig } from '../runtime/config/index.js';
import { LightNode } from '../runtime/node/light-node.js';
import { createLogger } from '../runtime/ops/log.js';
import { startConsortium, tempDir } from '../test/node/_env.js';
import { startConsortiumBroker } from '../test/helpers/mosquitto.js';
import { rm } from 'node:fs/promises';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const GROUP = Number(process.env.BENCH_GROUP ?? 128);
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 8);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 1_000_000);
const DEVICE = 'bench-node';
const log = (m: string) => process.stderr.write(`[bench node] ${m}\n`);

const pct = (a: number[], p: number) => (a.length ? a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))] : NaN);
const rssMb = () => process.memoryUsage().rss / (1 << 20);

const c = await startConsortium({ etcd: false, blockInterval: '200ms' });
const dir = tempDir('iscm-bench-node-');
const signer = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
await c.enroll(DEVICE, signer.publicKey);
const cfgText = `
device: { id: ${DEVICE} }
clock: { ntp_check: "off", not_before: "2020-01-01T00:00:00Z" }
sensors: { t1: { kind: temperature } }
assets: { epcs: [urn:epc:id:sscc:4012345.0000000101] }
locations: { read_point: "urn:epc:id:sgln:4012345.00001.0" }
signer: { driver: software, key_file: unused.key, passphrase_env: UNUSED }
journal: { dir: ${join(dir, 'journal')}, quota: 4GiB }
batching: { max_records: 4096, max_delay: 200ms }
mqtt: { url: "${c.consortium.url}", window: 16, resend_timeout: 60s }
trust: { ledger_keys: [${c.keys.ledgerPem}] }
metrics: { enabled: false }
state: { dir: ${join(dir, 'state')} }
logging: { level: warn }
`;
writeFileSync(join(dir, 'gateway.yaml'), cfgText);
const config = parseConfig(cfgText, join(dir, 'gateway.yaml'));
const node = new LightNode({ config, openSigner: async () => signer, ops: false, log: createLogger({ level: 'warn' }) });
await node.start();

let seq = 0;
const now = Date.now();
function readings(n: number): Reading[] {
  const out: Reading[] = [];
  for (let i = 0; i < n; i++) {
    seq++;
    out.push({ bootId: 7, seq, sensor: 't1', kind: 'temperature', time: now + seq, timeSource: 'mcu', values: { celsius: 4 + (seq % 50) / 10 } } as Reading);
  }
  return out;
}

/** Submits for `ms` (or until `total` readings) in a closed loop; per-group durable latencies and receipt probes. */
async function load(o: { ms?: number; total?: number; probes?: { seq: number; t0: number }[] }) {
  const durable: number[] = [];
  const probes = o.probes ?? [];
  let inflight = 0;
  let sent = 0;
  const end = o.ms ? performance.now() + o.ms : Infinity;
  let wake: (() => void) | undefined;
  while (performance.now() < end && (o.total === undefined || sent < o.total)) {
    if (inflight >= INFLIGHT) {
      await new Promise<void>((r) => (wake = r));
      continue;
    }
    const n = o.total === undefined ? GROUP : Math.min(GROUP, o.total - sent);
    const batch = readings(n);
    sent += n;
    inflight++;
    const t0 = performance.now();
    void node.submit('bench', batch).then(() => {
      const t = performance.now();
      durable.push(t - t0);
      if (durable.length % 8 === 0) probes.push({ seq: node.journal.stats().lastSeq, t0 });
      inflight--;
      wake?.();
      wake = undefined;
    });
  }
  while (inflight > 0) await new Promise<void>((r) => (wake = r));
  return { durable, probes, sent };
}

// ---- steady state ----
log('warm-up');
await load({ ms: 2000 });
await node.pipeline.idle();
const m0 = {
  records: node.journal.stats().lastSeq,
  cpu: process.cpuUsage(),
  out: node.metrics.counter('iscm_sync_bytes_published_total', '').get(),
  in: node.metrics.counter('iscm_sync_bytes_received_total', '').get(),
  committed: node.journal.stats().committedThroughSeq,
};
log(`steady phase ${SECONDS} s`);
const receiptLat: number[] = [];
let maxRss = 0;
const t0 = performance.now();
const probeLoop = { stop: false, pending: [] as { seq: number; t0: number }[] };
const prober = (async () => {
  while (!probeLoop.stop || probeLoop.pending.length) {
    const ct = node.journal.stats().committedThroughSeq;
    const t = performance.now();
    while (probeLoop.pending.length && probeLoop.pending[0].seq <= ct) receiptLat.push(t - probeLoop.pending.shift()!.t0);
    maxRss = Math.max(maxRss, rssMb());
    if (probeLoop.stop && t - t0 > (SECONDS + 60) * 1000) break;
    await new Promise((r) => setTimeout(r, 5));
  }
})();
const steady = await load({ ms: SECONDS * 1000, probes: probeLoop.pending });
const wall = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(m0.cpu);
const records = node.journal.stats().lastSeq - m0.records;
probeLoop.stop = true;
await prober;
const st = node.journal.stats();
const committedEvents = st.committedThroughSeq - m0.committed;
const wire = node.metrics.counter('iscm_sync_bytes_published_total', '').get() - m0.out + (node.metrics.counter('iscm_sync_bytes_received_total', '').get() - m0.in);
steady.durable.sort((a, b) => a - b);
receiptLat.sort((a, b) => a - b);
emit({ bench: 'node', figure: 'steady', events_per_s: records / wall, events_per_cpu_s: records / ((cpu.user + cpu.system) / 1e6), goal_per_cpu_s: 30_000, group: GROUP, inflight_groups: INFLIGHT, seconds: wall, load: loadavg()[0] });
emit({ bench: 'node', figure: 'reading_to_durable_ms', p50: pct(steady.durable, 50), p99: pct(steady.durable, 99), max: steady.durable.at(-1) ?? NaN, goal_p99: 20 });
emit({ bench: 'node', figure: 'reading_to_receipt_ms', p50: pct(receiptLat, 50), p99: pct(receiptLat, 99), samples: receiptLat.length });
emit({ bench: 'node', figure: 'rss_steady_mb', max: maxRss, goal: 60 });
emit({ bench: 'node', figure: 'wire_bytes_per_event', bytes: committedEvents > 0 ? wire / committedEvents : NaN, record_bytes_mean: st.lastSeq ? node.journal.metrics().bytes_appended_total / st.lastSeq : NaN });

// ---- backlog: the broker away, BACKLOG events journaled, then the drain ----
log(`backlog of ${BACKLOG} events with the broker stopped`);
await node.pipeline.idle();
await new Promise((r) => setTimeout(r, 2000)); // let the last receipts in
const port = c.consortium.port;
await c.consortium.stop();
const before = { rss: rssMb(), last: node.journal.stats().lastSeq, committed: node.journal.stats().committedThroughSeq };
const tb = performance.now();
await load({ total: BACKLOG });
await node.pipeline.idle();
const backlogSecs = (performance.now() - tb) / 1000;
global.gc?.();
const afterRss = rssMb();
emit({ bench: 'node', figure: 'backlog', events: BACKLOG, journaled_per_s: BACKLOG / backlogSecs, rss_before_mb: before.rss, rss_after_mb: afterRss, rss_growth_mb: afterRss - before.rss, journal_mb: node.journal.stats().usedBytes / (1 << 20) });
log('broker back: draining');
const broker = await startConsortiumBroker({ dir: c.consortium.dir, port });
const target = node.journal.stats().lastSeq;
const td = performance.now();
while (node.journal.stats().committedThroughSeq < target && performance.now() - td < 600_000) await new Promise((r) => setTimeout(r, 50));
const drainSecs = (performance.now() - td) / 1000;
const drained = node.journal.stats().committedThroughSeq - before.committed;
emit({ bench: 'node', figure: 'drain', events: drained, seconds: drainSecs, events_per_s: drained / drainSecs, goal_per_s: 20_000, rss_mb: rssMb(), load: loadavg()[0] });

await node.stop();
await broker.stop();
c.consortium.stop = async () => {};
await c.stop();
await rm(dir, { recursive: true, force: true });
table();
