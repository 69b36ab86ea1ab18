// Recovery on a real filesystem: crash images, torn and corrupt tails,
// corruption in the middle of segments, missing segments, broken chains,
// stale or damaged metadata, locks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFile, rm, stat, truncate, unlink, writeFile, appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { toHex } from '../../protocol/bytes.js';
import { JournalError } from '../../runtime/journal/errors.js';
import { EntryType } from '../../runtime/journal/frame.js';
import { indexName } from '../../runtime/journal/segment-header.js';
import { collect, DeviceStream, receiptFor } from './journal-fixtures.js';
import { crashImage, DEV, dirDigest, fileJournal, fill, flipByte, framesOf, rewriteWithValidCrc, scratchDirs, segmentFiles } from './journal-disk.js';

const dirs = scratchDirs(test, 'rec');

async function expectError(p: Promise<unknown>, kind: string, re?: RegExp): Promise<JournalError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, JournalError, String(e));
    assert.is((e as JournalError).kind, kind, (e as Error).message);
    if (re) assert.match((e as Error).message, re);
    return e as JournalError;
  }
  throw new Error(`expected ${kind}`);
}

/** A journal of `n` records over several segments, left open; returns the records. */
async function written(dir: string, n: number, o: Parameters<typeof fileJournal>[1] = {}) {
  const j = fileJournal(dir, o);
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  const recs = await fill(j, d, n);
  return { j, d, recs };
}

async function assertRecords(dir: string, recs: Uint8Array[], o: Parameters<typeof fileJournal>[1] = {}) {
  const j = fileJournal(dir, o);
  await j.open();
  const back = await collect(j.records(1));
  assert.is(back.length, recs.length);
  back.forEach((r, i) => assert.is(toHex(r.bytes), toHex(recs[i]), `record ${i + 1}`));
  const report = j.stats().recovery!;
  await j.close();
  return report;
}

test('clean close: reopen trusts the checkpoint and the index sidecars, scans nothing', async () => {
  const { dir } = await dirs();
  const { j, recs } = await written(dir, 3000);
  assert.ok((await segmentFiles(dir)).length >= 3, 'several segments');
  await j.close();
  const r = await assertRecords(dir, recs);
  assert.is(r.clean, true);
  assert.is(r.usedCheckpoint, true);
  assert.is(r.bytesScanned, 0);
  assert.is(r.segmentsRescanned, 0);
  assert.is(r.dropped, undefined);
});

test('crash image (kill -9 state): every acknowledged record is back, and the chain continues', async () => {
  const { dir, img } = await dirs();
  const { j, recs } = await written(dir, 1500);
  await crashImage(dir, img);
  await j.close();
  const r = await assertRecords(img, recs);
  assert.is(r.clean, false);
  assert.ok(r.entriesScanned > 0, 'scanned the tail after the checkpoint');
  assert.is(r.dropped, undefined);
  const j2 = fileJournal(img);
  await j2.open();
  const d = new DeviceStream(DEV, j2.head());
  assert.equal(await j2.appendRecord(d.record()), { seq: 1501 });
  await j2.close();
});

test('torn tail (last entry cut short): kept up to the damage, dropped bytes reported, chain continues', async () => {
  const { dir, img } = await dirs();
  const { j, recs } = await written(dir, 700);
  await crashImage(dir, img);
  await j.close();
  const last = (await segmentFiles(img)).at(-1)!;
  const frames = await framesOf(last);
  const f = frames.at(-1)!;
  // Cut the last entry in half, then the rest of the preallocated zeros too.
  await truncate(last, f.offset + Math.floor(f.size / 2));
  const events: string[] = [];
  const j2 = fileJournal(img);
  j2.subscribe((e) => e.type === 'alarm' && events.push(e.kind));
  await j2.open();
  const r = j2.stats().recovery!;
  assert.ok(r.dropped, 'the drop is reported');
  assert.is(r.dropped!.offset, f.offset);
  assert.is(r.dropped!.keptThroughSeq, 699);
  assert.ok(r.dropped!.bytes > 0 && r.dropped!.bytes <= f.size);
  assert.match(r.dropped!.reason, /past the end of the file/);
  assert.ok(events.includes('RECOVERY'), 'an alarm event names it');
  assert.is(j2.metrics().recovery_dropped_bytes, r.dropped!.bytes);
  assert.is(j2.head().nextSeq, 700);
  const d = new DeviceStream(DEV, j2.head());
  const again = d.record();
  assert.is(toHex(again), toHex(recs[699]), 'the MCU resends the reading; the same record is rebuilt');
  await j2.appendRecord(again);
  await j2.close();
  const r2 = await assertRecords(img, recs);
  assert.is(r2.dropped, undefined, 'the repair is durable: nothing more to drop');
});

