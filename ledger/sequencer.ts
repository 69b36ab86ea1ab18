// The sequencer (ARCHITECTURE §5): one active at a time, elected in etcd on a
// lease; every `block_interval` it orders the pending batches, commits one
// block in ONE transaction guarded by compare-and-set on the head's revision,
// signs the tree head once, and publishes the head and one receipt per batch.
//
// Safety does not depend on the election: a second sequencer (a stale leader
// whose lease ran out, or one started without the election) can only lose
// the compare-and-set, so the log never forks; the election only keeps them
// from wasting work.
//
// What a round does with each device's pending batches, in batch_seq order:
// - continues the committed chain (batch_seq, prev hash, first_seq, first
//   record's prev) → into the block;
// - batch_seq already committed → the same batch: a stale marker, dropped;
//   another batch: fork evidence, rejected;
// - the right batch_seq but not linking → fork evidence ("chain"), rejected;
// - batch_seq beyond the next → waits for the missing one; after gap_timeout
//   the device is told (status gap, next_seq), after pending_ttl it is dropped
//   (the device still holds it and resends).
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { equalBytes, toHex } from '../protocol/bytes.js';
import { CompactRange, leafHash } from '../protocol/merkle.js';
import { signTreeHead } from '../protocol/receipt.js';
import { ReceiptStatus } from '../protocol/receipt-msg.js';
import type { Signer } from '../drivers/signer.js';
import { errorText } from './errors.js';
import type { Logger } from './logger.js';
import type { LedgerMetrics } from './metrics.js';
import type { Publisher } from './publisher.js';
import { TileAppender } from './log/tiles.js';
import type { LogView } from './log/log.js';
import { commitOps, type LedgerStore, type Pending } from './store/store.js';
import type { BatchRef, Block, DeviceHead, ForkEvidence, HeadState } from './store/types.js';
import type { Leadership } from './store/kv.js';
import { continuesChain } from './verify.js';

export interface SequencerOptions {
  nodeId: string;
  chainId: string;
  /** Block interval (default 1000 ms, at least 100). */
  blockIntervalMs?: number;
  /** At most this many batches per block (the transaction limits cap it further). */
  maxBatchesPerBlock?: number;
  /** Pending markers read per round. */
  scanLimit?: number;
  /** A batch waiting behind a missing one for this long makes the device hear "gap". */
  gapTimeoutMs?: number;
  /** …and is dropped after this long. */
  pendingTtlMs?: number;
  /** Election lease TTL in seconds (a standby takes over within about this after a crash). */
  electionTtlS?: number;
  /** false: run without the election (tests of the compare-and-set). */
  election?: boolean;
  /** Ingest node ids → the sequencer updates metrics, nothing else. */
  archivedHeight?: () => number;
}

interface State {
  head: HeadState | null;
  rev: number;
  range: CompactRange;
  tiles: TileAppender;
  devices: Map<string, DeviceHead | null>;
}

