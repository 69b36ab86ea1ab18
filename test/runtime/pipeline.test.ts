// The pipeline (runtime/node/pipeline.ts): readings → events → records and
// state in one journal unit → acknowledgement. What it promises:
// - a reading is acknowledged only once the unit that took it is durable;
// - readings in an open aggregation window survive a restart (they are in
//   the unit's state), and resent readings are not counted twice;
// - readings held for a trusted time are not acknowledged until their event
//   is durable; a restart makes the firmware resend exactly those;
// - a unit the journal refuses rolls the builder back and refuses the
//   readings to their source (so a resend does not double count);
// - back-pressure and bad readings are answered, never silently dropped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Reading } from '../../protocol/reading.js';
import { decodeRecord, recordHash, GENESIS_PREV } from '../../protocol/record.js';
import { equalBytes } from '../../protocol/bytes.js';
import { parseConfig, type GatewayConfig } from '../../runtime/config/index.js';
import { ManualClock } from '../../runtime/events/index.js';
import { MemoryJournal, MemoryStore, type Journal } from '../../runtime/journal/index.js';
import { memoryLogger } from '../../runtime/ops/log.js';
import { Registry } from '../../runtime/ops/metrics.js';
import { Pipeline } from '../../runtime/node/pipeline.js';
import { decodeNodeState } from '../../runtime/node/unit-state.js';

const TAIL = `
signer: { driver: software, key_file: k.key, passphrase_env: P }
mqtt: { url: "mqtt://127.0.0.1:1883" }
trust: { ledger_keys: [l.pem] }
`;
const T = Date.UTC(2026, 10, 20, 8);
const CFG: GatewayConfig = parseConfig(
  `
device: { id: pipe-1 }
clock: { not_before: "2026-01-01T00:00:00Z", ntp_check: "off", max_held: 5 }
sensors:
  t1: { kind: temperature }
  w1: { kind: temperature, window: five }
windows: { five: { period: 5m, grace: 1s } }
locations: { read_point: "urn:epc:id:sgln:4012345.00001.0" }
` + TAIL,
);

interface Rig {
  journal: Journal;
  pipe: Pipeline;
  acks: [string, number, number][];
  metrics: Registry;
  clock: ManualClock;
}

async function rig(store = new MemoryStore(), o: { clock?: ManualClock; journal?: (j: Journal) => Journal } = {}): Promise<Rig> {
  const base = new MemoryJournal({ deviceId: 'pipe-1', store });
  const journal = o.journal ? o.journal(base) : base;
  await journal.open();
  const clock = o.clock ?? new ManualClock({ now: T + 3_600_000, synced: true });
  const acks: [string, number, number][] = [];
  const metrics = new Registry();
  const pipe = new Pipeline({ deviceId: 'pipe-1', journal, config: CFG, builder: { clock }, log: memoryLogger('warn'), metrics, now: () => T + 3_600_000, onAck: (s, b, q) => acks.push([s, b, q]) });
  await pipe.start();
  return { journal, pipe, acks, metrics, clock };
}

let n = 0;
const reading = (sensor: string, seq: number, at: number | null, celsius = 4, boot = 77, src: 'mcu' | 'gateway' = 'mcu'): Reading =>
  ({ bootId: boot, seq, sensor, kind: 'temperature', time: at === null ? null : T + at, timeSource: at === null ? 'none' : src, values: { celsius: celsius + (n++ % 3) / 10 } }) as Reading;
/** A reading stamped by a gateway clock that is not trusted as a time source (it does not set the clock). */
const stamped = (seq: number, at: number) => reading('t1', seq, at, 4, 77, 'gateway');

async function records(j: Journal): Promise<ReturnType<typeof decodeRecord>[]> {
  const out = [];
  for await (const r of j.records(1)) out.push(decodeRecord(r.bytes));
  return out;
}

test('readings become chained records; the delivery resolves, acknowledged through the last seq, only once durable', async () => {
  const r = await rig();
  const res = await r.pipe.submit('port:mcu', [reading('t1', 1, 1000), reading('t1', 2, 2000), reading('t1', 3, 3000)]);
  assert.equal([...res.ackThrough!], [[77, 3]]);
  assert.is(res.refusedFrom, undefined);
  const recs = await records(r.journal);
  assert.is(recs.length, 3);
  assert.equal(recs.map((x) => x.seq), [1, 2, 3]);
  assert.ok(equalBytes(recs[0].prev, GENESIS_PREV));
  const raw: Uint8Array[] = [];
  for await (const x of r.journal.records(1)) raw.push(x.bytes);
  assert.ok(equalBytes(recs[1].prev, recordHash(raw[0])) && equalBytes(recs[2].prev, recordHash(raw[1])), 'each record links to the hash of the one before');
  assert.equal(recs[0].source, { sensor: 't1', boot_id: 77, seq: 1 }, 'provenance: the MCU boot and frame seq');
  const st = decodeNodeState(r.journal.lastState()!);
  assert.equal(st.positions.get('port:mcu')!.get(77), { acked: 3, consumed: 3, held: new Set() });
});

