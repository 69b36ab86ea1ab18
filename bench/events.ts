// npm run bench -- events: readings → EPCIS events. Goal (issue 6): ≥ 50k
// events built and encoded (as Records) per second from raw readings; and the
// bytes per event as a CBOR record versus the same event as EPCIS JSON.
// The machine is shared: loadavg is printed beside the figures.
import { loadavg } from 'node:os';
import { emit, opsPerSec, table } from './_util.js';
import { encodeRecord, GENESIS_PREV } from '../protocol/record.js';
import type { Reading } from '../protocol/reading.js';
import { parseConfig } from '../runtime/config/index.js';
import { EventBuilder, ManualClock, eventHashId, type BuiltEvent } from '../runtime/events/index.js';

const MS = Number(process.env.BENCH_MS ?? 1000);
const T0 = Date.UTC(2025, 10, 20, 8);

const config = parseConfig(`
device: { id: reefer-0042, timezone_offset: "+01:00" }
sensors:
  t1: { kind: temperature, device_id: "urn:epc:id:giai:4012345.REEFER42-TA" }
  t2: { kind: temperature, window: w }
  s1: { kind: shock }
  r1: { kind: rfid, biz_step: receiving }
  g1: { kind: gps }
windows: { w: { period: 5m } }
rules: { hot: { sensor: t1, above: 8, for: 5m } }
assets: { epcs: [urn:epc:id:grai:4012345.00001.42, urn:epc:id:sscc:4012345.0000000101, urn:epc:id:sscc:4012345.0000000102] }
locations: { read_point: urn:epc:id:sgln:4012345.00001.0, use_gps: true }
business: { biz_step: transporting, disposition: in_transit }
signer: { driver: software, key_file: k, passphrase_env: P }
mqtt: { url: "mqtt://127.0.0.1:1883" }
trust: { ledger_keys: [l.pem] }
`);

const clock = new ManualClock({ now: T0, synced: true });
const builder = new EventBuilder(config, { clock, notBefore: Date.UTC(2020, 0, 1) });
emit({ bench: 'events', name: 'env', node: process.version, loadavg_1m: loadavg()[0], loadavg_5m: loadavg()[1] });

let seq = 0;
// The gateway clock (NTP-synchronised) follows the readings: one per second.
const tick = (i: number) => {
  clock.wall = T0 + i * 1000;
  clock.monotonic = i * 1000;
  return i;
};
const temperature = (i: number): Reading => (tick(i), { bootId: 7, seq: ++seq, sensor: 't1', kind: 'temperature', time: T0 + i * 1000, timeSource: 'mcu', monoMs: i * 1000, values: { celsius: 4 + (i % 37) / 10 } });
const windowed = (i: number): Reading => (tick(i), { bootId: 7, seq: ++seq, sensor: 't2', kind: 'temperature', time: T0 + i * 1000, timeSource: 'mcu', values: { celsius: 4 + (i % 37) / 10 } });
const shock = (i: number): Reading => (tick(i), { bootId: 7, seq: ++seq, sensor: 's1', kind: 'shock', time: T0 + i * 1000, timeSource: 'mcu', values: { g: 1 + (i % 9) / 4, x: 0.5, y: -1.1, z: 0.25 } });
const rfid = (i: number): Reading => (tick(i), { bootId: 7, seq: ++seq, sensor: 'r1', kind: 'rfid', time: T0 + i * 1000, timeSource: 'gateway', values: { epcs: [`urn:epc:id:sgtin:4012345.011111.${1000 + (i % 5000)}`, 'urn:epc:id:sscc:4012345.0000004711'], reader: 'portal' } });

function record(b: BuiltEvent, i: number): Uint8Array {
  return encodeRecord({ deviceId: 'reefer-0042', seq: i + 1, prev: GENESIS_PREV, time: b.time, event: b.event, source: b.source });
}

// Each reading of a sensor without a window is one event: build it (hash ID included) and encode it as a Record.
let t = 0;
for (const [name, make] of [['temperature', temperature], ['shock_3_axes', shock], ['rfid_read', rfid]] as const) {
  const build = opsPerSec(() => builder.push(make(t++)), MS);
  const buildEncode = opsPerSec(() => {
    const out = builder.push(make(t++));
    for (const b of out) record(b, t);
  }, MS);
  const sample = builder.push(make(t++))[0];
  const cbor = record(sample, 1).length;
  const json = Buffer.byteLength(JSON.stringify(sample.event));
  emit({ bench: 'events', name: 'reading_to_event', reading: name, events_per_s: buildEncode, build_only_per_s: build, goal: 50000, cbor_record_bytes: cbor, epcis_json_bytes: json, cbor_over_json: cbor / json });
}

// Aggregation: readings into 5-minute windows (events are rare; what counts is readings per second).
{
  let i = 0;
  let events = 0;
  const rps = opsPerSec(() => {
    events += builder.push(windowed(i++)).length;
  }, MS);
  const b = builder.flush().find((x) => x.kind === 'window');
  const extra = b ? { cbor_record_bytes: record(b, 1).length, epcis_json_bytes: Buffer.byteLength(JSON.stringify(b.event)) } : {};
  emit({ bench: 'events', name: 'window_aggregation', readings_per_s: rps, readings: i, window_events: events, ...extra });
}

// The GS1 event hash ID on its own (canonical pre-hash string + SHA-256).
{
  const e = builder.push(temperature(t++))[0].event;
  emit({ bench: 'events', name: 'event_hash_id', hashes_per_s: opsPerSec(() => eventHashId(e), MS) });
}
emit({ bench: 'events', name: 'env_after', loadavg_1m: loadavg()[0] });
table();
