// The Kv contract on an etcd v3 cluster (Debian etcd-server, Raft: a write is
// acknowledged only once a majority has it in its fsync'd WAL). Everything the
// ledger stores goes through here, under one key prefix per chain.
//
// Each call goes to a random member. A call that fails because its member is
// down or between Raft leaders (UNAVAILABLE, "leader changed", "no leader") is
// retried at once on another member, within the call's time budget: with one
// member of three dead, a third of all calls would otherwise fail. Retrying is
// safe because every ledger transaction is guarded by a compare or is
// idempotent; an ambiguous block commit is resolved by the sequencer reading
// the head back (its nonce). Anything else reports STORE_UNAVAILABLE or
// STORE_LIMIT to the caller.
import { EventEmitter } from 'node:events';
import type { Etcd3, IRequestOp, IKeyValue } from 'etcd3';
import { LedgerError, errorText } from '../errors.js';
import { createEtcdClient, type EtcdClientOptions } from './etcd-client.js';
import type { Compare, Kv, KvEntry, KvLimits, KvStatus, Leadership, Op, TxnResult } from './kv.js';
import { requestBytes } from './kv.js';

export interface EtcdKvOptions extends EtcdClientOptions {
  /** Key prefix of everything this ledger stores, e.g. "/iscm/chain-1/". */
  prefix: string;
  /** The cluster's --max-request-bytes and --max-txn-ops (the ledger sizes its requests to fit). */
  limits: KvLimits;
}

/** Errors worth another member: the call did not reach a working leader. */
function retryable(e: unknown): boolean {
  const m = errorText(e);
  if (/request is too large|too many operations|database space exceeded|duplicate key|permission denied|authentication/i.test(m)) return false;
  return /UNAVAILABLE|No connection established|ECONNREFUSED|ECONNRESET|Connection dropped|leader changed|no leader|not capable|too many requests|timed out/i.test(m);
}

function toError(e: unknown, what: string): LedgerError {
  if (e instanceof LedgerError) return e;
  const m = errorText(e);
  if (/request is too large|too many operations|message larger than max|database space exceeded|duplicate key given in txn/i.test(m))
    return new LedgerError('STORE_LIMIT', `etcd refused ${what}: ${m}`, { cause: e });
  return new LedgerError('STORE_UNAVAILABLE', `etcd ${what} failed: ${m}`, { cause: e });
}

class EtcdLeadership extends EventEmitter implements Leadership {
  elected = false;
  #resigned = false;
  #campaign: ReturnType<ReturnType<Etcd3['election']>['campaign']>;
  constructor(client: Etcd3, prefix: string, name: string, value: string, ttl: number) {
    super();
    this.#campaign = client.namespace(prefix).election(name, ttl).campaign(value);
    this.#campaign.on('elected', () => {
      if (this.#resigned) return;
      this.elected = true;
      this.emit('elected');
    });
    this.#campaign.on('error', (err: Error) => {
      if (this.#resigned) return;
      this.#resigned = true;
      this.elected = false;
      // The campaign is dead (lease lost or could not be granted); the owner starts a new one.
      this.emit('lost', err);
    });
  }
  async resign(): Promise<void> {
    if (this.#resigned) return;
    this.#resigned = true;
    const was = this.elected;
    this.elected = false;
    try {
      await this.#campaign.resign();
    } catch {
      /* the lease expires on its own */
    }
    if (was) this.emit('lost', new Error('resigned'));
  }
}

export class EtcdKv implements Kv {
  readonly kind = 'etcd' as const;
  readonly limits: KvLimits;
  readonly prefix: string;
  readonly #client: Etcd3;
  readonly #opts: EtcdKvOptions;
  #members: Etcd3[] | null = null;

  constructor(o: EtcdKvOptions) {
    if (!o.prefix.startsWith('/') || !o.prefix.endsWith('/')) throw new LedgerError('CONFIG', `etcd prefix ${JSON.stringify(o.prefix)} must start and end with "/"`);
    this.#opts = o;
    this.prefix = o.prefix;
    this.limits = o.limits;
    this.#client = createEtcdClient({ ...o, maxMessageBytes: o.limits.maxRequestBytes + 1024 * 1024 });
  }

  /** Runs a call, retrying on another member while it fails for want of a member or a leader. */
  async #call<T>(what: string, f: () => Promise<T>): Promise<T> {
    const end = Date.now() + (this.#opts.callTimeoutMs ?? 5000);
    for (let attempt = 0; ; attempt++) {
      try {
        return await f();
      } catch (e) {
        if (!retryable(e) || Date.now() > end || attempt >= 50) throw toError(e, what);
        const leaderless = /leader changed|no leader/i.test(errorText(e));
        await new Promise((r) => setTimeout(r, leaderless ? Math.min(500, 50 * (attempt + 1)) : Math.min(200, 5 * (attempt + 1) ** 2)));
      }
    }
  }

