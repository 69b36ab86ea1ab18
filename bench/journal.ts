// `npm run bench -- journal`: the journal's figures (issue 3), one JSON line
// each on stdout, then a table on stderr.
//
// - append_durable: 600-byte records made durable in groups of G (--group,
//   default 512) records per fsync, two groups in flight: records/s, MB/s,
//   fsyncs/s, mean group, p50/p99 append-to-durable latency. The caller passes
//   each record's SHA-256, which it computed to build the next record's
//   `prev` (as the pipeline does), so the journal does not hash it again.
// - append_durable on better-sqlite3 (WAL, synchronous=FULL): the same
//   records, one transaction (one fsync) per group of the same size, in this
//   run, no hashing either; and the ratio. Journal and SQLite runs alternate,
//   --rounds times (default 3); the figures are the medians, each round is
//   printed too (a shared, loaded machine swings from run to run).
// - append_offered_100k: an open-loop load of 100k records/s (readings arrive
//   whether or not the disk keeps up); latency counts from each arrival.
// - append_serial: one append at a time (a single sensor waiting for its ACK).
// - rss_backlog_1m: RSS before and after a 1M-record backlog (child process).
// - open_1gb: opening a 1 GB journal after kill -9, after a clean close, and
//   with checkpoint and sidecars deleted (full rescan); drain of the backlog.
// - crc32c: the frame CRC alone, MB per CPU-second.
// Options: --records N (default 200000), --group G (default 512), --rounds R
// (default 3), --gb X (default 1), --skip-1gb, --only a,b (figure names).
// The 1 GB work happens in a temp dir that is removed afterwards.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, open, readdir, rm, unlink } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { opsPerSecAndCpu } from './_util.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { createRequire } from 'node:module';
import { encode } from '../protocol/cbor.js';
import { sha256, ZERO32 } from '../protocol/bytes.js';
import { encodeRecord, type JsonObject } from '../protocol/record.js';
import { crc32c } from '../protocol/crc32c.js';
import { FileJournal } from '../runtime/journal/file-journal.js';
import { Preallocator } from '../runtime/journal/preallocate.js';
import { appendFlags } from '../runtime/journal/fs-util.js';
import { readRecordHead } from '../runtime/journal/record-head.js';
import { sampleEvent } from '../test/helpers/fixtures.js';

// better-sqlite3 ships no types and @types/better-sqlite3 is not installed:
// the few calls used here, typed locally.
interface SqliteStatement {
  run(...args: unknown[]): unknown;
}
interface SqliteDb {
  pragma(s: string): unknown;
  exec(s: string): void;
  prepare(s: string): SqliteStatement;
  transaction<A extends unknown[]>(f: (...a: A) => void): (...a: A) => void;
  close(): void;
}
const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string) => SqliteDb;

const DEV = 'reefer-07';
const RECORD_BYTES = 600;
const MiB = 1024 * 1024;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

// ------------------------------------------------------------ records

