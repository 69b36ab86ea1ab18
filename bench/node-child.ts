// The light node under test for `npm run bench -- node` (bench/node.ts), in
// its own process and bundled like dist/iscm-edge.mjs, so RSS and CPU are the
// node's and not the bench's (tsx alone adds ~35 MB). Readings come from an
// in-process source (no serial I/O): groups submitted as the MCU link
// delivers them. Driven over IPC by the parent; answers one message per
// command. BENCH_HEAPSNAP=FILE writes a V8 heap snapshot after start (what
// the heap holds before any reading: it found mqtt-packet's number cache).
// BENCH_ALLOCPROF=FILE samples every allocation during the first offered-load
// run, garbage included (V8's sampling heap profiler with the objects later
// collected kept), and writes a .heapprofile (Chrome DevTools): where the
// young generation's churn comes from.
import type { Reading } from '../protocol/reading.js';
import { softwareSignerFromKey } from '../drivers/software/signer.js';
import { ALG } from '../protocol/cose/algorithms.js';
import { parseConfig } from '../runtime/config/index.js';
import { LightNode } from '../runtime/node/light-node.js';
import { createLogger } from '../runtime/ops/log.js';
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

interface Init {
  config: string;
  configPath: string;
  /** PKCS#8 PEM of the device key (the parent enrolled its public half). */
  keyPem: string;
}

const send = (m: unknown) => process.send!(m);
const pct = (a: number[], p: number) => (a.length ? a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))] : NaN);
const rssMb = () => process.memoryUsage().rss / (1 << 20);

let node: LightNode;
let seq = 0;
const t00 = Date.now();
function readings(n: number): Reading[] {
  const out: Reading[] = [];
  for (let i = 0; i < n; i++) {
    seq++;
    out.push({ bootId: 7, seq, sensor: 't1', kind: 'temperature', time: t00 + seq, timeSource: 'mcu', values: { celsius: 4 + (seq % 50) / 10 } } as Reading);
  }
  return out;
}

/** Watches committedThroughSeq and turns probes (last seq of a group, its submit time) into reading → receipt latencies. */
class ReceiptProbe {
  pending: { seq: number; t0: number }[] = [];
  lat: number[] = [];
  private timer = setInterval(() => this.poll(), 5);
  poll(): void {
    const ct = node.journal.stats().committedThroughSeq;
    const t = performance.now();
    while (this.pending.length && this.pending[0].seq <= ct) this.lat.push(t - this.pending.shift()!.t0);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/** Closed loop: `inflight` groups of `group` readings outstanding, for `ms` (or `total` readings). */
async function closed(o: { ms?: number; total?: number; group: number; inflight: number; probe?: ReceiptProbe }) {
  const durable: number[] = [];
  let inflight = 0;
  let sent = 0;
  let maxRss = 0;
  let wake: (() => void) | undefined;
  const c0 = process.cpuUsage();
  const last0 = node.journal.stats().lastSeq;
  const t0 = performance.now();
  const end = o.ms ? t0 + o.ms : Infinity;
  const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, rssMb())), 100);
  while (performance.now() < end && (o.total === undefined || sent < o.total)) {
    if (inflight >= o.inflight) {
      await new Promise<void>((r) => (wake = r));
      continue;
    }
    const n = o.total === undefined ? o.group : Math.min(o.group, o.total - sent);
    const batch = readings(n);
    const lastSeqOfGroup = seq;
    sent += n;
    inflight++;
    const ts = performance.now();
    void node.submit('bench', batch).then(() => {
      durable.push(performance.now() - ts);
      o.probe?.pending.push({ seq: node.journal.stats().lastSeq, t0: ts });
      void lastSeqOfGroup;
      inflight--;
      wake?.();
      wake = undefined;
    });
  }
  while (inflight > 0) await new Promise<void>((r) => (wake = r));
  await node.pipeline.idle();
  clearInterval(rssTimer);
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const events = node.journal.stats().lastSeq - last0;
  durable.sort((a, b) => a - b);
  return { events, seconds: secs, events_per_s: events / secs, events_per_cpu_s: events / ((cpu.user + cpu.system) / 1e6), durable_p50: pct(durable, 50), durable_p99: pct(durable, 99), rss_max_mb: maxRss };
}

