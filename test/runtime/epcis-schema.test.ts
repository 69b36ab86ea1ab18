// Every kind of event the builder can make, validated against the GS1 EPCIS
// 2.0 JSON Schema (../shared/vectors/epcis/schema, draft-07: ajv + ajv-formats)
// both stand-alone and inside an EPCISDocument, and against the rules the
// schema misses (README of the vectors). A coverage list makes sure every
// path (readings of each kind, windows, every rule and alarm, RFID reads,
// packing and unpacking, every time source) was really produced.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { join } from 'node:path';
import type { Reading } from '../../protocol/reading.js';
import { parseConfig } from '../../runtime/config/index.js';
import { EventBuilder, ManualClock, eventRuleProblems, type BuiltEvent } from '../../runtime/events/index.js';
import { EPCIS_CONTEXT, ISCM_NS } from '../../runtime/events/vocab.js';
import { listFiles, readJson, vectorDir } from '../helpers/vectors.js';

// ajv-formats is CommonJS: its default export is the plugin itself.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

const TAIL = `
signer: { driver: software, key_file: k.key, passphrase_env: P }
mqtt: { url: "mqtt://127.0.0.1:1883" }
trust: { ledger_keys: [l.pem] }
`;
const T = Date.UTC(2025, 10, 20, 10);
/** A floor of plausible times that does not move with the release date. */
const EARLY = Date.UTC(2020, 0, 1);
type Obj = Record<string, any>;

/** Runs readings through a builder whose (NTP) clock follows them; returns every event. */
function run(configText: string, steps: (Partial<Reading> & { at: number })[], opts: { clock?: ManualClock; builder?: EventBuilder } = {}): { events: BuiltEvent[]; builder: EventBuilder; warnings: string[] } {
  const config = parseConfig(configText + TAIL);
  const clock = opts.clock ?? new ManualClock({ now: T, mono: 0, synced: true, bootId: 'os-1' });
  const warnings: string[] = [];
  const builder = opts.builder ?? new EventBuilder(config, { clock, notBefore: EARLY, onWarning: (m) => warnings.push(m) });
  const events: BuiltEvent[] = [];
  let seq = 0;
  for (const s of steps) {
    clock.wall = Math.max(clock.wall, T + s.at);
    clock.monotonic = Math.max(clock.monotonic, s.at);
    const kind = s.kind ?? (config.sensors[s.sensor!].kind as Reading['kind']);
    const r = { bootId: s.bootId ?? 7, seq: s.seq ?? ++seq, sensor: s.sensor!, kind, time: s.time === undefined ? T + s.at : s.time, timeSource: s.timeSource ?? (s.time === null ? 'none' : 'mcu'), values: s.values } as Reading;
    if (s.monoMs !== undefined) r.monoMs = s.monoMs;
    events.push(...builder.push(r));
  }
  events.push(...builder.flush());
  return { events, builder, warnings };
}