function cborUint(n: number, major = 0): Buffer {
  const m = major << 5;
  if (n < 24) return Buffer.from([m | n]);
  if (n < 0x100) return Buffer.from([m | 24, n]);
  if (n < 0x10000) return Buffer.from([m | 25, n >> 8, n & 0xff]);
  if (n < 0x100000000) {
    const b = Buffer.alloc(5);
    b[0] = m | 26;
    b.writeUInt32BE(n, 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = m | 27;
  b.writeBigUInt64BE(BigInt(n), 1);
  return b;
}

/**
 * Builds 600-byte records fast: the canonical encoding of
 * {1: device_id, 2: seq, 3: prev, 4: time, 5: event} assembled from parts
 * (keys 1..5 ascending, shortest integers), checked against encodeRecord.
 */
class RecordMaker {
  private event: Buffer;
  private dev = Buffer.concat([Buffer.from([0x01]), cborUint(DEV.length, 3), Buffer.from(DEV)]);
  seq = 1;
  prev: Uint8Array = ZERO32;
  constructor() {
    // The sample EPCIS ObjectEvent with sensor data (test/helpers/fixtures.ts)
    // without its longest optional fields, padded so the record is RECORD_BYTES.
    const { readPoint: _r, disposition: _d, ...base } = sampleEvent(1) as JsonObject & { readPoint: unknown; disposition: unknown };
    const trial = (pad: number): JsonObject => (pad ? { ...base, 'example:note': 'x'.repeat(pad) } : base);
    let pad = 0;
    const size = (p: number) => this.recordLen(Buffer.from(encode(trial(p))), 1_000_000, 1_764_000_000_000);
    if (size(0) > RECORD_BYTES) throw new Error(`the bench event alone makes ${size(0)}-byte records`);
    while (size(pad) < RECORD_BYTES) pad++;
    this.event = Buffer.from(encode(trial(pad)));
    const check = this.make(1_000_000, ZERO32.map(() => 7), 1_764_000_000_000);
    const want = encodeRecord({ deviceId: DEV, seq: 1_000_000, prev: ZERO32.map(() => 7), time: 1_764_000_000_000, event: trial(pad) });
    if (!Buffer.from(check).equals(Buffer.from(want))) throw new Error('bench record builder disagrees with encodeRecord');
  }
  private recordLen(ev: Buffer, seq: number, time: number): number {
    return 1 + this.dev.length + 1 + cborUint(seq).length + 3 + 32 + 1 + cborUint(time).length + 1 + ev.length;
  }
  private make(seq: number, prev: Uint8Array, time: number): Uint8Array {
    return Buffer.concat([Buffer.from([0xa5]), this.dev, Buffer.from([0x02]), cborUint(seq), Buffer.from([0x03, 0x58, 0x20]), prev, Buffer.from([0x04]), cborUint(time), Buffer.from([0x05]), this.event]);
  }
  next(): Uint8Array {
    const b = this.make(this.seq, this.prev, 1_764_000_000_000 + this.seq);
    this.seq++;
    this.prev = sha256(b);
    return b;
  }
}

/**
 * `n` records packed in one buffer, handed out as views. Holding 200k records
 * as 200k separate buffers would make every major GC of the run walk them,
 * a cost of the benchmark, not of the journal (which holds no records).
 */
class RecordArena {
  private buf: Buffer;
  private offs: Float64Array;
  /** SHA-256 of each record, as the maker computed it for the next record's prev. */
  private hashes: Buffer;
  readonly length: number;
  readonly bytes: number;
  constructor(maker: RecordMaker, n: number) {
    const first = maker.next();
    this.buf = Buffer.allocUnsafe((first.length + 16) * n);
    this.hashes = Buffer.allocUnsafe(32 * n);
    this.offs = new Float64Array(n + 1);
    let o = 0;
    for (let i = 0; i < n; i++) {
      const r = i === 0 ? first : maker.next();
      this.buf.set(r, o);
      this.hashes.set(maker.prev, 32 * i);
      this.offs[i] = o;
      o += r.length;
    }
    this.offs[n] = o;
    this.length = n;
    this.bytes = o;
  }
  get(i: number): Uint8Array {
    return this.buf.subarray(this.offs[i], this.offs[i + 1]);
  }
  hash(i: number): Uint8Array {
    return this.hashes.subarray(32 * i, 32 * i + 32);
  }
  slice(n: number): RecordArena {
    return Object.assign(Object.create(RecordArena.prototype), { buf: this.buf, hashes: this.hashes, offs: this.offs.subarray(0, n + 1), length: n, bytes: this.offs[n] });
  }
}

// ------------------------------------------------------------ helpers

const figures: Array<Record<string, unknown>> = [];
function emit(f: Record<string, unknown>): void {
  const line = { bench: 'journal', ...f };
  figures.push(line);
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function pct(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Bytes this process caused to be written to storage (Linux /proc/self/io), or NaN. */
function ioWriteBytes(): number {
  try {
    const m = /write_bytes:\s*(\d+)/.exec(readFileSync('/proc/self/io', 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Sectors written to the block device under tmpdir (/sys/dev/block/M:m/stat),
 * in bytes, or NaN. Device-wide: other processes' writes count too, so on a
 * shared machine this is an upper bound. Why besides /proc/self/io: on ext4,
 * writes into fallocated (unwritten) extents are charged to write_bytes
 * several times over (measured 2005 bytes per 596-byte record, against 617
 * without preallocation) while the device sees the same ~130 MB either way.
 */
const statPath = (() => {
  try {
    const dev = statSync(tmpdir()).dev;
    const major = ((dev >>> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff);
    const minor = (dev & 0xff) | ((dev >>> 12) & ~0xff);
    return `/sys/dev/block/${major}:${minor}/stat`;
  } catch {
    return undefined;
  }
})();
function deviceWriteBytes(): number {
  try {
    return Number(readFileSync(statPath!, 'utf8').trim().split(/\s+/)[6]) * 512;
  } catch {
    return NaN;
  }
}

/** CPU time (all threads, user + system) and storage writes spent by `f`. */
async function metered<T>(f: () => Promise<T>): Promise<T & { cpuUsPerRecord: number; diskBytes: number; deviceBytes: number }> {
  await settle();
  const c0 = process.cpuUsage();
  const w0 = ioWriteBytes();
  const d0 = deviceWriteBytes();
  const r = (await f()) as T & { records: number };
  const c = process.cpuUsage(c0);
  return { ...r, cpuUsPerRecord: (c.user + c.system) / r.records, diskBytes: ioWriteBytes() - w0, deviceBytes: deviceWriteBytes() - d0 };
}

/**
 * Before each measured run: write back what the runs before it left behind
 * (their files were just deleted: freed blocks, directory updates), so this
 * run does not pay for the last one's cleanup in its first fsyncs.
 */
async function settle(): Promise<void> {
  execFileSync('sync');
  await new Promise((r) => setTimeout(r, 200));
}

async function tmp(tag: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `iscm-bench-${tag}-`));
}

// ------------------------------------------------------------ journal runs

/**
 * Groups of `group` records per fsync (maxGroupBytes holds a group), with two
 * groups in flight: the next group is appended while the previous one is on
 * its way to the disk, as the MCU link keeps receiving while it waits.
 */
async function journalGroups(recs: RecordArena, group: number, preallocate: boolean | 'zero-fill' = true, callerHashes = true) {
  const dir = await tmp('j');
  const window = 2 * group;
  const j = new FileJournal({ dir, deviceId: DEV, maxBytes: 4096 * MiB, preallocate, maxGroupBytes: Math.max(70_000, group * (recs.get(0).length + 9)) });
  await j.open();
  const lat = new Float64Array(recs.length);
  const start = new Float64Array(recs.length);
  let inflight = 0;
  let wake: (() => void) | undefined;
  const t0 = performance.now();
  for (let i = 0; i < recs.length; i++) {
    if (inflight >= window) await new Promise<void>((r) => (wake = r));
    inflight++;
    start[i] = performance.now();
    void j.appendRecord(recs.get(i), callerHashes ? recs.hash(i) : undefined).then(() => {
      lat[i] = performance.now() - start[i];
      inflight--;
      if (wake && inflight < window) {
        const w = wake;
        wake = undefined;
        w();
      }
    });
  }
  while (inflight > 0) await new Promise<void>((r) => (wake = r));
  const secs = (performance.now() - t0) / 1000;
  const m = j.metrics();
  await j.close();
  await rm(dir, { recursive: true, force: true });
  lat.sort();
  const bytes = recs.bytes;
  return { records: recs.length, rps: recs.length / secs, mbps: bytes / MiB / secs, fsyncsPerS: m.fsyncs_total / secs, fsyncMs: (m.fsync_seconds_total * 1000) / m.fsyncs_total, group: m.group_entries_total / m.fsyncs_total, p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat[lat.length - 1], secs };
}

/**
 * Open loop: records arrive at `rate`/s; latency counts from each arrival.
 * The first `warmupS` seconds after open() are reported apart (p99_all
 * includes them): a gateway opens its journal once and then runs for days.
 */
async function journalOpenLoop(recs: RecordArena, rate: number, warmupS: number, preallocate: boolean | 'zero-fill' = true) {
  await settle();
  const dir = await tmp('jo');
  const j = new FileJournal({ dir, deviceId: DEV, maxBytes: 4096 * MiB, preallocate });
  await j.open();
  const lat = new Float64Array(recs.length);
  let done = 0;
  let allDone: (() => void) | undefined;
  const t0 = performance.now();
  let i = 0;
  while (i < recs.length) {
    const due = Math.min(recs.length, Math.floor(((performance.now() - t0) / 1000) * rate));
    for (; i < due; i++) {
      const arrival = t0 + (i / rate) * 1000;
      const k = i;
      void j.appendRecord(recs.get(k), recs.hash(k)).then(() => {
        lat[k] = performance.now() - arrival;
        if (++done === recs.length) allDone?.();
      });
    }
    await new Promise((r) => setImmediate(r));
  }
  if (done < recs.length) await new Promise<void>((r) => (allDone = r));
  const secs = (performance.now() - t0) / 1000;
  const m = j.metrics();
  await j.close();
  await rm(dir, { recursive: true, force: true });
  const warm = Math.min(recs.length - 1, Math.floor(warmupS * rate));
  const steady = lat.slice(warm).sort();
  const warmup = lat.slice(0, warm).sort();
  lat.sort();
  return { rps: recs.length / secs, measured: steady.length, p50: pct(steady, 0.5), p90: pct(steady, 0.9), p99: pct(steady, 0.99), max: steady[steady.length - 1], p99All: pct(lat, 0.99), warmupP99: warm ? pct(warmup, 0.99) : 0, group: m.group_entries_total / m.fsyncs_total, fsyncMs: (m.fsync_seconds_total * 1000) / m.fsyncs_total };
}

/**
 * The disk's own floor under the same open-loop load: the same arrivals,
 * written as plain bytes, one durable (O_DSYNC) write at a time, into a
 * preallocated file — no framing, no checks, no journal. What the journal's
 * p99 adds on top of this is its own.
 */
async function fdatasyncFloor(recs: RecordArena, rate: number, warmupS: number) {
  await settle();
  const dir = await tmp('jf');
  const path = join(dir, 'floor');
  const fh = await open(path, appendFlags(true));
  const size = Math.ceil((recs.bytes * 1.1) / MiB) * MiB;
  try {
    const pre = new Preallocator(dir, 'fallocate');
    await pre.allocate(fh, path, 0, size);
    await fh.datasync();
    pre.stop();
    const lat = new Float64Array(recs.length);
    const buf = Buffer.allocUnsafe(16 * MiB);
    let pos = 0;
    let queued = 0; // arrivals not yet in a group: indexes [taken, taken + queued)
    let taken = 0;
    let busy = false;
    let idle: (() => void) | undefined;
    const flush = async () => {
      busy = true;
      while (queued > 0) {
        const from = taken;
        let n = 0;
        let bytes = 0;
        while (n < queued && bytes + recs.get(from + n).length <= buf.length) {
          const r = recs.get(from + n);
          buf.set(r, bytes);
          bytes += r.length;
          n++;
        }
        taken += n;
        queued -= n;
        await fh.write(buf, 0, bytes, pos);
        pos += bytes;
        const now = performance.now();
        for (let k = from; k < from + n; k++) lat[k] = now - arrivalAt(k);
      }
      busy = false;
      idle?.();
    };
    const t0 = performance.now();
    const arrivalAt = (k: number) => t0 + (k / rate) * 1000;
    let i = 0;
    while (i < recs.length) {
      const due = Math.min(recs.length, Math.floor(((performance.now() - t0) / 1000) * rate));
      queued += due - i;
      i = due;
      if (!busy && queued > 0) void flush();
      await new Promise((r) => setImmediate(r));
    }
    if (busy) await new Promise<void>((r) => (idle = r));
    const warm = Math.min(recs.length - 1, Math.floor(warmupS * rate));
    const steady = lat.slice(warm).sort();
    return { p50: pct(steady, 0.5), p90: pct(steady, 0.9), p99: pct(steady, 0.99), max: steady[steady.length - 1] };
  } finally {
    await fh.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function journalSerial(recs: RecordArena) {
  await settle();
  const dir = await tmp('js');
  const j = new FileJournal({ dir, deviceId: DEV, maxBytes: 512 * MiB });
  await j.open();
  const lat = new Float64Array(recs.length);
  const t0 = performance.now();
  for (let i = 0; i < recs.length; i++) {
    const s = performance.now();
    await j.appendRecord(recs.get(i), recs.hash(i));
    lat[i] = performance.now() - s;
  }
  const secs = (performance.now() - t0) / 1000;
  await j.close();
  await rm(dir, { recursive: true, force: true });
  lat.sort();
  return { rps: recs.length / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99) };
}

// ------------------------------------------------------------ SQLite

/** better-sqlite3, one transaction per group; `chainCheck` adds the journal's per-record work (SHA-256, prev comparison). */
async function sqlite(recs: RecordArena, group: number, chainCheck = false) {
  const dir = await tmp('sq');
  const db = new Database(join(dir, 'journal.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE entries (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, bytes BLOB NOT NULL)');
  const ins = db.prepare('INSERT INTO entries (seq, kind, bytes) VALUES (?, 1, ?)');
  let prev: Uint8Array = ZERO32;
  const txn = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const r = recs.get(i);
      if (chainCheck) {
        if (Buffer.compare(readRecordHead(r).prev, prev) !== 0) throw new Error(`record ${i + 1} does not chain`);
        prev = sha256(r);
      }
      ins.run(i + 1, r);
    }
  });
  const lat: number[] = [];
  let commits = 0;
  const t0 = performance.now();
  for (let i = 0; i < recs.length; i += group) {
    const s = performance.now();
    txn(i, Math.min(recs.length, i + group));
    const d = performance.now() - s;
    commits++;
    // Every record of the group is durable when its transaction commits.
    for (let k = i; k < Math.min(recs.length, i + group); k++) lat.push(d);
  }
  const secs = (performance.now() - t0) / 1000;
  db.close();
  await rm(dir, { recursive: true, force: true });
  const sorted = Float64Array.from(lat).sort();
  const bytes = recs.bytes;
  return { records: recs.length, rps: recs.length / secs, mbps: bytes / MiB / secs, commitsPerS: commits / secs, p50: pct(sorted, 0.5), p99: pct(sorted, 0.99) };
}

// ------------------------------------------------------------ 1 GB and the 1M backlog (writer child)

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Writer child: 1M-record backlog RSS, then fills to `gb` GiB and waits to be killed. */
async function writer(dir: string, gb: number, window: number): Promise<void> {
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const j = new FileJournal({ dir, deviceId: DEV, maxBytes: Math.ceil(gb * 1.5 * 1024) * MiB });
  await j.open();
  const maker = new RecordMaker();
  let inflight = 0;
  let wake: (() => void) | undefined;
  const append = async (n: number) => {
    for (let i = 0; i < n; i++) {
      if (inflight >= window) await new Promise<void>((r) => (wake = r));
      inflight++;
      const r = maker.next();
      void j.appendRecord(r, maker.prev).then(() => {
        inflight--;
        if (wake && inflight < window) {
          const w = wake;
          wake = undefined;
          w();
        }
      });
    }
    while (inflight > 0) await new Promise<void>((r) => (wake = r));
  };
  // Warm-up: JIT, frame buffers, segment rollovers, and V8's young generation
  // growing to its steady size under this allocation rate.
  await append(100_000);
  const samples: Array<{ records: number; rss: number; heapTotal: number; heapUsed: number; external: number }> = [];
  const sample = (records: number) => {
    gc();
    const m = process.memoryUsage();
    samples.push({ records, rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external });
  };
  sample(0);
  for (let k = 1; k <= 4; k++) {
    await append(250_000);
    sample(k * 250_000);
  }
  out({ type: 'rss', samples, backlog: j.metrics().backlog_records });
  const target = gb * 1024 * MiB;
  while (j.stats().usedBytes < target) await append(50_000);
  out({ type: 'done', records: j.stats().lastSeq, bytes: j.stats().usedBytes });
  await new Promise(() => {}); // wait for SIGKILL: no clean close
}

async function oneGigabyte(gb: number, window: number) {
  const dir = await tmp('1g');
  try {
    const self = fileURLToPath(import.meta.url);
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', self, '--writer', dir, String(gb), String(window)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const msgs: Array<Record<string, number | string>> = [];
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (c) => {
        buf += c;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const m = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          msgs.push(m);
          if (m.type === 'done') child.kill('SIGKILL'); // resolved on its exit: the lock's pid must be gone
        }
      });
      child.on('exit', (code, sig) => (sig === 'SIGKILL' ? resolve() : reject(new Error(`writer exited (${code})`))));
    });
    const writeSecs = (performance.now() - t0) / 1000;
    const rss = msgs.find((m) => m.type === 'rss')!;
    const done = msgs.find((m) => m.type === 'done')!;
    const opts = { dir, deviceId: DEV, maxBytes: Math.ceil(gb * 1.5 * 1024) * MiB };

    const timeOpen = async () => {
      const j = new FileJournal(opts);
      const s = performance.now();
      await j.open();
      return { j, ms: performance.now() - s };
    };
    const a = await timeOpen();
    const rep = a.j.stats().recovery!;
    await a.j.close();
    const b = await timeOpen();
    // Drain: stream the whole backlog, as sync does after days offline.
    gc();
    const rss0 = process.memoryUsage().rss;
    let n = 0;
    let bytes = 0;
    let rssMax = rss0;
    const t1 = performance.now();
    for await (const r of b.j.unbatchedRecords()) {
      n++;
      bytes += r.bytes.length;
      if ((n & 0xffff) === 0) rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }
    const drainSecs = (performance.now() - t1) / 1000;
    await b.j.close();
    for (const f of await readdir(dir)) if (f === 'checkpoint' || f.endsWith('.idx')) await unlink(join(dir, f));
    const c = await timeOpen();
    const cold = c.j.stats().recovery!;
    await c.j.close();
    return { rss, done, writeSecs, afterKill: { ms: a.ms, rep }, clean: b.ms, rebuild: { ms: c.ms, rep: cold }, drain: { n, bytes, secs: drainSecs, rssGrowth: rssMax - rss0 } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------ main

async function main(): Promise<void> {
  const N = arg('records', 200_000);
  const group = arg('group', 512);
  const window = 2 * group;
  const gb = arg('gb', 1);
  const maker = new RecordMaker();
  const recs = new RecordArena(maker, N);
  const size = recs.get(0).length;

  const rounds = arg('rounds', 3);
  const only = process.argv.includes('--only') ? new Set(process.argv[process.argv.indexOf('--only') + 1].split(',')) : undefined;
  const want = (name: string) => !only || only.has(name);
  const load0 = loadavg();

  if (want('crc32c')) {
    const buf = Buffer.alloc(1 << 20, 0x5a);
    const r = opsPerSecAndCpu((i) => crc32c(buf, 0, (i * 605) & 0x7ffff, ((i * 605) & 0x7ffff) + 605), 1000, 1000);
    emit({ name: 'crc32c', impl: 'protocol/crc32c.ts', frame_bytes: 605, mb_per_s: r1((r.per_s * 605) / 1e6), mb_per_cpu_s: r1((r.per_cpu_s * 605) / 1e6), us_per_frame: r3(1e6 / r.per_cpu_s) });
  }

  if (want('append_durable')) {
    // Alternating rounds: both sides see the same neighbours' load.
    const js: Array<Awaited<ReturnType<typeof journalGroups>> & { cpuUsPerRecord: number; diskBytes: number; deviceBytes: number }> = [];
    const ss: Array<Awaited<ReturnType<typeof sqlite>> & { cpuUsPerRecord: number; diskBytes: number; deviceBytes: number }> = [];
    for (let k = 0; k < rounds; k++) {
      js.push(await metered(() => journalGroups(recs, group)));
      ss.push(await metered(() => sqlite(recs, group)));
      emit({ name: 'append_durable_round', round: k + 1, journal_records_per_s: Math.round(js[k].rps), sqlite_records_per_s: Math.round(ss[k].rps), ratio: Math.round((js[k].rps / ss[k].rps) * 100) / 100, loadavg_1m: r1(loadavg()[0]) });
    }
    const median = <T extends { rps: number }>(xs: T[]): T => [...xs].sort((a, b) => a.rps - b.rps)[Math.floor(xs.length / 2)];
    const jr = median(js);
    const sq = median(ss);
    emit({ name: 'append_durable', impl: 'iscm-journal', record_bytes: size, records: N, group, in_flight: window, rounds, caller_hashes: true, preallocate: 'fallocate', records_per_s: Math.round(jr.rps), mb_per_s: r1(jr.mbps), fsyncs_per_s: Math.round(jr.fsyncsPerS), fsync_ms: r3(jr.fsyncMs), mean_group: r1(jr.group), p50_ms: r3(jr.p50), p99_ms: r3(jr.p99), max_ms: r3(jr.max), cpu_us_per_record: r1(jr.cpuUsPerRecord), proc_write_bytes_per_record: Math.round(jr.diskBytes / N), device_write_bytes_per_record: Math.round(jr.deviceBytes / N), goal_records_per_s: 100_000 });
    emit({ name: 'append_durable', impl: 'better-sqlite3', record_bytes: size, records: N, group, rounds, settings: 'WAL, synchronous=FULL', records_per_s: Math.round(sq.rps), mb_per_s: r1(sq.mbps), fsyncs_per_s: Math.round(sq.commitsPerS), p50_ms: r3(sq.p50), p99_ms: r3(sq.p99), cpu_us_per_record: r1(sq.cpuUsPerRecord), proc_write_bytes_per_record: Math.round(sq.diskBytes / N), device_write_bytes_per_record: Math.round(sq.deviceBytes / N) });
    emit({ name: 'append_durable_ratio', impl: 'iscm-journal/better-sqlite3', ratio: Math.round((jr.rps / sq.rps) * 100) / 100, of: 'medians', goal: 1.5 });
  }
  if (want('append_durable_variants')) {
    const jh = await metered(() => journalGroups(recs, group, true, false));
    emit({ name: 'append_durable', impl: 'iscm-journal(journal hashes)', note: 'no caller hashes: the journal computes every SHA-256', records_per_s: Math.round(jh.rps), p50_ms: r3(jh.p50), p99_ms: r3(jh.p99), cpu_us_per_record: r1(jh.cpuUsPerRecord) });
    const jz = await metered(() => journalGroups(recs, group, 'zero-fill'));
    emit({ name: 'append_durable', impl: "iscm-journal(preallocate:'zero-fill')", records_per_s: Math.round(jz.rps), fsync_ms: r3(jz.fsyncMs), p50_ms: r3(jz.p50), p99_ms: r3(jz.p99), cpu_us_per_record: r1(jz.cpuUsPerRecord), proc_write_bytes_per_record: Math.round(jz.diskBytes / N), device_write_bytes_per_record: Math.round(jz.deviceBytes / N) });
    const jn = await metered(() => journalGroups(recs, group, false));
    emit({ name: 'append_durable', impl: 'iscm-journal(preallocate:false)', records_per_s: Math.round(jn.rps), fsync_ms: r3(jn.fsyncMs), p50_ms: r3(jn.p50), p99_ms: r3(jn.p99), cpu_us_per_record: r1(jn.cpuUsPerRecord), proc_write_bytes_per_record: Math.round(jn.diskBytes / N), device_write_bytes_per_record: Math.round(jn.deviceBytes / N) });
    const sqc = await metered(() => sqlite(recs, group, true));
    emit({ name: 'append_durable', impl: 'better-sqlite3+chain-check', note: "SQLite plus a per-record SHA-256 chain check (what the journal does without caller hashes)", records_per_s: Math.round(sqc.rps), cpu_us_per_record: r1(sqc.cpuUsPerRecord) });
    emit({ name: 'append_durable_ratio', impl: 'iscm-journal(journal hashes)/better-sqlite3+chain-check', ratio: Math.round((jh.rps / sqc.rps) * 100) / 100, note: 'both hash every record' });
  }

  if (want('append_offered_100k')) {
    const warmupS = 0.5;
    // A short run first, thrown away: this bench's own open-loop code is then
    // compiled, so what the measured runs' first half second shows is the
    // journal's (a fresh open at full load), not V8 warming up the harness.
    await journalOpenLoop(recs.slice(Math.min(recs.length, 100_000)), 100_000, 0);
    const off = await journalOpenLoop(recs, 100_000, warmupS);
    const floor = await fdatasyncFloor(recs, 100_000, warmupS);
    emit({ name: 'append_offered_100k', impl: 'fdatasync floor', note: 'the same arrivals as bare durable (O_DSYNC) writes, no journal: the disk under this load', p50_ms: r3(floor.p50), p90_ms: r3(floor.p90), p99_ms: r3(floor.p99), max_ms: r3(floor.max), loadavg_1m: r1(loadavg()[0]) });
    emit({ name: 'append_offered_100k', impl: 'iscm-journal', offered_per_s: 100_000, records_per_s: Math.round(off.rps), warmup_s: warmupS, measured_records: off.measured, mean_group: r1(off.group), fsync_ms: r3(off.fsyncMs), p50_ms: r3(off.p50), p90_ms: r3(off.p90), p99_ms: r3(off.p99), max_ms: r3(off.max), p99_ms_incl_warmup: r3(off.p99All), warmup_p99_ms: r3(off.warmupP99), loadavg_1m: r1(loadavg()[0]), goal_p99_ms: 10 });
    const offz = await journalOpenLoop(recs, 100_000, warmupS, 'zero-fill');
    emit({ name: 'append_offered_100k', impl: "iscm-journal(preallocate:'zero-fill')", offered_per_s: 100_000, warmup_s: warmupS, mean_group: r1(offz.group), fsync_ms: r3(offz.fsyncMs), p50_ms: r3(offz.p50), p90_ms: r3(offz.p90), p99_ms: r3(offz.p99), max_ms: r3(offz.max), p99_ms_incl_warmup: r3(offz.p99All), loadavg_1m: r1(loadavg()[0]) });
  }
  if (want('append_serial')) {
    const ser = await journalSerial(recs.slice(2000));
    emit({ name: 'append_serial', impl: 'iscm-journal', records_per_s: Math.round(ser.rps), p50_ms: r3(ser.p50), p99_ms: r3(ser.p99), note: 'one append awaited at a time (a lone sensor)' });
    await settle();
    const sqs = await sqlite(recs.slice(2000), 1);
    emit({ name: 'append_serial', impl: 'better-sqlite3', records_per_s: Math.round(sqs.rps), p50_ms: r3(sqs.p50), p99_ms: r3(sqs.p99) });
  }

  if (!process.argv.includes('--skip-1gb') && (want('rss_backlog_1m') || want('open_1gb'))) {
    const g = await oneGigabyte(gb, window);
    const smp = (g.rss as unknown as { samples: Array<Record<string, number>> }).samples;
    const [s0, sHalf, s1] = [smp[0], smp[2], smp[4]];
    emit({
      name: 'rss_backlog_1m',
      impl: 'iscm-journal',
      records: 1_000_000,
      rss_before_mb: r1(s0.rss / MiB),
      rss_after_mb: r1(s1.rss / MiB),
      rss_growth_mb: r1((s1.rss - s0.rss) / MiB),
      rss_growth_second_half_mb: r1((s1.rss - sHalf.rss) / MiB),
      heap_used_growth_mb: r1((s1.heapUsed - s0.heapUsed) / MiB),
      rss_mb_at: smp.map((x) => `${x.records / 1000}k:${r1(x.rss / MiB)}`).join(' '),
      goal_mb: 10,
    });
    emit({ name: 'write_1gb', impl: 'iscm-journal', records: g.done.records, bytes: g.done.bytes, seconds: r1(g.writeSecs) });
    emit({ name: 'open_1gb', impl: 'iscm-journal', after: 'kill -9', ms: r1(g.afterKill.ms), scanned_bytes: g.afterKill.rep.bytesScanned, segments: g.afterKill.rep.segments, goal_ms: 2000 });
    emit({ name: 'open_1gb', impl: 'iscm-journal', after: 'clean close', ms: r1(g.clean), goal_ms: 2000 });
    emit({ name: 'open_1gb', impl: 'iscm-journal', after: 'checkpoint and sidecars deleted (full rescan)', ms: r1(g.rebuild.ms), scanned_bytes: g.rebuild.rep.bytesScanned });
    emit({ name: 'drain_1gb', impl: 'iscm-journal', records: g.drain.n, records_per_s: Math.round(g.drain.n / g.drain.secs), mb_per_s: r1(g.drain.bytes / MiB / g.drain.secs), rss_growth_mb: r1(g.drain.rssGrowth / MiB) });
  }

  const rows = figures.map((f) => {
    const { bench: _b, name, impl, ...rest } = f;
    return `${String(name).padEnd(22)} ${String(impl).padEnd(28)} ${Object.entries(rest).map(([k, v]) => `${k}=${v}`).join(' ')}`;
  });
  const load1 = loadavg();
  emit({ name: 'machine', platform: `${process.platform}/${process.arch}`, cpus: cpus().length, node: process.version, tmpdir: tmpdir(), loadavg_start: load0.map(r1).join(' '), loadavg_end: load1.map(r1).join(' ') });
  process.stderr.write(`\njournal benchmark (${process.platform}/${process.arch}, ${cpus().length} CPUs, load average at start ${load0.map((x) => x.toFixed(1)).join(' ')}, at end ${load1.map((x) => x.toFixed(1)).join(' ')}, node ${process.version}, tmpdir ${tmpdir()}, warm page cache)\n${rows.join('\n')}\n`);
}

if (process.argv[2] === '--writer') await writer(process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
else await main();
