import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode as xdecode } from 'cbor-x';
import { decode, encode, Tag } from '../../protocol/cbor.js';
import { IscmError, ValidationError } from '../../protocol/errors.js';
import { concatBytes, toHex } from '../../protocol/bytes.js';
import { decodeRecord, encodeRecord, recordHash, GENESIS_PREV } from '../../protocol/record.js';
import { decodeBatchHeader, encodeBatchHeader, decodeBatchMessage, encodeBatchMessage, type BatchHeader } from '../../protocol/batch.js';
import { decodeReceiptMsg, encodeReceiptMsg, ReceiptStatus } from '../../protocol/receipt-msg.js';
import { topics } from '../../protocol/topics.js';
import { recordChain, sampleEvent } from '../helpers/fixtures.js';

const isField = (field: RegExp) => (e: unknown) => e instanceof ValidationError && field.test(e.field ?? '');
const isTyped = (e: unknown) => e instanceof IscmError;

test('record: round trip, exact bytes, integer keys in order, hash chain', () => {
  const { records, bytes } = recordChain('reefer-07', 3);
  for (let i = 0; i < 3; i++) {
    const back = decodeRecord(bytes[i]);
    assert.equal(back, records[i]);
    assert.is(toHex(encodeRecord(back)), toHex(bytes[i]));
  }
  assert.is(toHex(decodeRecord(bytes[1]).prev), toHex(recordHash(bytes[0])));
  assert.is(bytes[0][0], 0xa6, 'a map of 6 entries');
  assert.ok(bytes[0].length > 450 && bytes[0].length < 800, `sample record is ~600 bytes (${bytes[0].length})`);
});

test('record: each field is validated with its name', () => {
  const base = { deviceId: 'dev-1', seq: 1, prev: GENESIS_PREV, time: 1, event: { type: 'ObjectEvent' } };
  assert.throws(() => encodeRecord({ ...base, deviceId: 'Dev 1' }), isField(/device_id/));
  assert.throws(() => encodeRecord({ ...base, deviceId: 'a'.repeat(65) }), isField(/device_id/));
  assert.throws(() => encodeRecord({ ...base, seq: 0 }), isField(/seq/));
  assert.throws(() => encodeRecord({ ...base, seq: 1.5 }), isField(/seq/));
  assert.throws(() => encodeRecord({ ...base, prev: new Uint8Array(31) }), isField(/prev/));
  assert.throws(() => encodeRecord({ ...base, time: -1 }), isField(/time/));
  assert.throws(() => encodeRecord({ ...base, event: { x: NaN } }), isField(/event\.x/));
  assert.throws(() => encodeRecord({ ...base, event: { x: new Uint8Array(1) } as never }), isField(/event\.x/));
  // seq 1 must start from the zero hash.
  const wrongGenesis = encode(new Map<number, unknown>([[1, 'dev-1'], [2, 1], [3, new Uint8Array(32).fill(1)], [4, 1], [5, new Map()]]));
  assert.throws(() => decodeRecord(wrongGenesis), isField(/prev/));
});

test('record: hostile encodings are refused with typed errors', () => {
  const good = recordChain('d', 1).bytes[0];
  const cases: Uint8Array[] = [
    encode(new Map<number, unknown>([[1, 'd'], [2, 1], [3, GENESIS_PREV], [4, 1]])), // no event
    encode(new Map<number, unknown>([[1, 'd'], [2, 1], [3, GENESIS_PREV], [4, 1], [5, new Map()], [9, 1]])), // unknown key
    encode(new Map<number, unknown>([[1, 'd'], [2, 1], [3, GENESIS_PREV], [4, 1], [5, new Map<unknown, unknown>([[1, 2]])]])), // int keys in event
    encode([1, 2, 3]),
    good.subarray(0, good.length - 1),
    new Uint8Array(70_000),
  ];
  for (const c of cases) assert.throws(() => decodeRecord(c), isTyped);
  // The same record with its keys in another order (cbor-x keeps insertion order) is refused:
  // a record has one encoding, so it has one hash.
  const m = decode(good) as Map<number, unknown>;
  const reordered = concatBytes(new Uint8Array([0xa6]), ...[...m.entries()].reverse().flatMap(([k, v]) => [encode(k), encode(v)]));
  assert.throws(() => decodeRecord(reordered), (e: unknown) => e instanceof IscmError && e.code === 'CBOR_NONCANONICAL');
  assert.ok(xdecode(reordered) instanceof Object, 'cbor-x itself reads it');
});

