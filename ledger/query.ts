// Reading the ledger for auditors and light nodes: batch data from both tiers
// (etcd, then the sealed archive files), proofs, receipts, device status,
// and event proof bundles (§4.4) by EPCIS eventID.
//
// Finding an event by its eventID: archive files carry a sorted index of
// event-id hashes; for the hot tier each serving process keeps an in-memory
// index (8-byte hash of the eventID → leaf and record; about 70 bytes per
// event) that it builds on the first event query and extends from the blocks
// committed since. It is bounded by the hot tier: archived blocks leave it.
import { toHex } from '../protocol/bytes.js';
import { encodeEventProof } from '../protocol/bundle.js';
import { parseBatch } from '../protocol/batch-sign.js';
import { decodeRecord } from '../protocol/record.js';
import { MerkleTree } from '../protocol/merkle.js';
import { join } from 'node:path';
import { ArchiveFile, checkBatchData, eventKey } from './archive.js';
import { LedgerError } from './errors.js';
import type { LogView } from './log/log.js';
import type { Registry } from './registry.js';
import type { LedgerStore } from './store/store.js';
import { prefixEnd } from './store/kv.js';
import type { ArchiveSegment, BatchData, BatchRef, DeviceActivity, HeadState } from './store/types.js';

const PACK = 65_536;

export interface DeviceStatus {
  deviceId: string;
  head: { batchSeq: number; lastSeq: number; lastLeaf: number; height: number; events: number; committedAt: number } | null;
  lastSeen: number | null;
  batchesSeen: number;
  rejects: number;
  lastReject: string | null;
  lastRejectTime: number | null;
  keys: { kid: string; revoked: boolean; revokedReason?: string; notBefore?: number; notAfter?: number }[];
  forkEvidence: number;
  pending: number;
}

export class LedgerReader {
  #segments: { at: number; list: ArchiveSegment[] } = { at: 0, list: [] };
  #files = new Map<string, ArchiveFile>();
  #events = new Map<string, number | number[]>();
  #indexedHeight = -1;
  #indexing: Promise<void> | null = null;

  constructor(
    readonly store: LedgerStore,
    readonly log: LogView,
    readonly registry: Registry,
    readonly archiveDir?: string,
  ) {}

  async head(): Promise<HeadState> {
    const { head } = await this.store.head();
    if (!head) throw new LedgerError('NOT_FOUND', 'the log is empty');
    return head;
  }

  async segments(maxAgeMs = 2000): Promise<ArchiveSegment[]> {
    if (Date.now() - this.#segments.at > maxAgeMs) this.#segments = { at: Date.now(), list: await this.store.segments() };
    return this.#segments.list;
  }

  #file(seg: ArchiveSegment): ArchiveFile {
    if (!this.archiveDir) throw new LedgerError('ARCHIVE', `block ${seg.firstHeight}..${seg.lastHeight} is archived (${seg.file}) and this node has no archive dir configured`);
    let f = this.#files.get(seg.file);
    if (f) this.#files.delete(seg.file);
    else f = ArchiveFile.open(join(this.archiveDir, seg.file));
    // A small LRU of open indexes (each holds 16 bytes per archived event).
    this.#files.set(seg.file, f);
    if (this.#files.size > 64) this.#files.delete(this.#files.keys().next().value as string);
    return f;
  }

  /** The data of a committed batch, from etcd or the archive; checked against the log. */
  async batchData(ref: Pick<BatchRef, 'entry' | 'leafIndex' | 'height' | 'deviceId' | 'batchSeq' | 'firstSeq' | 'count'>): Promise<BatchData> {
    let d = await this.store.batchData(ref.entry);
    if (!d) {
      let seg = (await this.segments()).find((s) => s.firstHeight <= ref.height && ref.height <= s.lastHeight);
      if (!seg) seg = (await this.segments(0)).find((s) => s.firstHeight <= ref.height && ref.height <= s.lastHeight);
      if (!seg) throw new LedgerError('STORE_CORRUPT', `batch ${ref.deviceId}#${ref.batchSeq} (leaf ${ref.leafIndex}) is neither in etcd nor in an archive segment`);
      d = this.#file(seg).batch(ref.leafIndex);
    }
    checkBatchData(d, ref.entry, ref.deviceId, ref.batchSeq, ref.firstSeq, ref.count, `leaf ${ref.leafIndex}`);
    return d;
  }

  async ref(deviceId: string, batchSeq: number): Promise<BatchRef> {
    const r = await this.store.ref(deviceId, batchSeq);
    if (!r) throw new LedgerError('NOT_FOUND', `device ${deviceId} has no committed batch ${batchSeq}`);
    return r;
  }

  /** The committed batch at log leaf `leafIndex` (by its block). */
  async refAtLeaf(leafIndex: number): Promise<BatchRef> {
    const head = await this.head();
    if (leafIndex >= head.size) throw new LedgerError('NOT_FOUND', `leaf ${leafIndex} is beyond the tree size ${head.size}`);
    let lo = 1;
    let hi = head.height;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const b = await this.store.block(mid);
      if (!b) throw new LedgerError('STORE_CORRUPT', `block ${mid} is missing`);
      if (b.size <= leafIndex) lo = mid + 1;
      else hi = mid;
    }
    const b = await this.store.block(lo);
    if (!b) throw new LedgerError('STORE_CORRUPT', `block ${lo} is missing`);
    const bb = b.batches[leafIndex - b.firstLeaf];
    return { deviceId: bb.deviceId, batchSeq: bb.batchSeq, entry: bb.entry, leafIndex, height: b.height, firstSeq: bb.firstSeq, count: bb.count };
  }

