// Capped exponential backoff with full jitter (AWS architecture blog's
// "full jitter"): thousands of gateways that lost the same broker must not
// come back in lock step.

export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  /** Random source in [0, 1) (tests pass a fixed one). */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly min: number;
  private readonly max: number;
  private readonly random: () => number;
  constructor(o: BackoffOptions = {}) {
    this.min = o.minMs ?? 500;
    this.max = o.maxMs ?? 60_000;
    this.random = o.random ?? Math.random;
  }
  /** The delay before the next attempt: uniform in [min, min(max, min·2^attempt)]. */
  next(): number {
    const cap = Math.min(this.max, this.min * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(this.min + this.random() * (cap - this.min));
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}
