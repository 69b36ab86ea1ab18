// RFC 7512 pkcs11: URIs, selection merging and the config section (no token needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex } from '../../protocol/bytes.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { formatPkcs11Uri, parsePkcs11Uri } from '../../drivers/pkcs11/uri.js';
import { Pkcs11DriverError } from '../../drivers/pkcs11/errors.js';
import { resolveSelection } from '../../drivers/pkcs11/token.js';
import { pkcs11OptionsFromConfig } from '../../drivers/pkcs11/config.js';

function throwsReason(fn: () => unknown, reason: string, re?: RegExp): Pkcs11DriverError {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof Pkcs11DriverError)) {
      assert.unreachable(`expected Pkcs11DriverError ${reason}, got ${(e as Error)?.stack ?? e}`);
      throw e;
    }
    assert.is(e.reason, reason, `reason (message: ${e.message})`);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.unreachable(`expected ${reason}, nothing thrown`);
  throw new Error('unreachable');
}

test('RFC 7512 §3 examples parse', () => {
  const a = parsePkcs11Uri('pkcs11:object=my-pubkey;type=public');
  assert.equal(a, { object: 'my-pubkey', type: 'public' });

  const b = parsePkcs11Uri(
    'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin',
  );
  assert.is(b.token, 'The Software PKCS#11 Softtoken');
  assert.is(b.manufacturer, 'Snake Oil, Inc.');
  assert.is(b.model, '1.0');
  assert.is(b.object, 'my-certificate');
  assert.is(b.type, 'cert');
  assert.is(toHex(b.id!), '69953e5cf4bdec91');
  assert.is(b.serial, '');
  assert.is(b.pinSource, '/etc/token_pin');

  const c = parsePkcs11Uri('pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=public');
  assert.is(c.token, 'A name with a substring %;');
  const d = parsePkcs11Uri('pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=public');
  assert.is(d.token, 'Name with a small A with acute: á');
  const e = parsePkcs11Uri('pkcs11:slot-description=Sun%20Metaslot');
  assert.is(e.slotDescription, 'Sun Metaslot');
  const f = parsePkcs11Uri('pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23');
  assert.is(f.libraryVersion, '1.23');
  assert.is(f.libraryDescription, 'Soft Token Library');
  const g = parsePkcs11Uri('pkcs11:');
  assert.equal(g, {});
  const h = parsePkcs11Uri('pkcs11:slot-id=42;token=gw?module-path=/usr/lib/softhsm/libsofthsm2.so');
  assert.is(h.slotId, 42);
  assert.is(h.modulePath, '/usr/lib/softhsm/libsofthsm2.so');
});

test('id takes raw bytes, text attributes must be UTF-8', () => {
  assert.is(toHex(parsePkcs11Uri('pkcs11:id=%00%FFa').id!), '00ff61');
  throwsReason(() => parsePkcs11Uri('pkcs11:token=%FF%FE'), 'URI_INVALID', /UTF-8/);
});

test('pin-value is refused, pin-source is a file', () => {
  const e = throwsReason(() => parsePkcs11Uri('pkcs11:token=gw?pin-value=1234'), 'URI_INVALID', /ISCM_PKCS11_PIN/);
  assert.is(e.code, 'USAGE');
  assert.not.match(e.message, /1234/);
  assert.is(parsePkcs11Uri('pkcs11:token=gw?pin-source=/run/pin').pinSource, '/run/pin');
  throwsReason(() => parsePkcs11Uri('pkcs11:token=gw?pin-source=https://x/pin'), 'URI_INVALID', /file path or a file: URI/);
});

test('malformed URIs get typed errors', () => {
  const cases: [string, RegExp][] = [
    ['http://x', /must start with "pkcs11:"/],
    ['pkcs11:token=a;token=b', /appears twice/],
    ['pkcs11:tokne=gw', /unknown pkcs11 URI path attribute "tokne"/],
    ['pkcs11:x-vendor=1', /unknown/],
    ['pkcs11:token=gw;;object=k', /empty path attribute/],
    ['pkcs11:token', /not name=value/],
    ['pkcs11:token=a b', /percent-encoded/],
    ['pkcs11:token=a%2', /percent-encoded|bad %XX/],
    ['pkcs11:token=a%zz', /percent-encoded|bad %XX/],
    ['pkcs11:type=secret', /type must be one of/],
    ['pkcs11:slot-id=-1', /slot-id must be a decimal/],
    ['pkcs11:slot-id=01', /slot-id must be a decimal/],
    ['pkcs11:library-version=abc', /library-version/],
    ['pkcs11:module-path=/x.so', /belongs in the query/],
    ['pkcs11:?token=gw', /belongs in the path/],
    ['pkcs11:?module-path=relative.so', /absolute path/],
    ['pkcs11:?module-name=../evil', /bare library name/],
  ];
  for (const [uri, re] of cases) throwsReason(() => parsePkcs11Uri(uri), 'URI_INVALID', re);
  throwsReason(() => parsePkcs11Uri('pkcs11:token=' + 'a'.repeat(5000)), 'URI_INVALID', /longer than 4096/);
  throwsReason(() => parsePkcs11Uri(42 as unknown as string), 'URI_INVALID');
});

