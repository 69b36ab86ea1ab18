// PKCS#10 CSRs (RFC 2986) built by drivers/csr: DER writer, subjects, and
// `openssl req -verify` on requests signed by software keys of every alg.
// (CSRs signed on a SoftHSM token are tested in test/cli/keys.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../protocol/bytes.js';
import { IscmError } from '../../protocol/errors.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { createCsr, parseSubject, formatName } from '../../drivers/csr/pkcs10.js';
import { ecdsaDerToRaw, ecdsaRawToDer, integer, integerFromUnsigned, oid, oidContent, oidToString, readSingle, readTlv, sequence, setOf, tlv } from '../../drivers/csr/der.js';
import { haveCommand, tempDir } from '../helpers/proc.js';

const hex = (b: Uint8Array) => toHex(b);

test('DER writer: lengths, integers, OIDs, SET OF order', () => {
  assert.is(hex(tlv(0x04, new Uint8Array(0))), '0400');
  assert.is(hex(tlv(0x04, new Uint8Array(127))).slice(0, 4), '047f');
  assert.is(hex(tlv(0x04, new Uint8Array(128))).slice(0, 6), '048180');
  assert.is(hex(tlv(0x04, new Uint8Array(256))).slice(0, 8), '04820100');
  assert.is(hex(integer(0)), '020100');
  assert.is(hex(integer(127)), '02017f');
  assert.is(hex(integer(128)), '02020080');
  assert.is(hex(integer(65537)), '0203010001');
  assert.is(hex(integerFromUnsigned(Uint8Array.from([0, 0, 0x80]))), '02020080');
  assert.is(hex(oid('1.2.840.10045.3.1.7')), '06082a8648ce3d030107');
  assert.is(hex(oid('1.3.101.112')), '06032b6570');
  assert.is(hex(oid('2.999.3')), '0603883703');
  assert.is(oidToString(oidContent('1.2.840.113549.1.1.10')), '1.2.840.113549.1.1.10');
  assert.is(oidToString(oidContent('2.999.3')), '2.999.3');
  assert.is(hex(setOf(Uint8Array.of(0x02, 0x01, 0x05), Uint8Array.of(0x02, 0x01, 0x01))), '3106020101020105');
  assert.is(hex(sequence()), '3000');
});

test('DER reader: strict lengths, trailing bytes refused', () => {
  const t = readTlv(Uint8Array.from([0x04, 0x81, 0x80, ...new Uint8Array(128)]));
  assert.is(t.value.length, 128);
  for (const bad of [
    [0x04, 0x81, 0x05, 1, 2, 3, 4, 5], // non-minimal long form
    [0x04, 0x80], // indefinite
    [0x04, 0x05, 1], // truncated
  ])
    assert.throws(() => readTlv(Uint8Array.from(bad)), (e: unknown) => e instanceof IscmError && e.code === 'INVALID_FIELD');
  assert.throws(() => readSingle(Uint8Array.from([0x05, 0x00, 0x00])), /trailing/);
});

test('ECDSA raw r‖s <-> DER', () => {
  const raw = new Uint8Array(64);
  raw[0] = 0x80; // r needs a 0x00 pad
  raw[63] = 1; // s = 1
  const der = ecdsaRawToDer(raw);
  assert.is(hex(der).slice(0, 10), '3026022100');
  assert.is(hex(ecdsaDerToRaw(der, 32)), hex(raw));
  assert.throws(() => ecdsaDerToRaw(Uint8Array.from([0x30, 0x03, 0x02, 0x01, 0x01]), 32), /two INTEGERs/);
});

test('subjects: RFC 4514 (reversed) and OpenSSL (forward) forms, escapes, multi-valued RDNs', () => {
  const a = parseSubject('CN=gw-17,O=Acme Logistics\\, Inc.,C=DE');
  assert.equal(a, [[{ type: 'C', value: 'DE' }], [{ type: 'O', value: 'Acme Logistics, Inc.' }], [{ type: 'CN', value: 'gw-17' }]]);
  const b = parseSubject('/C=DE/O=Acme Logistics, Inc./CN=gw-17');
  assert.equal(b, a);
  assert.equal(parseSubject('CN=a+OU=b'), [[{ type: 'CN', value: 'a' }, { type: 'OU', value: 'b' }]]);
  assert.equal(parseSubject('CN=caf\\c3\\a9'), [[{ type: 'CN', value: 'café' }]]);
  assert.equal(parseSubject('/CN=a\\/b'), [[{ type: 'CN', value: 'a/b' }]]);
  assert.is(formatName(a), 'CN=gw-17,O=Acme Logistics\\, Inc.,C=DE');
  assert.equal(parseSubject('emailAddress=ops@example.com,DC=example,serialNumber=A1'), [
    [{ type: 'SERIALNUMBER', value: 'A1' }],
    [{ type: 'DC', value: 'example' }],
    [{ type: 'EMAILADDRESS', value: 'ops@example.com' }],
  ]);
  for (const [bad, re] of [
    ['', /empty/],
    ['CN', /not TYPE=value/],
    ['XX=1', /unsupported subject attribute/],
    ['C=Germany', /two-letter/],
    ['CN=', /empty/],
    ['CN=a,,O=b', /empty RDN/],
    ['CN=#0403', /hex-encoded/],
    ['CN=a\\q', /bad escape/],
    ['CN=' + 'x'.repeat(65), /longer than 64/],
    ['CN=a\\ff', /not UTF-8/],
  ] as const)
    assert.throws(() => parseSubject(bad), (e: unknown) => e instanceof IscmError && e.code === 'USAGE' && re.test(e.message));
});

