// The MCU link frame (ARCHITECTURE §4.5, normative):
//   wire  = COBS(body) 0x00
//   body  = ver u8 (=1) ‖ type u8 ‖ seq u32 BE ‖ CBOR payload ‖ CRC-32C u32 BE
// The CRC covers every body byte before it; a body is at most 1024 bytes.
import { crc32c } from '../protocol/crc32c.js';
import { cobsEncodeInto, cobsMaxEncoded } from './cobs.js';
import { LinkError } from './errors.js';

export const FRAME_VERSION = 1;
export const MAX_BODY = 1024;
/** ver + type + seq */
export const HEADER_BYTES = 6;
export const CRC_BYTES = 4;
/** Smallest body: header, a one-byte CBOR payload, CRC. */
export const MIN_BODY = HEADER_BYTES + 1 + CRC_BYTES;
export const MAX_PAYLOAD = MAX_BODY - HEADER_BYTES - CRC_BYTES;
/** Largest COBS block a valid body can produce (without the delimiter). */
export const MAX_ENCODED = cobsMaxEncoded(MAX_BODY);

export const FrameType = {
  HELLO: 0x01,
  HELLO_ACK: 0x02,
  READING: 0x10,
  EVENT: 0x11,
  ACK: 0x20,
  NACK: 0x21,
  TIME: 0x30,
  CONFIG: 0x31,
  PING: 0x40,
  PONG: 0x41,
  ERROR: 0x7f,
} as const;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

const NAMES = new Map<number, FrameTypeName>(Object.entries(FrameType).map(([k, v]) => [v, k as FrameTypeName]));
export function frameTypeName(t: number): FrameTypeName | undefined {
  return NAMES.get(t);
}
export function isKnownType(t: number): t is FrameTypeCode {
  return NAMES.has(t);
}

export interface Frame {
  ver: number;
  type: FrameTypeCode;
  seq: number;
  /** The CBOR payload bytes (a copy the receiver owns). */
  payload: Uint8Array;
}

const scratchBody = new Uint8Array(MAX_BODY);

/** Encodes one frame ready for the wire: COBS(body) followed by 0x00. */
export function encodeFrame(type: FrameTypeCode, seq: number, payload: Uint8Array, ver = FRAME_VERSION): Uint8Array {
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new LinkError('FRAME', `frame seq ${seq} is not a u32`, 'seq');
  const bodyLen = HEADER_BYTES + payload.length + CRC_BYTES;
  if (bodyLen > MAX_BODY) throw new LinkError('FRAME', `frame body of ${bodyLen} bytes exceeds the ${MAX_BODY}-byte limit`, 'payload');
  const body = scratchBody;
  body[0] = ver;
  body[1] = type;
  body[2] = seq >>> 24;
  body[3] = (seq >>> 16) & 0xff;
  body[4] = (seq >>> 8) & 0xff;
  body[5] = seq & 0xff;
  body.set(payload, HEADER_BYTES);
  const crcAt = HEADER_BYTES + payload.length;
  const crc = crc32c(body, 0, 0, crcAt);
  body[crcAt] = crc >>> 24;
  body[crcAt + 1] = (crc >>> 16) & 0xff;
  body[crcAt + 2] = (crc >>> 8) & 0xff;
  body[crcAt + 3] = crc & 0xff;
  const out = new Uint8Array(cobsMaxEncoded(bodyLen) + 1);
  const n = cobsEncodeInto(body, out, 0, 0, bodyLen);
  out[n] = 0;
  return out.subarray(0, n + 1);
}

/** Builds the raw body (no COBS) — for tests and tools. */
export function encodeBody(type: number, seq: number, payload: Uint8Array, ver = FRAME_VERSION): Uint8Array {
  const body = new Uint8Array(HEADER_BYTES + payload.length + CRC_BYTES);
  body[0] = ver;
  body[1] = type;
  new DataView(body.buffer).setUint32(2, seq >>> 0);
  body.set(payload, HEADER_BYTES);
  new DataView(body.buffer).setUint32(body.length - 4, crc32c(body, 0, 0, body.length - 4));
  return body;
}