const ALL = `
device: { id: all-paths, timezone_offset: "-05:00" }
sensors:
  t1: { kind: temperature, window: w, raw: true, device_id: "urn:epc:id:giai:4012345.T1" }
  t2: { kind: temperature }
  h1: { kind: humidity, window: w }
  s1: { kind: shock }
  d1: { kind: door }
  g1: { kind: gps, window: w }
  g2: { kind: gps }
  r1: { kind: rfid, biz_step: receiving, disposition: in_progress, read_point: "urn:epc:id:sgln:4012345.00017.0" }
  p1: { kind: rfid, station: { action: pack, parent_scheme: sscc } }
  u1: { kind: rfid, station: { action: unpack, parent: "urn:epc:id:sscc:4012345.0000004711" } }
  a1: { kind: alarm, error_codes: [E1], alarm_type: Temperature }
windows: { w: { period: 1m, grace: 0s } }
rules:
  hot: { sensor: t2, above: 8 }
  hot-long: { sensor: t1, above: 8, for: 2m, disposition: non_conformant }
  dry: { sensor: h1, below: 30, for: 30s }
  bump: { kind: shock, above: 3 }
  door-transit: { kind: door, in_transit: true }
  door-long: { sensor: d1, for: 5m, biz_step: inspecting }
assets: { epcs: ["urn:epc:id:grai:4012345.00001.42", "urn:epc:id:sscc:4012345.0000000101"] }
locations: { read_point: "urn:epc:id:sgln:4012345.00001.0", biz_location: "urn:epc:id:sgln:4012345.00010.0", use_gps: true }
business: { biz_step: transporting, disposition: in_transit }
`;
const gpsFull = { lat: 53.546311, lon: 9.966415, alt_m: 12.5, speed_mps: 15, course_deg: 62.5, fix: '3d' as const };
const ALL_STEPS: (Partial<Reading> & { at: number })[] = [
  { at: 0, sensor: 'g1', timeSource: 'gps', monoMs: 1000, values: gpsFull },
  { at: 5_000, sensor: 't1', monoMs: 6000, values: { celsius: 4.5 } },
  { at: 6_000, sensor: 'h1', values: { percent: 45 } },
  { at: 10_000, sensor: 't2', values: { celsius: 9 } },
  { at: 12_000, sensor: 's1', values: { g: 4.2, x: 0.4, y: -4.1, z: 0.9 } },
  { at: 15_000, sensor: 's1', values: { g: 1 } },
  { at: 20_000, sensor: 'd1', values: { open: true, door: 'rear' } },
  { at: 25_000, sensor: 'h1', values: { percent: 25 } },
  { at: 30_000, sensor: 't1', monoMs: 31000, values: { celsius: 9 } },
  { at: 40_000, sensor: 'g2', timeSource: 'gps', values: { lat: -33.8688, lon: 151.2093, fix: '2d' } },
  { at: 45_000, sensor: 'g2', timeSource: 'gps', values: gpsFull },
  { at: 56_000, sensor: 'h1', values: { percent: 24 } },
  { at: 61_000, sensor: 't1', monoMs: 62000, values: { celsius: 9.5 } },
  { at: 62_000, sensor: 'h1', time: T + 10_000, values: { percent: 40 } }, // late: its window is closed
  { at: 151_000, sensor: 't1', monoMs: 152000, values: { celsius: 9.8 } },
  { at: 160_000, sensor: 'r1', timeSource: 'gateway', values: { epcs: ['urn:epc:id:sscc:4012345.0000004711', '3074257BF7194E4000001A85', '(01)09506000134352(21)ABC123'], reader: 'portal', antenna: 1 } },
  { at: 170_000, sensor: 'p1', values: { epcs: ['urn:epc:id:sgtin:4012345.011111.1', 'urn:epc:id:sgtin:4012345.011111.2', 'urn:epc:id:sscc:4012345.0000004712'] } },
  { at: 171_000, sensor: 'p1', values: { epcs: ['urn:epc:id:sgtin:4012345.011111.3'] } },
  { at: 172_000, sensor: 'p1', values: { epcs: ['urn:epc:id:sscc:4012345.0000004713'] } },
  { at: 180_000, sensor: 'u1', values: { epcs: ['urn:epc:id:sgtin:4012345.011111.1', 'urn:epc:id:sgtin:4012345.011111.2'] } },
  { at: 181_000, sensor: 'u1', values: { epcs: ['urn:epc:id:sscc:4012345.0000004711'] } },
  { at: 190_000, sensor: 'a1', values: { code: 'E1' } },
  { at: 191_000, sensor: 'a1', values: { code: 'HIGH', message: 'probe above limit' } },
  { at: 200_000, sensor: 't1', time: null, monoMs: 201000, values: { celsius: 4.4 } }, // no time: the MCU's mono anchor
  { at: 205_000, sensor: 't2', time: null, values: { celsius: 4.4 } }, // no time, no mono: the gateway's NTP clock
  { at: 330_000, sensor: 'g1', timeSource: 'gps', values: { lat: 53.55, lon: 9.97, fix: '2d' } }, // door open for 5m10s: door-long fires
  { at: 360_000, sensor: 'd1', values: { open: false } },
  { at: 365_000, sensor: 't1', monoMs: 366000, values: { celsius: 4.2 } },
];