export interface RoundResult {
  committed: number;
  blocks: number;
  rejected: number;
  gaps: number;
  dropped: number;
  /** True when pending batches were left because the block was full. */
  more: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Sequencer extends EventEmitter {
  readonly o: Required<Omit<SequencerOptions, 'archivedHeight'>> & Pick<SequencerOptions, 'archivedHeight'>;
  #state: State | null = null;
  #active = false;
  #running = false;
  #leadership: Leadership | null = null;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #gapNotified = new Map<string, number>();
  /**
   * Per device, the tree size of the last receipts this sequencer sent it. A
   * device advances its trusted head with every receipt it verifies, so the
   * next block's receipts are proven from there rather than from the
   * known_size its batch carried (older, once the device has a window of
   * batches in flight across blocks): otherwise every such receipt would be
   * stale on arrival and cost a receipt request. A device that missed those
   * receipts finds the proof from a head it does not hold, and asks.
   */
  #lastReceiptSize = new Map<string, number>();

  constructor(
    readonly store: LedgerStore,
    readonly log: LogView,
    readonly signer: Signer,
    readonly publisher: Publisher,
    readonly metrics: LedgerMetrics,
    readonly logger: Logger,
    o: SequencerOptions,
  ) {
    super();
    this.o = {
      nodeId: o.nodeId,
      chainId: o.chainId,
      blockIntervalMs: Math.max(100, o.blockIntervalMs ?? 1000),
      maxBatchesPerBlock: o.maxBatchesPerBlock ?? 10_000,
      scanLimit: o.scanLimit ?? 20_000,
      gapTimeoutMs: o.gapTimeoutMs ?? 5_000,
      pendingTtlMs: o.pendingTtlMs ?? 10 * 60_000,
      electionTtlS: o.electionTtlS ?? 3,
      election: o.election ?? true,
      archivedHeight: o.archivedHeight,
    };
  }

  get active(): boolean {
    return this.#active;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    if (this.o.election) this.#campaign();
    else this.#setActive(true, 'no election (compare-and-set only)');
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    if (this.#leadership) await this.#leadership.resign();
    this.#leadership = null;
    this.#setActive(false, 'stopped');
  }

  #setActive(v: boolean, why: string): void {
    if (this.#active === v) return;
    this.#active = v;
    this.#state = null;
    this.metrics.role.set(v ? 1 : 0);
    if (v) this.logger.info('sequencer: elected, now active', { node: this.o.nodeId, why });
    else this.logger.info('sequencer: standby', { node: this.o.nodeId, why });
    this.emit(v ? 'active' : 'standby');
  }

  #campaign(): void {
    if (!this.#running) return;
    const l = this.store.campaign(this.o.nodeId, this.o.electionTtlS);
    this.#leadership = l;
    l.on('elected', () => {
      if (this.#leadership === l) this.#setActive(true, 'won the election');
      this.#wake?.();
    });
    l.on('lost', (e: Error) => {
      if (this.#leadership !== l) return;
      this.#setActive(false, `leadership lost: ${errorText(e)}`);
      this.#leadership = null;
      if (this.#running) setTimeout(() => this.#campaign(), 500);
    });
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      const t0 = Date.now();
      let more = false;
      if (this.#active) {
        try {
          const r = await this.round();
          more = r.more;
          failures = 0;
        } catch (e) {
          failures++;
          this.#state = null;
          this.metrics.storeErrors.inc({ op: 'sequencer_round' });
          this.logger.warn('sequencer: round failed', { error: errorText(e), failures });
        }
      }
      if (!this.#running) break;
      const wait = more ? 0 : failures ? Math.min(2000, 200 * failures) : Math.max(0, this.o.blockIntervalMs - (Date.now() - t0));
      if (wait > 0) await new Promise<void>((r) => {
        const t = setTimeout(r, wait);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.#wake = null;
    }
  }

  async #load(): Promise<State> {
    const { head, rev } = await this.store.head();
    const size = head?.size ?? 0;
    const range = head ? CompactRange.fromHashes(head.size, head.range) : new CompactRange();
    const tiles = await TileAppender.load(size, this.log.read);
    this.metrics.treeSize.set(size);
    this.metrics.height.set(head?.height ?? 0);
    return { head, rev, range, tiles, devices: new Map() };
  }

  /** One round: commit what can be committed (one block, or several when more is pending than fits). */
  async round(): Promise<RoundResult> {
    const res: RoundResult = { committed: 0, blocks: 0, rejected: 0, gaps: 0, dropped: 0, more: false };
    if (!this.#state) this.#state = await this.#load();
    const st = this.#state;
    const pending = await this.store.listPending(this.o.scanLimit);
    this.metrics.pending.set(pending.length);
    if (pending.length === 0) return res;
    const now = Date.now();

    // Per device, in batch_seq order (the key order already is).
    const byDevice = new Map<string, Pending[]>();
    for (const p of pending) {
      const l = byDevice.get(p.deviceId);
      if (l) l.push(p);
      else byDevice.set(p.deviceId, [p]);
    }
    const unknown = [...byDevice.keys()].filter((id) => !st.devices.has(id));
    await Promise.all(unknown.map(async (id) => st.devices.set(id, await this.store.device(id))));

    const limits = this.store.kv.limits;
    const maxBatches = Math.max(1, Math.min(this.o.maxBatchesPerBlock, limits.maxTxnOps - 1));
    const accepted: Pending[] = [];
    const newHeads = new Map<string, DeviceHead>();
    const actions: (() => Promise<void>)[] = [];
    let bytes = 4096;
    let full = false;

    for (const [id, list] of byDevice) {
      let cur: DeviceHead | null = st.devices.get(id) ?? null;
      for (const p of list) {
        const committedSeq = cur?.batchSeq ?? 0;
        if (p.batchSeq <= committedSeq) {
          actions.push(() => this.#settleStale(p));
          continue;
        }
        if (p.batchSeq === committedSeq + 1) {
          const why = continuesChain(cur, p);
          if (why) {
            actions.push(() => this.#rejectChain(p, why, cur));
            res.rejected++;
            continue;
          }
          // Budget: ops, compares and bytes of the one transaction.
          const devs = newHeads.size + (newHeads.has(id) ? 0 : 1);
          const tiles = st.tiles.tilesTouched(accepted.length + 1);
          const ops = commitOps(devs, accepted.length + 1, tiles);
          const addBytes = 512 + p.deviceId.length * 4;
          if (accepted.length + 1 > maxBatches || ops > limits.maxTxnOps || bytes + addBytes + 8192 * tiles > limits.maxRequestBytes) {
            full = true;
            break;
          }
          bytes += addBytes;
          accepted.push(p);
          cur = advance(cur, p, id);
          newHeads.set(id, cur);
          continue;
        }
        // A gap: this and everything after it waits for the missing batch.
        const age = now - p.received;
        if (age > this.o.pendingTtlMs) {
          for (const q of list.filter((x) => x.batchSeq >= p.batchSeq)) actions.push(() => this.#drop(q, true, 'expired waiting behind a gap'));
          res.dropped += list.filter((x) => x.batchSeq >= p.batchSeq).length;
        }
        const key = `${id}/${committedSeq + 1}`;
        if (age > this.o.gapTimeoutMs && now - (this.#gapNotified.get(key) ?? 0) > this.o.gapTimeoutMs) {
          this.#gapNotified.set(key, now);
          if (this.#gapNotified.size > 100_000) this.#gapNotified.clear();
          const next = committedSeq + 1;
          actions.push(async () => {
            this.metrics.gaps.inc();
            this.#publish(id, { batchSeq: p.batchSeq, status: ReceiptStatus.GAP, nextSeq: next });
            this.logger.info('sequencer: gap', { device: id, waiting: p.batchSeq, next_seq: next });
          });
          res.gaps++;
        }
        break;
      }
      if (full) break;
    }
    res.more = full;

    if (accepted.length > 0) {
      const ok = await this.#commit(st, accepted, newHeads, now);
      if (ok) {
        res.committed = accepted.length;
        res.blocks = 1;
      } else {
        // Another sequencer moved the head: what this round decided may rest on a stale view.
        return { committed: 0, blocks: 0, rejected: 0, gaps: 0, dropped: 0, more: false };
      }
    }
    for (const a of actions) {
      try {
        await a();
      } catch (e) {
        this.logger.warn('sequencer: settling a pending batch failed', { error: errorText(e) });
      }
    }
    return res;
  }

  async #commit(st: State, accepted: Pending[], newHeads: Map<string, DeviceHead>, now: number): Promise<boolean> {
    const t0 = performance.now();
    const height = (st.head?.height ?? 0) + 1;
    const firstLeaf = st.head?.size ?? 0;
    const range = st.range.clone();
    for (const p of accepted) {
      const lh = leafHash(p.entry);
      range.append(lh);
      st.tiles.append(lh);
    }
    const size = range.size;
    const root = range.root();
    const sth = await signTreeHead(this.signer, { size, root, chainId: this.o.chainId, iat: Math.floor(now / 1000) });
    const heads = [...newHeads.values()];
    const refs: BatchRef[] = accepted.map((p, i) => ({ deviceId: p.deviceId, batchSeq: p.batchSeq, entry: p.entry, leafIndex: firstLeaf + i, height, firstSeq: p.firstSeq, count: p.count }));
    for (const h of heads) {
      const last = refs.filter((r) => r.deviceId === h.deviceId).at(-1)!;
      h.lastLeaf = last.leafIndex;
      h.height = height;
      h.time = now;
    }
    const block: Block = {
      height,
      firstLeaf,
      size,
      root,
      time: now,
      sth,
      sequencer: this.o.nodeId,
      batches: accepted.map((p) => ({ deviceId: p.deviceId, batchSeq: p.batchSeq, entry: p.entry, firstSeq: p.firstSeq, count: p.count, bytes: p.bytes, received: p.received })),
    };
    const head: HeadState = { height, size, root, range: range.hashes, time: now, sth, sequencer: this.o.nodeId, nonce: new Uint8Array(randomBytes(16)) };
    const tiles = st.tiles.takeDirty();
    let ok = false;
    let rev = 0;
    try {
      const r = await this.store.commitBlock(st.rev, { head, block, devices: heads, refs, tiles, pending: accepted.map((p) => ({ deviceId: p.deviceId, batchSeq: p.batchSeq, modRev: p.modRev })) });
      ok = r.ok;
      rev = r.rev;
    } catch (e) {
      // Ambiguous: the commit may have happened (deadline after success). The head says.
      this.#state = null;
      const back = await this.store.head().catch(() => null);
      if (back?.head && equalBytes(back.head.nonce, head.nonce)) {
        ok = true;
        rev = back.rev;
        this.logger.info('sequencer: commit confirmed after an ambiguous error', { height, error: errorText(e) });
      } else throw e;
    }
    if (!ok) {
      // Our own commit, retried after an ambiguous failure, fails its compare: the head says.
      const back = await this.store.head().catch(() => null);
      if (back?.head && equalBytes(back.head.nonce, head.nonce)) {
        ok = true;
        rev = back.rev;
      }
    }
    if (!ok) {
      // The head moved (another sequencer) or a marker changed: start over from the store.
      this.#state = null;
      this.metrics.casConflicts.inc();
      this.logger.warn('sequencer: block not committed: the head or a pending batch changed (another sequencer?)', { height });
      return false;
    }
    // Committed: this is now the log.
    if (this.#state) {
      st.head = head;
      st.rev = rev;
      st.range = range;
      for (const h of heads) st.devices.set(h.deviceId, h);
    } else {
      this.#state = null;
    }
    for (const [level, index, hashes] of tiles) this.log.cache.put(level, index, hashes);
    const seconds = (performance.now() - t0) / 1000;
    this.metrics.blockSeconds.observe(seconds);
    this.metrics.blocks.inc();
    this.metrics.batchesCommitted.inc({}, accepted.length);
    this.metrics.eventsCommitted.inc({}, accepted.reduce((a, p) => a + p.count, 0));
    this.metrics.treeSize.set(size);
    this.metrics.height.set(height);
    for (const p of accepted) this.metrics.lagSeconds.observe(Math.max(0, now - p.received) / 1000);
    this.logger.info('sequencer: block committed', { height, batches: accepted.length, size, ms: Math.round(seconds * 1000) });
    this.emit('block', block);

    this.publisher.head(sth);
    const receiptSizes: [string, number][] = [];
    for (let i = 0; i < accepted.length; i++) {
      const p = accepted[i];
      try {
        // known_size 0: the device holds no head yet, so no proof at all (it trusts its first receipt).
        const from = p.knownSize > 0 ? Math.max(p.knownSize, this.#lastReceiptSize.get(p.deviceId) ?? 0) : 0;
        const receipt = await this.log.receipt(head, firstLeaf + i, from < size ? from : p.knownSize);
        this.#publish(p.deviceId, { batchSeq: p.batchSeq, status: ReceiptStatus.COMMITTED, receipt });
      } catch (e) {
        this.logger.warn('sequencer: receipt failed (the device will resend and get it as a duplicate)', { device: p.deviceId, batch_seq: p.batchSeq, error: errorText(e) });
      }
      receiptSizes.push([p.deviceId, size]);
    }
    // After the block's receipts, all proven from the same head per device.
    for (const [d, sz] of receiptSizes) {
      this.#lastReceiptSize.delete(d);
      this.#lastReceiptSize.set(d, sz);
    }
    while (this.#lastReceiptSize.size > 100_000) this.#lastReceiptSize.delete(this.#lastReceiptSize.keys().next().value as string);
    return true;
  }

  #publish(deviceId: string, msg: Parameters<Publisher['receipt']>[1]): void {
    this.publisher.receipt(deviceId, msg);
    this.metrics.receipts.inc({ status: ['committed', 'duplicate', 'gap', 'rejected'][msg.status] });
  }

  /** A marker for a batch_seq the device already has committed. */
  async #settleStale(p: Pending): Promise<void> {
    const ref = await this.store.ref(p.deviceId, p.batchSeq);
    if (ref && equalBytes(ref.entry, p.entry)) {
      // The same batch arrived twice and was written after its commit: drop the marker, keep the data
      // (unless that block's data was archived meanwhile, then the copy goes too).
      const archived = this.o.archivedHeight?.() ?? 0;
      await this.#drop(p, ref.height <= archived, 'already committed');
      return;
    }
    const reason = `batch ${p.batchSeq} conflicts with committed batch ${p.batchSeq}${ref ? ` (${toHex(ref.entry)})` : ''}: fork evidence kept`;
    await this.#evidence(p, 'committed', ref?.entry ?? new Uint8Array(32), reason);
    await this.#drop(p, true, 'fork');
    this.#reject(p, reason, 'fork');
  }

  async #rejectChain(p: Pending, why: string, head: DeviceHead | null): Promise<void> {
    const reason = `${why}: fork evidence kept`;
    await this.#evidence(p, 'chain', head?.lastEntry ?? new Uint8Array(32), reason);
    await this.#drop(p, true, 'chain');
    this.#reject(p, reason, 'chain');
  }

  #reject(p: Pending, reason: string, cls: string): void {
    this.metrics.batchesRejected.inc({ reason: cls });
    this.#publish(p.deviceId, { batchSeq: p.batchSeq, status: ReceiptStatus.REJECTED, reason });
  }

  async #evidence(p: Pending, kind: ForkEvidence['kind'], otherEntry: Uint8Array, reason: string): Promise<void> {
    const data = await this.store.batchData(p.entry);
    await this.store.putEvidence({ deviceId: p.deviceId, batchSeq: p.batchSeq, kind, sign1: data?.sign1 ?? new Uint8Array(0), entry: p.entry, otherEntry, reason, detected: Date.now(), node: this.o.nodeId });
    this.metrics.forks.inc({ kind });
    this.metrics.forkAlarm.set(1);
    this.logger.error('ALARM fork evidence: a device signed conflicting batches', { device: p.deviceId, batch_seq: p.batchSeq, kind, reason });
  }

  async #drop(p: Pending, withData: boolean, why: string): Promise<void> {
    await this.store.dropPending(p, withData);
    this.logger.debug('sequencer: pending dropped', { device: p.deviceId, batch_seq: p.batchSeq, why });
  }

  /** Waits until this sequencer is active (tests). */
  async waitActive(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.#active) {
      if (Date.now() > end) throw new Error('sequencer did not become active');
      await sleep(50);
    }
  }
}

function advance(cur: DeviceHead | null, p: Pending, id: string): DeviceHead {
  return {
    deviceId: id,
    batchSeq: p.batchSeq,
    lastSeq: p.firstSeq + p.count - 1,
    lastEntry: p.entry,
    lastRecordHash: p.lastRecordHash,
    lastLeaf: 0,
    height: 0,
    events: (cur?.events ?? 0) + p.count,
    time: 0,
  };
}
