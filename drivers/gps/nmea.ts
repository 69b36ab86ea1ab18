// NMEA 0183 sentence layer: framing, checksum, and decoders for the position
// and time sentences (RMC, GGA, GSA, VTG, GLL, ZDA) from any talker (GP, GN,
// GL, GA, GB, IN …). Pure functions; the stream driver is in driver.ts.
//
// Framing rule (line by line, stated in docs/LINK.md §GPS): a sentence is a
// whole line `$`/`!`, then characters other than `*`, `$`, `!`, then `*` and
// two hex digits (either case) whose value is the XOR of the bytes between
// the leading `$`/`!` and `*`. A line of that shape with the wrong XOR is a
// checksum failure; anything else (NUL bytes, a sentence cut short and
// followed by another, two on one line) is malformed and dropped whole. We do
// not try to recover sentences from spliced lines as gpsd's packet reader
// does: a gateway would rather lose one cycle than guess.
import { IscmError } from '../../protocol/errors.js';

export type NmeaErrorKind = 'checksum' | 'malformed' | 'field';

export class NmeaError extends IscmError {
  readonly kind: NmeaErrorKind;
  constructor(kind: NmeaErrorKind, message: string, field?: string) {
    super('NMEA_INVALID', message, field);
    this.name = 'NmeaError';
    this.kind = kind;
  }
}

export interface Sentence {
  /** "GP", "GN", "IN" …; "P" for proprietary ($Pxxx). */
  talker: string;
  /** "RMC", "GGA" …; for proprietary sentences the rest of the address ("TNTA"). */
  type: string;
  /** Fields after the address. */
  fields: string[];
  raw: string;
}

const SHAPE = /^[$!]([^*$!]*)\*([0-9A-Fa-f]{2})$/;
const MAX_LINE = 164; // NMEA says 82; allow the long proprietary and 4.1 sentences, refuse junk

export type LineClass = 'valid' | 'checksum' | 'malformed';

/** Classifies one line (without its line ending) under the framing rule. */
export function classifyLine(line: string): LineClass {
  if (line.length > MAX_LINE) return 'malformed';
  const m = SHAPE.exec(line);
  if (!m) return 'malformed';
  return xor(m[1]) === parseInt(m[2], 16) ? 'valid' : 'checksum';
}

function xor(s: string): number {
  let c = 0;
  for (let i = 0; i < s.length; i++) c ^= s.charCodeAt(i);
  return c & 0xff;
}

/** Parses one line into a sentence; throws NmeaError (checksum | malformed). */
export function parseSentence(line: string): Sentence {
  if (line.length > MAX_LINE) throw new NmeaError('malformed', `line of ${line.length} characters is longer than ${MAX_LINE}`);
  const m = SHAPE.exec(line);
  if (!m) throw new NmeaError('malformed', `not an NMEA sentence: ${JSON.stringify(line.slice(0, 40))}`);
  const want = parseInt(m[2], 16);
  const got = xor(m[1]);
  if (got !== want) throw new NmeaError('checksum', `checksum ${m[2]} does not match the computed ${got.toString(16).toUpperCase().padStart(2, '0')}`);
  const parts = m[1].split(',');
  const addr = parts[0];
  if (!/^[A-Z0-9]{2,}$/.test(addr)) throw new NmeaError('malformed', `bad address field ${JSON.stringify(addr.slice(0, 12))}`);
  const proprietary = addr[0] === 'P';
  if (!proprietary && addr.length !== 5) throw new NmeaError('malformed', `address ${addr} is not talker (2) + type (3)`);
  return { talker: proprietary ? 'P' : addr.slice(0, 2), type: proprietary ? addr.slice(1) : addr.slice(2), fields: parts.slice(1), raw: line };
}

// ------------------------------------------------------------ field parsers

