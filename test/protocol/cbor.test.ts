import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode as xdecode, encode as xencode } from 'cbor-x';
import { decode, encode, Json, Tag, toPlain } from '../../protocol/cbor.js';
import { CborError } from '../../protocol/errors.js';
import { fromHex, toHex } from '../../protocol/bytes.js';
import { prng, randomBytes } from '../helpers/prng.js';

const enc = (v: unknown) => toHex(encode(v));

// RFC 8949 Appendix A examples that deterministic encoding keeps.
test('RFC 8949 Appendix A: integers, floats, strings, arrays, maps', () => {
  const cases: [unknown, string][] = [
    [0, '00'], [1, '01'], [10, '0a'], [23, '17'], [24, '1818'], [25, '1819'], [100, '1864'], [1000, '1903e8'],
    [1000000, '1a000f4240'], [1000000000000, '1b000000e8d4a51000'], [-1, '20'], [-10, '29'], [-100, '3863'], [-1000, '3903e7'],
    [1.1, 'fb3ff199999999999a'], [1.5, 'f93e00'], [65504.0 + 0.5, 'fa477fe080'], [100000.5, 'fa47c35040'],
    [5.960464477539063e-8, 'f90001'], [0.00006103515625, 'f90400'], [-4.1, 'fbc010666666666666'],
    [Infinity, 'f97c00'], [NaN, 'f97e00'], [-Infinity, 'f9fc00'], [-0, 'f98000'],
    [false, 'f4'], [true, 'f5'], [null, 'f6'],
    [new Uint8Array(0), '40'], [fromHex('01020304'), '4401020304'],
    ['', '60'], ['a', '6161'], ['IETF', '6449455446'], ['"\\', '62225c'], ['\u00fc', '62c3bc'], ['\u6c34', '63e6b0b4'], ['\ud800\udd51', '64f0908591'],
    [[], '80'], [[1, 2, 3], '83010203'], [[1, [2, 3], [4, 5]], '8301820203820405'],
    [new Map(), 'a0'], [new Map([[1, 2], [3, 4]]), 'a201020304'], [{ a: 1, b: [2, 3] }, 'a26161016162820203'],
    [new Tag(1, 1363896240), 'c11a514b67b0'],
  ];
  for (const [v, hex] of cases) {
    assert.is(enc(v), hex, `encode ${String(v)}`);
    const back = decode(fromHex(hex), { tags: [1] });
    if (typeof v === 'number' && Number.isNaN(v)) assert.ok(Number.isNaN(back as number));
    else if (typeof v === 'number') assert.ok(Object.is(back, v), `decode ${hex}`);
    else assert.equal(toHex(encode(back)), hex, `round trip ${hex}`);
  }
});

test('map keys sort by encoded bytes (RFC 8949 §4.2.1): short keys first, ints before negatives before text', () => {
  assert.is(enc(new Map<unknown, unknown>([['b', 0], [-1, 0], [10, 0], ['aa', 0], [100, 0], [-2, 0]])), 'a60a001864002000210061620062616100');
  assert.is(enc({ zz: 1, a: 2, ab: 3 }), 'a361610262616203627a7a01');
});

test('integer-keyed Maps: ascending insertion is written as is, any other order is sorted, the same bytes either way', () => {
  const asc = new Map<number, unknown>([[1, 'a'], [2, 'b'], [24, 'c'], [256, 'd']]);
  const shuffled = new Map<number, unknown>([[256, 'd'], [2, 'b'], [24, 'c'], [1, 'a']]);
  assert.is(enc(asc), 'a4016161026162181861631901006164');
  assert.is(enc(shuffled), enc(asc));
  // Past the small-map insertion sort (17+ entries) the general sort takes over; still ascending.
  const many = new Map<number, unknown>(Array.from({ length: 40 }, (_, i) => [39 - i, i] as [number, unknown]));
  const back = decode(encode(many)) as Map<number, unknown>;
  assert.equal([...back.keys()], Array.from({ length: 40 }, (_, i) => i));
  // Negative or fractional keys leave the fast path and sort by encoded bytes.
  assert.is(enc(new Map<unknown, unknown>([[1, 0], [-1, 0], [0, 0]])), 'a3000001002000');
});