test('record: the event and source are JSON: bytes, tags, NaN, undefined, non-text keys and __proto__ are refused by name', () => {
  const rec = (event: unknown) => encode(new Map<number, unknown>([[1, 'd'], [2, 1], [3, GENESIS_PREV], [4, 1], [5, event]]));
  const cases: [unknown, RegExp][] = [
    [new Map([['a', new Uint8Array(2)]]), /record\.event\.a/],
    [new Map([['a', new Map([['b', NaN]])]]), /record\.event\.a\.b/],
    [new Map<unknown, unknown>([['a', [1, new Map([[1, 2]])]]]), /record\.event\.a/],
    [new Map([['__proto__', 1]]), /record\.event/],
    [new Map<unknown, unknown>([['a', [1, new Map([['b', new Uint8Array(1)]])]], ['c', 2]]), /^record\.event\.a\[1\]\.b$/],
    [new Map([['a', new Tag(1, 0)]]), /record\.event\.a/],
  ];
  for (const [ev, field] of cases) assert.throws(() => decodeRecord(rec(ev)), isField(field), String(field));
  assert.throws(() => decodeRecord(concatBytes(rec(new Map()).subarray(0, 45), new Uint8Array([0xa1, 0x61, 0x61, 0xf7]))), isTyped, 'undefined');
  const src = encode(new Map<number, unknown>([[1, 'd'], [2, 1], [3, GENESIS_PREV], [4, 1], [5, new Map()], [6, new Map([['boot', new Uint8Array(1)]])]]));
  assert.throws(() => decodeRecord(src), isField(/record\.source\.boot/));
  assert.throws(() => encodeRecord({ deviceId: 'd', seq: 1, prev: GENESIS_PREV, time: 1, event: {}, source: { a: [1, undefined] } as never }), isField(/record\.source/));
  assert.throws(() => encodeRecord({ deviceId: 'd', seq: 1, prev: GENESIS_PREV, time: 1, event: { a: new Date() } as never }), isField(/record\.event\.a/));
  assert.equal(Object.getPrototypeOf(decodeRecord(rec(new Map([['a', 1]]))).event), Object.prototype);
});

const header = (over: Partial<BatchHeader> = {}): BatchHeader => ({
  deviceId: 'reefer-07', batchSeq: 2, firstSeq: 101, count: 100, root: new Uint8Array(32).fill(7), prev: new Uint8Array(32).fill(9), time: 1_764_000_000_000, ...over,
});

test('batch header: round trip, key order 1..7, validation', () => {
  const b = encodeBatchHeader(header());
  assert.equal(decodeBatchHeader(b), header());
  assert.equal([...(decode(b) as Map<number, unknown>).keys()], [1, 2, 3, 4, 5, 6, 7]);
  assert.throws(() => encodeBatchHeader(header({ count: 0 })), isField(/count/));
  assert.throws(() => encodeBatchHeader(header({ batchSeq: 1 })), isField(/prev/), 'batch 1 links to zeros');
  assert.throws(() => encodeBatchHeader(header({ root: new Uint8Array(33) })), isField(/root/));
  assert.throws(() => decodeBatchHeader(encode(new Map([[1, 'x']]))), isField(/batch\.2/));
});

test('batch message: round trip and bounds', () => {
  const { bytes } = recordChain('d', 3);
  const m = { sign1: new Uint8Array([1, 2, 3]), records: bytes, knownSize: 12 };
  const back = decodeBatchMessage(encodeBatchMessage(m));
  assert.is(back.knownSize, 12);
  assert.equal(back.records.map(toHex), bytes.map(toHex));
  // No records: a receipt request (docs/PROTOCOL.md §3) — the same shape, an empty list.
  const req = decodeBatchMessage(encodeBatchMessage({ ...m, records: [] }));
  assert.equal([req.records.length, req.knownSize, toHex(req.sign1)], [0, 12, '010203']);
  assert.throws(() => decodeBatchMessage(encode([new Uint8Array(1), 'none', 0])), isField(/records/));
  assert.throws(() => decodeBatchMessage(encode([new Uint8Array(1), [1], 0])), isField(/records\[0\]/));
  assert.throws(() => decodeBatchMessage(encode([new Uint8Array(1), [new Uint8Array(1)], -1])), isField(/known_size/));
});

test('receipt msg: every status with what it needs', () => {
  const r = { batchSeq: 3, status: ReceiptStatus.COMMITTED, receipt: new Uint8Array([1]) };
  assert.equal(decodeReceiptMsg(encodeReceiptMsg(r)), r);
  assert.equal(decodeReceiptMsg(encodeReceiptMsg({ batchSeq: 3, status: 2, nextSeq: 2 })), { batchSeq: 3, status: 2, nextSeq: 2 });
  assert.equal(decodeReceiptMsg(encodeReceiptMsg({ batchSeq: 3, status: 3, reason: 'bad signature' })), { batchSeq: 3, status: 3, reason: 'bad signature' });
  assert.throws(() => encodeReceiptMsg({ batchSeq: 3, status: 0 }), isField(/receipt/));
  assert.throws(() => encodeReceiptMsg({ batchSeq: 3, status: 2 }), isField(/next_seq/));
  assert.throws(() => encodeReceiptMsg({ batchSeq: 3, status: 3 }), isField(/reason/));
  assert.throws(() => decodeReceiptMsg(encode(new Map([[1, 1], [2, 4]]))), isField(/status/));
});

test('topics: §4.3 names, device ids as one level, no wildcards in the prefix', () => {
  assert.is(topics.batch('iscm/v1', 'reefer-07'), 'iscm/v1/dev/reefer-07/batch');
  assert.is(topics.sharedBatches('iscm/v1'), '$share/ledger/iscm/v1/dev/+/batch');
  assert.is(topics.deviceOf('iscm/v1', 'iscm/v1/dev/reefer-07/batch', 'batch'), 'reefer-07');
  assert.is(topics.deviceOf('iscm/v1', 'iscm/v1/dev/a/b/batch', 'batch'), undefined);
  assert.throws(() => topics.batch('iscm/#', 'x'), isTyped);
  assert.throws(() => topics.batch('iscm/v1', 'a/b'), isTyped);
  assert.ok(sampleEvent(1).type === 'ObjectEvent');
});

test.run();
