// Fault injection for the firmware simulator (and tests): corrupts frames on
// their way to the wire the way bad cables, EMI and resets do. With
// probability p per frame one fault is applied:
//   flip     one bit of one byte flipped
//   drop     one byte lost
//   dup      one byte doubled
//   garbage  1..16 random bytes (and a 0x00) before the frame
//   partial  the frame cut short (no delimiter: it swallows the next frame too)
// Received chunks get bit flips with the same probability (lost ACKs).
export type FaultKind = 'flip' | 'drop' | 'dup' | 'garbage' | 'partial';
export const FAULT_KINDS: readonly FaultKind[] = ['flip', 'drop', 'dup', 'garbage', 'partial'];

export class FaultInjector {
  readonly counts: Record<FaultKind | 'rx', number> = { flip: 0, drop: 0, dup: 0, garbage: 0, partial: 0, rx: 0 };
  constructor(
    readonly p: number,
    private readonly random: () => number = Math.random,
    private readonly kinds: readonly FaultKind[] = FAULT_KINDS,
  ) {}

  private int(n: number): number {
    return Math.floor(this.random() * n);
  }

  /** One outgoing frame (COBS + 0x00) → the bytes to write. */
  frame(f: Uint8Array): Uint8Array {
    if (this.p <= 0 || this.random() >= this.p || f.length < 2) return f;
    const kind = this.kinds[this.int(this.kinds.length)];
    this.counts[kind]++;
    const at = this.int(f.length - 1); // never the delimiter itself, except by 'partial'
    switch (kind) {
      case 'flip': {
        const c = f.slice();
        c[at] ^= 1 << this.int(8);
        return c;
      }
      case 'drop': {
        const c = new Uint8Array(f.length - 1);
        c.set(f.subarray(0, at));
        c.set(f.subarray(at + 1), at);
        return c;
      }
      case 'dup': {
        const c = new Uint8Array(f.length + 1);
        c.set(f.subarray(0, at + 1));
        c.set(f.subarray(at), at + 1);
        return c;
      }
      case 'garbage': {
        const n = 1 + this.int(16);
        const c = new Uint8Array(n + 1 + f.length);
        for (let i = 0; i < n; i++) c[i] = this.int(256);
        c[n] = 0;
        c.set(f, n + 1);
        return c;
      }
      case 'partial':
        return f.slice(0, 1 + at);
    }
  }

  /** A received chunk → maybe one bit flipped. */
  rx(chunk: Uint8Array): Uint8Array {
    if (this.p <= 0 || chunk.length === 0 || this.random() >= this.p) return chunk;
    this.counts.rx++;
    const c = chunk.slice();
    c[this.int(c.length)] ^= 1 << this.int(8);
    return c;
  }
}

/** Seeded PRNG (mulberry32): reproducible fault injection and simulated readings (--seed). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
