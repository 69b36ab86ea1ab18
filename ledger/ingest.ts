// Ingest (ARCHITECTURE §5): whichever ledger process receives a batch from the
// shared subscription verifies it and writes it, records included, as pending
// (compressed, content-addressed by its log leaf entry). Answers that do not
// need the sequencer are given here at once:
//   rejected  — bad CBOR, oversize, unknown/revoked device, bad signature,
//               high-S, bad records or root, a break in the chain, a fork;
//   duplicate — the batch is committed: the receipt again (against the
//               latest signed head, with a consistency proof from known_size);
//   gap       — batch_seq too far ahead of the committed head.
// A batch within the pending window but ahead of a missing one is stored and
// waits (batches of one device may arrive out of order through the shared
// subscription); the sequencer tells the device if the gap persists.
import { equalBytes, toHex } from '../protocol/bytes.js';
import { ReceiptStatus, type ReceiptMsg } from '../protocol/receipt-msg.js';
import { topics } from '../protocol/topics.js';
import { errorText } from './errors.js';
import type { Logger } from './logger.js';
import type { LedgerMetrics } from './metrics.js';
import type { Publisher } from './publisher.js';
import type { Registry } from './registry.js';
import type { LogView } from './log/log.js';
import type { LedgerStore } from './store/store.js';
import type { DeviceActivity, DeviceHead, ForkEvidence } from './store/types.js';
import { continuesChain, verifyBatchMessage, type RejectClass, type VerifiedBatch } from './verify.js';

export interface IngestOptions {
  nodeId: string;
  prefix: string;
  /** Batches a device may have pending beyond its committed head (default 64). */
  maxPendingPerDevice?: number;
  maxMessageBytes?: number;
  /** How long a committed device head read by ingest is reused (default 1000 ms; 0 = read every time). */
  headCacheMs?: number;
}

export type Outcome =
  | { kind: 'pending'; deviceId: string; batchSeq: number }
  | { kind: 'already-pending'; deviceId: string; batchSeq: number }
  | { kind: 'duplicate'; deviceId: string; batchSeq: number }
  | { kind: 'gap'; deviceId: string; batchSeq: number; nextSeq: number }
  | { kind: 'rejected'; deviceId?: string; batchSeq: number; cls: RejectClass; reason: string }
  | { kind: 'ignored'; reason: string }
  | { kind: 'error'; deviceId?: string; reason: string };

/** Per-device activity of this node, flushed to the store now and then. */
export class ActivityTracker {
  #m = new Map<string, DeviceActivity>();
  #dirty = new Set<string>();
  constructor(readonly store: LedgerStore, readonly node: string) {}
  seen(id: string): void {
    const a = this.#get(id);
    a.lastSeen = Date.now();
    a.batches++;
    this.#dirty.add(id);
  }
  reject(id: string, reason: string): void {
    const a = this.#get(id);
    a.rejects++;
    a.lastReject = reason.slice(0, 300);
    a.lastRejectTime = Date.now();
    this.#dirty.add(id);
  }
  #get(id: string): DeviceActivity {
    let a = this.#m.get(id);
    if (!a) {
      a = { node: this.node, lastSeen: 0, batches: 0, rejects: 0 };
      this.#m.set(id, a);
    }
    return a;
  }
  async flush(): Promise<void> {
    const ids = [...this.#dirty];
    this.#dirty.clear();
    if (ids.length === 0) return;
    try {
      const out: [string, DeviceActivity][] = [];
      for (const id of ids) {
        // Counters are per node; start from what this node stored before a restart.
        const a = this.#m.get(id)! as DeviceActivity & { loaded?: boolean };
        if (!a.loaded) {
          const prev = (await this.store.activity(id)).find((x) => x.node === this.node);
          if (prev) {
            a.batches += prev.batches;
            a.rejects += prev.rejects;
            if (!a.lastReject && prev.lastReject) {
              a.lastReject = prev.lastReject;
              a.lastRejectTime = prev.lastRejectTime;
            }
          }
          a.loaded = true;
        }
        const { loaded: _l, ...rec } = a;
        out.push([id, rec]);
      }
      await this.store.putActivities(out);
    } catch {
      for (const id of ids) this.#dirty.add(id);
    }
  }
}

