// The GS1 EPCIS Event Hash ID: every case of ../shared/vectors/epcis/hash-vectors
// (pre-hash string and hash, all 23 events), the value rules one by one, and
// the properties the hash exists for (JSON key order, list order, identifier
// spelling and time zone do not change it; content does).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonTime, eventHashId, eventPrehash, hashIdOfPrehash, pythonNumber } from '../../runtime/events/hash.js';
import { listFiles, readJson, vectorDir } from '../helpers/vectors.js';

const dir = vectorDir('epcis');

if (dir) {
  const files = listFiles(join(dir, 'hash-vectors'), '.jsonld');
  test('hash vectors: 8 documents, 23 events, as the README says', () => {
    assert.is(files.length, 8);
    const n = files.reduce((a, f) => a + readJson(f).epcisBody.eventList.length, 0);
    assert.is(n, 23);
  });
  for (const f of files) {
    const name = f.split('/').pop()!.replace('.jsonld', '');
    test(`hash vectors: ${name}: pre-hash strings and event hash IDs`, () => {
      const doc = readJson(f);
      const pre = readFileSync(f.replace('.jsonld', '.prehashes'), 'utf8').split('\n').filter(Boolean);
      const hashes = readFileSync(f.replace('.jsonld', '.hashes'), 'utf8').split('\n').filter(Boolean);
      const events = doc.epcisBody.eventList;
      assert.is(events.length, pre.length);
      events.forEach((e: Record<string, unknown>, i: number) => {
        assert.is(eventPrehash(e, { documentContext: doc['@context'] }), pre[i], `${name} event ${i}`);
        assert.is(eventHashId(e, { documentContext: doc['@context'] }), hashes[i], `${name} event ${i}`);
        // The ID is SHA-256 over the UTF-8 pre-hash, as an RFC 6920 ni URI.
        assert.is(hashIdOfPrehash(pre[i]), `ni:///sha-256;${createHash('sha256').update(pre[i]).digest('hex')}?ver=CBV2.0`);
      });
    });
  }
  test('hash vectors: the same event carried stand-alone (its own @context) hashes the same', () => {
    const f = files.find((x) => x.endsWith('CertificationInfoAndSensorReportWithCRS.jsonld'))!;
    const doc = readJson(f);
    const e = { '@context': doc['@context'], ...doc.epcisBody.eventList[0] };
    const hashes = readFileSync(f.replace('.jsonld', '.hashes'), 'utf8').split('\n').filter(Boolean);
    assert.is(eventHashId(e), hashes[0]);
    // Without the ext1 prefix the extension keys stay CURIEs: a different hash (the test can fail).
    const { ['@context']: _, ...bare } = e;
    assert.is.not(eventHashId(bare), hashes[0]);
  });
}

test('numbers are spelt as the reference implementation (Python float) spells them', () => {
  const cases: [number, string][] = [
    [26, '26'], [26.0, '26'], [12.1, '12.1'], [-0, '0'], [0.0001, '0.0001'], [0.00001, '1e-05'], [1.5e-7, '1.5e-07'],
    [-2.5e-5, '-2.5e-05'], [1e21, '1000000000000000000000'], [12345678901234567890, '12345678901234567168'], [0.1 + 0.2, '0.30000000000000004'],
    [123456.789, '123456.789'], [-4.6, '-4.6'],
  ];
  for (const [x, s] of cases) assert.is(pythonNumber(x), s, String(x));
});

test('times: to UTC with milliseconds, fractions rounded half to even on the microsecond', () => {
  assert.is(canonTime('2023-02-02T11:04:03.1415Z'), '2023-02-02T11:04:03.142Z');
  assert.is(canonTime('2023-02-02T11:04:03.1414Z'), '2023-02-02T11:04:03.141Z');
  assert.is(canonTime('2023-02-02T11:04:03.1425Z'), '2023-02-02T11:04:03.142Z'); // half to even
  assert.is(canonTime('2022-02-16T20:33:31.116000-06:00'), '2022-02-17T02:33:31.116Z');
  assert.is(canonTime('2023-01-11T12:00:00+01:00'), '2023-01-11T11:00:00.000Z');
  assert.is(canonTime('2023-12-31T23:59:59.9996Z'), '2024-01-01T00:00:00.000Z'); // rounds into the next year
  assert.is(canonTime('not a time'), 'not a time');
});

