// Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999): removes every
// 0x00 from a frame body so 0x00 can delimit frames on the wire. Overhead is
// one byte per 254 bytes plus one; a receiver that joins a stream anywhere
// resynchronises at the next 0x00.

/** Largest encoding of a body of `n` bytes (without the 0x00 delimiter). */
export function cobsMaxEncoded(n: number): number {
  return n + Math.ceil(n / 254) + 1;
}

/**
 * Encodes `src[start,end)` into `dst` at `at`; returns the position after the
 * last written byte. `dst` must have cobsMaxEncoded(end-start) bytes free.
 */
export function cobsEncodeInto(src: Uint8Array, dst: Uint8Array, at = 0, start = 0, end = src.length): number {
  let codePos = at;
  let out = at + 1;
  let code = 1;
  for (let i = start; i < end; i++) {
    const b = src[i];
    if (b === 0) {
      dst[codePos] = code;
      codePos = out++;
      code = 1;
    } else {
      dst[out++] = b;
      if (++code === 0xff) {
        dst[codePos] = code;
        codePos = out++;
        code = 1;
      }
    }
  }
  dst[codePos] = code;
  return out;
}

export function cobsEncode(src: Uint8Array): Uint8Array {
  const dst = new Uint8Array(cobsMaxEncoded(src.length));
  return dst.subarray(0, cobsEncodeInto(src, dst));
}

/**
 * Decodes `src[start,end)` into `dst`; returns the decoded length, or -1 when
 * the input is not valid COBS (a code byte of 0, a block running past the
 * end) and -2 when the output would exceed dst.length. The caller guarantees
 * there is no 0x00 inside (the stream parser splits on it).
 */
export function cobsDecodeInto(src: Uint8Array, start: number, end: number, dst: Uint8Array): number {
  let i = start;
  let o = 0;
  const cap = dst.length;
  while (i < end) {
    const code = src[i++];
    if (code === 0) return -1;
    const n = code - 1;
    if (i + n > end) return -1;
    if (o + n > cap) return -2;
    if (n > 24) {
      dst.set(src.subarray(i, i + n), o);
      o += n;
      i += n;
    } else for (let k = 0; k < n; k++) dst[o++] = src[i++];
    if (code !== 0xff && i < end) {
      if (o >= cap) return -2;
      dst[o++] = 0;
    }
  }
  return o;
}

/** Decodes a whole COBS block (no delimiter); throws RangeError when invalid. */
export function cobsDecode(src: Uint8Array, maxOut = src.length): Uint8Array {
  if (src.indexOf(0) >= 0) throw new RangeError('invalid COBS encoding (0x00 inside)');
  const dst = new Uint8Array(Math.max(0, maxOut));
  const n = cobsDecodeInto(src, 0, src.length, dst);
  if (n < 0) throw new RangeError(n === -1 ? 'invalid COBS encoding' : 'COBS block decodes past the limit');
  return dst.slice(0, n);
}
