// Byte helpers and SHA-256, the one hash of the protocol (ARCHITECTURE §4).
import * as nodeCrypto from 'node:crypto';

// crypto.hash (Node ≥ 20.12 / 21.7) is a one-shot call without a Hash object;
// with a 'binary' (latin1: one char per byte) result it takes ~1 µs for a
// 700-byte record where createHash().digest() into a Buffer takes ~2.7 µs —
// per event, the pipeline hashes three times. The namespace import keeps
// Node 18 able to load this module (a named import of a missing builtin
// export fails at link time); there it falls back to createHash.
export const sha256Latin1: (data: Uint8Array) => string =
  typeof nodeCrypto.hash === 'function'
    ? (data) => nodeCrypto.hash('sha256', data, 'binary')
    : (data) => nodeCrypto.createHash('sha256').update(data).digest('binary');

/** SHA-256 of a text's UTF-8 bytes, as lower-case hex. */
export const sha256HexOfText: (text: string) => string =
  typeof nodeCrypto.hash === 'function' ? (t) => nodeCrypto.hash('sha256', t, 'hex') : (t) => nodeCrypto.createHash('sha256').update(t, 'utf8').digest('hex');

/** A latin1 string (one char per byte) as bytes. */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return latin1Bytes(sha256Latin1(parts[0]));
  const h = nodeCrypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return nodeCrypto.timingSafeEqual(a, b);
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

/** Strict hex decode: even length, only hex digits (no silent truncation like Buffer.from). */
export function fromHex(s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new TypeError('invalid hex string');
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export const ZERO32: Uint8Array = new Uint8Array(32);
