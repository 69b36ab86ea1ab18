// Ingest and sequencer on the in-memory store, every outcome of §4.4 and
// every rejection class of §5: bad input of each kind gets the right status
// with a reason, the ledger stays up (handle never throws), and nothing is
// committed wrongly (the audit at the end recomputes the whole log).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { sha256, toHex, ZERO32 } from '../../protocol/bytes.js';
import { decode, encode, Tag } from '../../protocol/cbor.js';
import { ALG, curveOrder } from '../../protocol/cose/algorithms.js';
import { signBatch } from '../../protocol/batch-sign.js';
import { encodeBatchMessage } from '../../protocol/batch.js';
import { merkleRoot } from '../../protocol/merkle.js';
import { ReceiptStatus } from '../../protocol/receipt-msg.js';
import { receiptProofs, verifyReceipt } from '../../protocol/receipt.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { MemoryKv } from '../../ledger/store/memory-kv.js';
import { LedgerStore } from '../../ledger/store/store.js';
import { Registry, signEnrollment, signRevocation } from '../../ledger/registry.js';
import { LogView } from '../../ledger/log/log.js';
import { RecordingPublisher } from '../../ledger/publisher.js';
import { LedgerMetrics } from '../../ledger/metrics.js';
import { silentLogger } from '../../ledger/logger.js';
import { ActivityTracker, Ingest, type Outcome } from '../../ledger/ingest.js';
import { Sequencer } from '../../ledger/sequencer.js';
import { LedgerReader } from '../../ledger/query.js';
import { auditLog } from '../../ledger/audit.js';
import { DeviceChain, batchMessage, type SimBatch } from '../helpers/device-sim.js';

