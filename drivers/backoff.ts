// Capped exponential backoff with jitter: the one reconnect/retry schedule of
// the project (serial ports, MQTT sync, signing retries). Thousands of
// gateways that lost the same broker or token must not come back in lock step,
// and a fixed interval either hammers or idles.
//
//   delay(n) = min(max, initial · factor^n) · (1 − jitter + 2 · jitter · random)   capped at max

export interface BackoffOptions {
  /** First delay (default 500 ms). */
  initialMs?: number;
  /** Cap (default 60 s). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Relative spread around the delay, 0..1 (default 0.25: ±25 %). */
  jitter?: number;
  /** Random source in [0, 1) (tests pass a fixed one). */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly o: BackoffOptions = {}) {}
  /** The delay before the next attempt (and counts the attempt). */
  next(): number {
    const initial = this.o.initialMs ?? 500;
    const max = this.o.maxMs ?? 60_000;
    const factor = this.o.factor ?? 2;
    const jitter = Math.min(1, Math.max(0, this.o.jitter ?? 0.25));
    const base = Math.min(max, initial * factor ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(Math.min(max, base * (1 - jitter + 2 * jitter * (this.o.random ?? Math.random)())));
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}
