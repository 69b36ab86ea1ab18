// The event builder: sensor readings in, GS1 EPCIS 2.0 events out
// (docs/EVENTS.md). One builder per gateway; the light node pushes every
// reading the MCU link delivers and journals every event that comes out as a
// Record (field 5 = the event, field 6 = its provenance).
//
//   push(reading)  → events this reading completes (its own event, rule alarms, closed windows)
//   tick()         → windows whose time is up, held readings the clock can now stamp
//   flush()        → everything still open (shutdown, end of a readings file)
//
// Events are schema-valid by construction: only the fields and vocabulary
// below are ever written, values come validated from protocol/reading.ts and
// the config, and the tests check every path against the GS1 JSON Schema.
import type { Reading, ReadingKind, ReadingValues } from '../../protocol/reading.js';
import type { JsonObject, JsonValue } from '../../protocol/record.js';
import { IscmError, ValidationError } from '../../protocol/errors.js';
import type { EventsConfig, RuleConfig, SensorConfig } from '../config/types.js';
import { systemClock, TimeKeeper, type Clock } from './clock.js';
import { normaliseReadId, parseEpcUri } from './epc.js';
import { eventHashId } from './hash.js';
import { DOOR_STATE_TYPE, EVENT_CONTEXT } from './vocab.js';

/** One event the builder made. */
export interface BuiltEvent {
  /** The EPCIS 2.0 event, eventID included: Record field 5. Parts shared between events (asset list, places, @context) are frozen: copy before changing anything. */
  event: JsonObject;
  /** Its eventTime, ms since the epoch. */
  time: number;
  /** Provenance (sensor, MCU boot id, frame seqs …): Record field 6. */
  source: JsonObject;
  /** What made it: one reading, a closed window, a rule, an RFID read, a packing station, a firmware alarm. */
  kind: 'reading' | 'window' | 'rule' | 'read' | 'aggregation' | 'firmware-alarm';
}

export interface BuilderOptions {
  /** The clock (default: the system clock, NTP status per config.clock.ntp_check). */
  clock?: Clock;
  /** Times before this are impossible (default: config.clock.not_before, else the build date). */
  notBefore?: number;
  /** Told about readings that made a different event than configured (late for their window, a station read without parent …) or that a restore under a changed config could not keep. */
  onWarning?: (message: string, reading?: Reading) => void;
}

/** Readings held for a trusted time would exceed clock.max_held: stop acknowledging the firmware until the clock is trusted. */
export class HoldFullError extends IscmError {
  constructor(max: number) {
    super('CLOCK_UNTRUSTED', `no trusted time yet and ${max} readings already held (clock.max_held): not accepting more until NTP, a GPS fix or the MCU sets the time`, 'reading.time');
    this.name = 'HoldFullError';
  }
}

/** What is only in memory (not yet in an event): the light node acknowledges the firmware below `oldest` per boot. */
export interface PendingInfo {
  /** Readings waiting for a trusted time. */
  held: number;
  /** Readings in open aggregation windows. */
  windowed: number;
  /** Per MCU boot id, the lowest frame seq not yet in an emitted event. */
  oldest: Record<number, number>;
}

const UNIT: Record<'temperature' | 'humidity' | 'shock', { type: string; uom: string; value: (v: never) => number }> = {
  temperature: { type: 'Temperature', uom: 'CEL', value: (v: ReadingValues['temperature']) => v.celsius },
  humidity: { type: 'RelativeHumidity', uom: 'P1', value: (v: ReadingValues['humidity']) => v.percent },
  // g, the standard acceleration of free fall (UN/CEFACT K40)
  shock: { type: 'Acceleration', uom: 'K40', value: (v: ReadingValues['shock']) => v.g },
};
type NumericKind = keyof typeof UNIT;
const isNumeric = (k: ReadingKind): k is NumericKind => k === 'temperature' || k === 'humidity' || k === 'shock';
const numericValue = (r: Reading): number => (UNIT[r.kind as NumericKind].value as (v: unknown) => number)(r.values);

/** No time before this is believed (it is after every real reading); nor after it. */
const MAX_PLAUSIBLE = Date.UTC(2200, 0, 1);

/**
 * ms → "YYYY-MM-DDTHH:MM:SS.mmmZ", as Date#toISOString. Readings come in time
 * order, so the part up to the second repeats from event to event: it is
 * kept, and only the milliseconds are written (toISOString was 3 % of the
 * light node's CPU per event).
 */
