// The link session (gateway side) against the firmware simulator (MCU side),
// wired back to back in memory with optional faults: handshake and version
// negotiation, ACK only after durability, dedupe across gateway restarts,
// NACK paths, heartbeat, TIME and CONFIG. Real timers with short intervals;
// no assertion on timing (waits have generous limits).
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Reading } from '../../protocol/reading.js';
import { FileDedupeStore, MemoryDedupeStore, type DedupeStore } from '../../firmware-bridge/dedupe.js';
import { LinkError } from '../../firmware-bridge/errors.js';
import { FaultInjector } from '../../firmware-bridge/faults.js';
import { GatewaySession, type DeliverResult, type GatewaySessionOptions } from '../../firmware-bridge/session.js';
import { FirmwareSimulator, type SimulatorOptions } from '../../firmware-bridge/simulator.js';
import { encodeMessage } from '../../firmware-bridge/messages.js';
import { cobsDecode } from '../../firmware-bridge/cobs.js';
import { FrameType } from '../../firmware-bridge/frame.js';
import { prng } from '../helpers/prng.js';
import { tempDir, waitUntil } from '../helpers/proc.js';

const live = new Set<() => Promise<void>>();
test.after.each(async () => {
  for (const stop of live) await stop().catch(() => {});
  live.clear();
});

interface Rig {
  sim: FirmwareSimulator;
  gw: GatewaySession;
  delivered: Reading[];
  log: Record<string, unknown>[];
  wire: { up: boolean; toGw: (b: Uint8Array) => Uint8Array; toSim: (b: Uint8Array) => Uint8Array };
  /** Replaces the gateway (a restart) with the same dedupe store. */
  restartGateway(): Promise<void>;
  stop(): Promise<void>;
}

async function rig(o: { sim?: Partial<SimulatorOptions>; gw?: Partial<GatewaySessionOptions>; store?: DedupeStore; deliver?: (r: Reading[]) => Promise<void | DeliverResult> } = {}): Promise<Rig> {
  const delivered: Reading[] = [];
  const log: Record<string, unknown>[] = [];
  const wire = { up: true, toGw: (b: Uint8Array) => b, toSim: (b: Uint8Array) => b };
  const store = o.store ?? new MemoryDedupeStore();
  const deliver = o.deliver ?? (async (rs: Reading[]) => void delivered.push(...rs));
  let gw!: GatewaySession;
  const makeGw = async () => {
    const g = new GatewaySession({ pingIntervalMs: 200, deadAfterMs: 800, dedupeFlushMs: 20, ...o.gw, dedupe: store, deliver, send: (b) => wire.up && setImmediate(() => sim.receive(wire.toSim(b))) });
    await g.open();
    g.on('linkError', () => {});
    g.linkUp();
    return g;
  };
  const sim = new FirmwareSimulator({
    rateHz: 400,
    retransmitMs: 300,
    helloIntervalMs: 100,
    window: 64,
    log: (x) => log.push(x),
    ...o.sim,
    send: (b) => {
      if (wire.up) setImmediate(() => gw.receive(wire.toGw(b)));
      return true;
    },
  });
  gw = await makeGw();
  sim.start();
  live.add(() => Promise.all([sim.stop(), gw.close()]).then(() => {}));
  const r: Rig = {
    sim,
    get gw() {
      return gw;
    },
    delivered,
    log,
    wire,
    async restartGateway() {
      await gw.close();
      gw = await makeGw();
    },
    async stop() {
      await sim.stop();
      await gw.close();
    },
  } as Rig;
  return r;
}

/** Every created reading (minus refused ones) delivered exactly once. */
function exactlyOnce(r: Rig) {
  const created = r.log.filter((x) => x.event === 'created').map((x) => `${x.boot_id}:${x.seq}`);
  const rejected = new Set(r.log.filter((x) => x.event === 'rejected').map((x) => `${x.boot_id}:${x.seq}`));
  const got = r.delivered.map((d) => `${d.bootId}:${d.seq}`);
  const uniq = new Set(got);
  assert.is(uniq.size, got.length, `duplicates delivered: ${got.length - uniq.size}`);
  const want = created.filter((k) => !rejected.has(k));
  const missing = want.filter((k) => !uniq.has(k));
  assert.equal(missing, [], 'created but never delivered');
  assert.is(got.length, want.length);
}

