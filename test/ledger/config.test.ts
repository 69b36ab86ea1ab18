// The ledger's config file: the shipped examples load; every mistake is
// reported with FILE:LINE:COL, the key path and a useful message; unknown keys
// get a did-you-mean; secrets are refused unless given by reference.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig } from '../../ledger/config/config.js';
import { parseDuration, parseSize } from '../../ledger/config/check.js';
import { LedgerError } from '../../ledger/errors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

const BASE = `chain_id: t-1
store:
  kind: etcd
  endpoints: [http://127.0.0.1:2379]
signer:
  kind: software
  key_file: node.key
registry:
  operator_keys: [op.pem]
`;

function errors(text: string): string[] {
  try {
    parseConfig(text, 'ledger.yaml');
  } catch (e) {
    assert.instance(e, LedgerError);
    assert.is((e as LedgerError).code, 'CONFIG');
    return (e as Error).message.split('\n');
  }
  assert.unreachable('config accepted');
  return [];
}

test('the shipped example configs load', () => {
  const c = loadConfig(join(root, 'configs/ledger.yaml'));
  assert.is(c.chainId, 'consortium-1');
  assert.is(c.store.kind, 'etcd');
  assert.is(c.sequencer.blockIntervalMs, 1000);
  assert.is(c.sequencer.electionTtlS, 3);
  assert.is(c.store.kind === 'etcd' && c.store.maxRequestBytes, 4 * 1024 * 1024);
  assert.equal(c.mqtt!.password, { env: 'ISCM_LEDGER_MQTT_PASSWORD' });
  assert.is(c.archive!.hotMaxBytes, 1024 ** 3);
  assert.is(c.archive!.hotMaxAgeMs, 24 * 3_600_000);
  const d = loadConfig(join(root, 'configs/ledger-devnet.yaml'));
  assert.is(d.store.kind, 'memory');
  assert.is(d.sequencer.blockIntervalMs, 250);
  assert.is(d.registry.operatorKeys[0], join(root, '.tmp/devnet-operator.pem'), 'paths are relative to the config file');
});

test('defaults', () => {
  const c = parseConfig(BASE, '/etc/iscm/ledger.yaml');
  assert.is(c.sequencer.blockIntervalMs, 1000);
  assert.is(c.store.kind === 'etcd' && c.store.prefix, '/iscm/t-1/');
  assert.is(c.store.kind === 'etcd' && c.store.maxTxnOps, 128);
  assert.is(c.api.listen, '127.0.0.1:8480');
  assert.equal(c.signer, { kind: 'software', keyFile: '/etc/iscm/node.key', passphrase: { env: 'ISCM_LEDGER_KEY_PASSPHRASE' } });
  assert.is(c.mqtt, undefined);
  const m = parseConfig(BASE + 'mqtt: { url: "mqtt://127.0.0.1:1883" }\n', '/etc/iscm/ledger.yaml').mqtt!;
  assert.equal([m.protocol, m.shareGroup], [5, 'ledger'], 'MQTT 5 with a shared subscription by default');
  assert.is(m.reconnectMaxMs, 15_000, 'reconnect backoff capped at 15 s by default');
  assert.is(parseConfig(BASE + 'mqtt: { url: "mqtt://127.0.0.1:1883", reconnect_max: 2m }\n', 'l.yaml').mqtt!.reconnectMaxMs, 120_000);
  assert.match(errors(BASE + 'mqtt: { url: "mqtt://127.0.0.1:1883", reconnect_max: 100ms }\n').join('\n'), /mqtt\.reconnect_max: must be between 1s and 10m, got "100ms"/);
  assert.is(parseConfig(BASE + 'mqtt: { url: "mqtt://127.0.0.1:1883", protocol: "3.1.1" }\n', 'l.yaml').mqtt!.protocol, 4);
  assert.match(errors(BASE + 'mqtt: { url: "mqtt://127.0.0.1:1883", protocol: "3.1.1", share_group: g }\n').join('\n'), /mqtt\.share_group: shared subscriptions need MQTT 5/);
  assert.match(errors(BASE + 'mqtt: { url: "mqtt://127.0.0.1:1883", protocol: 4 }\n').join('\n'), /mqtt\.protocol/);
});

test('unknown keys: position and did-you-mean', () => {
  const e = errors(BASE + 'sequencer:\n  blok_interval: 1s\n');
  assert.equal(e, ['ledger.yaml:11:3: sequencer.blok_interval: unknown key (did you mean "block_interval"?)']);
  const e2 = errors(BASE.replace('chain_id', 'chian_id'));
  assert.match(e2.join('\n'), /ledger\.yaml:1:1: chian_id: unknown key \(did you mean "chain_id"\?\)/);
  assert.match(e2.join('\n'), /chain_id: required key is missing/);
});

