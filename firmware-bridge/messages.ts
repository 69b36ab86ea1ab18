// Message codecs of the MCU link: one CBOR payload shape per frame type
// (docs/LINK.md lists them). Every payload is a CBOR map with small unsigned
// integer keys, deterministic (RFC 8949 §4.2.1) like every structure of the
// project. Decoders are strict: unknown keys, wrong types, out-of-range values
// all throw a typed error (CborError or ValidationError), nothing else.
import { decode, encode } from '../protocol/cbor.js';
import { aarray, akeys, amap, astr, auint, ValidationError } from '../protocol/errors.js';
import { checkValues, READING_KINDS, type ReadingKind } from '../protocol/reading.js';
import { encodeFrame, FrameType, MAX_PAYLOAD, type Frame, type FrameTypeCode, type FrameTypeName } from './frame.js';

/** Link protocol versions this code speaks (HELLO / HELLO_ACK negotiation). */
export const LINK_VERSIONS: readonly number[] = [1];

export const NackReason = {
  /** Out of order: resend from `seq` (the next one the gateway expects). */
  GAP: 1,
  /** The frame `seq` is refused for good (invalid payload): drop it, do not resend. */
  INVALID: 2,
  /** The gateway cannot store now (back-pressure): keep everything, resend later. */
  BUSY: 3,
  /** The gateway has no session with this firmware: send HELLO. */
  HELLO_REQUIRED: 4,
} as const;
export type NackReasonCode = (typeof NackReason)[keyof typeof NackReason];

export const ErrorCodeLink = {
  /** No common protocol version; `versions` lists the sender's. */
  VERSION: 1,
  /** A frame or payload could not be decoded. */
  MALFORMED: 2,
  /** CONFIG refused (unknown key, bad value). */
  CONFIG: 3,
  /** Internal failure of the sender. */
  INTERNAL: 4,
  /** A message that is not expected in the current state. */
  UNEXPECTED: 5,
} as const;

export const SENSOR_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const SETTING_RE = /^[a-z][a-z0-9_]{0,31}$/;
const U32 = 0xffffffff;

export type SettingValue = number | string | boolean | Array<number | string | boolean>;
export type Settings = Record<string, SettingValue>;

export interface HelloMsg {
  type: 'HELLO';
  /** Link protocol versions the firmware speaks. */
  versions: number[];
  bootId: number;
  firmware: string;
  sensors: { id: string; kind: ReadingKind }[];
  /** Hardware id / serial, when the MCU has one. */
  device?: string;
  /** MCU monotonic ms since boot when it sent HELLO. */
  monoMs?: number;
  /** For each boot with unacknowledged data in the MCU's buffer: the first unacked seq. */
  pending?: { bootId: number; firstSeq: number }[];
  /** The MCU's wall clock, ms since the epoch, when it has one. */
  time?: number;
}
export interface HelloAckMsg {
  type: 'HELLO_ACK';
  version: number;
  /** Gateway clock, ms since the epoch. */
  time: number;
  config?: { version: number; settings: Settings };
  gateway?: string;
}
export interface DataMsg {
  type: 'READING' | 'EVENT';
  sensor: string;
  kind: ReadingKind;
  values: unknown;
  time?: number;
  monoMs?: number;
  /** Present when the data was created in an earlier boot than the session's. */
  bootId?: number;
  timeSource?: 'mcu' | 'gps';
}
export interface AckMsg { type: 'ACK'; bootId: number; seq: number }
export interface NackMsg { type: 'NACK'; bootId: number; seq: number; reason: NackReasonCode; message?: string }
export interface TimeMsg { type: 'TIME'; time?: number }
export interface ConfigMsg { type: 'CONFIG'; version: number; settings?: Settings }
export interface PingMsg { type: 'PING' | 'PONG'; time?: number }
export interface ErrorMsg { type: 'ERROR'; code: number; message: string; ref?: number; versions?: number[] }

export type Message = HelloMsg | HelloAckMsg | DataMsg | AckMsg | NackMsg | TimeMsg | ConfigMsg | PingMsg | ErrorMsg;

// ---------------------------------------------------------------- helpers

