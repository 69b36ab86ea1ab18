// npm run bench -- ledger: the full node under load, with real services.
//
// A 3-member etcd cluster (Debian etcd, fsync on), the consortium mosquitto,
// BENCH_LEDGERS ledger processes (`iscm-ledger run`, default 2) and
// BENCH_DEVICES simulated devices (default 50), each its own MQTT session and
// key, publishing real signed batches of BENCH_RECORDS records (default 256)
// at an offered rate of BENCH_RATE events/s in total (default 12 000), for
// BENCH_SECONDS (default 20) after a warm-up. Batches are signed before the
// timed phase (the devices' cost is not the ledger's). Every receipt is
// verified by the device (inclusion, signature, consistency).
//
// Reports (JSON lines): events/s and batches/s committed (receipts received in
// the window, and the sequencer's own counter), p50/p99 latency from publish
// to receipt, CPU of the ledger processes (cores, from /proc), etcd bytes
// written per event (/proc/PID/io of the three members), and the load average
// (the machine is shared: figures depend on what else runs).
// Goals (issue): ≥ 10 000 events/s committed, p99 ≤ block_interval + 500 ms.
import { readFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import mqtt, { type MqttClient } from 'mqtt';
import { emit, table } from './_util.js';
import { decodeReceiptMsg, ReceiptStatus } from '../protocol/receipt-msg.js';
import { receiptProofs, verifyReceipt } from '../protocol/receipt.js';
import { topics } from '../protocol/topics.js';
import { EtcdCluster, procIoBytes } from '../test/helpers/etcd.js';
import { startConsortiumBroker } from '../test/helpers/mosquitto.js';
import { DeviceChain, batchMessage, type SimBatch } from '../test/helpers/device-sim.js';
import { enroll, makeKeys, openTestStore, startLedger, tempDir, writeLedgerConfig, activeLedger, type LedgerProc } from '../test/ledger/_env.js';

const N_DEV = Number(process.env.BENCH_DEVICES ?? 50);
const RECORDS = Number(process.env.BENCH_RECORDS ?? 256);
const RATE = Number(process.env.BENCH_RATE ?? 12_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const WARM = Number(process.env.BENCH_WARMUP ?? 5);
const N_LEDGERS = Number(process.env.BENCH_LEDGERS ?? 2);
const BLOCK_MS = Number(process.env.BENCH_BLOCK_MS ?? 1000);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 8);

const log = (m: string) => process.stderr.write(`[bench ledger] ${m}\n`);

function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(parts[11]) + Number(parts[12])) / 100; // utime + stime, in clock ticks (100 Hz)
  } catch {
    return 0;
  }
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Dev {
  chain: DeviceChain;
  client: MqttClient;
  batches: SimBatch[];
  next: number;
  sent: Map<number, { at: number; known: { size: number; root: Uint8Array } | undefined; b: SimBatch }>;
  heads: Map<number, Uint8Array>;
  known: { size: number; root: Uint8Array } | undefined;
  inFlight: number;
}

const load0 = loadavg();
emit({ bench: 'ledger', name: 'env', node: process.version, cpus: cpus().length, loadavg_1m: load0[0], loadavg_5m: load0[1], devices: N_DEV, records_per_batch: RECORDS, offered_events_per_s: RATE, seconds: SECONDS, ledgers: N_LEDGERS, block_interval_ms: BLOCK_MS });

