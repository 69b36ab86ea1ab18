// FileJournal units on disk (appendUnit): atomic after a crash, the latest
// state kept through rollovers and compaction and found without a rescan, the
// earlier format still opening; caller hashes checked at group boundaries;
// preallocation methods.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, readFile, rm, stat, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256, toHex } from '../../protocol/bytes.js';
import { crc32c } from '../../protocol/crc32c.js';
import { JournalError } from '../../runtime/journal/errors.js';
import { EntryType, FRAME_HEAD } from '../../runtime/journal/frame.js';
import { indexName } from '../../runtime/journal/segment-header.js';
import { collect, DeviceStream, receiptFor, stateFor } from './journal-fixtures.js';
import { crashImage, DEV, fileJournal, fill, flipByte, framesOf, scratchDirs, segmentFiles, type FrameAt } from './journal-disk.js';

const dirs = scratchDirs(test, 'units');

/** 300 records, unit A (3 records), unit B (5 records); left open. */
async function twoUnits(dir: string) {
  const j = fileJournal(dir);
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  const recs = await fill(j, d, 300);
  const a = d.records(3);
  await j.appendUnit(a, stateFor(1, 300));
  const b = d.records(5);
  await j.appendUnit(b, stateFor(2, 500), b.map((r) => sha256(r)));
  return { j, recs, a, b };
}

/** A crash image of twoUnits in `img`, and unit B's frames in it. */
async function imageWithUnitB() {
  const { dir, img } = await dirs();
  const { j, recs, a, b } = await twoUnits(dir);
  await crashImage(dir, img);
  await j.close();
  return { img, recs, a, b, B: await unitB(img) };
}

/** Unit B's frames in the last segment: its five records and its state entry. */
async function unitB(img: string): Promise<{ path: string; records: FrameAt[]; state: FrameAt }> {
  const path = (await segmentFiles(img)).at(-1)!;
  const frames = await framesOf(path);
  const state = frames.at(-1)!;
  assert.is(state.type, EntryType.STATE);
  const records = frames.slice(-6, -1);
  assert.ok(records.every((f) => f.type === EntryType.UNIT_RECORD));
  return { path, records, state };
}

async function reopened(dir: string) {
  const j = fileJournal(dir);
  await j.open();
  return j;
}

test('a unit cut inside its records at the tail is dropped whole; everything before it is kept, and the report says so', async () => {
  const { img, recs, a, b, B } = await imageWithUnitB();
  await truncate(B.path, B.records[2].offset + 10);
  const alarms: string[] = [];
  const k = fileJournal(img);
  k.subscribe((e) => e.type === 'alarm' && alarms.push(e.message));
  await k.open();
  const dropped = k.stats().recovery!.dropped!;
  assert.equal(dropped.tornUnit, { firstSeq: 304, records: 2 });
  assert.is(dropped.offset, B.records[0].offset, 'dropped from the start of the unit');
  assert.is(dropped.keptThroughSeq, 303);
  assert.match(dropped.reason, /unit of 2 records from seq 304 without its state entry/);
  assert.ok(alarms.some((m) => /whole unit of 2 records from seq 304/.test(m)), alarms.join('\n'));
  assert.is(k.head().nextSeq, 304);
  assert.is(toHex(k.lastState()!), toHex(stateFor(1, 300)), 'the state before the torn unit');
  assert.equal((await collect(k.records(1))).map((r) => toHex(r.bytes)), [...recs, ...a].map(toHex));
  // The MCU resends; the pipeline rebuilds the same unit.
  assert.equal(await k.appendUnit(b, stateFor(2, 500)), { firstSeq: 304, lastSeq: 308 });
  await k.close();
  const k2 = await reopened(img);
  assert.is(k2.stats().recovery!.dropped, undefined, 'the repair was durable');
  assert.is(toHex(k2.lastState()!), toHex(stateFor(2, 500)));
  await k2.close();
});

test('a unit whose state entry is damaged (a flipped byte) is dropped whole, its valid records too', async () => {
  const { img, B } = await imageWithUnitB();
  await flipByte(B.path, B.state.offset + FRAME_HEAD + 100);
  const k = await reopened(img);
  const dropped = k.stats().recovery!.dropped!;
  assert.equal(dropped.tornUnit, { firstSeq: 304, records: 5 });
  assert.match(dropped.reason, /CRC-32C mismatch/);
  assert.is(k.stats().lastSeq, 303);
  assert.is(toHex(k.lastState()!), toHex(stateFor(1, 300)));
  await k.close();
});

