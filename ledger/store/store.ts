// The ledger's storage interface, written once over the Kv contract and used
// with either etcd (production) or memory (devnet, unit tests).
//
// Key layout under the chain's prefix (etcd: "/iscm/{chain_id}/"):
//
//   head                          HeadState: size, root, compact range, STH — every block CASes it
//   block/{height:016x}           Block: its batches (leaf entries), size, root, STH after it
//   tile/{level}/{index:012x}     RFC 9162 tile: up to 256 node hashes at height 8·level
//   dev/{id}                      DeviceHead: the device's committed chain head
//   ref/{id}/{batch_seq:016x}     BatchRef: committed (device, batch_seq) → leaf
//   pend/{id}/{batch_seq:016x}    PendingMarker: verified, waiting for the sequencer
//   data/{entry hex}              batch data head (compressed; first chunk inline)
//   data/{entry hex}/{nonce}/{i}  further chunks of large batches
//   seen/{id}/{node}              DeviceActivity per ingest node
//   reg/{id}/{kid hex}/{kind}     operator-signed enrollment / revocation claims
//   fork/{id}/{seq:016x}/{entry}  fork evidence (never deleted)
//   arch/{first_height:016x}      ArchiveSegment: a sealed archive file
//   election/sequencer/…          etcd election (lease keys)
//
// Invariants the transactions keep:
// - a pending marker and its data head are written together, only if neither
//   exists, and deleted together; so a marker that exists has its data;
// - a block commits in ONE transaction that compares the head's mod revision
//   (two sequencers cannot both extend the same head: no fork) and every
//   committed marker's mod revision (its data is still there), and writes the
//   head, the block, tiles, device heads and refs, deleting the markers.
import { randomBytes } from 'node:crypto';
import { toHex } from '../../protocol/bytes.js';
import { LedgerError } from '../errors.js';
import { prefixEnd, type Compare, type Kv, type Leadership, type Op } from './kv.js';
import * as c from './codec.js';
import type { ArchiveSegment, BatchData, BatchRef, Block, DeviceActivity, DeviceHead, ForkEvidence, HeadState, PendingMarker, StoredClaim } from './types.js';

const hex16 = (n: number) => n.toString(16).padStart(16, '0');
const hex12 = (n: number) => n.toString(16).padStart(12, '0');

export const K = {
  head: 'head',
  block: (h: number) => `block/${hex16(h)}`,
  tile: (level: number, index: number) => `tile/${level}/${hex12(index)}`,
  dev: (id: string) => `dev/${id}`,
  ref: (id: string, seq: number) => `ref/${id}/${hex16(seq)}`,
  pend: (id: string, seq: number) => `pend/${id}/${hex16(seq)}`,
  data: (entry: Uint8Array) => `data/${toHex(entry)}`,
  chunk: (entry: Uint8Array, nonce: string, i: number) => `data/${toHex(entry)}/${nonce}/${hex12(i)}`,
  seen: (id: string, node: string) => `seen/${id}/${node}`,
  claim: (id: string, kid: Uint8Array, kind: string) => `reg/${id}/${toHex(kid)}/${kind}`,
  fork: (id: string, seq: number, entry: Uint8Array) => `fork/${id}/${hex16(seq)}/${toHex(entry)}`,
  arch: (firstHeight: number) => `arch/${hex16(firstHeight)}`,
};

export const ELECTION = 'sequencer';

/** Everything one block commit writes. */
export interface BlockCommit {
  head: HeadState;
  block: Block;
  devices: DeviceHead[];
  refs: BatchRef[];
  /** Tiles whose content changed: [level, index, hashes]. */
  tiles: [number, number, Uint8Array][];
  /** The markers of the committed batches with the mod revisions they were read at. */
  pending: { deviceId: string; batchSeq: number; modRev: number }[];
}

export type PutPendingResult =
  | { status: 'written' }
  /** The same batch is already pending. */
  | { status: 'exists' }
  /** Another batch is pending under the same (device, batch_seq): a fork. */
  | { status: 'conflict'; existing: PendingMarker }
  /** The batch's data is stored but not pending: it was committed meanwhile. */
  | { status: 'committed' };

