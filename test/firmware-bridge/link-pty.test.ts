// Integration over a real pty pair (Debian socat), real processes:
// `iscm-edge sim-firmware` ↔ `iscm-edge firmware listen`, with 1 % noise, the
// simulator rebooting, the listener killed (-9) and restarted, socat killed
// and restarted (the unplug case) and frozen (a hung adapter the OS reports
// nothing about). At the end every reading the simulator created is in the
// capture file exactly once.
// Longer soak: LINK_SOAK_COUNT=100000 (readings) LINK_SOAK_RATE=2000.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseReadingLine } from '../../protocol/reading.js';
import { start, tempDir, waitUntil, type Proc } from '../helpers/proc.js';
import { haveSocat, ptyPair, type PtyPair } from '../helpers/socat.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'runtime/cli/iscm-edge.ts');
const node = (args: string[], name: string): Proc => start(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: root, name });

const COUNT = Number(process.env.LINK_SOAK_COUNT ?? 4000);
const RATE = Number(process.env.LINK_SOAK_RATE ?? 250);

function lines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (haveSocat('firmware-bridge link-pty')) {
  const procs: Proc[] = [];
  const pairs: PtyPair[] = [];
  test.after.each(async () => {
    for (const p of procs.splice(0)) await p.stop(3000).catch(() => {});
    for (const p of pairs.splice(0)) await p.stop().catch(() => {});
  });

  test(`sim ↔ listen over socat: noise 1 %, reboots, listener kill -9, unplug, hung adapter → ${COUNT} readings exactly once`, async () => {
    const dir = tempDir('iscm-link-');
    const pair = await ptyPair(dir);
    pairs.push(pair);
    const out = join(dir, 'capture.jsonl');
    const simLog = join(dir, 'sim.log');
    const listenArgs = ['firmware', 'listen', '--port', pair.b, '--out', out, '--ping-ms', '500', '--dead-ms', '2500'];
    let listener = node(listenArgs, 'listen');
    procs.push(listener);
    await listener.waitFor(/listening/, 30_000);
    const sim = node(['sim-firmware', '--port', pair.a, '--rate', String(RATE), '--count', String(COUNT), '--state', join(dir, 'sim-state.json'), '--log', simLog, '--noise', '0.01', '--reboot-every', '5', '--seed', '7', '--retransmit-ms', '800'], 'sim');
    procs.push(sim);
    await listener.waitFor(/hello boot_id/, 30_000);

    const captured = () => lines(out).length;
    // 1. The listener is killed -9 mid-stream and restarted.
    await waitUntil(() => captured() >= COUNT * 0.15, 120_000, 'first captures');
    await listener.kill9();
    await sleep(1000);
    listener = node(listenArgs, 'listen-2');
    procs.push(listener);
    await listener.waitFor(/listening/, 30_000);

    // 2. Unplug: socat dies (ptys vanish), comes back 1.5 s later under the same names.
    await waitUntil(() => captured() >= COUNT * 0.35, 120_000, 'captures after the listener restart');
    await pair.kill();
    await sleep(1500);
    await pair.restart();

    // 3. A hung adapter: the port stays open, nothing flows, the OS says nothing.
    await waitUntil(() => captured() >= COUNT * 0.55, 120_000, 'captures after the unplug');
    const deaths = () => (listener.output().match(/: dead /g) ?? []).length;
    const before = deaths();
    pair.freeze();
    await waitUntil(() => deaths() > before, 30_000, 'the listener to declare the frozen link dead');
    pair.thaw();

    // 4. Everything arrives.
    await sim.waitFor(new RegExp(`all ${COUNT} readings acknowledged`), 180_000);
    await sim.stop(10_000);
    await listener.stop(10_000);

    const log = lines(simLog).map((l) => JSON.parse(l) as { event: string; boot_id: number; seq: number });
    const created = log.filter((e) => e.event === 'created').map((e) => `${e.boot_id}:${e.seq}`);
    const reboots = log.filter((e) => e.event === 'reboot').length;
    const acked = new Set(log.filter((e) => e.event === 'acked').map((e) => `${e.boot_id}:${e.seq}`));
    const got = lines(out).map((l, i) => parseReadingLine(l, `capture:${i + 1}`));
    const keys = got.map((r) => `${r.bootId}:${r.seq}`);
    const uniq = new Set(keys);
    assert.is(created.length, COUNT, 'the simulator created COUNT readings');
    assert.is(uniq.size, keys.length, `duplicates in the capture: ${keys.length - uniq.size}`);
    const missing = created.filter((k) => !uniq.has(k));
    assert.equal(missing.slice(0, 10), [], `${missing.length} created readings missing from the capture`);
    assert.is(keys.length, created.length, 'nothing in the capture that was not created');
    for (const k of created) assert.ok(acked.has(k), `created but never acknowledged: ${k}`);
    assert.ok(reboots >= 1, `the simulator rebooted (${reboots})`);
    assert.ok(new Set(got.map((r) => r.bootId)).size >= 2, 'readings of several boots');
    // Noise was there and was survived.
    assert.match(sim.output(), /faults \{"flip":\d+/);
    const simOut = sim.output();
    const faults = JSON.parse(simOut.slice(simOut.indexOf('faults ') + 7).split('\n')[0]) as Record<string, number>;
    assert.ok(Object.values(faults).reduce((a, b) => a + b, 0) > 0, 'faults injected');
    process.stderr.write(`     link-pty: ${COUNT} readings, ${reboots} reboots, faults ${JSON.stringify(faults)}\n`);
  });

  test('the simulator killed -9 and restarted on its state file: its unacked ring is delivered, exactly once', async () => {
    const dir = tempDir('iscm-links-');
    const pair = await ptyPair(dir);
    pairs.push(pair);
    const out = join(dir, 'capture.jsonl');
    const simLog = join(dir, 'sim.log');
    const state = join(dir, 'sim-state.json');
    const listener = node(['firmware', 'listen', '--port', pair.b, '--out', out], 'listen');
    procs.push(listener);
    await listener.waitFor(/listening/, 30_000);
    const simArgs = ['sim-firmware', '--port', pair.a, '--state', state, '--log', simLog, '--noise', '0.01', '--seed', '11', '--retransmit-ms', '500'];
    const sim1 = node([...simArgs, '--rate', '300', '--count', '900'], 'sim-1');
    procs.push(sim1);
    await waitUntil(() => lines(out).length >= 300, 60_000, 'first captures');
    await sim1.kill9();
    const sim2 = node([...simArgs, '--rate', '0', '--count', '0'], 'sim-2');
    procs.push(sim2);
    await sim2.waitFor(/all 0 readings acknowledged/, 60_000);
    await sim2.stop(10_000);
    await listener.stop(10_000);
    const log = lines(simLog).map((l) => JSON.parse(l) as { event: string; boot_id: number; seq: number });
    const created = log.filter((e) => e.event === 'created').map((e) => `${e.boot_id}:${e.seq}`);
    const keys = lines(out).map((l, i) => parseReadingLine(l, `capture:${i + 1}`)).map((r) => `${r.bootId}:${r.seq}`);
    const uniq = new Set(keys);
    assert.is(uniq.size, keys.length, 'no duplicates');
    // kill -9 may drop the newest log lines, never a persisted reading: created ⊆ captured.
    assert.equal(created.filter((k) => !uniq.has(k)), []);
    assert.ok(created.length >= 300);
    assert.match(sim2.output(), /linked boot/);
    const state2 = JSON.parse(readFileSync(state, 'utf8')) as { ring: unknown[] };
    assert.is(state2.ring.length, 0, 'ring drained and persisted');
  });

  test('version mismatch end to end: both sides say which versions they speak', async () => {
    const dir = tempDir('iscm-linkv-');
    const pair = await ptyPair(dir);
    pairs.push(pair);
    const listener = node(['firmware', 'listen', '--port', pair.b, '--out', join(dir, 'c.jsonl')], 'listen');
    procs.push(listener);
    const sim = node(['sim-firmware', '--port', pair.a, '--link-versions', '2,3', '--rate', '5'], 'sim');
    procs.push(sim);
    const line = await listener.waitFor(/link_error kind="?VERSION"? message=".*"/, 60_000);
    assert.match(line, /versions 2, 3/);
    assert.match(line, /this gateway speaks 1/);
    await sim.waitFor(/gateway error: .*\(gateway versions 1\)/, 30_000);
    assert.is(lines(join(dir, 'c.jsonl')).length, 0);
  });

  test('listen: usage errors exit 2; a missing port is reported and retried, never a crash', async () => {
    const dir = tempDir('iscm-linku-');
    const bad = node(['firmware', 'listen', '--out', join(dir, 'c.jsonl')], 'listen-usage');
    assert.is(await bad.exited, 2);
    assert.match(bad.output(), /--port PATH is required/);
    const l = node(['firmware', 'listen', '--port', join(dir, 'nope'), '--out', join(dir, 'c.jsonl')], 'listen-enoent');
    procs.push(l);
    await l.waitFor(/fault kind="?NOT_FOUND"?/, 30_000);
    await l.waitFor(/reconnect attempt=3/, 30_000);
    await l.stop();
    assert.is(await l.exited, 0);
  });
}

test.run();