  /** A receipt for a committed batch against the current head (consistency from knownSize when given). */
  async receipt(deviceId: string, batchSeq: number, knownSize = 0): Promise<{ receipt: Uint8Array; ref: BatchRef; head: HeadState }> {
    const ref = await this.ref(deviceId, batchSeq);
    const head = await this.head();
    if (knownSize > head.size) throw new LedgerError('NOT_FOUND', `known_size ${knownSize} is beyond this log's size ${head.size}`);
    return { receipt: await this.log.receipt(head, ref.leafIndex, knownSize), ref, head };
  }

  // ---------------------------------------------------------------- events

  async #indexHot(): Promise<void> {
    const head = (await this.store.head()).head;
    if (!head) return;
    const archived = (await this.segments(0)).reduce((m, s) => Math.max(m, s.lastHeight), 0);
    if (this.#indexedHeight < archived) {
      // Blocks up to `archived` are found through the archive indexes; forget them here.
      const firstHot = (await this.store.block(archived + 1))?.firstLeaf ?? head.size;
      for (const [k, v] of this.#events) {
        const keep = (Array.isArray(v) ? v : [v]).filter((x) => Math.floor(x / PACK) >= firstHot);
        if (keep.length === 0) this.#events.delete(k);
        else this.#events.set(k, keep.length === 1 ? keep[0] : keep);
      }
      this.#indexedHeight = archived;
    }
    for (let h = this.#indexedHeight + 1; h <= head.height; h += 64) {
      for (const b of await this.store.blocks(h, Math.min(head.height, h + 63))) {
        for (let i = 0; i < b.batches.length; i++) {
          const d = await this.store.batchData(b.batches[i].entry);
          if (!d) continue; // archived meanwhile: its file indexes it
          d.records.forEach((r, j) => {
            const id = decodeRecord(r).event.eventID;
            if (typeof id !== 'string') return;
            const k = eventKey(id).toString('hex');
            const v = (b.firstLeaf + i) * PACK + j;
            const prev = this.#events.get(k);
            this.#events.set(k, prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]);
          });
        }
        this.#indexedHeight = b.height;
      }
    }
  }

  /** Where an event is: its batch and record index. */
  async findEvent(eventId: string): Promise<{ ref: BatchRef; index: number; data: BatchData }> {
    // Catch the in-memory index up (one at a time).
    while (this.#indexing) await this.#indexing;
    this.#indexing = this.#indexHot().finally(() => (this.#indexing = null));
    await this.#indexing;
    const check = async (cands: [number, number][]) => {
      for (const [leaf, j] of cands) {
        const ref = await this.refAtLeaf(leaf);
        const data = await this.batchData(ref);
        const rec = data.records[j];
        if (rec && decodeRecord(rec).event.eventID === eventId) return { ref, index: j, data };
      }
      return null;
    };
    const hit = this.#events.get(eventKey(eventId).toString('hex'));
    const hot = await check((hit === undefined ? [] : Array.isArray(hit) ? hit : [hit]).map((x) => [Math.floor(x / PACK), x % PACK]));
    if (hot) return hot;
    // Archived: newest segment first.
    for (const seg of [...(await this.segments(0))].reverse()) {
      let cands: [number, number][];
      try {
        cands = this.#file(seg).findEvent(eventId);
      } catch {
        continue; // a file this node lacks: keep looking elsewhere
      }
      const found = await check(cands);
      if (found) return found;
    }
    throw new LedgerError('NOT_FOUND', `no committed event with eventID ${JSON.stringify(eventId)}`);
  }

  /** Event proof bundles (§4.4) for records of one committed batch, against `head`. */
  async bundles(ref: BatchRef, head: HeadState, data?: BatchData, only?: number): Promise<{ seq: number; eventId?: string; bytes: Uint8Array }[]> {
    const d = data ?? (await this.batchData(ref));
    const { kid } = parseBatch(d.sign1);
    const key = await this.registry.keyByKid(ref.deviceId, kid);
    if (!key) throw new LedgerError('NOT_FOUND', `the key ${toHex(kid)} that signed ${ref.deviceId}#${ref.batchSeq} is not in the registry`);
    const receipt = await this.log.receipt(head, ref.leafIndex);
    const tree = MerkleTree.fromLeaves(d.records);
    const out: { seq: number; eventId?: string; bytes: Uint8Array }[] = [];
    for (let j = 0; j < d.records.length; j++) {
      if (only !== undefined && j !== only) continue;
      const id = decodeRecord(d.records[j]).event.eventID;
      out.push({
        seq: ref.firstSeq + j,
        eventId: typeof id === 'string' ? id : undefined,
        bytes: encodeEventProof({ record: d.records[j], index: j, path: tree.inclusionProof(j), batch: d.sign1, receipt, deviceKey: key }),
      });
    }
    return out;
  }

  async eventBundle(eventId: string): Promise<Uint8Array> {
    const { ref, index, data } = await this.findEvent(eventId);
    const head = await this.head();
    return (await this.bundles(ref, head, data, index))[0].bytes;
  }

  // ---------------------------------------------------------------- devices

  async deviceStatus(deviceId: string): Promise<DeviceStatus> {
    const [head, activity, keys, evidence, pending] = await Promise.all([
      this.store.device(deviceId),
      this.store.activity(deviceId),
      this.registry.keys(deviceId, true),
      this.store.evidence(deviceId),
      this.store.kv.range(`pend/${deviceId}/`, prefixEnd(`pend/${deviceId}/`), { keysOnly: true }),
    ]);
    const merged = mergeActivity(activity);
    if (!head && keys.length === 0 && activity.length === 0) throw new LedgerError('NOT_FOUND', `unknown device ${deviceId}`);
    return {
      deviceId,
      head: head ? { batchSeq: head.batchSeq, lastSeq: head.lastSeq, lastLeaf: head.lastLeaf, height: head.height, events: head.events, committedAt: head.time } : null,
      lastSeen: merged.lastSeen || null,
      batchesSeen: merged.batches,
      rejects: merged.rejects,
      lastReject: merged.lastReject ?? null,
      lastRejectTime: merged.lastRejectTime ?? null,
      keys: keys.map((k) => ({ kid: toHex(k.kid), revoked: !!k.revoked, revokedReason: k.revoked?.reason, notBefore: k.notBefore, notAfter: k.notAfter })),
      forkEvidence: evidence.length,
      pending: pending.length,
    };
  }
}

function mergeActivity(list: DeviceActivity[]): { lastSeen: number; batches: number; rejects: number; lastReject?: string; lastRejectTime?: number } {
  const m = { lastSeen: 0, batches: 0, rejects: 0 } as { lastSeen: number; batches: number; rejects: number; lastReject?: string; lastRejectTime?: number };
  for (const a of list) {
    m.lastSeen = Math.max(m.lastSeen, a.lastSeen);
    m.batches += a.batches;
    m.rejects += a.rejects;
    if (a.lastRejectTime && (!m.lastRejectTime || a.lastRejectTime > m.lastRejectTime)) {
      m.lastRejectTime = a.lastRejectTime;
      m.lastReject = a.lastReject;
    }
  }
  return m;
}

