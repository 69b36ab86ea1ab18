// A window of items numbered by consecutive record seqs, kept in memory for
// a moment after they became durable: the batcher's leaf hashes (so the next
// batch needs no journal read) and the light node's record bytes (so sync
// publishes a fresh batch from memory). Bounded by a weight (count or bytes):
// beyond it the oldest go. A push that does not continue the window (a
// restart, a refused unit) starts it over. Callers fall back to the journal
// whenever what they need is not wholly here.
export class SeqWindow<T> {
  private items: T[] = [];
  private head = 0;
  private first = 1;
  private total = 0;
  hits = 0;
  misses = 0;

  /** `weight` of one item (default 1: `maxWeight` counts items). */
  constructor(readonly maxWeight: number, private readonly weight: (x: T) => number = () => 1) {}

  /** Seq of the oldest item held (when `length` > 0). */
  get firstSeq(): number {
    return this.first;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** Items firstSeq… in seq order. */
  push(firstSeq: number, items: readonly T[]): void {
    if (firstSeq !== this.first + this.length) this.clear(firstSeq);
    for (const x of items) {
      this.items.push(x);
      this.total += this.weight(x);
    }
    while (this.total > this.maxWeight && this.head < this.items.length) {
      this.total -= this.weight(this.items[this.head++]);
      this.first++;
    }
    this.compact();
  }

  /** The item of `seq`, if held. */
  at(seq: number): T | undefined {
    const i = seq - this.first;
    return i >= 0 && i < this.length ? this.items[this.head + i] : undefined;
  }

  /** Items firstSeq … firstSeq+count-1 when all are held, else undefined. */
  range(firstSeq: number, count: number): T[] | undefined {
    const from = firstSeq - this.first + this.head;
    if (from < this.head || from + count > this.items.length) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return this.items.slice(from, from + count);
  }

  /** Forgets the items through `seq` (taken). */
  dropThrough(seq: number): void {
    while (this.length > 0 && this.first <= seq) {
      this.total -= this.weight(this.items[this.head++]);
      this.first++;
    }
    this.compact();
  }

  /** Forgets everything; the next push starts the window at its own seq. */
  clear(firstSeq = this.first + this.length): void {
    this.items = [];
    this.head = 0;
    this.total = 0;
    this.first = firstSeq;
  }

  /** Drops taken slots from the front now and then, not per item. */
  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