/** Open loop: readings arrive at `rate`/s in groups of `group` whatever the node does; latency counts from arrival. */
async function open(o: { rate: number; seconds: number; group: number; probe: ReceiptProbe }) {
  const lat: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const gcs: { kind: number; ms: number }[] = [];
  const obs = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gcs.push({ kind: (e as unknown as { detail: { kind: number } }).detail.kind, ms: e.duration });
  });
  obs.observe({ entryTypes: ['gc'] });
  let pendingGroups = 0;
  let maxRss = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const last0 = node.journal.stats().lastSeq;
  const groups = Math.floor((o.rate * o.seconds) / o.group);
  const interval = (o.group / o.rate) * 1000;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  let sentGroups = 0;
  const tick = () => {
    const due = Math.min(groups, Math.floor((performance.now() - t0) / interval) + 1);
    for (; sentGroups < due; sentGroups++) {
      const arrival = t0 + sentGroups * interval;
      pendingGroups++;
      void node.submit('bench', readings(o.group)).then(() => {
        lat.push(performance.now() - arrival);
        o.probe.pending.push({ seq: node.journal.stats().lastSeq, t0: arrival });
        if (--pendingGroups === 0 && sentGroups >= groups) done();
      });
    }
    if (sentGroups % 64 === 0) maxRss = Math.max(maxRss, rssMb());
    if (sentGroups < groups) setTimeout(tick, Math.max(0, t0 + sentGroups * interval - performance.now()));
  };
  tick();
  await all;
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  lat.sort((a, b) => a - b);
  loop.disable();
  obs.disconnect();
  const major = gcs.filter((g) => g.kind === 4 || g.kind === 8); // mark-sweep-compact, incremental marking
  const minor = gcs.filter((g) => g.kind === 1); // scavenge
  const events = node.journal.stats().lastSeq - last0;
  return {
    gc_major: major.length,
    gc_major_max_ms: Math.max(0, ...major.map((g) => g.ms)),
    gc_minor: minor.length,
    gc_minor_max_ms: Math.max(0, ...minor.map((g) => g.ms)),
    gc_total_ms: gcs.reduce((a, g) => a + g.ms, 0), cpu_user_cores: cpu.user / 1e6 / secs, cpu_system_cores: cpu.system / 1e6 / secs, loop_p99_ms: loop.percentile(99) / 1e6, loop_max_ms: loop.max / 1e6, rate: o.rate, events, seconds: secs, events_per_cpu_s: events / ((cpu.user + cpu.system) / 1e6), cpu_cores: (cpu.user + cpu.system) / 1e6 / secs, durable_p50: pct(lat, 50), durable_p99: pct(lat, 99), durable_max: lat.at(-1) ?? NaN, rss_max_mb: maxRss };
}

async function waitCommitted(timeoutMs: number): Promise<{ seconds: number; events: number }> {
  const target = node.journal.stats().lastSeq;
  const from = node.journal.stats().committedThroughSeq;
  const t0 = performance.now();
  while (node.journal.stats().committedThroughSeq < target && performance.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 20));
  return { seconds: (performance.now() - t0) / 1000, events: node.journal.stats().committedThroughSeq - from };
}

let probe: ReceiptProbe | undefined;
let allocProfiled = false;

