// The event builder's behaviour: aggregation windows, threshold rules, clock
// sanity (held readings, anchors, TIME sources, impossible times), errors,
// snapshots, and the Record it feeds the journal.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeRecord, GENESIS_PREV } from '../../protocol/record.js';
import { ValidationError } from '../../protocol/errors.js';
import type { Reading } from '../../protocol/reading.js';
import { parseConfig, type GatewayConfig } from '../../runtime/config/index.js';
import { encodeEventRecord, EventBuilder, HoldFullError, ManualClock, systemClock, TimeKeeper, type BuiltEvent } from '../../runtime/events/index.js';

const TAIL = `
signer: { driver: software, key_file: k.key, passphrase_env: P }
mqtt: { url: "mqtt://127.0.0.1:1883" }
trust: { ledger_keys: [l.pem] }
`;
const T = Date.UTC(2025, 10, 20, 8); // 08:00:00Z
const cfg = (yaml: string): GatewayConfig => parseConfig(yaml + TAIL);
/** Builders whose floor of plausible times does not move with the release date (unless the config sets one). */
const EARLY = Date.UTC(2020, 0, 1);
class Builder extends EventBuilder {
  constructor(c: GatewayConfig, o: ConstructorParameters<typeof EventBuilder>[1] = {}) {
    super(c, { notBefore: c.clock.not_before ?? EARLY, ...o });
  }
}
const restore = (c: GatewayConfig, snap: ReturnType<EventBuilder['snapshot']>, o: ConstructorParameters<typeof EventBuilder>[1] = {}) => EventBuilder.restore(c, snap, { notBefore: c.clock.not_before ?? EARLY, ...o });
type Obj = Record<string, any>;
let seq = 0;
const temp = (sensor: string, at: number, celsius: number, extra: Partial<Reading> = {}): Reading => ({ bootId: 1, seq: ++seq, sensor, kind: 'temperature', time: T + at, timeSource: 'mcu', values: { celsius }, ...extra }) as Reading;
const reps = (b: BuiltEvent): Obj[] => (b.event.sensorElementList as Obj[]).flatMap((s) => s.sensorReport);
const metaOf = (b: BuiltEvent): Obj => (b.event.sensorElementList as Obj[])[0].sensorMetadata;
/** An NTP-synchronised gateway clock a day after the readings (so none of them is in its future). */
const trusted = (now = T + 86_400_000) => new ManualClock({ now, synced: true });

const WIN = cfg(`
device: { id: w }
sensors:
  a: { kind: temperature, window: five }
  b: { kind: temperature, window: five }
  c: { kind: humidity }
windows: { five: { period: 5m, grace: 2s, decimals: 1 } }
`);

test('windows: aligned periods, min/max/mean/count, closed by the first reading past end + grace', () => {
  const b = new Builder(WIN, { clock: new ManualClock() });
  const out: BuiltEvent[] = [];
  out.push(...b.push(temp('a', 60_000, 4)));
  out.push(...b.push(temp('a', 120_000, 5)));
  out.push(...b.push(temp('a', 180_000, 6.04)));
  out.push(...b.push(temp('b', 200_000, 10)));
  assert.is(out.length, 0, 'all in the open window');
  assert.equal(b.push(temp('a', 301_000, 7)), [], '08:05:01 is within the grace: the window stays open');
  const closed = b.push(temp('b', 302_000, 11));
  assert.is(closed.length, 1);
  const w = closed[0];
  assert.is(w.kind, 'window');
  assert.is(w.event.eventTime, '2025-11-20T08:05:00.000Z');
  const els = w.event.sensorElementList as Obj[];
  assert.is(els.length, 2, 'one element per sensor, in config order');
  assert.equal(els[0].sensorMetadata, { startTime: '2025-11-20T08:00:00.000Z', endTime: '2025-11-20T08:05:00.000Z', deviceID: 'urn:iscm:w:sensor:a' });
  assert.equal(els[0].sensorReport[0], { type: 'Temperature', minValue: 4, maxValue: 6.04, meanValue: 5, uom: 'CEL', 'iscm:count': 3 });
  assert.equal(els[1].sensorReport[0], { type: 'Temperature', minValue: 10, maxValue: 10, meanValue: 10, uom: 'CEL', 'iscm:count': 1 });
  assert.equal(w.source, { window: 'five', readings: [{ sensor: 'a', boot_id: 1, first_seq: seq - 5, last_seq: seq - 3, count: 3 }, { sensor: 'b', boot_id: 1, first_seq: seq - 2, last_seq: seq - 2, count: 1 }] });
  // The 08:05 window holds 08:05:01 and 08:05:02 and closes at the end (partial: up to its last reading).
  const rest = b.flush();
  assert.is(rest.length, 1);
  assert.is(metaOf(rest[0]).endTime, '2025-11-20T08:05:02.000Z');
  assert.is(reps(rest[0])[0]['iscm:count'], 1);
});