test('duplicate keys are refused on encode and decode', () => {
  assert.throws(() => decode(fromHex('a201020103')), (e: unknown) => e instanceof CborError && /duplicate/.test((e as Error).message));
  assert.throws(() => decode(fromHex('a201020103'), { canonical: false }), (e: unknown) => e instanceof CborError && /duplicate/.test((e as Error).message));
});

test('non-canonical encodings are refused in canonical mode and accepted otherwise', () => {
  for (const hex of ['1817', '190017', '1a00000017', '1b0000000000000017', 'fa3fc00000', 'fb3ff8000000000000', 'f93c00', 'a202010101', 'f97e01']) {
    assert.throws(() => decode(fromHex(hex)), (e: unknown) => e instanceof CborError && (e as CborError).code === 'CBOR_NONCANONICAL', hex);
    decode(fromHex(hex), { canonical: false });
  }
});

test('hostile inputs give typed errors: truncation, huge lengths, depth, tags, indefinite, trailing bytes', () => {
  const bad: [string, string][] = [
    ['', 'CBOR_MALFORMED'], ['19', 'CBOR_MALFORMED'], ['5affffffff00', 'CBOR_MALFORMED'], ['9bffffffffffffffff', 'CBOR_MALFORMED'],
    ['bbffffffffffffffff', 'CBOR_MALFORMED'], ['7a7fffffff61', 'CBOR_MALFORMED'], ['9f01ff', 'CBOR_UNSUPPORTED'], ['5f41014102ff', 'CBOR_UNSUPPORTED'],
    ['d8400102', 'CBOR_UNSUPPORTED'], ['0000', 'CBOR_MALFORMED'], ['ff', 'CBOR_MALFORMED'], ['f7', 'CBOR_UNSUPPORTED'], ['1c', 'CBOR_MALFORMED'],
    ['62c328', 'CBOR_MALFORMED'], ['1b0020000000000000', 'CBOR_UNSUPPORTED'], ['a1f601', 'CBOR_UNSUPPORTED'], ['a1410101', 'CBOR_UNSUPPORTED'],
    ['81'.repeat(40) + '00', 'CBOR_LIMIT'],
  ];
  for (const [hex, code] of bad)
    assert.throws(() => decode(fromHex(hex)), (e: unknown) => e instanceof CborError && (e as CborError).code === code, `${hex} → ${code}`);
  assert.throws(() => decode(new Uint8Array(10), { maxBytes: 5 }), (e: unknown) => (e as CborError).code === 'CBOR_LIMIT');
  assert.throws(() => decode(fromHex('83010203'), { maxItems: 3 }), (e: unknown) => (e as CborError).code === 'CBOR_LIMIT');
});

test('byte strings decode as views into the input (hash the exact bytes received)', () => {
  const input = fromHex('8243010203430405ff');
  const a = decode(input) as Uint8Array[];
  assert.is(a[0].buffer, input.buffer);
  assert.is(toHex(a[1]), '0405ff');
});

test('encode refuses what the protocol cannot carry', () => {
  for (const v of [undefined, () => 1, Symbol('x'), new Date(), { a: undefined }, '\ud800', 2n ** 64n])
    assert.throws(() => encode(v), (e: unknown) => e instanceof CborError);
  let deep: unknown = 1;
  for (let i = 0; i < 100; i++) deep = [deep];
  assert.throws(() => encode(deep), (e: unknown) => (e as CborError).code === 'CBOR_LIMIT');
});

test('toPlain turns text-keyed maps into objects and refuses __proto__', () => {
  assert.equal(toPlain(decode(encode({ a: [{ b: 1 }] }))), { a: [{ b: 1 }] });
  const evil = encode(new Map([['__proto__', new Map([['polluted', true]])]]));
  assert.throws(() => toPlain(decode(evil)), (e: unknown) => e instanceof CborError);
  assert.is(({} as Record<string, unknown>).polluted, undefined);
});

