// Byte-level cases of the MCU link framing (ARCHITECTURE §4.5): COBS, the
// frame body, and the streaming parser under every chunking.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '../../protocol/cbor.js';
import { crc32c } from '../../protocol/crc32c.js';
import { cobsDecode, cobsEncode, cobsMaxEncoded } from '../../firmware-bridge/cobs.js';
import { encodeBody, encodeFrame, FrameType, MAX_BODY, MAX_ENCODED, MAX_PAYLOAD, type Frame } from '../../firmware-bridge/frame.js';
import { FrameParser, type BadFrame } from '../../firmware-bridge/parser.js';
import { LinkError } from '../../firmware-bridge/errors.js';
import { prng, randomBytes } from '../helpers/prng.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

function collect() {
  const frames: Frame[] = [];
  const bad: BadFrame[] = [];
  const p = new FrameParser({ onFrame: (f) => frames.push(f), onBad: (b) => bad.push(b) });
  return { p, frames, bad };
}

test('COBS: the examples of the COBS paper / Wikipedia', () => {
  const cases: [string, string][] = [
    ['00', '0101'],
    ['0000', '010101'],
    ['001100', '01021101'],
    ['11220033', '03112202 33'],
    ['11223344', '0511223344'],
    ['11000000', '02110101 01'],
  ];
  for (const [raw, enc] of cases) {
    assert.is(hex(cobsEncode(unhex(raw))), enc.replace(/\s+/g, ''), raw);
    assert.is(hex(cobsDecode(unhex(enc), 64)), raw, enc);
  }
  // 254 non-zero bytes: one 0xFF block, then a final empty block.
  const b254 = new Uint8Array(254).map((_, i) => i + 1);
  const e254 = cobsEncode(b254);
  assert.is(e254.length, 256);
  assert.is(e254[0], 0xff);
  assert.is(e254[255], 0x01);
  assert.equal(cobsDecode(e254, 300), b254);
  // 255 non-zero bytes.
  const b255 = new Uint8Array(255).map((_, i) => (i % 255) + 1);
  assert.equal(cobsDecode(cobsEncode(b255), 300), b255);
  assert.ok(cobsEncode(b255).length <= cobsMaxEncoded(255));
});

test('COBS: round trip of random bodies, no 0x00 in the encoding', () => {
  const rnd = prng(1);
  for (let i = 0; i < 2000; i++) {
    const b = randomBytes(rnd, Math.floor(rnd() * 1100));
    if (rnd() < 0.3) for (let j = 0; j < b.length; j += 1 + Math.floor(rnd() * 5)) b[j] = 0;
    const e = cobsEncode(b);
    assert.ok(!e.includes(0));
    assert.ok(e.length <= cobsMaxEncoded(b.length));
    assert.equal(cobsDecode(e, b.length), b);
  }
});

test('COBS: invalid encodings are refused', () => {
  assert.throws(() => cobsDecode(unhex('05112233'), 64), (e: unknown) => e instanceof RangeError); // code points past the end
  assert.throws(() => cobsDecode(unhex('031100'), 64), (e: unknown) => e instanceof RangeError); // a zero inside
  assert.throws(() => cobsDecode(unhex('0511223344'), 3), (e: unknown) => e instanceof RangeError); // past the limit
});

test('frame: layout ver ‖ type ‖ seq BE ‖ CBOR ‖ CRC-32C BE, COBS, 0x00', () => {
  const payload = encode(new Map([[1, 7]]));
  const wire = encodeFrame(FrameType.ACK, 0x01020304, payload);
  assert.is(wire[wire.length - 1], 0);
  assert.ok(!wire.subarray(0, -1).includes(0));
  const body = cobsDecode(wire.subarray(0, -1), MAX_BODY);
  assert.is(body[0], 1);
  assert.is(body[1], FrameType.ACK);
  assert.equal([...body.subarray(2, 6)], [1, 2, 3, 4]);
  assert.equal(body.subarray(6, 6 + payload.length), payload);
  const crc = new DataView(body.buffer, body.byteOffset).getUint32(body.length - 4);
  assert.is(crc, crc32c(body.subarray(0, body.length - 4)));
  assert.equal(body, encodeBody(FrameType.ACK, 0x01020304, payload));
});

test('frame: body limit is 1024 bytes', () => {
  encodeFrame(FrameType.READING, 1, new Uint8Array(MAX_PAYLOAD).fill(0x41));
  assert.throws(() => encodeFrame(FrameType.READING, 1, new Uint8Array(MAX_PAYLOAD + 1)), (e: unknown) => e instanceof LinkError && e.kind === 'FRAME');
  assert.throws(() => encodeFrame(FrameType.READING, -1, new Uint8Array(1)), (e: unknown) => e instanceof LinkError);
  assert.throws(() => encodeFrame(FrameType.READING, 2 ** 32, new Uint8Array(1)), (e: unknown) => e instanceof LinkError);
});

const P = encode(new Map<number, unknown>([[1, 't1'], [2, 'temperature'], [3, { celsius: 4.5 }]]));
const F1 = encodeFrame(FrameType.READING, 1, P);
const F2 = encodeFrame(FrameType.READING, 2, P);

