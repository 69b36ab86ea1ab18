// npm run bench -- link: the MCU link.
// - parser: frames/s and MB/s through the streaming frame parser alone (goal ≥ 50 MB/s),
//   and with the message decoder behind it;
// - e2e: readings/s from `iscm-edge sim-firmware` (a child process) over a
//   socat pty pair into a GatewayLink whose deliver appends to a capture file
//   and fsyncs before the ACK (goal ≥ 20k readings/s).
// BENCH_MS (default 1000) per parser round (3 rounds per figure); LINK_BENCH_COUNT (default 200000) readings e2e.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emit, table } from './_util.js';
import { encodeMessage, decodeMessage, type Message } from '../firmware-bridge/messages.js';
import { FrameParser } from '../firmware-bridge/parser.js';
import { GatewayLink } from '../firmware-bridge/link.js';
import { CaptureFile } from '../firmware-bridge/capture.js';
import { start, waitUntil } from '../test/helpers/proc.js';
import { ptyPair } from '../test/helpers/socat.js';

const MS = Number(process.env.BENCH_MS ?? 1000);
const COUNT = Number(process.env.LINK_BENCH_COUNT ?? 200_000);
const root = fileURLToPath(new URL('..', import.meta.url));
emit({ bench: 'link', name: 'env', node: process.version, loadavg_1m: loadavg()[0], cpus: (await import('node:os')).cpus().length });

// ---- parser alone ----
const msgs: Message[] = [
  { type: 'READING', sensor: 't1', kind: 'temperature', values: { celsius: 4.25 }, time: 1_717_000_000_123, monoMs: 123456, timeSource: 'mcu' },
  { type: 'READING', sensor: 'g1', kind: 'gps', values: { lat: 52.520008, lon: 13.404954, fix: '3d', alt_m: 41.5, speed_mps: 15.02, course_deg: 63.4, hdop: 0.9, sats: 9 }, time: 1_717_000_000_123, timeSource: 'gps' },
  { type: 'EVENT', sensor: 'r1', kind: 'rfid', values: { epcs: ['urn:epc:id:sgtin:0614141.107346.2017'], reader: 'dock-1', antenna: 2 }, monoMs: 123456 },
];
const frames = Array.from({ length: 3000 }, (_, i) => encodeMessage(msgs[i % msgs.length], i + 1));
// A plain Uint8Array view: Buffer#subarray costs more than the parser's own work per chunk.
const stream = new Uint8Array(Buffer.concat(frames));
const avgFrame = stream.length / frames.length;

function parserRun(chunk: number, decode: boolean) {
  let n = 0;
  const p = new FrameParser({ onFrame: decode ? (f) => (decodeMessage(f), n++) : () => n++ });
  const feed = () => {
    for (let i = 0; i < stream.length; i += chunk) p.push(stream.subarray(i, i + chunk));
  };
  const warm = performance.now() + 500;
  while (performance.now() < warm) feed();
  n = 0;
  let bytes = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < MS) {
    feed();
    bytes += stream.length;
    t = performance.now();
  }
  const s = (t - t0) / 1000;
  return { mb_per_s: bytes / s / 1e6, frames_per_s: n / s };
}
// Three rounds per figure: the machine is shared, so the best round is the
// parser's speed and the median shows how much the neighbours took.
function rounds(chunk: number, decode: boolean) {
  const rs = [0, 1, 2].map(() => parserRun(chunk, decode)).sort((a, b) => a.mb_per_s - b.mb_per_s);
  return { mb_per_s: rs[2].mb_per_s, frames_per_s: rs[2].frames_per_s, median_mb_per_s: rs[1].mb_per_s, rounds: 3 };
}
for (const chunk of (process.env.LINK_BENCH_CHUNKS ?? '64,4096,65536').split(',').map(Number)) {
  emit({ bench: 'link', name: 'parser', chunk_bytes: chunk, avg_frame_bytes: avgFrame, ...rounds(chunk, false), goal_mb_per_s: 50, loadavg_1m: loadavg()[0] });
}
emit({ bench: 'link', name: 'parser+decode', chunk_bytes: 4096, avg_frame_bytes: avgFrame, ...rounds(4096, true), loadavg_1m: loadavg()[0] });

// ---- end to end over a pty, fsync before ACK ----
if (spawnSync('socat', ['-V']).status !== 0) {
  emit({ bench: 'link', name: 'e2e_pty_fsync', skipped: 'socat not installed (Debian package socat)' });
} else {
  const dir = mkdtempSync(join(tmpdir(), 'iscm-linkbench-'));
  try {
    const pair = await ptyPair(dir);
    const capture = new CaptureFile(join(dir, 'capture.jsonl'));
    await capture.open();
    let delivered = 0;
    let fsyncs = 0;
    let first = 0;
    const link = new GatewayLink({
      serial: { path: pair.b, baudRate: 4_000_000 },
      deliver: async (rs) => {
        if (!first) first = performance.now();
        await capture.append(rs);
        fsyncs++;
        delivered += rs.length;
      },
      session: { maxPending: 65536 },
    });
    await link.start();
    const sim = start(process.execPath, ['--import', 'tsx', join(root, 'runtime/cli/iscm-edge.ts'), 'sim-firmware', '--port', pair.a, '--rate', '1000000', '--count', String(COUNT), '--window', '8192', '--ring', '65536', '--retransmit-ms', '3000', '--baud', '4000000'], { cwd: root, name: 'sim' });
    await sim.waitFor(/all \d+ readings acknowledged/, 600_000);
    const end = performance.now();
    await waitUntil(() => delivered >= COUNT, 10_000, 'all delivered');
    const s = (end - first) / 1000;
    const stats = link.session.stats;
    emit({ bench: 'link', name: 'e2e_pty_fsync', readings: delivered, seconds: s, readings_per_s: delivered / s, fsyncs, readings_per_fsync: delivered / fsyncs, duplicates: stats.duplicates, gaps: stats.gaps, goal: 20000, loadavg_1m: loadavg()[0] });
    await sim.stop();
    await link.stop();
    await capture.close();
    await pair.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
table();