test('windows: a reading for a closed window becomes its own event, with a warning', () => {
  const warnings: string[] = [];
  const b = new Builder(WIN, { clock: new ManualClock(), onWarning: (m) => warnings.push(m) });
  b.push(temp('a', 10_000, 4));
  assert.is(b.push(temp('a', 400_000, 5)).length, 1, 'closes 08:00-08:05');
  const late = b.push(temp('b', 20_000, 9));
  assert.is(late.length, 1);
  assert.is(late[0].kind, 'reading');
  assert.equal(reps(late[0])[0], { type: 'Temperature', value: 9, uom: 'CEL' });
  assert.match(warnings[0], /after its window five closed/);
});

test('windows: tick() closes them by the trusted clock; an untrusted clock closes nothing', () => {
  const clock = new ManualClock({ now: 0 });
  const b = new Builder(WIN, { clock });
  b.push(temp('a', 10_000, 4));
  clock.wall = T + 10 * 60_000; // 1970 no more? Not NTP, but later than the build date: plausible (rtc)
  assert.is(b.tick().length, 1);
  // Readings stamped by the gateway are no TIME source: the 1970 clock stays untrusted.
  const c2 = new ManualClock({ now: 1000 });
  const b2 = new Builder(WIN, { clock: c2 });
  b2.push(temp('a', 10_000, 4, { timeSource: 'gateway' }));
  c2.advance(3_600_000);
  assert.equal(b2.tick(), [], 'no trusted time: windows wait');
  // An MCU time is a TIME source: the gateway keeps that time on its monotonic clock.
  const c3 = new ManualClock({ now: 1000 });
  const b3 = new Builder(WIN, { clock: c3 });
  b3.push(temp('a', 10_000, 4));
  c3.advance(290_000 + 1999);
  assert.equal(b3.tick(), []);
  c3.advance(1);
  assert.is(b3.tick()[0].event.eventTime, '2025-11-20T08:05:00.000Z');
});

const RULES = cfg(`
device: { id: r }
sensors:
  t: { kind: temperature }
  h: { kind: humidity }
  d: { kind: door }
  g: { kind: gps }
rules:
  hot: { sensor: t, above: 8, for: 5m }
  dry: { sensor: h, below: 30 }
  shut: { kind: door, open: false }
  open-moving: { sensor: d, in_transit: true }
business: { in_transit: auto, moving_speed: 2 }
`);

