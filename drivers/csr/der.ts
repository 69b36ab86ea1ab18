// A small ASN.1 DER (X.690) writer, and the strict reader the PKCS#11 driver
// needs for CKA_EC_PARAMS / CKA_EC_POINT. Enough for PKCS#10 (RFC 2986),
// SubjectPublicKeyInfo and ECDSA-Sig-Value; no general ASN.1 schema support.
//
// Every writer returns the complete TLV bytes. Lengths use the definite
// short/long forms of DER (shortest form); INTEGERs are minimal two's
// complement; SET OF contents are sorted by their encodings (X.690 §11.6).
import { concatBytes } from '../../protocol/bytes.js';
import { IscmError } from '../../protocol/errors.js';

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8String: 0x0c,
  PrintableString: 0x13,
  IA5String: 0x16,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

function derError(message: string): IscmError {
  return new IscmError('INVALID_FIELD', `DER: ${message}`);
}

function encodeLength(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw derError(`bad length ${n}`);
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with a single-byte tag. */
export function tlv(tag: number, content: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(tag), encodeLength(content.length), content);
}

export function sequence(...items: Uint8Array[]): Uint8Array {
  return tlv(TAG.SEQUENCE, concatBytes(...items));
}

/** SET OF: the elements sorted by their DER encodings (X.690 §11.6). */
export function setOf(...items: Uint8Array[]): Uint8Array {
  const sorted = [...items].sort(compareBytes);
  return tlv(TAG.SET, concatBytes(...sorted));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** INTEGER from a non-negative big-endian magnitude (leading zeros removed, 0x00 added when the top bit is set). */
export function integerFromUnsigned(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let body = magnitude.subarray(i);
  if (body.length === 0) body = Uint8Array.of(0);
  if (body[0] & 0x80) body = concatBytes(Uint8Array.of(0), body);
  return tlv(TAG.INTEGER, body);
}

/** INTEGER from a small non-negative number. */
export function integer(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw derError(`integer ${n} out of range`);
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(v & 0xff);
    v = Math.floor(v / 256);
  } while (v > 0);
  return integerFromUnsigned(Uint8Array.from(bytes));
}

export function nullValue(): Uint8Array {
  return Uint8Array.of(TAG.NULL, 0);
}

export function octetString(b: Uint8Array): Uint8Array {
  return tlv(TAG.OCTET_STRING, b);
}

/** BIT STRING with no unused bits (signatures, public keys). */
export function bitString(b: Uint8Array): Uint8Array {
  return tlv(TAG.BIT_STRING, concatBytes(Uint8Array.of(0), b));
}

/** OBJECT IDENTIFIER from dotted text ("1.2.840.10045.4.3.2"). */
export function oid(dotted: string): Uint8Array {
  return tlv(TAG.OID, oidContent(dotted));
}

export function oidContent(dotted: string): Uint8Array {
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(dotted)) throw derError(`bad OID ${JSON.stringify(dotted)}`);
  const arcs = dotted.split('.').map((a) => BigInt(a));
  if (arcs[0] < 2n && arcs[1] > 39n) throw derError(`bad OID ${dotted}: second arc > 39`);
  const out: number[] = [];
  const push = (v: bigint) => {
    const groups: number[] = [Number(v & 0x7fn)];
    for (v >>= 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...groups);
  };
  push(arcs[0] * 40n + arcs[1]);
  for (const a of arcs.slice(2)) push(a);
  return Uint8Array.from(out);
}

