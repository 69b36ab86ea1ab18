// GS1 identifiers as the gateway meets them: EPC URIs (config, RFID), 96-bit
// EPC binary (decoded against an independent encoder written here from the
// TDS partition tables), barcodes, Digital Links; and their canonical form.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { barcodeToDigitalLink, canonicalDigitalLink, canonicalGs1Uri, checkDigit, decodeEpc96, normaliseReadId, parseEpcUri } from '../../runtime/events/epc.js';

test('GS1 check digits (GS1 General Specifications §7.9.1 examples)', () => {
  assert.is(checkDigit('0950600013435'), 2); // GTIN 09506000134352
  assert.is(checkDigit('629104150021'), 3); // GTIN-13 6291041500213
  assert.is(checkDigit('10614141234567890'), 8); // SSCC 106141412345678908 (TDS example)
  assert.is(checkDigit('8061414112345'), 8); // GTIN 80614141123458 of the TDS SGTIN-96 example
  assert.is(checkDigit('401234500001'), 6);
});

test('EPC URIs → canonical Digital Links (TDS §6, the hash rule)', () => {
  const cases: [string, string][] = [
    ['urn:epc:id:sgtin:0614141.112345.400', 'https://id.gs1.org/01/10614141123459/21/400'],
    ['urn:epc:id:sgtin:0614141.812345.6789', 'https://id.gs1.org/01/80614141123458/21/6789'],
    ['urn:epc:id:sgtin:4012345.011111.9876', 'https://id.gs1.org/01/04012345111118/21/9876'],
    ['urn:epc:id:sgtin:4012345.011111.A%2FB', 'https://id.gs1.org/01/04012345111118/21/A%2FB'],
    ['urn:epc:id:sgtin:4012345.011111.a(b)', 'https://id.gs1.org/01/04012345111118/21/a%28b%29'],
    ['urn:epc:id:sscc:0614141.1234567890', 'https://id.gs1.org/00/106141412345678908'],
    ['urn:epc:id:sgln:0614141.12345.0', 'https://id.gs1.org/414/0614141123452'],
    ['urn:epc:id:sgln:0614141.12345.400', 'https://id.gs1.org/414/0614141123452/254/400'],
    ['urn:epc:id:grai:0614141.12345.400', 'https://id.gs1.org/8003/00614141123452400'],
    ['urn:epc:id:giai:0614141.12345400', 'https://id.gs1.org/8004/061414112345400'],
    ['urn:epc:id:gsrn:0614141.1234567890', 'https://id.gs1.org/8018/061414112345678902'],
    ['urn:epc:id:gdti:0614141.12345.400', 'https://id.gs1.org/253/0614141123452400'],
    ['urn:epc:id:pgln:4012345.00000', 'https://id.gs1.org/417/4012345000009'],
    ['urn:epc:class:lgtin:4012345.012345.998877', 'https://id.gs1.org/01/04012345123456/10/998877'],
    ['urn:epc:idpat:sgtin:4012345.066666.*', 'https://id.gs1.org/01/04012345666663'],
  ];
  for (const [epc, dl] of cases) assert.is(canonicalGs1Uri(epc), dl, epc);
  // Not GS1 keys, or malformed: unchanged (null).
  for (const s of ['geo:47.5,11.1', 'urn:epc:id:sgtin:4012345.01111.9876', 'urn:epc:id:sscc:4012345.00000001', 'urn:epcglobal:cbv:bt:4012345000009:ASN1099', 'http://transaction.acme.com/po/12345678'])
    assert.is(canonicalGs1Uri(s), null, s);
});

test('Digital Links: any host, short names, padding, query, CPV and lot are normalised away', () => {
  assert.is(canonicalDigitalLink('https://id.gs1.de/01/04012345999990/21/XYZ-1234'), 'https://id.gs1.org/01/04012345999990/21/XYZ-1234');
  assert.is(canonicalDigitalLink('https://example.com/gtin/9506000134352/ser/ABC?linkType=all'), 'https://id.gs1.org/01/09506000134352/21/ABC');
  assert.is(canonicalDigitalLink('https://example.com/01/09506000134352/22/2A/10/LOT1/21/S1'), 'https://id.gs1.org/01/09506000134352/21/S1');
  assert.is(canonicalDigitalLink('https://example.com/sscc/106141412345678908'), 'https://id.gs1.org/00/106141412345678908');
  assert.is(canonicalDigitalLink('https://example.com/about'), null);
});

test('EPC URIs: levels and schemes; malformed ones are refused', () => {
  assert.equal(parseEpcUri('urn:epc:id:sscc:4012345.0000000101'), { scheme: 'sscc', level: 'id', dl: 'https://id.gs1.org/00/040123450000001013' });
  assert.is(parseEpcUri('urn:epc:class:lgtin:4012345.012345.L1')?.level, 'class');
  assert.is(parseEpcUri('urn:epc:idpat:sgtin:4012345.012345.*')?.level, 'idpat');
  for (const bad of ['urn:epc:id:sscc:401234.50000000101x', 'urn:epc:id:sgtin:4012345.011111', 'urn:epc:id:sgtin:40123.0111111.1', 'urn:epc:id:grai:4012345.00001.' + 'x'.repeat(17), 'urn:epc:id:nope:1.2'])
    assert.is(parseEpcUri(bad), null, bad);
});

