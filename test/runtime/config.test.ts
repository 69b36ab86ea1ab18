// The gateway config: every class of mistake gives the message one wants to
// read at 3 a.m. (file:line:col, key path, what was expected, a fix, "did you
// mean"), secrets never appear in messages, environment overrides reach every
// key, and the typed result has defaults, units and resolved paths.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkConfigFile, checkConfigText, ConfigError, envNameOf, formatIssue, loadConfig, parseConfig } from '../../runtime/config/index.js';
import { tempDir } from '../helpers/proc.js';

const OK = `device:
  id: reefer-0042
sensors:
  t-air: { kind: temperature, window: five }
  door: { kind: door }
ports:
  mcu: { path: /dev/ttyAMA0, sensors: [t-air, door] }
windows:
  five: { period: 5m }
assets:
  epcs: [urn:epc:id:sscc:4012345.0000000101]
locations:
  read_point: urn:epc:id:sgln:4012345.00001.0
signer:
  driver: pkcs11
  module: /usr/lib/softhsm/libsofthsm2.so
  token: reefer
  key_label: device-key
  pin_file: /etc/iscm-edge/pin
mqtt:
  url: mqtt://127.0.0.1:1883
trust:
  ledger_keys: [/etc/iscm-edge/ledger.pem]
`;

/** Formatted error lines for a config text (file "gw.yaml"). */
function errors(yaml: string, env: Record<string, string> = {}): string[] {
  return checkConfigText(yaml, 'gw.yaml', { env }).issues.filter((i) => i.severity === 'error').map(formatIssue);
}
const edit = (from: string, to: string) => {
  assert.ok(OK.includes(from), `fixture lacks ${from}`);
  return OK.replace(from, to);
};
function one(yaml: string, re: RegExp, env: Record<string, string> = {}): string {
  const e = errors(yaml, env);
  assert.is(e.length, 1, `expected one error, got:\n${e.join('\n')}`);
  assert.match(e[0], re);
  return e[0];
}

test('the fixture is valid and typed: defaults, durations in ms, sizes in bytes, client id from the device', () => {
  const c = parseConfig(OK, '/etc/iscm-edge/gw.yaml');
  assert.is(c.device.timezone_offset, '+00:00');
  assert.is(c.windows.five.period, 300_000);
  assert.is(c.windows.five.grace, 2000);
  assert.is(c.journal.quota, 1024 ** 3);
  assert.is(c.mqtt.prefix, 'iscm/v1');
  assert.is(c.mqtt.protocol, 5);
  assert.is(c.mqtt.client_id, 'reefer-0042');
  assert.is(c.metrics.listen, '127.0.0.1:9464');
  assert.equal(c.ports.mcu, { path: '/dev/ttyAMA0', baud: 115200, data_bits: 8, parity: 'none', stop_bits: 1, rs485: false, protocol: 'iscm-link', sensors: ['t-air', 'door'] });
  assert.equal(c.sensors.door, { kind: 'door', raw: false, alarm_type: 'Dimensionless', error_codes: [] });
  assert.equal(c.rules, {});
  assert.is(c.source, '/etc/iscm-edge/gw.yaml');
  assert.is(c.local_input, undefined, 'no local input socket unless configured');
  assert.equal(c.state, { dir: '/var/lib/iscm-edge/state' });
});

test('YAML syntax: position, and no source excerpt (a line might hold a secret)', () => {
  assert.match(errors('device:\n  id: a\n   bad: [1, 2\n')[0], /^gw\.yaml:\d+:\d+: YAML: /);
  one('device:\n\tid: a\n', /^gw\.yaml:2:1: tab used for indentation|^gw\.yaml:2:\d+: YAML/);
  one(edit('  id: reefer-0042\n', '  id: reefer-0042\n  id: again\n'), /^gw\.yaml:3:3: this key appears twice in the same section/);
  const e = errors('signer:\n  pin: 123456\n  x: [\n');
  assert.ok(e.length > 0 && e.every((l) => !l.includes('123456')));
});