let isoSecond = NaN;
let isoPrefix = '';
const iso = (ms: number): string => {
  const sec = Math.floor(ms / 1000);
  if (sec !== isoSecond || !Number.isInteger(ms) || !(ms >= 0 && ms < 253402300800000)) {
    const full = new Date(ms).toISOString();
    if (!Number.isInteger(ms) || !(ms >= 0 && ms < 253402300800000)) return full; // years outside 0000..9999 are spelt otherwise; fractions are cut
    isoSecond = sec;
    isoPrefix = full.slice(0, 20);
    return full;
  }
  const m = ms - sec * 1000;
  return `${isoPrefix}${m < 10 ? '00' : m < 100 ? '0' : ''}${m}Z`;
};
/** MCU boots whose time anchor is kept. */
const MAX_ANCHORS = 64;

// ---- state (plain data, so a snapshot is JSON) ----

interface Stamped {
  r: Reading;
  t: number;
  src: string;
}
interface Held {
  r: Reading;
  rxMono: number;
  boot: string;
}
interface Fix {
  t: number;
  lat: number;
  lon: number;
  speed?: number;
}
interface Acc {
  n: number;
  min: number;
  max: number;
  sum: number;
  /** gps: the last fix in the window */
  fix?: { t: number; v: ReadingValues['gps'] };
  /** boot id → [first seq, last seq, count] */
  seqs: [number, number, number, number][];
  sources: string[];
}
interface OpenWindow {
  start: number;
  end: number;
  /** Latest reading time in it. */
  last: number;
  acc: Record<string, Acc>;
}
interface WindowGroup {
  open: OpenWindow[];
  /** Latest reading time seen by the group. */
  watermark: number;
  /** Windows ending at or before this are closed. */
  closedUntil: number;
}
interface RuleState {
  rule: string;
  sensor: string;
  /** The condition holds (since `since`). */
  active: boolean;
  since: number;
  fired: boolean;
  /** Highest (above) or lowest (below) value since `since`. */
  extreme: number;
  /** The sensor's last reading: time, value, provenance. */
  last: number;
  value?: number;
  open?: boolean;
  boot: number;
  seq: number;
}

export interface BuilderSnapshot {
  v: 1;
  anchors: [number, number, string][];
  keeper?: { ms: number; via: 'gps' | 'mcu'; boot: string };
  held: Held[];
  windows: [string, WindowGroup][];
  rules: [string, RuleState][];
  fixes: Fix[];
}

export class EventBuilder {
  readonly config: EventsConfig;
  readonly keeper: TimeKeeper;
  private readonly clock: Clock;
  private readonly warn: (m: string, r?: Reading) => void;
  /** MCU boot id → wall - monoMs, from a reading of that boot with a trusted time, and its source. */
  private anchors = new Map<number, { offset: number; src: string }>();
  private held: Held[] = [];
  private windows = new Map<string, WindowGroup>();
  private rules = new Map<string, RuleState>();
  /** Recent GPS fixes, oldest first. */
  private fixes: Fix[] = [];
  private readonly sensorOrder: string[];
  private readonly rulesBySensor = new Map<string, [string, RuleConfig][]>();
  private readonly staticPart: { epcList: string[]; quantityList?: JsonObject[] };

  constructor(config: EventsConfig, opts: BuilderOptions = {}) {
    this.config = config;
    this.clock = opts.clock ?? systemClock(config.clock.ntp_check);
    this.keeper = new TimeKeeper(this.clock, { notBefore: opts.notBefore ?? config.clock.not_before, maxFutureMs: config.clock.max_future });
    this.warn = opts.onWarning ?? (() => {});
    this.sensorOrder = Object.keys(config.sensors);
    for (const [name, rule] of Object.entries(config.rules))
      for (const [id, s] of Object.entries(config.sensors))
        if (rule.sensor === id || (rule.sensor === undefined && rule.kind === s.kind)) {
          const list = this.rulesBySensor.get(id) ?? [];
          list.push([name, rule]);
          this.rulesBySensor.set(id, list);
        }
    const q = config.assets.quantities.map((x) => {
      const o: JsonObject = { epcClass: x.epc_class };
      if (x.quantity !== undefined) o.quantity = x.quantity;
      if (x.uom !== undefined) o.uom = x.uom;
      return o;
    });
    // Shared by every event and frozen: immutable, so the hash can reuse their canonical form.
    this.staticPart = Object.freeze({ epcList: Object.freeze([...config.assets.epcs]) as string[], ...(q.length ? { quantityList: Object.freeze(q.map((o) => Object.freeze(o))) as JsonObject[] } : {}) });
  }