test('rules: a duration must hold without a break; one alarm per excursion; re-armed when it clears', () => {
  const b = new Builder(RULES, { clock: trusted() });
  const alarms = (xs: BuiltEvent[]) => xs.filter((x) => x.kind === 'rule');
  assert.equal(alarms(b.push(temp('t', 0, 9))), []);
  assert.equal(alarms(b.push(temp('t', 120_000, 9.5))), []);
  assert.equal(alarms(b.push(temp('t', 200_000, 7.9))), [], 'a break: starts over');
  assert.equal(alarms(b.push(temp('t', 260_000, 8.5))), []);
  assert.equal(alarms(b.push(temp('t', 500_000, 10.2))), []);
  const fired = alarms(b.push(temp('t', 560_000, 9.1)));
  assert.is(fired.length, 1, '5 minutes after 260 s');
  const e = fired[0].event as Obj;
  assert.is(e['iscm:rule'], 'hot');
  assert.equal(metaOf(fired[0]), { time: '2025-11-20T08:09:20.000Z', startTime: '2025-11-20T08:04:20.000Z', deviceID: 'urn:iscm:r:sensor:t' });
  assert.equal(reps(fired[0])[0], { type: 'Temperature', exception: 'ALARM_CONDITION', value: 9.1, maxValue: 10.2, uom: 'CEL' });
  assert.equal(alarms(b.push(temp('t', 600_000, 11))), [], 'once per excursion');
  b.push(temp('t', 610_000, 5));
  b.push(temp('t', 620_000, 9));
  assert.is(alarms(b.push(temp('t', 920_000, 9))).length, 1, 're-armed');
});

test('rules: below; door closed; door open only while moving (GPS speed)', () => {
  const b = new Builder(RULES, { clock: trusted() });
  const r = (x: Partial<Reading>) => b.push({ bootId: 1, seq: ++seq, timeSource: 'mcu', ...x } as Reading).filter((e) => e.kind === 'rule');
  const dry = r({ sensor: 'h', kind: 'humidity', time: T, values: { percent: 29.9 } });
  assert.equal(reps(dry[0])[0], { type: 'RelativeHumidity', exception: 'ALARM_CONDITION', value: 29.9, uom: 'P1' });
  assert.is(r({ sensor: 'd', kind: 'door', time: T + 1000, values: { open: false } })[0].event['iscm:rule'], 'shut');
  assert.equal(r({ sensor: 'd', kind: 'door', time: T + 2000, values: { open: true } }), [], 'parked: no fix, not in transit');
  r({ sensor: 'g', kind: 'gps', time: T + 3000, timeSource: 'gps', values: { lat: 1, lon: 2, fix: '3d', speed_mps: 12 } });
  r({ sensor: 'd', kind: 'door', time: T + 4000, values: { open: false } });
  const moving = r({ sensor: 'd', kind: 'door', time: T + 5000, values: { open: true } });
  assert.is(moving.length, 1);
  assert.is(moving[0].event['iscm:rule'], 'open-moving');
  assert.is((moving[0].event.readPoint as Obj)?.id, undefined, 'no use_gps: no geo readPoint');
});

test('rules: a duration rule fires when time passes without a new reading of its sensor (tick or other sensors)', () => {
  const c = cfg(`
device: { id: r }
sensors: { d: { kind: door }, t: { kind: temperature } }
rules: { left-open: { sensor: d, for: 10m } }
`);
  const clock = trusted(T);
  const b = new Builder(c, { clock });
  b.push({ bootId: 1, seq: 1, sensor: 'd', kind: 'door', time: T, timeSource: 'gateway', values: { open: true } });
  clock.advance(9 * 60_000);
  assert.equal(b.tick(), []);
  clock.advance(61_000);
  const [fired] = b.tick();
  assert.is(fired.event.eventTime, '2025-11-20T08:10:01.000Z');
  assert.is(fired.event['iscm:timeSource'], 'clock-ntp');
  assert.equal(metaOf(fired), { time: '2025-11-20T08:00:00.000Z', startTime: '2025-11-20T08:00:00.000Z', deviceID: 'urn:iscm:r:sensor:d' });
  // Without a trusted clock: another sensor's reading is the evidence.
  const b2 = new Builder(c, { clock: new ManualClock() });
  b2.push({ bootId: 1, seq: 1, sensor: 'd', kind: 'door', time: T, timeSource: 'gateway', values: { open: true } });
  const out = b2.push(temp('t', 11 * 60_000, 20));
  assert.equal(out.map((x) => x.kind), ['rule', 'reading']);
  assert.is(out[0].event.eventTime, '2025-11-20T08:11:00.000Z');
});

// ---- clock sanity ----

