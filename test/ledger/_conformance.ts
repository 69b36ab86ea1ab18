// The storage conformance suite: one set of checks, run against the in-memory
// store (store-memory.test.ts) and the etcd store on a real 3-member cluster
// (store-etcd.test.ts). It covers the Kv contract the ledger relies on
// (revisions, compare-and-set, atomicity, limits, range deletes, elections)
// and the LedgerStore on top (pending, blocks, refs, data chunks, registry,
// evidence, archive records), then runs two sequencers WITHOUT the election
// against one store and checks the log never forks.
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { sha256, toHex } from '../../protocol/bytes.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { LedgerError } from '../../ledger/errors.js';
import { prefixEnd, type Kv } from '../../ledger/store/kv.js';
import { LedgerStore, type Pending } from '../../ledger/store/store.js';
import type { HeadState, PendingMarker } from '../../ledger/store/types.js';
import { Registry, signEnrollment } from '../../ledger/registry.js';
import { LogView } from '../../ledger/log/log.js';
import { RecordingPublisher } from '../../ledger/publisher.js';
import { LedgerMetrics } from '../../ledger/metrics.js';
import { silentLogger } from '../../ledger/logger.js';
import { ActivityTracker, Ingest } from '../../ledger/ingest.js';
import { Sequencer } from '../../ledger/sequencer.js';
import { LedgerReader } from '../../ledger/query.js';
import { auditLog } from '../../ledger/audit.js';
import { verifyReceipt } from '../../protocol/receipt.js';
import { ReceiptStatus } from '../../protocol/receipt-msg.js';
import { leafHash } from '../../protocol/merkle.js';
import { decodeRecord } from '../../protocol/record.js';
import { DeviceChain, batchMessage, type SimBatch } from '../helpers/device-sim.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, LedgerError);
    assert.is((e as LedgerError).code, code, (e as Error).message);
    if (re) assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

function marker(deviceId: string, batchSeq: number, entry: Uint8Array): PendingMarker {
  return { deviceId, batchSeq, entry, prev: new Uint8Array(32), firstSeq: 1, count: 1, firstPrev: new Uint8Array(32), lastRecordHash: new Uint8Array(32), knownSize: 0, received: Date.now(), node: 'n', bytes: 0 };
}

function head(n: number): HeadState {
  return { height: n, size: n, root: new Uint8Array(32).fill(n), range: [], time: Date.now(), sth: enc('sth'), sequencer: 'x', nonce: new Uint8Array(randomBytes(16)) };
}

