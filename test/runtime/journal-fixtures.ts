// Device streams for journal tests, the crash child and the benchmark: real
// records (protocol/record.ts encoding, correct prev chain) and batch
// COSE_Sign1 structures with a correct header chain and Merkle root. The
// signature bytes are filler: the journal stores signed batches, it does not
// verify signatures.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode, Tag } from '../../protocol/cbor.js';
import { encodeBatchHeader, type BatchHeader } from '../../protocol/batch.js';
import { sha256, ZERO32 } from '../../protocol/bytes.js';
import { merkleRoot } from '../../protocol/merkle.js';
import { encodeRecord, recordHash, type JsonObject } from '../../protocol/record.js';
import type { JournalHead } from '../../runtime/journal/journal.js';

/** A small EPCIS ObjectEvent, deterministic in `seq`. */
export function eventFor(seq: number): JsonObject {
  return {
    type: 'ObjectEvent',
    eventTime: new Date(1_764_000_000_000 + seq * 1000).toISOString(),
    eventTimeZoneOffset: '+00:00',
    epcList: ['urn:epc:id:sscc:4012345.0000000001'],
    action: 'OBSERVE',
    bizStep: 'sensor_reporting',
    sensorElementList: [{ sensorReport: [{ type: 'Temperature', value: 4.5 + (seq % 10) / 10, uom: 'CEL' }] }],
  };
}

/** The record of `seq` after `prev`: same inputs, same bytes (the crash suite re-derives them). */
export function recordFor(deviceId: string, seq: number, prev: Uint8Array): Uint8Array {
  return encodeRecord({ deviceId, seq, prev, time: 1_764_000_000_000 + seq * 1000, event: eventFor(seq), source: { sensor: 't1', frame_seq: seq } });
}

const PROTECTED = encode(new Map<number, unknown>([[1, -8], [3, 'application/vnd.iscm.batch+cbor'], [4, new Uint8Array(32).fill(7)]]));

/** A COSE_Sign1 (tag 18) over the batch header; the signature is 64 filler bytes. */
export function sign1For(h: BatchHeader): Uint8Array {
  return encode(new Tag(18, [PROTECTED, new Map(), encodeBatchHeader(h), new Uint8Array(64).fill(h.batchSeq & 0xff)]));
}

/** An opaque state blob for units, deterministic in `n` (`size` bytes, at least 8). */
export function stateFor(n: number, size = 40): Uint8Array {
  const b = Buffer.alloc(Math.max(8, size), (n * 37) & 0xff);
  b.writeUInt32BE(n >>> 0, 0);
  b.writeUInt32BE(size, 4);
  return new Uint8Array(b);
}

export function receiptFor(batchSeq: number): Uint8Array {
  return encode([batchSeq, 'receipt', new Uint8Array(96).fill(batchSeq & 0xff)]);
}

/** Produces the next records and batches of one device, continuing a journal's head. */
export class DeviceStream {
  nextSeq = 1;
  prev: Uint8Array = ZERO32;
  nextBatchSeq = 1;
  prevBatch: Uint8Array = ZERO32;
  batchedThroughSeq = 0;

  constructor(
    readonly deviceId = 'reefer-07',
    head?: JournalHead,
  ) {
    if (head) this.sync(head);
  }

  sync(h: JournalHead): void {
    this.nextSeq = h.nextSeq;
    this.prev = h.prev;
    this.nextBatchSeq = h.nextBatchSeq;
    this.prevBatch = h.prevBatch;
    this.batchedThroughSeq = h.batchedThroughSeq;
  }

  record(): Uint8Array {
    const b = recordFor(this.deviceId, this.nextSeq, this.prev);
    this.nextSeq++;
    this.prev = recordHash(b);
    return b;
  }

  records(n: number): Uint8Array[] {
    return Array.from({ length: n }, () => this.record());
  }

  /** A batch over `records` (the next unbatched ones, in order). */
  batch(records: Uint8Array[]): Uint8Array {
    const s = sign1For({ deviceId: this.deviceId, batchSeq: this.nextBatchSeq, firstSeq: this.batchedThroughSeq + 1, count: records.length, root: merkleRoot(records), prev: this.prevBatch, time: 1_764_000_000_000 + this.nextBatchSeq });
    this.nextBatchSeq++;
    this.prevBatch = sha256(s);
    this.batchedThroughSeq += records.length;
    return s;
  }
}

export async function tempDir(tag = 'journal'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `iscm-${tag}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