  private readonly places = new Map<string, JsonObject>();
  /** A frozen { id } per place (shared by events; see staticPart). */
  private place(id: string): JsonObject {
    let p = this.places.get(id);
    if (!p) {
      if (this.places.size >= 256) this.places.clear(); // GPS positions vary: keep it bounded
      this.places.set(id, (p = Object.freeze({ id })));
    }
    return p;
  }

  // ---- input ----

  /** One reading from the MCU link (validated by protocol/reading.ts). Returns the events it completes. */
  push(r: Reading): BuiltEvent[] {
    const s = this.config.sensors[r.sensor];
    if (!s) throw new ValidationError('reading.sensor', `sensor "${r.sensor}" is not in the config (known: ${this.sensorOrder.join(', ') || 'none'})`);
    if (s.kind !== r.kind) throw new ValidationError('reading.kind', `sensor "${r.sensor}" is configured as ${s.kind} but sent a ${r.kind} reading`);
    const rxMono = this.clock.mono();
    const out: BuiltEvent[] = [];
    const stamp = this.stamp(r, rxMono);
    // Refuse before anything moves: a reading without a time changed no state, so nothing is lost.
    if (!stamp && this.held.length >= this.config.clock.max_held) {
      this.release(out);
      if (out.length === 0) throw new HoldFullError(this.config.clock.max_held);
    } else this.release(out); // a new anchor or trust lets held readings go first (they are older)
    if (stamp) this.process({ r, t: stamp.t, src: stamp.src }, out);
    else this.held.push({ r, rxMono, boot: this.clock.bootId() });
    return out;
  }

  /** Periodic (about once a second): closes windows whose time is up by the trusted clock, releases held readings. */
  tick(): BuiltEvent[] {
    const out: BuiltEvent[] = [];
    this.release(out);
    const now = this.keeper.trusted();
    if (now) {
      for (const name of this.windows.keys()) this.closeDue(name, now.ms, out);
      this.checkDurations(Math.round(now.ms), `clock-${now.via}`, out);
    }
    return out;
  }

  /** Closes every open window (a window the readings did not get past ends at its last reading); held readings stay held (see pending()). */
  flush(): BuiltEvent[] {
    const out = this.tick();
    for (const [name, g] of this.windows) {
      // A window whose end the readings already passed is complete; the last one ends at its last reading.
      for (const w of g.open.sort((a, b) => a.start - b.start)) out.push(...this.windowEvent(name, w, g.watermark < w.end));
      if (g.open.length) g.closedUntil = Math.max(g.closedUntil, ...g.open.map((w) => w.end));
      g.open = [];
    }
    return out;
  }

  /** What is only in memory. */
  pending(): PendingInfo {
    const oldest: Record<number, number> = {};
    const note = (boot: number, seq: number) => {
      if (oldest[boot] === undefined || seq < oldest[boot]) oldest[boot] = seq;
    };
    let windowed = 0;
    for (const h of this.held) note(h.r.bootId, h.r.seq);
    for (const g of this.windows.values())
      for (const w of g.open)
        for (const a of Object.values(w.acc)) {
          windowed += a.n;
          for (const [boot, first] of a.seqs) note(boot, first);
        }
    return { held: this.held.length, windowed, oldest };
  }

  /** Readings held for a trusted time. */
  get heldCount(): number {
    return this.held.length;
  }

  /** Whether the most recently held reading is (bootId, seq): push() just held it. */
  justHeld(bootId: number, seq: number): boolean {
    const h = this.held[this.held.length - 1];
    return h !== undefined && h.r.bootId === bootId && h.r.seq === seq;
  }

  /** The MCU boot id and frame seq of every held reading. */
  heldKeys(): [number, number][] {
    return this.held.map((h) => [h.r.bootId, h.r.seq]);
  }

  /**
   * The builder's state as JSON: persist it beside the journal and restore()
   * after a restart. `withHeld: false` leaves the held readings out (the light
   * node does not acknowledge them, so the firmware resends them instead).
   */
  snapshot(o: { withHeld?: boolean } = {}): BuilderSnapshot {
    return structuredClone({
      v: 1 as const,
      anchors: [...this.anchors].map(([b, a]) => [b, a.offset, a.src] as [number, number, string]),
      keeper: this.keeper.state(),
      held: o.withHeld === false ? [] : this.held,
      windows: [...this.windows],
      rules: [...this.rules],
      fixes: this.fixes,
    });
  }