test('a flipped byte inside a unit record (not its first) drops the unit from its first record', async () => {
  const { img, B } = await imageWithUnitB();
  await flipByte(B.path, B.records[3].offset + 40);
  const k = await reopened(img);
  assert.equal(k.stats().recovery!.dropped!.tornUnit, { firstSeq: 304, records: 3 });
  assert.is(k.stats().recovery!.dropped!.offset, B.records[0].offset);
  assert.is(k.stats().lastSeq, 303);
  await k.close();
});

test('unit records with valid CRCs but no state entry after them (its page never reached the disk) are not kept as records', async () => {
  const { img, B } = await imageWithUnitB();
  const buf = await readFile(B.path);
  buf.fill(0, B.state.offset, B.state.offset + B.state.size);
  await writeFile(B.path, buf);
  const k = await reopened(img);
  assert.equal(k.stats().recovery!.dropped!.tornUnit, { firstSeq: 304, records: 5 });
  assert.is(k.stats().lastSeq, 303);
  assert.is(toHex(k.lastState()!), toHex(stateFor(1, 300)));
  await k.close();
});

test('unit records followed by a plain record (never written so) are corruption, not a torn tail', async () => {
  const { dir, img } = await dirs();
  const { j } = await twoUnits(dir);
  await j.appendRecord(new DeviceStream(DEV, j.head()).record());
  await crashImage(dir, img);
  await j.close();
  const path = (await segmentFiles(img)).at(-1)!;
  const frames = await framesOf(path);
  assert.is(frames.at(-2)!.type, EntryType.STATE);
  // B's last record turned into a plain record (valid CRC): unit records followed by a record.
  const buf = await readFile(path);
  const lastB = frames.at(-3)!;
  buf[lastB.offset + 4] = EntryType.RECORD;
  buf.writeUInt32LE(crc32c(buf, 0, lastB.offset, lastB.offset + lastB.size - 4), lastB.offset + lastB.size - 4);
  await writeFile(path, buf);
  try {
    await (await reopened(img)).close();
    assert.unreachable('open must refuse');
  } catch (e) {
    assert.instance(e, JournalError);
    assert.is((e as JournalError).kind, 'CORRUPT');
    assert.match((e as Error).message, /followed by a record entry instead of its state entry/);
    assert.is((e as JournalError).offset, lastB.offset);
  }
});

test('the latest state rides to the start of every new segment: compaction deletes its unit, reopen still has it', async () => {
  const { dir } = await dirs();
  const j = fileJournal(dir);
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  const before = await fill(j, d, 50);
  const u = d.records(2);
  await j.appendUnit(u, stateFor(42, 2000));
  const after = await fill(j, d, 3000); // several 256 KiB segments
  const segs = await segmentFiles(dir);
  assert.ok(segs.length >= 4, `${segs.length} segments`);
  for (const s of segs.slice(1)) {
    const f = (await framesOf(s))[0];
    assert.is(f.type, EntryType.STATE, `${s} starts with the carried state`);
    const b = await readFile(s);
    assert.is(toHex(b.subarray(f.offset + FRAME_HEAD, f.offset + f.size - 4)), toHex(stateFor(42, 2000)));
  }
  assert.is(j.metrics().units_appended_total, 1);
  assert.is(j.metrics().state_entries_total, segs.length, 'one written by the unit, one carried per rollover');
  const all = [...before, ...u, ...after];
  for (let b = 0; b < 30; b++) await j.appendBatch(d.batch(all.slice(b * 100, b * 100 + 100)));
  for (let b = 1; b <= 30; b++) await j.markCommitted(b, receiptFor(b));
  await j.compact();
  assert.ok(j.stats().firstSeq > 52, `the unit's segment is gone (first seq ${j.stats().firstSeq})`);
  assert.is(toHex(j.lastState()!), toHex(stateFor(42, 2000)));
  await j.close();
  const k = await reopened(dir);
  assert.is(toHex(k.lastState()!), toHex(stateFor(42, 2000)), 'after compaction and reopen');
  assert.is(k.metrics().last_state_bytes, 2000);
  assert.equal(await k.verify(), []);
  await k.close();
});