test('flipped bytes in the last entry: dropped as a torn tail, everything before kept', async () => {
  const { dir, img } = await dirs();
  const { j, recs } = await written(dir, 700);
  await crashImage(dir, img);
  await j.close();
  const last = (await segmentFiles(img)).at(-1)!;
  const f = (await framesOf(last)).at(-1)!;
  await flipByte(last, f.offset + f.size - 10);
  const j2 = fileJournal(img);
  await j2.open();
  const r = j2.stats().recovery!;
  assert.is(r.dropped!.offset, f.offset);
  assert.is(r.dropped!.bytes, f.size);
  assert.match(r.dropped!.reason, /CRC-32C mismatch/);
  assert.equal((await collect(j2.records(1))).map((x) => toHex(x.bytes)), recs.slice(0, 699).map(toHex));
  await j2.close();
});

test('garbage after the last entry (a torn group): dropped and zeroed, nothing acknowledged lost', async () => {
  const { dir, img } = await dirs();
  const { j, recs } = await written(dir, 700);
  await crashImage(dir, img);
  await j.close();
  const last = (await segmentFiles(img)).at(-1)!;
  const f = (await framesOf(last)).at(-1)!;
  const b = await readFile(last);
  // Zeros where the next frame's head should be, then a stray page of data: out-of-order write-back.
  b.fill(0xab, f.offset + f.size + 4096, f.offset + f.size + 8192);
  await writeFile(last, b);
  const r = await assertRecords(img, recs);
  assert.ok(r.dropped);
  assert.is(r.dropped!.offset, f.offset + f.size);
  assert.is(r.dropped!.bytes, 8192);
  const after = await readFile(last);
  assert.ok(after.subarray(f.offset + f.size, f.offset + f.size + 8192).every((x) => x === 0), 'zeroed on disk');
});

test('corruption in the middle of the last segment is reported loudly, never skipped', async () => {
  const { dir, img } = await dirs();
  // One big segment; groups of at most 128 KiB, so a torn tail is at most that long.
  const o = { segmentBytes: 2 << 20, maxGroupBytes: 128 << 10 };
  const { j } = await written(dir, 1500, o);
  await crashImage(dir, img);
  await j.close();
  const last = (await segmentFiles(img)).at(-1)!;
  const frames = await framesOf(last);
  assert.ok(frames.length > 1000);
  const f = frames[100];
  await flipByte(last, f.offset + 20);
  const before = await dirDigest(img);
  const e = await expectError(fileJournal(img, o).open(), 'CORRUPT', /refuses to open/);
  assert.is(e.path, last);
  assert.is(e.offset, f.offset);
  assert.match(e.message, /Kept intact: records through 100/);
  assert.is(await dirDigest(img), before, 'nothing was modified');
  // A read-only open refuses the same way (no silent skipping there either).
  await expectError(fileJournal(img, { ...o, readOnly: true }).open(), 'CORRUPT');
});

test('corruption in a sealed segment: reads refuse it, verify() lists it; without its index, open refuses', async () => {
  const { dir } = await dirs();
  const { j, recs } = await written(dir, 1500);
  await j.close();
  const first = (await segmentFiles(dir))[0];
  const f = (await framesOf(first))[50];
  await flipByte(first, f.offset + 30);
  const j2 = fileJournal(dir);
  await j2.open(); // the sidecar is trusted at open: no full scan of sealed segments
  assert.is(toHex((await j2.getRecord(50))!), toHex(recs[49]));
  const e = await expectError(j2.getRecord(51), 'CORRUPT', /will not be skipped/);
  assert.is(e.offset, f.offset);
  await expectError(collect(j2.records(1)), 'CORRUPT');
  const problems = await j2.verify();
  assert.is(problems.length, 1);
  assert.is(problems[0].path, first);
  assert.is(problems[0].offset, f.offset);
  await j2.close();
  await unlink(join(dir, indexName(1)));
  await expectError(fileJournal(dir).open(), 'CORRUPT', /sealed segment/);
});

test('a missing segment in the middle is reported, naming the file', async () => {
  const { dir } = await dirs();
  const { j } = await written(dir, 3000);
  await j.close();
  const segs = await segmentFiles(dir);
  await rm(segs[1]);
  await expectError(fileJournal(dir).open(), 'CORRUPT', /seg-0000000002\.log is missing/);
});

test('a segment swapped in from elsewhere is refused: wrong number, or a base that does not continue its predecessor', async () => {
  const { dir } = await dirs();
  const a = await written(dir, 3000);
  await a.j.close();
  // Another journal of the same device whose chain differs from seq 101 on (a batch there).
  const other = await dirs();
  const jb = fileJournal(other.dir);
  await jb.open();
  const d = new DeviceStream(DEV, jb.head());
  const first = await fill(jb, d, 100);
  await jb.appendBatch(d.batch(first));
  await fill(jb, d, 2900);
  await jb.close();
  const segs = await segmentFiles(dir);
  const otherSegs = await segmentFiles(other.dir);
  await writeFile(segs[1], await readFile(otherSegs[1]));
  await expectError(fileJournal(dir).open(), 'CORRUPT', /seg-0000000002\.log does not continue the segment before it/);
  await writeFile(segs[1], await readFile(segs[2]));
  await expectError(fileJournal(dir).open(), 'CORRUPT', /header says segment 3/);
});