export interface Pending extends PendingMarker {
  /** Mod revision of the marker (commit compares it). */
  modRev: number;
}

export interface StoreOptions {
  /** Largest chunk of batch data per request (default: 1 MiB or less to fit the limit). */
  chunkBytes?: number;
}

/** Ops that fit a transaction: the number of ops one block commit needs. */
export function commitOps(devices: number, batches: number, tiles: number): number {
  return 2 + tiles + devices + 2 * batches;
}

export class LedgerStore {
  readonly kv: Kv;
  readonly chunkBytes: number;
  constructor(kv: Kv, o: StoreOptions = {}) {
    this.kv = kv;
    this.chunkBytes = o.chunkBytes ?? Math.max(16 * 1024, Math.min(1024 * 1024, kv.limits.maxRequestBytes - 64 * 1024));
  }

  get kind(): 'memory' | 'etcd' {
    return this.kv.kind;
  }

  // ---------------------------------------------------------------- log

  /** The head and its mod revision (0 when the log is empty: the CAS value for the first block). */
  async head(): Promise<{ head: HeadState | null; rev: number }> {
    const e = await this.kv.get(K.head);
    return e ? { head: c.decodeHead(e.value), rev: e.modRev } : { head: null, rev: 0 };
  }

  async block(height: number): Promise<Block | null> {
    const e = await this.kv.get(K.block(height));
    return e ? c.decodeBlock(e.value) : null;
  }

  /** Blocks from..to inclusive, ascending (at most `limit`). */
  async blocks(from: number, to: number, limit = 0): Promise<Block[]> {
    if (to < from) return [];
    const es = await this.kv.range(K.block(from), K.block(to + 1), { limit });
    return es.map((e) => c.decodeBlock(e.value));
  }

  async tile(level: number, index: number): Promise<Uint8Array | null> {
    const e = await this.kv.get(K.tile(level, index));
    return e ? e.value : null;
  }

  async device(id: string): Promise<DeviceHead | null> {
    const e = await this.kv.get(K.dev(id));
    return e ? c.decodeDevice(e.value) : null;
  }

  async devices(): Promise<DeviceHead[]> {
    const es = await this.kv.range('dev/', prefixEnd('dev/'));
    return es.map((e) => c.decodeDevice(e.value));
  }

  async ref(id: string, batchSeq: number): Promise<BatchRef | null> {
    const e = await this.kv.get(K.ref(id, batchSeq));
    return e ? c.decodeRef(e.value) : null;
  }

  /** Committed batch refs of a device, from batch_seq `from` (ascending, at most `limit`). */
  async refs(id: string, from = 1, limit = 0): Promise<BatchRef[]> {
    const es = await this.kv.range(K.ref(id, from), prefixEnd(`ref/${id}/`), { limit });
    return es.map((e) => c.decodeRef(e.value));
  }

  /**
   * Commits one block. Returns ok=false when the head moved since `expectedRev`
   * (another sequencer committed) or a pending marker changed: nothing was written.
   */
  async commitBlock(expectedRev: number, b: BlockCommit): Promise<{ ok: boolean; rev: number }> {
    const compares: Compare[] = [{ key: K.head, target: 'mod', value: expectedRev }];
    const ops: Op[] = [
      { op: 'put', key: K.head, value: c.encodeHead(b.head) },
      { op: 'put', key: K.block(b.block.height), value: c.encodeBlock(b.block) },
    ];
    for (const [level, index, hashes] of b.tiles) ops.push({ op: 'put', key: K.tile(level, index), value: hashes });
    for (const d of b.devices) ops.push({ op: 'put', key: K.dev(d.deviceId), value: c.encodeDevice(d) });
    for (const r of b.refs) ops.push({ op: 'put', key: K.ref(r.deviceId, r.batchSeq), value: c.encodeRef(r) });
    for (const p of b.pending) {
      compares.push({ key: K.pend(p.deviceId, p.batchSeq), target: 'mod', value: p.modRev });
      ops.push({ op: 'delete', key: K.pend(p.deviceId, p.batchSeq) });
    }
    const r = await this.kv.txn(compares, ops);
    return { ok: r.succeeded, rev: r.revision };
  }

