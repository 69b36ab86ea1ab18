// FileJournal behaviour beyond the conformance suite: lifecycle on disk,
// preallocation, group commit, streamed readers and sparse lookups, options.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { encode } from '../../protocol/cbor.js';
import { toHex } from '../../protocol/bytes.js';
import { JournalError } from '../../runtime/journal/errors.js';
import { FileJournal } from '../../runtime/journal/file-journal.js';
import { collect, DeviceStream, receiptFor, tempDir } from './journal-fixtures.js';
import { DEV, fileJournal, fill, segmentFiles } from './journal-disk.js';

const cleanups: Array<() => Promise<void>> = [];
async function dir(): Promise<string> {
  const t = await tempDir('file');
  cleanups.push(t.cleanup);
  return t.dir;
}
test.after.each(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

test('the constructor does no I/O and checks its options, naming the field', async () => {
  const d = join(await dir(), 'not-yet');
  new FileJournal({ dir: d, deviceId: DEV });
  assert.is(await stat(d).catch(() => 'absent'), 'absent');
  const bad: Array<[object, RegExp]> = [
    [{ dir: d, deviceId: 'Bad Id' }, /journal\.deviceId/],
    [{ dir: '', deviceId: DEV }, /journal\.dir/],
    [{ dir: d, deviceId: DEV, maxBytes: 1000 }, /journal\.maxBytes/],
    [{ dir: d, deviceId: DEV, segmentBytes: 100_000 }, /journal\.segmentBytes/],
    [{ dir: d, deviceId: DEV, maxBytes: 1 << 20, segmentBytes: 1 << 20 }, /at least two segments/],
    [{ dir: d, deviceId: DEV, groupCommitMs: -1 }, /journal\.groupCommitMs/],
  ];
  for (const [o, re] of bad) {
    try {
      new FileJournal(o as never);
      assert.unreachable(JSON.stringify(o));
    } catch (e) {
      assert.instance(e, JournalError);
      assert.is((e as JournalError).kind, 'CONFIG');
      assert.match((e as Error).message, re);
    }
  }
});

test('segments are preallocated, sealed with index sidecars, and the next one is prepared ahead', async () => {
  const d = await dir();
  const j = fileJournal(d);
  await j.open();
  await fill(j, new DeviceStream(DEV, j.head()), 2000);
  const segs = await segmentFiles(d);
  assert.ok(segs.length >= 2);
  for (const s of segs) assert.is((await stat(s)).size, 256 << 10, 'preallocated to the segment size');
  const names = await readdir(d);
  for (let i = 1; i < segs.length; i++) assert.ok(names.includes(`seg-${String(i).padStart(10, '0')}.idx`), `sidecar of segment ${i}`);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok((await readdir(d)).includes('spare'), 'a zero-filled spare waits for the next rollover');
  assert.is((await stat(join(d, 'spare'))).size, 256 << 10);
  await j.close();
  // Without preallocation a segment file holds exactly its data.
  const d2 = await dir();
  const k = fileJournal(d2, { preallocate: false });
  await k.open();
  await fill(k, new DeviceStream(DEV, k.head()), 300);
  assert.ok((await stat((await segmentFiles(d2))[0])).size < 256 << 10);
  assert.not.ok((await readdir(d2)).includes('spare'));
  await k.close();
});

test('group commit: concurrent appends share fsyncs; a group never exceeds maxGroupBytes', async () => {
  const d = await dir();
  const j = fileJournal(d, { segmentBytes: 4 << 20, maxGroupBytes: 80 << 10, groupCommitMs: 2 });
  await j.open();
  const ds = new DeviceStream(DEV, j.head());
  const recs = ds.records(3000);
  const t0 = performance.now();
  await Promise.all(recs.map((r) => j.appendRecord(r)));
  const ms = performance.now() - t0;
  const m = j.metrics();
  assert.is(m.records_appended_total, 3000);
  const perGroup = (80 << 10) / (recs[0].length + 9);
  assert.ok(m.fsyncs_total >= Math.floor(3000 / perGroup), `${m.fsyncs_total} fsyncs: groups bounded by maxGroupBytes`);
  assert.ok(m.fsyncs_total <= 3000 / 20, `${m.fsyncs_total} fsyncs for 3000 appends in ${ms.toFixed(0)} ms`);
  assert.ok(m.fsync_seconds_total > 0);
  // One lone append waits for its group's delay and one fsync, not more.
  const t1 = performance.now();
  await j.appendRecord(ds.record());
  assert.ok(performance.now() - t1 < 500);
  await j.close();
});

test('readers stream across segments; lookups through the sparse index return the exact bytes', async () => {
  const d = await dir();
  const j = fileJournal(d);
  await j.open();
  const ds = new DeviceStream(DEV, j.head());
  const recs = await fill(j, ds, 4000);
  const sizes = [137, 1, 400, 999, 1263];
  let at = 0;
  for (const n of sizes) {
    await j.appendBatch(ds.batch(recs.slice(at, at + n)));
    at += n;
  }
  assert.ok((await segmentFiles(d)).length >= 5);
  for (let seq = 1; seq <= 4000; seq += 97) assert.is(toHex((await j.getRecord(seq))!), toHex(recs[seq - 1]), `record ${seq}`);
  assert.is(toHex((await j.getRecord(4000))!), toHex(recs[3999]));
  const mid = await collect(j.records(1234, 1240));
  assert.equal(mid.map((r) => r.seq), [1234, 1235, 1236, 1237, 1238, 1239, 1240]);
  assert.equal((await collect(j.unreceiptedBatches(3))).map((b) => [b.batchSeq, b.firstSeq, b.count]), [[3, 139, 400], [4, 539, 999], [5, 1538, 1263]]);
  assert.is((await collect(j.unbatchedRecords()))[0].seq, 2801);
  await j.markCommitted(4, receiptFor(4));
  assert.is(toHex((await j.getReceipt(4))!), toHex(receiptFor(4)));
  // A reader stopped early releases its file (no descriptor left behind).
  for await (const r of j.records(1)) if (r.seq === 10) break;
  await j.close();
});

test("verifyRecords: 'full' decodes every record on append; the default checks the chain head only", async () => {
  const d = await dir();
  const j = fileJournal(d, { verifyRecords: 'full' });
  await j.open();
  const ds = new DeviceStream(DEV, j.head());
  // A valid head with an event that is not JSON (integer keys).
  const bad = encode(new Map<number, unknown>([[1, DEV], [2, 1], [3, ds.prev], [4, 1], [5, new Map<unknown, unknown>([[1, 2]])]]));
  const e = await j.appendRecord(bad).catch((x) => x);
  assert.is((e as { field?: string }).field, 'record.event');
  await j.appendRecord(ds.record());
  await j.close();
});

test('metrics and stats describe the backlog; checkpoints are counted', async () => {
  const d = await dir();
  const j = fileJournal(d, { checkpointEveryBytes: 64 << 10 });
  await j.open();
  const ds = new DeviceStream(DEV, j.head());
  const recs = await fill(j, ds, 1000);
  await j.appendBatch(ds.batch(recs.slice(0, 600)));
  await j.appendBatch(ds.batch(recs.slice(600, 800)));
  await j.markCommitted(1, receiptFor(1));
  await new Promise((r) => setTimeout(r, 50));
  const m = j.metrics();
  assert.is(m.records_appended_total, 1000);
  assert.is(m.batches_appended_total, 2);
  assert.is(m.commits_appended_total, 1);
  assert.is(m.backlog_records, 400);
  assert.is(m.backlog_unbatched_records, 200);
  assert.is(m.backlog_unreceipted_batches, 1);
  assert.ok(m.checkpoints_total >= 2, `${m.checkpoints_total} checkpoints`);
  assert.ok(m.backlog_bytes > 300_000 && m.backlog_bytes <= m.capacity_bytes);
  assert.ok(m.group_entries_total >= 1003);
  assert.is(m.backpressure_state, 0);
  assert.is(m.alarm, 0);
  const st = j.stats();
  assert.equal([st.lastSeq, st.lastBatchSeq, st.batchedThroughSeq, st.committedThroughBatch, st.committedThroughSeq], [1000, 2, 800, 1, 600]);
  await j.close();
});

test.run();
