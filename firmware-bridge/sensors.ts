// Simulated sensors of the firmware simulator: plausible values of every
// kind, deterministic under a seeded PRNG. The GPS sensor goes through the
// real NMEA driver (it synthesises RMC + GGA sentences along a route and
// decodes them), so a simulated fix is exactly what a receiver would give.
import { fixToReading, NmeaDriver, nmeaSentence, type GpsFix } from '../drivers/gps/driver.js';
import type { ReadingKind, ReadingValues } from '../protocol/reading.js';

export const SIM_SENSOR_KINDS = ['temp', 'humidity', 'shock', 'door', 'gps', 'rfid'] as const;
export type SimSensorName = (typeof SIM_SENSOR_KINDS)[number];

export interface SimSensor {
  id: string;
  name: SimSensorName;
  kind: ReadingKind;
  /** READING for periodic measurements, EVENT for happenings. */
  frame: 'READING' | 'EVENT';
}

export function simSensor(name: SimSensorName): SimSensor {
  switch (name) {
    case 'temp':
      return { id: 't1', name, kind: 'temperature', frame: 'READING' };
    case 'humidity':
      return { id: 'h1', name, kind: 'humidity', frame: 'READING' };
    case 'shock':
      return { id: 's1', name, kind: 'shock', frame: 'EVENT' };
    case 'door':
      return { id: 'd1', name, kind: 'door', frame: 'EVENT' };
    case 'gps':
      return { id: 'g1', name, kind: 'gps', frame: 'READING' };
    case 'rfid':
      return { id: 'r1', name, kind: 'rfid', frame: 'EVENT' };
  }
}

/** The `sensors:` section of a gateway config that takes every simulated sensor (devnet, tests). */
export function simSensorsConfigYaml(): string {
  return `sensors:\n${SIM_SENSOR_KINDS.map(simSensor).map((x) => `  ${x.id}: { kind: ${x.kind} }`).join('\n')}\n`;
}

/** The simulated sensors' ids, e.g. for `ports.<name>.sensors`. */
export const SIM_SENSOR_IDS: readonly string[] = SIM_SENSOR_KINDS.map((n) => simSensor(n).id);

export function parseSensorList(s: string): SimSensorName[] {
  const out: SimSensorName[] = [];
  for (const raw of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const n = raw === 'temperature' ? 'temp' : raw;
    if (!(SIM_SENSOR_KINDS as readonly string[]).includes(n)) throw new RangeError(`unknown sensor "${raw}" (known: ${SIM_SENSOR_KINDS.join(', ')})`);
    if (!out.includes(n as SimSensorName)) out.push(n as SimSensorName);
  }
  if (out.length === 0) throw new RangeError('no sensors given');
  return out;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const pad = (n: number, w: number) => String(Math.floor(n)).padStart(w, '0');

/** Generates values; `t` is ms (wall clock when known, else monotonic). */
export class SensorBank {
  private door = false;
  private step = 0;
  private readonly gpsDriver: NmeaDriver;
  private lastFix: GpsFix | undefined;
  constructor(private readonly random: () => number) {
    this.gpsDriver = new NmeaDriver({ onFix: (f) => (this.lastFix = f) });
  }

  values(s: SimSensor, t: number): { values: ReadingValues[ReadingKind]; time?: number; timeSource?: 'gps' } {
    const r = this.random;
    this.step++;
    switch (s.kind) {
      case 'temperature':
        return { values: { celsius: round(4 + 2 * Math.sin(this.step / 50) + (r() - 0.5) * 0.2) } };
      case 'humidity':
        return { values: { percent: round(Math.min(100, Math.max(0, 55 + 10 * Math.sin(this.step / 80) + (r() - 0.5)))) } };
      case 'shock':
        return { values: { g: round(0.5 + r() * 3), x: round((r() - 0.5) * 2), y: round((r() - 0.5) * 2), z: round(1 + (r() - 0.5)) } };
      case 'door':
        this.door = !this.door;
        return { values: { open: this.door, door: 'rear' } };
      case 'rfid':
        return { values: { epcs: [`urn:epc:id:sgtin:0614141.107346.${1000 + Math.floor(r() * 9000)}`], reader: 'dock-1', antenna: 1 + Math.floor(r() * 4) } };
      case 'gps':
        // A GPS receiver has its own clock: real UTC whatever the MCU knows.
        return this.gps(Date.now());
      default:
        return { values: { code: 'sim', message: 'simulated alarm' } };
    }
  }

  private gps(t: number): { values: ReadingValues['gps']; time?: number; timeSource?: 'gps' } {
    // A truck heading east-north-east out of Berlin at ~15 m/s.
    const d = new Date(Math.max(0, t));
    const lat = 52.52 + this.step * 1e-5;
    const lon = 13.405 + this.step * 2e-5;
    const nm = (v: number, degW: number, pos: string, neg: string) => {
      const a = Math.abs(v);
      const deg = Math.floor(a);
      const min = (a - deg) * 60;
      return `${pad(deg, degW)}${min.toFixed(5).padStart(8, '0')},${v >= 0 ? pos : neg}`;
    };
    const hms = `${pad(d.getUTCHours(), 2)}${pad(d.getUTCMinutes(), 2)}${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds() / 10, 2)}`;
    const dmy = `${pad(d.getUTCDate(), 2)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCFullYear() % 100, 2)}`;
    const sats = 6 + Math.floor(this.random() * 6);
    this.gpsDriver.push(`${nmeaSentence(`GNRMC,${hms},A,${nm(lat, 2, 'N', 'S')},${nm(lon, 3, 'E', 'W')},29.2,63.4,${dmy},,,A`)}\r\n`);
    this.gpsDriver.push(`${nmeaSentence(`GNGGA,${hms},${nm(lat, 2, 'N', 'S')},${nm(lon, 3, 'E', 'W')},1,${pad(sats, 2)},0.9,41.5,M,44.1,M,,`)}\r\n`);
    this.gpsDriver.end();
    const fix = this.lastFix;
    const r = fix && fixToReading(fix);
    if (!r) return { values: { lat, lon, fix: '2d' } };
    return r.time !== null && t > 1e12 ? { values: r.values, time: r.time, timeSource: 'gps' } : { values: r.values };
  }
}