const optU = (m: Map<unknown, unknown>, k: number, f: string, max = Number.MAX_SAFE_INTEGER) => (m.has(k) ? auint(m.get(k), `${f}.${k}`, 0, max) : undefined);
const text = (v: unknown, f: string, max: number, re?: RegExp) => {
  const s = astr(v, f);
  if (s.length === 0 || s.length > max) throw new ValidationError(f, `expected 1..${max} characters`);
  if (re && !re.test(s)) throw new ValidationError(f, `${JSON.stringify(s.slice(0, 40))} has characters outside ${re}`);
  return s;
};
function kindOf(v: unknown, f: string): ReadingKind {
  if (typeof v !== 'string' || !(READING_KINDS as readonly string[]).includes(v)) throw new ValidationError(f, `expected one of ${READING_KINDS.join(', ')}`);
  return v as ReadingKind;
}
function versionsOf(v: unknown, f: string): number[] {
  return aarray(v, f, 1, 16).map((x, i) => auint(x, `${f}[${i}]`, 1, 255));
}
/** CBOR decoded values (Maps) → plain JSON-like objects; text keys only. */
function plain(v: unknown, f: string, depth = 0): unknown {
  if (depth > 4) throw new ValidationError(f, 'nested too deep');
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) {
      if (typeof k !== 'string' || k === '__proto__') throw new ValidationError(f, 'expected text keys');
      o[k] = plain(x, `${f}.${k}`, depth + 1);
    }
    return o;
  }
  if (Array.isArray(v)) return v.map((x, i) => plain(x, `${f}[${i}]`, depth + 1));
  if (v instanceof Uint8Array || (typeof v === 'object' && v !== null)) throw new ValidationError(f, 'unsupported value type');
  return v;
}
function settingsOf(v: unknown, f: string): Settings {
  const m = amap(v, f);
  if (m.size > 64) throw new ValidationError(f, 'at most 64 settings');
  const out: Settings = {};
  for (const [k, x] of m) {
    if (typeof k !== 'string' || !SETTING_RE.test(k)) throw new ValidationError(f, `setting name ${JSON.stringify(String(k)).slice(0, 40)} must match ${SETTING_RE}`);
    const one = (y: unknown, yf: string): number | string | boolean => {
      if (typeof y === 'boolean' || (typeof y === 'number' && Number.isFinite(y))) return y;
      if (typeof y === 'string' && y.length <= 256) return y;
      throw new ValidationError(yf, 'expected a number, a boolean or a text of at most 256 characters');
    };
    out[k] = Array.isArray(x) ? aarray(x, `${f}.${k}`, 0, 64).map((y, i) => one(y, `${f}.${k}[${i}]`)) : one(x, `${f}.${k}`);
  }
  return out;
}
function settingsMap(s: Settings): Map<string, SettingValue> {
  return new Map(Object.entries(s));
}

// ---------------------------------------------------------------- encode

/** The CBOR payload of a message. */
export function encodePayload(msg: Message): Uint8Array {
  const m = new Map<number, unknown>();
  switch (msg.type) {
    case 'HELLO':
      m.set(1, msg.versions);
      m.set(2, msg.bootId);
      m.set(3, msg.firmware);
      m.set(4, msg.sensors.map((s) => [s.id, s.kind]));
      if (msg.device !== undefined) m.set(5, msg.device);
      if (msg.monoMs !== undefined) m.set(6, msg.monoMs);
      if (msg.pending !== undefined && msg.pending.length) m.set(7, msg.pending.map((p) => [p.bootId, p.firstSeq]));
      if (msg.time !== undefined) m.set(8, msg.time);
      break;
    case 'HELLO_ACK':
      m.set(1, msg.version);
      m.set(2, msg.time);
      if (msg.config) m.set(3, new Map<number, unknown>([[1, msg.config.version], [2, settingsMap(msg.config.settings)]]));
      if (msg.gateway !== undefined) m.set(4, msg.gateway);
      break;
    case 'READING':
    case 'EVENT':
      m.set(1, msg.sensor);
      m.set(2, msg.kind);
      m.set(3, msg.values);
      if (msg.time !== undefined) m.set(4, msg.time);
      if (msg.monoMs !== undefined) m.set(5, msg.monoMs);
      if (msg.bootId !== undefined) m.set(6, msg.bootId);
      if (msg.timeSource !== undefined) m.set(7, msg.timeSource);
      break;
    case 'ACK':
      m.set(1, msg.bootId);
      m.set(2, msg.seq);
      break;
    case 'NACK':
      m.set(1, msg.bootId);
      m.set(2, msg.seq);
      m.set(3, msg.reason);
      if (msg.message !== undefined) m.set(4, msg.message.slice(0, 200));
      break;
    case 'TIME':
    case 'PING':
    case 'PONG':
      if (msg.time !== undefined) m.set(1, msg.time);
      break;
    case 'CONFIG':
      m.set(1, msg.version);
      if (msg.settings) m.set(2, settingsMap(msg.settings));
      break;
    case 'ERROR':
      m.set(1, msg.code);
      m.set(2, msg.message.slice(0, 200));
      if (msg.ref !== undefined) m.set(3, msg.ref);
      if (msg.versions !== undefined) m.set(4, msg.versions);
      break;
  }
  return encode(m);
}

/** One wire frame (COBS + delimiter) carrying `msg` with frame seq `seq`. */
export function encodeMessage(msg: Message, seq: number): Uint8Array {
  return encodeFrame(FrameType[msg.type as FrameTypeName] as FrameTypeCode, seq, encodePayload(msg));
}

// ---------------------------------------------------------------- decode

const TYPE_OF: Record<number, Message['type']> = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k])) as Record<number, Message['type']>;

