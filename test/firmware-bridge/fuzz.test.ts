// Property / fuzz tests (fast-check): ≥ 100k random and ≥ 100k mutated
// inputs to the frame parser, ≥ 100k random payloads and ≥ 100k
// structure-aware CBOR payloads to the message decoders. Invariants: nothing
// but typed errors escapes, the parser never throws and never hands out a
// frame that was not sent, every call returns (no hang: each run is timed).
// Runs: FUZZ_RUNS (default 100000) per property; seed FUZZ_SEED.
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '../../protocol/cbor.js';
import { CborError, ValidationError } from '../../protocol/errors.js';
import { encodeFrame, FrameType, type Frame, type FrameTypeCode } from '../../firmware-bridge/frame.js';
import { decodeMessage, encodeMessage, type Message } from '../../firmware-bridge/messages.js';
import { FrameParser } from '../../firmware-bridge/parser.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 100_000);
const SEED = Number(process.env.FUZZ_SEED ?? 20240611);
const TYPES = Object.values(FrameType) as FrameTypeCode[];
// A hang detector, not a speed test (that is bench/link.ts): generous enough
// for GC pauses on a loaded 2-core CI machine, short enough to catch a loop.
const MAX_CALL_MS = 10_000;

const isTyped = (e: unknown) => e instanceof CborError || e instanceof ValidationError;

function timed<T>(fn: () => T): T {
  const t0 = performance.now();
  const r = fn();
  const ms = performance.now() - t0;
  if (ms > MAX_CALL_MS) throw new Error(`call took ${ms.toFixed(0)} ms`);
  return r;
}

/** Decodes a frame's message; true when it decoded, false on a typed error; throws otherwise. */
function tryDecode(f: Pick<Frame, 'type' | 'payload'>): boolean {
  try {
    decodeMessage(f);
    return true;
  } catch (e) {
    if (!isTyped(e)) throw new Error(`untyped error from decodeMessage: ${(e as Error)?.stack ?? e}`);
    return false;
  }
}

const chunking = fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 20 });
function feed(p: FrameParser, bytes: Uint8Array, cuts: number[]): void {
  let i = 0;
  let k = 0;
  while (i < bytes.length) {
    const n = cuts[k++ % cuts.length];
    p.push(bytes.subarray(i, i + n));
    i += n;
  }
}

test(`parser: ${RUNS} random byte streams in random chunks`, () => {
  let frames = 0;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1400 }), chunking, (bytes, cuts) => {
      const p = new FrameParser({ onFrame: (f) => ((frames++, tryDecode(f))) });
      timed(() => feed(p, bytes, cuts));
      assert.ok(p.stats.bytes === bytes.length);
    }),
    { numRuns: RUNS, seed: SEED },
  );
  // Random bytes almost never make a valid CRC-32C frame.
  assert.ok(frames < 5, `${frames} random frames passed the CRC`);
});

// Valid frames of every type, to mutate.
const sampleMsgs: Message[] = [
  { type: 'HELLO', versions: [1], bootId: 99, firmware: 'fw/1', sensors: [{ id: 't1', kind: 'temperature' }], monoMs: 5, pending: [{ bootId: 98, firstSeq: 3 }] },
  { type: 'HELLO_ACK', version: 1, time: 1_700_000_000_000, config: { version: 1, settings: { rate_hz: 5 } } },
  { type: 'READING', sensor: 't1', kind: 'temperature', values: { celsius: 4.5 }, monoMs: 1000, time: 1_700_000_000_000 },
  { type: 'EVENT', sensor: 'r1', kind: 'rfid', values: { epcs: ['urn:epc:id:sgtin:0614141.107346.2017'] }, bootId: 3 },
  { type: 'ACK', bootId: 99, seq: 12 },
  { type: 'NACK', bootId: 99, seq: 12, reason: 1 },
  { type: 'TIME', time: 1_700_000_000_000 },
  { type: 'CONFIG', version: 2, settings: { rate_hz: 1.5, sensors: ['t1'] } },
  { type: 'PING', time: 77 },
  { type: 'PONG', time: 77 },
  { type: 'ERROR', code: 1, message: 'no', versions: [1] },
];
const sampleFrames = sampleMsgs.map((m, i) => encodeMessage(m, i + 1));
const sent = new Set(sampleFrames.map((f, i) => `${i + 1}:${Buffer.from(f).toString('hex')}`));

