// Faults under load (issue: full nodes), with real services: devices keep
// publishing while
//   1. the active ledger process is killed with SIGKILL — the standby takes
//      over the sequencer; no gap, no duplicate leaf;
//   2. the etcd Raft leader is killed with SIGKILL — the ledger continues
//      after the re-election;
//   3. two of the three etcd members are stopped — no receipt is issued while
//      there is no quorum; it resumes when one member returns.
// Afterwards the whole log verifies (every leaf unique, every tree head
// consistent with the next, every record's hash), and every receipt any
// device received during the test is for a batch that is in the final log
// at that leaf, under a root the final log has at that size.
//
// ISCM_LEDGER_FAULT_CYCLES=N repeats the three faults N times (default 1);
// `npm run test:ledger-faults` (proposed script) runs 10 cycles.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { equalBytes, toHex } from '../../protocol/bytes.js';
import { ReceiptStatus } from '../../protocol/receipt-msg.js';
import { auditLog } from '../../ledger/audit.js';
import { EtcdCluster } from '../helpers/etcd.js';
import { mosquittoAvailable, startConsortiumBroker, type Broker } from '../helpers/mosquitto.js';
import { SimDevice } from '../helpers/device-sim.js';
import { waitUntil } from '../helpers/proc.js';
import { activeLedger, apiJson, enroll, makeKeys, openTestStore, startLedger, tempDir, writeLedgerConfig, type Keys, type LedgerProc } from './_env.js';

const SUITE = 'ledger faults (etcd + mosquitto)';
const ok = EtcdCluster.available(SUITE) && mosquittoAvailable(SUITE);
const CYCLES = Math.max(1, Number(process.env.ISCM_LEDGER_FAULT_CYCLES ?? 1));

let etcd: EtcdCluster;
let broker: Broker;
let keys: Keys;
let dir: string;
const ledgers = new Map<string, LedgerProc>();
let t: ReturnType<typeof openTestStore>;
const devices: SimDevice[] = [];
const configs = new Map<string, string>();

const totalOk = () => devices.reduce((a, d) => a + d.receiptsOk(), 0);
const note = (m: string) => process.stdout.write(`  [faults] ${m}\n`);

/** Waits until devices have received `n` more committed/duplicate receipts. */
async function progress(n: number, what: string, timeoutMs = 90_000): Promise<void> {
  const base = totalOk();
  await waitUntil(() => totalOk() >= base + n, timeoutMs, `${n} more receipts (${what})`, 100);
}