  static restore(config: EventsConfig, snap: BuilderSnapshot, opts: BuilderOptions = {}): EventBuilder {
    if (snap?.v !== 1) throw new ValidationError('snapshot.v', 'unknown builder snapshot version');
    const b = new EventBuilder(config, opts);
    const s = structuredClone(snap);
    b.anchors = new Map(s.anchors.map(([boot, offset, src]) => [boot, { offset, src }]));
    b.keeper.restore(s.keeper);
    b.held = s.held;
    // A config changed since the snapshot: keep only what it still knows.
    b.windows = new Map(s.windows.filter(([name]) => config.windows[name] !== undefined));
    for (const [name, g] of b.windows)
      for (const w of g.open)
        for (const id of Object.keys(w.acc))
          if (config.sensors[id]?.window !== name) {
            b.warn(`restore: sensor ${id} is no longer in window ${name}: ${w.acc[id].n} reading(s) of ${iso(w.start)}..${iso(w.end)} dropped from it`);
            delete w.acc[id];
          }
    for (const [name] of s.windows) if (config.windows[name] === undefined) b.warn(`restore: window ${name} is no longer configured: its open periods are dropped`);
    b.rules = new Map(s.rules.filter(([, st]) => config.rules[st.rule] !== undefined && config.sensors[st.sensor] !== undefined));
    b.held = b.held.filter((h) => {
      const ok = config.sensors[h.r.sensor]?.kind === h.r.kind;
      if (!ok) b.warn(`restore: held reading of sensor ${h.r.sensor} (boot ${h.r.bootId}, seq ${h.r.seq}) no longer matches the config: dropped`, h.r);
      return ok;
    });
    b.fixes = s.fixes;
    return b;
  }

  // ---- time ----

  private plausible(ms: number): boolean {
    return ms < MAX_PLAUSIBLE && this.keeper.plausible(ms);
  }

  /** The reading's time and where it came from, or null (hold it). */
  private stamp(r: Reading, rxMono: number): { t: number; src: string } | null {
    if (r.time !== null && r.timeSource !== 'none' && this.plausible(r.time)) {
      const t = Math.round(r.time);
      if (r.monoMs !== undefined) {
        // The latest anchor per MCU boot; only the most recent boots are kept (memory stays bounded).
        this.anchors.delete(r.bootId);
        this.anchors.set(r.bootId, { offset: t - r.monoMs, src: r.timeSource });
        if (this.anchors.size > MAX_ANCHORS) this.anchors.delete(this.anchors.keys().next().value as number);
      }
      if (r.timeSource === 'gps' || r.timeSource === 'mcu') this.keeper.offerTime(t, r.timeSource, rxMono);
      return { t, src: r.timeSource };
    }
    return this.stampHeld(r, rxMono, this.clock.bootId());
  }

  /** A reading without a trusted time of its own: by its MCU's monotonic clock and an anchor, or by the gateway's trusted clock. */
  private stampHeld(r: Reading, rxMono: number, boot: string): { t: number; src: string } | null {
    if (r.monoMs !== undefined) {
      const a = this.anchors.get(r.bootId);
      if (a) {
        const t = Math.round(a.offset + r.monoMs);
        if (this.plausible(t)) return { t, src: `${a.src}-mono` };
      }
    }
    const now = this.keeper.trusted();
    if (!now) return null;
    if (boot !== this.clock.bootId()) return { t: Math.round(now.ms), src: 'clock-late' }; // received before an OS reboot: only an upper bound is known
    return { t: Math.round(now.ms - (this.clock.mono() - rxMono)), src: `clock-${now.via}` };
  }

  private release(out: BuiltEvent[]): void {
    if (this.held.length === 0) return;
    const still: Held[] = [];
    for (const h of this.held) {
      const s = this.stampHeld(h.r, h.rxMono, h.boot);
      if (s) this.process({ r: h.r, t: s.t, src: s.src }, out);
      else still.push(h);
    }
    this.held = still;
  }

  // ---- readings → events ----

  private process(x: Stamped, out: BuiltEvent[]): void {
    const { r } = x;
    const s = this.config.sensors[r.sensor];
    if (s.window !== undefined && this.config.windows[s.window]) this.windowed(x, s, s.window, out);
    if (isNumeric(r.kind) || r.kind === 'door') this.evaluateRules(x, out);
    if (this.rules.size) this.checkDurations(x.t, x.src, out);
    if (r.kind === 'gps') this.noteFix(x);
    const single = s.window === undefined || s.raw;
    switch (r.kind) {
      case 'temperature':
      case 'humidity':
      case 'shock':
      case 'door':
      case 'gps':
        if (single) out.push(this.readingEvent(x, s));
        return;
      case 'rfid':
        out.push(this.rfidEvent(x, s));
        return;
      case 'alarm':
        out.push(this.firmwareAlarm(x, s));
        return;
    }
  }

