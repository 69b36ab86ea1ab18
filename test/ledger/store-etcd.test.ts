// The storage conformance suite against the etcd store: a real 3-member
// cluster (Debian etcd-server) on 127.0.0.1, own dirs and ports, started and
// stopped by this test. Each check gets a key prefix of its own.
import { suite } from 'uvu';
import { EtcdKv } from '../../ledger/store/etcd-kv.js';
import { EtcdCluster } from '../helpers/etcd.js';
import { conformance } from './_conformance.js';

const s = suite('etcd store');
if (EtcdCluster.available('ledger etcd store conformance')) {
  let cluster: EtcdCluster;
  let n = 0;
  s.before(async () => {
    cluster = await EtcdCluster.start({ members: 3 });
  });
  s.after(async () => {
    await cluster?.stop();
  });
  conformance(s, async (limits) => new EtcdKv({ endpoints: cluster.endpoints, prefix: `/conf-${++n}/`, limits, callTimeoutMs: 10_000 }));
}
s.run();
