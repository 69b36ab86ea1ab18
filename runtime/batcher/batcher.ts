// The adaptive batcher (ARCHITECTURE §4.2): closes a batch at max_records,
// max_bytes or max_delay and signs it. Only one signature is ever in flight
// (each batch links to the previous batch's bytes), so while the signer is
// busy new records pile up and the next batch is larger: throughput follows
// the record rate, not the token's speed (a 10 signatures/s token still
// carries thousands of events per second).
//
// Memory: a batch is built from 32-byte leaf hashes streamed from the journal;
// record bytes are never held together.
import { leafHash, rootFromLeafHashes } from '../../protocol/merkle.js';
import { signBatch } from '../../protocol/batch-sign.js';
import type { Signer } from '../../drivers/signer.js';
import type { Journal } from '../journal/index.js';
import type { Logger } from '../ops/log.js';
import type { Registry } from '../ops/metrics.js';
import { Backoff } from '../../drivers/backoff.js';
import { MAX_BATCH_RECORDS } from '../../protocol/limits.js';
import { SeqWindow } from '../seq-window.js';

export interface BatcherOptions {
  journal: Journal;
  /** The device key, or where to get it (a key that is not open yet makes batches wait, with backoff). */
  signer: Signer | (() => Promise<Signer>);
  deviceId: string;
  maxRecords?: number;
  maxBytes?: number;
  maxDelayMs?: number;
  log: Logger;
  metrics: Registry;
  /** Called after each signed batch is durable in the journal (with its COSE_Sign1 bytes). */
  onBatch?: (b: { batchSeq: number; firstSeq: number; count: number; sign1: Uint8Array }) => void;
  now?: () => number;
}

/** A record the pipeline just made durable, as the next batch needs it. */
interface Leaf {
  hash: Uint8Array;
  size: number;
}

export class Batcher {
  /**
   * Leaf hashes of the records the pipeline just made durable: the next batch
   * is built from them instead of reading the records back from the journal.
   * When they do not continue where the last batch ended (a restart, a slow
   * signer the window outgrew) the journal is read instead.
   */
  private readonly feed: SeqWindow<Leaf>;
  private pendingCount = 0;
  private pendingBytes = 0;
  private oldest = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff({ initialMs: 200, maxMs: 30_000 });
  private readonly maxRecords: number;
  private readonly maxBytes: number;
  private readonly maxDelay: number;
  private readonly now: () => number;
  signing = false;
  lastError: string | undefined;
  private readonly m;

  constructor(private readonly o: BatcherOptions) {
    this.maxRecords = Math.min(o.maxRecords ?? 4096, MAX_BATCH_RECORDS);
    this.maxBytes = o.maxBytes ?? 1 << 20;
    this.maxDelay = o.maxDelayMs ?? 1000;
    this.feed = new SeqWindow<Leaf>(2 * this.maxRecords);
    this.now = o.now ?? Date.now;
    const r = o.metrics;
    this.m = {
      batches: r.counter('iscm_batches_signed_total', 'Batches signed and made durable'),
      records: r.counter('iscm_records_batched_total', 'Records covered by signed batches'),
      size: r.histogram('iscm_batch_records', 'Records per batch', [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536]),
      signLatency: r.histogram('iscm_sign_seconds', 'Time to sign one batch (signer latency)'),
      signErrors: r.counter('iscm_sign_errors_total', 'Failed signing attempts (token removed, wrong PIN …)'),
      pending: r.gauge('iscm_records_unbatched', 'Durable records waiting for a batch'),
      readBack: r.counter('iscm_batcher_records_read_total', 'Records the batcher read back from the journal (after a restart, or behind a slow signer) instead of taking their leaf hashes from the pipeline'),
    };
  }