/** hhmmss[.sss] → ms since midnight, or undefined when empty. */
export function parseTimeOfDay(s: string, f = 'time'): number | undefined {
  if (s === '') return undefined;
  const m = /^(\d{2})(\d{2})(\d{2})(?:\.(\d{1,6}))?$/.exec(s);
  if (!m) throw new NmeaError('field', `${f}: ${JSON.stringify(s)} is not hhmmss.ss`, f);
  const h = +m[1], mi = +m[2], se = +m[3];
  if (h > 23 || mi > 59 || se > 60) throw new NmeaError('field', `${f}: ${s} is out of range`, f);
  const frac = m[4] ? Math.round(Number(`0.${m[4]}`) * 1000) : 0;
  return ((h * 60 + mi) * 60 + se) * 1000 + frac;
}

export interface NmeaDate { year: number; month: number; day: number }

/** ddmmyy → date (two-digit years: 80–99 → 19xx, else 20xx). */
export function parseDate(s: string, f = 'date'): NmeaDate | undefined {
  if (s === '') return undefined;
  const m = /^(\d{2})(\d{2})(\d{2})$/.exec(s);
  if (!m) throw new NmeaError('field', `${f}: ${JSON.stringify(s)} is not ddmmyy`, f);
  const day = +m[1], month = +m[2], yy = +m[3];
  if (day < 1 || day > 31 || month < 1 || month > 12) throw new NmeaError('field', `${f}: ${s} is out of range`, f);
  return { year: yy >= 80 ? 1900 + yy : 2000 + yy, month, day };
}

/** ddmm.mmmm / dddmm.mmmm + hemisphere → signed decimal degrees. */
export function parseCoord(v: string, hemi: string, isLat: boolean, f: string): number | undefined {
  if (v === '' && hemi === '') return undefined;
  const m = /^(\d+)(\d{2}(?:\.\d+)?)$/.exec(v);
  if (!m) throw new NmeaError('field', `${f}: ${JSON.stringify(v)} is not ${isLat ? 'ddmm.mmmm' : 'dddmm.mmmm'}`, f);
  const deg = +m[1];
  const min = Number(m[2]);
  if (min >= 60 || deg > (isLat ? 90 : 180)) throw new NmeaError('field', `${f}: ${v} is out of range`, f);
  const val = deg + min / 60;
  if (val > (isLat ? 90 : 180)) throw new NmeaError('field', `${f}: ${v} is out of range`, f);
  const ok = isLat ? hemi === 'N' || hemi === 'S' : hemi === 'E' || hemi === 'W';
  if (!ok) throw new NmeaError('field', `${f}: hemisphere ${JSON.stringify(hemi)} is not ${isLat ? 'N/S' : 'E/W'}`, f);
  return hemi === 'S' || hemi === 'W' ? -val : val;
}

export function parseNum(s: string | undefined, f: string): number | undefined {
  if (s === undefined || s === '') return undefined;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)$/.test(s)) throw new NmeaError('field', `${f}: ${JSON.stringify(s)} is not a number`, f);
  return Number(s);
}

function parseInt10(s: string | undefined, f: string): number | undefined {
  if (s === undefined || s === '') return undefined;
  if (!/^\d+$/.test(s)) throw new NmeaError('field', `${f}: ${JSON.stringify(s)} is not an integer`, f);
  return Number(s);
}

export const KNOT_MPS = 0.514444;

// ------------------------------------------------------------ decoded sentences

export interface Rmc { type: 'RMC'; talker: string; timeOfDayMs?: number; valid: boolean; lat?: number; lon?: number; speedKn?: number; courseDeg?: number; date?: NmeaDate; magvarDeg?: number; mode?: string }
export interface Gga { type: 'GGA'; talker: string; timeOfDayMs?: number; lat?: number; lon?: number; quality: number; sats?: number; hdop?: number; altMsl?: number; geoidSep?: number; dgpsAgeS?: number; dgpsStation?: string }
export interface Gsa { type: 'GSA'; talker: string; selection: string; fixType: number; prns: number[]; pdop?: number; hdop?: number; vdop?: number; systemId?: number }
export interface Vtg { type: 'VTG'; talker: string; courseDeg?: number; courseMagDeg?: number; speedKn?: number; speedKmh?: number; mode?: string }
export interface Gll { type: 'GLL'; talker: string; lat?: number; lon?: number; timeOfDayMs?: number; valid: boolean; mode?: string }
export interface Zda { type: 'ZDA'; talker: string; timeOfDayMs?: number; date?: NmeaDate; zoneHours?: number; zoneMinutes?: number }
export type Decoded = Rmc | Gga | Gsa | Vtg | Gll | Zda;