  private noteFix(x: Stamped): void {
    const v = x.r.values as ReadingValues['gps'];
    const fix: Fix = { t: x.t, lat: v.lat, lon: v.lon };
    if (v.speed_mps !== undefined) fix.speed = v.speed_mps;
    // Keep a few, in time order, so a window closing late still finds the fix of its end.
    let i = this.fixes.length;
    while (i > 0 && this.fixes[i - 1].t > fix.t) i--;
    this.fixes.splice(i, 0, fix);
    if (this.fixes.length > 16) this.fixes.shift();
  }

  /** The newest fix at or before `t`, if fresh. */
  private fixAt(t: number): Fix | undefined {
    for (let i = this.fixes.length - 1; i >= 0; i--) {
      const f = this.fixes[i];
      if (f.t <= t) return t - f.t <= this.config.locations.gps_max_age ? f : undefined;
    }
    return undefined;
  }

  private inTransit(t: number): boolean {
    const b = this.config.business;
    if (b.in_transit === 'always') return true;
    if (b.in_transit === 'never') return false;
    if (b.disposition === 'in_transit') return true;
    const f = this.fixAt(t);
    return f?.speed !== undefined && f.speed >= b.moving_speed;
  }

  private readPoint(t: number, s?: SensorConfig): JsonObject | undefined {
    if (s?.read_point) return this.place(s.read_point);
    if (this.config.locations.use_gps) {
      const f = this.fixAt(t);
      if (f) return this.place(geoUri(f.lat, f.lon));
    }
    return this.config.locations.read_point ? this.place(this.config.locations.read_point) : undefined;
  }

  private readonly deviceIds = new Map<string, string>();
  private deviceId(sensor: string): string {
    let id = this.deviceIds.get(sensor);
    if (id === undefined) this.deviceIds.set(sensor, (id = this.config.sensors[sensor].device_id ?? `urn:iscm:${this.config.device.id}:sensor:${encodeURIComponent(sensor)}`));
    return id;
  }

  /** The fields every event shares, in the order they are printed. */
  private base(type: 'ObjectEvent' | 'AggregationEvent', t: number): JsonObject {
    return { '@context': EVENT_CONTEXT as unknown as JsonValue, type, eventID: '', eventTime: iso(t), eventTimeZoneOffset: this.config.device.timezone_offset };
  }

  /** An ObjectEvent OBSERVE about the configured assets, with where and why. */
  private observe(t: number, s: SensorConfig | undefined, biz: { bizStep?: string; disposition?: string; readPoint?: JsonObject }): JsonObject {
    const e = this.base('ObjectEvent', t);
    e.epcList = this.staticPart.epcList;
    if (this.staticPart.quantityList) e.quantityList = this.staticPart.quantityList;
    e.action = 'OBSERVE';
    e.bizStep = biz.bizStep ?? s?.biz_step ?? this.config.business.biz_step;
    const disp = biz.disposition ?? s?.disposition ?? this.config.business.disposition;
    if (disp !== undefined) e.disposition = disp;
    const rp = biz.readPoint ?? this.readPoint(t, s);
    if (rp) e.readPoint = rp;
    const bl = s?.biz_location ?? this.config.locations.biz_location;
    if (bl) e.bizLocation = this.place(bl);
    return e;
  }

  private finish(e: JsonObject, t: number, source: JsonObject, kind: BuiltEvent['kind'], timeSource: string): BuiltEvent {
    e['iscm:timeSource'] = timeSource;
    e.eventID = eventHashId(e);
    return { event: e, time: t, source, kind };
  }

  private reports(r: Reading): JsonObject[] {
    switch (r.kind) {
      case 'temperature':
      case 'humidity':
      case 'shock': {
        const u = UNIT[r.kind];
        const out: JsonObject[] = [{ type: u.type, value: numericValue(r), uom: u.uom }];
        if (r.kind === 'shock') {
          const v = r.values as ReadingValues['shock'];
          for (const c of ['x', 'y', 'z'] as const) if (v[c] !== undefined) out.push({ type: u.type, value: v[c]!, component: c, uom: u.uom });
        }
        return out;
      }
      case 'door':
        return [{ type: DOOR_STATE_TYPE, stringValue: (r.values as ReadingValues['door']).open ? 'open' : 'closed' }];
      case 'gps':
        return gpsReports(r.values as ReadingValues['gps']);
      default:
        return [];
    }
  }

