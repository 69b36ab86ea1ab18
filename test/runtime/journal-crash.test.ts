// Crash suite (ARCHITECTURE §2 invariant 1): a child process appends records,
// batches and commit marks and reports each acknowledgement; the parent kills
// it with SIGKILL at random moments (while appending, while recovering),
// restarts it, and after every cycle checks from the files alone that every
// acknowledged record is present, intact (decodes, is the exact record that
// was built for its seq), chained to its predecessor, and there once; that
// acknowledged batches and commit marks survived and chain; and that nothing
// was compacted without a commit mark. kill -9 leaves the page cache intact,
// so one cycle in five also writes a torn frame of junk after the last entry
// (what power loss leaves of an unsynced group): the next recovery must drop
// it and keep everything before it.
// ISCM_CRASH_CYCLES (default 25; `npm run test:crash` runs 500), ISCM_CRASH_SEED.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { batchHeaderOfSign1 } from '../../protocol/batch.js';
import { sha256, toHex, ZERO32 } from '../../protocol/bytes.js';
import { decodeRecord } from '../../protocol/record.js';
import { FileJournal } from '../../runtime/journal/file-journal.js';
import { prng } from '../helpers/prng.js';
import { crashJournalOptions } from './journal-crash-options.js';
import { recordFor, tempDir } from './journal-fixtures.js';
import { framesOf, segmentFiles } from './journal-disk.js';
import { open } from 'node:fs/promises';

const cycles = Number(process.env.ISCM_CRASH_CYCLES ?? 25);
const seed = Number(process.env.ISCM_CRASH_SEED ?? Date.now() % 1e9);
const child = fileURLToPath(new URL('./journal-crash-child.ts', import.meta.url));
const DEV = crashJournalOptions.deviceId;

interface Acked {
  seq: number;
  batches: Map<number, { firstSeq: number; count: number }>;
  commits: Set<number>;
}

/** Runs the child until SIGKILL after `killAfterMs` (counted from its OPEN line, or from spawn if `early`). */
function runChild(dir: string, childSeed: number, killAfterMs: number, early: boolean, acked: Acked): Promise<{ opened: boolean; dropped: number; lines: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, dir, String(childSeed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let err = '';
    let opened = false;
    let dropped = 0;
    let lines = 0;
    let killed = false;
    const kill = () => {
      killed = true;
      p.kill('SIGKILL');
    };
    let timer = early ? setTimeout(kill, killAfterMs) : setTimeout(kill, 20_000);
    p.stderr.on('data', (c) => (err += c));
    p.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        lines++;
        if (line[0] === 'OPEN') {
          opened = true;
          dropped = Number(line[2]);
          if (!early) {
            clearTimeout(timer);
            timer = setTimeout(kill, killAfterMs);
          }
        } else if (line[0] === 'R') acked.seq = Math.max(acked.seq, Number(line[1]));
        else if (line[0] === 'B') acked.batches.set(Number(line[1]), { firstSeq: Number(line[2]), count: Number(line[3]) });
        else if (line[0] === 'C') acked.commits.add(Number(line[1]));
      }
    });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (!killed || signal !== 'SIGKILL') reject(new Error(`child exited by itself (code ${code}, signal ${signal}):\n${err}`));
      else resolve({ opened, dropped, lines });
    });
  });
}