if (ok) {
  test.before(async () => {
    etcd = await EtcdCluster.start();
    broker = await startConsortiumBroker();
    keys = await makeKeys();
    dir = tempDir('iscm-faults-');
    for (const id of ['ledger-a', 'ledger-b']) {
      const cfg = writeLedgerConfig(dir, keys, { nodeId: id, endpoints: etcd.endpoints, mqttUrl: broker.url, blockInterval: '250ms', electionTtl: '2s', gapTimeout: '3s' });
      configs.set(id, cfg);
      ledgers.set(id, await startLedger(cfg, id));
    }
    t = openTestStore(etcd.endpoints, '/iscm/test/', keys);
    for (let i = 0; i < 6; i++) {
      const d = new SimDevice(`load-${i}`, { url: broker.url, trusted: keys.trusted, window: 3, resendMs: 4000 });
      await enroll(t.registry, keys.operator, d.deviceId, d.publicKey);
      await d.connect();
      devices.push(d);
    }
    await activeLedger([...ledgers.values()]);
    for (const d of devices) d.startLoad(16);
    await progress(30, 'load running');
  });

  test.after(async () => {
    for (const d of devices) await d.close();
    for (const l of ledgers.values()) await l.proc.stop();
    await t?.store.close();
    await broker?.stop();
    await etcd?.stop();
  });

  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    test(`cycle ${cycle}: kill -9 the active ledger process: the standby takes over`, async () => {
      const active = await activeLedger([...ledgers.values()]);
      const t0 = Date.now();
      await active.proc.kill9();
      const standby = await activeLedger([...ledgers.values()].filter((l) => l !== active), 60_000);
      note(`cycle ${cycle}: ${active.nodeId} killed; ${standby.nodeId} active after ${Date.now() - t0} ms (election TTL 2 s)`);
      await progress(20, 'after the takeover');
      // The killed process comes back (as a standby).
      ledgers.set(active.nodeId, await startLedger(configs.get(active.nodeId)!, active.nodeId));
      const h = await apiJson<{ role: string }>(ledgers.get(active.nodeId)!.apiUrl, '/v1/health');
      assert.ok(h.role === 'standby' || h.role === 'active');
    });

    test(`cycle ${cycle}: kill -9 the etcd leader: the ledger continues after the re-election`, async () => {
      const leader = await etcd.leader();
      const t0 = Date.now();
      await etcd.killMember(leader);
      await progress(20, 'after the etcd leader was killed');
      note(`cycle ${cycle}: etcd member m${leader} (leader) killed; receipts flowing again after ${Date.now() - t0} ms`);
      etcd.startMember(leader);
      await etcd.waitHealthy();
    });

    test(`cycle ${cycle}: stop 2 of 3 etcd members: no receipt without quorum; resumes when one returns`, async () => {
      await progress(5, 'before the quorum loss');
      const leader = await etcd.leader();
      const stopped = [leader, (leader + 1) % 3];
      for (const i of stopped) await etcd.stopMember(i);
      await waitUntil(() => etcd.hasNoQuorum(), 30_000, 'the quorum to be gone', 200);
      // Receipts already on their way (committed before the second member stopped) drain first.
      await new Promise((r) => setTimeout(r, 2000));
      const before = totalOk();
      const byDevice = devices.map((d) => d.receiptsOk());
      await new Promise((r) => setTimeout(r, 8000));
      assert.is(totalOk(), before, `receipts issued without quorum: ${devices.map((d, i) => d.receiptsOk() - byDevice[i])}`);
      assert.ok(await etcd.hasNoQuorum(), 'still no quorum at the end of the window');
      const t0 = Date.now();
      etcd.startMember(stopped[0]);
      await progress(10, 'after one member returned', 120_000);
      note(`cycle ${cycle}: quorum lost for ~10 s, no receipts meanwhile; receipts resumed ${Date.now() - t0} ms after a member returned`);
      etcd.startMember(stopped[1]);
      await etcd.waitHealthy();
    });
  }

  test('afterwards: every batch receipted, the whole log verifies, every receipt received is in the final log', async () => {
    await Promise.all(devices.map((d) => d.stopLoad(180_000)));
    const r = await auditLog(t.reader, { trusted: keys.trusted });
    assert.ok(r.ok, r.errors.join('\n'));
    const sent = devices.reduce((a, d) => a + d.chain.batchSeq, 0);
    assert.is(r.leaves, sent, 'each sent batch is exactly one leaf (no gap, no duplicate)');
    const { head } = await t.store.head();
    let checked = 0;
    for (const d of devices) {
      assert.equal(d.received.filter((x) => x.error).map((x) => x.error), [], `${d.deviceId}: receipts that failed verification`);
      assert.is(d.received.filter((x) => x.msg.status === ReceiptStatus.REJECTED).length, 0, `${d.deviceId}: rejections`);
      for (const x of d.received) {
        if (!x.verified) continue;
        const b = d.batches.get(x.msg.batchSeq)!;
        const ref = await t.reader.refAtLeaf(x.verified.leafIndex!);
        assert.ok(equalBytes(ref.entry, b.entry), `${d.deviceId}#${x.msg.batchSeq}: receipt leaf ${x.verified.leafIndex} holds another batch`);
        assert.ok(x.verified.treeSize! <= head!.size);
        assert.is(toHex(await t.log.rootAt(x.verified.treeSize!)), toHex(x.verified.root), `the final log has the receipt's root at size ${x.verified.treeSize}`);
        checked++;
      }
    }
    note(`${r.blocks} blocks, ${r.leaves} leaves, ${r.events} events; ${checked} receipts checked against the final log`);
  });
}

test.run();
