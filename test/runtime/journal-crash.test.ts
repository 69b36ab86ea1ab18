// Crash suite (ARCHITECTURE §2 invariant 1): a child process appends records,
// units (records + a state blob), batches and commit marks and reports each
// acknowledgement; the parent kills it with SIGKILL at random moments (while
// appending, while recovering), restarts it, and after every cycle checks from
// the files alone that every acknowledged record is present, intact (decodes,
// is the exact record that was built for its seq), chained to its
// predecessor, and there once; that every acknowledged unit is there with its
// exact state entry right after its last record, that no unit is ever visible
// in part, and that lastState() is the last acknowledged unit's state or a
// later one's; that acknowledged batches and commit marks survived and chain;
// and that nothing was compacted without a commit mark. kill -9 leaves the
// page cache intact, so one cycle in five also writes what power loss leaves
// of an unsynced group after the last entry: junk, or a unit's records with
// valid CRCs that continue the chain but lack their state entry. The next
// recovery must drop it (the unit whole) and keep everything before it.
// ISCM_CRASH_CYCLES (default 25; `npm run test:crash` runs 500), ISCM_CRASH_SEED.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { batchHeaderOfSign1 } from '../../protocol/batch.js';
import { sha256, toHex, ZERO32 } from '../../protocol/bytes.js';
import { decodeRecord } from '../../protocol/record.js';
import { FileJournal } from '../../runtime/journal/file-journal.js';
import { EntryType, FRAME_HEAD, isRecordEntry, writeFrame } from '../../runtime/journal/frame.js';
import { prng } from '../helpers/prng.js';
import { crashJournalOptions } from './journal-crash-options.js';
import { DeviceStream, recordFor, tempDir } from './journal-fixtures.js';
import { framesOf, segmentFiles } from './journal-disk.js';
import { open, readFile } from 'node:fs/promises';

const cycles = Number(process.env.ISCM_CRASH_CYCLES ?? 25);
const seed = Number(process.env.ISCM_CRASH_SEED ?? Date.now() % 1e9);
const child = fileURLToPath(new URL('./journal-crash-child.ts', import.meta.url));
const DEV = crashJournalOptions.deviceId;

interface Unit {
  id: string;
  first: number;
  last: number;
  sha: string;
  /** Order of appending, across all runs. */
  order: number;
}

interface Acked {
  seq: number;
  batches: Map<number, { firstSeq: number; count: number }>;
  commits: Set<number>;
  /** Every unit appended (P lines), by id. */
  units: Map<string, Unit>;
  /** Units acknowledged, in acknowledgement order. */
  ackedUnits: Unit[];
  /** Units of the last run that were neither acknowledged nor refused: durable whole, or not at all. */
  inFlight: Set<string>;
}

/** Runs the child until SIGKILL after `killAfterMs` (counted from its OPEN line, or from spawn if `early`). */
function runChild(dir: string, childSeed: number, killAfterMs: number, early: boolean, acked: Acked): Promise<{ opened: boolean; openSeq: number; dropped: number; lines: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, dir, String(childSeed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let err = '';
    let opened = false;
    let openSeq = 0;
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
          openSeq = Number(line[1]);
          dropped = Number(line[2]);
          if (!early) {
            clearTimeout(timer);
            timer = setTimeout(kill, killAfterMs);
          }
        } else if (line[0] === 'R') acked.seq = Math.max(acked.seq, Number(line[1]));
        else if (line[0] === 'P') {
          const u = { id: line[1], first: Number(line[2]), last: Number(line[3]), sha: line[4], order: acked.units.size };
          acked.units.set(u.id, u);
          acked.inFlight.add(u.id);
        } else if (line[0] === 'U') {
          const u = acked.units.get(line[1])!;
          assert.equal([Number(line[2]), Number(line[3])], [u.first, u.last], `unit ${u.id} resolved with its own range`);
          acked.ackedUnits.push(u);
          acked.inFlight.delete(u.id);
        } else if (line[0] === 'X') acked.inFlight.delete(line[1]);
        else if (line[0] === 'B') acked.batches.set(Number(line[1]), { firstSeq: Number(line[2]), count: Number(line[3]) });
        else if (line[0] === 'C') acked.commits.add(Number(line[1]));
      }
    });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (!killed || signal !== 'SIGKILL') reject(new Error(`child exited by itself (code ${code}, signal ${signal}):\n${err}`));
      else resolve({ opened, openSeq, dropped, lines });
    });
  });
}

