// A real etcd cluster for tests and benchmarks (ARCHITECTURE §6): Debian's
// `etcd` binary, N members on 127.0.0.1 with their own data dirs and ports,
// started and stopped by PID (never by name). Members can be killed (-9),
// stopped and restarted with their data, and the current Raft leader found.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { readFileSync } from 'node:fs';
import { createEtcdClient } from '../../ledger/store/etcd-client.js';
import { freePort, haveCommand, start, tempDir, waitUntil, type Proc } from './proc.js';

export interface EtcdMemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  metricsPort: number;
  dataDir: string;
}

export interface EtcdClusterOptions {
  members?: number;
  /** etcd --max-request-bytes (default 4 MiB). */
  maxRequestBytes?: number;
  /** etcd --max-txn-ops (default 1024). */
  maxTxnOps?: number;
  /** etcd --quota-backend-bytes (default etcd's own, 2 GiB). */
  quotaBackendBytes?: number;
  /** Raft timings; loopback under a loaded 2-core machine wants some slack. */
  heartbeatMs?: number;
  electionMs?: number;
  dir?: string;
}

export interface EtcdMember extends EtcdMemberSpec {
  proc: Proc | null;
  endpoint: string;
}

export class EtcdCluster {
  readonly members: EtcdMember[];
  readonly opts: Required<Omit<EtcdClusterOptions, 'dir' | 'quotaBackendBytes'>> & { quotaBackendBytes?: number };
  readonly token: string;
  private constructor(members: EtcdMember[], opts: EtcdCluster['opts'], token: string) {
    this.members = members;
    this.opts = opts;
    this.token = token;
  }

  /** True when etcd is installed (else prints the loud SKIP line). */
  static available(suite: string): boolean {
    return haveCommand('etcd', 'etcd-server', suite);
  }

  static async start(o: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const n = o.members ?? 3;
    const base = o.dir ?? tempDir('iscm-etcd-');
    const members: EtcdMember[] = [];
    for (let i = 0; i < n; i++) {
      const clientPort = await freePort();
      const peerPort = await freePort();
      const metricsPort = await freePort();
      const dataDir = join(base, `m${i}`);
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      members.push({ name: `m${i}`, clientPort, peerPort, metricsPort, dataDir, proc: null, endpoint: `http://127.0.0.1:${clientPort}` });
    }
    const opts = {
      members: n,
      maxRequestBytes: o.maxRequestBytes ?? 4 * 1024 * 1024,
      maxTxnOps: o.maxTxnOps ?? 1024,
      heartbeatMs: o.heartbeatMs ?? 100,
      electionMs: o.electionMs ?? 1500,
      quotaBackendBytes: o.quotaBackendBytes,
    };
    const c = new EtcdCluster(members, opts, `iscm-${process.pid}-${Date.now()}`);
    for (let i = 0; i < n; i++) c.startMember(i);
    await c.waitHealthy();
    return c;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  /** (Re)starts member i with its data dir; a restarted member rejoins from its WAL. */
  startMember(i: number): Proc {
    const m = this.members[i];
    if (m.proc && m.proc.child.exitCode === null && m.proc.child.signalCode === null) throw new Error(`member ${m.name} is running`);
    const initialCluster = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(',');
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.endpoint,
      '--advertise-client-urls', m.endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--listen-metrics-urls', `http://127.0.0.1:${m.metricsPort}`,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', this.token,
      '--max-request-bytes', String(this.opts.maxRequestBytes),
      '--max-txn-ops', String(this.opts.maxTxnOps),
      '--heartbeat-interval', String(this.opts.heartbeatMs),
      '--election-timeout', String(this.opts.electionMs),
      '--logger', 'zap',
      '--log-level', 'warn',
    ];
    if (this.opts.quotaBackendBytes) args.push('--quota-backend-bytes', String(this.opts.quotaBackendBytes));
    m.proc = start('etcd', args, { name: `etcd ${m.name}` });
    return m.proc;
  }

  async killMember(i: number): Promise<void> {
    await this.members[i].proc?.kill9();
  }

  async stopMember(i: number): Promise<void> {
    await this.members[i].proc?.stop();
  }

  isRunning(i: number): boolean {
    const p = this.members[i].proc;
    return !!p && p.child.exitCode === null && p.child.signalCode === null;
  }

  private client(i: number): Etcd3 {
    return createEtcdClient({ endpoints: [this.members[i].endpoint], dialTimeoutMs: 2000, callTimeoutMs: 2000 });
  }

  /** Member status (leader id, own id, db size) or null when unreachable. */
  async status(i: number): Promise<{ memberId: string; leader: string; dbSize: number; raftIndex: number } | null> {
    if (!this.isRunning(i)) return null;
    const c = this.client(i);
    try {
      const s = await c.maintenance.status();
      return { memberId: s.header.member_id, leader: s.leader, dbSize: Number(s.dbSize), raftIndex: Number(s.raftIndex) };
    } catch {
      return null;
    } finally {
      c.close();
    }
  }

  /** Index of the member every running member agrees is the Raft leader. */
  async leader(timeoutMs = 30_000): Promise<number> {
    return waitUntil(async () => {
      const st = await Promise.all(this.members.map((_, i) => this.status(i)));
      for (let i = 0; i < st.length; i++) {
        const s = st[i];
        if (s && s.leader !== '0' && s.leader === s.memberId) {
          // Every reachable member agrees.
          if (st.every((x) => !x || x.leader === s.leader)) return i + 1;
        }
      }
      return 0;
    }, timeoutMs, 'an etcd leader').then((v) => v - 1);
  }

  /** Waits until a linearizable write succeeds (the cluster has quorum). */
  async waitHealthy(timeoutMs = 60_000): Promise<void> {
    const c = createEtcdClient({ endpoints: this.endpoints.filter((_, i) => this.isRunning(i)), dialTimeoutMs: 2000, callTimeoutMs: 2000 });
    try {
      await waitUntil(async () => {
        await c.put('/_health').value(String(Date.now()));
        return true;
      }, timeoutMs, 'etcd quorum', 200);
    } finally {
      c.close();
    }
  }

  /** True when a linearizable read fails within the deadline (no quorum). */
  async hasNoQuorum(): Promise<boolean> {
    const running = this.endpoints.filter((_, i) => this.isRunning(i));
    if (running.length === 0) return true;
    const c = createEtcdClient({ endpoints: running, dialTimeoutMs: 1000, callTimeoutMs: 1500 });
    try {
      await c.get('/_health').string();
      return false;
    } catch {
      return true;
    } finally {
      c.close();
    }
  }

  /** Bytes written by the etcd processes so far (/proc/PID/io write_bytes, else wchar). */
  bytesWritten(): number {
    let sum = 0;
    for (const m of this.members) if (m.proc) sum += procIoBytes(m.proc.pid);
    return sum;
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.proc?.stop()));
  }
}

export function procIoBytes(pid: number): number {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const wb = Number(/write_bytes:\s+(\d+)/.exec(io)?.[1] ?? 0);
    if (wb > 0) return wb;
    return Number(/wchar:\s+(\d+)/.exec(io)?.[1] ?? 0);
  } catch {
    return 0;
  }
}
