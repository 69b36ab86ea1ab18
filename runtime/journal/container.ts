// The framing shared by the journal's metadata: segment headers, the
// checkpoint and the index sidecars. A torn or stale metadata write must be
// recognised, never trusted:
//
//   magic 8 bytes | version u16 LE | reserved u16 | body_len u32 LE | body (CBOR map) | crc32c u32 LE
//
// The CRC-32C covers everything before it. The body is deterministic CBOR
// (protocol/cbor.ts) with small integer keys, like every structure of §4.
import { decode, encode } from '../../protocol/cbor.js';
import { crc32c } from '../../protocol/crc32c.js';
import { JournalError } from './errors.js';

// Version 2 (this build writes it): segments may hold units (STATE and
// UNIT_RECORD entries) and summaries say where a segment's last state is.
// Version 1 files (journals of earlier builds) read as they are; a build that
// only knows version 1 refuses a version 2 segment by name instead of taking
// the new entry types for damage.
export const CONTAINER_VERSION = 2;
const OLDEST_READABLE = 1;
const FIXED = 16;

export function encodeContainer(magic: string, body: Map<number, unknown>): Buffer {
  const b = encode(body);
  const out = Buffer.alloc(FIXED + b.length + 4);
  out.write(magic, 0, 8, 'latin1');
  out.writeUInt16LE(CONTAINER_VERSION, 8);
  out.writeUInt32LE(b.length, 12);
  out.set(b, FIXED);
  out.writeUInt32LE(crc32c(out, 0, 0, FIXED + b.length), FIXED + b.length);
  return out;
}

/** Length of the container at the start of `bytes` (needs its first 16 bytes), or -1 if the magic is wrong. */
export function containerLength(bytes: Uint8Array, magic: string): number {
  if (bytes.length < FIXED) return -1;
  const v = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (v.toString('latin1', 0, 8) !== magic) return -1;
  return FIXED + v.readUInt32LE(12) + 4;
}

/** Decodes a container; throws CORRUPT naming `where` when anything is off. */
export function decodeContainer(bytes: Uint8Array, magic: string, where: string): Map<unknown, unknown> {
  const bad = (why: string) => new JournalError('CORRUPT', `${where}: ${why}`, { path: where });
  const len = containerLength(bytes, magic);
  if (len < 0) throw bad(`not a journal ${magic} file (bad magic)`);
  const v = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const version = v.readUInt16LE(8);
  if (version < OLDEST_READABLE || version > CONTAINER_VERSION) throw bad(`format version ${version}; this build reads versions ${OLDEST_READABLE} to ${CONTAINER_VERSION} (upgrade the runtime, or move the directory aside)`);
  if (len > bytes.length) throw bad(`truncated (${bytes.length} of ${len} bytes)`);
  const bodyLen = len - FIXED - 4;
  if (crc32c(v, 0, 0, FIXED + bodyLen) !== v.readUInt32LE(FIXED + bodyLen)) throw bad('CRC-32C mismatch');
  let body: unknown;
  try {
    body = decode(v.subarray(FIXED, FIXED + bodyLen), { maxBytes: 64 << 20, maxDepth: 8 });
  } catch (e) {
    throw bad(`undecodable body (${(e as Error).message})`);
  }
  if (!(body instanceof Map)) throw bad('body is not a map');
  return body;
}

export function getUint(m: Map<unknown, unknown>, k: number, where: string): number {
  const x = m.get(k);
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw new JournalError('CORRUPT', `${where}: field ${k} is not an unsigned integer`, { path: where });
  return x;
}

export function getBytes(m: Map<unknown, unknown>, k: number, where: string, len?: number): Uint8Array {
  const x = m.get(k);
  if (!(x instanceof Uint8Array) || (len !== undefined && x.length !== len)) throw new JournalError('CORRUPT', `${where}: field ${k} is not a byte string${len ? ` of ${len} bytes` : ''}`, { path: where });
  return new Uint8Array(x);
}