test('readings in an open window survive a restart (journaled state) and are not counted twice when resent', async () => {
  const store = new MemoryStore();
  const a = await rig(store);
  const res = await a.pipe.submit('port:mcu', [reading('w1', 1, 10_000, 5), reading('w1', 2, 20_000, 6)]);
  assert.equal([...res.ackThrough!], [[77, 2]], 'acknowledged: they are in the state of a durable unit');
  assert.is((await records(a.journal)).length, 0, 'no event yet: the window is open');
  await a.journal.close();
  // Restart. The firmware lost our ACK and resends 1..2, then sends 3 and one past the window.
  const b = await rig(store);
  const res2 = await b.pipe.submit('port:mcu', [reading('w1', 1, 10_000, 5), reading('w1', 2, 20_000, 6), reading('w1', 3, 30_000, 7), reading('w1', 4, 302_000, 8)]);
  assert.equal([...res2.ackThrough!], [[77, 4]]);
  const recs = await records(b.journal);
  assert.is(recs.length, 1, 'the window closed into one event');
  const rep = (recs[0].event as Record<string, any>).sensorElementList[0].sensorReport[0];
  // The window saw 3 readings: 1 and 2 from before the restart, 3 after; not 5.
  assert.is(rep['iscm:count'], 3);
  assert.is(rep.minValue, 5);
  assert.ok(rep.maxValue >= 7 && rep.maxValue < 7.3);
  assert.is(b.metrics.counter('iscm_readings_duplicate_total', '').get({ source: 'port:mcu' }), 2, 'the two resent readings were recognised');
});

test('held readings (no trusted time) are not acknowledged until their event is durable; then onAck carries it', async () => {
  const clock = new ManualClock({ now: 0, synced: false });
  const r = await rig(new MemoryStore(), { clock });
  const res = await r.pipe.submit('port:mcu', [stamped(1, 5000), reading('t1', 2, null), stamped(3, 6000)]);
  assert.equal([...res.ackThrough!], [[77, 1]], 'only seq 1 acknowledged: 2 is held, 3 is behind it');
  assert.is((await records(r.journal)).length, 2, 'seq 1 and 3 have their own time and became events');
  assert.is(r.pipe.pending().held, 1);
  // The clock becomes trusted (NTP): the next tick stamps the held reading.
  clock.setWall(T + 3_600_000, true);
  r.pipe.tick();
  await r.pipe.idle();
  assert.is((await records(r.journal)).length, 3);
  assert.equal(r.acks.at(-1), ['port:mcu', 77, 3], 'acknowledged through 3 once the held event is durable');
  assert.is(r.pipe.pending().held, 0);
});

test('after a restart the firmware resends above the ack point: taken readings are dropped, held ones taken again', async () => {
  const store = new MemoryStore();
  const clock = new ManualClock({ now: 0, synced: false });
  const a = await rig(store, { clock });
  await a.pipe.submit('port:mcu', [stamped(1, 5000), reading('t1', 2, null), stamped(3, 6000)]);
  await a.journal.close();
  const b = await rig(store, { clock: new ManualClock({ now: T + 3_600_000, synced: true }) });
  assert.equal(b.pipe.ackedBoots('port:mcu'), [[77, 1]]);
  const res = await b.pipe.submit('port:mcu', [reading('t1', 2, null), stamped(3, 6000), stamped(4, 7000)]);
  assert.equal([...res.ackThrough!], [[77, 4]]);
  const recs = await records(b.journal);
  assert.is(recs.length, 4, 'seq 2 (held before the restart) and 4 added; 3 not twice');
  assert.is(b.metrics.counter('iscm_readings_duplicate_total', '').get({ source: 'port:mcu' }), 1);
});