const PLAIN = cfg(`
device: { id: c }
sensors: { t: { kind: temperature }, g: { kind: gps } }
clock: { max_held: 3, not_before: "2025-01-01" }
`);
const noTime = (mono?: number, boot = 1): Reading => ({ bootId: boot, seq: ++seq, sensor: 't', kind: 'temperature', time: null, timeSource: 'none', values: { celsius: 5 }, ...(mono === undefined ? {} : { monoMs: mono }) });

test('clock: without a trusted time readings are held, never stamped 1970; NTP releases them back-dated', () => {
  const clock = new ManualClock({ now: 5000, mono: 100 });
  const b = new Builder(PLAIN, { clock });
  assert.equal(b.push(noTime()), []);
  clock.advance(1000);
  assert.equal(b.push({ ...noTime(), time: 6100, timeSource: 'gateway' }), [], 'a 1970 time is not believed');
  assert.is(b.pending().held, 2);
  clock.advance(4000);
  assert.throws(() => {
    b.push(noTime());
    b.push(noTime());
  }, (e: unknown) => e instanceof HoldFullError && /clock.max_held/.test((e as Error).message));
  // NTP synchronises: the wall clock jumps to the truth; held readings get their receive time.
  clock.setWall(T, true);
  const out = b.tick();
  assert.is(out.length, 3);
  assert.equal(out.map((x) => x.event.eventTime), ['2025-11-20T07:59:55.000Z', '2025-11-20T07:59:56.000Z', '2025-11-20T08:00:00.000Z']);
  assert.ok(out.every((x) => x.event['iscm:timeSource'] === 'clock-ntp'));
  assert.is(b.pending().held, 0);
});

test('clock: a reading with a trusted time anchors its MCU boot; held readings of that boot get exact times', () => {
  const b = new Builder(PLAIN, { clock: new ManualClock() });
  assert.equal(b.push(noTime(1_000)), []);
  assert.equal(b.push(noTime(2_500, 2)), [], 'another MCU boot');
  // Stamped by a gateway (plausible, but no TIME source for this gateway), with the MCU's monotonic time.
  const out = b.push({ ...temp('t', 60_000, 6), timeSource: 'gateway', monoMs: 61_000 });
  assert.equal(out.map((x) => [x.event.eventTime, x.event['iscm:timeSource']]), [
    ['2025-11-20T08:00:00.000Z', 'gateway-mono'],
    ['2025-11-20T08:01:00.000Z', 'gateway'],
  ]);
  assert.is(b.pending().held, 1, 'boot 2 has no anchor');
  assert.equal(b.pending().oldest, { 2: seq - 1 });
});

test('clock: a GPS fix sets the gateway time (a TIME source); a far-future MCU time is not believed', () => {
  const clock = new ManualClock({ now: 0, mono: 10_000 });
  const b = new Builder(PLAIN, { clock });
  assert.equal(b.push(noTime()), []);
  clock.advance(5000);
  const out = b.push({ bootId: 9, seq: ++seq, sensor: 'g', kind: 'gps', time: T, timeSource: 'gps', values: { lat: 1, lon: 2, fix: '3d' } });
  assert.equal(out.map((x) => [x.event.eventTime, x.event['iscm:timeSource']]), [
    ['2025-11-20T07:59:55.000Z', 'clock-gps'],
    ['2025-11-20T08:00:00.000Z', 'gps'],
  ]);
  clock.advance(1000);
  const future = b.push(temp('t', 3 * 3_600_000, 7)); // 3 h ahead of the GPS time: a wrong RTC
  assert.is(future[0].event.eventTime, '2025-11-20T08:00:01.000Z');
  assert.is(future[0].event['iscm:timeSource'], 'clock-gps');
  // An OS clock later than not_before is trusted on its own ("rtc").
  const b2 = new Builder(PLAIN, { clock: new ManualClock({ now: T }) });
  assert.is(b2.push(noTime())[0].event['iscm:timeSource'], 'clock-rtc');
});

