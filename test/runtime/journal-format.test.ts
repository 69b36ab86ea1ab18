// The journal's pure pieces: the record head reader, entry framing, metadata
// containers and segment headers, the chain rules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '../../protocol/cbor.js';
import { crc32c } from '../../protocol/crc32c.js';
import { toHex, ZERO32 } from '../../protocol/bytes.js';
import { ValidationError } from '../../protocol/errors.js';
import { decodeRecord, encodeRecord } from '../../protocol/record.js';
import { applyCommit, checkCommit, genesisState, isCommitted } from '../../runtime/journal/chain-state.js';
import { decodeContainer, encodeContainer } from '../../runtime/journal/container.js';
import { JournalError } from '../../runtime/journal/errors.js';
import { checkFrame, commitHead, EntryType, FRAME_OVERHEAD, readCommit, writeFrame } from '../../runtime/journal/frame.js';
import { readRecordHead } from '../../runtime/journal/record-head.js';
import { decodeSegmentHeader, encodeSegmentHeader, newNonce } from '../../runtime/journal/segment-header.js';
import { SparseIndex, INDEX_EVERY } from '../../runtime/journal/segment-summary.js';
import { prng } from '../helpers/prng.js';
import { DeviceStream } from './journal-fixtures.js';

/** Bit-at-a-time CRC-32C: the definition, to check the table-driven one against. */
function crc32cReference(b: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  }
  return ~c >>> 0;
}

test('crc32c: the check value, and the definition at every alignment, length and chaining split, across buffers', () => {
  assert.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  const rnd = prng(11);
  // Several ArrayBuffers in turn (the word view is cached per buffer), pool slices and odd offsets.
  const bufs = [new Uint8Array(4096), Buffer.allocUnsafe(3000), Buffer.from('pooled slice of the Buffer pool, not 4-aligned'), new Uint8Array(new ArrayBuffer(2051), 3)];
  for (const b of bufs) for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
  for (let n = 0; n < 3000; n++) {
    const b = bufs[n % bufs.length];
    const start = Math.floor(rnd() * b.length);
    const end = start + Math.floor(rnd() * (b.length - start + 1));
    const want = crc32cReference(b.subarray(start, end));
    assert.is(crc32c(b, 0, start, end), want, `buffer ${n % bufs.length} [${start}, ${end})`);
    const mid = start + Math.floor(rnd() * (end - start + 1));
    assert.is(crc32c(b, crc32c(b, 0, start, mid), mid, end), want, 'chained');
  }
});

test('record head: agrees with decodeRecord on real records, across integer widths and device ids', () => {
  const rnd = prng(7);
  const seqs = [1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER];
  for (const seq of seqs) {
    for (const deviceId of ['a', 'reefer-07', 'x'.repeat(23), 'y'.repeat(24), 'z'.repeat(64)]) {
      const prev = seq === 1 ? ZERO32 : new Uint8Array(32).map(() => Math.floor(rnd() * 256));
      const time = Math.floor(rnd() * 2 ** 45);
      const b = encodeRecord({ deviceId, seq, prev, time, event: { type: 'ObjectEvent' } });
      const h = readRecordHead(b);
      const r = decodeRecord(b);
      assert.equal({ deviceId: h.deviceId, seq: h.seq, prev: toHex(h.prev), time: h.time }, { deviceId: r.deviceId, seq: r.seq, prev: toHex(r.prev), time: r.time });
    }
  }
});

test('record head: refuses what is not a canonical record head, with typed errors naming the field', () => {
  const good = new DeviceStream().record();
  const bad: Array<[Uint8Array, RegExp]> = [
    [good.subarray(0, 30), /^record$/],
    [Buffer.concat([Buffer.from([0xa5, 0x02, 0x01, 0x01, 0x61, 0x64]), Buffer.alloc(40)]), /record\.1/], // keys out of order
    [encode(new Map<number, unknown>([[1, 'D'], [2, 1], [3, ZERO32], [4, 1], [5, new Map()]])), /record\.device_id/],
    [encode(new Map<number, unknown>([[1, 'd'], [2, 0], [3, ZERO32], [4, 1], [5, new Map()]])), /record\.seq/],
    [encode(new Map<number, unknown>([[1, 'd'], [2, -1], [3, ZERO32], [4, 1], [5, new Map()]])), /record\.seq/],
    [encode(new Map<number, unknown>([[1, 'd'], [2, 1], [3, new Uint8Array(31)], [4, 1], [5, new Map()]])), /record\.prev/],
    [encode(new Map<number, unknown>([[1, 'd'], [2, 1], [3, ZERO32], [5, new Map()], [6, new Map()]])), /record\.4/],
    [encode([1, 2, 3]), /^record$/],
  ];
  // A seq in a longer integer form than needed (non-canonical).
  const nc = Buffer.from(encode(new Map<number, unknown>([[1, 'd'], [2, 5], [3, ZERO32], [4, 1], [5, new Map()]])));
  const at = nc.indexOf(Buffer.from([0x02, 0x05]));
  bad.push([Buffer.concat([nc.subarray(0, at + 1), Buffer.from([0x18, 0x05]), nc.subarray(at + 2)]), /record\.seq/]);
  for (const [b, field] of bad) {
    try {
      readRecordHead(b);
      assert.unreachable(`accepted ${toHex(b).slice(0, 40)}`);
    } catch (e) {
      assert.instance(e, ValidationError, `${toHex(b).slice(0, 40)}: ${(e as Error).message}`);
      assert.match((e as ValidationError).field!, field);
    }
  }
});

