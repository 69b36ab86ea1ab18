// A sensor reading as the gateway receives it from the MCU link, and its JSON
// line form (what `iscm-edge firmware listen` writes and `events preview`
// reads). The link delivers the same fields as a CBOR map in READING / EVENT
// frames (firmware-bridge/messages.ts); this module validates the values
// whatever the transport, so the event builder can trust them.
import { ValidationError } from './errors.js';

export const READING_KINDS = ['temperature', 'humidity', 'shock', 'door', 'gps', 'rfid', 'alarm'] as const;
export type ReadingKind = (typeof READING_KINDS)[number];

/** Where a reading's wall-clock time came from (issue: clock sanity). */
export type TimeSource = 'mcu' | 'gateway' | 'gps' | 'none';

export interface ReadingValues {
  temperature: { celsius: number };
  humidity: { percent: number };
  /** Peak acceleration in g (magnitude), optional per-axis peaks. */
  shock: { g: number; x?: number; y?: number; z?: number };
  door: { open: boolean; door?: string };
  gps: { lat: number; lon: number; alt_m?: number; speed_mps?: number; course_deg?: number; fix: '2d' | '3d'; hdop?: number; sats?: number };
  /** EPC URIs (urn:epc:id:…) or pure-identity hex as read; `reader`/`antenna` when known. */
  rfid: { epcs: string[]; reader?: string; antenna?: number; barcode?: boolean };
  alarm: { code: string; message?: string };
}

export interface Reading<K extends ReadingKind = ReadingKind> {
  /** The MCU's boot id (changes on every MCU reboot). */
  bootId: number;
  /** The MCU's frame seq for this reading, per boot. */
  seq: number;
  /** The sensor's id on the MCU, e.g. "t1". */
  sensor: string;
  kind: K;
  /** ms since the Unix epoch, or null while no clock is trusted. */
  time: number | null;
  timeSource: TimeSource;
  /** MCU monotonic ms since its boot, when it sends one. */
  monoMs?: number;
  values: ReadingValues[K];
}

/** A sensor id on the MCU (also a config key). */
export const SENSOR_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const u32 = (v: unknown, f: string): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ValidationError(f, `expected an integer 0..4294967295, got ${JSON.stringify(v)}`);
  return v;
};
const num = (v: unknown, f: string, min: number, max: number): number => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new ValidationError(f, `expected a number in ${min}..${max}, got ${JSON.stringify(v)}`);
  return v;
};
const opt = <T>(o: Record<string, unknown>, k: string, f: (v: unknown, field: string) => T, field: string): T | undefined => (o[k] === undefined ? undefined : f(o[k], `${field}.${k}`));
const str = (v: unknown, f: string, max = 256): string => {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new ValidationError(f, `expected a text of 1..${max} characters`);
  return v;
};
function obj(v: unknown, f: string, allowed: string[]): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ValidationError(f, 'expected an object');
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw new ValidationError(`${f}.${k}`, `unknown field (expected one of ${allowed.join(', ')})`);
  return v as Record<string, unknown>;
}

/** Validates the values of a reading of `kind`; returns a clean copy. */
export function checkValues(kind: ReadingKind, v: unknown, f = 'values'): ReadingValues[ReadingKind] {
  switch (kind) {
    case 'temperature': {
      const o = obj(v, f, ['celsius']);
      return { celsius: num(o.celsius, `${f}.celsius`, -273.15, 1000) };
    }
    case 'humidity': {
      const o = obj(v, f, ['percent']);
      return { percent: num(o.percent, `${f}.percent`, 0, 100) };
    }
    case 'shock': {
      const o = obj(v, f, ['g', 'x', 'y', 'z']);
      const axis = (x: unknown, af: string) => num(x, af, -1000, 1000);
      const out: ReadingValues['shock'] = { g: num(o.g, `${f}.g`, 0, 1000) };
      for (const k of ['x', 'y', 'z'] as const) {
        const a = opt(o, k, axis, f);
        if (a !== undefined) out[k] = a;
      }
      return out;
    }
    case 'door': {
      const o = obj(v, f, ['open', 'door']);
      if (typeof o.open !== 'boolean') throw new ValidationError(`${f}.open`, 'expected true or false');
      const out: ReadingValues['door'] = { open: o.open };
      const d = opt(o, 'door', (x, af) => str(x, af, 64), f);
      if (d !== undefined) out.door = d;
      return out;
    }
    case 'gps': {
      const o = obj(v, f, ['lat', 'lon', 'alt_m', 'speed_mps', 'course_deg', 'fix', 'hdop', 'sats']);
      if (o.fix !== '2d' && o.fix !== '3d') throw new ValidationError(`${f}.fix`, 'expected "2d" or "3d" (readings without a fix are not positions)');
      const out: ReadingValues['gps'] = { lat: num(o.lat, `${f}.lat`, -90, 90), lon: num(o.lon, `${f}.lon`, -180, 180), fix: o.fix };
      const a = opt(o, 'alt_m', (x, af) => num(x, af, -1000, 100000), f);
      if (a !== undefined) out.alt_m = a;
      const s = opt(o, 'speed_mps', (x, af) => num(x, af, 0, 1000), f);
      if (s !== undefined) out.speed_mps = s;
      const c = opt(o, 'course_deg', (x, af) => num(x, af, 0, 360), f);
      if (c !== undefined) out.course_deg = c;
      const h = opt(o, 'hdop', (x, af) => num(x, af, 0, 100), f);
      if (h !== undefined) out.hdop = h;
      const n = opt(o, 'sats', (x, af) => num(x, af, 0, 255), f);
      if (n !== undefined) out.sats = n;
      return out;
    }
    case 'rfid': {
      const o = obj(v, f, ['epcs', 'reader', 'antenna', 'barcode']);
      if (!Array.isArray(o.epcs) || o.epcs.length === 0 || o.epcs.length > 256) throw new ValidationError(`${f}.epcs`, 'expected 1..256 identifiers');
      const out: ReadingValues['rfid'] = { epcs: o.epcs.map((e, i) => str(e, `${f}.epcs[${i}]`, 256)) };
      const r = opt(o, 'reader', (x, af) => str(x, af, 64), f);
      if (r !== undefined) out.reader = r;
      const a = opt(o, 'antenna', (x, af) => num(x, af, 0, 255), f);
      if (a !== undefined) out.antenna = a;
      if (o.barcode !== undefined) {
        if (typeof o.barcode !== 'boolean') throw new ValidationError(`${f}.barcode`, 'expected true or false');
        out.barcode = o.barcode;
      }
      return out;
    }
    case 'alarm': {
      const o = obj(v, f, ['code', 'message']);
      const out: ReadingValues['alarm'] = { code: str(o.code, `${f}.code`, 64) };
      const m = opt(o, 'message', (x, af) => str(x, af, 512), f);
      if (m !== undefined) out.message = m;
      return out;
    }
  }
}

