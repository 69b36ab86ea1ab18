// NMEA 0183 stream driver: bytes from a GPS receiver (serial port, file,
// pipe) in, position/time fixes out. Splits lines on LF (CR stripped),
// classifies each line (valid / checksum / malformed, see nmea.ts), decodes
// the six position/time sentence types of any talker, and merges one
// reporting cycle (sentences with the same time of day, plus the GSA/VTG
// between them) into one GpsFix. A void cycle (RMC/GLL status V, GGA quality
// 0, GSA fix 1) yields a fix with mode 1 and no position: "no fix".
import type { ReadingValues } from '../../protocol/reading.js';
import { classifyLine, decodeSentence, epochMs, KNOT_MPS, NmeaError, parseSentence, type Decoded, type NmeaDate, type Sentence } from './nmea.js';

export interface GpsFix {
  /** 1 no fix, 2 2D, 3 3D. */
  mode: 1 | 2 | 3;
  /** UTC ms since the epoch when the date is known, else null (timeOfDayMs still set). */
  time: number | null;
  timeOfDayMs?: number;
  lat?: number;
  lon?: number;
  altMsl?: number;
  geoidSep?: number;
  speedMps?: number;
  courseDeg?: number;
  magvarDeg?: number;
  /** GGA fix quality (1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float …). */
  quality?: number;
  sats?: number;
  hdop?: number;
  pdop?: number;
  vdop?: number;
  talker: string;
  /** Sentence types that contributed, e.g. ["RMC","GGA","GSA"]. */
  sources: string[];
}

export interface NmeaStats {
  lines: number;
  valid: number;
  checksum: number;
  malformed: number;
  /** Valid sentences whose fields could not be decoded. */
  fieldErrors: number;
  /** Valid sentences per address, e.g. { GPRMC: 20 }. */
  byType: Record<string, number>;
  fixes: number;
  noFix: number;
}

export interface NmeaDriverOptions {
  onFix?: (fix: GpsFix) => void;
  onSentence?: (s: Sentence, d: Decoded | undefined) => void;
  onError?: (e: NmeaError, line: string) => void;
}

const MAX_PENDING_LINE = 4096;

export class NmeaDriver {
  readonly stats: NmeaStats = { lines: 0, valid: 0, checksum: 0, malformed: 0, fieldErrors: 0, byType: {}, fixes: 0, noFix: 0 };
  private buf = '';
  private overflow = false;
  private cycle: Cycle | undefined;
  private lastDate: NmeaDate | undefined;
  private lastDateTod = -1;
  private readonly dec = new TextDecoder('latin1');

  constructor(private readonly o: NmeaDriverOptions = {}) {}

  /** Feeds raw bytes or text in any chunking. */
  push(chunk: Uint8Array | string): void {
    this.buf += typeof chunk === 'string' ? chunk : this.dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (this.overflow) {
        this.overflow = false;
        this.stats.lines++;
        this.stats.malformed++;
        continue;
      }
      this.line(line.endsWith('\r') ? line.slice(0, -1) : line);
    }
    if (this.buf.length > MAX_PENDING_LINE) {
      // A receiver spewing bytes without newlines: drop them, count one malformed line.
      this.buf = '';
      this.overflow = true;
    }
  }

  /** Ends the stream: the last cycle is reported. */
  end(): void {
    if (this.buf.length) this.line(this.buf.endsWith('\r') ? this.buf.slice(0, -1) : this.buf);
    this.buf = '';
    this.flushCycle();
  }

  /** One line without its line ending. Comment lines (#) of capture files are skipped. */
  line(line: string): void {
    if (line === '' || line[0] === '#') return;
    this.stats.lines++;
    const cls = classifyLine(line);
    if (cls !== 'valid') {
      this.stats[cls]++;
      this.o.onError?.(new NmeaError(cls, cls === 'checksum' ? 'checksum mismatch' : 'malformed line'), line);
      return;
    }
    let s: Sentence;
    try {
      s = parseSentence(line);
    } catch (e) {
      // The shape was right but the address is not: count as malformed.
      this.stats.valid++;
      this.stats.fieldErrors++;
      this.o.onError?.(e as NmeaError, line);
      return;
    }
    this.stats.valid++;
    const addr = s.talker === 'P' ? `P${s.type}` : `${s.talker}${s.type}`;
    this.stats.byType[addr] = (this.stats.byType[addr] ?? 0) + 1;
    let d: Decoded | undefined;
    try {
      d = decodeSentence(s);
    } catch (e) {
      this.stats.fieldErrors++;
      this.o.onError?.(e as NmeaError, line);
      return;
    }
    this.o.onSentence?.(s, d);
    if (d) this.merge(d);
  }

  private merge(d: Decoded): void {
    if (d.type === 'ZDA') {
      if (d.date && d.timeOfDayMs !== undefined) {
        this.lastDate = d.date;
        this.lastDateTod = d.timeOfDayMs;
      }
    }
    const tod = 'timeOfDayMs' in d ? d.timeOfDayMs : undefined;
    if (tod !== undefined && this.cycle && this.cycle.tod !== undefined && this.cycle.tod !== tod) this.flushCycle();
    if (!this.cycle) this.cycle = new Cycle(d.talker);
    const c = this.cycle;
    if (tod !== undefined) c.tod = tod;
    c.add(d);
  }

  private flushCycle(): void {
    const c = this.cycle;
    this.cycle = undefined;
    if (!c || !c.positional) return;
    let date = c.date;
    if (!date && this.lastDate && c.tod !== undefined && c.tod >= this.lastDateTod) date = this.lastDate;
    if (c.date) {
      this.lastDate = c.date;
      this.lastDateTod = c.tod ?? 0;
    }
    const fix = c.toFix(date);
    if (fix.mode === 1) this.stats.noFix++;
    else this.stats.fixes++;
    this.o.onFix?.(fix);
  }
}