test('lastState without a rescan: a clean reopen scans nothing, a crash image only the tail, no sidecars means a scan with the same answer', async () => {
  const { dir, img } = await dirs();
  const j = fileJournal(dir);
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  for (let i = 0; i < 40; i++) await j.appendUnit(d.records(60), stateFor(i, 100 + i * 50));
  assert.ok((await segmentFiles(dir)).length >= 3);
  await crashImage(dir, img);
  await j.close();
  const want = toHex(stateFor(39, 100 + 39 * 50));
  const k = await reopened(dir);
  assert.is(k.stats().recovery!.bytesScanned, 0);
  assert.is(toHex(k.lastState()!), want);
  await k.close();
  const c = await reopened(img);
  assert.ok(c.stats().recovery!.bytesScanned < 256 << 10, 'the tail after the checkpoint');
  assert.is(toHex(c.lastState()!), want);
  await c.close();
  for (const n of ['checkpoint', indexName(1), indexName(2)]) await unlink(join(dir, n));
  const r = await reopened(dir);
  assert.ok(r.stats().recovery!.segmentsRescanned >= 2);
  assert.is(toHex(r.lastState()!), want);
  assert.is(r.stats().lastSeq, 2400);
  await r.close();
});

test('a unit never spans segments or groups: each segment holds whole units only', async () => {
  const { dir } = await dirs();
  const j = fileJournal(dir, { maxGroupBytes: 70_000 });
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  // Concurrent units of varied size share group commits.
  for (let round = 0; round < 12; round++) await Promise.all(Array.from({ length: 8 }, (_, i) => j.appendUnit(d.records((round * 8 + i) % 40), stateFor(round * 8 + i, 64 + 97 * i))));
  await j.close();
  for (const s of await segmentFiles(dir)) {
    let open = 0;
    for (const f of await framesOf(s)) {
      if (f.type === EntryType.UNIT_RECORD) open++;
      else {
        assert.ok(f.type === EntryType.STATE || open === 0, `${s}: unit records at ${f.offset} not closed by a state`);
        open = 0;
      }
    }
    assert.is(open, 0, `${s} ends inside a unit`);
  }
  const k = await reopened(dir);
  assert.equal(await k.verify(), []);
  assert.is(toHex(k.lastState()!), toHex(stateFor(95, 64 + 97 * 7)));
  await k.close();
});

test('a journal of the previous format (version 1 containers, no units) opens, reads, and takes units from then on', async () => {
  const { dir } = await dirs();
  const j = fileJournal(dir);
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  const recs = await fill(j, d, 900);
  await j.close();
  // What the previous build wrote: the same bytes with version 1 in every
  // header, and summaries without a state position (caches: dropped here).
  for (const s of await segmentFiles(dir)) {
    const b = await readFile(s);
    const bodyLen = b.readUInt32LE(12);
    b.writeUInt16LE(1, 8);
    b.writeUInt32LE(crc32c(b, 0, 0, 16 + bodyLen), 16 + bodyLen);
    await writeFile(s, b);
  }
  for (const n of ['checkpoint', indexName(1), indexName(2), indexName(3)]) await rm(join(dir, n), { force: true });
  const k = await reopened(dir);
  assert.is(k.lastState(), undefined);
  assert.equal((await collect(k.records(1))).map((r) => toHex(r.bytes)), recs.map(toHex));
  const d2 = new DeviceStream(DEV, k.head());
  assert.equal(await k.appendUnit(d2.records(2), stateFor(3)), { firstSeq: 901, lastSeq: 902 });
  await fill(k, d2, 1500);
  await k.close();
  const k2 = await reopened(dir);
  assert.is(toHex(k2.lastState()!), toHex(stateFor(3)));
  assert.equal(await k2.verify(), []);
  await k2.close();
});

