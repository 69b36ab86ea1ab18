// Records made durable a moment ago, kept in memory (bounded by bytes) so
// that sync can publish a freshly signed batch without reading its records
// back from the journal — in steady state every batch is published within a
// signature's time of its records' unit. Older records (a backlog, resends)
// come from the journal as before. Only durable records are ever added
// (invariant 2: nothing published that is not durable).
import { SeqWindow } from '../seq-window.js';

export class RecordCache extends SeqWindow<Uint8Array> {
  constructor(maxBytes: number) {
    super(maxBytes, (r) => r.length);
  }

  /** Records firstSeq… (durable, in seq order). A gap starts the cache over. */
  add(firstSeq: number, records: readonly Uint8Array[]): void {
    this.push(firstSeq, records);
  }
}