  async start(): Promise<void> {
    const s = this.o.journal.stats();
    this.pendingCount = Math.max(0, s.lastSeq - s.batchedThroughSeq);
    this.pendingBytes = 0; // unknown after a restart: the count and the delay still close batches
    this.oldest = this.pendingCount > 0 ? this.now() - this.maxDelay : 0;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Records `firstSeq`… became durable (the pipeline, after their unit): their
   * leaf hashes are kept for the next batch, so it needs no journal read.
   */
  addedRecords(firstSeq: number, records: readonly Uint8Array[]): void {
    // Beyond its bound (the signer is behind) the feed drops its oldest, and batches read the journal.
    this.feed.push(firstSeq, records.map((r) => ({ hash: leafHash(r), size: r.length })));
    let bytes = 0;
    for (const r of records) bytes += r.length;
    this.added(bytes, records.length);
  }

  /** Records became durable (`count` of them, `bytes` together; called by the pipeline after their append resolved). */
  added(bytes: number, count = 1): void {
    if (this.pendingCount === 0) this.oldest = this.now();
    this.pendingCount += count;
    this.pendingBytes += bytes;
    this.m.pending.set(this.pendingCount);
    if (this.pendingCount >= this.maxRecords || this.pendingBytes >= this.maxBytes) this.poke();
    else if (!this.timer && !this.signing) {
      this.timer = setTimeout(() => this.poke(), Math.max(0, this.oldest + this.maxDelay - this.now()));
      this.timer.unref?.();
    }
  }

  private poke(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeUp?.();
  }

  private due(): boolean {
    if (this.pendingCount === 0) return false;
    return this.pendingCount >= this.maxRecords || this.pendingBytes >= this.maxBytes || this.now() - this.oldest >= this.maxDelay;
  }

  private async run(): Promise<void> {
    while (this.running) {
      if (!this.due()) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
          if (this.pendingCount > 0 && !this.timer) {
            this.timer = setTimeout(() => this.poke(), Math.max(0, this.oldest + this.maxDelay - this.now()));
            this.timer.unref?.();
          }
        });
        this.wakeUp = undefined;
        continue;
      }
      try {
        await this.batchOnce();
        this.backoff.reset();
        this.lastError = undefined;
      } catch (e) {
        this.m.signErrors.inc();
        this.lastError = (e as Error).message;
        const delay = this.backoff.next();
        this.o.log.error('could not sign a batch; records stay in the journal, retrying', { error: e, retry_in_ms: delay });
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          t.unref?.();
          this.wakeUp = () => {
            if (!this.running) resolve();
          };
        });
        this.wakeUp = undefined;
      }
    }
  }

  /** Builds, signs and appends one batch from the unbatched records. */
  private async batchOnce(): Promise<void> {
    const j = this.o.journal;
    const head = j.head();
    const hashes: Uint8Array[] = [];
    let bytes = 0;
    let firstSeq = 0;
    const f = this.feed;
    if (f.length > 0 && f.firstSeq === head.batchedThroughSeq + 1) {
      firstSeq = f.firstSeq;
      for (let leaf = f.at(firstSeq); leaf && hashes.length < this.maxRecords && bytes < this.maxBytes; leaf = f.at(firstSeq + hashes.length)) {
        hashes.push(leaf.hash);
        bytes += leaf.size;
      }
    } else {
      f.clear();
      for await (const r of j.unbatchedRecords()) {
        if (hashes.length === 0) firstSeq = r.seq;
        hashes.push(leafHash(r.bytes));
        bytes += r.bytes.length;
        if (hashes.length >= this.maxRecords || bytes >= this.maxBytes) break;
      }
      this.m.readBack.inc(undefined, hashes.length);
    }
    if (hashes.length === 0) {
      this.pendingCount = 0;
      return;
    }
    const header = { deviceId: this.o.deviceId, batchSeq: head.nextBatchSeq, firstSeq, count: hashes.length, root: rootFromLeafHashes(hashes), prev: head.prevBatch, time: this.now() };
    const signer = typeof this.o.signer === 'function' ? await this.o.signer() : this.o.signer;
    this.signing = true;
    const t0 = performance.now();
    let sign1: Uint8Array;
    try {
      sign1 = await signBatch(signer, header);
    } finally {
      this.signing = false;
    }
    this.m.signLatency.observe((performance.now() - t0) / 1000);
    const res = await j.appendBatch(sign1);
    this.feed.dropThrough(res.firstSeq + res.count - 1);
    this.pendingCount = Math.max(0, this.pendingCount - res.count);
    this.pendingBytes = Math.max(0, this.pendingBytes - bytes);
    if (this.pendingCount > 0) this.oldest = Math.min(this.oldest || this.now(), this.now());
    this.m.pending.set(this.pendingCount);
    this.m.batches.inc();
    this.m.records.inc(undefined, res.count);
    this.m.size.observe(res.count);
    this.o.onBatch?.({ ...res, sign1 });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.poke();
    await this.loop;
  }
}