// ---- 96-bit EPC binary: an independent encoder (TDS §14) ----
const TABLE: Record<string, { header: number; p: [number, number, number, number][] }> = {
  sgtin: { header: 0x30, p: [[40, 12, 4, 1], [37, 11, 7, 2], [34, 10, 10, 3], [30, 9, 14, 4], [27, 8, 17, 5], [24, 7, 20, 6], [20, 6, 24, 7]] },
  sscc: { header: 0x31, p: [[40, 12, 18, 5], [37, 11, 21, 6], [34, 10, 24, 7], [30, 9, 28, 8], [27, 8, 31, 9], [24, 7, 34, 10], [20, 6, 38, 11]] },
  grai: { header: 0x33, p: [[40, 12, 4, 0], [37, 11, 7, 1], [34, 10, 10, 2], [30, 9, 14, 3], [27, 8, 17, 4], [24, 7, 20, 5], [20, 6, 24, 6]] },
};
function encode96(scheme: string, filter: number, partition: number, cp: bigint, ref: bigint, rest: bigint): string {
  const t = TABLE[scheme];
  const [cpBits, , refBits] = t.p[partition];
  let v = BigInt(t.header);
  const put = (x: bigint, n: number) => (v = (v << BigInt(n)) | x);
  put(BigInt(filter), 3);
  put(BigInt(partition), 3);
  put(cp, cpBits);
  put(ref, refBits);
  put(rest, 96 - 14 - cpBits - refBits);
  return v.toString(16).toUpperCase().padStart(24, '0');
}

test('96-bit EPC: the TDS example tag and encoder round trips', () => {
  assert.is(decodeEpc96('3074257BF7194E4000001A85'), 'urn:epc:id:sgtin:0614141.812345.6789');
  assert.is(encode96('sgtin', 3, 5, 614141n, 812345n, 6789n), '3074257BF7194E4000001A85');
  fc.assert(
    fc.property(fc.constantFrom('sgtin', 'sscc', 'grai'), fc.integer({ min: 0, max: 6 }), fc.bigInt({ min: 0n, max: 2n ** 38n - 1n }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (scheme, p, serial, a, b) => {
      const [, cpDigits, , refDigits] = TABLE[scheme].p[p];
      const cp = BigInt(Math.floor(a * (10 ** cpDigits - 1)));
      const ref = refDigits === 0 ? 0n : BigInt(Math.floor(b * (10 ** refDigits - 1)));
      const rest = scheme === 'sscc' ? 0n : serial;
      const hex = encode96(scheme, 1, p, cp, ref, rest);
      const cpS = cp.toString().padStart(cpDigits, '0');
      const refS = refDigits ? ref.toString().padStart(refDigits, '0') : '';
      const want = scheme === 'sscc' ? `urn:epc:id:sscc:${cpS}.${refS}` : `urn:epc:id:${scheme}:${cpS}.${refS}.${rest}`;
      return decodeEpc96(hex) === want && parseEpcUri(want) !== null;
    }),
    { numRuns: 500 },
  );
});

test('96-bit EPC: unknown headers, partition 7, oversized fields are refused', () => {
  assert.is(decodeEpc96('E2801160600002084A6B1F4C'), null); // a TID-like value, header 0xE2
  assert.is(decodeEpc96('307C257BF7194E4000001A85'), null); // partition 7
  assert.is(decodeEpc96(encode96('sgtin', 0, 6, 999999n + 1n, 1n, 1n)), null); // 7-digit company prefix in a 6-digit partition
  assert.is(decodeEpc96('3074257BF7194E40000'), null);
});

test('barcodes (GS1 element strings) → Digital Links, with check digits verified', () => {
  assert.is(barcodeToDigitalLink('(00)340123450000047111'), 'https://id.gs1.org/00/340123450000047111');
  assert.is(barcodeToDigitalLink('(01)09506000134352(21)ABC123'), 'https://id.gs1.org/01/09506000134352/21/ABC123');
  assert.is(barcodeToDigitalLink('(414)4012345000016(254)7'), 'https://id.gs1.org/414/4012345000016/254/7');
  assert.is(barcodeToDigitalLink('(8003)0401234500001642'), 'https://id.gs1.org/8003/0401234500001642');
  assert.match((barcodeToDigitalLink('(00)340123450000047112') as { error: string }).error, /check digit/);
  assert.match((barcodeToDigitalLink('(01)09506000134352') as { error: string }).error, /class/);
  assert.match((barcodeToDigitalLink('(17)251231') as { error: string }).error, /AI \(17\)/);
  assert.match((barcodeToDigitalLink('0950600013435') as { error: string }).error, /element string/);
});

test('reads as they go into events: EPC URIs kept, tag URIs and hex decoded, others explained', () => {
  assert.is(normaliseReadId('urn:epc:id:sscc:4012345.0000004711'), 'urn:epc:id:sscc:4012345.0000004711');
  assert.is(normaliseReadId('urn:epc:tag:sgtin-96:3.0614141.812345.6789'), 'urn:epc:id:sgtin:0614141.812345.6789');
  assert.is(normaliseReadId(' 3074257BF7194E4000001A85 '), 'urn:epc:id:sgtin:0614141.812345.6789');
  assert.is(normaliseReadId('https://example.com/01/09506000134352/21/ABC123?x=1'), 'https://id.gs1.org/01/09506000134352/21/ABC123');
  const err = (s: string) => (normaliseReadId(s) as { error: string }).error;
  assert.match(err('urn:epc:id:sscc:4012345.000000471'), /not a valid EPC/);
  assert.match(err('urn:epc:class:lgtin:4012345.012345.L1'), /many objects/);
  assert.match(err('https://example.com/01/09506000134353/21/ABC123'), /check digit/);
  assert.match(err('E2801160600002084A6B1F4C'), /unsupported scheme/);
  assert.match(err('hello'), /not an EPC URI/);
});

test.run();
