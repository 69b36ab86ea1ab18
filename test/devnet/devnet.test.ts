// The embedded devnet, as a newcomer runs it (`npm start`, the README's first
// command): broker, ledger and light nodes in one process; it ends with a
// summary in which everything created was acknowledged, committed and
// verified, and lost is 0; --export writes bundles that `iscm-edge verify`
// accepts; Ctrl-C ends it early with the same drain and summary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { start, tempDir } from '../helpers/proc.js';
import { edge, root } from '../node/_env.js';

const lastJson = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number | boolean>;

test('npm start -- --json: the devnet runs, drains and reports lost 0; --export bundles all verify', () => {
  const out = join(tempDir('iscm-devnet-export-'), 'bundles');
  const r = spawnSync('npm', ['start', '--silent', '--', '--devices', '2', '--rate', '25', '--duration', '4', '--json', '--export', out], { cwd: root, encoding: 'utf8', timeout: 240_000 });
  assert.is(r.status, 0, r.stdout + r.stderr);
  const s = lastJson(r.stdout);
  for (const k of ['created', 'acknowledged', 'committed', 'verified', 'lost']) assert.ok(Number.isInteger(s[k]), `${k} is an integer`);
  // 2 × 25 readings/s for 4 s nominally; a loaded machine makes fewer, what matters is that all arrive.
  assert.ok((s.created as number) >= 60, `readings were created (${s.created})`);
  assert.equal([s.acknowledged, s.committed, s.verified], [s.created, s.created, s.created], 'created = acknowledged = committed = verified');
  assert.is(s.lost, 0);
  assert.is(s.duplicated, 0);
  assert.match(r.stdout, /summary: created \d+, acknowledged \d+, committed \d+, verified \d+, lost: 0/);
  const files = readdirSync(out).filter((f) => f.endsWith('.iscm'));
  assert.is(files.length, s.verified, 'one bundle per committed event');
  const v = edge(['verify', '--ledger-key', join(out, 'ledger-key.pem'), out]);
  assert.is(v.status, 0, v.stdout.slice(-2000) + v.stderr);
  assert.is(v.stdout.trim().split('\n').filter((l) => l.endsWith('ok') || /: ok/.test(l)).length, files.length);
});

test('Ctrl-C ends the run early: the simulators stop, everything created still drains, same summary', async () => {
  const p = start(process.execPath, ['--import', 'tsx', join(root, 'devnet/cli.ts'), '--devices', '1', '--rate', '40', '--duration', '600', '--json'], { cwd: root, name: 'devnet' });
  await p.waitFor(/t= *[3-9]s/, 60_000);
  process.kill(p.pid, 'SIGINT');
  const code = await p.exited;
  assert.is(code, 0, p.output().slice(-2000));
  const s = lastJson(p.output().split('\n').filter((l) => l.startsWith('{')).join('\n'));
  assert.ok((s.created as number) > 0);
  assert.equal([s.lost, s.acknowledged, s.verified], [0, s.created, s.created]);
  assert.match(p.output(), /interrupted: stopping the simulators/);
  assert.ok((s.seconds as number) < 120, 'it did not run for the full --duration');
});

test('bad arguments: a message and exit 2', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'devnet/cli.ts'), '--devices', '0'], { cwd: root, encoding: 'utf8' });
  assert.is(r.status, 2);
  assert.match(r.stderr, /--devices 0: expected a number 1\.\.64/);
  const u = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'devnet/cli.ts'), '--nodes', '3'], { cwd: root, encoding: 'utf8' });
  assert.is(u.status, 2);
  assert.match(u.stderr, /Unknown option '--nodes'/);
});

test.run();