const QTY = `
device: { id: quantities }
sensors: { h: { kind: humidity }, t: { kind: temperature, window: q }, r: { kind: rfid }, a: { kind: alarm } }
windows: { q: { period: 10s } }
assets:
  quantities:
    - { epc_class: "urn:epc:class:lgtin:4012345.012345.LOT1", quantity: 120 }
    - { epc_class: "urn:epc:idpat:sgtin:4012345.067890.*", quantity: 12.5, uom: KGM }
    - { epc_class: "https://id.gs1.org/01/09506000134352/10/L2" }
`;
const BARE = `
device: { id: bare }
sensors: { t: { kind: temperature }, d: { kind: door } }
`;

let all: BuiltEvent[] = [];
let allWarnings: string[] = [];
test.before(() => {
  const a = run(ALL, ALL_STEPS);
  const q = run(QTY, [
    { at: 0, sensor: 'h', values: { percent: 50 } },
    { at: 1000, sensor: 't', values: { celsius: 20 } },
    { at: 4000, sensor: 't', values: { celsius: 21 } },
    { at: 12000, sensor: 't', values: { celsius: 22 } },
    { at: 13000, sensor: 'r', values: { epcs: ['urn:epc:id:giai:4012345.ASSET1'] } },
    { at: 14000, sensor: 'a', values: { code: 'X' } },
  ]);
  const b = run(BARE, [
    { at: 0, sensor: 't', values: { celsius: -18.25 } },
    { at: 1000, sensor: 'd', values: { open: true } },
  ]);
  // A reading held across an OS reboot: after it, only an upper bound of its time is known.
  const config = parseConfig(BARE + TAIL);
  const before = new EventBuilder(config, { notBefore: EARLY, clock: new ManualClock({ now: 0, mono: 50, bootId: 'os-1' }) });
  assert.equal(before.push({ bootId: 1, seq: 1, sensor: 't', kind: 'temperature', time: null, timeSource: 'none', values: { celsius: 5 } }), []);
  const after = EventBuilder.restore(config, before.snapshot(), { notBefore: EARLY, clock: new ManualClock({ now: T, mono: 10, synced: true, bootId: 'os-2' }) });
  all = [...a.events, ...q.events, ...b.events, ...after.tick()];
  allWarnings = a.warnings;
});