const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('drop' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('dup' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
);
type Mut = typeof mutation extends fc.Arbitrary<infer T> ? T : never;
function mutate(src: Uint8Array, muts: Mut[]): Uint8Array {
  let b = Array.from(src);
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.op) {
      case 'flip':
        b[at] ^= 1 << m.bit;
        break;
      case 'set':
        b[at] = m.v;
        break;
      case 'drop':
        b.splice(at, m.n);
        break;
      case 'dup':
        b.splice(at, 0, ...b.slice(at, at + m.n));
        break;
      case 'insert':
        b.splice(at, 0, ...m.bytes);
        break;
      case 'cut':
        b = b.slice(0, at);
        break;
    }
  }
  return Uint8Array.from(b);
}

test(`parser: ${RUNS} mutated streams of valid frames; only sent frames come out, intact ones always do`, () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: sampleFrames.length - 1 }), { minLength: 1, maxLength: 8 }), fc.array(mutation, { maxLength: 4 }), chunking, (picks, muts, cuts) => {
      const stream = Uint8Array.from(picks.flatMap((i) => [...sampleFrames[i]]));
      const bytes = mutate(stream, muts);
      const out: Frame[] = [];
      const p = new FrameParser({ onFrame: (f) => out.push(f) });
      timed(() => feed(p, bytes, cuts));
      for (const f of out) {
        const again = encodeFrame(f.type, f.seq, f.payload);
        assert.ok(sent.has(`${f.seq}:${Buffer.from(again).toString('hex')}`), 'a frame that was never sent came out');
        assert.ok(tryDecode(f), 'a sent frame must decode');
      }
      if (muts.length === 0) assert.is(out.length, picks.length);
      assert.ok(out.length + p.badTotal <= picks.length + muts.length * 17 + 1);
    }),
    { numRuns: RUNS, seed: SEED + 1 },
  );
});

test(`decoders: ${RUNS} random payloads for every frame type`, () => {
  fc.assert(
    fc.property(fc.constantFrom(...TYPES), fc.uint8Array({ maxLength: 200 }), (type, payload) => {
      timed(() => tryDecode({ type, payload }));
    }),
    { numRuns: RUNS, seed: SEED + 2 },
  );
});

// Structure-aware: CBOR maps with small integer keys and plausible values.
const leaf = fc.oneof(
  fc.integer({ min: -5, max: 2 ** 32 + 5 }),
  fc.constantFrom(0, 1, 2, 3, 255, 256, 2 ** 32 - 1, Number.MAX_SAFE_INTEGER),
  fc.double({ noNaN: false }),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 70 }),
  fc.constantFrom('temperature', 'humidity', 'shock', 'door', 'gps', 'rfid', 'alarm', 'mcu', 'gps', 't1', '2d', '3d'),
  fc.uint8Array({ maxLength: 8 }),
);
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, leaf, fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.constantFrom('celsius', 'percent', 'g', 'x', 'open', 'lat', 'lon', 'fix', 'epcs', 'code', 'rate_hz', 'Q'), tie('v'), { maxKeys: 4 })),
})).v;
const payloadMap = fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), value), { maxLength: 9 }).map((kv) => new Map(kv));

test(`decoders: ${RUNS} structure-aware CBOR payloads`, () => {
  let ok = 0;
  fc.assert(
    fc.property(fc.constantFrom(...TYPES), payloadMap, (type, m) => {
      let payload: Uint8Array;
      try {
        payload = encode(m);
      } catch {
        return; // not encodable (e.g. unsafe integers): nothing to decode
      }
      if (timed(() => tryDecode({ type, payload }))) ok++;
    }),
    { numRuns: RUNS, seed: SEED + 3 },
  );
  assert.ok(ok > 0, 'some generated payloads should be valid messages');
});

test.run();