test('format → parse round trip, with characters that need encoding', () => {
  const uri = {
    token: 'Gate way; #1 & co/100%',
    manufacturer: 'SoftHSM project',
    serial: '9e181b30cb194f0b',
    object: 'batch=key?ü',
    id: Uint8Array.from([0, 1, 0xfe, 0x25]),
    type: 'private' as const,
    modulePath: '/usr/lib/softhsm/libsofthsm2.so',
    pinSource: '/run/credentials/pin & more',
  };
  const text = formatPkcs11Uri(uri);
  assert.match(text, /^pkcs11:token=Gate%20way%3B%20%231%20%26%20co%2F100%25;manufacturer=/);
  assert.match(text, /id=%00%01%FE%25/);
  const back = parsePkcs11Uri(text);
  assert.equal({ ...back, id: toHex(back.id!) }, { ...uri, id: toHex(uri.id) });
});

test('resolveSelection merges the URI and separate fields, refusing contradictions', () => {
  const r = resolveSelection({ uri: 'pkcs11:token=gw;object=k?module-path=/m.so', id: '0a0b', pinFile: '/p', env: {} });
  assert.is(r.modulePath, '/m.so');
  assert.is(r.token.token, 'gw');
  assert.is(r.key.label, 'k');
  assert.is(toHex(r.key.id!), '0a0b');
  assert.is(r.pin.pinFile, '/p');
  throwsReason(() => resolveSelection({ uri: 'pkcs11:token=gw', token: 'other', module: '/m.so' }), 'URI_INVALID', /disagree/);
  throwsReason(() => resolveSelection({ uri: 'pkcs11:id=%01', id: '02', module: '/m.so' }), 'URI_INVALID', /disagree/);
  throwsReason(() => resolveSelection({ uri: 'pkcs11:token=gw?module-path=/a.so', module: '/b.so' }), 'URI_INVALID', /disagree/);
  // Same value twice is fine.
  assert.is(resolveSelection({ uri: 'pkcs11:token=gw', token: 'gw', module: '/m.so' }).token.token, 'gw');
  throwsReason(() => resolveSelection({ token: 'gw' }), 'MODULE_LOAD_FAILED', /no PKCS#11 module given/);
  throwsReason(() => resolveSelection({ module: '/m.so', id: 'xyz' }), 'URI_INVALID', /hex/);
  throwsReason(() => resolveSelection({ module: '/m.so', uri: 'pkcs11:type=cert' }), 'URI_INVALID', /type=private/);
  throwsReason(() => resolveSelection({ uri: 'pkcs11:token=gw?module-name=no-such-module-xyz' }), 'MODULE_LOAD_FAILED', /not found \(looked for/);
});

test('config section: validated, PIN fields refused', () => {
  const o = pkcs11OptionsFromConfig({
    driver: 'pkcs11',
    module: '/usr/lib/softhsm/libsofthsm2.so',
    uri: 'pkcs11:token=gw;object=batch',
    pin_file: '/run/pin',
    alg: 'ES256',
    sessions: 3,
    blocking: true,
    reopen_interval_ms: 500,
    expect_kid: 'ab'.repeat(32),
  });
  assert.is(o.alg, ALG.ES256);
  assert.is(o.sessions, 3);
  assert.is(o.blocking, true);
  assert.is(o.pinFile, '/run/pin');
  assert.is(o.expectKid!.length, 32);
  for (const secret of ['pin', 'PIN', 'pin_value', 'user_pin', 'password']) {
    const e = throwsReason(() => pkcs11OptionsFromConfig({ module: '/m.so', [secret]: '123456' }), 'URI_INVALID', /never go in a config file/);
    assert.not.match(e.message, /123456/);
  }
  throwsReason(() => pkcs11OptionsFromConfig({ module: '/m.so', sesions: 2 }), 'URI_INVALID', /unknown field/);
  throwsReason(() => pkcs11OptionsFromConfig({ module: 'relative.so' }), 'URI_INVALID', /absolute/);
  throwsReason(() => pkcs11OptionsFromConfig({ uri: 'pkcs11:token=gw' }), 'URI_INVALID', /module: required/);
  assert.ok(pkcs11OptionsFromConfig({ uri: 'pkcs11:token=gw?module-path=/m.so' }));
  throwsReason(() => pkcs11OptionsFromConfig({ module: '/m.so', alg: 'ES384' }), 'URI_INVALID', /alg/);
  throwsReason(() => pkcs11OptionsFromConfig({ module: '/m.so', sessions: 0 }), 'URI_INVALID', /sessions/);
  throwsReason(() => pkcs11OptionsFromConfig({ module: '/m.so', expect_kid: 'abcd' }), 'URI_INVALID', /32 bytes/);
  throwsReason(() => pkcs11OptionsFromConfig('x'), 'URI_INVALID', /map/);
});

test.run();
