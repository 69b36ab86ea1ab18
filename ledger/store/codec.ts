// Encodings of the stored values: deterministic CBOR (protocol/cbor.ts)
// arrays whose first element is a format version, so a later release can
// read what an earlier one wrote. Batch data is compressed (node:zlib
// deflate-raw): EPCIS events compress about tenfold.
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { decode, encode } from '../../protocol/cbor.js';
import { LedgerError, errorText } from '../errors.js';
import type { ArchiveSegment, BatchData, BatchRef, Block, BlockBatch, DeviceActivity, DeviceHead, ForkEvidence, HeadState, PendingMarker, StoredClaim } from './types.js';

const V = 1;

class Fields {
  #i = 1;
  constructor(readonly a: unknown[], readonly what: string) {}
  #next(): unknown {
    if (this.#i >= this.a.length) throw new Error(`field ${this.#i} is missing`);
    return this.a[this.#i++];
  }
  uint(): number {
    const v = this.#next();
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`field ${this.#i - 1} must be an unsigned integer`);
    return v;
  }
  bytes(len?: number): Uint8Array {
    const v = this.#next();
    if (!(v instanceof Uint8Array) || (len !== undefined && v.length !== len)) throw new Error(`field ${this.#i - 1} must be ${len ?? 'a byte string of any'} bytes`);
    return v;
  }
  str(): string {
    const v = this.#next();
    if (typeof v !== 'string') throw new Error(`field ${this.#i - 1} must be text`);
    return v;
  }
  optStr(): string | undefined {
    const v = this.#next();
    if (v === null) return undefined;
    if (typeof v !== 'string') throw new Error(`field ${this.#i - 1} must be text or null`);
    return v;
  }
  optUint(): number | undefined {
    const v = this.#next();
    if (v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`field ${this.#i - 1} must be an unsigned integer or null`);
    return v;
  }
  array(): unknown[] {
    const v = this.#next();
    if (!Array.isArray(v)) throw new Error(`field ${this.#i - 1} must be an array`);
    return v;
  }
}

function read<T>(bytes: Uint8Array, what: string, f: (r: Fields) => T): T {
  try {
    const a = decode(bytes, { maxBytes: 64 * 1024 * 1024, maxDepth: 6 });
    if (!Array.isArray(a) || a[0] !== V) throw new Error(`not a version ${V} record`);
    return f(new Fields(a, what));
  } catch (e) {
    throw new LedgerError('STORE_CORRUPT', `stored ${what} does not decode: ${errorText(e)}`, { cause: e });
  }
}

const hashes = (a: unknown[], what: string): Uint8Array[] =>
  a.map((h, i) => {
    if (!(h instanceof Uint8Array) || h.length !== 32) throw new Error(`${what}[${i}] must be 32 bytes`);
    return h;
  });

// ---- head ----
export function encodeHead(h: HeadState): Uint8Array {
  return encode([V, h.height, h.size, h.root, h.range, h.time, h.sth, h.sequencer, h.nonce]);
}
export function decodeHead(b: Uint8Array): HeadState {
  return read(b, 'head', (r) => ({ height: r.uint(), size: r.uint(), root: r.bytes(32), range: hashes(r.array(), 'range'), time: r.uint(), sth: r.bytes(), sequencer: r.str(), nonce: r.bytes() }));
}

// ---- block ----
const encBB = (b: BlockBatch) => [b.deviceId, b.batchSeq, b.entry, b.firstSeq, b.count, b.bytes, b.received];
function decBB(v: unknown): BlockBatch {
  const r = new Fields([V, ...(v as unknown[])], 'block batch');
  return { deviceId: r.str(), batchSeq: r.uint(), entry: r.bytes(32), firstSeq: r.uint(), count: r.uint(), bytes: r.uint(), received: r.uint() };
}
export function encodeBlock(b: Block): Uint8Array {
  return encode([V, b.height, b.firstLeaf, b.size, b.root, b.time, b.sth, b.sequencer, b.batches.map(encBB)]);
}
export function decodeBlock(b: Uint8Array): Block {
  return read(b, 'block', (r) => ({ height: r.uint(), firstLeaf: r.uint(), size: r.uint(), root: r.bytes(32), time: r.uint(), sth: r.bytes(), sequencer: r.str(), batches: r.array().map(decBB) }));
}

// ---- device head ----
export function encodeDevice(d: DeviceHead): Uint8Array {
  return encode([V, d.deviceId, d.batchSeq, d.lastSeq, d.lastEntry, d.lastRecordHash, d.lastLeaf, d.height, d.events, d.time]);
}
export function decodeDevice(b: Uint8Array): DeviceHead {
  return read(b, 'device head', (r) => ({ deviceId: r.str(), batchSeq: r.uint(), lastSeq: r.uint(), lastEntry: r.bytes(32), lastRecordHash: r.bytes(32), lastLeaf: r.uint(), height: r.uint(), events: r.uint(), time: r.uint() }));
}

// ---- batch ref ----
export function encodeRef(x: BatchRef): Uint8Array {
  return encode([V, x.deviceId, x.batchSeq, x.entry, x.leafIndex, x.height, x.firstSeq, x.count]);
}
export function decodeRef(b: Uint8Array): BatchRef {
  return read(b, 'batch ref', (r) => ({ deviceId: r.str(), batchSeq: r.uint(), entry: r.bytes(32), leafIndex: r.uint(), height: r.uint(), firstSeq: r.uint(), count: r.uint() }));
}