test('secrets in the file are refused, by reference they are fine', () => {
  const e = errors(BASE.replace('  key_file: node.key', '  key_file: node.key\n  passphrase: hunter2hunter2'));
  assert.is(e.length, 1);
  assert.match(e[0], /^ledger\.yaml:8:3: signer\.passphrase: secrets are never written in config files: give passphrase_env .* or passphrase_file/);
  assert.not.match(e[0], /hunter2/);
  const e2 = errors(BASE + 'mqtt:\n  url: mqtt://h:1883\n  username: u\n  password: pw\n');
  assert.match(e2.join('\n'), /ledger\.yaml:13:3: mqtt\.password: secrets are never written/);
  const ok = parseConfig(BASE + 'mqtt:\n  url: mqtt://h:1883\n  username: u\n  password_file: /run/secrets/mqtt\n', 'x.yaml');
  assert.equal(ok.mqtt!.password, { file: '/run/secrets/mqtt' });
  assert.match(errors(BASE + 'mqtt:\n  url: mqtt://h:1883\n  username: u\n').join('\n'), /mqtt\.username: username needs password_env or password_file/);
});

test('wrong types, ranges, enums, durations and sizes name the place', () => {
  const e = errors(`chain_id: t-1
store:
  kind: etcdd
  max_txn_ops: 5
signer:
  kind: software
  key_file: k
sequencer:
  block_interval: 50ms
  election_ttl: 1500ms
registry:
  operator_keys: []
api:
  listen: 0.0.0.0:8480
`);
  const all = e.join('\n');
  assert.match(all, /ledger\.yaml:3:9: store\.kind: must be one of "etcd", "memory", got "etcdd" \(did you mean "etcd"\?\)/);
  assert.match(all, /ledger\.yaml:4:16: store\.max_txn_ops: must be 16\.\.100000, got 5/);
  assert.match(all, /ledger\.yaml:9:19: sequencer\.block_interval: must be between 100ms and 1m, got "50ms"/);
  assert.match(all, /sequencer\.election_ttl: must be between 2s and 1m/);
  assert.match(all, /registry\.operator_keys: expected at least 1 entry/);
  const e2 = errors(BASE + 'api:\n  listen: 0.0.0.0:8480\n');
  assert.match(e2.join('\n'), /ledger\.yaml:11:3: api\.listen: 0\.0\.0\.0:8480 is not a loopback address/);
  parseConfig(BASE + 'api:\n  listen: 0.0.0.0:8480\n  allow_remote: true\n', 'x.yaml');
  assert.match(errors(BASE + 'sequencer:\n  block_interval: fast\n').join('\n'), /expected a duration like "250ms"/);
  assert.match(errors(BASE.replace('kind: etcd', 'kind: memory')).join('\n'), /store\.endpoints: only for store kind "etcd"/);
  assert.match(errors(BASE.replace('  endpoints: [http://127.0.0.1:2379]\n', '')).join('\n'), /store: endpoints is required for store kind "etcd"/);
  const p11 = errors(BASE.replace('kind: software\n  key_file: node.key', 'kind: pkcs11\n  module: /usr/lib/softhsm/libsofthsm2.so')).join('\n');
  assert.match(p11, /signer: uri, or token, serial or slot_id, is required/);
  assert.match(p11, /signer: uri, or the key label or id, is required/);
  assert.match(errors(BASE.replace('kind: software\n  key_file: node.key', 'kind: pkcs11\n  module: /m.so\n  uri: "pkcs11:token=a;object=b"\n  pin: 1234')).join('\n'), /signer\.pin: secrets are never written/);
  const ok11 = parseConfig(BASE.replace('kind: software\n  key_file: node.key', 'kind: pkcs11\n  module: /usr/lib/softhsm/libsofthsm2.so\n  uri: "pkcs11:token=ledger;object=sth"\n  pin_file: /run/credentials/pin'), 'x.yaml');
  assert.equal(ok11.signer, { kind: 'pkcs11', module: '/usr/lib/softhsm/libsofthsm2.so', uri: 'pkcs11:token=ledger;object=sth', token: undefined, serial: undefined, slotId: undefined, label: undefined, id: undefined, pin: { file: '/run/credentials/pin' } });
});

test('YAML syntax errors and duplicate keys carry a position', () => {
  assert.match(errors('chain_id: [unclosed\n').join('\n'), /^ledger\.yaml:\d+:\d+: YAML: /);
  assert.match(errors(BASE + 'chain_id: again\n').join('\n'), /ledger\.yaml:10:1: YAML: Map keys must be unique/);
  assert.match(errors('').join('\n'), /the file is empty/);
});

test('durations and sizes', () => {
  assert.is(parseDuration('250ms'), 250);
  assert.is(parseDuration('1.5s'), 1500);
  assert.is(parseDuration('24h'), 86_400_000);
  assert.is(parseDuration('5 parsecs'), undefined);
  assert.is(parseSize('4MiB'), 4 * 1024 * 1024);
  assert.is(parseSize('1GB'), 1e9);
  assert.is(parseSize(1024), 1024);
  assert.is(parseSize('lots'), undefined);
});

test.run();
