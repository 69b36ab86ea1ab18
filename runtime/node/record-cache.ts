// Records made durable a moment ago, kept in memory (bounded by bytes) so
// that sync can publish a freshly signed batch without reading its records
// back from the journal — in steady state every batch is published within a
// signature's time of its records' unit. Older records (a backlog, resends)
// come from the journal as before. Only durable records are ever added
// (invariant 2: nothing published that is not durable).
export class RecordCache {
  private records: Uint8Array[] = [];
  private head = 0;
  private firstSeq = 1;
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number) {}

  /** Records firstSeq… (durable, in seq order). A gap starts the cache over. */
  add(firstSeq: number, records: readonly Uint8Array[]): void {
    if (firstSeq !== this.firstSeq + this.records.length - this.head) {
      this.records = [];
      this.head = 0;
      this.bytes = 0;
      this.firstSeq = firstSeq;
    }
    for (const r of records) {
      this.records.push(r);
      this.bytes += r.length;
    }
    while (this.bytes > this.maxBytes && this.head < this.records.length) {
      this.bytes -= this.records[this.head++].length;
      this.firstSeq++;
    }
    if (this.head > 4096) {
      this.records = this.records.slice(this.head);
      this.head = 0;
    }
  }

  /** Records firstSeq … firstSeq+count-1 when all are held, else undefined. */
  range(firstSeq: number, count: number): Uint8Array[] | undefined {
    const from = firstSeq - this.firstSeq + this.head;
    if (from < this.head || from + count > this.records.length) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return this.records.slice(from, from + count);
  }
}