test('parser: one frame', () => {
  const { p, frames, bad } = collect();
  p.push(F1);
  assert.is(frames.length, 1);
  assert.is(frames[0].seq, 1);
  assert.is(frames[0].type, FrameType.READING);
  assert.equal(frames[0].payload, P);
  assert.is(bad.length, 0);
});

test('parser: two frames in one chunk (and a leading delimiter)', () => {
  const { p, frames, bad } = collect();
  p.push(Uint8Array.from([0, ...F1, ...F2]));
  assert.equal(frames.map((f) => f.seq), [1, 2]);
  assert.is(bad.length, 0);
  assert.is(p.stats.empty, 1);
});

test('parser: one frame split over many chunks (every split point, and byte by byte)', () => {
  for (let cut = 1; cut < F1.length; cut++) {
    const { p, frames } = collect();
    p.push(F1.subarray(0, cut));
    assert.is(frames.length, 0);
    p.push(F1.subarray(cut));
    assert.is(frames.length, 1, `cut at ${cut}`);
  }
  const { p, frames } = collect();
  const both = Uint8Array.from([...F1, ...F2]);
  for (const b of both) p.push(Uint8Array.of(b));
  assert.equal(frames.map((f) => f.seq), [1, 2]);
});

test('parser: bad CRC is dropped and counted; the next frame still arrives', () => {
  const body = encodeBody(FrameType.READING, 9, P);
  body[8] ^= 0x10;
  const wire = Uint8Array.from([...cobsEncode(body), 0, ...F2]);
  const { p, frames, bad } = collect();
  p.push(wire);
  assert.equal(frames.map((f) => f.seq), [2]);
  assert.equal(bad.map((b) => b.kind), ['crc']);
  assert.is(p.stats.bad.crc, 1);
});

test('parser: oversize blocks (in one chunk and spread over chunks) are skipped to the next 0x00', () => {
  const big = new Uint8Array(MAX_ENCODED + 10).fill(0x55);
  {
    const { p, frames, bad } = collect();
    p.push(Uint8Array.from([...big, 0, ...F1]));
    assert.equal(bad.map((b) => b.kind), ['oversize']);
    assert.is(frames.length, 1);
  }
  {
    const { p, frames, bad } = collect();
    for (let i = 0; i < big.length; i += 100) p.push(big.subarray(i, i + 100));
    p.push(Uint8Array.from([0, ...F1]));
    assert.equal(bad.map((b) => b.kind), ['oversize']);
    assert.ok(bad[0].bytes >= big.length);
    assert.is(frames.length, 1);
  }
  {
    // A valid COBS block that decodes to more than 1024 bytes.
    const body = new Uint8Array(MAX_BODY + 1).fill(7);
    const enc = cobsEncode(body);
    const { p, frames, bad } = collect();
    p.push(Uint8Array.from([...enc, 0, ...F1]));
    assert.equal(bad.map((b) => b.kind), ['oversize']);
    assert.is(frames.length, 1);
  }
});

test('parser: COBS errors, short bodies, foreign versions and unknown types are counted by kind', () => {
  const { p, frames, bad } = collect();
  p.push(unhex('0511223300')); // code byte past the end
  p.push(Uint8Array.from([...cobsEncode(unhex('0110000000')), 0])); // 5-byte body
  p.push(Uint8Array.from([...cobsEncode(encodeBody(FrameType.READING, 3, P, 2)), 0])); // ver 2
  p.push(Uint8Array.from([...cobsEncode(encodeBody(0x55, 3, P)), 0])); // unknown type
  p.push(F1);
  assert.equal(bad.map((b) => b.kind), ['cobs', 'short', 'version', 'type']);
  assert.is(bad[2].version, 2);
  assert.is(bad[3].type, 0x55);
  assert.equal(frames.map((f) => f.seq), [1]);
  assert.equal(p.stats.bad, { cobs: 1, short: 1, crc: 0, oversize: 0, version: 1, type: 1 });
  assert.is(p.badTotal, 4);
});

test('parser: garbage between frames and a truncated frame cost only themselves and their neighbour', () => {
  const { p, frames } = collect();
  p.push(Uint8Array.from([0x13, 0x37, 0xff, 0, ...F1, ...F1.subarray(0, 10), ...F2, ...F1]));
  // The partial F1 swallows F2 (no delimiter between them); the last F1 arrives.
  assert.equal(frames.map((f) => f.seq), [1, 1]);
});

test('parser: reset() drops a partial frame', () => {
  const { p, frames, bad } = collect();
  p.push(F1.subarray(0, 5));
  p.reset();
  p.push(F2);
  assert.equal(frames.map((f) => f.seq), [2]);
  assert.is(bad.length, 0);
});

test('parser: the payload handed out is a copy', () => {
  const { p, frames } = collect();
  p.push(F1);
  p.push(F2);
  assert.equal(frames[0].payload, P);
  assert.ok(frames[0].payload.buffer !== frames[1].payload.buffer);
});

test.run();