  private readingEvent(x: Stamped, s: SensorConfig): BuiltEvent {
    const { r, t } = x;
    const rp = r.kind === 'gps' && !s.read_point ? this.place(geoUri((r.values as ReadingValues['gps']).lat, (r.values as ReadingValues['gps']).lon)) : undefined;
    const e = this.observe(t, s, { readPoint: rp });
    e.sensorElementList = [{ sensorMetadata: { time: e.eventTime as string, deviceID: this.deviceId(r.sensor) }, sensorReport: this.reports(r) }];
    if (r.kind === 'door' && (r.values as ReadingValues['door']).door !== undefined) e['iscm:door'] = (r.values as ReadingValues['door']).door!;
    return this.finish(e, t, { sensor: r.sensor, boot_id: r.bootId, seq: r.seq }, 'reading', x.src);
  }

  private firmwareAlarm(x: Stamped, s: SensorConfig): BuiltEvent {
    const { r, t } = x;
    const v = r.values as ReadingValues['alarm'];
    const e = this.observe(t, s, {});
    const exception = s.error_codes.includes(v.code) ? 'ERROR_CONDITION' : 'ALARM_CONDITION';
    e.sensorElementList = [{ sensorMetadata: { time: iso(t), deviceID: this.deviceId(r.sensor) }, sensorReport: [{ type: s.alarm_type, exception, stringValue: v.code }] }];
    if (v.message !== undefined) e['iscm:message'] = v.message;
    return this.finish(e, t, { sensor: r.sensor, boot_id: r.bootId, seq: r.seq }, 'firmware-alarm', x.src);
  }

  private rfidEvent(x: Stamped, s: SensorConfig): BuiltEvent {
    const { r, t } = x;
    const v = r.values as ReadingValues['rfid'];
    const ids: string[] = [];
    for (const [i, raw] of v.epcs.entries()) {
      const n = normaliseReadId(raw);
      if (typeof n !== 'string') throw new ValidationError(`reading.values.epcs[${i}]`, `${JSON.stringify(raw.slice(0, 100))}: ${n.error}`);
      if (!ids.includes(n)) ids.push(n);
    }
    const source: JsonObject = { sensor: r.sensor, boot_id: r.bootId, seq: r.seq };
    const extras = (e: JsonObject) => {
      if (v.reader !== undefined) e['iscm:reader'] = v.reader;
      if (v.antenna !== undefined) e['iscm:antenna'] = v.antenna;
    };
    if (s.station) {
      const st = s.station;
      let parent = st.parent;
      if (parent === undefined) {
        const matches = ids.filter((id) => schemeOf(id) === st.parent_scheme);
        if (matches.length === 1) parent = matches[0];
        else this.warn(`${r.sensor}: station read with ${matches.length === 0 ? 'no' : matches.length} ${st.parent_scheme} identifier${matches.length === 1 ? '' : 's'}: recorded as an ObjectEvent, not ${st.action === 'pack' ? 'packed' : 'unpacked'}`, r);
      }
      const children = ids.filter((id) => id !== parent);
      if (parent !== undefined && (children.length > 0 || st.action === 'unpack')) {
        const e = this.base('AggregationEvent', t);
        e.parentID = parent;
        if (children.length) e.childEPCs = children;
        e.action = st.action === 'pack' ? 'ADD' : 'DELETE';
        e.bizStep = s.biz_step ?? (st.action === 'pack' ? 'packing' : 'unpacking');
        const disp = s.disposition ?? this.config.business.disposition;
        if (disp !== undefined) e.disposition = disp;
        const rp = this.readPoint(t, s);
        if (rp) e.readPoint = rp;
        const bl = s.biz_location ?? this.config.locations.biz_location;
        if (bl) e.bizLocation = this.place(bl);
        extras(e);
        return this.finish(e, t, source, 'aggregation', x.src);
      }
      if (parent !== undefined) this.warn(`${r.sensor}: packing read of the parent alone (nothing to pack): recorded as an ObjectEvent`, r);
    }
    const e = this.observe(t, s, {});
    e.epcList = ids;
    delete e.quantityList;
    extras(e);
    return this.finish(e, t, source, 'read', x.src);
  }

  // ---- rules ----

