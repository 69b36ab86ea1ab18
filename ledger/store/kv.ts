// The key-value contract the ledger store is written against: the part of
// etcd's v3 API it uses (get, range, one-shot transactions with compares on
// revisions, range deletes, elections on a lease), with etcd's request limits.
// Two implementations: etcd-kv.ts (the production path, a Raft cluster) and
// memory-kv.ts (embedded devnet and unit tests). The conformance suite in
// test/ledger runs the same checks against both.
import type { EventEmitter } from 'node:events';

export interface KvEntry {
  key: string;
  value: Uint8Array;
  /** Revision of the last write of this key (etcd mod_revision). */
  modRev: number;
  /** Revision that created this key (etcd create_revision). */
  createRev: number;
}

/** Compare on a key's revision; a missing key has revisions 0 (etcd semantics). */
export interface Compare {
  key: string;
  target: 'mod' | 'create';
  /** Only equality: that is all compare-and-set needs. */
  value: number;
}

export type Op =
  | { op: 'put'; key: string; value: Uint8Array }
  /** Deletes `key`, or the range [key, end) when `end` is given. */
  | { op: 'delete'; key: string; end?: string }
  | { op: 'get'; key: string };

export interface TxnResult {
  succeeded: boolean;
  /** Store revision after the transaction. */
  revision: number;
  /** Results of the get ops of the branch that ran, in order (null: missing key). */
  gets: (KvEntry | null)[];
}

export interface KvLimits {
  /** Largest request (keys and values of all ops) the store accepts (etcd --max-request-bytes). */
  maxRequestBytes: number;
  /** Most ops in one transaction (etcd --max-txn-ops). */
  maxTxnOps: number;
}

export interface KvStatus {
  /** Physically allocated database size, largest over the members reached. */
  dbSizeBytes: number;
  /** Logically used size (etcd dbSizeInUse), largest over the members reached. */
  dbSizeInUseBytes: number;
  revision: number;
  /** Members that answered / members configured. */
  membersUp: number;
  members: number;
}

/** A candidacy in an election: 'elected' once, then 'lost' (with a reason) if leadership ends. */
export interface Leadership extends EventEmitter {
  readonly elected: boolean;
  resign(): Promise<void>;
}

export interface Kv {
  readonly kind: 'memory' | 'etcd';
  readonly limits: KvLimits;
  get(key: string): Promise<KvEntry | null>;
  /** Entries with start ≤ key < end, in key order; `limit` 0 = all. */
  range(start: string, end: string, opts?: { limit?: number; keysOnly?: boolean }): Promise<KvEntry[]>;
  /** Runs `success` if every compare holds, else `failure`, atomically. */
  txn(compares: Compare[], success: Op[], failure?: Op[]): Promise<TxnResult>;
  /** Campaigns for leadership of `name` on a lease of ttlSeconds. */
  campaign(name: string, value: string, ttlSeconds: number): Leadership;
  /** The value of the current leader of `name`, if any. */
  leader(name: string): Promise<string | undefined>;
  status(): Promise<KvStatus>;
  /** Drops history before `revision` (etcd compaction); the latest values stay. */
  compact(revision: number): Promise<void>;
  /** Returns free pages to the file system (etcd defragment, member by member). */
  defragment(): Promise<void>;
  close(): Promise<void>;
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): string {
  // Keys are ASCII (device ids, hex, fixed words), so one UTF-16 unit is one byte.
  if (prefix.length === 0 || !/^[\x20-\x7e]*$/.test(prefix)) throw new RangeError('key prefixes are non-empty printable ASCII');
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/** Bytes a request occupies, as etcd counts it closely enough (keys + values + per-op overhead). */
export function requestBytes(ops: readonly Op[], compares: readonly Compare[] = []): number {
  let n = 0;
  for (const o of ops) {
    n += Buffer.byteLength(o.key) + 16;
    if (o.op === 'put') n += o.value.length;
    if (o.op === 'delete' && o.end) n += Buffer.byteLength(o.end);
  }
  for (const c of compares) n += Buffer.byteLength(c.key) + 16;
  return n;
}
