// In-memory implementation of the Kv contract: for the embedded devnet
// (`npm start` with nothing else installed) and unit tests. It keeps etcd's
// semantics that the ledger relies on — one global revision, mod/create
// revisions per key, atomic compare-and-set transactions, range deletes,
// "no key twice in one txn", the request and op limits — so the same
// conformance suite passes against it and against etcd. It is never the
// production path: nothing here survives the process.
import { EventEmitter } from 'node:events';
import { LedgerError } from '../errors.js';
import { requestBytes, type Compare, type Kv, type KvEntry, type KvLimits, type KvStatus, type Leadership, type Op, type TxnResult } from './kv.js';

interface Cell {
  value: Uint8Array;
  modRev: number;
  createRev: number;
}

class MemoryLeadership extends EventEmitter implements Leadership {
  elected = false;
  constructor(private readonly kv: MemoryKv, readonly name: string, readonly value: string) {
    super();
  }
  async resign(): Promise<void> {
    this.kv.resignCandidate(this);
  }
}

export class MemoryKv implements Kv {
  readonly kind = 'memory' as const;
  readonly limits: KvLimits;
  #keys: string[] = []; // sorted
  #cells = new Map<string, Cell>();
  #rev = 1;
  #compacted = 0;
  #candidates = new Map<string, MemoryLeadership[]>();
  #closed = false;

  constructor(limits: Partial<KvLimits> = {}) {
    this.limits = { maxRequestBytes: limits.maxRequestBytes ?? 1.5 * 1024 * 1024, maxTxnOps: limits.maxTxnOps ?? 128 };
  }

  #check(): void {
    if (this.#closed) throw new LedgerError('STORE_UNAVAILABLE', 'the in-memory store is closed');
  }

  #index(key: string): number {
    let lo = 0;
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#keys[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #entry(key: string): KvEntry | null {
    const c = this.#cells.get(key);
    return c ? { key, value: c.value.slice(), modRev: c.modRev, createRev: c.createRev } : null;
  }

  async get(key: string): Promise<KvEntry | null> {
    this.#check();
    return this.#entry(key);
  }

  async range(start: string, end: string, opts: { limit?: number; keysOnly?: boolean } = {}): Promise<KvEntry[]> {
    this.#check();
    const out: KvEntry[] = [];
    for (let i = this.#index(start); i < this.#keys.length && this.#keys[i] < end; i++) {
      const e = this.#entry(this.#keys[i])!;
      if (opts.keysOnly) e.value = new Uint8Array(0);
      out.push(e);
      if (opts.limit && out.length >= opts.limit) break;
    }
    return out;
  }

  async txn(compares: Compare[], success: Op[], failure: Op[] = []): Promise<TxnResult> {
    this.#check();
    const n = requestBytes([...success, ...failure], compares);
    if (n > this.limits.maxRequestBytes)
      throw new LedgerError('STORE_LIMIT', `request of ${n} bytes exceeds the store's limit of ${this.limits.maxRequestBytes} (--max-request-bytes)`);
    if (compares.length > this.limits.maxTxnOps)
      throw new LedgerError('STORE_LIMIT', `transaction of ${compares.length} compares exceeds the store's limit of ${this.limits.maxTxnOps} (--max-txn-ops)`);
    for (const ops of [success, failure]) {
      if (ops.length > this.limits.maxTxnOps)
        throw new LedgerError('STORE_LIMIT', `transaction of ${ops.length} operations exceeds the store's limit of ${this.limits.maxTxnOps} (--max-txn-ops)`);
      // etcd: "duplicate key given in txn request" when a key is put twice, or put
      // and deleted, in one branch (two overlapping deletes are allowed).
      const puts = new Set<string>();
      const deletes: [string, string][] = [];
      for (const o of ops) {
        if (o.op === 'put') {
          if (puts.has(o.key)) throw new LedgerError('STORE_LIMIT', `duplicate key given in txn request (${o.key})`);
          puts.add(o.key);
        } else if (o.op === 'delete') deletes.push([o.key, o.end ?? o.key + '\0']);
      }
      for (const k of puts) for (const [a, b] of deletes) if (a <= k && k < b) throw new LedgerError('STORE_LIMIT', `duplicate key given in txn request (${k})`);
    }
    const ok = compares.every((c) => {
      const cell = this.#cells.get(c.key);
      const v = cell ? (c.target === 'mod' ? cell.modRev : cell.createRev) : 0;
      return v === c.value;
    });
    const ops = ok ? success : failure;
    const writes = ops.some((o) => o.op !== 'get');
    const rev = writes ? this.#rev + 1 : this.#rev;
    const gets: (KvEntry | null)[] = [];
    for (const o of ops) {
      if (o.op === 'get') gets.push(this.#entry(o.key));
      else if (o.op === 'put') {
        const old = this.#cells.get(o.key);
        if (!old) this.#keys.splice(this.#index(o.key), 0, o.key);
        this.#cells.set(o.key, { value: o.value.slice(), modRev: rev, createRev: old ? old.createRev : rev });
      } else {
        const end = o.end ?? o.key + '\0';
        const i = this.#index(o.key);
        let j = i;
        while (j < this.#keys.length && this.#keys[j] < end) this.#cells.delete(this.#keys[j++]);
        this.#keys.splice(i, j - i);
      }
    }
    this.#rev = rev;
    return { succeeded: ok, revision: rev, gets };
  }

  campaign(name: string, value: string, _ttlSeconds: number): Leadership {
    this.#check();
    const c = new MemoryLeadership(this, name, value);
    const list = this.#candidates.get(name) ?? [];
    list.push(c);
    this.#candidates.set(name, list);
    if (list.length === 1) this.#elect(c);
    return c;
  }

  #elect(c: MemoryLeadership): void {
    queueMicrotask(() => {
      if (!this.#candidates.get(c.name)?.includes(c)) return;
      c.elected = true;
      c.emit('elected');
    });
  }

  /** @internal */
  resignCandidate(c: MemoryLeadership): void {
    const list = this.#candidates.get(c.name) ?? [];
    const i = list.indexOf(c);
    if (i < 0) return;
    list.splice(i, 1);
    if (c.elected) {
      c.elected = false;
      c.emit('lost', new Error('resigned'));
    }
    if (i === 0 && list.length > 0) this.#elect(list[0]);
  }

  async leader(name: string): Promise<string | undefined> {
    const list = this.#candidates.get(name);
    return list && list.length > 0 && list[0].elected ? list[0].value : undefined;
  }

  async status(): Promise<KvStatus> {
    this.#check();
    let bytes = 0;
    for (const [k, c] of this.#cells) bytes += k.length + c.value.length;
    return { dbSizeBytes: bytes, dbSizeInUseBytes: bytes, revision: this.#rev, membersUp: 1, members: 1 };
  }

  async compact(revision: number): Promise<void> {
    this.#check();
    // No history is kept; remember the mark so callers see etcd-like behaviour.
    if (revision > this.#rev) throw new LedgerError('STORE_LIMIT', `cannot compact to future revision ${revision}`);
    this.#compacted = Math.max(this.#compacted, revision);
  }

  async defragment(): Promise<void> {
    this.#check();
  }

  async close(): Promise<void> {
    for (const list of this.#candidates.values()) for (const c of [...list]) this.resignCandidate(c);
    this.#closed = true;
  }
}