const base = () => ({
  type: 'ObjectEvent',
  eventTime: '2025-11-20T08:05:00.000Z',
  eventTimeZoneOffset: '+01:00',
  epcList: ['urn:epc:id:sscc:4012345.0000000101', 'urn:epc:id:grai:4012345.00001.42'],
  action: 'OBSERVE',
  bizStep: 'transporting',
  disposition: 'in_transit',
  readPoint: { id: 'geo:53.5,9.9' },
  sensorElementList: [
    {
      sensorMetadata: { startTime: '2025-11-20T08:00:00.000Z', endTime: '2025-11-20T08:05:00.000Z', deviceID: 'urn:epc:id:giai:4012345.T1' },
      sensorReport: [
        { type: 'Temperature', minValue: 4.1, maxValue: 6.8, meanValue: 4.88, uom: 'CEL' },
        { type: 'RelativeHumidity', value: 71, uom: 'P1' },
      ],
    },
  ],
});

test('the same event in other spellings has the same ID', () => {
  const id = eventHashId(base());
  const respelt = {
    sensorElementList: [
      {
        sensorReport: [
          { uom: 'P1', value: 71.0, type: 'gs1:RelativeHumidity' },
          { uom: 'CEL', meanValue: 4.880, maxValue: 6.80, minValue: 4.10, type: 'https://gs1.org/voc/Temperature' },
        ],
        sensorMetadata: { deviceID: 'urn:epc:id:giai:4012345.T1', endTime: '2025-11-20T09:05:00+01:00', startTime: '2025-11-20T03:00:00.000-05:00' },
      },
    ],
    readPoint: { id: 'geo:53.5,9.9' },
    disposition: 'https://ref.gs1.org/cbv/Disp-in_transit',
    bizStep: 'urn:epcglobal:cbv:bizstep:transporting',
    action: 'OBSERVE',
    // GRAI 0 4012345 00001 + check digit 6 + serial 42; SSCC extension 0 + 4012345 + 000000101 + check digit 3
    epcList: ['https://id.gs1.org/8003/0401234500001642', 'https://example.com/sscc/040123450000001013?src=label'],
    eventTimeZoneOffset: '+01:00',
    eventTime: '2025-11-20T09:05:00.000+01:00',
    type: 'ObjectEvent',
    eventID: 'ignored',
    recordTime: '2030-01-01T00:00:00Z',
  };
  assert.is(eventHashId(respelt), id);
});

test('any change of content changes the ID', () => {
  const id = eventHashId(base());
  const mutations: ((e: any) => void)[] = [
    (e) => (e.eventTime = '2025-11-20T08:05:00.001Z'),
    (e) => (e.eventTimeZoneOffset = '+02:00'),
    (e) => e.epcList.pop(),
    (e) => (e.bizStep = 'receiving'),
    (e) => delete e.disposition,
    (e) => (e.readPoint.id = 'geo:53.5,9.91'),
    (e) => (e.sensorElementList[0].sensorReport[0].maxValue = 6.9),
    (e) => (e.sensorElementList[0].sensorReport[1].uom = 'A93'),
    (e) => (e.sensorElementList[0].sensorMetadata.deviceID = 'urn:epc:id:giai:4012345.T2'),
    (e) => (e['ext:x'] = 1),
    (e) => (e.type = 'AggregationEvent'),
  ];
  for (const m of mutations) {
    const e = base();
    m(e);
    assert.is.not(eventHashId(e), id, m.toString());
  }
});

test('property: shuffling keys and list entries never changes the ID', () => {
  const id = eventHashId(base());
  const shuffle = <T>(xs: T[], seed: number[]): T[] => {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = (seed[i % seed.length] ?? 0) % (i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  };
  const reorder = (v: unknown, seed: number[]): unknown => {
    if (Array.isArray(v)) return shuffle(v.map((x) => reorder(x, seed)), seed);
    if (v && typeof v === 'object') return Object.fromEntries(shuffle(Object.entries(v).map(([k, x]) => [k, reorder(x, seed)] as [string, unknown]), seed));
    return v;
  };
  fc.assert(
    fc.property(fc.array(fc.nat(1000), { minLength: 1, maxLength: 12 }), (seed) => eventHashId(reorder(base(), seed) as Record<string, unknown>) === id),
    { numRuns: 300 },
  );
});

test.run();