class Cycle {
  tod: number | undefined;
  date: NmeaDate | undefined;
  positional = false;
  lat: number | undefined;
  lon: number | undefined;
  void = false;
  posValid = false;
  gsaFix: number | undefined;
  rest: Partial<GpsFix> = {};
  sources: string[] = [];
  constructor(readonly talker: string) {}

  add(d: Decoded): void {
    if (!this.sources.includes(d.type)) this.sources.push(d.type);
    switch (d.type) {
      case 'RMC':
        this.positional = true;
        if (d.date) this.date = d.date;
        if (!d.valid) {
          this.void = true;
          break;
        }
        this.setPos(d.lat, d.lon);
        if (d.speedKn !== undefined) this.rest.speedMps = d.speedKn * KNOT_MPS;
        if (d.courseDeg !== undefined) this.rest.courseDeg = d.courseDeg;
        if (d.magvarDeg !== undefined) this.rest.magvarDeg = d.magvarDeg;
        break;
      case 'GGA':
        this.positional = true;
        if (d.sats !== undefined) this.rest.sats = d.sats;
        if (d.hdop !== undefined) this.rest.hdop = d.hdop;
        if (d.quality === 0) {
          this.void = true;
          break;
        }
        this.rest.quality = d.quality;
        this.setPos(d.lat, d.lon);
        if (d.altMsl !== undefined) this.rest.altMsl = d.altMsl;
        if (d.geoidSep !== undefined) this.rest.geoidSep = d.geoidSep;
        break;
      case 'GLL':
        this.positional = true;
        if (!d.valid) {
          this.void = true;
          break;
        }
        this.setPos(d.lat, d.lon);
        break;
      case 'GSA':
        // Multi-GNSS receivers send one GSA per constellation: keep the best fix type.
        this.gsaFix = Math.max(this.gsaFix ?? 0, d.fixType);
        if (d.pdop !== undefined) this.rest.pdop = d.pdop;
        if (d.vdop !== undefined) this.rest.vdop = d.vdop;
        if (d.hdop !== undefined && this.rest.hdop === undefined) this.rest.hdop = d.hdop;
        break;
      case 'VTG':
        if (d.speedKn !== undefined && this.rest.speedMps === undefined) this.rest.speedMps = d.speedKn * KNOT_MPS;
        else if (d.speedKmh !== undefined && this.rest.speedMps === undefined) this.rest.speedMps = d.speedKmh / 3.6;
        if (d.courseDeg !== undefined && this.rest.courseDeg === undefined) this.rest.courseDeg = d.courseDeg;
        break;
      case 'ZDA':
        if (d.date) this.date = d.date;
        break;
    }
  }

  private setPos(lat: number | undefined, lon: number | undefined): void {
    if (lat === undefined || lon === undefined) return;
    this.lat = lat;
    this.lon = lon;
    this.posValid = true;
  }

  toFix(date: NmeaDate | undefined): GpsFix {
    const base = { talker: this.talker, sources: this.sources, time: date && this.tod !== undefined ? epochMs(date, this.tod) : null, ...(this.tod !== undefined ? { timeOfDayMs: this.tod } : {}) };
    if (!this.posValid || this.gsaFix === 1 || (this.void && !this.posValid)) return { mode: 1, ...base, ...(this.rest.sats !== undefined ? { sats: this.rest.sats } : {}) };
    let mode: 2 | 3 = 2;
    if (this.gsaFix === 3) mode = 3;
    else if (this.gsaFix === undefined && this.rest.altMsl !== undefined) mode = 3;
    return { mode, ...base, lat: this.lat, lon: this.lon, ...this.rest };
  }
}

/**
 * A fix as the values and time of a `gps` Reading (protocol/reading.ts);
 * null for "no fix" (readings without a fix are not positions).
 */
export function fixToReading(fix: GpsFix): { values: ReadingValues['gps']; time: number | null; timeSource: 'gps' | 'none' } | null {
  if (fix.mode === 1 || fix.lat === undefined || fix.lon === undefined) return null;
  const v: ReadingValues['gps'] = { lat: fix.lat, lon: fix.lon, fix: fix.mode === 3 ? '3d' : '2d' };
  if (fix.altMsl !== undefined && fix.altMsl >= -1000 && fix.altMsl <= 100000) v.alt_m = fix.altMsl;
  if (fix.speedMps !== undefined && fix.speedMps >= 0 && fix.speedMps <= 1000) v.speed_mps = Math.round(fix.speedMps * 1000) / 1000;
  if (fix.courseDeg !== undefined && fix.courseDeg >= 0 && fix.courseDeg <= 360) v.course_deg = fix.courseDeg;
  if (fix.hdop !== undefined && fix.hdop >= 0 && fix.hdop <= 100) v.hdop = fix.hdop;
  if (fix.sats !== undefined && fix.sats <= 255) v.sats = fix.sats;
  return { values: v, time: fix.time, timeSource: fix.time === null ? 'none' : 'gps' };
}

/** Builds a valid sentence (checksum appended) from its body, e.g. "GPRMC,…". */
export function nmeaSentence(body: string): string {
  let c = 0;
  for (let i = 0; i < body.length; i++) c ^= body.charCodeAt(i);
  return `$${body}*${c.toString(16).toUpperCase().padStart(2, '0')}`;
}