const ALGS = [
  { name: 'ES256', alg: ALG.ES256, type: 'ec', opts: { namedCurve: 'prime256v1' }, sigalg: /ecdsa-with-SHA256/ },
  { name: 'EdDSA', alg: ALG.EdDSA, type: 'ed25519', opts: {}, sigalg: /ED25519/i },
  { name: 'PS256', alg: ALG.PS256, type: 'rsa', opts: { modulusLength: 2048 }, sigalg: /rsassaPss/ },
  { name: 'ES256K', alg: ALG.ES256K, type: 'ec', opts: { namedCurve: 'secp256k1' }, sigalg: /ecdsa-with-SHA256/ },
] as const;

/**
 * `openssl req -verify` output (stdout + stderr). OpenSSL 3.0 exits 0 even when
 * the self-signature does not verify, so callers must look for "verify OK".
 */
function opensslVerify(file: string, inform = 'PEM'): string {
  const r = spawnSync('openssl', ['req', '-in', file, '-inform', inform, '-verify', '-noout', '-subject', '-nameopt', 'RFC2253'], { encoding: 'utf8' });
  return `${r.stdout}\n${r.stderr}`;
}

const hasOpenssl = haveCommand('openssl', 'openssl', 'pkcs11-csr openssl checks');
const dir = tempDir('iscm-csr-');

for (const a of ALGS) {
  test(`CSR signed by a software ${a.name} key: openssl req -verify accepts it`, async () => {
    const { privateKey } = generateKeyPairSync(a.type as 'ec', a.opts as { namedCurve: string });
    const signer = softwareSignerFromKey(a.alg, privateKey);
    const csr = await createCsr(signer, {
      subject: 'CN=gateway-17+UID=truck\\,7,O=Acme Logistics\\, Inc.,C=DE',
      dns: ['gw17.example.com'],
      ip: ['10.1.2.3', '2001:db8::1'],
      uri: ['urn:iscm:device:gw17'],
    });
    assert.match(csr.pem, /^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE REQUEST-----\n$/);
    if (!hasOpenssl) return;
    const f = join(dir, `${a.name}.csr`);
    writeFileSync(f, csr.pem);
    const out = opensslVerify(f);
    assert.match(out, /self-signature verify OK/);
    assert.match(out, /subject=(UID=truck\\,7\+CN=gateway-17|CN=gateway-17\+UID=truck\\,7),O=Acme Logistics\\, Inc\.,C=DE/);
    const text = execFileSync('openssl', ['req', '-in', f, '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, a.sigalg);
    assert.match(text, /DNS:gw17\.example\.com/);
    assert.match(text, /IP Address:10\.1\.2\.3/);
    assert.match(text, /IP Address:2001:DB8:0:0:0:0:0:1/);
    assert.match(text, /URI:urn:iscm:device:gw17/);
    assert.match(text, /TLS Web Client Authentication/);
    // A flipped signature bit must make openssl refuse.
    const der = new Uint8Array(csr.der);
    der[der.length - 5] ^= 0x01;
    const bad = join(dir, `${a.name}-bad.der`);
    writeFileSync(bad, der);
    const badOut = opensslVerify(bad, 'DER');
    assert.not.match(badOut, /verify OK/);
    assert.match(badOut, /verify failure|did not match|bad signature/i);
  });
}

test('CSR input errors are USAGE', async () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const signer = softwareSignerFromKey(ALG.EdDSA, privateKey);
  for (const opts of [{ subject: 'CN=x', dns: ['bad name'] }, { subject: 'CN=x', ip: ['300.1.1.1'] }, { subject: 'CN=x', uri: ['no-scheme'] }, { subject: 'nope' }]) {
    try {
      await createCsr(signer, opts);
      assert.unreachable(`accepted ${JSON.stringify(opts)}`);
    } catch (e) {
      assert.ok(e instanceof IscmError && e.code === 'USAGE', String(e));
    }
  }
  // Without SANs and client auth, the attributes are an empty [0] SET.
  const csr = await createCsr(signer, { subject: 'CN=x', clientAuth: false });
  assert.ok(hex(csr.der).includes('a000'));
});

test.run();