export const POSITION_TYPES = ['RMC', 'GGA', 'GSA', 'VTG', 'GLL', 'ZDA'] as const;

const fld = (s: Sentence, i: number) => s.fields[i] ?? '';

/**
 * Decodes a sentence of one of the six position/time types; undefined for any
 * other type (GSV, GST, proprietary …). Throws NmeaError('field') when a
 * field of a known type is malformed.
 */
export function decodeSentence(s: Sentence): Decoded | undefined {
  const t = s.talker;
  const name = `${t}${s.type}`;
  switch (s.type) {
    case 'RMC': {
      if (s.fields.length < 11) throw new NmeaError('field', `${name}: ${s.fields.length} fields, expected at least 11`);
      const status = fld(s, 1);
      const valid = status === 'A';
      const out: Rmc = { type: 'RMC', talker: t, valid };
      const tod = parseTimeOfDay(fld(s, 0), `${name}.time`);
      if (tod !== undefined) out.timeOfDayMs = tod;
      const date = parseDate(fld(s, 8), `${name}.date`);
      if (date) out.date = date;
      if (s.fields.length > 11 && fld(s, 11) !== '') out.mode = fld(s, 11);
      if (!valid) return out;
      const lat = parseCoord(fld(s, 2), fld(s, 3), true, `${name}.lat`);
      const lon = parseCoord(fld(s, 4), fld(s, 5), false, `${name}.lon`);
      if (lat === undefined || lon === undefined) throw new NmeaError('field', `${name}: status A without a position`);
      out.lat = lat;
      out.lon = lon;
      const sp = parseNum(fld(s, 6), `${name}.speed`);
      if (sp !== undefined) out.speedKn = sp;
      const co = parseNum(fld(s, 7), `${name}.course`);
      if (co !== undefined) out.courseDeg = co;
      const mv = parseNum(fld(s, 9), `${name}.magvar`);
      if (mv !== undefined) out.magvarDeg = fld(s, 10) === 'W' ? -mv : mv;
      return out;
    }
    case 'GGA': {
      if (s.fields.length < 14) throw new NmeaError('field', `${name}: ${s.fields.length} fields, expected 14`);
      const quality = parseInt10(fld(s, 5), `${name}.quality`) ?? 0;
      const out: Gga = { type: 'GGA', talker: t, quality };
      const tod = parseTimeOfDay(fld(s, 0), `${name}.time`);
      if (tod !== undefined) out.timeOfDayMs = tod;
      const sats = parseInt10(fld(s, 6), `${name}.sats`);
      if (sats !== undefined) out.sats = sats;
      const hdop = parseNum(fld(s, 7), `${name}.hdop`);
      if (hdop !== undefined) out.hdop = hdop;
      if (quality === 0) return out;
      const lat = parseCoord(fld(s, 1), fld(s, 2), true, `${name}.lat`);
      const lon = parseCoord(fld(s, 3), fld(s, 4), false, `${name}.lon`);
      if (lat === undefined || lon === undefined) throw new NmeaError('field', `${name}: quality ${quality} without a position`);
      out.lat = lat;
      out.lon = lon;
      const alt = parseNum(fld(s, 8), `${name}.alt`);
      if (alt !== undefined) out.altMsl = alt;
      const sep = parseNum(fld(s, 10), `${name}.geoid`);
      if (sep !== undefined) out.geoidSep = sep;
      const age = parseNum(fld(s, 12), `${name}.dgpsAge`);
      if (age !== undefined) out.dgpsAgeS = age;
      if (fld(s, 13) !== '') out.dgpsStation = fld(s, 13);
      return out;
    }
    case 'GSA': {
      if (s.fields.length < 17) throw new NmeaError('field', `${name}: ${s.fields.length} fields, expected 17`);
      const prns: number[] = [];
      for (let i = 2; i < 14; i++) {
        const p = parseInt10(fld(s, i), `${name}.prn`);
        if (p !== undefined) prns.push(p);
      }
      const out: Gsa = { type: 'GSA', talker: t, selection: fld(s, 0), fixType: parseInt10(fld(s, 1), `${name}.fix`) ?? 1, prns };
      const pd = parseNum(fld(s, 14), `${name}.pdop`);
      if (pd !== undefined) out.pdop = pd;
      const hd = parseNum(fld(s, 15), `${name}.hdop`);
      if (hd !== undefined) out.hdop = hd;
      const vd = parseNum(fld(s, 16), `${name}.vdop`);
      if (vd !== undefined) out.vdop = vd;
      const sys = parseInt10(s.fields[17], `${name}.system`);
      if (sys !== undefined) out.systemId = sys;
      return out;
    }
    case 'VTG': {
      // Modern: course,T,mag,M,knots,N,kmh,K[,mode]; NMEA 1.x: course,mag,knots,kmh.
      const f = s.fields;
      const modern = f[1] === 'T' || f[3] === 'M' || f[5] === 'N' || f.length >= 8;
      const out: Vtg = { type: 'VTG', talker: t };
      const c = parseNum(f[0], `${name}.course`);
      if (c !== undefined) out.courseDeg = c;
      const cm = parseNum(modern ? f[2] : f[1], `${name}.courseMag`);
      if (cm !== undefined) out.courseMagDeg = cm;
      const kn = parseNum(modern ? f[4] : f[2], `${name}.knots`);
      if (kn !== undefined) out.speedKn = kn;
      const kmh = parseNum(modern ? f[6] : f[3], `${name}.kmh`);
      if (kmh !== undefined) out.speedKmh = kmh;
      if (modern && f[8]) out.mode = f[8];
      return out;
    }
    case 'GLL': {
      if (s.fields.length < 6) throw new NmeaError('field', `${name}: ${s.fields.length} fields, expected at least 6`);
      const mode = fld(s, 6);
      const valid = fld(s, 5) === 'A' && mode !== 'N';
      const out: Gll = { type: 'GLL', talker: t, valid };
      const tod = parseTimeOfDay(fld(s, 4), `${name}.time`);
      if (tod !== undefined) out.timeOfDayMs = tod;
      if (mode) out.mode = mode;
      if (!valid) return out;
      const lat = parseCoord(fld(s, 0), fld(s, 1), true, `${name}.lat`);
      const lon = parseCoord(fld(s, 2), fld(s, 3), false, `${name}.lon`);
      if (lat === undefined || lon === undefined) throw new NmeaError('field', `${name}: status A without a position`);
      out.lat = lat;
      out.lon = lon;
      return out;
    }
    case 'ZDA': {
      if (s.fields.length < 4) throw new NmeaError('field', `${name}: ${s.fields.length} fields, expected 6`);
      const out: Zda = { type: 'ZDA', talker: t };
      const tod = parseTimeOfDay(fld(s, 0), `${name}.time`);
      if (tod !== undefined) out.timeOfDayMs = tod;
      const d = parseInt10(fld(s, 1), `${name}.day`), mo = parseInt10(fld(s, 2), `${name}.month`), y = parseInt10(fld(s, 3), `${name}.year`);
      if (d !== undefined && mo !== undefined && y !== undefined) {
        if (d < 1 || d > 31 || mo < 1 || mo > 12 || y < 1980 || y > 2200) throw new NmeaError('field', `${name}: date ${y}-${mo}-${d} out of range`);
        out.date = { year: y, month: mo, day: d };
      }
      const zh = parseNum(s.fields[4], `${name}.zoneHours`);
      if (zh !== undefined) out.zoneHours = zh;
      const zm = parseNum(s.fields[5], `${name}.zoneMinutes`);
      if (zm !== undefined) out.zoneMinutes = zm;
      return out;
    }
    default:
      return undefined;
  }
}

/** ms since the epoch for a date and a time of day (UTC). */
export function epochMs(date: NmeaDate, timeOfDayMs: number): number {
  return Date.UTC(date.year, date.month - 1, date.day) + timeOfDayMs;
}