test('TimeKeeper: GPS outranks an MCU clock; a plausible OS clock needs no TIME source', () => {
  const clock = new ManualClock({ now: 0, mono: 0 });
  const k = new TimeKeeper(clock, { notBefore: Date.UTC(2025, 0, 1) });
  assert.is(k.trusted(), null);
  assert.ok(k.offerTime(T, 'gps'));
  assert.not.ok(k.offerTime(T + 999_999, 'mcu'));
  clock.advance(500);
  assert.equal(k.trusted(), { ms: T + 500, via: 'gps' });
  assert.not.ok(k.offerTime(Date.UTC(2020, 0, 1), 'gps'), 'before not_before');
  const k2 = new TimeKeeper(new ManualClock({ now: T }), { notBefore: Date.UTC(2025, 0, 1) });
  assert.equal(k2.trusted(), { ms: T, via: 'rtc' });
  assert.not.ok(k2.offerTime(T + 1, 'gps'));
  const sys = systemClock('off');
  const m0 = sys.mono();
  assert.ok(sys.mono() >= m0 && typeof sys.bootId() === 'string' && sys.synced() === false);
});

// ---- errors ----

const RF = cfg(`
device: { id: f }
sensors: { r: { kind: rfid }, t: { kind: temperature } }
`);

test('errors: unknown sensors, kinds that do not match, identifiers that are not EPCs (typed, with the field)', () => {
  const b = new Builder(RF, { clock: trusted() });
  const isField = (re: RegExp, msg: RegExp) => (e: unknown) => e instanceof ValidationError && re.test(e.field ?? '') && msg.test((e as Error).message);
  assert.throws(() => b.push(temp('x9', 0, 1)), isField(/reading\.sensor/, /"x9" is not in the config \(known: r, t\)/));
  assert.throws(() => b.push({ ...temp('r', 0, 1) }), isField(/reading\.kind/, /configured as rfid but sent a temperature/));
  assert.throws(() => b.push({ bootId: 1, seq: 1, sensor: 'r', kind: 'rfid', time: T, timeSource: 'gateway', values: { epcs: ['urn:epc:id:sscc:4012345.0000000101', 'junk'] } }), isField(/epcs\[1\]/, /"junk": not an EPC URI/));
  const ok = b.push({ bootId: 1, seq: 2, sensor: 'r', kind: 'rfid', time: T, timeSource: 'gateway', values: { epcs: ['urn:epc:id:sscc:4012345.0000000101', 'urn:epc:id:sscc:4012345.0000000101'] } });
  assert.equal(ok[0].event.epcList, ['urn:epc:id:sscc:4012345.0000000101'], 'a tag read twice is listed once');
});

// ---- determinism, snapshots, records ----

const SNAP = cfg(`
device: { id: s }
sensors:
  t: { kind: temperature, window: m }
  h: { kind: humidity }
  g: { kind: gps, window: m }
windows: { m: { period: 1m } }
rules: { hot: { sensor: t, above: 8, for: 90s }, wet: { sensor: h, above: 80, for: 2m } }
locations: { use_gps: true }
`);
function script(): Reading[] {
  const out: Reading[] = [];
  let s = 0;
  for (let i = 0; i < 60; i++) {
    const at = T + i * 10_000;
    const known = i % 7 !== 3;
    out.push({ bootId: 4, seq: ++s, sensor: 't', kind: 'temperature', time: known ? at : null, timeSource: known ? 'mcu' : 'none', monoMs: i * 10_000, values: { celsius: 4 + ((i * 7) % 11) } });
    if (i % 3 === 0) out.push({ bootId: 4, seq: ++s, sensor: 'h', kind: 'humidity', time: at + 1000, timeSource: 'mcu', values: { percent: 70 + (i % 20) } });
    if (i % 5 === 0) out.push({ bootId: 4, seq: ++s, sensor: 'g', kind: 'gps', time: at + 2000, timeSource: 'gps', values: { lat: 50 + i / 1000, lon: 8, fix: '3d', speed_mps: 10 } });
  }
  return out;
}
const runAll = (b: EventBuilder, rs: Reading[]) => rs.flatMap((r) => b.push(r));