const reports = (e: Obj): Obj[] => (e.sensorElementList ?? []).flatMap((s: Obj) => s.sensorReport);
const meta = (e: Obj): Obj[] => (e.sensorElementList ?? []).map((s: Obj) => s.sensorMetadata ?? {});
const PATHS: [string, (e: Obj, b: BuiltEvent) => boolean][] = [
  ['reading: Temperature value', (e, b) => b.kind === 'reading' && reports(e).some((r) => r.type === 'Temperature' && r.value !== undefined && r.uom === 'CEL')],
  ['reading: RelativeHumidity value (P1)', (e, b) => b.kind === 'reading' && reports(e).some((r) => r.type === 'RelativeHumidity' && r.uom === 'P1')],
  ['reading: Acceleration with x/y/z components', (e) => ['x', 'y', 'z'].every((c) => reports(e).some((r) => r.type === 'Acceleration' && r.component === c && r.uom === 'K40'))],
  ['reading: door open', (e, b) => b.kind === 'reading' && reports(e).some((r) => r.stringValue === 'open' && !r.exception)],
  ['reading: door closed', (e, b) => b.kind === 'reading' && reports(e).some((r) => r.stringValue === 'closed')],
  ['reading: GPS fix with altitude, speed, course; geo: readPoint', (e, b) => b.kind === 'reading' && ['Altitude', 'Speed'].every((t) => reports(e).some((r) => r.type === t)) && reports(e).some((r) => r.component === 'azimuth') && /^geo:/.test(e.readPoint?.id)],
  ['reading: GPS 2-D fix (latitude and longitude only)', (e, b) => b.kind === 'reading' && reports(e).length === 2 && reports(e).every((r) => r.type === 'Angle')],
  ['window: min/max/mean with iscm:count over startTime..endTime', (e, b) => b.kind === 'window' && reports(e).some((r) => r.minValue !== undefined && r.maxValue !== undefined && r.meanValue !== undefined && r['iscm:count'] > 0) && meta(e).some((m) => m.startTime && m.endTime)],
  ['window: with the last GPS fix of the window', (e, b) => b.kind === 'window' && reports(e).some((r) => r.component === 'latitude')],
  ['window: closed early (flush), endTime before the period end', (e, b) => b.kind === 'window' && meta(e).some((m) => m.endTime && (Date.parse(m.endTime) - Date.parse(m.startTime)) % 60000 !== 0)],
  ['rule: instant, above', (e, b) => b.kind === 'rule' && e['iscm:rule'] === 'hot' && reports(e)[0].exception === 'ALARM_CONDITION'],
  ['rule: duration, maxValue and startTime', (e, b) => b.kind === 'rule' && e['iscm:rule'] === 'hot-long' && reports(e)[0].maxValue !== undefined && meta(e)[0].startTime && e.disposition === 'non_conformant'],
  ['rule: duration, below, minValue', (e, b) => b.kind === 'rule' && e['iscm:rule'] === 'dry' && reports(e)[0].minValue !== undefined],
  ['rule: shock', (e, b) => b.kind === 'rule' && e['iscm:rule'] === 'bump'],
  ['rule: door open in transit', (e, b) => b.kind === 'rule' && e['iscm:rule'] === 'door-transit'],
  ['rule: fired by time passing (sensor time before eventTime)', (e, b) => b.kind === 'rule' && e['iscm:rule'] === 'door-long' && meta(e)[0].time < e.eventTime && e.bizStep === 'inspecting'],
  ['RFID read: ObjectEvent with the read EPCs', (e, b) => b.kind === 'read' && e.epcList.length === 3 && e.bizStep === 'receiving' && e.readPoint.id.endsWith('00017.0')],
  ['packing: AggregationEvent ADD', (e) => e.type === 'AggregationEvent' && e.action === 'ADD' && e.childEPCs.length === 2 && e.bizStep === 'packing'],
  ['unpacking: AggregationEvent DELETE with children', (e) => e.type === 'AggregationEvent' && e.action === 'DELETE' && e.childEPCs?.length === 2],
  ['unpacking: AggregationEvent DELETE of all children', (e) => e.type === 'AggregationEvent' && e.action === 'DELETE' && e.childEPCs === undefined],
  ['station read without a parent: ObjectEvent', (e, b) => b.kind === 'read' && b.source.sensor === 'p1'],
  ['firmware alarm: ERROR_CONDITION', (e, b) => b.kind === 'firmware-alarm' && reports(e)[0].exception === 'ERROR_CONDITION'],
  ['firmware alarm: ALARM_CONDITION with message', (e, b) => b.kind === 'firmware-alarm' && reports(e)[0].exception === 'ALARM_CONDITION' && e['iscm:message']],
  ['assets: quantityList', (e) => Array.isArray(e.quantityList) && e.quantityList.length === 3],
  ['assets: none and no location (epcList [] describes nothing else)', (e) => Array.isArray(e.epcList) && e.epcList.length === 0 && !e.readPoint && !e.quantityList],
  ['location: SGLN readPoint and bizLocation', (e) => /sgln/.test(e.readPoint?.id ?? '') && /sgln/.test(e.bizLocation?.id ?? '')],
  ['late reading: its own event', (e, b) => b.kind === 'reading' && b.source.sensor === 'h1'],
  ['time: from the MCU monotonic clock and an anchor', (e) => e['iscm:timeSource'] === 'mcu-mono'],
  ['time: from the gateway clock (NTP)', (e) => e['iscm:timeSource'] === 'clock-ntp'],
  ['time: after an OS reboot, upper bound', (e) => e['iscm:timeSource'] === 'clock-late'],
  ['time: GPS', (e) => e['iscm:timeSource'] === 'gps'],
];

test('every path was produced (coverage of the builder)', () => {
  for (const [name, pred] of PATHS) assert.ok(all.some((b) => pred(b.event as Obj, b)), `no event for path: ${name}`);
  assert.ok(all.length >= 40, `${all.length} events`);
  assert.ok(allWarnings.some((w) => /after its window/.test(w)) && allWarnings.some((w) => /no sscc/.test(w)) && allWarnings.some((w) => /parent alone/.test(w)), allWarnings.join('\n'));
});

test('every event obeys the rules the schema misses (and the gateway\'s own)', () => {
  for (const b of all) assert.equal(eventRuleProblems(b.event, { gateway: true }), [], JSON.stringify(b.event));
});