/** Checks the journal from its files against what was acknowledged. */
async function check(dir: string, acked: Acked, cycle: number): Promise<{ records: number; firstSeq: number }> {
  const j = new FileJournal({ dir, ...crashJournalOptions, readOnly: true });
  await j.open();
  try {
    const st = j.stats();
    const where = `cycle ${cycle} (seed ${seed})`;
    assert.ok(st.lastSeq >= acked.seq, `${where}: acknowledged record ${acked.seq} is missing (journal ends at ${st.lastSeq})`);
    assert.ok(st.firstSeq - 1 <= st.committedThroughSeq, `${where}: records from ${st.committedThroughSeq + 1} to ${st.firstSeq - 1} were deleted without a commit mark`);
    // Records: contiguous, each the exact record built for its seq, each chained to the one before.
    let expect = st.firstSeq;
    let prev: Uint8Array | undefined = st.firstSeq === 1 ? ZERO32 : undefined;
    for await (const r of j.records(st.firstSeq)) {
      assert.is(r.seq, expect, `${where}: seq ${expect} expected, got ${r.seq} (gap or duplicate)`);
      const rec = decodeRecord(r.bytes);
      assert.is(rec.seq, r.seq);
      assert.is(rec.deviceId, DEV);
      if (prev) assert.is(toHex(rec.prev), toHex(prev), `${where}: record ${r.seq} does not chain`);
      assert.is(toHex(r.bytes), toHex(recordFor(DEV, r.seq, rec.prev)), `${where}: record ${r.seq} is not intact`);
      prev = sha256(r.bytes);
      expect++;
    }
    assert.is(expect - 1, st.lastSeq, `${where}: records end at ${expect - 1}, stats say ${st.lastSeq}`);
    // Batches: chained, contiguous over the records, acknowledged ones intact.
    let prevBatch: Uint8Array | undefined = st.firstBatchSeq === 1 ? ZERO32 : undefined;
    let nextFirst: number | undefined;
    for (let b = st.firstBatchSeq; b <= st.lastBatchSeq; b++) {
      const x = await j.getBatch(b);
      assert.ok(x, `${where}: batch ${b} missing`);
      const h = batchHeaderOfSign1(x!.sign1);
      if (prevBatch) assert.is(toHex(h.prev), toHex(prevBatch), `${where}: batch ${b} does not chain`);
      if (nextFirst !== undefined) assert.is(h.firstSeq, nextFirst, `${where}: batch ${b} does not continue the records`);
      const a = acked.batches.get(b);
      if (a) assert.equal({ firstSeq: h.firstSeq, count: h.count }, a, `${where}: batch ${b} differs from what was acknowledged`);
      prevBatch = sha256(x!.sign1);
      nextFirst = h.firstSeq + h.count;
    }
    for (const b of acked.batches.keys()) assert.ok(b <= st.lastBatchSeq, `${where}: acknowledged batch ${b} is missing`);
    for (const b of acked.commits) {
      const committed = b <= st.committedThroughBatch || st.committedAbove.includes(b);
      assert.ok(committed, `${where}: the acknowledged commit mark of batch ${b} is missing`);
    }
    return { records: st.lastSeq - st.firstSeq + 1, firstSeq: st.firstSeq };
  } finally {
    await j.close();
  }
}

/** Writes 1..8 KiB of junk right after the last entry of the last segment; returns 1 if it did. */
async function tearTail(dir: string, rnd: () => number): Promise<number> {
  const last = (await segmentFiles(dir)).at(-1);
  if (!last) return 0;
  const frames = await framesOf(last);
  const end = frames.length ? frames[frames.length - 1].offset + frames[frames.length - 1].size : 4096;
  const junk = Buffer.alloc(1024 + Math.floor(rnd() * 7168));
  for (let i = 0; i < junk.length; i++) junk[i] = 1 + Math.floor(rnd() * 255);
  const fh = await open(last, 'r+');
  try {
    if ((await fh.stat()).size < end + junk.length) return 0;
    await fh.write(junk, 0, junk.length, end);
  } finally {
    await fh.close();
  }
  return 1;
}

test(`kill -9 at random moments, ${cycles} cycles: every acknowledged record is present, intact, chained, once`, async () => {
  const { dir, cleanup } = await tempDir('crash');
  const rnd = prng(seed);
  const acked: Acked = { seq: 0, batches: new Map(), commits: new Set() };
  let drops = 0;
  let early = 0;
  let lines = 0;
  let injected = 0;
  try {
    for (let c = 1; c <= cycles; c++) {
      // One kill in eight lands during startup or recovery; the others while appending.
      const isEarly = rnd() < 0.125;
      const r = await runChild(dir, Math.floor(rnd() * 2 ** 31), isEarly ? Math.floor(rnd() * 900) : 20 + Math.floor(rnd() * 380), isEarly, acked);
      if (isEarly) early++;
      if (r.dropped) drops++;
      lines += r.lines;
      await check(dir, acked, c);
      if (rnd() < 0.2) injected += await tearTail(dir, rnd);
    }
    const final = await check(dir, acked, cycles);
    console.error(
      `crash suite: ${cycles} kills (${early} during startup or recovery), seed ${seed}: ${acked.seq} records, ${acked.batches.size} batches, ${acked.commits.size} commit marks acknowledged; ${drops} recoveries dropped a torn tail (${injected} injected); ${final.records} records still stored from seq ${final.firstSeq}; ${lines} lines read`,
    );
    assert.ok(acked.seq > cycles * 10, 'the child made progress');
    assert.ok(acked.commits.size > 0 && acked.batches.size > 0, 'batches and commit marks were exercised');
  } finally {
    await cleanup();
  }
});

test.run();
