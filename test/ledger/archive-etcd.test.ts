// Hot and cold data on a real etcd cluster with a small backend quota
// (--quota-backend-bytes 32 MiB): two and a half times the quota of batch data
// goes through the ledger; the archiver moves it to sealed files and compacts
// etcd, so the cluster stays within its quota (no NOSPACE alarm, every write
// accepted) while queries and the audit read both tiers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { ALG } from '../../protocol/cose/algorithms.js';
import { verifyEventProof } from '../../protocol/bundle.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { EtcdKv } from '../../ledger/store/etcd-kv.js';
import { LedgerStore } from '../../ledger/store/store.js';
import { Registry, signEnrollment } from '../../ledger/registry.js';
import { LogView } from '../../ledger/log/log.js';
import { RecordingPublisher } from '../../ledger/publisher.js';
import { LedgerMetrics } from '../../ledger/metrics.js';
import { silentLogger } from '../../ledger/logger.js';
import { ActivityTracker, Ingest } from '../../ledger/ingest.js';
import { Sequencer } from '../../ledger/sequencer.js';
import { LedgerReader } from '../../ledger/query.js';
import { Archiver } from '../../ledger/archive.js';
import { auditLog } from '../../ledger/audit.js';
import { EtcdCluster } from '../helpers/etcd.js';
import { tempDir } from '../helpers/proc.js';
import { DeviceChain, batchMessage, type SimBatch } from '../helpers/device-sim.js';

const QUOTA = 32 * 1024 * 1024;
let etcd: EtcdCluster;

if (EtcdCluster.available('ledger archive on etcd')) {
  test.before(async () => {
    etcd = await EtcdCluster.start({ quotaBackendBytes: QUOTA });
  });
  test.after(async () => {
    await etcd?.stop();
  });

  test('2.5 times the quota of data flows through; etcd stays within its quota; both tiers verify', async () => {
    const op = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
    const nodeKey = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
    const store = new LedgerStore(new EtcdKv({ endpoints: etcd.endpoints, prefix: '/iscm/q/', limits: { maxRequestBytes: 4 * 1024 * 1024, maxTxnOps: 1024 }, callTimeoutMs: 15_000 }));
    const registry = new Registry(store, [op.publicKey], 'q', 0);
    const log = new LogView(store);
    const metrics = new LedgerMetrics();
    const pub = new RecordingPublisher();
    const dir = tempDir('iscm-arch-etcd-');
    const ingest = new Ingest(store, registry, log, pub, metrics, silentLogger, new ActivityTracker(store, 'n'), { nodeId: 'n', prefix: 'iscm/v1' });
    const archiver = new Archiver(store, { dir, chainId: 'q', nodeId: 'n', hotMaxAgeMs: 3_600_000, hotMaxBytes: 4 * 1024 * 1024, segmentMaxBytes: 8 * 1024 * 1024, compact: true, defragment: false }, silentLogger, metrics);
    const seq = new Sequencer(store, log, nodeKey, pub, metrics, silentLogger, { nodeId: 'n', chainId: 'q', election: false, archivedHeight: () => archiver.archived });
    const devs = [new DeviceChain('vol-1'), new DeviceChain('vol-2')];
    for (const d of devs) {
      d.pad = 12_000;
      await registry.submit(await signEnrollment(op, { deviceId: d.deviceId, key: d.signer.publicKey, notBefore: 0, issuedAt: Date.now() }));
    }
    const sent: SimBatch[] = [];
    let stored = 0;
    seq.on('block', (b: { batches: { bytes: number }[] }) => (stored += b.batches.reduce((x, y) => x + y.bytes, 0)));
    let maxDb = 0;
    for (let round = 0; stored < 2.5 * QUOTA; round++) {
      for (const d of devs) {
        const b = await d.next(32);
        sent.push(b);
        const o = await ingest.handle(`iscm/v1/dev/${d.deviceId}/batch`, batchMessage(b));
        assert.is(o.kind, 'pending', JSON.stringify(o));
      }
      const r = await seq.round();
      assert.is(r.committed, devs.length);
      if (round % 4 === 3) {
        await archiver.runOnce();
        const st = await store.kv.status();
        maxDb = Math.max(maxDb, st.dbSizeBytes);
      }
    }
    await archiver.runOnce();
    await archiver.runOnce();
    const st = await store.kv.status();
    maxDb = Math.max(maxDb, st.dbSizeBytes);
    process.stdout.write(`  [archive-etcd] ${(stored / 2 ** 20).toFixed(1)} MiB of batch data (compressed) through etcd; largest db ${(maxDb / 2 ** 20).toFixed(1)} MiB (quota ${QUOTA / 2 ** 20} MiB); ${(await store.segments()).length} segments\n`);
    assert.ok(stored >= 2.5 * QUOTA, `${stored} bytes stored`);
    assert.ok(maxDb < QUOTA, `etcd db reached ${maxDb} bytes`);
    // No NOSPACE alarm: a write still goes through.
    const last = await devs[0].next(1);
    sent.push(last);
    assert.is((await ingest.handle('iscm/v1/dev/vol-1/batch', batchMessage(last))).kind, 'pending');
    assert.is((await seq.round()).committed, 1);
    const reader = new LedgerReader(store, log, registry, dir);
    for (const ev of [sent[0].eventIds[0], sent[Math.floor(sent.length / 2)].eventIds[5], last.eventIds[0]]) {
      assert.is(verifyEventProof(await reader.eventBundle(ev), [{ key: nodeKey.publicKey }]).record.event.eventID, ev);
    }
    const rep = await auditLog(reader, { trusted: [{ key: nodeKey.publicKey }], consistency: false });
    assert.ok(rep.ok, rep.errors.join('\n'));
    assert.is(rep.leaves, sent.length);
    assert.ok(rep.segments >= 3);
    await store.close();
  });
}

test.run();
