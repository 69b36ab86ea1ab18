// A "slow token": wraps any Signer and adds latency per signature, and by
// default serialises calls (one signature at a time, FIFO) like a USB token
// or a TPM does. A YubiKey/YubiHSM takes ~100 ms per signature, a TPM up to
// a second; the batcher's tests and `npm run bench -- signers` use this to
// show that event throughput does not depend on token speed (batches grow
// while the signer is busy, ARCHITECTURE §4.2).
//
// The result is still a real signature by the inner signer (same alg, key,
// kid), so everything downstream verifies as usual.
import { IscmError } from '../protocol/errors.js';
import type { CoseKey } from '../protocol/cose/key.js';
import type { Signer } from './signer.js';

export interface SlowSignerOptions {
  /** Added latency per signature in ms (e.g. 100 for a YubiKey-class token). */
  latencyMs: number;
  /** Extra random latency, uniform in [0, jitterMs) (default 0). */
  jitterMs?: number;
  /** Signatures in progress at once (default 1: serialised like a single token). */
  concurrency?: number;
  /** Close the inner signer on close() (default true). */
  closeInner?: boolean;
  /** Random source for jitter (tests). */
  random?: () => number;
}

export interface SlowSignerStats {
  /** Completed signatures. */
  signs: number;
  /** Calls waiting for a slot right now. */
  queued: number;
  /** Calls being signed right now. */
  active: number;
  /** Largest number of calls waiting at once. */
  maxQueued: number;
  /** Largest number of calls signing at once (never above `concurrency`). */
  maxActive: number;
}

export interface SlowSigner extends Signer {
  readonly latencyMs: number;
  stats(): SlowSignerStats;
  close(): Promise<void>;
}

function bad(message: string): IscmError {
  return new IscmError('USAGE', `slow signer: ${message}`);
}

class SlowSignerImpl implements SlowSigner {
  readonly alg: number;
  readonly publicKey: CoseKey;
  readonly kid: Uint8Array;
  readonly latencyMs: number;
  #inner: Signer;
  #jitter: number;
  #concurrency: number;
  #closeInner: boolean;
  #random: () => number;
  #active = 0;
  #queue: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #timers = new Set<{ timer: NodeJS.Timeout; reject: (e: Error) => void }>();
  #closed = false;
  #stats = { signs: 0, maxQueued: 0, maxActive: 0 };

  constructor(inner: Signer, opts: SlowSignerOptions) {
    const { latencyMs, jitterMs = 0, concurrency = 1 } = opts;
    if (typeof latencyMs !== 'number' || !Number.isFinite(latencyMs) || latencyMs < 0 || latencyMs > 600_000) throw bad('latencyMs must be 0..600000');
    if (typeof jitterMs !== 'number' || !Number.isFinite(jitterMs) || jitterMs < 0 || jitterMs > 600_000) throw bad('jitterMs must be 0..600000');
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 1024) throw bad('concurrency must be 1..1024');
    this.#inner = inner;
    this.alg = inner.alg;
    this.publicKey = inner.publicKey;
    this.kid = inner.kid;
    this.latencyMs = latencyMs;
    this.#jitter = jitterMs;
    this.#concurrency = concurrency;
    this.#closeInner = opts.closeInner ?? true;
    this.#random = opts.random ?? Math.random;
  }

  stats(): SlowSignerStats {
    return { signs: this.#stats.signs, queued: this.#queue.length, active: this.#active, maxQueued: this.#stats.maxQueued, maxActive: this.#stats.maxActive };
  }

  #closedError(): IscmError {
    return new IscmError('SIGNER_ERROR', 'the signer is closed');
  }

  async #slot(): Promise<void> {
    if (this.#active < this.#concurrency && this.#queue.length === 0) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.#queue.push({ resolve, reject });
      if (this.#queue.length > this.#stats.maxQueued) this.#stats.maxQueued = this.#queue.length;
    });
    // The releasing call handed its slot over (#active unchanged).
  }

  #free(): void {
    const next = this.#queue.shift();
    if (next) next.resolve();
    else this.#active--;
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const entry = {
        timer: setTimeout(() => {
          this.#timers.delete(entry);
          resolve();
        }, ms),
        reject,
      };
      this.#timers.add(entry);
    });
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) throw this.#closedError();
    await this.#slot();
    try {
      if (this.#active > this.#stats.maxActive) this.#stats.maxActive = this.#active;
      if (this.#closed) throw this.#closedError();
      await this.#sleep(this.latencyMs + (this.#jitter > 0 ? this.#random() * this.#jitter : 0));
      if (this.#closed) throw this.#closedError();
      const sig = await this.#inner.sign(data);
      this.#stats.signs++;
      return sig;
    } finally {
      this.#free();
    }
  }

  /** Rejects queued and sleeping calls with SIGNER_ERROR, then closes the inner signer (unless closeInner is false). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const q of this.#queue.splice(0)) q.reject(this.#closedError());
    for (const t of this.#timers) {
      clearTimeout(t.timer);
      t.reject(this.#closedError());
    }
    this.#timers.clear();
    if (this.#closeInner) await this.#inner.close?.();
  }
}

/** Wraps `inner` as a slow, serialised token (see the file header). */
export function slowSigner(inner: Signer, opts: SlowSignerOptions): SlowSigner {
  return new SlowSignerImpl(inner, opts);
}