test('handshake, in-order delivery, every reading exactly once, ring drained', async () => {
  const r = await rig({ sim: { maxReadings: 300 } });
  const hello = await new Promise((res) => r.gw.once('hello', res));
  assert.ok(hello);
  await waitUntil(() => r.sim.idle && r.sim.counters.created === 300, 20_000, 'all acked');
  exactlyOnce(r);
  assert.is(r.gw.version, 1);
  const kinds = new Set(r.delivered.map((d) => d.kind));
  assert.equal([...kinds].sort(), ['door', 'gps', 'humidity', 'rfid', 'shock', 'temperature']);
  assert.ok(r.delivered.every((d) => d.time !== null), 'times from the MCU clock (TIME in HELLO_ACK) or GPS');
  await r.stop();
});

test('ACK only after the durability promise resolves', async () => {
  let release!: () => void;
  const gate = new Promise<void>((res) => (release = res));
  const got: Reading[] = [];
  const r = await rig({ sim: { maxReadings: 20 }, deliver: async (rs) => { got.push(...rs); await gate; } });
  await waitUntil(() => got.length > 0, 10_000, 'first delivery');
  await new Promise((res) => setTimeout(res, 400));
  assert.is(r.sim.counters.acked, 0, 'nothing may be acknowledged before the promise resolves');
  assert.ok(r.sim.counters.retransmits >= 0);
  release();
  await waitUntil(() => r.sim.idle && r.sim.counters.created === 20, 10_000, 'acked after durability');
  const keys = got.map((x) => `${x.bootId}:${x.seq}`);
  assert.is(new Set(keys).size, 20);
  await r.stop();
});

test('version negotiation failure names both sides versions', async () => {
  const errors: LinkError[] = [];
  const remote: unknown[] = [];
  const r = await rig({ sim: { versions: [2, 3], maxReadings: 5 } });
  r.gw.on('linkError', (e: LinkError) => errors.push(e));
  r.sim.on('remoteError', (m) => remote.push(m));
  await waitUntil(() => errors.length > 0 && remote.length > 0, 10_000, 'version error');
  const e = errors[0];
  assert.is(e.kind, 'VERSION');
  assert.match(e.message, /versions 2, 3/);
  assert.match(e.message, /this gateway speaks 1/);
  assert.equal((remote[0] as { versions: number[] }).versions, [1]);
  assert.is(r.gw.state, 'waiting');
  assert.is(r.delivered.length, 0);
  await r.stop();
});

test('dedupe by (boot_id, seq) persists across gateway restarts (file store, lost ACKs)', async () => {
  const dir = tempDir('iscm-dedupe-');
  const store = new FileDedupeStore(join(dir, 'link-state.json'));
  const r = await rig({ store, sim: { maxReadings: 200, rateHz: 200 } });
  // Lose every ACK for a while: the gateway stores, the MCU keeps resending.
  const toSim = r.wire.toSim;
  r.wire.toSim = (b) => (cobsDecode(b.subarray(0, -1), 2048)[1] === FrameType.ACK ? new Uint8Array(0) : b);
  await waitUntil(() => r.delivered.length >= 64, 20_000, 'a window delivered');
  await new Promise((res) => setTimeout(res, 700)); // the MCU resends its unacked window meanwhile
  assert.is(r.delivered.length, 64, 'resent frames were duplicates');
  r.wire.toSim = toSim;
  r.wire.up = false;
  await r.restartGateway();
  r.wire.up = true;
  await waitUntil(() => r.sim.idle && r.sim.counters.created === 200, 30_000, 'all acked after the restart');
  exactlyOnce(r);
  // The save is coalesced, off the ACK path: wait for it.
  await waitUntil(async () => (await store.load())?.boots.some(([b, s]) => b === r.sim.bootId && s === 200), 10_000, 'the table saved');
  await r.stop();
});