export class Ingest {
  readonly o: Required<IngestOptions>;
  /**
   * Committed device heads seen recently (≤ headTtlMs old). A stale head is
   * safe here: committed state only grows, so a stale head can only make ingest
   * defer a decision to the sequencer (which re-checks everything in the one
   * commit), never give a wrong answer; answers that claim something is
   * committed (duplicates) always read the store.
   */
  #heads = new Map<string, { at: number; head: DeviceHead | null }>();
  constructor(
    readonly store: LedgerStore,
    readonly registry: Registry,
    readonly log: LogView,
    readonly publisher: Publisher,
    readonly metrics: LedgerMetrics,
    readonly logger: Logger,
    readonly activity: ActivityTracker,
    o: IngestOptions,
  ) {
    this.o = { maxPendingPerDevice: 64, maxMessageBytes: 16 * 1024 * 1024, headCacheMs: 1000, ...o };
  }

  /** Handles one message of the batch topic; never throws. */
  async handle(topic: string, payload: Uint8Array): Promise<Outcome> {
    const id = topics.deviceOf(this.o.prefix, topic, 'batch');
    if (!id) {
      this.metrics.mqttDropped.inc();
      this.logger.warn('ingest: message on a topic that names no valid device, ignored', { topic: topic.slice(0, 200) });
      return { kind: 'ignored', reason: 'topic names no valid device' };
    }
    this.metrics.batchesReceived.inc();
    this.activity.seen(id);
    try {
      const v = await verifyBatchMessage(payload, id, this.registry, { maxMessageBytes: this.o.maxMessageBytes });
      if (!v.ok) return this.#reject(id, v.batchSeq, v.cls, v.reason);
      if (v.request) return await this.#request(id, v.header.batchSeq, v.entry, v.knownSize);
      return await this.#place(id, v.batch);
    } catch (e) {
      this.metrics.storeErrors.inc({ op: 'ingest' });
      this.logger.warn('ingest: batch not processed (the device will resend)', { device: id, error: errorText(e) });
      return { kind: 'error', deviceId: id, reason: errorText(e) };
    }
  }

  async #place(id: string, b: VerifiedBatch): Promise<Outcome> {
    const seq = b.header.batchSeq;
    const cached = this.#heads.get(id);
    const read = async () => {
      const h = await this.store.device(id);
      this.#heads.set(id, { at: Date.now(), head: h });
      if (this.#heads.size > 100_000) this.#heads.delete(this.#heads.keys().next().value as string);
      return h;
    };
    const fromCache = !!cached && Date.now() - cached.at < this.o.headCacheMs;
    let head = fromCache ? cached!.head : await read();
    // A gap answer is a statement about the committed head: never from the cache.
    if (fromCache && seq > (head?.batchSeq ?? 0) + this.o.maxPendingPerDevice) head = await read();
    const committed = head?.batchSeq ?? 0;
    if (seq <= committed) return this.#alreadyCommitted(id, b);
    const link = { batchSeq: seq, prev: b.header.prev, firstSeq: b.header.firstSeq, firstPrev: b.firstPrev };
    if (seq === committed + 1) {
      const why = continuesChain(head, link);
      if (why) {
        await this.#evidence(id, b, 'chain', head?.lastEntry ?? new Uint8Array(32), why);
        return this.#reject(id, seq, 'chain', `${why}: fork evidence kept`);
      }
    } else if (seq > committed + this.o.maxPendingPerDevice) {
      this.metrics.gaps.inc();
      this.#send(id, { batchSeq: seq, status: ReceiptStatus.GAP, nextSeq: committed + 1 });
      return { kind: 'gap', deviceId: id, batchSeq: seq, nextSeq: committed + 1 };
    }
    const r = await this.store.putPending(
      {
        deviceId: id,
        batchSeq: seq,
        entry: b.entry,
        prev: b.header.prev,
        firstSeq: b.header.firstSeq,
        count: b.header.count,
        firstPrev: b.firstPrev,
        lastRecordHash: b.lastRecordHash,
        knownSize: b.knownSize,
        received: Date.now(),
        node: this.o.nodeId,
        bytes: 0,
      },
      { sign1: b.sign1, records: b.records },
    );
    switch (r.status) {
      case 'written':
        this.metrics.batchesPending.inc();
        return { kind: 'pending', deviceId: id, batchSeq: seq };
      case 'exists':
        this.metrics.duplicates.inc({ state: 'pending' });
        return { kind: 'already-pending', deviceId: id, batchSeq: seq };
      case 'committed':
        return this.#alreadyCommitted(id, b);
      case 'conflict': {
        const reason = `batch ${seq} conflicts with pending batch ${seq} (${toHex(r.existing.entry)}): fork evidence kept`;
        await this.#evidence(id, b, 'pending', r.existing.entry, reason);
        return this.#reject(id, seq, 'fork', reason);
      }
    }
  }

