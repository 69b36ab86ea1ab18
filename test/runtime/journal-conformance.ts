// The one conformance suite of the Journal interface (runtime/journal/journal.ts).
// FileJournal and MemoryJournal both run it (journal-conformance.test.ts), so
// the pipeline's unit tests on MemoryJournal exercise the same behaviour the
// gateway gets from FileJournal.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sha256, toHex } from '../../protocol/bytes.js';
import { IscmError } from '../../protocol/errors.js';
import { JournalError, type JournalErrorKind } from '../../runtime/journal/errors.js';
import { MAX_STATE_BYTES, type Journal, type JournalEvent } from '../../runtime/journal/journal.js';
import { collect, DeviceStream, receiptFor, recordFor, sign1For, stateFor } from './journal-fixtures.js';

export interface JournalStoreOptions {
  /** Quota in bytes. */
  maxBytes?: number;
  /** Check every caller-given record hash on append (FileJournal's debug option; MemoryJournal's default). */
  verifyHashes?: boolean;
}

/** A fresh empty store; `make()` returns a new (unopened) Journal over it, as after a restart. */
export interface JournalStore {
  make(): Journal;
  cleanup(): Promise<void>;
}

export type JournalFactory = (o: JournalStoreOptions) => Promise<JournalStore>;

const DEV = 'reefer-07';

/** Expects a rejection: a JournalError of `kind`, or for 'TYPED' any IscmError (a codec's ValidationError, CborError). */
async function rejects(p: Promise<unknown>, kind: JournalErrorKind | 'TYPED', field?: RegExp): Promise<JournalError | Error> {
  try {
    await p;
  } catch (e) {
    if (kind === 'TYPED') assert.instance(e, IscmError, `expected a typed error, got ${(e as Error)?.message}`);
    else {
      assert.instance(e, JournalError, `expected a JournalError ${kind}, got ${(e as Error)?.message}`);
      assert.is((e as JournalError).kind, kind, (e as Error).message);
    }
    if (field) assert.match((e as JournalError).field ?? '', field);
    assert.ok((e as Error).message.length > 20, 'the message says something');
    return e as Error;
  }
  assert.unreachable(`expected a ${kind} rejection`);
  throw new Error('unreachable');
}