test('deterministic: the same readings give the same events, byte for byte', () => {
  const a = [...runAll(new Builder(SNAP, { clock: new ManualClock() }), script())];
  const b = [...runAll(new Builder(SNAP, { clock: new ManualClock() }), script())];
  assert.ok(a.length > 20);
  assert.is(JSON.stringify(a), JSON.stringify(b));
  assert.is(new Set(a.map((x) => x.event.eventID)).size, a.length, 'distinct events, distinct IDs');
});

test('snapshot/restore at any point continues exactly as if never stopped (JSON round trip)', () => {
  const rs = script();
  const whole = JSON.stringify([...runAll(new Builder(SNAP, { clock: new ManualClock() }), rs), ...new Builder(SNAP, { clock: new ManualClock() }).flush()]);
  const straight = new Builder(SNAP, { clock: new ManualClock() });
  const ref = JSON.stringify([...runAll(straight, rs), ...straight.flush()]);
  void whole;
  fc.assert(
    fc.property(fc.integer({ min: 0, max: rs.length }), (k) => {
      const first = new Builder(SNAP, { clock: new ManualClock() });
      const before = runAll(first, rs.slice(0, k));
      const snap = JSON.parse(JSON.stringify(first.snapshot()));
      const second = restore(SNAP, snap, { clock: new ManualClock() });
      const after = [...runAll(second, rs.slice(k)), ...second.flush()];
      return JSON.stringify([...before, ...after]) === ref;
    }),
    { numRuns: 40 },
  );
});

test('records: the built event is Record field 5, its provenance field 6; round trip', () => {
  const b = new Builder(SNAP, { clock: new ManualClock() });
  const built = [...runAll(b, script()), ...b.flush()];
  for (const x of built) {
    const bytes = encodeEventRecord(x, { deviceId: 's', seq: 1, prev: GENESIS_PREV, time: x.time });
    const r = decodeRecord(bytes);
    assert.equal(r.event, x.event);
    assert.equal(r.source, x.source);
    assert.ok(bytes.length < 4096, `${bytes.length} bytes`);
  }
});

test('snapshot: restoring under a changed config keeps only what it still knows', () => {
  const first = new Builder(SNAP, { clock: new ManualClock() });
  runAll(first, script().slice(0, 30));
  const smaller = cfg(`
device: { id: s }
sensors: { h: { kind: humidity } }
`);
  const warnings: string[] = [];
  const b = restore(smaller, first.snapshot(), { clock: new ManualClock(), onWarning: (m) => warnings.push(m) });
  assert.equal(b.flush(), [], 'the window and the rules went with their config');
  assert.ok(warnings.some((w) => /window m is no longer configured/.test(w)), warnings.join('\n'));
  // A held reading whose sensor is gone is dropped, and said so.
  const holding = new Builder(SNAP, { clock: new ManualClock() });
  holding.push({ bootId: 3, seq: 1, sensor: 't', kind: 'temperature', time: null, timeSource: 'none', values: { celsius: 3 } });
  assert.is(holding.pending().held, 1);
  const c = restore(smaller, holding.snapshot(), { clock: new ManualClock(), onWarning: (m) => warnings.push(m) });
  assert.is(c.pending().held, 0);
  assert.ok(warnings.some((w) => /held reading of sensor t \(boot 3, seq 1\) no longer matches the config: dropped/.test(w)), warnings.join('\n'));
});

test('the runtime needs nothing from ../shared and no JSON Schema validator (gateways have neither)', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  for (const dir of ['runtime/events', 'runtime/config']) {
    for (const f of readdirSync(join(root, dir))) {
      const text = readFileSync(join(root, dir, f), 'utf8');
      assert.not.ok(/shared\/vectors|from 'ajv|from "ajv/.test(text.replace(/^\s*\/\/.*$/gm, '')), `${dir}/${f}`);
    }
  }
});

test.run();
