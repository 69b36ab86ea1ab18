// Message codecs of the MCU link: every type round-trips; strict decoding
// refuses unknown keys, wrong types and out-of-range values with typed errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '../../protocol/cbor.js';
import { CborError, IscmError, ValidationError } from '../../protocol/errors.js';
import { encodeFrame, FrameType, type FrameTypeCode } from '../../firmware-bridge/frame.js';
import { decodeMessage, encodeMessage, encodePayload, NackReason, type Message } from '../../firmware-bridge/messages.js';
import { FrameParser } from '../../firmware-bridge/parser.js';

const samples: Message[] = [
  { type: 'HELLO', versions: [1, 2], bootId: 0xdeadbeef, firmware: 'acme-th/2.3.1', sensors: [{ id: 't1', kind: 'temperature' }, { id: 'g1', kind: 'gps' }], device: 'SN-0042', monoMs: 1234, pending: [{ bootId: 7, firstSeq: 41 }], time: 1_700_000_000_000 },
  { type: 'HELLO', versions: [1], bootId: 0, firmware: 'x', sensors: [] },
  { type: 'HELLO_ACK', version: 1, time: 1_700_000_000_123, config: { version: 3, settings: { rate_hz: 2.5, sensors: ['t1', 'h1'], led: true } }, gateway: 'gw-1' },
  { type: 'HELLO_ACK', version: 1, time: 0 },
  { type: 'READING', sensor: 't1', kind: 'temperature', values: { celsius: -18.25 }, time: 1_700_000_000_000, monoMs: 99, timeSource: 'mcu' },
  { type: 'READING', sensor: 'g1', kind: 'gps', values: { lat: 52.5, lon: 13.4, fix: '3d', alt_m: 41.5, sats: 9 }, time: 1_700_000_000_000, timeSource: 'gps' },
  { type: 'EVENT', sensor: 'r1', kind: 'rfid', values: { epcs: ['urn:epc:id:sgtin:0614141.107346.2017'], antenna: 2 }, bootId: 77, monoMs: 5 },
  { type: 'EVENT', sensor: 'd1', kind: 'door', values: { open: true, door: 'rear' } },
  { type: 'EVENT', sensor: 's1', kind: 'shock', values: { g: 3.5, x: -1, y: 0.5, z: 1 } },
  { type: 'READING', sensor: 'a1', kind: 'alarm', values: { code: 'BATT_LOW', message: 'battery 5%' } },
  { type: 'ACK', bootId: 0xffffffff, seq: 0xffffffff },
  { type: 'NACK', bootId: 1, seq: 5, reason: NackReason.GAP },
  { type: 'NACK', bootId: 1, seq: 5, reason: NackReason.INVALID, message: 'values.celsius: out of range' },
  { type: 'TIME', time: 1_700_000_000_000 },
  { type: 'TIME' },
  { type: 'CONFIG', version: 4, settings: { rate_hz: 1 } },
  { type: 'CONFIG', version: 4 },
  { type: 'PING', time: 5 },
  { type: 'PONG' },
  { type: 'ERROR', code: 1, message: 'unsupported version', ref: 3, versions: [2, 3] },
];

test('every message type round-trips through a wire frame', () => {
  for (const m of samples) {
    const got: Message[] = [];
    const p = new FrameParser({ onFrame: (f) => got.push(decodeMessage(f)) });
    p.push(encodeMessage(m, 42));
    assert.is(got.length, 1, m.type);
    assert.equal(got[0], m, m.type);
  }
});

test('payloads are deterministic CBOR maps with integer keys', () => {
  const b = encodePayload({ type: 'ACK', bootId: 1, seq: 2 });
  assert.is(Buffer.from(b).toString('hex'), 'a201010202');
  assert.is(Buffer.from(encodePayload({ type: 'PING' })).toString('hex'), 'a0');
});

const typed = (e: unknown) => e instanceof IscmError && (e instanceof CborError || e instanceof ValidationError);
const dec = (type: FrameTypeCode, v: unknown) => decodeMessage({ type, payload: encode(v) });

test('strict: unknown keys, missing keys, wrong types, out-of-range values', () => {
  const bad: [FrameTypeCode, unknown][] = [
    [FrameType.ACK, new Map([[1, 1]])],
    [FrameType.ACK, new Map([[1, 1], [2, 2], [9, 0]])],
    [FrameType.ACK, new Map([[1, -1], [2, 2]])],
    [FrameType.ACK, new Map([[1, 2 ** 32], [2, 2]])],
    [FrameType.ACK, [1, 2]],
    [FrameType.NACK, new Map([[1, 1], [2, 2], [3, 9]])],
    [FrameType.HELLO, new Map<number, unknown>([[1, []], [2, 1], [3, 'fw'], [4, []]])],
    [FrameType.HELLO, new Map<number, unknown>([[1, [1]], [2, 1], [3, ''], [4, []]])],
    [FrameType.HELLO, new Map<number, unknown>([[1, [1]], [2, 1], [3, 'fw'], [4, [['t 1', 'temperature']]]])],
    [FrameType.HELLO, new Map<number, unknown>([[1, [1]], [2, 1], [3, 'fw'], [4, [['t1', 'weather']]]])],
    [FrameType.READING, new Map<number, unknown>([[1, 't1'], [2, 'temperature'], [3, { celsius: 2000 }]])],
    [FrameType.READING, new Map<number, unknown>([[1, 't1'], [2, 'temperature'], [3, { kelvin: 2 }]])],
    [FrameType.READING, new Map<number, unknown>([[1, 't1'], [2, 'gps'], [3, { lat: 1, lon: 2 }]])],
    [FrameType.READING, new Map<number, unknown>([[1, 't1'], [2, 'temperature'], [3, { celsius: 2 }], [7, 'mcu']])],
    [FrameType.READING, new Map<number, unknown>([[1, 't1'], [2, 'temperature'], [3, new Map([[1, 2]])]])],
    [FrameType.READING, new Map<number, unknown>([[1, 't1'], [2, 'temperature'], [3, { celsius: new Uint8Array(2) }]])],
    [FrameType.CONFIG, new Map<number, unknown>([[1, 1], [2, { 'Bad-Key': 1 }]])],
    [FrameType.CONFIG, new Map<number, unknown>([[1, 1], [2, { k: { nested: 1 } }]])],
    [FrameType.ERROR, new Map<number, unknown>([[1, 1]])],
  ];
  for (const [t, v] of bad) assert.throws(() => dec(t, v), typed, JSON.stringify([t, String(v)]));
  // Not CBOR / not canonical / trailing bytes.
  for (const raw of ['', 'ff', 'a1010', 'a20102010102', 'b80101020102', 'a2010201']) {
    assert.throws(() => decodeMessage({ type: FrameType.ACK, payload: new Uint8Array(Buffer.from(raw, 'hex')) }), typed, raw);
  }
  assert.throws(() => decodeMessage({ type: 0x55 as FrameTypeCode, payload: encode(new Map()) }), typed);
});

test('oversize payloads cannot be framed', () => {
  const long = 'x'.repeat(1100);
  assert.throws(() => encodeMessage({ type: 'ERROR', code: 1, message: long.slice(0, 200), versions: Array(16).fill(1) }, 1).length && encodeFrame(FrameType.ERROR, 1, new Uint8Array(1100)), (e: unknown) => e instanceof IscmError);
});

test.run();