/** Checks the journal from its files against what was acknowledged. */
async function check(dir: string, acked: Acked, cycle: number): Promise<{ records: number; firstSeq: number; lastSeq: number }> {
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
    await checkUnits(dir, j, acked, where);
    return { records: st.lastSeq - st.firstSeq + 1, firstSeq: st.firstSeq, lastSeq: st.lastSeq };
  } finally {
    await j.close();
  }
}

/**
 * Units, from the files: every acknowledged unit whose records are still
 * stored has its state entry (exact bytes) right after its last record; no
 * unit of the last run is visible in part; lastState() is the state of the
 * last acknowledged unit or of one appended after it.
 */
async function checkUnits(dir: string, j: FileJournal, acked: Acked, where: string): Promise<void> {
  const st = j.stats();
  // seq of each durable record frame → the state entry that follows it, if any.
  const stateAfter = new Map<number, string | undefined>();
  let seq = st.firstSeq;
  let pendingSeq = -1;
  for (const path of await segmentFiles(dir)) {
    const buf = await readFile(path);
    pendingSeq = -1; // a state carried into a segment follows no record of it
    for (const f of await framesOf(path)) {
      if (seq > st.lastSeq && isRecordEntry(f.type)) break; // a torn tail, not durable
      const payload = buf.subarray(f.offset + FRAME_HEAD, f.offset + f.size - 4);
      if (isRecordEntry(f.type)) {
        stateAfter.set(seq, undefined);
        pendingSeq = seq++;
      } else if (f.type === EntryType.STATE) {
        if (pendingSeq >= 0 && !stateAfter.get(pendingSeq)) stateAfter.set(pendingSeq, toHex(sha256(payload)));
        pendingSeq = -1;
      } else pendingSeq = -1;
    }
  }
  for (const u of acked.ackedUnits) {
    if (u.last < u.first || u.first < st.firstSeq) continue; // state-only, or compacted
    assert.ok(u.last <= st.lastSeq, `${where}: acknowledged unit ${u.id} (${u.first}..${u.last}) is missing`);
    assert.is(stateAfter.get(u.last), u.sha, `${where}: acknowledged unit ${u.id} lacks its exact state entry after record ${u.last}`);
  }
  for (const id of acked.inFlight) {
    const u = acked.units.get(id)!;
    if (u.last >= u.first) assert.ok(st.lastSeq < u.first || st.lastSeq >= u.last, `${where}: unit ${id} (${u.first}..${u.last}) is visible in part: records end at ${st.lastSeq}`);
  }
  const last = acked.ackedUnits.at(-1);
  const state = j.lastState();
  if (!last) return;
  assert.ok(state, `${where}: unit ${last.id} was acknowledged, but there is no state`);
  const id = /^unit ([^;]+);/.exec(Buffer.from(state!).toString('latin1'))?.[1];
  const u = id ? acked.units.get(id) : undefined;
  assert.ok(u, `${where}: lastState() is no unit's state`);
  assert.is(toHex(sha256(state!)), u!.sha, `${where}: lastState() is not the exact state of unit ${id}`);
  assert.ok(u!.order >= last.order, `${where}: lastState() is unit ${id}'s, older than the acknowledged unit ${last.id}`);
}