/** Validates a whole reading (from any transport). */
export function checkReading(r: unknown, f = 'reading'): Reading {
  const o = obj(r, f, ['bootId', 'seq', 'sensor', 'kind', 'time', 'timeSource', 'monoMs', 'values']);
  if (typeof o.kind !== 'string' || !(READING_KINDS as readonly string[]).includes(o.kind))
    throw new ValidationError(`${f}.kind`, `expected one of ${READING_KINDS.join(', ')}, got ${JSON.stringify(o.kind)}`);
  const kind = o.kind as ReadingKind;
  if (typeof o.sensor !== 'string' || !SENSOR_RE.test(o.sensor)) throw new ValidationError(`${f}.sensor`, 'expected 1..64 of [A-Za-z0-9._:-]');
  const time = o.time === null ? null : num(o.time, `${f}.time`, 0, 8.64e15);
  const ts = o.timeSource;
  if (ts !== 'mcu' && ts !== 'gateway' && ts !== 'gps' && ts !== 'none') throw new ValidationError(`${f}.timeSource`, 'expected mcu, gateway, gps or none');
  if ((time === null) !== (ts === 'none')) throw new ValidationError(`${f}.time`, 'time is null exactly when timeSource is "none"');
  const out: Reading = { bootId: u32(o.bootId, `${f}.bootId`), seq: u32(o.seq, `${f}.seq`), sensor: o.sensor, kind, time, timeSource: ts, values: checkValues(kind, o.values, `${f}.values`) };
  if (o.monoMs !== undefined) out.monoMs = num(o.monoMs, `${f}.monoMs`, 0, Number.MAX_SAFE_INTEGER);
  return out;
}

/**
 * JSON line form: {"boot_id","seq","sensor","kind","time","time_source","mono_ms"?,"values"}.
 * snake_case on disk (operators grep these files), camelCase in code.
 */
export function formatReadingLine(r: Reading): string {
  const o: Record<string, unknown> = { boot_id: r.bootId, seq: r.seq, sensor: r.sensor, kind: r.kind, time: r.time, time_source: r.timeSource };
  if (r.monoMs !== undefined) o.mono_ms = r.monoMs;
  o.values = r.values;
  return JSON.stringify(o);
}

/** Parses one JSON line; `where` (e.g. "readings.jsonl:12") prefixes error fields. */
export function parseReadingLine(line: string, where = 'line'): Reading {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch (e) {
    throw new ValidationError(where, `not JSON: ${(e as Error).message}`);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ValidationError(where, 'expected a JSON object');
  const j = o as Record<string, unknown>;
  const known = ['boot_id', 'seq', 'sensor', 'kind', 'time', 'time_source', 'mono_ms', 'values'];
  for (const k of Object.keys(j)) if (!known.includes(k)) throw new ValidationError(`${where}.${k}`, `unknown field (expected ${known.join(', ')})`);
  return checkReading({ bootId: j.boot_id, seq: j.seq, sensor: j.sensor, kind: j.kind, time: j.time, timeSource: j.time_source, monoMs: j.mono_ms, values: j.values }, where);
}