/** Registers the conformance tests on `suite`; `open` gives a fresh, empty Kv with the given limits and a key space of its own. */
export function conformance(suite: Test, open: (limits: { maxRequestBytes: number; maxTxnOps: number }) => Promise<Kv>): void {
  const kvs: Kv[] = [];
  const fresh = async (limits = { maxRequestBytes: 1_500_000, maxTxnOps: 128 }) => {
    const kv = await open(limits);
    kvs.push(kv);
    return kv;
  };
  suite.after(async () => {
    for (const kv of kvs) await kv.close().catch(() => undefined);
  });

  suite('kv: missing keys have revision 0; puts raise the revision; mod and create revisions', async () => {
    const kv = await fresh();
    assert.is(await kv.get('a'), null);
    const r0 = await kv.txn([{ key: 'a', target: 'create', value: 0 }], [{ op: 'put', key: 'a', value: enc('1') }]);
    assert.ok(r0.succeeded);
    const a1 = (await kv.get('a'))!;
    assert.is(dec(a1.value), '1');
    assert.is(a1.modRev, a1.createRev);
    const r1 = await kv.txn([{ key: 'a', target: 'mod', value: a1.modRev }], [{ op: 'put', key: 'a', value: enc('2') }]);
    assert.ok(r1.succeeded);
    assert.ok(r1.revision > r0.revision);
    const a2 = (await kv.get('a'))!;
    assert.is(a2.createRev, a1.createRev);
    assert.ok(a2.modRev > a1.modRev);
    // A stale compare fails and the failure branch runs instead.
    const r2 = await kv.txn([{ key: 'a', target: 'mod', value: a1.modRev }], [{ op: 'put', key: 'a', value: enc('3') }], [{ op: 'get', key: 'a' }]);
    assert.not.ok(r2.succeeded);
    assert.is(dec(r2.gets[0]!.value), '2');
    assert.is(dec((await kv.get('a'))!.value), '2');
  });

  suite('kv: a transaction is all or nothing, and compares every key', async () => {
    const kv = await fresh();
    await kv.txn([], [{ op: 'put', key: 'x/1', value: enc('a') }]);
    const x1 = (await kv.get('x/1'))!;
    const r = await kv.txn(
      [{ key: 'x/1', target: 'mod', value: x1.modRev }, { key: 'x/2', target: 'create', value: 5 }],
      [{ op: 'put', key: 'x/3', value: enc('c') }, { op: 'delete', key: 'x/1' }],
    );
    assert.not.ok(r.succeeded);
    assert.is(await kv.get('x/3'), null);
    assert.ok(await kv.get('x/1'));
  });

  suite('kv: range in key order with limit and prefix end; range delete', async () => {
    const kv = await fresh();
    const keys = ['p/b', 'p/a', 'p/c/1', 'p/c/2', 'q/a', 'p0'];
    await kv.txn([], keys.map((k) => ({ op: 'put' as const, key: k, value: enc(k) })));
    const all = await kv.range('p/', prefixEnd('p/'));
    assert.equal(all.map((e) => e.key), ['p/a', 'p/b', 'p/c/1', 'p/c/2']);
    assert.equal((await kv.range('p/', prefixEnd('p/'), { limit: 2 })).map((e) => e.key), ['p/a', 'p/b']);
    const ko = await kv.range('p/c/', prefixEnd('p/c/'), { keysOnly: true });
    assert.equal(ko.map((e) => [e.key, e.value.length]), [['p/c/1', 0], ['p/c/2', 0]]);
    await kv.txn([], [{ op: 'delete', key: 'p/c/', end: prefixEnd('p/c/') }]);
    assert.equal((await kv.range('p/', prefixEnd('p/'))).map((e) => e.key), ['p/a', 'p/b']);
    assert.ok(await kv.get('p0'));
  });

  suite('kv: limits — too many ops, too large, the same key twice', async () => {
    const kv = await fresh({ maxRequestBytes: 200_000, maxTxnOps: 16 });
    await rejectsWith(kv.txn([], Array.from({ length: 17 }, (_, i) => ({ op: 'put' as const, key: `k/${i}`, value: enc('v') }))), 'STORE_LIMIT', /operations/);
    await rejectsWith(kv.txn([], [{ op: 'put', key: 'big', value: new Uint8Array(250_000) }]), 'STORE_LIMIT', /bytes/);
    await rejectsWith(kv.txn([], [{ op: 'put', key: 'd', value: enc('1') }, { op: 'put', key: 'd', value: enc('2') }]), 'STORE_LIMIT', /duplicate key/);
    await rejectsWith(kv.txn([], [{ op: 'put', key: 'e/1', value: enc('1') }, { op: 'delete', key: 'e/', end: prefixEnd('e/') }]), 'STORE_LIMIT', /duplicate key/);
    assert.is(await kv.get('d'), null);
    // At the limit it works.
    const r = await kv.txn([], Array.from({ length: 16 }, (_, i) => ({ op: 'put' as const, key: `k/${i}`, value: enc('v') })));
    assert.ok(r.succeeded);
  });

  suite('kv: election — one leader at a time; resigning hands over', async () => {
    const kv = await fresh();
    const a = kv.campaign('el', 'a', 2);
    const b = kv.campaign('el', 'b', 2);
    const won: string[] = [];
    a.on('elected', () => won.push('a'));
    b.on('elected', () => won.push('b'));
    const until = async (f: () => boolean, what: string) => {
      const end = Date.now() + 30_000;
      while (!f()) {
        if (Date.now() > end) assert.unreachable(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(() => won.length === 1, 'a leader');
    assert.is(won.length, 1);
    assert.is(await kv.leader('el'), won[0]);
    const [first, second] = won[0] === 'a' ? [a, b] : [b, a];
    await first.resign();
    await until(() => won.length === 2, 'the hand-over');
    assert.ok(second.elected);
    assert.not.ok(first.elected);
    await second.resign();
  });

  suite('store: first block commits against revision 0; a stale revision commits nothing', async () => {
    const s = new LedgerStore(await fresh());
    const { head: h0, rev } = await s.head();
    assert.is(h0, null);
    assert.is(rev, 0);
    const e = sha256(enc('batch 1'));
    assert.equal(await s.putPending(marker('d1', 1, e), { sign1: enc('s1'), records: [enc('r1')] }), { status: 'written' });
    const p = (await s.listPending())[0];
    const commit = (h: HeadState, pend: Pending[]) => ({
      head: h,
      block: { height: h.height, firstLeaf: h.size - 1, size: h.size, root: h.root, time: h.time, sth: h.sth, sequencer: 'x', batches: [] },
      devices: [{ deviceId: 'd1', batchSeq: 1, lastSeq: 1, lastEntry: e, lastRecordHash: e, lastLeaf: 0, height: 1, events: 1, time: 1 }],
      refs: [{ deviceId: 'd1', batchSeq: 1, entry: e, leafIndex: 0, height: h.height, firstSeq: 1, count: 1 }],
      tiles: [[0, 0, leafOf(e)] as [number, number, Uint8Array]],
      pending: pend.map((x) => ({ deviceId: x.deviceId, batchSeq: x.batchSeq, modRev: x.modRev })),
    });
    const c1 = await s.commitBlock(0, commit(head(1), [p]));
    assert.ok(c1.ok);
    assert.is((await s.listPending()).length, 0);
    assert.is((await s.device('d1'))!.batchSeq, 1);
    assert.equal(await s.ref('d1', 1).then((r) => r && toHex(r.entry)), toHex(e));
    // Another sequencer that read revision 0 loses and writes nothing.
    const c2 = await s.commitBlock(0, { ...commit(head(2), []), devices: [{ deviceId: 'd9', batchSeq: 7, lastSeq: 1, lastEntry: e, lastRecordHash: e, lastLeaf: 0, height: 2, events: 1, time: 1 }] });
    assert.not.ok(c2.ok);
    assert.is(await s.block(2), null);
    assert.is(await s.device('d9'), null);
    assert.is((await s.head()).head!.height, 1);
    // A commit whose pending marker changed (dropped meanwhile) fails as well.
    const e2 = sha256(enc('batch 2'));
    await s.putPending(marker('d1', 2, e2), { sign1: enc('s2'), records: [enc('r2')] });
    const p2 = (await s.listPending())[0];
    assert.ok(await s.dropPending(p2, true));
    const { rev: rev1 } = await s.head();
    const c3 = await s.commitBlock(rev1, commit(head(2), [p2]));
    assert.not.ok(c3.ok);
    assert.is(await s.block(2), null);
  });

  suite('store: pending — written, exists, conflict (fork), committed; drop with and without data', async () => {
    const s = new LedgerStore(await fresh());
    const a = sha256(enc('A'));
    const b = sha256(enc('B'));
    assert.equal(await s.putPending(marker('d', 5, a), { sign1: enc('A'), records: [enc('ra')] }), { status: 'written' });
    assert.equal(await s.putPending(marker('d', 5, a), { sign1: enc('A'), records: [enc('ra')] }), { status: 'exists' });
    const c = await s.putPending(marker('d', 5, b), { sign1: enc('B'), records: [enc('rb')] });
    assert.is(c.status, 'conflict');
    assert.is(c.status === 'conflict' && toHex(c.existing.entry), toHex(a));
    assert.equal((await s.batchData(a))!.records.map(dec), ['ra']);
    assert.is(await s.batchData(b), null);
    // Drop the marker only: the data stays (it may be the log's).
    const p = (await s.pending('d', 5))!;
    assert.ok(await s.dropPending(p, false));
    assert.ok(await s.hasBatchData(a));
    // Data present but no marker: "committed".
    assert.equal(await s.putPending(marker('d', 5, a), { sign1: enc('A'), records: [enc('ra')] }), { status: 'committed' });
    // A stale marker revision does not drop a newer marker.
    await s.deleteBatchData([a]);
    assert.equal(await s.putPending(marker('d', 5, a), { sign1: enc('A'), records: [enc('ra')] }), { status: 'written' });
    assert.not.ok(await s.dropPending(p, true));
    const p2 = (await s.pending('d', 5))!;
    assert.ok(await s.dropPending(p2, true));
    assert.is(await s.pending('d', 5), null);
    assert.is(await s.batchData(a), null);
  });

  suite('store: large batch data is chunked within the request limit and reads back exactly', async () => {
    const kv = await fresh({ maxRequestBytes: 80_000, maxTxnOps: 128 });
    const s = new LedgerStore(kv, { chunkBytes: 16 * 1024 });
    const records = Array.from({ length: 40 }, () => new Uint8Array(randomBytes(5000)));
    const e = sha256(enc('big'));
    assert.equal(await s.putPending(marker('d', 1, e), { sign1: enc('S'), records }), { status: 'written' });
    const back = (await s.batchData(e))!;
    assert.is(back.records.length, 40);
    assert.ok(back.records.every((r, i) => toHex(r) === toHex(records[i])));
    assert.ok((await kv.range('data/', prefixEnd('data/'))).length > 5, 'stored in several chunks');
    const p = (await s.pending('d', 1))!;
    assert.ok(await s.dropPending(p, true));
    assert.equal(await kv.range('data/', prefixEnd('data/')), []);
  });

  suite('store: registry claims, fork evidence, activity and archive segments round-trip', async () => {
    const s = new LedgerStore(await fresh());
    const kid = sha256(enc('k'));
    await s.putClaim({ kind: 'enroll', deviceId: 'd-1', kid, claim: enc('c1') });
    await s.putClaim({ kind: 'revoke', deviceId: 'd-1', kid, claim: enc('c2') });
    await s.putClaim({ kind: 'enroll', deviceId: 'd-10', kid, claim: enc('c3') });
    assert.equal((await s.claims('d-1')).map((c) => c.kind).sort(), ['enroll', 'revoke']);
    assert.is((await s.claims()).length, 3);
    await s.putEvidence({ deviceId: 'd-1', batchSeq: 3, kind: 'committed', sign1: enc('x'), entry: kid, otherEntry: kid, reason: 'r', detected: 1, node: 'n' });
    assert.is((await s.evidence('d-1'))[0].reason, 'r');
    assert.equal(await s.evidence('d-10'), []);
    await s.putActivity('d-1', { node: 'n1', lastSeen: 5, batches: 2, rejects: 1, lastReject: 'bad', lastRejectTime: 4 });
    await s.putActivity('d-1', { node: 'n2', lastSeen: 9, batches: 1, rejects: 0 });
    assert.is((await s.activity('d-1')).length, 2);
    const seg = { firstHeight: 1, lastHeight: 4, firstLeaf: 0, leafCount: 9, file: 'seg.isca', sha256: kid, bytes: 100, events: 50, created: 1, node: 'n' };
    assert.ok(await s.putSegment(seg));
    assert.not.ok(await s.putSegment(seg), 'a segment is recorded once');
    assert.equal((await s.segments()).map((x) => x.lastHeight), [4]);
  });

  suite('two sequencers without the election never fork the log', async () => {
    const kv = await fresh({ maxRequestBytes: 1_500_000, maxTxnOps: 128 });
    const store = new LedgerStore(kv);
    const op = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
    const nodeSigner = softwareSignerFromKey(ALG.ES256, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    const registry = new Registry(store, [op.publicKey], 'conf', 0);
    const pub = new RecordingPublisher();
    const metrics = [new LedgerMetrics(), new LedgerMetrics()];
    const mk = (i: number) => new Sequencer(new LedgerStore(kv), new LogView(store), nodeSigner, pub, metrics[i], silentLogger, { nodeId: `seq-${i}`, chainId: 'conf', election: false, gapTimeoutMs: 60_000 });
    const seqA = mk(0);
    const seqB = mk(1);
    const ingest = new Ingest(store, registry, new LogView(store), pub, new LedgerMetrics(), silentLogger, new ActivityTracker(store, 'i'), { nodeId: 'i', prefix: 'iscm/v1' });
    const devs = Array.from({ length: 4 }, (_, i) => new DeviceChain(`race-${i}`));
    for (const d of devs) await registry.submit(await signEnrollment(op, { deviceId: d.deviceId, key: d.signer.publicKey, notBefore: 0, issuedAt: Date.now() }));
    const sent: SimBatch[] = [];
    for (let round = 0; round < 12; round++) {
      for (const d of devs) {
        const b = await d.next(3);
        sent.push(b);
        const o = await ingest.handle(`iscm/v1/dev/${d.deviceId}/batch`, batchMessage(b));
        assert.is(o.kind, 'pending', JSON.stringify(o));
      }
      // Both sequencers run a round at the same time on the same head.
      await Promise.all([seqA.round(), seqB.round()]);
    }
    for (let i = 0; i < 5 && (await store.listPending()).length > 0; i++) await Promise.all([seqA.round(), seqB.round()]);
    const { head } = await store.head();
    assert.is(head!.size, sent.length, 'every batch committed exactly once');
    const conflicts = metrics[0].casConflicts.total() + metrics[1].casConflicts.total();
    assert.ok(conflicts > 0, 'the two sequencers really raced (at least one lost a compare-and-set)');
    assert.is(metrics[0].blocks.total() + metrics[1].blocks.total(), head!.height);
    // Every published committed receipt verifies against the one log.
    const committed = pub.receipts.filter((r) => r.msg.status === ReceiptStatus.COMMITTED);
    assert.is(committed.length, sent.length);
    for (const r of committed) {
      const b = sent.find((x) => x.batchSeq === r.msg.batchSeq && b2d(x) === r.deviceId)!;
      verifyReceipt(r.msg.receipt!, { leafEntry: b.entry, trusted: [{ key: nodeSigner.publicKey }], requireSignedSize: true });
    }
    const report = await auditLog(new LedgerReader(store, new LogView(store), registry), { trusted: [{ key: nodeSigner.publicKey }] });
    assert.ok(report.ok, report.errors.join('\n'));
    assert.is(report.leaves, sent.length);
  });
}

function leafOf(e: Uint8Array): Uint8Array {
  return leafHash(e);
}

/** The device a sim batch belongs to (from its first record). */
function b2d(b: SimBatch): string {
  return decodeRecord(b.records[0]).deviceId;
}