  #k(key: string): Buffer {
    return Buffer.from(this.prefix + key, 'utf8');
  }

  #entry(kv: IKeyValue): KvEntry {
    const key = kv.key.toString('utf8').slice(this.prefix.length);
    return { key, value: new Uint8Array(kv.value.buffer, kv.value.byteOffset, kv.value.length), modRev: Number(kv.mod_revision), createRev: Number(kv.create_revision) };
  }

  async get(key: string): Promise<KvEntry | null> {
    const r = await this.#call(`get ${key}`, () => this.#client.kv.range({ key: this.#k(key) }));
    return r.kvs.length ? this.#entry(r.kvs[0]) : null;
  }

  async range(start: string, end: string, opts: { limit?: number; keysOnly?: boolean } = {}): Promise<KvEntry[]> {
    const r = await this.#call(`range ${start}..${end}`, () => this.#client.kv.range({ key: this.#k(start), range_end: this.#k(end), limit: opts.limit ?? 0, keys_only: opts.keysOnly ?? false }));
    return r.kvs.map((kv) => this.#entry(kv));
  }

  #op(o: Op): IRequestOp {
    if (o.op === 'put') return { request_put: { key: this.#k(o.key), value: Buffer.from(o.value.buffer, o.value.byteOffset, o.value.length) } };
    if (o.op === 'get') return { request_range: { key: this.#k(o.key) } };
    return { request_delete_range: o.end ? { key: this.#k(o.key), range_end: this.#k(o.end) } : { key: this.#k(o.key) } };
  }

  async txn(compares: Compare[], success: Op[], failure: Op[] = []): Promise<TxnResult> {
    const n = requestBytes([...success, ...failure], compares);
    if (n > this.limits.maxRequestBytes)
      throw new LedgerError('STORE_LIMIT', `request of ${n} bytes exceeds the configured etcd limit of ${this.limits.maxRequestBytes} (--max-request-bytes)`);
    const nops = Math.max(compares.length, success.length, failure.length);
    if (nops > this.limits.maxTxnOps)
      throw new LedgerError('STORE_LIMIT', `transaction of ${nops} operations exceeds the configured etcd limit of ${this.limits.maxTxnOps} (--max-txn-ops)`);
    const req = {
        compare: compares.map((c) => ({
          key: this.#k(c.key),
          result: 0 /* CompareResult.Equal */,
          target: c.target === 'mod' ? 2 /* CompareTarget.Mod */ : 1 /* CompareTarget.Create */,
          ...(c.target === 'mod' ? { mod_revision: c.value } : { create_revision: c.value }),
        })),
        success: success.map((o) => this.#op(o)),
        failure: failure.map((o) => this.#op(o)),
      };
    const r = await this.#call('transaction', () => this.#client.kv.txn(req));
    const ran = r.succeeded ? success : failure;
    const gets: (KvEntry | null)[] = [];
    ran.forEach((o, i) => {
      if (o.op !== 'get') return;
      const kvs = r.responses[i]?.response_range?.kvs ?? [];
      gets.push(kvs.length ? this.#entry(kvs[0]) : null);
    });
    return { succeeded: r.succeeded, revision: Number(r.header.revision), gets };
  }

  campaign(name: string, value: string, ttlSeconds: number): Leadership {
    return new EtcdLeadership(this.#client, this.prefix, name, value, ttlSeconds);
  }

  async leader(name: string): Promise<string | undefined> {
    return this.#call('election leader', () => this.#client.namespace(this.prefix).election(name).leader());
  }

  #memberClients(): Etcd3[] {
    if (!this.#members) this.#members = this.#opts.endpoints.map((ep) => createEtcdClient({ ...this.#opts, endpoints: [ep], callTimeoutMs: 2000 }));
    return this.#members;
  }

  async status(): Promise<KvStatus> {
    const members = this.#memberClients();
    const rs = await Promise.allSettled(members.map((c) => c.maintenance.status()));
    let dbSize = 0;
    let inUse = 0;
    let revision = 0;
    let up = 0;
    for (const r of rs) {
      if (r.status !== 'fulfilled') continue;
      up++;
      dbSize = Math.max(dbSize, Number(r.value.dbSize));
      inUse = Math.max(inUse, Number(r.value.dbSizeInUse ?? r.value.dbSize));
      revision = Math.max(revision, Number(r.value.header.revision));
    }
    if (up === 0) throw toError((rs[0] as PromiseRejectedResult)?.reason ?? new Error('no members'), 'status');
    return { dbSizeBytes: dbSize, dbSizeInUseBytes: inUse, revision, membersUp: up, members: members.length };
  }

  async compact(revision: number): Promise<void> {
    try {
      await this.#call(`compact to ${revision}`, () => this.#client.kv.compact({ revision, physical: true }));
    } catch (e) {
      if (/has been compacted/.test(errorText(e))) return;
      throw e;
    }
  }

  async defragment(): Promise<void> {
    // One member at a time: a member is unavailable while it defragments.
    for (const c of this.#memberClients()) {
      try {
        await c.maintenance.defragment({ deadline: Date.now() + 60_000 });
      } catch (e) {
        throw toError(e, 'defragment');
      }
    }
  }

  async close(): Promise<void> {
    this.#client.close();
    for (const c of this.#members ?? []) c.close();
  }
}