test('noise both ways (5 % of frames), gaps and reboots: exactly once', async () => {
  const rnd = prng(42);
  const f1 = new FaultInjector(0.05, rnd);
  const f2 = new FaultInjector(0.05, rnd);
  const r = await rig({ sim: { maxReadings: 1500, rateHz: 600, random: rnd } });
  r.wire.toGw = (b) => f1.frame(b);
  r.wire.toSim = (b) => f2.frame(b);
  await waitUntil(() => r.sim.counters.created >= 400, 20_000, 'some created');
  r.sim.reboot();
  await waitUntil(() => r.sim.counters.created >= 900, 20_000, 'more created');
  r.sim.reboot();
  await waitUntil(() => r.sim.idle && r.sim.counters.created === 1500, 60_000, 'all acked');
  exactlyOnce(r);
  const st = r.gw.stats;
  assert.ok(st.reboots >= 2, 'reboots seen');
  assert.ok(Object.values(st.badFrames).reduce((a, b) => a + b, 0) > 0, 'faults were injected');
  assert.ok(new Set(r.delivered.map((d) => d.bootId)).size >= 3);
  await r.stop();
});

test('reboot with unacked data: old-boot readings keep their boot_id and arrive once', async () => {
  const r = await rig({ sim: { maxReadings: 100, rateHz: 1000 } });
  r.wire.up = false; // the gateway hears nothing for a while
  await waitUntil(() => r.sim.counters.created === 100, 10_000, 'created');
  const firstBoot = r.sim.bootId;
  r.sim.reboot();
  r.wire.up = true;
  await waitUntil(() => r.sim.idle, 20_000, 'all acked');
  exactlyOnce(r);
  assert.ok(r.delivered.every((d) => d.bootId === firstBoot));
  // GPS readings carry the receiver's time; the others had no MCU clock and
  // come from an earlier boot, so the gateway cannot date them.
  for (const d of r.delivered) {
    if (d.kind === 'gps') assert.is(d.timeSource, 'gps');
    else assert.ok((d.timeSource === 'none' && d.time === null) || d.timeSource === 'mcu', JSON.stringify(d));
  }
  await r.stop();
});

test('an invalid reading is NACKed INVALID, dropped by the MCU, and covered by later ACKs', async () => {
  const r = await rig({ sim: { maxReadings: 0 } });
  await new Promise((res) => r.gw.once('hello', res));
  const boot = r.sim.bootId;
  const invalid: unknown[] = [];
  r.gw.on('invalid', (x) => invalid.push(x));
  // Hand-made frames from the MCU: seq 1 valid, seq 2 out of range, seq 3 valid.
  const send = (seq: number, celsius: number) => r.gw.receive(encodeMessage({ type: 'READING', sensor: 't1', kind: 'temperature', values: { celsius } }, seq));
  const sent: Uint8Array[] = [];
  const origSend = (r.gw as unknown as { o: { send: (b: Uint8Array) => void } }).o.send;
  (r.gw as unknown as { o: { send: (b: Uint8Array) => void } }).o.send = (b) => {
    sent.push(b);
    origSend(b);
  };
  send(1, 5);
  send(2, 5000);
  send(3, 6);
  await waitUntil(() => r.delivered.length === 2, 5000, 'two delivered');
  assert.equal(r.delivered.map((d) => d.seq), [1, 3]);
  assert.is(invalid.length, 1);
  await waitUntil(() => r.gw.table.get(boot) === 3, 5000, 'durable through 3');
  // A resend of 2 is a duplicate now.
  send(2, 5000);
  await new Promise((res) => setTimeout(res, 50));
  assert.is(r.delivered.length, 2);
  assert.is(r.gw.stats.invalid, 1);
  await r.stop();
});

test('a refused delivery (journal full) is not acknowledged; the MCU resends and it lands once', async () => {
  let refuse = 3;
  const got: Reading[] = [];
  const r = await rig({
    sim: { maxReadings: 50 },
    deliver: async (rs) => {
      if (refuse-- > 0) throw new Error('journal quota reached');
      got.push(...rs);
    },
  });
  const refused: unknown[] = [];
  r.gw.on('refused', (e) => refused.push(e));
  await waitUntil(() => r.sim.idle && r.sim.counters.created === 50, 30_000, 'all acked');
  assert.ok(refused.length >= 1);
  assert.is(new Set(got.map((x) => `${x.bootId}:${x.seq}`)).size, 50);
  assert.is(got.length, 50);
  await r.stop();
});