// cbor-x is the oracle: our deterministic output must decode to the same value there,
// and whatever canonical bytes cbor-x produces for integer-keyed maps we read identically.
function randomValue(rnd: () => number, depth: number): unknown {
  const k = Math.floor(rnd() * (depth > 3 ? 6 : 9));
  switch (k) {
    case 0: return Math.floor(rnd() * 2 ** 40) * (rnd() < 0.3 ? -1 : 1);
    case 1: return [0.5, -2.25, 1.1, 3.4028234663852886e38, 1e-300, 6.5e4][Math.floor(rnd() * 6)];
    case 2: return Array.from({ length: Math.floor(rnd() * 12) }, () => String.fromCharCode(32 + Math.floor(rnd() * 400))).join('');
    case 3: return randomBytes(rnd, Math.floor(rnd() * 40));
    case 4: return [true, false, null][Math.floor(rnd() * 3)];
    case 5: return Math.floor(rnd() * 30);
    case 6: return Array.from({ length: Math.floor(rnd() * 5) }, () => randomValue(rnd, depth + 1));
    case 7: {
      const m = new Map<number, unknown>();
      for (let i = 0, n = Math.floor(rnd() * 5); i < n; i++) m.set(Math.floor(rnd() * 1000) - 20, randomValue(rnd, depth + 1));
      return m;
    }
    default: {
      const o: Record<string, unknown> = {};
      for (let i = 0, n = Math.floor(rnd() * 5); i < n; i++) o['k' + Math.floor(rnd() * 100)] = randomValue(rnd, depth + 1);
      return o;
    }
  }
}

function normalise(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: toHex(v) };
  if (typeof v === 'bigint') return Number(v); // cbor-x reads 8-byte integers as bigint
  if (v instanceof Map) return [...v.entries()].map(([k, x]) => [String(k), normalise(x)]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === 'object') return normalise(new Map(Object.entries(v)));
  return v;
}

test('property: 5,000 random values round-trip, are canonical, and agree with cbor-x', () => {
  const rnd = prng(42);
  for (let i = 0; i < 5000; i++) {
    const v = randomValue(rnd, 0);
    const bytes = encode(v);
    const back = decode(bytes);
    assert.equal(normalise(back), normalise(v));
    assert.is(toHex(encode(back)), toHex(bytes), 'decode → encode is the identity on canonical bytes');
    const viaX = xdecode(bytes);
    assert.equal(normalise(viaX), normalise(back));
  }
});

test('fuzz: 100,000 mutated and random inputs only ever raise CborError', () => {
  const rnd = prng(7);
  const seeds = [encode({ a: [1, 2, { b: new Uint8Array(5) }], c: 'text', d: 1.5 }), encode(new Map<number, unknown>([[1, 'dev'], [2, 5], [3, new Uint8Array(32)]])), xencode([1, 'x', { y: 2 }])];
  let ok = 0;
  let typed = 0;
  for (let i = 0; i < 100_000; i++) {
    let input: Uint8Array;
    if (i % 4 === 0) input = randomBytes(rnd, Math.floor(rnd() * 64));
    else {
      input = Uint8Array.from(seeds[i % seeds.length]);
      const flips = 1 + Math.floor(rnd() * 4);
      for (let f = 0; f < flips; f++) input[Math.floor(rnd() * input.length)] = Math.floor(rnd() * 256);
      if (rnd() < 0.2) input = input.subarray(0, Math.floor(rnd() * input.length));
    }
    try {
      decode(input);
      ok++;
    } catch (e) {
      if (!(e instanceof CborError)) throw new Error(`untyped ${String(e)} for ${toHex(input)}`);
      typed++;
    }
  }
  assert.ok(typed > 50_000, `most mutations are rejected (${typed})`);
  assert.ok(ok + typed === 100_000);
});

test('JSON mode: frozen subtrees (shared event parts) encode from a cache, byte for byte as fresh ones; a frozen shell over a mutable child is never cached', () => {
  const place = Object.freeze({ id: 'urn:epc:id:sgln:4012345.00001.0' });
  const list = Object.freeze(['a', 'b', Object.freeze({ x: 1.5 })]);
  const shell = Object.freeze({ inner: { y: 2 } }) as { inner: { y: number } };
  for (let i = 0; i < 4; i++) {
    // i = 1: a long text makes the writer grow in the middle of the record.
    const ev = { readPoint: place, epcList: list, shell, n: i, note: i === 1 ? 'x'.repeat(70_000) : 'short' };
    const got = encode(new Map([[5, new Json(ev, 'event')]]));
    const fresh = encode(new Map([[5, new Json(JSON.parse(JSON.stringify(ev)), 'event')]]));
    assert.is(Buffer.from(got).toString('hex'), Buffer.from(fresh).toString('hex'), `round ${i}`);
    shell.inner.y = 10 + i; // the shell is frozen, its child is not
  }
});

test.run();