  /**
   * A receipt request (a batch message without records, signed by the device):
   * a committed batch gets a fresh receipt proven from the request's
   * known_size; a pending one gets nothing now (its block's receipt follows);
   * one the ledger does not hold is a gap, so the device sends it whole.
   */
  async #request(id: string, seq: number, entry: Uint8Array, knownSize: number): Promise<Outcome> {
    this.metrics.receiptRequests.inc();
    const ref = await this.store.ref(id, seq);
    if (ref && equalBytes(ref.entry, entry)) {
      const { head } = await this.store.head();
      if (!head) throw new Error('a committed batch but no head');
      const receipt = await this.log.receipt(head, ref.leafIndex, knownSize <= head.size ? knownSize : 0);
      this.#send(id, { batchSeq: seq, status: ReceiptStatus.DUPLICATE, receipt });
      return { kind: 'duplicate', deviceId: id, batchSeq: seq };
    }
    if (ref) return this.#reject(id, seq, 'fork', `receipt request for batch ${seq} (${toHex(entry)}) conflicts with committed batch ${seq} (${toHex(ref.entry)})`);
    const pending = await this.store.pending(id, seq);
    if (pending && equalBytes(pending.entry, entry)) return { kind: 'already-pending', deviceId: id, batchSeq: seq };
    const committed = (await this.store.device(id))?.batchSeq ?? 0;
    this.#send(id, { batchSeq: seq, status: ReceiptStatus.GAP, nextSeq: Math.min(seq, committed + 1) });
    return { kind: 'gap', deviceId: id, batchSeq: seq, nextSeq: Math.min(seq, committed + 1) };
  }

  /** batch_seq at or below the committed head: the same batch (duplicate) or a fork. */
  async #alreadyCommitted(id: string, b: VerifiedBatch): Promise<Outcome> {
    const seq = b.header.batchSeq;
    const ref = await this.store.ref(id, seq);
    if (ref && equalBytes(ref.entry, b.entry)) {
      const { head } = await this.store.head();
      if (!head) throw new Error('a committed batch but no head');
      const receipt = await this.log.receipt(head, ref.leafIndex, b.knownSize <= head.size ? b.knownSize : 0);
      this.metrics.duplicates.inc({ state: 'committed' });
      this.#send(id, { batchSeq: seq, status: ReceiptStatus.DUPLICATE, receipt });
      return { kind: 'duplicate', deviceId: id, batchSeq: seq };
    }
    if (!ref) throw new Error(`device ${id} has batch ${seq} committed but no ref for it`);
    const reason = `batch ${seq} conflicts with committed batch ${seq} (${toHex(ref.entry)}): fork evidence kept`;
    await this.#evidence(id, b, 'committed', ref.entry, reason);
    return this.#reject(id, seq, 'fork', reason);
  }

  async #evidence(id: string, b: VerifiedBatch, kind: ForkEvidence['kind'], otherEntry: Uint8Array, reason: string): Promise<void> {
    await this.store.putEvidence({ deviceId: id, batchSeq: b.header.batchSeq, kind, sign1: b.sign1, entry: b.entry, otherEntry, reason, detected: Date.now(), node: this.o.nodeId });
    this.metrics.forks.inc({ kind });
    this.metrics.forkAlarm.set(1);
    this.logger.error('ALARM fork evidence: a device signed conflicting batches', { device: id, batch_seq: b.header.batchSeq, kind, reason });
  }

  #reject(id: string, batchSeq: number, cls: RejectClass, reason: string): Outcome {
    this.metrics.batchesRejected.inc({ reason: cls });
    this.activity.reject(id, reason);
    this.logger.warn('ingest: batch rejected', { device: id, batch_seq: batchSeq, class: cls, reason });
    this.#send(id, { batchSeq, status: ReceiptStatus.REJECTED, reason: reason.slice(0, 1000) });
    return { kind: 'rejected', deviceId: id, batchSeq, cls, reason };
  }

  #send(id: string, msg: ReceiptMsg): void {
    this.publisher.receipt(id, msg);
    this.metrics.receipts.inc({ status: ['committed', 'duplicate', 'gap', 'rejected'][msg.status] });
  }
}