  private evaluateRules(x: Stamped, out: BuiltEvent[]): void {
    const list = this.rulesBySensor.get(x.r.sensor);
    if (!list) return;
    const { r, t } = x;
    for (const [name, rule] of list) {
      const key = `${name}\u0000${r.sensor}`;
      let st = this.rules.get(key);
      if (st && t < st.last) continue; // an older reading (released late): the rule has moved on
      let value: number | undefined;
      let cond: boolean;
      if (r.kind === 'door') cond = (r.values as ReadingValues['door']).open === rule.open;
      else {
        value = numericValue(r);
        cond = (rule.above !== undefined && value > rule.above) || (rule.below !== undefined && value < rule.below);
      }
      if (cond && rule.in_transit) cond = this.inTransit(t);
      if (!st) this.rules.set(key, (st = { rule: name, sensor: r.sensor, active: false, since: t, fired: false, extreme: 0, last: t, boot: r.bootId, seq: r.seq }));
      st.last = t;
      st.boot = r.bootId;
      st.seq = r.seq;
      st.value = value;
      st.open = r.kind === 'door' ? (r.values as ReadingValues['door']).open : undefined;
      if (!cond) {
        st.active = false;
        st.fired = false;
        continue;
      }
      if (!st.active) {
        st.active = true;
        st.since = t;
        st.fired = false;
        st.extreme = value ?? 0;
      } else if (value !== undefined) st.extreme = rule.above !== undefined && value > rule.above ? Math.max(st.extreme, value) : Math.min(st.extreme, value);
      if (!st.fired && t - st.since >= rule.for) {
        st.fired = true;
        out.push(this.ruleEvent(rule, st, t, x.src));
      }
    }
  }

  /**
   * Rules with a duration also fire without a new reading of their sensor:
   * a door opened at 14:01 and not reported closed is still open when any
   * later reading (or the trusted clock) shows 14:11. The event's time is that
   * evidence; its sensor time is the last reading, its startTime when it began.
   */
  private checkDurations(now: number, src: string, out: BuiltEvent[]): void {
    for (const st of this.rules.values()) {
      if (!st.active || st.fired) continue;
      const rule = this.config.rules[st.rule];
      if (!rule || now - st.since < rule.for || now < st.last) continue;
      st.fired = true;
      out.push(this.ruleEvent(rule, st, now, src));
    }
  }

  private ruleEvent(rule: RuleConfig, st: RuleState, t: number, src: string): BuiltEvent {
    const s = this.config.sensors[st.sensor];
    const e = this.observe(t, s, { bizStep: rule.biz_step, disposition: rule.disposition });
    const meta: JsonObject = { time: iso(st.last) };
    if (st.since < st.last || st.since < t) meta.startTime = iso(st.since);
    meta.deviceID = this.deviceId(st.sensor);
    let report: JsonObject;
    if (s.kind === 'door') report = { type: DOOR_STATE_TYPE, exception: 'ALARM_CONDITION', stringValue: st.open ? 'open' : 'closed' };
    else {
      const u = UNIT[s.kind as NumericKind];
      report = { type: u.type, exception: 'ALARM_CONDITION', value: st.value ?? st.extreme };
      if (st.since < st.last) report[rule.above !== undefined && st.extreme > rule.above ? 'maxValue' : 'minValue'] = st.extreme;
      report.uom = u.uom;
    }
    e.sensorElementList = [{ sensorMetadata: meta, sensorReport: [report] }];
    e['iscm:rule'] = st.rule;
    return this.finish(e, t, { rule: st.rule, sensor: st.sensor, boot_id: st.boot, seq: st.seq }, 'rule', src);
  }

  // ---- aggregation windows ----

  private windowed(x: Stamped, s: SensorConfig, name: string, out: BuiltEvent[]): void {
    const period = this.config.windows[name].period;
    let g = this.windows.get(name);
    if (!g) this.windows.set(name, (g = { open: [], watermark: -Infinity, closedUntil: -Infinity }));
    // Close what this reading's time shows to be over (those windows hold older readings).
    if (x.t > g.watermark) g.watermark = x.t;
    this.closeDue(name, g.watermark, out);
    const start = Math.floor(x.t / period) * period;
    if (start < g.closedUntil) {
      // Its window is already out: the reading becomes its own event rather than being lost.
      this.warn(`${x.r.sensor}: reading at ${iso(x.t)} arrived after its window ${name} closed: emitted on its own`, x.r);
      if (!s.raw) out.push(this.readingEvent(x, s));
      return;
    }
    let w = g.open.find((o) => o.start === start);
    if (!w) g.open.push((w = { start, end: start + period, last: x.t, acc: {} }));
    if (x.t > w.last) w.last = x.t;
    const a = (w.acc[x.r.sensor] ??= { n: 0, min: Infinity, max: -Infinity, sum: 0, seqs: [], sources: [] });
    a.n++;
    if (x.r.kind === 'gps') {
      if (!a.fix || x.t >= a.fix.t) a.fix = { t: x.t, v: x.r.values as ReadingValues['gps'] };
    } else {
      const v = numericValue(x.r);
      if (v < a.min) a.min = v;
      if (v > a.max) a.max = v;
      a.sum += v;
    }
    const seq = a.seqs.find((q) => q[0] === x.r.bootId);
    if (seq) {
      seq[1] = Math.min(seq[1], x.r.seq);
      seq[2] = Math.max(seq[2], x.r.seq);
      seq[3]++;
    } else a.seqs.push([x.r.bootId, x.r.seq, x.r.seq, 1]);
    if (!a.sources.includes(x.src)) a.sources.push(x.src);
  }