test('unknown keys: rejected, with "did you mean" and the keys that exist', () => {
  one(edit('  url: mqtt://127.0.0.1:1883', '  url: mqtt://127.0.0.1:1883\n  windw: 4'), /^gw\.yaml:22:3: mqtt\.windw: unknown key \(did you mean "window"\?\); mqtt has: url, prefix, protocol/);
  one(edit('device:', 'devise:\n  x: 1\ndevice:'), /^gw\.yaml:1:1: devise: unknown key \(did you mean "device"\?\)/);
  one(edit('  door: { kind: door }', '  door: { kind: door, windw: five }'), /sensors\.door\.windw: unknown key \(did you mean "window"\?\)/);
  one(edit('trust:', 'trusted:\n  ledger_keys: [a]\ntrust:'), /trusted: unknown key \(did you mean "trust"\?\)/);
});

test('missing keys: where the section is, and what the key is for', () => {
  one(edit('  id: reefer-0042\n', '  timezone_offset: "+01:00"\n'), /^gw\.yaml:2:3: device\.id: missing: device needs "id" \(The device id/);
  const e = errors('device: { id: a }\n');
  assert.equal(e.map((l) => l.replace(/ \(.*/, '')), ['gw.yaml:1:1: signer: missing: the config needs "signer"', 'gw.yaml:1:1: mqtt: missing: the config needs "mqtt"', 'gw.yaml:1:1: trust: missing: the config needs "trust"']);
  assert.ok(errors('').length >= 4, 'an empty file misses device, signer, mqtt, trust');
});

test('wrong types: what was expected, what was found, and the fix', () => {
  one(edit('  id: reefer-0042', '  id: 0042'), /device\.id: expected 1\.\.64 of a-z 0-9 _ - .*, got 42; YAML read a number: write it in quotes \("0042"\)/);
  one(edit('  url: mqtt://127.0.0.1:1883', '  url: mqtt://127.0.0.1:1883\n  window: "16"'), /mqtt\.window: expected an integer from 1 to 1024, got "16"; remove the quotes/);
  one(edit('  mcu: { path: /dev/ttyAMA0,', '  mcu: { rs485: yes, path: /dev/ttyAMA0,'), /ports\.mcu\.rs485: expected true or false, got "yes"; YAML 1\.2 reads yes\/no\/on\/off as text/);
  one(edit('  read_point: urn:epc:id:sgln:4012345.00001.0', '  read_point:'), /locations\.read_point: expected an SGLN .*, got nothing \(an empty value\); give a value or remove the key/);
  one(edit('  ledger_keys: [/etc/iscm-edge/ledger.pem]', '  ledger_keys: /etc/iscm-edge/ledger.pem'), /trust\.ledger_keys: expected a list, got "\/etc\/iscm-edge\/ledger\.pem"/);
  one(edit('  five: { period: 5m }', '  five: [5m]'), /windows\.five: expected a section of keys, got a list/);
});

test('values: enums with suggestions, patterns with examples, durations and sizes with units and ranges', () => {
  one(edit('kind: temperature', 'kind: temprature'), /sensors\.t-air\.kind: expected one of "temperature", .*, got "temprature" \(did you mean "temperature"\?\)/);
  one(edit('  id: reefer-0042', '  id: Reefer 42'), /device\.id: expected 1\.\.64 of a-z 0-9 _ - \(starting with a letter or digit\), e\.g\. reefer-0042, got "Reefer 42"/);
  one(edit('  five: { period: 5m }', '  five: { period: 300 }'), /windows\.five\.period: expected a duration with a unit, like 500ms, 30s, 5m, 1h30m or 1d, got 300; a bare number is ambiguous, add a unit/);
  one(edit('  five: { period: 5m }', '  five: { period: 5 minutes }'), /got "5 minutes"/);
  one(edit('  five: { period: 5m }', '  five: { period: 500ms }'), /windows\.five\.period: 500ms is out of range: expected 1s to 1d/);
  one(edit('trust:', 'journal: { quota: "1 GB?" }\ntrust:'), /journal\.quota: expected a size: a byte count or a number with a unit, like 64KiB, 16MiB or 1GiB, got "1 GB\?"/);
  one(edit('trust:', 'journal: { quota: 1MiB }\ntrust:'), /journal\.quota: 1MiB is out of range: expected 16MiB to any/);
  one(edit('  url: mqtt://127.0.0.1:1883', '  url: mqtt://127.0.0.1:1883\n  protocol: 4'), /mqtt\.protocol: expected one of 5, "3\.1\.1", got 4/);
  one(edit('  url: mqtt://127.0.0.1:1883', '  url: tcp://127.0.0.1:1883'), /mqtt\.url: expected a URL like mqtt:\/\/127\.0\.0\.1:1883/);
});

test('secrets: only by reference; a literal secret is an error that says how to fix it and never shows the value', () => {
  const pin = '735194';
  const lines = [
    ...errors(edit('  pin_file: /etc/iscm-edge/pin', `  pin_file: /etc/iscm-edge/pin\n  pin: ${pin}`)),
    ...errors(edit('  token: reefer\n  key_label: device-key\n', `  uri: "pkcs11:token=reefer;object=k;pin-value=${pin}"\n`)),
    ...errors(edit('  url: mqtt://127.0.0.1:1883', `  url: mqtt://dev:${pin}@broker:1883`)),
    ...errors(edit('  url: mqtt://127.0.0.1:1883', `  url: mqtt://127.0.0.1:1883\n  password: "${pin}"`)),
    ...errors(edit('  pin_file: /etc/iscm-edge/pin', `  pin_env: "${pin}"`)),
    ...errors(OK, { ISCM__SIGNER__PIN: pin }),
  ];
  assert.is(lines.length, 6, lines.join('\n'));
  for (const l of lines) assert.not.ok(l.includes(pin), `secret in: ${l}`);
  assert.match(lines[0], /^gw\.yaml:20:3: signer\.pin: a PIN must not be written in the config file: put it in a file only the iscm-edge user can read and set signer\.pin_file: \/etc\/iscm-edge\/pin, or set signer\.pin_env: ISCM_PIN/);
  assert.match(lines[1], /signer\.uri: carries pin-value, a literal PIN: remove it and use signer\.pin_file or signer\.pin_env/);
  assert.match(lines[2], /mqtt\.url: carries credentials: remove user:password@ and use mqtt\.username with mqtt\.password_file or mqtt\.password_env/);
  assert.match(lines[3], /mqtt\.password: a password must not be written in the config file/);
  assert.match(lines[4], /signer\.pin_env: expected an environment variable name like ISCM_PIN, got another value \(not shown\)/);
  assert.match(lines[5], /^env ISCM__SIGNER__PIN: signer\.pin: a PIN must not be written/);
});

test('signer: driver-specific keys, exclusive keys', () => {
  one(edit('  pin_file: /etc/iscm-edge/pin', '  pin_file: /etc/iscm-edge/pin\n  pin_env: ISCM_PIN'), /signer: "pin_file" and "pin_env" exclude each other; keep one/);
  one(edit('  pin_file: /etc/iscm-edge/pin', '  pin_file: /etc/iscm-edge/pin\n  key_file: k.key'), /signer\.key_file: does not apply with driver: pkcs11; remove it/);
  const sw = edit('  driver: pkcs11\n  module: /usr/lib/softhsm/libsofthsm2.so\n  token: reefer\n  key_label: device-key\n  pin_file: /etc/iscm-edge/pin\n', '  driver: software\n');
  const e = errors(sw);
  assert.equal(e.map((l) => l.replace(/^gw\.yaml:\d+:\d+: /, '')), ['signer.key_file: missing: required with driver: software (software: the key file (iscm-edge keys create))', 'signer: with driver: software, one of "passphrase_file", "passphrase_env" is required']);
  one(edit('  token: reefer\n', ''), /signer: with key_label, name the token \(signer\.token\) or its slot \(signer\.slot\)/);
  one(edit('  driver: pkcs11', '  driver: tpm'), /signer\.driver: expected one of "pkcs11", "software", got "tpm"/);
});

test('references between sections: checked, with suggestions', () => {
  one(edit('sensors: [t-air, door]', 'sensors: [t-air, dor]'), /^gw\.yaml:7:\d+: ports\.mcu\.sensors\[1\]: sensor "dor" is not defined under sensors \(did you mean "door"\?\)/);
  one(edit('window: five }', 'window: fiv }'), /sensors\.t-air\.window: window "fiv" is not defined under windows \(did you mean "five"\?\)/);
  one(edit('  door: { kind: door }', '  door: { kind: door, window: five }'), /sensors\.door\.window: door sensors are not aggregated/);
  one(edit('  door: { kind: door }', '  door: { kind: door, station: { action: pack, parent_scheme: sscc } }'), /sensors\.door\.station: only rfid readers can be packing stations/);
  one(edit('trust:', 'rules:\n  hot: { sensor: t-ai, above: 8 }\ntrust:'), /rules\.hot\.sensor: sensor "t-ai" is not defined under sensors \(did you mean "t-air"\?\)/);
  one(edit('trust:', 'rules:\n  hot: { sensor: t-air }\ntrust:'), /rules\.hot: needs "above" or "below" \(the temperature threshold\)/);
  one(edit('trust:', 'rules:\n  hot: { sensor: t-air, kind: temperature, above: 8 }\ntrust:'), /rules\.hot: "sensor" and "kind" exclude each other/);
  one(edit('sensors: [t-air, door]', 'sensors: [t-air, door, door]'), /ports\.mcu\.sensors\[2\]: duplicate of item 1/);
});

test('GS1 identifiers: valid EPC URIs, the right level and scheme, check digits of Digital Links', () => {
  one(edit('epcs: [urn:epc:id:sscc:4012345.0000000101]', 'epcs: [urn:epc:id:sscc:4012345.000000010]'), /assets\.epcs\[0\]: "urn:epc:id:sscc:4012345\.000000010" is not a valid EPC URI \(GS1 Tag Data Standard §6/);
  one(edit('epcs: [urn:epc:id:sscc:4012345.0000000101]', 'epcs: [urn:epc:class:lgtin:4012345.012345.L1]'), /assets\.epcs\[0\]: expected an EPC URI like/);
  one(edit('epcs: [urn:epc:id:sscc:4012345.0000000101]', 'epcs: ["https://id.gs1.org/00/040123450000001014"]'), /has a wrong GS1 check digit/);
  one(edit('  read_point: urn:epc:id:sgln:4012345.00001.0', '  read_point: urn:epc:id:sgtin:4012345.011111.1'), /locations\.read_point: expected an SGLN like urn:epc:id:sgln:4012345\.00001\.0/);
  one(edit('epcs: [urn:epc:id:sscc:4012345.0000000101]', 'quantities: [{ epc_class: "urn:epc:id:sgtin:4012345.011111.1", quantity: 3 }]'), /assets\.quantities\[0\]\.epc_class: expected an EPC class URI/);
});

test('network exposure: metrics stay on loopback unless allowed', () => {
  one(edit('trust:', 'metrics: { listen: "0.0.0.0:9464" }\ntrust:'), /metrics\.listen: 0\.0\.0\.0:9464 is reachable from the network; .* set metrics\.allow_remote: true/);
  assert.equal(errors(edit('trust:', 'metrics: { listen: "0.0.0.0:9464", allow_remote: true }\ntrust:')), []);
  one(edit('  url: mqtt://127.0.0.1:1883', '  url: mqtt://127.0.0.1:1883\n  tls: { ca_file: ca.pem }'), /mqtt\.tls: TLS files are set but the url is mqtt:\/\/, which does not use TLS; use mqtts:\/\//);
});

test('inputs: an nmea port reports exactly one gps sensor; the local input socket and the state dir', () => {
  const gps = (sensors: string, kind = 'gps') => edit('  mcu: { path: /dev/ttyAMA0, sensors: [t-air, door] }', `  mcu: { path: /dev/ttyAMA0, sensors: [t-air, door] }\n  rx: { path: /dev/ttyUSB1, baud: 9600, protocol: nmea, sensors: [${sensors}] }`).replace('  door: { kind: door }', `  door: { kind: door }\n  g1: { kind: ${kind} }\n  g2: { kind: gps }`);
  assert.equal(errors(gps('g1')), []);
  one(gps('g1, g2'), /ports\.rx\.sensors: an nmea port reports its fixes as exactly one gps sensor; it lists 2/);
  one(gps('g1', 'shock'), /ports\.rx\.sensors\[0\]: sensor "g1" is shock; an nmea port can only report a gps sensor/);
  one(edit('  mcu: { path: /dev/ttyAMA0, sensors: [t-air, door] }', '  mcu: { path: /dev/ttyAMA0, protocol: modbus, sensors: [t-air, door] }'), /ports\.mcu\.protocol: expected one of "iscm-link", "nmea", got "modbus"/);
  const c = parseConfig(edit('trust:', 'local_input: { socket: /run/iscm-edge/readings.sock }\nstate: { dir: /data/iscm }\ntrust:'), '/etc/iscm-edge/gw.yaml');
  assert.equal(c.local_input, { socket: '/run/iscm-edge/readings.sock', mode: '0660', max_clients: 16 });
  assert.equal(c.state, { dir: '/data/iscm' });
  one(edit('trust:', 'local_input: { mode: "0600" }\ntrust:'), /local_input\.socket: missing/);
  one(edit('trust:', 'local_input: { socket: r.sock, mode: "rw-rw----" }\ntrust:'), /local_input\.mode: .*octal mode like 0660/);
});

test('every error at once, in file order; warnings do not fail', () => {
  const e = errors(edit('  id: reefer-0042', '  id: X').replace('kind: door', 'kind: dor').replace('  url: mqtt://127.0.0.1:1883', '  url: mqtt://127.0.0.1:1883\n  windw: 2'));
  assert.is(e.length, 3);
  const lines = e.map((l) => Number(/^gw\.yaml:(\d+):/.exec(l)![1]));
  assert.equal(lines, [...lines].sort((a, b) => a - b));
  const r = checkConfigText(edit('  door: { kind: door }', '  door: { kind: door }\n  spare: { kind: humidity }'), 'gw.yaml');
  assert.ok(r.config, 'valid');
  assert.match(formatIssue(r.issues[0]), /gw\.yaml:\d+:\d+: warning: sensors\.spare: is on no port/);
});

test('environment overrides: any key, sections, map entries, lists; precedence over the file; errors name the variable', () => {
  assert.is(envNameOf('mqtt.tls.ca_file'), 'ISCM__MQTT__TLS__CA_FILE');
  assert.is(envNameOf('sensors.t-air.window'), 'ISCM__SENSORS__T_AIR__WINDOW');
  assert.is(envNameOf('assets.epcs[0]'), 'ISCM__ASSETS__EPCS__0');
  const env = {
    ISCM__MQTT__URL: 'mqtts://broker.example:8883',
    ISCM__MQTT__TLS__CA_FILE: '/etc/ca.pem',
    ISCM__MQTT__WINDOW: '32',
    ISCM__SENSORS__T_AIR__RAW: 'true',
    ISCM__SENSORS__RH__KIND: 'humidity',
    ISCM__ASSETS__EPCS: '[urn:epc:id:sscc:4012345.0000000102, urn:epc:id:grai:4012345.00001.42]',
    ISCM__WINDOWS__FIVE__PERIOD: '10m',
    ISCM__DEVICE__ID: '007',
    ISCM_NOT_OURS: 'x',
  };
  const r = checkConfigText(OK, 'gw.yaml', { env });
  assert.ok(r.config, r.issues.map(formatIssue).join('\n'));
  const c = r.config!;
  assert.is(c.mqtt.url, 'mqtts://broker.example:8883');
  assert.is(c.mqtt.tls?.ca_file, '/etc/ca.pem');
  assert.is(c.mqtt.window, 32);
  assert.is(c.sensors['t-air'].raw, true);
  assert.is(c.sensors.rh.kind, 'humidity');
  assert.equal(c.assets.epcs, ['urn:epc:id:sscc:4012345.0000000102', 'urn:epc:id:grai:4012345.00001.42']);
  assert.is(c.windows.five.period, 600_000);
  assert.is(c.device.id, '007', 'text keys take the value as written');
  assert.equal(r.envApplied.sort(), Object.keys(env).filter((k) => k.startsWith('ISCM__')).sort());
  assert.is(checkConfigText(OK, 'gw.yaml', { env: { ISCM__ASSETS__EPCS__1: 'urn:epc:id:sscc:4012345.0000000103' } }).config?.assets.epcs[1], 'urn:epc:id:sscc:4012345.0000000103');
  one(OK, /^env ISCM__MQTT__WINDOWS: mqtt\.windows: unknown key \(did you mean "window"\?\)/, { ISCM__MQTT__WINDOWS: '3' });
  one(OK, /^env ISCM__MQTT__WINDOW: mqtt\.window: expected an integer from 1 to 1024, got "many"/, { ISCM__MQTT__WINDOW: 'many' });
  one(OK, /^env ISCM__ASSETS__EPCS__5: assets\.epcs\[5\]: list index 5 is past the end of the list/, { ISCM__ASSETS__EPCS__5: 'urn:epc:id:sscc:4012345.0000000103' });
  one(OK, /^env ISCM__MQTT____URL: empty segment/, { ISCM__MQTT____URL: 'x' });
  assert.equal(errors(OK, { ISCM__MQTT__URL: 'x' }).length, 1);
});

test('loadConfig: a file, relative paths resolved against its folder, ConfigError listing every problem', () => {
  const dir = tempDir('iscm-cfg-');
  const file = join(dir, 'gw.yaml');
  writeFileSync(file, OK.replace('/etc/iscm-edge/ledger.pem', 'keys/ledger.pem').replace('/etc/iscm-edge/pin', '../secrets/pin'));
  const c = loadConfig(file, {});
  assert.equal(c.trust.ledger_keys, [join(dir, 'keys', 'ledger.pem')]);
  assert.is(c.signer.pin_file, join(dir, '..', 'secrets', 'pin').replace(/\/[^/]+\/\.\.\//, '/'));
  assert.is(loadConfig(file, { ISCM__DEVICE__ID: 'other' }).device.id, 'other');
  writeFileSync(file, 'device: { id: X }\n');
  try {
    loadConfig(file, {});
    assert.unreachable();
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.is((e as ConfigError).code, 'CONFIG_INVALID');
    assert.match((e as Error).message, /^invalid config \(4 errors\):\n  /);
    assert.match((e as Error).message, /\n  .*gw\.yaml:1:15: device\.id: expected 1\.\.64 of a-z/);
    assert.is((e as ConfigError).issues.length, 4);
  }
  assert.match(formatIssue(checkConfigFile(join(dir, 'nope.yaml')).issues[0]), /nope\.yaml: cannot read the config file \(no such file\)/);
});

test('--files: referenced files exist, secret files are private, *_env variables are set', () => {
  const dir = tempDir('iscm-files-');
  mkdirSync(join(dir, 'j'));
  writeFileSync(join(dir, 'ledger.pem'), 'x');
  writeFileSync(join(dir, 'pin'), '1234');
  chmodSync(join(dir, 'pin'), 0o644);
  const text = OK.replace('/etc/iscm-edge/ledger.pem', 'ledger.pem').replace('/etc/iscm-edge/pin', 'pin').replace('trust:', `journal: { dir: j }\ntrust:`).replace('  module: /usr/lib/softhsm/libsofthsm2.so', '  module: missing.so');
  const file = join(dir, 'gw.yaml');
  writeFileSync(file, text);
  const r = checkConfigFile(file, { files: true, env: {} });
  const msgs = r.issues.filter((i) => i.severity === 'error').map((i) => `${i.path}: ${i.message}`);
  assert.equal(msgs, [`signer.module: ${join(dir, 'missing.so')} does not exist`, `signer.pin_file: ${join(dir, 'pin')} is readable by other users (mode 644); it holds a secret: chmod 600 ${join(dir, 'pin')}`]);
  assert.not.ok(msgs.join().includes('1234'));
  chmodSync(join(dir, 'pin'), 0o600);
  writeFileSync(join(dir, 'missing.so'), '');
  assert.ok(checkConfigFile(file, { files: true }).config);
  writeFileSync(file, text.replace('  pin_file: pin', '  pin_env: ISCM_TEST_PIN'));
  assert.match(formatIssue(checkConfigFile(file, { files: true, env: {} }).issues.find((i) => i.severity === 'error')!), /signer\.pin_env: environment variable ISCM_TEST_PIN is not set/);
  assert.ok(checkConfigFile(file, { files: true, env: { ISCM_TEST_PIN: 'x' } }).config);
});

test.run();