test('caller hashes are trusted, but a wrong one is caught where a group ends: what was linked to it is refused, the chain on disk stays whole', async () => {
  const { dir } = await dirs();
  const j = fileJournal(dir, { groupCommitMs: 0 });
  const alarms: Array<{ kind: string; message: string }> = [];
  j.subscribe((e) => e.type === 'alarm' && alarms.push(e));
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  await fill(j, d, 10);
  const wrong = new Uint8Array(32).fill(0xee);
  // Record 11 with a wrong hash, alone in its group: durable (the record is sound).
  const r11 = d.record();
  assert.equal(await j.appendRecord(r11, wrong), { seq: 11 });
  assert.ok(alarms.some((a) => a.kind === 'CHAIN' && /hash given for record 11/.test(a.message)), JSON.stringify(alarms));
  assert.is(toHex(j.head().prev), toHex(sha256(r11)), 'the head holds the real hash, not the caller\'s');
  // A record that links to the wrong hash is refused on append.
  const forged = new DeviceStream(DEV, { ...j.head(), prev: wrong });
  try {
    await j.appendRecord(forged.record());
    assert.unreachable();
  } catch (e) {
    assert.is((e as JournalError).kind, 'CHAIN');
    assert.is((e as JournalError).field, 'record.prev');
  }
  // Queued behind a group in flight: refused when that group is folded.
  const r12 = d.record();
  const first = j.appendRecord(r12, wrong);
  await new Promise((r) => setImmediate(r)); // the group with record 12 is being written
  const linked = new DeviceStream(DEV, { ...j.head(), prev: wrong }).record();
  const second = j.appendRecord(linked);
  assert.equal(await first, { seq: 12 });
  try {
    await second;
    assert.unreachable();
  } catch (e) {
    assert.is((e as JournalError).kind, 'CHAIN');
    assert.is((e as JournalError).field, 'record.hash');
  }
  await j.appendRecord(new DeviceStream(DEV, j.head()).record());
  await j.close();
  const k = await reopened(dir);
  assert.is(k.stats().lastSeq, 13);
  assert.equal(await k.verify(), []);
  await k.close();
});

test("preallocation: fallocate by default; zero-fill on request or where fallocate(1) is missing; false grows the files", async () => {
  const { dir, img } = await dirs();
  const sizes = async (d: string) => Promise.all((await segmentFiles(d)).concat(join(d, 'spare')).map(async (f) => stat(f)));
  const j = fileJournal(dir);
  await j.open();
  assert.is(j.preallocation, 'fallocate');
  await fill(j, new DeviceStream(DEV, j.head()), 1200);
  await j.close();
  for (const s of await sizes(dir)) {
    assert.is(s.size, 256 << 10);
    assert.ok(s.blocks * 512 >= 256 << 10, 'blocks are allocated, not a sparse file');
  }
  // No fallocate on PATH (only sh): zero-fill, for good.
  const bin = join(img, 'bin');
  await mkdir(bin);
  await symlink('/bin/sh', join(bin, 'sh'));
  const path = process.env.PATH;
  process.env.PATH = bin;
  const z = fileJournal(join(img, 'j'));
  try {
    await z.open();
  } finally {
    process.env.PATH = path;
  }
  await fill(z, new DeviceStream(DEV, z.head()), 1200);
  assert.is(z.preallocation, 'zero-fill');
  await z.close();
  for (const s of await sizes(join(img, 'j'))) assert.ok(s.size === 256 << 10 && s.blocks * 512 >= 256 << 10);
  const zf = fileJournal(join(img, 'zf'), { preallocate: 'zero-fill' });
  await zf.open();
  assert.is(zf.preallocation, 'zero-fill');
  await zf.close();
  const none = fileJournal(join(img, 'none'), { preallocate: false });
  await none.open();
  assert.is(none.preallocation, undefined);
  await none.close();
});

test('rollovers racing compaction (which prepares the next spare): every segment is whole, every record readable', async () => {
  const { dir } = await dirs();
  const j = fileJournal(dir, { maxBytes: 8 << 20, segmentBytes: 200 << 10 });
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  const pending: Promise<unknown>[] = [];
  for (let round = 0; round < 40; round++) {
    // Appends that roll segments over, while the receipts of earlier batches
    // let compaction delete segments (and prepare a spare) at the same time.
    const recs = d.records(150);
    for (const r of recs) pending.push(j.appendRecord(r, sha256(r)));
    pending.push(j.appendUnit(d.records(3), stateFor(round, 3000)));
    await Promise.all(pending.splice(0));
    const unbatched = await collect(j.unbatchedRecords());
    const b = await j.appendBatch(d.batch(unbatched.map((r) => r.bytes)));
    if (b.batchSeq > 1) pending.push(j.markCommitted(b.batchSeq - 1, receiptFor(b.batchSeq - 1)));
  }
  await Promise.all(pending);
  assert.ok(j.metrics().segments_deleted_total > 5, 'compaction ran');
  assert.equal(await j.verify(), []);
  const st = j.stats();
  assert.is((await collect(j.records(st.firstSeq))).length, st.lastSeq - st.firstSeq + 1);
  await j.close();
  const k = await reopened(dir);
  assert.equal(await k.verify(), []);
  assert.is(toHex(k.lastState()!), toHex(stateFor(39, 3000)));
  await k.close();
});

test.run();