/** Dotted text of OID content bytes (the value of an OID TLV). */
export function oidToString(content: Uint8Array): string {
  if (content.length === 0) throw derError('empty OID');
  const arcs: bigint[] = [];
  let v = 0n;
  for (let i = 0; i < content.length; i++) {
    if (v === 0n && content[i] === 0x80) throw derError('OID arc with a leading 0x80 byte');
    v = (v << 7n) | BigInt(content[i] & 0x7f);
    if ((content[i] & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
    } else if (i === content.length - 1) throw derError('truncated OID');
  }
  const first = arcs[0] < 80n ? arcs[0] / 40n : 2n;
  const second = arcs[0] - first * 40n;
  return [first, second, ...arcs.slice(1)].map(String).join('.');
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export function utf8String(s: string): Uint8Array {
  return tlv(TAG.UTF8String, new TextEncoder().encode(s));
}

export function printableString(s: string): Uint8Array {
  if (!PRINTABLE.test(s)) throw derError(`${JSON.stringify(s)} has characters a PrintableString cannot hold`);
  return tlv(TAG.PrintableString, new TextEncoder().encode(s));
}

export function isPrintable(s: string): boolean {
  return PRINTABLE.test(s);
}

export function ia5String(s: string): Uint8Array {
  if (!/^[\x00-\x7f]*$/.test(s)) throw derError(`${JSON.stringify(s)} is not ASCII (IA5String)`);
  return tlv(TAG.IA5String, new TextEncoder().encode(s));
}

/** Context-specific tag [n]: constructed (EXPLICIT wrapper, or IMPLICIT SET/SEQUENCE) or primitive (IMPLICIT string). */
export function contextTag(n: number, content: Uint8Array, constructed: boolean): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw derError(`context tag ${n} out of range`);
  return tlv(0x80 | (constructed ? 0x20 : 0) | n, content);
}

/** EXPLICIT [n] around a complete TLV. */
export function explicit(n: number, inner: Uint8Array): Uint8Array {
  return contextTag(n, inner, true);
}

// ------------------------------------------------------------------ reader

export interface Tlv {
  tag: number;
  /** The content octets (a view into the input). */
  value: Uint8Array;
  /** Offset just after this TLV. */
  end: number;
}

/** Reads one DER TLV at `offset` (single-byte tags, definite minimal lengths). Throws INVALID_FIELD. */
export function readTlv(bytes: Uint8Array, offset = 0): Tlv {
  if (offset + 2 > bytes.length) throw derError('truncated TLV');
  const tag = bytes[offset];
  if ((tag & 0x1f) === 0x1f) throw derError('multi-byte tags are not supported');
  let len = bytes[offset + 1];
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw derError('indefinite length is not DER');
    if (n > 4) throw derError('length too large');
    if (p + n > bytes.length) throw derError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + bytes[p + i];
    if (bytes[p] === 0 || len < 0x80) throw derError('non-minimal length');
    p += n;
  }
  if (p + len > bytes.length) throw derError(`truncated value (need ${len} bytes, have ${bytes.length - p})`);
  return { tag, value: bytes.subarray(p, p + len), end: p + len };
}

/** Reads exactly one TLV spanning all of `bytes`. */
export function readSingle(bytes: Uint8Array, expectTag?: number): Tlv {
  const t = readTlv(bytes, 0);
  if (t.end !== bytes.length) throw derError(`${bytes.length - t.end} trailing bytes`);
  if (expectTag !== undefined && t.tag !== expectTag) throw derError(`expected tag 0x${expectTag.toString(16)}, got 0x${t.tag.toString(16)}`);
  return t;
}

/** The TLVs inside a constructed value. */
export function readChildren(content: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let p = 0;
  while (p < content.length) {
    const t = readTlv(content, p);
    out.push(t);
    p = t.end;
  }
  return out;
}

// ------------------------------------------------------------------ ECDSA signatures

/** ECDSA-Sig-Value DER (SEQUENCE { r INTEGER, s INTEGER }) from raw fixed-width r‖s. */
export function ecdsaRawToDer(raw: Uint8Array): Uint8Array {
  if (raw.length === 0 || raw.length % 2 !== 0) throw derError(`raw ECDSA signature of ${raw.length} bytes`);
  const h = raw.length / 2;
  return sequence(integerFromUnsigned(raw.subarray(0, h)), integerFromUnsigned(raw.subarray(h)));
}

/** Raw fixed-width r‖s (each `size` bytes) from an ECDSA-Sig-Value DER. */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Uint8Array {
  const seq = readSingle(der, TAG.SEQUENCE);
  const parts = readChildren(seq.value);
  if (parts.length !== 2 || parts.some((p) => p.tag !== TAG.INTEGER)) throw derError('ECDSA-Sig-Value must be two INTEGERs');
  const out = new Uint8Array(2 * size);
  parts.forEach((p, i) => {
    let v = p.value;
    if (v.length === 0 || (v[0] & 0x80) !== 0) throw derError('ECDSA r or s is negative or empty');
    if (v.length > 1 && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw derError('ECDSA r or s out of range');
    out.set(v, (i + 1) * size - v.length);
  });
  return out;
}
