// Hot and cold tiers: old batch data moves from the store into sealed
// archive files; queries (batches, event bundles) read both tiers; any node
// verifies an archive file against the log; a tampered file is caught.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ALG } from '../../protocol/cose/algorithms.js';
import { verifyEventProof } from '../../protocol/bundle.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { MemoryKv } from '../../ledger/store/memory-kv.js';
import { LedgerStore } from '../../ledger/store/store.js';
import { Registry, signEnrollment } from '../../ledger/registry.js';
import { LogView } from '../../ledger/log/log.js';
import { RecordingPublisher } from '../../ledger/publisher.js';
import { LedgerMetrics } from '../../ledger/metrics.js';
import { silentLogger } from '../../ledger/logger.js';
import { ActivityTracker, Ingest } from '../../ledger/ingest.js';
import { Sequencer } from '../../ledger/sequencer.js';
import { LedgerReader } from '../../ledger/query.js';
import { Archiver, ArchiveFile, verifyArchiveFile } from '../../ledger/archive.js';
import { auditLog } from '../../ledger/audit.js';
import { LedgerError } from '../../ledger/errors.js';
import { DeviceChain, batchMessage, type SimBatch } from '../helpers/device-sim.js';
import { tempDir } from '../helpers/proc.js';

const op = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
const nodeKey = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
const trusted = [{ key: nodeKey.publicKey }];

async function setup(hot: { maxAgeMs?: number; maxBytes?: number; segmentMaxBytes?: number }) {
  const dir = tempDir('iscm-archive-');
  const store = new LedgerStore(new MemoryKv({ maxTxnOps: 128 }));
  const registry = new Registry(store, [op.publicKey], 'iscm-test', 0);
  const log = new LogView(store);
  const pub = new RecordingPublisher();
  const metrics = new LedgerMetrics();
  const ingest = new Ingest(store, registry, log, pub, metrics, silentLogger, new ActivityTracker(store, 'n'), { nodeId: 'n', prefix: 'iscm/v1' });
  const archiver = new Archiver(store, { dir, chainId: 'iscm-test', nodeId: 'n', hotMaxAgeMs: hot.maxAgeMs ?? 3_600_000, hotMaxBytes: hot.maxBytes ?? 1 << 30, segmentMaxBytes: hot.segmentMaxBytes ?? 1 << 30, compact: true, defragment: false }, silentLogger, metrics);
  const seq = new Sequencer(store, log, nodeKey, pub, metrics, silentLogger, { nodeId: 'n', chainId: 'iscm-test', election: false, archivedHeight: () => archiver.archived });
  const reader = new LedgerReader(store, log, registry, dir);
  const devs = [new DeviceChain('arc-1'), new DeviceChain('arc-2')];
  for (const d of devs) await registry.submit(await signEnrollment(op, { deviceId: d.deviceId, key: d.signer.publicKey, notBefore: 0, issuedAt: Date.now() }));
  const sent: SimBatch[] = [];
  const blocks = async (n: number, records = 8) => {
    for (let i = 0; i < n; i++) {
      for (const d of devs) {
        const b = await d.next(records);
        sent.push(b);
        assert.is((await ingest.handle(`iscm/v1/dev/${d.deviceId}/batch`, batchMessage(b))).kind, 'pending');
      }
      assert.is((await seq.round()).committed, devs.length);
    }
  };
  return { dir, store, registry, log, reader, archiver, seq, ingest, sent, blocks, metrics };
}

test('a byte budget moves the oldest blocks to sealed files; both tiers answer; the audit reads both', async () => {
  const s = await setup({ maxBytes: 6000, segmentMaxBytes: 4000 });
  await s.blocks(12);
  const segs = await s.archiver.runOnce();
  assert.ok(segs.length >= 2, `${segs.length} segments`);
  const files = readdirSync(s.dir).filter((f) => f.endsWith('.isca'));
  assert.is(files.length, segs.length);
  for (const f of files) assert.is(statSync(join(s.dir, f)).mode & 0o777, 0o444, 'sealed read-only');
  // Contiguous, from block 1.
  const stored = await s.store.segments();
  assert.is(stored[0].firstHeight, 1);
  for (let i = 1; i < stored.length; i++) assert.is(stored[i].firstHeight, stored[i - 1].lastHeight + 1);
  const archivedTo = stored.at(-1)!.lastHeight;
  // The archived batches' data left the store; the rest is hot.
  for (const b of await s.store.blocks(1, 12)) for (const bb of b.batches) assert.is(await s.store.hasBatchData(bb.entry), b.height > archivedTo, `block ${b.height}`);
  const hotBytes = (await s.store.blocks(archivedTo + 1, 12)).reduce((a, b) => a + b.batches.reduce((x, y) => x + y.bytes, 0), 0);
  assert.ok(hotBytes <= 6000, `hot tier ${hotBytes} bytes`);
  // Batches and event bundles from both tiers.
  const oldest = s.sent[0];
  const ref = await s.reader.ref('arc-1', 1);
  const d = await s.reader.batchData(ref);
  assert.is(d.records.length, oldest.records.length);
  for (const ev of [s.sent[0].eventIds[3], s.sent.at(-1)!.eventIds[0]]) {
    const bundle = await s.reader.eventBundle(ev);
    const v = verifyEventProof(bundle, trusted);
    assert.is(v.record.event.eventID, ev);
  }
  for (const seg of stored) assert.ok((await verifyArchiveFile(join(s.dir, seg.file), seg, s.store)).batches > 0);
  const r = await auditLog(s.reader, { trusted });
  assert.ok(r.ok, r.errors.join('\n'));
  assert.is(r.segments, stored.length);
  assert.is(r.events, s.sent.length * 8);
  // Nothing more is due: a second run seals nothing.
  assert.is((await s.archiver.runOnce()).length, 0);
});

test('an age limit archives old blocks only', async () => {
  const s = await setup({ maxAgeMs: 60_000 });
  await s.blocks(3);
  assert.is((await s.archiver.runOnce()).length, 0, 'nothing is old yet');
  const segs = await s.archiver.runOnce(Date.now() + 120_000);
  assert.is(segs.length, 1);
  assert.equal([segs[0].firstHeight, segs[0].lastHeight], [1, 3]);
});

test('a tampered or truncated archive file fails verification, and queries refuse its data', async () => {
  const s = await setup({ maxBytes: 1 });
  await s.blocks(3);
  const [seg] = await s.archiver.runOnce();
  const path = join(s.dir, seg.file);
  const bytes = readFileSync(path);
  chmodSync(path, 0o644);
  // Flip a byte inside the first frame's compressed data.
  const t = Buffer.from(bytes);
  t[40] ^= 0xff;
  writeFileSync(path, t);
  try {
    await verifyArchiveFile(path, seg, s.store);
    assert.unreachable('tampered file verified');
  } catch (e) {
    assert.instance(e, LedgerError);
    assert.match((e as Error).message, /SHA-256 .* is not the sealed/);
  }
  const s2 = new LedgerReader(s.store, s.log, s.registry, s.dir);
  try {
    await s2.batchData(await s2.ref('arc-1', 1));
    assert.unreachable('tampered batch returned');
  } catch (e) {
    assert.instance(e, LedgerError);
  }
  const audit = await auditLog(s2, { trusted });
  assert.not.ok(audit.ok);
  writeFileSync(path, bytes.subarray(0, 100));
  try {
    ArchiveFile.open(path);
    assert.unreachable('truncated file opened');
  } catch (e) {
    assert.is((e as LedgerError).code, 'ARCHIVE');
  }
});

test.run();
