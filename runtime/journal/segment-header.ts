// The header at the start of every segment file. It makes each segment
// self-describing: which device, which segment number, and the chain state
// (ARCHITECTURE §2 invariant 3) at its first byte of data, i.e. the state at
// the end of the segment before it. Recovery checks that each segment's base
// equals its predecessor's end, so a missing or swapped segment is caught, and
// after compaction has deleted older segments the oldest one left still says
// where the chain stands.
//
// Entries start at `dataStart`: the header container padded with zeros to a
// 4 KiB boundary (the page and flash-block size class), at most 64 KiB.
import { randomBytes } from 'node:crypto';
import { containerLength, decodeContainer, encodeContainer, getBytes, getUint } from './container.js';
import { stateFromCbor, stateToCbor, type ChainState } from './chain-state.js';
import { JournalError } from './errors.js';

export const SEGMENT_MAGIC = 'ISCMJSEG';
export const HEADER_ALIGN = 4096;
export const MAX_HEADER_BYTES = 64 * 1024;

export interface SegmentHeader {
  id: number;
  /** Random per segment file: ties index sidecars and checkpoints to this very file. */
  nonce: Uint8Array;
  deviceId: string;
  createdMs: number;
  /** Chain state before the segment's first entry. */
  base: ChainState;
  /** Where entries start. */
  dataStart: number;
}

export function newNonce(): Uint8Array {
  return new Uint8Array(randomBytes(16));
}

/** The header bytes, zero-padded to `dataStart`. */
export function encodeSegmentHeader(h: Omit<SegmentHeader, 'dataStart'>): Buffer {
  const c = encodeContainer(
    SEGMENT_MAGIC,
    new Map<number, unknown>([
      [1, h.id],
      [2, h.nonce],
      [3, h.deviceId],
      [4, h.createdMs],
      [5, stateToCbor(h.base)],
    ]),
  );
  const dataStart = Math.ceil(c.length / HEADER_ALIGN) * HEADER_ALIGN;
  if (dataStart > MAX_HEADER_BYTES) throw new JournalError('IO', `segment header of ${c.length} bytes exceeds ${MAX_HEADER_BYTES}`);
  const out = Buffer.alloc(dataStart);
  c.copy(out);
  return out;
}

/** Decodes a segment header from the first bytes of a segment file (at least MAX_HEADER_BYTES or the whole file). */
export function decodeSegmentHeader(bytes: Uint8Array, path: string): SegmentHeader {
  const m = decodeContainer(bytes, SEGMENT_MAGIC, `${path} (segment header)`);
  const where = `${path} (segment header)`;
  const deviceId = m.get(3);
  if (typeof deviceId !== 'string') throw new JournalError('CORRUPT', `${where}: device_id missing`, { path });
  const len = containerLength(bytes, SEGMENT_MAGIC);
  return {
    id: getUint(m, 1, where),
    nonce: getBytes(m, 2, where, 16),
    deviceId,
    createdMs: getUint(m, 4, where),
    base: stateFromCbor(m.get(5), where),
    dataStart: Math.ceil(len / HEADER_ALIGN) * HEADER_ALIGN,
  };
}

export function segmentName(id: number): string {
  return `seg-${String(id).padStart(10, '0')}.log`;
}

export function indexName(id: number): string {
  return `seg-${String(id).padStart(10, '0')}.idx`;
}

export function parseSegmentName(name: string): number | undefined {
  const m = /^seg-(\d{10})\.log$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