  // ---------------------------------------------------------------- pending

  /** Writes a verified batch as pending (marker + compressed data), unless that (device, batch_seq) is already pending. */
  async putPending(m: PendingMarker, data: BatchData): Promise<PutPendingResult> {
    const blob = c.compressBatch(data);
    m.bytes = blob.length;
    const chunks = Math.max(1, Math.ceil(blob.length / this.chunkBytes));
    const nonce = toHex(randomBytes(6));
    for (let i = 1; i < chunks; i++) {
      await this.kv.txn([], [{ op: 'put', key: K.chunk(m.entry, nonce, i), value: blob.subarray(i * this.chunkBytes, (i + 1) * this.chunkBytes) }]);
    }
    const head = c.encodeDataHead({ chunks, total: blob.length, nonce, first: blob.subarray(0, this.chunkBytes) });
    const pk = K.pend(m.deviceId, m.batchSeq);
    const dk = K.data(m.entry);
    const r = await this.kv.txn(
      [{ key: pk, target: 'create', value: 0 }, { key: dk, target: 'create', value: 0 }],
      [
        { op: 'put', key: dk, value: head },
        { op: 'put', key: pk, value: c.encodePending(m) },
      ],
      [{ op: 'get', key: pk }, { op: 'get', key: dk }],
    );
    if (r.succeeded) return { status: 'written' };
    if (chunks > 1) await this.kv.txn([], [{ op: 'delete', key: `${dk}/${nonce}/`, end: prefixEnd(`${dk}/${nonce}/`) }]);
    const [marker, dataHead] = r.gets;
    if (marker) {
      const existing = c.decodePending(marker.value);
      if (toHex(existing.entry) === toHex(m.entry)) return { status: 'exists' };
      return { status: 'conflict', existing };
    }
    if (dataHead) return { status: 'committed' };
    // Both vanished between the compare and the read (the marker was dropped): the caller may retry.
    return { status: 'exists' };
  }

  async pending(id: string, batchSeq: number): Promise<Pending | null> {
    const e = await this.kv.get(K.pend(id, batchSeq));
    return e ? { ...c.decodePending(e.value), modRev: e.modRev } : null;
  }

  /** Pending markers in (device, batch_seq) order, at most `limit` (0 = all). */
  async listPending(limit = 0): Promise<Pending[]> {
    const es = await this.kv.range('pend/', prefixEnd('pend/'), { limit });
    return es.map((e) => ({ ...c.decodePending(e.value), modRev: e.modRev }));
  }

  /**
   * Removes a pending marker if it is still the one read (mod revision); with
   * `withData` its data goes too (a rejected or expired batch). Never pass
   * withData for a batch whose entry is committed: the data is the log's.
   */
  async dropPending(p: Pending, withData: boolean): Promise<boolean> {
    const pk = K.pend(p.deviceId, p.batchSeq);
    const ops: Op[] = [{ op: 'delete', key: pk }];
    if (withData) {
      const dk = K.data(p.entry);
      const head = await this.kv.get(dk);
      ops.push({ op: 'delete', key: dk });
      if (head) {
        const n = c.decodeDataHead(head.value).nonce;
        ops.push({ op: 'delete', key: `${dk}/${n}/`, end: prefixEnd(`${dk}/${n}/`) });
      }
    }
    const r = await this.kv.txn([{ key: pk, target: 'mod', value: p.modRev }], ops);
    return r.succeeded;
  }

  /** The data of a batch still in the hot tier, or null. */
  async batchData(entry: Uint8Array): Promise<BatchData | null> {
    const dk = K.data(entry);
    const e = await this.kv.get(dk);
    if (!e) return null;
    const h = c.decodeDataHead(e.value);
    let blob = h.first;
    if (h.chunks > 1) {
      const parts = await this.kv.range(`${dk}/${h.nonce}/`, prefixEnd(`${dk}/${h.nonce}/`));
      if (parts.length !== h.chunks - 1) throw new LedgerError('STORE_CORRUPT', `batch data ${toHex(entry)}: ${parts.length + 1} of ${h.chunks} chunks present`);
      blob = Buffer.concat([h.first, ...parts.map((p) => p.value)]);
    }
    if (blob.length !== h.total) throw new LedgerError('STORE_CORRUPT', `batch data ${toHex(entry)}: ${blob.length} of ${h.total} bytes`);
    return c.decompressBatch(blob, `batch data ${toHex(entry)}`);
  }

