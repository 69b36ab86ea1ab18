// SHA-256 of a record's bytes on the append hot path, as a latin1 string (one
// char per byte). The same function as protocol's recordHash (ARCHITECTURE
// §4.1); only the representation differs. Why: the hash itself costs ~0.5 µs
// for 600 bytes, but a Buffer result (createHash().digest() or
// crypto.hash(…, 'buffer')) costs 1.5–2.5 µs more in allocation and GC — a
// third of the journal's CPU per record. A short string lives on the V8 heap
// and is nearly free. Node ≥ 20.12 / 21.7 has the one-shot crypto.hash; Node 18
// (the bundle target) falls back to createHash.
import * as crypto from 'node:crypto';

type OneShot = (algorithm: string, data: Uint8Array, enc: 'binary') => string;
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

export const recordHashLatin1: (bytes: Uint8Array) => string =
  typeof oneShot === 'function' ? (b) => oneShot('sha256', b, 'binary') : (b) => crypto.createHash('sha256').update(b).digest('binary');

/** Writes the 32 chars of a latin1 hash string into `dst` (no allocation: the append hot path). */
export function latin1Into(dst: Uint8Array, s: string): void {
  for (let i = 0; i < 32; i++) dst[i] = s.charCodeAt(i);
}

export function latin1ToBytes(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'latin1'));
}