/** Decodes a frame's payload as the message its type says. Throws CborError / ValidationError only. */
export function decodeMessage(frame: Pick<Frame, 'type' | 'payload'>): Message {
  const type = TYPE_OF[frame.type];
  if (!type) throw new ValidationError('type', `unknown frame type 0x${frame.type.toString(16)}`);
  const f = type;
  const m = amap(decode(frame.payload, { maxBytes: MAX_PAYLOAD, maxDepth: 8 }), f);
  switch (type) {
    case 'HELLO': {
      akeys(m, f, [1, 2, 3, 4], [5, 6, 7, 8]);
      const sensors = aarray(m.get(4), `${f}.4`, 0, 64).map((s, i) => {
        const p = aarray(s, `${f}.4[${i}]`, 2, 2);
        return { id: text(p[0], `${f}.4[${i}][0]`, 64, SENSOR_RE), kind: kindOf(p[1], `${f}.4[${i}][1]`) };
      });
      const out: HelloMsg = { type, versions: versionsOf(m.get(1), `${f}.1`), bootId: auint(m.get(2), `${f}.2`, 0, U32), firmware: text(m.get(3), `${f}.3`, 64), sensors };
      if (m.has(5)) out.device = text(m.get(5), `${f}.5`, 64);
      const mono = optU(m, 6, f);
      if (mono !== undefined) out.monoMs = mono;
      if (m.has(7))
        out.pending = aarray(m.get(7), `${f}.7`, 0, 16).map((p, i) => {
          const a = aarray(p, `${f}.7[${i}]`, 2, 2);
          return { bootId: auint(a[0], `${f}.7[${i}][0]`, 0, U32), firstSeq: auint(a[1], `${f}.7[${i}][1]`, 1, U32) };
        });
      const t = optU(m, 8, f);
      if (t !== undefined) out.time = t;
      return out;
    }
    case 'HELLO_ACK': {
      akeys(m, f, [1, 2], [3, 4]);
      const out: HelloAckMsg = { type, version: auint(m.get(1), `${f}.1`, 1, 255), time: auint(m.get(2), `${f}.2`) };
      if (m.has(3)) {
        const c = amap(m.get(3), `${f}.3`);
        akeys(c, `${f}.3`, [1, 2]);
        out.config = { version: auint(c.get(1), `${f}.3.1`, 0, U32), settings: settingsOf(c.get(2), `${f}.3.2`) };
      }
      if (m.has(4)) out.gateway = text(m.get(4), `${f}.4`, 64);
      return out;
    }
    case 'READING':
    case 'EVENT': {
      akeys(m, f, [1, 2, 3], [4, 5, 6, 7]);
      const kind = kindOf(m.get(2), `${f}.2`);
      const out: DataMsg = { type, sensor: text(m.get(1), `${f}.1`, 64, SENSOR_RE), kind, values: checkValues(kind, plain(m.get(3), `${f}.3`), `${f}.3`) };
      const t = optU(m, 4, f, 8.64e15);
      if (t !== undefined) out.time = t;
      const mono = optU(m, 5, f);
      if (mono !== undefined) out.monoMs = mono;
      const b = optU(m, 6, f, U32);
      if (b !== undefined) out.bootId = b;
      if (m.has(7)) {
        const ts = m.get(7);
        if (ts !== 'mcu' && ts !== 'gps') throw new ValidationError(`${f}.7`, 'expected "mcu" or "gps"');
        if (t === undefined) throw new ValidationError(`${f}.7`, 'a time source without a time (key 4)');
        out.timeSource = ts;
      }
      return out;
    }
    case 'ACK':
      akeys(m, f, [1, 2]);
      return { type, bootId: auint(m.get(1), `${f}.1`, 0, U32), seq: auint(m.get(2), `${f}.2`, 0, U32) };
    case 'NACK': {
      akeys(m, f, [1, 2, 3], [4]);
      const reason = auint(m.get(3), `${f}.3`, 1, 4) as NackReasonCode;
      const out: NackMsg = { type, bootId: auint(m.get(1), `${f}.1`, 0, U32), seq: auint(m.get(2), `${f}.2`, 0, U32), reason };
      if (m.has(4)) out.message = text(m.get(4), `${f}.4`, 200);
      return out;
    }
    case 'TIME':
    case 'PING':
    case 'PONG': {
      akeys(m, f, [], [1]);
      const t = optU(m, 1, f);
      return t === undefined ? { type } : { type, time: t };
    }
    case 'CONFIG': {
      akeys(m, f, [1], [2]);
      const out: ConfigMsg = { type, version: auint(m.get(1), `${f}.1`, 0, U32) };
      if (m.has(2)) out.settings = settingsOf(m.get(2), `${f}.2`);
      return out;
    }
    case 'ERROR': {
      akeys(m, f, [1, 2], [3, 4]);
      const out: ErrorMsg = { type, code: auint(m.get(1), `${f}.1`, 0, 255), message: text(m.get(2), `${f}.2`, 200) };
      const r = optU(m, 3, f, U32);
      if (r !== undefined) out.ref = r;
      if (m.has(4)) out.versions = versionsOf(m.get(4), `${f}.4`);
      return out;
    }
  }
}