/**
 * Writes, after the last entry of the last segment, the records of a unit
 * that continue the chain with valid CRCs, but not its state entry (or only
 * part of it): an unsynced unit whose last pages never reached the disk.
 * Returns the next seq recovery must resume at, or 0 if there was no room.
 */
async function tearUnit(dir: string, rnd: () => number): Promise<number> {
  const j = new FileJournal({ dir, ...crashJournalOptions, readOnly: true });
  await j.open();
  const head = j.head();
  await j.close();
  const last = (await segmentFiles(dir)).at(-1)!;
  const frames = await framesOf(last);
  const end = frames.length ? frames[frames.length - 1].offset + frames[frames.length - 1].size : 4096;
  const d = new DeviceStream(DEV, head);
  const recs = d.records(1 + Math.floor(rnd() * 8));
  const state = Buffer.alloc(200, 9);
  const buf = Buffer.alloc(recs.reduce((a, r) => a + r.length + 9, 0) + state.length + 9);
  let pos = 0;
  for (const r of recs) pos += writeFrame(buf, pos, EntryType.UNIT_RECORD, r);
  if (rnd() < 0.5) pos += Math.floor(writeFrame(buf, pos, EntryType.STATE, state) / 2); // half a state entry
  const fh = await open(last, 'r+');
  try {
    if ((await fh.stat()).size < end + pos) return 0;
    await fh.write(buf, 0, pos, end);
  } finally {
    await fh.close();
  }
  return head.nextSeq;
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
  const acked: Acked = { seq: 0, batches: new Map(), commits: new Set(), units: new Map(), ackedUnits: [], inFlight: new Set() };
  let drops = 0;
  let early = 0;
  let lines = 0;
  let injected = 0;
  let tornUnits = 0;
  let resumeAt = 0; // a torn unit was injected: recovery must resume at this seq
  try {
    for (let c = 1; c <= cycles; c++) {
      // One kill in eight lands during startup or recovery; the others while appending.
      const isEarly = rnd() < 0.125;
      const r = await runChild(dir, Math.floor(rnd() * 2 ** 31), isEarly ? Math.floor(rnd() * 900) : 20 + Math.floor(rnd() * 380), isEarly, acked);
      if (isEarly) early++;
      if (r.dropped) drops++;
      lines += r.lines;
      if (resumeAt && r.opened) {
        assert.is(r.openSeq, resumeAt, `cycle ${c} (seed ${seed}): the torn unit was not dropped whole (recovery resumed at ${r.openSeq}, not ${resumeAt})`);
        assert.ok(r.dropped > 0, `cycle ${c}: the torn unit's bytes were reported`);
      }
      const after = await check(dir, acked, c);
      if (resumeAt && !r.opened) assert.is(after.lastSeq, resumeAt - 1, `cycle ${c}: the records of a unit without its state are visible`);
      resumeAt = r.opened ? 0 : resumeAt;
      acked.inFlight.clear();
      if (!resumeAt && rnd() < 0.2) {
        if (rnd() < 0.5) injected += await tearTail(dir, rnd);
        else {
          resumeAt = await tearUnit(dir, rnd);
          if (resumeAt) tornUnits++;
        }
      }
    }
    const final = await check(dir, acked, cycles);
    console.error(
      `crash suite: ${cycles} kills (${early} during startup or recovery), seed ${seed}: ${acked.seq} records, ${acked.ackedUnits.length} units (of ${acked.units.size} appended), ${acked.batches.size} batches, ${acked.commits.size} commit marks acknowledged; ${drops} recoveries dropped a torn tail (${injected} junk tails and ${tornUnits} units without their state injected); ${final.records} records still stored from seq ${final.firstSeq}; ${lines} lines read`,
    );
    assert.ok(acked.seq > cycles * 10, 'the child made progress');
    assert.ok(acked.commits.size > 0 && acked.batches.size > 0, 'batches and commit marks were exercised');
    assert.ok(acked.ackedUnits.length > 0, 'units were exercised');
  } finally {
    await cleanup();
  }
});

test.run();