  private closeDue(name: string, now: number, out: BuiltEvent[]): void {
    const g = this.windows.get(name);
    if (!g || g.open.length === 0) return;
    const grace = this.config.windows[name].grace;
    const due = g.open.filter((w) => w.end + grace <= now).sort((a, b) => a.start - b.start);
    if (due.length === 0) return;
    g.open = g.open.filter((w) => !due.includes(w));
    for (const w of due) {
      out.push(...this.windowEvent(name, w, false));
      g.closedUntil = Math.max(g.closedUntil, w.end);
    }
  }

  private windowEvent(name: string, w: OpenWindow, partial: boolean): BuiltEvent[] {
    const ids = this.sensorOrder.filter((id) => w.acc[id]?.n);
    if (ids.length === 0) return [];
    const decimals = this.config.windows[name].decimals;
    // A window closed early (flush) covers what was seen, up to its last reading.
    const end = partial ? Math.min(w.last, w.end) : w.end;
    const e = this.observe(end, undefined, {});
    const elements: JsonObject[] = [];
    const sources = new Set<string>();
    const readings: JsonObject[] = [];
    for (const id of ids) {
      const a = w.acc[id];
      const s = this.config.sensors[id];
      a.sources.forEach((x) => sources.add(x));
      for (const [boot, first, last, count] of a.seqs) readings.push({ sensor: id, boot_id: boot, first_seq: first, last_seq: last, count });
      if (s.kind === 'gps' && a.fix) {
        elements.push({ sensorMetadata: { time: iso(a.fix.t), deviceID: this.deviceId(id) }, sensorReport: gpsReports(a.fix.v) });
        continue;
      }
      const u = UNIT[s.kind as NumericKind];
      elements.push({
        sensorMetadata: { startTime: iso(w.start), endTime: iso(end), deviceID: this.deviceId(id) },
        sensorReport: [{ type: u.type, minValue: a.min, maxValue: a.max, meanValue: Number((a.sum / a.n).toFixed(decimals)), uom: u.uom, 'iscm:count': a.n }],
      });
    }
    e.sensorElementList = elements;
    e['iscm:window'] = name;
    return [this.finish(e, end, { window: name, readings }, 'window', [...sources].sort().join(','))];
  }
}

/** RFC 5870 geo URI with 6 decimals (about 0.1 m), trailing zeros dropped. */
export function geoUri(lat: number, lon: number): string {
  const f = (x: number) => {
    const s = x.toFixed(6).replace(/\.?0+$/, '');
    return s === '-0' ? '0' : s;
  };
  return `geo:${f(lat)},${f(lon)}`;
}

function gpsReports(v: ReadingValues['gps']): JsonObject[] {
  const out: JsonObject[] = [
    { type: 'Angle', value: v.lat, component: 'latitude', uom: 'DD' },
    { type: 'Angle', value: v.lon, component: 'longitude', uom: 'DD' },
  ];
  if (v.alt_m !== undefined) out.push({ type: 'Altitude', value: v.alt_m, uom: 'MTR' });
  if (v.speed_mps !== undefined) out.push({ type: 'Speed', value: v.speed_mps, uom: 'MTS' });
  if (v.course_deg !== undefined) out.push({ type: 'Angle', value: v.course_deg, component: 'azimuth', uom: 'DD' });
  return out;
}

/** The EPC scheme of a normalised read identifier (EPC URI or canonical Digital Link). */
function schemeOf(id: string): string | undefined {
  if (id.startsWith('urn:epc:')) return parseEpcUri(id)?.scheme;
  const ai = /^https:\/\/id\.gs1\.org\/(\d+)\//.exec(id)?.[1];
  return ai === '00' ? 'sscc' : ai === '8003' ? 'grai' : ai === '8004' ? 'giai' : ai === '01' && id.includes('/21/') ? 'sgtin' : undefined;
}