const op = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
const nodeKey = softwareSignerFromKey(ALG.ES256, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
const trusted = [{ key: nodeKey.publicKey }];

function harness(o: { maxMessageBytes?: number; maxPendingPerDevice?: number; gapTimeoutMs?: number; pendingTtlMs?: number; headCacheMs?: number } = {}) {
  const store = new LedgerStore(new MemoryKv({ maxTxnOps: 128 }));
  const registry = new Registry(store, [op.publicKey], 'iscm-test', 0);
  const log = new LogView(store);
  const pub = new RecordingPublisher();
  const metrics = new LedgerMetrics();
  const ingest = new Ingest(store, registry, log, pub, metrics, silentLogger, new ActivityTracker(store, 'n1'), {
    nodeId: 'n1',
    prefix: 'iscm/v1',
    maxMessageBytes: o.maxMessageBytes,
    maxPendingPerDevice: o.maxPendingPerDevice ?? 8,
    headCacheMs: o.headCacheMs ?? 0,
  });
  const seq = new Sequencer(store, log, nodeKey, pub, metrics, silentLogger, { nodeId: 'n1', chainId: 'iscm-test', election: false, gapTimeoutMs: o.gapTimeoutMs ?? 60_000, pendingTtlMs: o.pendingTtlMs ?? 600_000 });
  const reader = new LedgerReader(store, log, registry);
  const send = (deviceId: string, payload: Uint8Array, topicDevice = deviceId): Promise<Outcome> => ingest.handle(`iscm/v1/dev/${topicDevice}/batch`, payload);
  const enroll = async (d: DeviceChain, notAfter?: number) =>
    registry.submit(await signEnrollment(op, { deviceId: d.deviceId, key: d.signer.publicKey, notBefore: Date.now() - 1000, notAfter, issuedAt: Date.now(), chainId: 'iscm-test' }));
  const last = (deviceId: string) => pub.receipts.filter((r) => r.deviceId === deviceId).at(-1)?.msg;
  const audit = async () => {
    const r = await auditLog(reader, { trusted });
    assert.ok(r.ok, r.errors.join('\n'));
    return r;
  };
  return { store, registry, log, pub, metrics, ingest, seq, reader, send, enroll, last, audit };
}

function expectRejected(o: Outcome, cls: string, re: RegExp): void {
  assert.is(o.kind, 'rejected', JSON.stringify(o));
  if (o.kind !== 'rejected') return;
  assert.is(o.cls, cls, o.reason);
  assert.match(o.reason, re);
}

/** Re-encodes a COSE_Sign1 with another signature. */
function withSignature(sign1: Uint8Array, f: (sig: Uint8Array) => Uint8Array): Uint8Array {
  const t = decode(sign1, { tags: [18] }) as Tag;
  const a = t.value as unknown[];
  return encode(new Tag(18, [a[0], a[1], a[2], f(a[3] as Uint8Array)]));
}

test('valid batches: pending, then committed; receipts verify; status and activity', async () => {
  const h = harness();
  const d = new DeviceChain('ok-1');
  await h.enroll(d);
  const batches: SimBatch[] = [];
  for (let i = 0; i < 3; i++) {
    const b = await d.next(10);
    batches.push(b);
    assert.equal(await h.send(d.deviceId, batchMessage(b)), { kind: 'pending', deviceId: 'ok-1', batchSeq: b.batchSeq });
  }
  const r = await h.seq.round();
  assert.is(r.committed, 3);
  const receipts = h.pub.receipts.filter((x) => x.deviceId === 'ok-1');
  assert.equal(receipts.map((x) => [x.msg.batchSeq, x.msg.status]), [[1, 0], [2, 0], [3, 0]]);
  receipts.forEach((x, i) => verifyReceipt(x.msg.receipt!, { leafEntry: batches[i].entry, trusted, requireSignedSize: true }));
  assert.is(h.pub.heads.length, 1);
  await h.ingest.activity.flush();
  const st = await h.reader.deviceStatus('ok-1');
  assert.is(st.head!.batchSeq, 3);
  assert.is(st.head!.lastSeq, 30);
  assert.is(st.batchesSeen, 3);
  await h.audit();
});

test('malformed CBOR, oversize, a topic naming no device, the wrong device topic: rejected or ignored, ledger up', async () => {
  const h = harness({ maxMessageBytes: 64 * 1024 });
  const d = new DeviceChain('bad-1');
  await h.enroll(d);
  expectRejected(await h.send('bad-1', new Uint8Array([0x83, 0x41])), 'malformed', /malformed batch message/);
  expectRejected(await h.send('bad-1', new Uint8Array([0xff, 0x00, 0x13])), 'malformed', /malformed/);
  expectRejected(await h.send('bad-1', encode([new Uint8Array(10), [new Uint8Array(3)], 0])), 'malformed', /COSE_Sign1/);
  const big = await d.next(200);
  d.batchSeq--; // (not sent; reuse the chain)
  expectRejected(await h.send('bad-1', batchMessage(big)), 'oversize', /exceeds the limit of 65536/);
  assert.equal(await h.ingest.handle('iscm/v1/dev/BAD ID/batch', new Uint8Array(3)), { kind: 'ignored', reason: 'topic names no valid device' });
  assert.equal((await h.ingest.handle('other/topic', new Uint8Array(3))).kind, 'ignored');
  const other = new DeviceChain('bad-2');
  await h.enroll(other);
  const ob = await other.next(2);
  expectRejected(await h.send('bad-2', batchMessage(ob), 'bad-1'), 'topic', /arrived on the topic of device bad-1/);
  assert.is(h.last('bad-1')!.status, ReceiptStatus.REJECTED);
  assert.match(h.last('bad-1')!.reason!, /topic/);
  await h.ingest.activity.flush();
  assert.ok((await h.reader.deviceStatus('bad-1')).rejects >= 5);
  assert.is((await h.store.head()).head, null, 'nothing committed');
});

test('unknown device, unknown key, revoked key, expired enrollment', async () => {
  const h = harness();
  const stranger = new DeviceChain('stranger');
  expectRejected(await h.send('stranger', batchMessage(await stranger.next(2))), 'unknown_device', /not enrolled/);
  const d = new DeviceChain('rev-1');
  await h.enroll(d);
  const impostor = new DeviceChain('rev-1'); // same id, another key
  expectRejected(await h.send('rev-1', batchMessage(await impostor.next(2))), 'key', /no enrolled key with kid/);
  const b1 = await d.next(2);
  assert.is((await h.send('rev-1', batchMessage(b1))).kind, 'pending');
  await h.registry.submit(await signRevocation(op, { deviceId: 'rev-1', kid: d.signer.kid, issuedAt: Date.now(), reason: 'token lost', chainId: 'iscm-test' }));
  expectRejected(await h.send('rev-1', batchMessage(await d.next(2))), 'revoked', /revoked \(token lost\)/);
  const e = new DeviceChain('exp-1');
  await h.enroll(e, Date.now() - 1);
  expectRejected(await h.send('exp-1', batchMessage(await e.next(2))), 'key', /expired/);
});

test('bad signature, high-S, wrong record count, undecodable record, wrong seq, broken record chain, wrong root', async () => {
  const h = harness();
  const d = new DeviceChain('sig-1', ALG.ES256);
  await h.enroll(d);
  const b = await d.next(4);
  const flipped = withSignature(b.sign1, (s) => {
    const x = Uint8Array.from(s);
    x[5] ^= 1;
    return x;
  });
  expectRejected(await h.send('sig-1', encodeBatchMessage({ sign1: flipped, records: b.records, knownSize: 0 })), 'signature', /signature/);
  const n = curveOrder('P-256');
  const highS = withSignature(b.sign1, (s) => {
    const sv = BigInt('0x' + toHex(s.subarray(32)));
    const out = Uint8Array.from(s);
    out.set(Buffer.from((n - sv).toString(16).padStart(64, '0'), 'hex'), 32);
    return out;
  });
  expectRejected(await h.send('sig-1', encodeBatchMessage({ sign1: highS, records: b.records, knownSize: 0 })), 'high_s', /high-S|low-S/i);
  expectRejected(await h.send('sig-1', encodeBatchMessage({ sign1: b.sign1, records: b.records.slice(0, 3), knownSize: 0 })), 'records', /says 4 records, the message carries 3/);
  // Records signed as they are, but wrong inside.
  const signed = async (records: Uint8Array[], firstSeq = 1) =>
    encodeBatchMessage({
      sign1: await signBatch(d.signer, { deviceId: 'sig-1', batchSeq: 1, firstSeq, count: records.length, root: merkleRoot(records), prev: ZERO32, time: Date.now() }),
      records,
      knownSize: 0,
    });
  const garbage = encode(new Map<number, unknown>([[1, 'sig-1'], [2, 1]]));
  expectRejected(await h.send('sig-1', await signed([garbage])), 'records', /record 0 \(seq 1\)/);
  expectRejected(await h.send('sig-1', await signed(b.records, 2)), 'records', /has seq 1, expected 2/);
  const swapped = [b.records[0], b.records[2], b.records[1], b.records[3]];
  expectRejected(await h.send('sig-1', await signed(swapped)), 'records', /seq 3, expected 2/);
  const other = new DeviceChain('sig-1', ALG.ES256); // a second chain: record 2 does not link to record 1 of the first
  const o = other.records(2).bytes;
  expectRejected(await h.send('sig-1', await signed([b.records[0], o[1]])), 'records', /does not link/);
  const badRoot = encodeBatchMessage({
    sign1: await signBatch(d.signer, { deviceId: 'sig-1', batchSeq: 1, firstSeq: 1, count: 4, root: new Uint8Array(32).fill(9), prev: ZERO32, time: 1 }),
    records: b.records,
    knownSize: 0,
  });
  expectRejected(await h.send('sig-1', badRoot), 'root', /not the signed root/);
  // After all that, the real batch still goes in.
  assert.is((await h.send('sig-1', batchMessage(b))).kind, 'pending');
  assert.is((await h.seq.round()).committed, 1);
  await h.audit();
});

test('replay of a committed batch: duplicate, the receipt again (consistent with the device known size)', async () => {
  const h = harness();
  const d = new DeviceChain('dup-1');
  await h.enroll(d);
  const b1 = await d.next(5);
  await h.send('dup-1', batchMessage(b1));
  await h.seq.round();
  const others = new DeviceChain('dup-2');
  await h.enroll(others);
  for (let i = 0; i < 4; i++) await h.send('dup-2', batchMessage(await others.next(3)));
  await h.seq.round();
  const first = h.last('dup-1')!;
  const v1 = verifyReceipt(first.receipt!, { leafEntry: b1.entry, trusted });
  // The device lost the receipt and resends, knowing the head of size 1.
  assert.equal(await h.send('dup-1', batchMessage(b1, v1.treeSize!)), { kind: 'duplicate', deviceId: 'dup-1', batchSeq: 1 });
  const again = h.last('dup-1')!;
  assert.is(again.status, ReceiptStatus.DUPLICATE);
  const v2 = verifyReceipt(again.receipt!, { leafEntry: b1.entry, trusted, knownHead: { size: v1.treeSize!, root: v1.root }, requireSignedSize: true });
  assert.is(v2.treeSize, 5);
  assert.is(v2.consistentFrom, 1);
  // A replay while still pending: nothing new, no second leaf.
  const b2 = await d.next(2);
  await h.send('dup-1', batchMessage(b2));
  assert.equal((await h.send('dup-1', batchMessage(b2))).kind, 'already-pending');
  await h.seq.round();
  assert.is((await h.store.head()).head!.size, 6);
  await h.audit();
});

test('a different batch for a committed batch_seq, or for a pending one: fork evidence, alarm, rejected', async () => {
  const h = harness();
  const d = new DeviceChain('fork-1');
  await h.enroll(d);
  const b1 = await d.next(3);
  await h.send('fork-1', batchMessage(b1));
  await h.seq.round();
  // The device (or its key) signs another batch 1.
  const twin = new DeviceChain('fork-1', ALG.ES256);
  (twin as { signer: unknown }).signer = d.signer;
  const evil = await twin.next(3);
  assert.not.equal(toHex(evil.entry), toHex(b1.entry));
  const o = await h.send('fork-1', batchMessage(evil));
  expectRejected(o, 'fork', /conflicts with committed batch 1/);
  // Pending conflict: two versions of batch 2, both continuing the committed batch 1.
  Object.assign(twin, { batchSeq: d.batchSeq, seq: d.seq, prevBatch: d.prevBatch, prevRecord: d.prevRecord });
  const b2 = await d.next(2);
  await h.send('fork-1', batchMessage(b2));
  const b2evil = await twin.next(2);
  expectRejected(await h.send('fork-1', batchMessage(b2evil)), 'fork', /conflicts with pending batch 2/);
  const ev = await h.store.evidence('fork-1');
  assert.equal(ev.map((e) => e.kind).sort(), ['committed', 'pending']);
  assert.ok(ev.every((e) => e.sign1.length > 0));
  assert.is(h.metrics.forkAlarm.get(), 1);
  assert.match(h.metrics.render(), /iscm_ledger_fork_evidence_total\{kind="committed"\} 1/);
  await h.seq.round();
  assert.is((await h.store.head()).head!.size, 2, 'only the real batches are in the log');
  await h.audit();
});

test('a batch that does not continue the chain: rejected with evidence (at ingest, and at the sequencer)', async () => {
  const h = harness();
  const d = new DeviceChain('chain-1');
  await h.enroll(d);
  await h.send('chain-1', batchMessage(await d.next(2)));
  await h.seq.round();
  // Batch 2 whose prev is not batch 1's hash: checked at ingest (batch 1 is committed).
  const saved = d.prevBatch;
  d.prevBatch = sha256(new Uint8Array([1]));
  const bad = await d.next(2);
  expectRejected(await h.send('chain-1', batchMessage(bad)), 'chain', /prev .* is not the hash of committed batch 1/);
  // Re-sign batch 2 properly, then a batch 3 that breaks the record chain, sent while 2 is only pending.
  d.batchSeq = 1;
  d.seq = 2;
  d.prevBatch = saved;
  d.prevRecord = sha256(new Uint8Array()); // wrong
  // (d.next recomputes from d.prevRecord: records 3..4 chain among themselves but not to record 2.)
  d.prevRecord = (await h.store.device('chain-1'))!.lastRecordHash;
  const good2 = await d.next(2);
  d.prevRecord = sha256(new Uint8Array([2]));
  const bad3 = await d.next(2);
  assert.is((await h.send('chain-1', batchMessage(good2))).kind, 'pending');
  assert.is((await h.send('chain-1', batchMessage(bad3))).kind, 'pending', 'batch 3 cannot be checked against batch 2 before 2 commits');
  const r = await h.seq.round();
  assert.is(r.committed, 1);
  assert.is(r.rejected, 1);
  const m = h.last('chain-1')!;
  assert.is(m.status, ReceiptStatus.REJECTED);
  assert.match(m.reason!, /record seq 5 does not link to committed record seq 4/);
  assert.is((await h.store.evidence('chain-1')).length, 2);
  assert.is((await h.store.listPending()).length, 0);
  await h.audit();
});

test('reordered batches commit in order; far ahead is a gap; a gap that persists is reported, then dropped', async () => {
  const h = harness({ maxPendingPerDevice: 8, gapTimeoutMs: 150, pendingTtlMs: 1500 });
  const d = new DeviceChain('ord-1');
  await h.enroll(d);
  const bs: SimBatch[] = [];
  for (let i = 0; i < 12; i++) bs.push(await d.next(2));
  // 3, 2, 1 arrive in that order.
  for (const i of [2, 1, 0]) assert.is((await h.send('ord-1', batchMessage(bs[i]))).kind, 'pending');
  assert.is((await h.seq.round()).committed, 3);
  assert.equal(h.pub.receipts.filter((r) => r.msg.status === 0).map((r) => r.msg.batchSeq), [1, 2, 3]);
  // Batch 12 is beyond the pending window (3 + 8): gap, resend from 4.
  assert.equal(await h.send('ord-1', batchMessage(bs[11])), { kind: 'gap', deviceId: 'ord-1', batchSeq: 12, nextSeq: 4 });
  assert.equal(h.last('ord-1'), { batchSeq: 12, status: ReceiptStatus.GAP, nextSeq: 4 });
  // Batch 5 without 4: waits, then the sequencer reports the gap.
  assert.is((await h.send('ord-1', batchMessage(bs[4]))).kind, 'pending');
  assert.is((await h.seq.round()).committed, 0);
  await new Promise((r) => setTimeout(r, 300));
  const g = await h.seq.round();
  assert.is(g.gaps, 1);
  assert.equal(h.last('ord-1'), { batchSeq: 5, status: ReceiptStatus.GAP, nextSeq: 4 });
  // The device resends 4 and 5 is committed too.
  await h.send('ord-1', batchMessage(bs[3]));
  assert.is((await h.seq.round()).committed, 2);
  // A lone batch 7 (6 never comes) is dropped after pending_ttl; the device keeps it and resends.
  await h.send('ord-1', batchMessage(bs[6]));
  await new Promise((r) => setTimeout(r, 1700));
  const x = await h.seq.round();
  assert.is(x.dropped, 1);
  assert.is((await h.store.listPending()).length, 0);
  assert.is(await h.store.batchData(bs[6].entry), null);
  await h.audit();
  assert.is((await h.store.head()).head!.size, 5);
});

test('with a cached (stale) device head, ingest defers to the sequencer and the answers stay right', async () => {
  const h = harness({ headCacheMs: 60_000 });
  const d = new DeviceChain('stale-1');
  await h.enroll(d);
  const b1 = await d.next(2);
  await h.send('stale-1', batchMessage(b1)); // caches "no committed head"
  await h.seq.round();
  // Replay of the committed batch 1: still a duplicate (the store says so, not the cache).
  assert.equal(await h.send('stale-1', batchMessage(b1)), { kind: 'duplicate', deviceId: 'stale-1', batchSeq: 1 });
  verifyReceipt(h.last('stale-1')!.receipt!, { leafEntry: b1.entry, trusted });
  // A batch 2 that does not link to batch 1: the stale cache lets it through to pending …
  const saved = d.prevBatch;
  d.prevBatch = sha256(new Uint8Array([7]));
  const bad2 = await d.next(2);
  assert.is((await h.send('stale-1', batchMessage(bad2))).kind, 'pending');
  // … and the sequencer rejects it with evidence.
  const r = await h.seq.round();
  assert.equal([r.committed, r.rejected], [0, 1]);
  assert.match(h.last('stale-1')!.reason!, /is not the hash of committed batch 1/);
  assert.is((await h.store.evidence('stale-1'))[0].kind, 'chain');
  // The real batch 2 still commits.
  d.batchSeq = 1;
  d.seq = 2;
  d.prevBatch = saved;
  d.prevRecord = (await h.store.device('stale-1'))!.lastRecordHash;
  await h.send('stale-1', batchMessage(await d.next(2)));
  assert.is((await h.seq.round()).committed, 1);
  await h.audit();
});

test('a commit that errors after it succeeded is recognised by its nonce (no second block, receipts still sent)', async () => {
  const h = harness();
  const d = new DeviceChain('amb-1');
  await h.enroll(d);
  await h.send('amb-1', batchMessage(await d.next(2)));
  const kv = h.store.kv as MemoryKv;
  const orig = kv.txn.bind(kv);
  let fired = false;
  kv.txn = async (c, s, f) => {
    const r = await orig(c, s, f);
    if (!fired && s.some((o) => o.op === 'put' && o.key === 'head')) {
      fired = true;
      throw new Error('deadline exceeded (after the commit)');
    }
    return r;
  };
  const r = await h.seq.round();
  assert.ok(fired);
  assert.is(r.committed, 1);
  assert.is(h.last('amb-1')!.status, ReceiptStatus.COMMITTED);
  kv.txn = orig;
  await h.send('amb-1', batchMessage(await d.next(2)));
  assert.is((await h.seq.round()).committed, 1);
  assert.is((await h.store.head()).head!.height, 2);
  await h.audit();
});

test('many devices and blocks: the transaction limits split blocks, nothing lost', async () => {
  const h = harness();
  const devs = Array.from({ length: 30 }, (_, i) => new DeviceChain(`many-${i}`));
  for (const d of devs) await h.enroll(d);
  let n = 0;
  for (let k = 0; k < 3; k++) for (const d of devs) {
    await h.send(d.deviceId, batchMessage(await d.next(1)));
    n++;
  }
  // 90 batches over 30 devices in one round: more than one 128-op transaction holds.
  const r = await h.seq.round();
  assert.ok(r.more, 'the first block was full');
  while ((await h.store.listPending()).length) await h.seq.round();
  const { head } = await h.store.head();
  assert.is(head!.size, n);
  assert.ok(head!.height >= 2);
  await h.audit();
});

test('receipt requests (a batch message without records): a fresh receipt for a committed batch, nothing for a pending one, a gap for an unknown one, a fork for another batch', async () => {
  const h = harness();
  const d = new DeviceChain('req-1');
  await h.enroll(d);
  const req = (b: SimBatch, knownSize: number) => encodeBatchMessage({ sign1: b.sign1, records: [], knownSize });
  const b1 = await d.next(4);
  await h.send('req-1', batchMessage(b1));
  await h.seq.round();
  const v1 = verifyReceipt(h.last('req-1')!.receipt!, { leafEntry: b1.entry, trusted });
  const other = new DeviceChain('req-2');
  await h.enroll(other);
  for (let i = 0; i < 3; i++) await h.send('req-2', batchMessage(await other.next(2)));
  await h.seq.round();
  // Committed: answered at once, proven from the size the request names.
  assert.equal(await h.send('req-1', req(b1, v1.treeSize!)), { kind: 'duplicate', deviceId: 'req-1', batchSeq: 1 });
  const fresh = h.last('req-1')!;
  assert.is(fresh.status, ReceiptStatus.DUPLICATE);
  const v2 = verifyReceipt(fresh.receipt!, { leafEntry: b1.entry, trusted, knownHead: { size: v1.treeSize!, root: v1.root }, requireSignedSize: true });
  assert.equal([v2.treeSize, v2.consistentFrom], [4, 1]);
  // Pending: nothing now (the block's receipt follows).
  const b2 = await d.next(2);
  await h.send('req-1', batchMessage(b2));
  const n = h.pub.receipts.length;
  assert.is((await h.send('req-1', req(b2, 4))).kind, 'already-pending');
  assert.is(h.pub.receipts.length, n);
  // Unknown to the ledger: a gap, so the device sends it whole.
  const b3 = await d.next(2);
  assert.equal(await h.send('req-1', req(b3, 4)), { kind: 'gap', deviceId: 'req-1', batchSeq: 3, nextSeq: 2 });
  // Another device's batch on this device's topic: refused, as for full messages.
  const sneaky = await new DeviceChain('req-3').next(1);
  expectRejected(await h.send('req-1', encodeBatchMessage({ sign1: sneaky.sign1, records: [], knownSize: 0 })), 'topic', /arrived on the topic of device req-1/);
  assert.is(h.metrics.receiptRequests.get(), 3);
  await h.seq.round();
  await h.audit();
});

test("a device's next receipts are proven from the head its last receipts brought it, not from the older known_size its batch carried", async () => {
  const h = harness();
  const d = new DeviceChain('win-1');
  await h.enroll(d);
  const b1 = await d.next(2);
  await h.send('win-1', batchMessage(b1, 0));
  await h.seq.round();
  const r1 = h.last('win-1')!;
  const v1 = verifyReceipt(r1.receipt!, { leafEntry: b1.entry, trusted, requireSignedSize: true });
  assert.equal(receiptProofs(r1.receipt!).consistency, [], 'known_size 0: no proof (the device trusts its first receipt)');
  // Three batches in flight, all sent knowing the head of size 1, each committed in a block of its own.
  const bs = [await d.next(2), await d.next(2), await d.next(2)];
  let head = { size: v1.treeSize!, root: v1.root };
  for (let i = 0; i < bs.length; i++) {
    await h.send('win-1', batchMessage(bs[i], v1.treeSize!));
    await h.seq.round();
    const r = h.pub.receipts.filter((x) => x.deviceId === 'win-1' && x.msg.batchSeq === bs[i].batchSeq).at(-1)!.msg;
    // The device's rule: the proof must start at the head it trusts (runtime/sync/receipt-check.ts).
    const v = verifyReceipt(r.receipt!, { leafEntry: bs[i].entry, trusted, knownHead: head, requireSignedSize: true });
    assert.is(v.consistentFrom, head.size, `batch ${bs[i].batchSeq}: proven from the head the previous receipt gave`);
    head = { size: v.treeSize!, root: v.root };
  }
  assert.is(head.size, 4);
  await h.audit();
});

test.run();