  /** True when the hot tier holds data for `entry`. */
  async hasBatchData(entry: Uint8Array): Promise<boolean> {
    return (await this.kv.get(K.data(entry))) !== null;
  }

  /** Deletes the hot data of committed batches (after they were archived). */
  async deleteBatchData(entries: Uint8Array[]): Promise<void> {
    const per = Math.max(1, Math.floor(this.kv.limits.maxTxnOps / 2));
    for (let i = 0; i < entries.length; i += per) {
      const ops: Op[] = [];
      for (const entry of entries.slice(i, i + per)) {
        const dk = K.data(entry);
        ops.push({ op: 'delete', key: dk }, { op: 'delete', key: `${dk}/`, end: prefixEnd(`${dk}/`) });
      }
      await this.kv.txn([], ops);
    }
  }

  // ---------------------------------------------------------------- activity, registry, evidence

  async putActivity(deviceId: string, a: DeviceActivity): Promise<void> {
    await this.putActivities([[deviceId, a]]);
  }

  /** Many devices' activity in as few transactions as the limits allow. */
  async putActivities(list: [string, DeviceActivity][]): Promise<void> {
    const per = Math.max(1, this.kv.limits.maxTxnOps);
    for (let i = 0; i < list.length; i += per)
      await this.kv.txn([], list.slice(i, i + per).map(([id, a]) => ({ op: 'put' as const, key: K.seen(id, a.node), value: c.encodeActivity(a) })));
  }

  async activity(deviceId: string): Promise<DeviceActivity[]> {
    const es = await this.kv.range(`seen/${deviceId}/`, prefixEnd(`seen/${deviceId}/`));
    return es.map((e) => c.decodeActivity(e.value));
  }

  async putClaim(cl: StoredClaim): Promise<void> {
    await this.kv.txn([], [{ op: 'put', key: K.claim(cl.deviceId, cl.kid, cl.kind), value: c.encodeClaim(cl) }]);
  }

  /** Claims of one device, or of all devices. */
  async claims(deviceId?: string): Promise<StoredClaim[]> {
    const p = deviceId ? `reg/${deviceId}/` : 'reg/';
    const es = await this.kv.range(p, prefixEnd(p));
    return es.map((e) => c.decodeClaim(e.value));
  }

  async putEvidence(e: ForkEvidence): Promise<void> {
    await this.kv.txn([], [{ op: 'put', key: K.fork(e.deviceId, e.batchSeq, e.entry), value: c.encodeEvidence(e) }]);
  }

  async evidence(deviceId?: string): Promise<ForkEvidence[]> {
    const p = deviceId ? `fork/${deviceId}/` : 'fork/';
    const es = await this.kv.range(p, prefixEnd(p));
    return es.map((e) => c.decodeEvidence(e.value));
  }

  // ---------------------------------------------------------------- archive

  /** Records a sealed archive segment (once: false if that segment exists). */
  async putSegment(s: ArchiveSegment): Promise<boolean> {
    const k = K.arch(s.firstHeight);
    const r = await this.kv.txn([{ key: k, target: 'create', value: 0 }], [{ op: 'put', key: k, value: c.encodeSegment(s) }]);
    return r.succeeded;
  }

  async segments(): Promise<ArchiveSegment[]> {
    const es = await this.kv.range('arch/', prefixEnd('arch/'));
    return es.map((e) => c.decodeSegment(e.value));
  }

  // ---------------------------------------------------------------- election, maintenance

  campaign(nodeId: string, ttlSeconds: number): Leadership {
    return this.kv.campaign(ELECTION, nodeId, ttlSeconds);
  }

  leader(): Promise<string | undefined> {
    return this.kv.leader(ELECTION);
  }

  close(): Promise<void> {
    return this.kv.close();
  }
}