test('a stored entry with a valid CRC that breaks the chain is refused (tampering), not skipped', async () => {
  const { dir, img } = await dirs();
  const { j } = await written(dir, 700);
  await crashImage(dir, img);
  await j.close();
  const last = (await segmentFiles(img)).at(-1)!;
  const frames = (await framesOf(last)).filter((f) => f.type === EntryType.RECORD);
  const f = frames[frames.length - 20];
  await rewriteWithValidCrc(last, f, 200); // a byte of the event changes: the next record's prev no longer matches
  const e = await expectError(fileJournal(img).open(), 'CHAIN', /breaks the chain/);
  assert.is(e.path, last);
  assert.is(e.offset, f.offset + f.size, 'names the entry whose prev does not match');
});

test('a damaged or foreign checkpoint and index sidecars are ignored: the segments are the truth', async () => {
  const { dir } = await dirs();
  const { j, recs } = await written(dir, 1500);
  await j.close();
  await flipByte(join(dir, 'checkpoint'), 30);
  await writeFile(join(dir, indexName(1)), 'not an index');
  const r = await assertRecords(dir, recs);
  assert.is(r.usedCheckpoint, false);
  assert.is(r.segmentsRescanned, 1);
  // ...and the rebuilt sidecar is used next time.
  const r2 = await assertRecords(dir, recs);
  assert.is(r2.segmentsRescanned, 0);
  assert.is(r2.usedCheckpoint, true);
});

test('leftovers of interrupted creations (.tmp files, a short spare) are removed at open', async () => {
  const { dir } = await dirs();
  const { j, recs } = await written(dir, 300);
  await j.close();
  await writeFile(join(dir, 'seg-0000000009.log.tmp'), 'half');
  await writeFile(join(dir, 'checkpoint.tmp'), 'half');
  await writeFile(join(dir, 'spare'), 'short');
  await assertRecords(dir, recs);
  const names = await readdir(dir);
  assert.not.ok(names.some((n) => n.endsWith('.tmp')), names.join());
});

test('without preallocation: torn tails are cut off the file end', async () => {
  const { dir, img } = await dirs();
  const { j, recs } = await written(dir, 700, { preallocate: false });
  await crashImage(dir, img);
  await j.close();
  const last = (await segmentFiles(img)).at(-1)!;
  const f = (await framesOf(last)).at(-1)!;
  assert.is((await stat(last)).size, f.offset + f.size, 'the file ends with the data');
  await appendFile(last, Buffer.alloc(300, 0x77)); // a torn next frame
  const j2 = fileJournal(img, { preallocate: false });
  await j2.open();
  assert.is(j2.stats().recovery!.dropped!.bytes, 300);
  assert.is((await stat(last)).size, f.offset + f.size);
  assert.is(j2.stats().lastSeq, 700);
  await j2.close();
  await truncate(last, f.offset + 100);
  const r = await assertRecords(img, recs.slice(0, 699), { preallocate: false });
  assert.is(r.dropped!.keptThroughSeq, 699);
});

test('read-only open of a crash image with a torn tail: reports it, changes nothing, refuses appends', async () => {
  const { dir, img } = await dirs();
  const { j, recs } = await written(dir, 700);
  await crashImage(dir, img);
  await j.close();
  const last = (await segmentFiles(img)).at(-1)!;
  const f = (await framesOf(last)).at(-1)!;
  await flipByte(last, f.offset + 7);
  const before = await dirDigest(img);
  const ro = fileJournal(img, { readOnly: true });
  await ro.open();
  assert.is(ro.stats().recovery!.dropped!.offset, f.offset);
  assert.is((await collect(ro.records(1))).length, 699);
  assert.is(ro.backpressure().reason, 'read_only');
  await expectError(ro.appendRecord(new DeviceStream(DEV, ro.head()).record()), 'READ_ONLY');
  await expectError(ro.markCommitted(1, receiptFor(1)), 'READ_ONLY');
  await ro.close();
  assert.is(await dirDigest(img), before, 'not a byte changed');
  void recs;
});

test('one writer per directory: a second instance, or a live process holding LOCK, is refused; a dead one is taken over', async () => {
  const { dir } = await dirs();
  const j = fileJournal(dir);
  await j.open();
  await expectError(fileJournal(dir).open(), 'LOCKED', /already open in this process/);
  await j.close();
  const sleeper = spawn('sleep', ['30']);
  try {
    await writeFile(join(dir, 'LOCK'), `${sleeper.pid}\n`);
    await expectError(fileJournal(dir).open(), 'LOCKED', new RegExp(`process ${sleeper.pid}`));
  } finally {
    sleeper.kill('SIGKILL');
  }
  await new Promise((r) => sleeper.once('exit', r));
  const j2 = fileJournal(dir); // the lock's owner is dead: stale
  await j2.open();
  assert.is((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid));
  await j2.close();
});

test('a directory of another device is refused with a config error naming both', async () => {
  const { dir } = await dirs();
  const { j } = await written(dir, 10);
  await j.close();
  const other = fileJournal(dir, { deviceId: 'other-dev' });
  await expectError(other.open(), 'CONFIG', /"reefer-07".*"other-dev"/);
});

test.run();
