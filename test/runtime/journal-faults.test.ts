// Filesystem faults for real: a full disk (a 2 MiB tmpfs) and a read-only
// mount (a read-only bind mount). Both need root to mount; without it each
// test prints a loud SKIP line (the runner shows it) and passes vacuously.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toHex } from '../../protocol/bytes.js';
import { JournalError } from '../../runtime/journal/errors.js';
import type { JournalEvent } from '../../runtime/journal/journal.js';
import { collect, DeviceStream, receiptFor, tempDir } from './journal-fixtures.js';
import { DEV, fileJournal, fill } from './journal-disk.js';

function tryMount(args: string[]): string | undefined {
  try {
    execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    return undefined;
  } catch (e) {
    return ((e as { stderr?: Buffer }).stderr?.toString() || (e as Error).message).trim();
  }
}

function umount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  }
}

async function withTmpfs(sizeKiB: number, name: string, body: (dir: string) => Promise<void>): Promise<void> {
  const t = await tempDir('tmpfs');
  const mnt = join(t.dir, 'mnt');
  await mkdir(mnt);
  const err = tryMount(['-t', 'tmpfs', '-o', `size=${sizeKiB}k`, 'tmpfs', mnt]);
  if (err) {
    console.error(`SKIP ${name}: cannot mount a ${sizeKiB} KiB tmpfs (${err}); run the suite as root to test a full disk`);
    await t.cleanup();
    return;
  }
  try {
    await body(mnt);
  } finally {
    umount(mnt);
    await t.cleanup();
  }
}

/** Appends until a refusal; returns the acknowledged records and the error. */
async function appendUntilRefused(j: ReturnType<typeof fileJournal>, d: DeviceStream, limit = 20000) {
  const acked: Uint8Array[] = [];
  for (let i = 0; i < limit; i += 50) {
    const recs = Array.from({ length: 50 }, () => d.record());
    const res = await Promise.allSettled(recs.map((r) => j.appendRecord(r)));
    let failed: unknown;
    res.forEach((r, k) => (r.status === 'fulfilled' ? acked.push(recs[k]) : (failed ??= r.reason)));
    if (failed) return { acked, error: failed as JournalError };
  }
  throw new Error('never refused');
}

for (const preallocate of [true, false]) {
  test(`ENOSPC (preallocate: ${preallocate}): refused with DISK_FULL, back-pressure and alarm, nothing acknowledged lost, appends resume after compaction`, async () => {
    await withTmpfs(2048, `journal ENOSPC test (preallocate: ${preallocate})`, async (mnt) => {
      const dir = join(mnt, 'journal');
      const o = { maxBytes: 64 << 20, segmentBytes: 256 << 10, preallocate };
      await writeFile(join(mnt, 'ballast'), Buffer.alloc(768 << 10, 1)); // something else on the same disk
      const j = fileJournal(dir, o);
      const events: JournalEvent[] = [];
      j.subscribe((e) => events.push(e));
      await j.open();
      const d = new DeviceStream(DEV, j.head());
      const { acked, error } = await appendUntilRefused(j, d);
      assert.instance(error, JournalError);
      assert.is(error.kind, 'DISK_FULL', error.message);
      assert.is(error.errno, 'ENOSPC');
      assert.match(error.message, /is full/);
      assert.ok(acked.length > 1000, `${acked.length} records fitted`);
      assert.is(j.backpressure().state, 'full');
      assert.is(j.backpressure().reason, 'disk_full');
      assert.is(j.metrics().disk_full, 1);
      assert.is(j.metrics().alarm, 1);
      assert.ok(events.some((e) => e.type === 'alarm' && e.kind === 'DISK_FULL'), 'an alarm event');
      // The failed group rolled back: the head is the last acknowledged record.
      assert.is(j.head().nextSeq, acked.length + 1);
      d.sync(j.head());
      // Still full: a retry is refused the same way, and corrupts nothing.
      const again = await j.appendRecord(d.record()).catch((e) => e as JournalError);
      d.sync(j.head());
      if (again instanceof JournalError) assert.is(again.kind, 'DISK_FULL');
      else acked.push((await j.getRecord(again.seq))!);
      await j.close();

      // Reopen on the still-full disk: every acknowledged record is intact.
      const j2 = fileJournal(dir, o);
      await j2.open();
      const back = await collect(j2.records(1));
      assert.is(back.length, acked.length);
      back.forEach((r, i) => assert.is(toHex(r.bytes), toHex(acked[i])));
      assert.is(j2.stats().recovery!.dropped, undefined);
      const d2 = new DeviceStream(DEV, j2.head());
      if (preallocate) {
        // No deadlock on a full disk: the batch and the commit mark of its
        // receipt fit in the space kept for them; compaction frees segments.
        await j2.appendBatch(d2.batch(acked.slice(0, acked.length - 100)));
        await j2.markCommitted(1, receiptFor(1));
        await j2.compact();
        assert.ok(j2.metrics().segments_deleted_total > 0, 'committed segments were deleted');
      } else {
        // Without preallocation no space is kept back: the operator frees some.
        await rm(join(mnt, 'ballast'));
      }
      const more = await fill(j2, d2, 1200); // needs new segments: the disk has room again
      assert.is(more.length, 1200);
      assert.is(j2.backpressure().reason === 'disk_full', false, JSON.stringify(j2.backpressure()));
      assert.is(j2.stats().lastSeq, acked.length + 1200);
      await j2.close();
    });
  });
}

test('read-only filesystem: a writable open is refused with READ_ONLY; a read-only open serves the backlog', async () => {
  const t = await tempDir('rofs');
  const src = join(t.dir, 'rw');
  const ro = join(t.dir, 'ro');
  await mkdir(ro);
  const j = fileJournal(src);
  await j.open();
  const d = new DeviceStream(DEV, j.head());
  const recs = await fill(j, d, 1000);
  await j.appendBatch(d.batch(recs.slice(0, 500)));
  await j.close();
  const err = tryMount(['--bind', src, ro]) ?? tryMount(['-o', 'remount,ro,bind', ro]);
  if (err) {
    console.error(`SKIP journal read-only filesystem test: cannot make a read-only bind mount (${err}); run the suite as root`);
    umount(ro);
    await t.cleanup();
    return;
  }
  try {
    const w = fileJournal(ro);
    const e = await w.open().catch((x) => x as JournalError);
    assert.instance(e, JournalError);
    assert.is((e as JournalError).kind, 'READ_ONLY');
    assert.is((e as JournalError).errno, 'EROFS');
    assert.match((e as JournalError).message, /readOnly: true/);
    const r = fileJournal(ro, { readOnly: true });
    await r.open();
    assert.is((await collect(r.records(1))).length, 1000);
    assert.equal((await collect(r.unreceiptedBatches())).map((b) => b.batchSeq), [1]);
    assert.is((await collect(r.unbatchedRecords()))[0].seq, 501);
    const a = await r.appendRecord(new DeviceStream(DEV, r.head()).record()).catch((x) => x as JournalError);
    assert.is((a as JournalError).kind, 'READ_ONLY');
    assert.is(r.metrics().read_only, 1);
    assert.is((await r.compact()).segmentsDeleted, 0);
    await r.close();
  } finally {
    umount(ro);
    await t.cleanup();
  }
});

test.run();