/** Starts allocation sampling (collected objects included); the returned function writes the profile. */
async function startAllocProfile(): Promise<(file: string) => Promise<void>> {
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const s = new Session();
  s.connect();
  const post = (method: string, params?: object) => new Promise<any>((res, rej) => s.post(method, params ?? {}, (e, r) => (e ? rej(e) : res(r))));
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  return async (file) => {
    const { profile } = await post('HeapProfiler.stopSampling');
    writeFileSync(file, JSON.stringify(profile));
    s.disconnect();
  };
}
process.on('message', async (m: { cmd: string } & Record<string, any>) => {
  try {
    switch (m.cmd) {
      case 'init': {
        const i = m as unknown as Init;
        const signer = softwareSignerFromKey(ALG.EdDSA, createPrivateKey(i.keyPem));
        const config = parseConfig(i.config, i.configPath);
        node = new LightNode({ config, openSigner: async () => signer, ops: false, log: createLogger({ level: 'error' }) });
        await node.start();
        global.gc?.();
        if (process.env.BENCH_HEAPSNAP) (await import('node:v8')).writeHeapSnapshot(process.env.BENCH_HEAPSNAP);
        return send({ ok: true, rss_mb: rssMb() });
      }
      case 'closed':
        probe = new ReceiptProbe();
        return send({ ok: true, ...(await closed({ ms: m.seconds * 1000, group: m.group, inflight: m.inflight, probe })) });
      case 'open': {
        probe = new ReceiptProbe();
        const prof = process.env.BENCH_ALLOCPROF && !allocProfiled ? await startAllocProfile() : undefined;
        allocProfiled = true;
        const r = await open({ rate: m.rate, seconds: m.seconds, group: m.group, probe });
        await prof?.(process.env.BENCH_ALLOCPROF!);
        await waitCommitted(60_000);
        probe.poll();
        probe.stop();
        const l = probe.lat.sort((a, b) => a - b);
        return send({ ok: true, ...r, receipt_p50: pct(l, 50), receipt_p99: pct(l, 99) });
      }
      case 'settle':
        probe?.stop();
        return send({ ok: true, ...(await waitCommitted(m.timeoutMs ?? 120_000)) });
      case 'counters': {
        const c = (n: string) => node.metrics.counter(n, '').get();
        const mu = process.memoryUsage();
        const roll = (() => {
          try {
            return Object.fromEntries([...readFileSync('/proc/self/smaps_rollup', 'utf8').matchAll(/^(\w+):\s+(\d+) kB/gm)].map((x) => [x[1], Number(x[2]) / 1024]));
          } catch {
            return {};
          }
        })();
        const jm = node.journal.metrics();
        if (process.env.BENCH_SMAPS) {
          // The largest anonymous mappings (what RSS is made of beyond V8's heap).
          const maps = readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
          const rows = maps.map((m) => ({ head: m.split('\n')[0].slice(0, 90), rss: Number(/^Rss:\s+(\d+)/m.exec(m)?.[1] ?? 0), anon: Number(/^Anonymous:\s+(\d+)/m.exec(m)?.[1] ?? 0) }));
          rows.sort((a, b) => b.anon - a.anon);
          process.stderr.write(rows.slice(0, 12).map((r) => `${(r.anon / 1024).toFixed(1)} MB  ${r.head}`).join('\n') + '\n');
        }
        return send({ ok: true, fsyncs: jm.fsyncs_total, fsync_s: jm.fsync_seconds_total, units: jm.units_appended_total, anon_mb: roll.Anonymous, file_mb: (roll.Rss ?? 0) - (roll.Anonymous ?? 0), heap_mb: mu.heapUsed / 1048576, heap_total_mb: mu.heapTotal / 1048576, external_mb: mu.external / 1048576, array_buffers_mb: mu.arrayBuffers / 1048576, out: c('iscm_sync_bytes_published_total'), in: c('iscm_sync_bytes_received_total'), committed: node.journal.stats().committedThroughSeq, last: node.journal.stats().lastSeq, appended: node.journal.metrics().bytes_appended_total, rss_mb: rssMb() });
      }
      case 'backlog': {
        global.gc?.();
        const before = rssMb();
        const r = await closed({ total: m.total, group: m.group, inflight: m.inflight });
        global.gc?.();
        return send({ ok: true, ...r, rss_before_mb: before, rss_after_mb: rssMb(), journal_mb: node.journal.stats().usedBytes / (1 << 20) });
      }
      case 'drain': {
        const trace = process.env.BENCH_TRACE
          ? setInterval(() => {
              const st = node.journal.stats();
              const h = node.metrics.histogram('iscm_receipt_seconds', '');
              process.stderr.write(`[drain] committed ${st.committedThroughSeq} batches ${st.committedThroughBatch}/${st.lastBatchSeq} in flight ${node.sync?.inFlight()} rtt p50 ${h.quantile(0.5)} p99 ${h.quantile(0.99)} cache ${node.records.hits}/${node.records.misses} resent ${node.metrics.counter('iscm_batches_resent_total', '').get()} stale ${node.metrics.counter('iscm_receipts_total', '').get({ status: 'committed', verdict: 'stale' }) + node.metrics.counter('iscm_receipts_total', '').get({ status: 'duplicate', verdict: 'stale' })}\n`);
            }, 1000)
          : undefined;
        // The reconnect waits out the sync's backoff (capped exponential, grown during the outage): reported apart.
        const t0 = performance.now();
        while (node.sync?.state !== 'online' && performance.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 10));
        const reconnectS = (performance.now() - t0) / 1000;
        const r = await waitCommitted(m.timeoutMs ?? 600_000);
        clearInterval(trace);
        return send({ ok: true, ...r, reconnect_s: reconnectS, events_per_s: r.events / (r.seconds + reconnectS), events_per_s_connected: r.events / r.seconds, rss_mb: rssMb() });
      }
      case 'stop':
        await node.stop();
        send({ ok: true });
        return process.exit(0);
    }
  } catch (e) {
    send({ ok: false, error: (e as Error).stack });
  }
});