test('a unit the journal refuses: the readings are refused to the source and the builder rolls back (no double count after the resend)', async () => {
  let fail = false;
  const r = await rig(new MemoryStore(), {
    journal: (j) =>
      new Proxy(j, {
        get(t, k, recv) {
          if (k === 'appendUnit') return (...a: Parameters<Journal['appendUnit']>) => (fail ? Promise.reject(new Error('injected: disk full')) : t.appendUnit(...a));
          const v = Reflect.get(t, k, recv);
          return typeof v === 'function' ? v.bind(t) : v;
        },
      }),
  });
  await r.pipe.submit('port:mcu', [reading('w1', 1, 10_000, 5)]);
  fail = true;
  const res = await r.pipe.submit('port:mcu', [reading('w1', 2, 20_000, 6), reading('w1', 3, 30_000, 7)]);
  assert.equal([...res.refusedFrom!], [[77, 2]], 'refused from the first reading of the failed unit');
  assert.equal([...res.ackThrough!], [[77, 1]]);
  fail = false;
  await r.pipe.idle();
  const res2 = await r.pipe.submit('port:mcu', [reading('w1', 2, 20_000, 6), reading('w1', 3, 30_000, 7), reading('w1', 4, 302_000, 8)]);
  assert.equal([...res2.ackThrough!], [[77, 4]]);
  assert.is(res2.refusedFrom, undefined);
  const recs = await records(r.journal);
  assert.is(recs.length, 1);
  assert.is((recs[0].event as Record<string, any>).sensorElementList[0].sensorReport[0]['iscm:count'], 3, 'three readings in the window, not five');
  assert.is(r.metrics.counter('iscm_unit_failures_total', '').get(), 1);
});

test('bad readings are taken, logged and counted (the link moves on); back-pressure refuses', async () => {
  const r = await rig();
  const bad = { ...reading('t1', 1, 1000), sensor: 'nope' } as Reading;
  const res = await r.pipe.submit('port:mcu', [bad, reading('t1', 2, 2000)]);
  assert.equal([...res.ackThrough!], [[77, 2]]);
  assert.is((await records(r.journal)).length, 1);
  assert.is(r.metrics.counter('iscm_readings_invalid_total', '').get({ source: 'port:mcu' }), 1);
  const bp = new Proxy(r.journal, { get: (t, k, recv) => (k === 'backpressure' ? () => ({ state: 'high', reason: 'quota', usedBytes: 1, capacityBytes: 1 }) : Reflect.get(t, k, recv)) });
  const p2 = new Pipeline({ deviceId: 'pipe-1', journal: bp, config: CFG, builder: { clock: r.clock }, log: memoryLogger('warn'), metrics: r.metrics });
  await p2.start();
  const res2 = await p2.submit('port:mcu', [reading('t1', 3, 3000)]);
  assert.equal([...res2.refusedFrom!], [[77, 3]]);
  assert.is(r.metrics.counter('iscm_readings_refused_total', '').get({ source: 'port:mcu', reason: 'backpressure' }), 1);
});

test('on a real FileJournal (every caller hash checked): window state and records survive a reopen', async () => {
  const { FileJournal } = await import('../../runtime/journal/index.js');
  const { tempDir } = await import('../helpers/proc.js');
  const dir = tempDir('iscm-pipe-file-');
  const mk = () => new FileJournal({ dir, deviceId: 'pipe-1', maxBytes: 16 << 20, verifyHashes: true });
  const clock = new ManualClock({ now: T + 3_600_000, synced: true });
  const run = async () => {
    const j = mk();
    await j.open();
    const pipe = new Pipeline({ deviceId: 'pipe-1', journal: j, config: CFG, builder: { clock }, log: memoryLogger('warn'), metrics: new Registry(), now: () => T + 3_600_000 });
    await pipe.start();
    return { j, pipe };
  };
  const a = await run();
  assert.equal([...(await a.pipe.submit('port:mcu', [reading('t1', 1, 1000), reading('w1', 2, 10_000, 5), reading('w1', 3, 20_000, 6)])).ackThrough!], [[77, 3]]);
  await a.j.close();
  const b = await run();
  await b.pipe.submit('port:mcu', [reading('w1', 4, 302_000, 7), reading('t1', 5, 303_000)]);
  const recs = await records(b.j);
  assert.equal(recs.map((r) => r.seq), [1, 2, 3]);
  const win = recs.find((r) => (r.event as Record<string, any>).sensorElementList[0].sensorReport[0]['iscm:count'] !== undefined)!;
  assert.is((win.event as Record<string, any>).sensorElementList[0].sensorReport[0]['iscm:count'], 2, 'the window kept its readings across the reopen');
  await b.j.close();
});

test.run();