export function journalConformance(name: string, factory: JournalFactory): void {
  const t = suite(`journal conformance: ${name}`);
  let store: JournalStore;
  let j: Journal;
  const open = async (o: JournalStoreOptions = {}) => {
    store = await factory(o);
    j = store.make();
    await j.open();
    return j;
  };
  const reopen = async () => {
    await j.close();
    j = store.make();
    await j.open();
    return j;
  };
  t.after.each(async () => {
    await j?.close().catch(() => {});
    await store?.cleanup();
  });

  t('lifecycle: nothing before open(), nothing after close(), open() once', async () => {
    store = await factory({});
    j = store.make();
    const d = new DeviceStream(DEV);
    await rejects(j.appendRecord(d.record()), 'CLOSED');
    await j.open();
    await rejects(j.open(), 'CLOSED');
    await j.close();
    await rejects(j.appendRecord(new DeviceStream(DEV).record()), 'CLOSED');
    await j.close(); // idempotent
  });

  t('records: group-committed appends resolve in order; exact bytes come back; head continues the chain', async () => {
    await open();
    const d = new DeviceStream(DEV, j.head());
    assert.is(j.head().nextSeq, 1);
    assert.is(toHex(j.head().prev), '00'.repeat(32));
    const recs = d.records(300);
    const order: number[] = [];
    const acks = await Promise.all(recs.map((r) => j.appendRecord(r).then((a) => (order.push(a.seq), a))));
    assert.equal(acks.map((a) => a.seq), recs.map((_, i) => i + 1));
    assert.equal(order, acks.map((a) => a.seq), 'acknowledged in append order');
    assert.is(j.head().nextSeq, 301);
    assert.is(toHex(j.head().prev), toHex(sha256(recs[299])));
    const back = await collect(j.records(1));
    assert.is(back.length, 300);
    back.forEach((r, i) => {
      assert.is(r.seq, i + 1);
      assert.is(toHex(r.bytes), toHex(recs[i]));
    });
    assert.is(toHex((await j.getRecord(123))!), toHex(recs[122]));
    assert.is(await j.getRecord(301), undefined);
    assert.equal((await collect(j.records(298, 299))).map((r) => r.seq), [298, 299]);
    const m = j.metrics();
    assert.is(m.records_appended_total, 300);
    assert.ok(m.fsyncs_total >= 1 && m.fsyncs_total < 300, `group commit shares fsyncs (${m.fsyncs_total} for 300)`);
    assert.is(m.backlog_records, 300);
    assert.is(m.backlog_unbatched_records, 300);
    const st = j.stats();
    assert.is(st.lastSeq, 300);
    assert.is(st.firstSeq, 1);
  });

  t('records: chain violations are refused with typed errors naming the field, and change nothing', async () => {
    await open();
    const d = new DeviceStream(DEV, j.head());
    await j.appendRecord(d.record());
    const headBefore = j.head();
    await rejects(j.appendRecord(recordFor(DEV, 3, d.prev)), 'CHAIN', /record\.seq/); // a gap
    await rejects(j.appendRecord(recordFor(DEV, 1, new Uint8Array(32))), 'CHAIN', /record\.seq/); // a replay
    await rejects(j.appendRecord(recordFor(DEV, 2, new Uint8Array(32).fill(9))), 'CHAIN', /record\.prev/); // a fork
    await rejects(j.appendRecord(recordFor('other-dev', 2, d.prev)), 'CHAIN', /record\.device_id/);
    await rejects(j.appendRecord(new Uint8Array([0xa1, 0x01, 0x02])), 'TYPED');
    await rejects(j.appendRecord('not bytes' as unknown as Uint8Array), 'TYPED');
    assert.is(j.head().nextSeq, headBefore.nextSeq);
    assert.is(toHex(j.head().prev), toHex(headBefore.prev));
    await j.appendRecord(d.record()); // the stream continues
    assert.is(j.stats().lastSeq, 2);
  });

  t('batches: chained over the next unbatched records; unbatched and unreceipted readers follow', async () => {
    await open();
    const d = new DeviceStream(DEV, j.head());
    const recs = d.records(50);
    await Promise.all(recs.map((r) => j.appendRecord(r)));
    // Refusals first (the stream object is not advanced by a refused batch).
    const bad = (over: Partial<Parameters<typeof sign1For>[0]>) => sign1For({ deviceId: DEV, batchSeq: 1, firstSeq: 1, count: 20, root: new Uint8Array(32), prev: new Uint8Array(32), time: 1, ...over });
    await rejects(j.appendBatch(bad({ batchSeq: 2, prev: new Uint8Array(32).fill(1) })), 'CHAIN', /batch\.batch_seq/);
    await rejects(j.appendBatch(bad({ firstSeq: 2 })), 'CHAIN', /batch\.first_seq/);
    await rejects(j.appendBatch(bad({ count: 51 })), 'CHAIN', /batch\.count/);
    await rejects(j.appendBatch(bad({ deviceId: 'other-dev' })), 'CHAIN', /batch\.device_id/);
    await rejects(j.appendBatch(new Uint8Array([1, 2, 3])), 'TYPED');
    const b1 = d.batch(recs.slice(0, 20));
    assert.equal(await j.appendBatch(b1), { batchSeq: 1, firstSeq: 1, count: 20 });
    const b2wrongPrev = sign1For({ deviceId: DEV, batchSeq: 2, firstSeq: 21, count: 5, root: new Uint8Array(32), prev: new Uint8Array(32), time: 1 });
    await rejects(j.appendBatch(b2wrongPrev), 'CHAIN', /batch\.prev/);
    const b2 = d.batch(recs.slice(20, 45));
    await j.appendBatch(b2);
    assert.is(j.head().batchedThroughSeq, 45);
    assert.is(toHex(j.head().prevBatch), toHex(sha256(b2)));
    const unbatched = await collect(j.unbatchedRecords());
    assert.equal(unbatched.map((r) => r.seq), [46, 47, 48, 49, 50]);
    assert.is(toHex(unbatched[0].bytes), toHex(recs[45]));
    const unr = await collect(j.unreceiptedBatches());
    assert.equal(unr.map((b) => [b.batchSeq, b.firstSeq, b.count, b.committed]), [[1, 1, 20, false], [2, 21, 25, false]]);
    assert.is(toHex(unr[0].sign1), toHex(b1), 'exact COSE_Sign1 bytes');
    assert.equal((await collect(j.unreceiptedBatches(2))).map((b) => b.batchSeq), [2], 'from a cursor');
    const g = await j.getBatch(2);
    assert.is(toHex(g!.sign1), toHex(b2));
    assert.is(await j.getBatch(3), undefined);
    assert.is(j.metrics().backlog_unreceipted_batches, 2);
    assert.is(j.metrics().backlog_unbatched_records, 5);
  });

  t('commit marks: idempotent, out of order, unknown batches refused; receipts kept', async () => {
    await open();
    const d = new DeviceStream(DEV, j.head());
    const recs = d.records(40);
    await Promise.all(recs.map((r) => j.appendRecord(r)));
    await rejects(j.markCommitted(1, receiptFor(1)), 'NOT_FOUND', /commit\.batch_seq/);
    for (let i = 0; i < 4; i++) await j.appendBatch(d.batch(recs.slice(i * 10, i * 10 + 10)));
    await rejects(j.markCommitted(5, receiptFor(5)), 'NOT_FOUND', /commit\.batch_seq/);
    await rejects(j.markCommitted(0, receiptFor(0)), 'CHAIN', /commit\.batch_seq/);
    assert.equal(await j.markCommitted(3, receiptFor(3)), { batchSeq: 3, duplicate: false });
    assert.is(j.stats().committedThroughBatch, 0);
    assert.equal(j.stats().committedAbove, [3]);
    assert.equal((await collect(j.unreceiptedBatches())).map((b) => b.batchSeq), [1, 2, 4]);
    await j.markCommitted(1, receiptFor(1));
    assert.equal(await j.markCommitted(1, receiptFor(1)), { batchSeq: 1, duplicate: true });
    await j.markCommitted(2, receiptFor(2));
    const st = j.stats();
    assert.is(st.committedThroughBatch, 3, 'the watermark absorbs the out-of-order mark');
    assert.is(st.committedThroughSeq, 30);
    assert.equal(st.committedAbove, []);
    assert.equal((await collect(j.unreceiptedBatches())).map((b) => b.batchSeq), [4]);
    assert.is(toHex((await j.getReceipt(3))!), toHex(receiptFor(3)));
    assert.is(await j.getReceipt(4), undefined);
    assert.is((await j.getBatch(2))!.committed, true);
    assert.is(j.metrics().backlog_records, 10);
  });

  t('reopen: records, batches, commit marks and the head survive close and a new instance', async () => {
    await open();
    const d = new DeviceStream(DEV, j.head());
    const recs = d.records(60);
    await Promise.all(recs.map((r) => j.appendRecord(r)));
    await j.appendBatch(d.batch(recs.slice(0, 30)));
    await j.appendBatch(d.batch(recs.slice(30, 50)));
    await j.markCommitted(2, receiptFor(2));
    const head = j.head();
    await reopen();
    const hex = (h: ReturnType<Journal['head']>) => ({ ...h, prev: toHex(h.prev), prevBatch: toHex(h.prevBatch) });
    assert.equal(hex(j.head()), hex(head));
    const st = j.stats();
    assert.is(st.lastSeq, 60);
    assert.is(st.lastBatchSeq, 2);
    assert.equal(st.committedAbove, [2]);
    assert.equal((await collect(j.unreceiptedBatches())).map((b) => b.batchSeq), [1]);
    assert.equal((await collect(j.unbatchedRecords())).map((r) => r.seq), Array.from({ length: 10 }, (_, i) => 51 + i));
    const all = await collect(j.records(1));
    assert.equal(all.map((r) => toHex(r.bytes)), recs.map(toHex));
    // and the chain continues after the reopen
    const d2 = new DeviceStream(DEV, j.head());
    assert.equal(await j.appendRecord(d2.record()), { seq: 61 });
  });

  t('compaction: only what commit marks cover is deleted; everything else stays readable', async () => {
    await open({ maxBytes: 8 << 20 });
    const d = new DeviceStream(DEV, j.head());
    const recs = d.records(2400); // ~1.3 MB: several 256 KiB segments for FileJournal
    for (let i = 0; i < recs.length; i += 200) await Promise.all(recs.slice(i, i + 200).map((r) => j.appendRecord(r)));
    for (let b = 0; b < 20; b++) await j.appendBatch(d.batch(recs.slice(b * 100, b * 100 + 100)));
    await j.compact();
    assert.is(j.stats().firstSeq, 1, 'nothing is deleted without commit marks');
    for (let b = 1; b <= 15; b++) await j.markCommitted(b, receiptFor(b));
    await j.compact();
    const st = j.stats();
    assert.ok(st.firstSeq > 1, `committed storage was freed (first seq now ${st.firstSeq})`);
    assert.ok(st.firstSeq <= st.committedThroughSeq + 1, 'no record without a commit mark was deleted');
    assert.is(st.committedThroughSeq, 1500);
    const left = await collect(j.records(1));
    assert.is(left[0].seq, st.firstSeq);
    assert.is(left.length, 2400 - st.firstSeq + 1);
    left.forEach((r) => assert.is(toHex(r.bytes), toHex(recs[r.seq - 1])));
    assert.equal((await collect(j.unreceiptedBatches())).map((b) => b.batchSeq), [16, 17, 18, 19, 20]);
    assert.is((await collect(j.unbatchedRecords())).length, 400);
    assert.is(await j.getRecord(1), undefined);
    await reopen();
    assert.is(j.stats().firstSeq, st.firstSeq, 'compaction is durable');
    assert.is(j.stats().committedThroughBatch, 15);
  });

  t('quota: high-water back-pressure first, then QUOTA refusals; the reserve takes batches and marks; compaction relieves', async () => {
    await open({ maxBytes: 1 << 20 });
    const events: JournalEvent[] = [];
    j.subscribe((e) => events.push(e));
    const d = new DeviceStream(DEV, j.head());
    const acked: Uint8Array[] = [];
    let refused: JournalError | undefined;
    let sawHigh = false;
    for (let i = 0; i < 5000 && !refused; i++) {
      const r = recordFor(DEV, d.nextSeq, d.prev);
      try {
        await j.appendRecord(r);
        d.record();
        acked.push(r);
        if (j.backpressure().state === 'high') sawHigh = true;
      } catch (e) {
        refused = e as JournalError;
      }
    }
    assert.ok(refused, 'the quota refuses records');
    assert.is(refused!.kind, 'QUOTA');
    assert.match(refused!.message, /quota/);
    assert.ok(sawHigh, 'back-pressure went high before the quota refused');
    assert.is(j.backpressure().state, 'full');
    assert.is(j.backpressure().reason, 'quota');
    const states = events.filter((e) => e.type === 'backpressure').map((e) => (e as { backpressure: { state: string } }).backpressure.state);
    assert.equal(states.slice(0, 2), ['high', 'full']);
    assert.is(j.metrics().alarm, 1);
    assert.is(j.metrics().backpressure_state, 2);
    assert.ok(j.metrics().appends_refused_total >= 1);
    assert.is(j.head().nextSeq, acked.length + 1, 'a refused record leaves the head alone');
    // The reserve: the batch and its commit mark still fit.
    const half = Math.floor(acked.length * 0.8);
    await j.appendBatch(d.batch(acked.slice(0, half)));
    await j.markCommitted(1, receiptFor(1));
    await j.compact();
    assert.is(j.backpressure().state, 'ok', `compaction freed space (${JSON.stringify(j.backpressure())})`);
    assert.equal(await j.appendRecord(d.record()), { seq: acked.length + 1 });
    const all = await collect(j.records(1));
    assert.is(all[all.length - 1].seq, acked.length + 1);
    assert.ok(all[0].seq <= half + 1);
  });

  t('caller hashes: appendRecord(bytes, hash) continues the chain like appendRecord(bytes); a malformed hash is refused', async () => {
    await open();
    const d = new DeviceStream(DEV, j.head());
    const recs = d.records(200);
    await Promise.all(recs.map((r) => j.appendRecord(r, sha256(r))));
    assert.is(j.head().nextSeq, 201);
    assert.is(toHex(j.head().prev), toHex(sha256(recs[199])));
    await j.appendRecord(d.record()); // and without one, after
    const next = recordFor(DEV, 202, d.prev);
    await rejects(j.appendRecord(next, new Uint8Array(31)), 'TYPED', /record\.hash/);
    await rejects(j.appendRecord(next, 'x' as unknown as Uint8Array), 'TYPED', /record\.hash/);
    assert.is(j.head().nextSeq, 202);
    await reopen();
    const back = await collect(j.records(1));
    assert.equal(back.map((r) => toHex(r.bytes)), [...recs, recordFor(DEV, 201, sha256(recs[199]))].map(toHex));
  });

  t('caller hashes (verifyHashes): a hash that is not SHA-256 of the bytes is refused with CHAIN record.hash, and nothing changes', async () => {
    await open({ verifyHashes: true });
    const d = new DeviceStream(DEV, j.head());
    const r1 = d.record();
    await j.appendRecord(r1, sha256(r1));
    const r2 = d.record();
    const wrong = sha256(r1); // another record's hash
    const e = await rejects(j.appendRecord(r2, wrong), 'CHAIN', /record\.hash/);
    assert.match(e.message, /record 2/);
    assert.is(j.head().nextSeq, 2);
    const recs = d.records(3);
    await rejects(j.appendUnit([r2, ...recs], stateFor(1), [sha256(r2), sha256(recs[0]), sha256(r2), sha256(recs[2])]), 'CHAIN', /unit\.hashes\[2\]/);
    assert.is(j.head().nextSeq, 2);
    assert.is(j.lastState(), undefined);
    assert.equal(await j.appendUnit([r2, ...recs], stateFor(1), [r2, ...recs].map((r) => sha256(r))), { firstSeq: 2, lastSeq: 5 });
  });

  t('units: records and state appended as one; the records read like any others; lastState is the last unit\'s', async () => {
    await open();
    assert.is(j.lastState(), undefined, 'no state before any unit');
    const d = new DeviceStream(DEV, j.head());
    const plain = d.records(10);
    await Promise.all(plain.map((r) => j.appendRecord(r)));
    const u1 = d.records(5);
    const u2 = d.records(3);
    // Concurrent units and records share group commits and stay in order.
    const tail = d.records(4);
    const [a1, a2, ...rest] = await Promise.all([j.appendUnit(u1, stateFor(1)), j.appendUnit(u2, stateFor(2, 900), u2.map((r) => sha256(r))), ...tail.map((r) => j.appendRecord(r))]);
    assert.equal(a1, { firstSeq: 11, lastSeq: 15 });
    assert.equal(a2, { firstSeq: 16, lastSeq: 18 });
    assert.equal(rest.map((x) => (x as { seq: number }).seq), [19, 20, 21, 22]);
    assert.is(toHex(j.lastState()!), toHex(stateFor(2, 900)));
    const all = [...plain, ...u1, ...u2, ...tail];
    assert.is(j.head().nextSeq, 23);
    assert.is(toHex(j.head().prev), toHex(sha256(all[21])));
    // Readers skip state entries: records, unbatched records, lookups, batches.
    assert.equal((await collect(j.records(1))).map((r) => toHex(r.bytes)), all.map(toHex));
    assert.equal((await collect(j.records(14, 17))).map((r) => r.seq), [14, 15, 16, 17]);
    assert.is(toHex((await j.getRecord(18))!), toHex(u2[2]));
    const b1 = d.batch(all.slice(0, 16));
    assert.equal(await j.appendBatch(b1), { batchSeq: 1, firstSeq: 1, count: 16 });
    assert.equal((await collect(j.unbatchedRecords())).map((r) => r.seq), [17, 18, 19, 20, 21, 22]);
    assert.equal((await collect(j.unreceiptedBatches())).map((b) => toHex(b.sign1)), [toHex(b1)]);
    const m = j.metrics();
    assert.is(m.units_appended_total, 2);
    assert.ok(m.state_entries_total >= 2);
    assert.ok(m.state_bytes_total >= stateFor(1).length + 900);
    assert.is(m.last_state_bytes, 900);
    assert.is(m.records_appended_total, 22);
    assert.is(m.backlog_records, 22);
    // lastState is a copy.
    j.lastState()!.fill(0);
    assert.is(toHex(j.lastState()!), toHex(stateFor(2, 900)));
  });

  t('units: a state-only unit; units of records only after it; the state survives reopen', async () => {
    await open();
    const d = new DeviceStream(DEV, j.head());
    await Promise.all(d.records(3).map((r) => j.appendRecord(r)));
    assert.equal(await j.appendUnit([], stateFor(7)), { firstSeq: 4, lastSeq: 3 });
    assert.is(toHex(j.lastState()!), toHex(stateFor(7)));
    assert.is(j.head().nextSeq, 4, 'a state-only unit takes no seq');
    assert.is(j.stats().lastSeq, 3);
    await j.appendUnit(d.records(2), stateFor(8, 3));
    await j.appendRecord(d.record()); // a plain record after a unit does not touch the state
    await reopen();
    assert.is(toHex(j.lastState()!), toHex(stateFor(8, 3)), 'the state round-trips through close and reopen');
    assert.is(j.stats().lastSeq, 6);
    assert.equal((await collect(j.records(1))).map((r) => r.seq), [1, 2, 3, 4, 5, 6]);
    const d2 = new DeviceStream(DEV, j.head());
    assert.equal(await j.appendUnit([d2.record()], stateFor(9)), { firstSeq: 7, lastSeq: 7 });
    assert.is(toHex(j.lastState()!), toHex(stateFor(9)));
  });

  t('units: refused whole — a bad record anywhere, a bad state, a unit too large — and nothing of it stays', async () => {
    await open();
    const d = new DeviceStream(DEV, j.head());
    await j.appendUnit(d.records(2), stateFor(1));
    const head = j.head();
    const recs = d.records(4);
    const forked = [recs[0], recs[1], recordFor(DEV, 5, new Uint8Array(32).fill(3)), recs[3]];
    const e = await rejects(j.appendUnit(forked, stateFor(2)), 'CHAIN', /record\.prev/);
    assert.match(e.message, /unit\.records\[2\]/);
    await rejects(j.appendUnit([recs[1]], stateFor(2)), 'CHAIN', /record\.seq/);
    await rejects(j.appendUnit([recs[0], new Uint8Array([1, 2, 3])], stateFor(2)), 'TYPED', /unit\.records\[1\]/);
    await rejects(j.appendUnit(recs, new Uint8Array(0)), 'TYPED', /unit\.state/);
    await rejects(j.appendUnit(recs, 'state' as unknown as Uint8Array), 'TYPED', /unit\.state/);
    await rejects(j.appendUnit(recs, new Uint8Array(MAX_STATE_BYTES + 1)), 'TOO_LARGE', /unit\.state/);
    await rejects(j.appendUnit(recs, stateFor(2), recs.slice(1).map((r) => sha256(r))), 'TYPED', /unit\.hashes/);
    // Larger than one atomic unit may be: refused naming the limit.
    const big: Uint8Array[] = [];
    const more = new DeviceStream(DEV, j.head());
    let size = 9 + MAX_STATE_BYTES;
    while (size <= j.maxUnitBytes) {
      const r = more.record();
      big.push(r);
      size += 9 + r.length;
    }
    const tl = await rejects(j.appendUnit(big, new Uint8Array(MAX_STATE_BYTES)), 'TOO_LARGE', /^unit$/);
    assert.match(tl.message, new RegExp(String(j.maxUnitBytes)));
    // Nothing of any refused unit is there.
    assert.equal({ ...j.head(), prev: toHex(j.head().prev), prevBatch: toHex(j.head().prevBatch) }, { ...head, prev: toHex(head.prev), prevBatch: toHex(head.prevBatch) });
    assert.is(toHex(j.lastState()!), toHex(stateFor(1)));
    assert.is(j.stats().lastSeq, 2);
    // The largest state fits on its own; the stream continues.
    await j.appendUnit([], new Uint8Array(MAX_STATE_BYTES).fill(5));
    assert.equal(await j.appendUnit(recs, stateFor(3)), { firstSeq: 3, lastSeq: 6 });
    await reopen();
    assert.is(toHex(j.lastState()!), toHex(stateFor(3)));
    assert.equal((await collect(j.records(1))).map((r) => r.seq), [1, 2, 3, 4, 5, 6]);
  });

  t('units and the quota: refused like records (state-only ones too) with QUOTA; the reserve still takes batches', async () => {
    await open({ maxBytes: 1 << 20 });
    const d = new DeviceStream(DEV, j.head());
    const acked: Uint8Array[] = [];
    let refused: JournalError | undefined;
    for (let i = 0; i < 2000 && !refused; i++) {
      const recs = [recordFor(DEV, d.nextSeq, d.prev)];
      try {
        await j.appendUnit(recs, stateFor(i, 200));
        d.record();
        acked.push(recs[0]);
      } catch (e) {
        refused = e as JournalError;
      }
    }
    assert.is(refused?.kind, 'QUOTA', `units stop at the quota (${refused?.message})`);
    // Every state written takes its room, so state-only units reach the quota too.
    let stateOnly: JournalError | undefined;
    for (let i = 0; i < 5000 && !stateOnly; i++) await j.appendUnit([], stateFor(acked.length - 1, 200)).catch((e) => (stateOnly = e));
    assert.is(stateOnly?.kind, 'QUOTA', 'state-only units count against the record limit');
    assert.is(j.backpressure().state, 'full');
    assert.is(j.head().nextSeq, acked.length + 1);
    assert.is(toHex(j.lastState()!), toHex(stateFor(acked.length - 1, 200)));
    await j.appendBatch(d.batch(acked.slice(0, Math.floor(acked.length * 0.8))));
    await j.markCommitted(1, receiptFor(1));
    await j.compact();
    assert.is(j.backpressure().state, 'ok');
    assert.is(toHex(j.lastState()!), toHex(stateFor(acked.length - 1, 200)), 'compaction keeps the latest state');
    await j.appendUnit([d.record()], stateFor(5000));
    await reopen();
    assert.is(toHex(j.lastState()!), toHex(stateFor(5000)));
  });

  t('events and metrics: recovered at open, unsubscribe works, metrics are numbers', async () => {
    store = await factory({});
    j = store.make();
    const seen: string[] = [];
    const off = j.subscribe((e) => seen.push(e.type));
    await j.open();
    assert.ok(seen.includes('recovered'));
    off();
    const d = new DeviceStream(DEV, j.head());
    await j.appendRecord(d.record());
    assert.is(seen.length, seen.filter((x) => x !== 'never').length);
    const n = seen.length;
    await j.appendRecord(d.record());
    assert.is(seen.length, n, 'no events after unsubscribe');
    for (const [k, v] of Object.entries(j.metrics())) assert.ok(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${k} = ${v}`);
    assert.ok(j.metrics().backlog_age_seconds >= 0);
  });

  t.run();
}