test('heartbeat: a silent link is declared dead, and alive again when bytes flow', async () => {
  const r = await rig({ sim: { maxReadings: 0 } });
  await new Promise((res) => r.gw.once('hello', res));
  const dead = new Promise<LinkError>((res) => r.gw.once('dead', res));
  r.wire.up = false;
  const e = await dead;
  assert.is(e.kind, 'DEAD_LINK');
  const alive = new Promise((res) => r.gw.once('alive', res));
  r.wire.up = true;
  await alive;
  assert.ok(r.gw.stats.pongs > 0, 'PINGs were answered');
  await r.stop();
});

test('TIME: readings carry the gateway clock the MCU was given', async () => {
  const skew = 86_400_000;
  const r = await rig({ sim: { maxReadings: 30 }, gw: { now: () => Date.now() + skew } });
  await waitUntil(() => r.sim.idle && r.sim.counters.created === 30, 10_000, 'acked');
  const temps = r.delivered.filter((d) => d.kind === 'temperature');
  assert.ok(temps.length > 0);
  for (const t of temps) {
    assert.is(t.timeSource, 'mcu');
    assert.ok(Math.abs(t.time! - (Date.now() + skew)) < 60_000, 'MCU clock follows the gateway');
  }
  await r.stop();
});

test('CONFIG push: confirmed, refused by the firmware, or no firmware', async () => {
  const r = await rig({ sim: { maxReadings: 0 } });
  await assert_rejects(r.gw.pushConfig({ rate_hz: 5 }), 'NOT_CONNECTED').catch(() => {});
  await new Promise((res) => r.gw.once('hello', res));
  await r.gw.pushConfig({ rate_hz: 0 });
  await assert_rejects(r.gw.pushConfig({ bogus: 1 }), 'REMOTE');
  assert.ok(r.log.some((x) => x.event === 'config'));
  await r.stop();
  const r2 = await rig({ sim: { versions: [9] } });
  await assert_rejects(r2.gw.pushConfig({ rate_hz: 1 }), 'NOT_CONNECTED');
  await r2.stop();
});

async function assert_rejects(p: Promise<unknown>, kind: string) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LinkError, String(e));
    assert.is((e as LinkError).kind, kind);
    return;
  }
  assert.unreachable(`expected a ${kind} rejection`);
}

test('partial acknowledgement: ackThrough holds readings back until acknowledge(); refusedFrom makes the MCU resend from there', async () => {
  // The consumer takes everything but acknowledges only below seq 10 of the
  // first boot (as the light node does for readings held for a trusted time);
  // later it makes 10.. durable and calls acknowledge().
  const taken: Reading[] = [];
  let holdFrom = 10;
  let refuseOnce: number | undefined = 25;
  const r = await rig({
    sim: { maxReadings: 40, rateHz: 200 },
    deliver: async (rs) => {
      const boot = rs[0].bootId;
      const refusedFrom = new Map<number, number>();
      for (const x of rs) {
        if (refuseOnce !== undefined && x.seq === refuseOnce) {
          refusedFrom.set(boot, x.seq);
          refuseOnce = undefined;
          break;
        }
        taken.push(x);
      }
      return { ackThrough: new Map([[boot, holdFrom - 1]]), ...(refusedFrom.size ? { refusedFrom } : {}) };
    },
  });
  await waitUntil(() => r.sim.counters.created === 40 && taken.length >= 39, 20_000, 'every reading taken once (seq 25 after its refusal)');
  await new Promise((res) => setTimeout(res, 500));
  assert.is(r.sim.counters.acked, 9, 'only 1..9 acknowledged while 10.. are held');
  const keys = taken.map((x) => x.seq);
  assert.equal(keys, Array.from({ length: 40 }, (_, i) => i + 1), 'in order, once each: 25 came again after its refusal, nothing else twice');
  assert.ok(r.sim.counters.nacks >= 1, 'the refusal was a NACK');
  holdFrom = 41;
  r.gw.acknowledge(taken[0].bootId, 40);
  await waitUntil(() => r.sim.idle, 10_000, 'the rest acknowledged after acknowledge()');
  assert.is(r.sim.counters.acked, 40);
  r.gw.acknowledge(taken[0].bootId, 1000); // never beyond what was taken
  assert.is(r.gw.table.get(taken[0].bootId), 40);
  await r.stop();
});

test.run();