const etcd = await EtcdCluster.start({ maxRequestBytes: 4 * 1024 * 1024, maxTxnOps: 1024 });
const broker = await startConsortiumBroker();
const keys = await makeKeys();
const dir = tempDir('iscm-bench-ledger-');
const ledgers: LedgerProc[] = [];
let exitCode = 0;
const devs: Dev[] = [];
try {
  for (let i = 0; i < N_LEDGERS; i++) {
    const id = `bench-${i}`;
    const cfg = writeLedgerConfig(dir, keys, { nodeId: id, endpoints: etcd.endpoints, mqttUrl: broker.url, blockInterval: `${BLOCK_MS}ms`, electionTtl: '3s', maxPendingPerDevice: 64 });
    ledgers.push(await startLedger(cfg, id));
  }
  const t = openTestStore(etcd.endpoints, '/iscm/test/', keys);
  const perDevRate = RATE / N_DEV / RECORDS; // batches/s per device
  const perDev = Math.ceil(perDevRate * (WARM + SECONDS + 2)) + WINDOW;
  log(`signing ${N_DEV} × ${perDev} batches of ${RECORDS} records …`);
  const g0 = Date.now();
  for (let i = 0; i < N_DEV; i++) {
    const chain = new DeviceChain(`bench-dev-${String(i).padStart(3, '0')}`);
    await enroll(t.registry, keys.operator, chain.deviceId, chain.signer.publicKey);
    const batches: SimBatch[] = [];
    for (let k = 0; k < perDev; k++) batches.push(await chain.next(RECORDS));
    const client = await mqtt.connectAsync(broker.url, { clientId: chain.deviceId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 600 } });
    const d: Dev = { chain, client, batches, next: 0, sent: new Map(), heads: new Map(), known: undefined, inFlight: 0 };
    devs.push(d);
  }
  log(`signed in ${((Date.now() - g0) / 1000).toFixed(1)} s`);
  await t.store.close();
  await activeLedger(ledgers, 60_000);

  const latencies: { at: number; ms: number; events: number }[] = [];
  const published = new Map<string, { pub: number; rcv: number }>();
  let verifyErrors = 0;
  let rejects = 0;
  for (const d of devs) {
    d.client.on('message', (_topic, payload) => {
      const now = Date.now();
      const m = decodeReceiptMsg(new Uint8Array(payload));
      const s = d.sent.get(m.batchSeq);
      if (!s) return;
      if (m.status === ReceiptStatus.COMMITTED || m.status === ReceiptStatus.DUPLICATE) {
        try {
          const from = receiptProofs(m.receipt!).consistency[0]?.size1;
          const knownHead = from !== undefined ? { size: from, root: d.heads.get(from) ?? s.known!.root } : undefined;
          const v = verifyReceipt(m.receipt!, { leafEntry: s.b.entry, trusted: keys.trusted, knownHead, requireSignedSize: true });
          d.heads.set(v.treeSize!, v.root);
          if (!d.known || v.treeSize! > d.known.size) d.known = { size: v.treeSize!, root: v.root };
        } catch {
          verifyErrors++;
        }
        latencies.push({ at: now, ms: now - s.at, events: s.b.count });
        published.set(`${d.chain.deviceId}/${m.batchSeq}`, { pub: s.at, rcv: now });
        d.sent.delete(m.batchSeq);
        d.inFlight--;
      } else if (m.status === ReceiptStatus.REJECTED) rejects++;
    });
    await d.client.subscribeAsync(topics.receipt('iscm/v1', d.chain.deviceId), { qos: 1 });
  }

  // Open loop: each device publishes one batch every 1/perDevRate s (staggered), unless its window is full.
  const interval = 1000 / perDevRate;
  let backlogged = 0;
  const t0 = Date.now();
  const tStart = t0 + WARM * 1000;
  const tEnd = tStart + SECONDS * 1000;
  const timers = devs.map((d, i) =>
    setTimeout(function tick() {
      if (Date.now() > tEnd) return;
      if (d.inFlight >= WINDOW) backlogged++;
      else if (d.next < d.batches.length) {
        const b = d.batches[d.next++];
        d.sent.set(b.batchSeq, { at: Date.now(), known: d.known && { ...d.known }, b });
        d.inFlight++;
        d.client.publish(topics.batch('iscm/v1', d.chain.deviceId), Buffer.from(batchMessage(b, d.known?.size ?? 0)), { qos: 1 });
      }
      timers[i] = setTimeout(tick, interval);
    }, (i * interval) / N_DEV),
  );
  // Counters at the window edges.
  const metricsOf = async () => {
    let ev = 0;
    for (const l of ledgers) {
      const m = await (await fetch(l.apiUrl + '/metrics')).text();
      ev += Number(/^iscm_ledger_events_committed_total (\d+)/m.exec(m)?.[1] ?? 0);
    }
    return ev;
  };
  await new Promise((r) => setTimeout(r, tStart - Date.now()));
  const cpu0 = ledgers.map((l) => cpuSeconds(l.proc.pid));
  const etcdCpu0 = etcd.members.map((m) => cpuSeconds(m.proc!.pid));
  const io0 = etcd.members.map((m) => procIoBytes(m.proc!.pid));
  const ev0 = await metricsOf();
  const lStart = loadavg()[0];
  await new Promise((r) => setTimeout(r, tEnd - Date.now()));
  const cpu1 = ledgers.map((l) => cpuSeconds(l.proc.pid));
  const etcdCpu1 = etcd.members.map((m) => cpuSeconds(m.proc!.pid));
  const io1 = etcd.members.map((m) => procIoBytes(m.proc!.pid));
  const ev1 = await metricsOf();
  const lEnd = loadavg();
  for (const x of timers) clearTimeout(x);
  // Let the tail drain (for latency), without counting it as throughput.
  const drainEnd = Date.now() + 30_000;
  while (devs.some((d) => d.inFlight > 0) && Date.now() < drainEnd) await new Promise((r) => setTimeout(r, 200));

  // The sequencer's own view: block commit time and pending → commit lag (histograms).
  const hist = (text: string, name: string) => {
    const b = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`, 'gm'))].map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])] as [number, number]);
    const n = b.at(-1)?.[1] ?? 0;
    const q = (p: number) => b.find(([, c]) => c >= p * n)?.[0] ?? NaN;
    const sum = Number(new RegExp(`^${name}_sum (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
    return { n, mean_ms: (sum / n) * 1000, p50_le_ms: q(0.5) * 1000, p99_le_ms: q(0.99) * 1000 };
  };
  for (const l of ledgers) {
    const m = await (await fetch(l.apiUrl + '/metrics')).text();
    if (!/^iscm_ledger_sequencer_active 1/m.test(m)) continue;
    emit({ bench: 'ledger', name: 'sequencer', node: l.nodeId, block_commit: hist(m, 'iscm_ledger_block_commit_seconds'), pending_to_commit: hist(m, 'iscm_ledger_commit_lag_seconds') });
  }

  // Where the time goes, per batch: publish → ingest wrote it pending → block committed → receipt at the device.
  {
    const st = openTestStore(etcd.endpoints, '/iscm/test/', keys);
    const { head } = await st.store.head();
    const ingestMs: number[] = [];
    const seqMs: number[] = [];
    const backMs: number[] = [];
    for (const b of await st.store.blocks(1, head?.height ?? 0)) {
      for (const x of b.batches) {
        const p = published.get(`${x.deviceId}/${x.batchSeq}`);
        if (!p || p.pub < tStart || p.pub >= tEnd) continue;
        ingestMs.push(x.received - p.pub);
        seqMs.push(b.time - x.received);
        backMs.push(p.rcv - b.time);
      }
    }
    await st.store.close();
    const q = (a: number[]) => {
      a.sort((x, y) => x - y);
      return { p50_ms: pct(a, 50), p99_ms: pct(a, 99) };
    };
    emit({ bench: 'ledger', name: 'latency_breakdown', publish_to_pending: q(ingestMs), pending_to_block: q(seqMs), block_to_receipt: q(backMs) });
  }

  const inWindow = latencies.filter((x) => x.at >= tStart && x.at < tEnd);
  const events = inWindow.reduce((a, x) => a + x.events, 0);
  const lat = latencies.filter((x) => x.at - x.ms >= tStart && x.at - x.ms < tEnd).map((x) => x.ms).sort((a, b) => a - b);
  const unreceipted = devs.reduce((a, d) => a + d.inFlight, 0);
  const wbytes = io1.reduce((a, x, i) => a + x - io0[i], 0);
  const sequencerEvents = ev1 - ev0;
  emit({
    bench: 'ledger',
    name: 'committed',
    events_per_s: events / SECONDS,
    batches_per_s: inWindow.length / SECONDS,
    sequencer_events_per_s: sequencerEvents / SECONDS,
    goal_events_per_s: 10_000,
    meets_goal: events / SECONDS >= 10_000,
  });
  emit({
    bench: 'ledger',
    name: 'latency_publish_to_receipt',
    p50_ms: pct(lat, 50),
    p99_ms: pct(lat, 99),
    max_ms: lat.at(-1) ?? NaN,
    samples: lat.length,
    goal_p99_ms: BLOCK_MS + 500,
    meets_goal: pct(lat, 99) <= BLOCK_MS + 500,
  });
  emit({
    bench: 'ledger',
    name: 'resources',
    ledger_cpu_cores: ledgers.map((l, i) => Number(((cpu1[i] - cpu0[i]) / SECONDS).toFixed(3))),
    etcd_cpu_cores: etcd.members.map((_, i) => Number(((etcdCpu1[i] - etcdCpu0[i]) / SECONDS).toFixed(3))),
    etcd_bytes_written_per_event: sequencerEvents ? wbytes / sequencerEvents : NaN,
    etcd_bytes_written_total: wbytes,
  });
  emit({
    bench: 'ledger',
    name: 'health',
    receipt_verify_errors: verifyErrors,
    rejected: rejects,
    unreceipted_after_drain: unreceipted,
    device_window_full_skips: backlogged,
    loadavg_1m_start: lStart,
    loadavg_1m_end: lEnd[0],
    loadavg_5m_end: lEnd[1],
  });
  if (verifyErrors || rejects) exitCode = 1;
} catch (e) {
  log(`failed: ${(e as Error).stack}`);
  for (const l of ledgers) log(`${l.nodeId} output:\n${l.proc.output().slice(-3000)}`);
  exitCode = 1;
} finally {
  for (const d of devs) await d.client.endAsync(true).catch(() => undefined);
  for (const l of ledgers) await l.proc.stop();
  await broker.stop();
  await etcd.stop();
  table();
}
process.exit(exitCode);