test('framing: a frame round-trips; every kind of damage is told apart', () => {
  const payload = new DeviceStream().record();
  const buf = Buffer.alloc(FRAME_OVERHEAD + payload.length + 16);
  const n = writeFrame(buf, 0, EntryType.RECORD, payload);
  assert.is(n, FRAME_OVERHEAD + payload.length);
  const ok = checkFrame(buf, 0, buf.length);
  assert.ok(ok.ok && ok.type === EntryType.RECORD && ok.len === payload.length && ok.size === n);
  assert.equal(checkFrame(buf, n, buf.length), { ok: false, why: 'end' }, 'zeros after the data are its end');
  assert.equal(checkFrame(buf, 0, n - 1), { ok: false, why: 'short' });
  assert.equal(checkFrame(buf, 0, 3), { ok: false, why: 'short' });
  for (const [pos, why] of [[10, 'crc'], [n - 1, 'crc'], [4, 'type'], [0, 'crc'], [3, 'length']] as const) {
    const b = Buffer.from(buf);
    b[pos] ^= pos === 4 ? 0x40 : pos === 3 ? 0x10 : 0x01;
    assert.is((checkFrame(b, 0, b.length) as { why: string }).why, why, `flip at ${pos}`);
  }
  const c = Buffer.alloc(64);
  writeFrame(c, 0, EntryType.COMMIT, commitHead(2 ** 40, 12345), new Uint8Array([1, 2, 3]));
  const f = checkFrame(c, 0, c.length);
  assert.ok(f.ok);
  const rc = readCommit(c.subarray(5, 5 + (f as { len: number }).len));
  assert.equal([rc.batchSeq, rc.lastSeq, [...rc.receipt]], [2 ** 40, 12345, [1, 2, 3]]);
});

test('metadata containers and segment headers: round trip; torn, foreign or newer ones are CORRUPT', () => {
  const body = new Map<number, unknown>([[1, 42], [2, 'x']]);
  const c = encodeContainer('ISCMJTST', body);
  assert.equal(decodeContainer(c, 'ISCMJTST', 'f'), body);
  const cases: Array<[Buffer, RegExp]> = [
    [c.subarray(0, c.length - 1), /truncated/],
    [Buffer.concat([Buffer.from('XXXXXXXX'), c.subarray(8)]), /bad magic/],
    [(() => { const b = Buffer.from(c); b[20] ^= 1; return b; })(), /CRC-32C/],
    [(() => { const b = Buffer.from(c); b.writeUInt16LE(3, 8); return b; })(), /version 3; this build reads versions 1 to 2/],
  ];
  // Version 1 (journals of earlier builds) still reads.
  const v1 = Buffer.from(c);
  v1.writeUInt16LE(1, 8);
  v1.writeUInt32LE(crc32c(v1, 0, 0, v1.length - 4), v1.length - 4);
  assert.equal(decodeContainer(v1, 'ISCMJTST', 'f'), body);
  for (const [b, re] of cases) {
    try {
      decodeContainer(b, 'ISCMJTST', 'f');
      assert.unreachable();
    } catch (e) {
      assert.instance(e, JournalError);
      assert.is((e as JournalError).kind, 'CORRUPT');
      assert.match((e as Error).message, re);
    }
  }
  const base = genesisState();
  applyCommit(base, 1, 0); // state fields survive the trip
  const h = encodeSegmentHeader({ id: 7, nonce: newNonce(), deviceId: 'reefer-07', createdMs: 1, base });
  assert.is(h.length, 4096);
  const back = decodeSegmentHeader(h, 'seg');
  assert.is(back.id, 7);
  assert.is(back.dataStart, 4096);
  assert.is(back.base.committedThrough, 1);
});

test('chain state: commit marks in any order fold into the watermark; duplicates are idempotent', () => {
  const s = genesisState();
  s.nextBatchSeq = 6;
  assert.ok(checkCommit(s, 3));
  applyCommit(s, 3, 30);
  applyCommit(s, 5, 50);
  assert.is(s.committedThrough, 0);
  applyCommit(s, 1, 10);
  assert.is(s.committedThrough, 1);
  applyCommit(s, 2, 20);
  assert.is(s.committedThrough, 3);
  assert.is(s.committedThroughSeq, 30);
  assert.ok(isCommitted(s, 5) && !isCommitted(s, 4));
  assert.not.ok(checkCommit(s, 2), 'a duplicate');
  applyCommit(s, 4, 40);
  assert.equal([s.committedThrough, s.committedThroughSeq, s.committedAbove], [5, 50, []]);
});

test('sparse index: one sample per INDEX_EVERY bytes; floor finds the nearest sample at or before a key', () => {
  const x = new SparseIndex();
  for (let seq = 1, off = 4096; seq <= 100_000; seq++, off += 700) x.note(seq, off);
  assert.ok(x.n <= Math.ceil((100_000 * 700) / INDEX_EVERY) + 1, `${x.n} samples`);
  for (const k of [1, 2, 93, 94, 50_000, 100_000]) {
    const i = x.floorIndex(k);
    assert.ok(x.keys[i] <= k && (i + 1 === x.n || x.keys[i + 1] > k));
  }
  assert.is(x.floorIndex(0), -1);
});

test.run();