// ---- pending marker ----
export function encodePending(p: PendingMarker): Uint8Array {
  return encode([V, p.deviceId, p.batchSeq, p.entry, p.prev, p.firstSeq, p.count, p.firstPrev, p.lastRecordHash, p.knownSize, p.received, p.node, p.bytes]);
}
export function decodePending(b: Uint8Array): PendingMarker {
  return read(b, 'pending marker', (r) => ({
    deviceId: r.str(), batchSeq: r.uint(), entry: r.bytes(32), prev: r.bytes(32), firstSeq: r.uint(), count: r.uint(), firstPrev: r.bytes(32),
    lastRecordHash: r.bytes(32), knownSize: r.uint(), received: r.uint(), node: r.str(), bytes: r.uint(),
  }));
}

// ---- batch data (compressed) ----
/** deflate-raw(CBOR [sign1, [record …]]). */
export function compressBatch(d: BatchData): Uint8Array {
  const raw = encode([d.sign1, d.records]);
  const z = deflateRawSync(raw, { level: 1 });
  return new Uint8Array(z.buffer, z.byteOffset, z.length);
}
export function decompressBatch(z: Uint8Array, what = 'batch data'): BatchData {
  try {
    const raw = inflateRawSync(z, { maxOutputLength: 64 * 1024 * 1024 });
    const a = decode(new Uint8Array(raw.buffer, raw.byteOffset, raw.length), { maxBytes: 64 * 1024 * 1024, maxDepth: 3 });
    if (!Array.isArray(a) || a.length !== 2 || !(a[0] instanceof Uint8Array) || !Array.isArray(a[1]) || !a[1].every((x) => x instanceof Uint8Array))
      throw new Error('expected [sign1, [record …]]');
    return { sign1: a[0], records: a[1] as Uint8Array[] };
  } catch (e) {
    throw new LedgerError('STORE_CORRUPT', `stored ${what} does not decode: ${errorText(e)}`, { cause: e });
  }
}

/** The data key's value: chunk count, total bytes, the nonce naming further chunks, and the first chunk. */
export interface DataHead {
  chunks: number;
  total: number;
  nonce: string;
  first: Uint8Array;
}
export function encodeDataHead(h: DataHead): Uint8Array {
  return encode([V, h.chunks, h.total, h.nonce, h.first]);
}
export function decodeDataHead(b: Uint8Array): DataHead {
  return read(b, 'batch data head', (r) => ({ chunks: r.uint(), total: r.uint(), nonce: r.str(), first: r.bytes() }));
}

// ---- activity ----
export function encodeActivity(a: DeviceActivity): Uint8Array {
  return encode([V, a.node, a.lastSeen, a.batches, a.rejects, a.lastReject ?? null, a.lastRejectTime ?? null]);
}
export function decodeActivity(b: Uint8Array): DeviceActivity {
  return read(b, 'device activity', (r) => {
    const a: DeviceActivity = { node: r.str(), lastSeen: r.uint(), batches: r.uint(), rejects: r.uint() };
    const lr = r.optStr();
    const lt = r.optUint();
    if (lr !== undefined) a.lastReject = lr;
    if (lt !== undefined) a.lastRejectTime = lt;
    return a;
  });
}

// ---- claims ----
export function encodeClaim(c: StoredClaim): Uint8Array {
  return encode([V, c.kind, c.deviceId, c.kid, c.claim]);
}
export function decodeClaim(b: Uint8Array): StoredClaim {
  return read(b, 'registry claim', (r) => {
    const kind = r.str();
    if (kind !== 'enroll' && kind !== 'revoke') throw new Error(`unknown claim kind ${kind}`);
    return { kind, deviceId: r.str(), kid: r.bytes(32), claim: r.bytes() };
  });
}

// ---- fork evidence ----
export function encodeEvidence(e: ForkEvidence): Uint8Array {
  return encode([V, e.deviceId, e.batchSeq, e.kind, e.sign1, e.entry, e.otherEntry, e.reason, e.detected, e.node]);
}
export function decodeEvidence(b: Uint8Array): ForkEvidence {
  return read(b, 'fork evidence', (r) => {
    const deviceId = r.str();
    const batchSeq = r.uint();
    const kind = r.str();
    if (kind !== 'committed' && kind !== 'pending' && kind !== 'chain') throw new Error(`unknown evidence kind ${kind}`);
    return { deviceId, batchSeq, kind, sign1: r.bytes(), entry: r.bytes(32), otherEntry: r.bytes(32), reason: r.str(), detected: r.uint(), node: r.str() };
  });
}

// ---- archive segment ----
export function encodeSegment(s: ArchiveSegment): Uint8Array {
  return encode([V, s.firstHeight, s.lastHeight, s.firstLeaf, s.leafCount, s.file, s.sha256, s.bytes, s.events, s.created, s.node]);
}
export function decodeSegment(b: Uint8Array): ArchiveSegment {
  return read(b, 'archive segment', (r) => ({
    firstHeight: r.uint(), lastHeight: r.uint(), firstLeaf: r.uint(), leafCount: r.uint(), file: r.str(), sha256: r.bytes(32), bytes: r.uint(), events: r.uint(), created: r.uint(), node: r.str(),
  }));
}
