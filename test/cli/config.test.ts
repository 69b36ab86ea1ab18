// `iscm-edge config` as an operator runs it: exit codes, one line per problem
// with file:line:col, JSON output, environment overrides, and the schema it
// prints. Through main() in-process (fast), and once as a child process.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/proc.js';
import { main } from '../../runtime/cli/iscm-edge.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = tempDir('iscm-cli-config-');

process.chdir(root);
async function cli(args: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l + '\n'), err: (l) => err.push(l + '\n'), env });
  return { code, out: out.join(''), err: err.join('') };
}

test('as a process: exit codes and streams', () => {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ISCM__')));
  const spawn = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(root, 'runtime/cli/iscm-edge.ts'), ...args], { cwd: root, encoding: 'utf8', env: clean, timeout: 60_000 });
  const ok = spawn(['config', 'check', 'configs/devnet.yaml']);
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^configs\/devnet\.yaml: ok/);
  const bad = spawn(['config', 'check', join(root, 'configs/golden/devnet.readings.jsonl')]);
  assert.is(bad.status, 1);
  const usage = spawn(['config', 'check']);
  assert.is(usage.status, 2);
  assert.match(usage.stderr, /usage: iscm-edge config check/);
});

test('config check: the example configs are valid (exit 0, one summary line each)', async () => {
  const r = await cli(['config', 'check', 'configs/reefer.yaml', 'configs/dock-door.yaml', 'configs/devnet.yaml']);
  assert.is(r.code, 0, r.out + r.err);
  assert.equal(r.out.trim().split('\n'), [
    'configs/reefer.yaml: ok (device reefer-0042: 1 port(s), 6 sensor(s), 1 window(s), 3 rule(s), signer pkcs11)',
    'configs/dock-door.yaml: ok (device dock-07: 2 port(s), 6 sensor(s), 1 window(s), 2 rule(s), signer pkcs11)',
    'configs/devnet.yaml: ok (device devnet-1: 1 port(s), 3 sensor(s), 0 window(s), 2 rule(s), signer software)',
  ]);
});

test('config check: an invalid file (exit 1), every problem on its own line, the secret never shown', async () => {
  const file = join(tmp, 'bad.yaml');
  writeFileSync(file, readFileSync(join(root, 'configs/reefer.yaml'), 'utf8').replace('  window: 8', '  windw: 8').replace('  pin_file: /etc/iscm-edge/pin', '  pin: 918273').replace('kind: humidity', 'kind: humdity'));
  const r = await cli(['config', 'check', file]);
  assert.is(r.code, 1);
  const lines = r.out.trim().split('\n');
  assert.is(lines.length, 5, r.out);
  assert.match(lines[0], new RegExp(`^${file}:\\d+:\\d+: sensors\\.rh\\.kind: expected one of .*\\(did you mean "humidity"\\?\\)$`));
  assert.match(lines[1], /signer: with driver: pkcs11, one of "pin_file", "pin_env" is required/);
  assert.match(lines[2], /signer\.pin: a PIN must not be written in the config file/);
  assert.match(lines[3], /mqtt\.windw: unknown key \(did you mean "window"\?\)/);
  assert.is(lines[4], `${file}: invalid (4 errors)`);
  assert.not.ok(r.out.includes('918273') || r.err.includes('918273'));
  const j = await cli(['config', 'check', '--json', file, 'configs/devnet.yaml']);
  assert.is(j.code, 1);
  const [bad, good] = j.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.is(bad.ok, false);
  assert.is(bad.errors.length, 4);
  assert.equal(Object.keys(bad.errors[0]), ['where', 'path', 'message']);
  assert.is(good.ok, true);
});

test('config check: environment overrides are applied and named; --no-env ignores them; a bad one is an error', async () => {
  const r = await cli(['config', 'check', 'configs/devnet.yaml'], { ISCM__MQTT__WINDOW: '16' });
  assert.is(r.code, 0);
  assert.match(r.out, /environment overrides: ISCM__MQTT__WINDOW\)/);
  const bad = await cli(['config', 'check', 'configs/devnet.yaml'], { ISCM__MQTT__WINDOW: 'lots' });
  assert.is(bad.code, 1);
  assert.match(bad.out, /^env ISCM__MQTT__WINDOW: mqtt\.window: expected an integer from 1 to 1024, got "lots"/m);
  assert.is((await cli(['config', 'check', '--no-env', 'configs/devnet.yaml'], { ISCM__MQTT__WINDOW: 'lots' })).code, 0);
});

test('config show: the effective config as JSON (defaults, overrides, units, resolved paths)', async () => {
  const r = await cli(['config', 'show', 'configs/devnet.yaml'], { ISCM__DEVICE__TIMEZONE_OFFSET: '+02:00' });
  assert.is(r.code, 0, r.err);
  const c = JSON.parse(r.out);
  assert.is(c.device.timezone_offset, '+02:00');
  assert.is(c.mqtt.resend_timeout, 5000);
  assert.is(c.journal.quota, 64 * 1024 * 1024);
  assert.is(c.signer.key_file, join(root, '.tmp/devnet/device.key'));
  assert.is(c.metrics.listen, '127.0.0.1:9464');
});

test('config schema: prints configs/gateway.schema.json', async () => {
  const r = await cli(['config', 'schema']);
  assert.is(r.code, 0);
  assert.is(r.out, readFileSync(join(root, 'configs/gateway.schema.json'), 'utf8'));
});

test('usage errors exit 2 with the usage; a missing file exits 1', async () => {
  for (const args of [['config'], ['config', 'lint', 'x'], ['config', 'check'], ['config', 'check', '--bogus', 'configs/devnet.yaml'], ['config', 'show']]) {
    const r = await cli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /usage: iscm-edge config check/);
  }
  const missing = await cli(['config', 'check', join(tmp, 'nope.yaml')]);
  assert.is(missing.code, 1);
  assert.match(missing.out, /nope\.yaml: cannot read the config file \(no such file\)/);
  assert.is((await cli(['config', '--help'])).code, 0);
});

test.run();