const dir = vectorDir('epcis');
if (dir) {
  const ajv = new Ajv({ allErrors: true });
  addFormats(ajv);
  const validate = ajv.compile(readJson(join(dir, 'schema', 'EPCIS-JSON-Schema.json')));
  const errs = () => JSON.stringify(validate.errors?.slice(0, 5));

  test('GS1 schema: every event valid stand-alone (its own @context)', () => {
    for (const b of all) assert.ok(validate(b.event), `${b.kind} ${JSON.stringify(b.event)}\n${errs()}`);
  });

  test('GS1 schema: all events valid together in one EPCISDocument (without their own @context)', () => {
    const doc = {
      '@context': [EPCIS_CONTEXT, { iscm: ISCM_NS }],
      type: 'EPCISDocument',
      schemaVersion: '2.0',
      creationDate: '2025-11-20T12:00:00.000Z',
      epcisBody: { eventList: all.map((b) => Object.fromEntries(Object.entries(b.event).filter(([k]) => k !== '@context'))) },
    };
    assert.ok(validate(doc), errs());
  });

  test('GS1 schema: catches what it should in our events (the validation can fail)', () => {
    const e = structuredClone(all.find((b) => b.kind === 'window')!.event) as Obj;
    for (const mutate of [(x: Obj) => delete x['@context'], (x: Obj) => (x.action = 'LOOK'), (x: Obj) => (x.sensorElementList[0].sensorReport[0].value = '4'), (x: Obj) => (x.bizStep = 'urn:epcglobal:cbv:bizstep:shipping'), (x: Obj) => (x.unit = 'C')]) {
      const m = structuredClone(e);
      mutate(m);
      assert.not.ok(validate(m), mutate.toString());
    }
  });

  test('README rules the schema misses: each accepted by the schema, refused by eventRuleProblems', () => {
    const window = all.find((b) => b.kind === 'window')!.event as Obj;
    const reading = all.find((b) => b.kind === 'reading' && reports(b.event)[0].type === 'Temperature')!.event as Obj;
    const cases: [Obj, (x: Obj) => void, RegExp][] = [
      [window, (x) => (x.sensorElementList[0].sensorMetadata.endTime = '2030-01-01T00:00:00.000Z'), /later than eventTime/],
      [reading, (x) => (x.sensorElementList[0].sensorMetadata.time = '2030-01-01T00:00:00.000Z'), /later than eventTime/],
      [reading, (x) => Object.assign(x.sensorElementList[0].sensorReport[0], { microorganism: 'https://www.ncbi.nlm.nih.gov/taxonomy/1126011', chemicalSubstance: 'https://identifiers.org/inchikey:CZMRCDWAGMRECN-UGDNZRGBSA-N' }), /both microorganism and chemicalSubstance/],
      [reading, (x) => (x.sensorElementList[0].sensorReport[0].deviceID = x.sensorElementList[0].sensorMetadata.deviceID), /also in sensorMetadata/],
      [reading, (x) => (x.sensorElementList[0].sensorReport[0].uom = 'cel'), /uom/],
      [window, (x) => (x.sensorElementList[0].sensorReport[0].meanValue = 1000), /meanValue/],
      [reading, (x) => (x.eventTime = '2025-11-20T10:00:05.001Z'), /eventID|later than/],
    ];
    for (const [base, mutate, re] of cases) {
      const m = structuredClone(base);
      mutate(m);
      assert.ok(validate(m), `the schema accepts it: ${mutate} ${errs()}`);
      assert.ok(eventRuleProblems(m).some((p) => re.test(p)), `${mutate}: ${eventRuleProblems(m)}`);
      assert.equal(eventRuleProblems(base), []);
    }
  });

  test('GS1 examples pass the extra rules too (except the two that deliberately use every field)', () => {
    for (const f of listFiles(join(dir, 'examples'), '.jsonld')) {
      const doc = readJson(f);
      for (const e of doc.epcisBody.eventList) {
        const p = eventRuleProblems(e, { checkEventId: false });
        if (/all_possible_fields/.test(f)) assert.ok(p.length > 0, f);
        else assert.equal(p, [], f);
      }
    }
  });
}

test.run();
