// `iscm-edge events preview` as an integrator runs it: from source and as the
// esbuild bundle (built here into a temp dir with the project's bundle
// settings, run from a folder that has no ../shared beside it: the event
// builder must not need the vectors at run time).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/proc.js';
import { readJson, vectorDir } from '../helpers/vectors.js';
import { main } from '../../runtime/cli/iscm-edge.js';

// ajv-formats is CommonJS: its default export is the plugin itself.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

const root = fileURLToPath(new URL('../../', import.meta.url));
const tmp = tempDir('iscm-cli-events-');
const source = [join(root, 'runtime/cli/iscm-edge.ts')];

function run(entry: string[], args: string[], cwd = root) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ISCM__')));
  const r = spawnSync(process.execPath, [...entry, ...args], { cwd, encoding: 'utf8', env: clean, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
process.chdir(root);
/** In-process through main() (fast); the first test and the bundle test run real processes. */
async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l + '\n'), err: (l) => err.push(l + '\n'), env: {} });
  return { code, out: out.join(''), err: err.join('') };
}

test('events preview: the reefer readings give the golden events (a process: exit 0, one JSON event per line)', () => {
  const r = run(['--import', 'tsx', ...source], ['events', 'preview', '--config', 'configs/reefer.yaml', '--readings', 'configs/golden/reefer.readings.jsonl']);
  assert.is(r.code, 0, r.err);
  assert.is(r.out, readFileSync(join(root, 'configs/golden/reefer.events.jsonl'), 'utf8'));
  assert.match(r.err, /104 reading\(s\) → 12 event\(s\)/);
});

test('events preview: bad lines are reported with FILE:LINE and skipped; the rest still comes out (exit 1)', async () => {
  const file = join(tmp, 'mixed.jsonl');
  const good = readFileSync(join(root, 'configs/golden/devnet.readings.jsonl'), 'utf8').split('\n').filter(Boolean);
  writeFileSync(
    file,
    [
      '# a comment',
      good[0],
      '{"boot_id":1,"seq":2,"sensor":"t1","kind":"temperature","time":1763712000000,"time_source":"mcu","values":{"celsius":"warm"}}',
      'not json',
      '{"boot_id":1,"seq":4,"sensor":"t7","kind":"temperature","time":1763712000000,"time_source":"mcu","values":{"celsius":20}}',
      '',
      good[1],
    ].join('\n'),
  );
  const r = await cli(['events', 'preview', '--config', 'configs/devnet.yaml', '--readings', file]);
  assert.is(r.code, 1);
  assert.is(r.out.trim().split('\n').length, 2);
  const err = r.err.trim().split('\n');
  assert.match(err[0], new RegExp(`^${file}:3\\.values\\.celsius: expected a number`));
  assert.match(err[1], new RegExp(`^${file}:4: not JSON`));
  assert.match(err[2], new RegExp(`^${file}:5: reading\\.sensor: sensor "t7" is not in the config \\(known: t1, h1, alarms\\)`));
  assert.match(err[3], /2 reading\(s\) → 2 event\(s\); 3 line\(s\) refused/);
});

test('events preview --document: one EPCISDocument, valid against the GS1 schema', async () => {
  const r = await cli(['events', 'preview', '--document', '--config', 'configs/dock-door.yaml', '--readings', 'configs/golden/dock-door.readings.jsonl']);
  assert.is(r.code, 0, r.err);
  const doc = JSON.parse(r.out);
  assert.is(doc.type, 'EPCISDocument');
  assert.is(doc.epcisBody.eventList.length, 15);
  const dir = vectorDir('epcis');
  if (dir) {
    const ajv = new Ajv({ allErrors: true });
    addFormats(ajv);
    const validate = ajv.compile(readJson(join(dir, 'schema', 'EPCIS-JSON-Schema.json')));
    assert.ok(validate(doc), JSON.stringify(validate.errors));
  }
});

test('events preview: an invalid config (exit 1, errors on stderr); usage errors (exit 2)', async () => {
  const bad = join(tmp, 'bad.yaml');
  writeFileSync(bad, 'device: { id: X }\n');
  const r = await cli(['events', 'preview', '--config', bad, '--readings', 'configs/golden/devnet.readings.jsonl']);
  assert.is(r.code, 1);
  assert.match(r.err, /bad\.yaml:1:15: device\.id: expected/);
  assert.match(r.err, /bad\.yaml: invalid config/);
  assert.is(r.out, '');
  const missing = await cli(['events', 'preview', '--config', 'configs/devnet.yaml', '--readings', join(tmp, 'none.jsonl')]);
  assert.is(missing.code, 1);
  assert.match(missing.err, /none\.jsonl: cannot read \(no such file\)/);
  for (const args of [['events'], ['events', 'show'], ['events', 'preview', '--readings', 'x'], ['events', 'preview', '--config', 'x'], ['events', 'preview', '--config', 'a', '--readings', 'b', 'extra']]) {
    const u = await cli(args);
    assert.is(u.code, 2, `${args.join(' ')}: ${u.err}`);
    assert.match(u.err, /usage: iscm-edge events preview/);
  }
});

test('the esbuild bundle (node18 target) runs config check and events preview without ../shared', async () => {
  const dir = tempDir('iscm-bundle-');
  const out = join(dir, 'app', 'iscm-edge.mjs');
  await build({
    entryPoints: [join(root, 'runtime/cli/iscm-edge.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    minify: true,
    external: ['pkcs11js', 'serialport', '@serialport/*', 'better-sqlite3'],
    define: { __ISCM_VERSION__: '"0.0.0-test"' },
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'error',
  });
  // Native addons stay external (shipped per target by the package step): give the bundle the installed ones.
  symlinkSync(join(root, 'node_modules'), join(dir, 'app', 'node_modules'));
  assert.not.ok(existsSync(join(dir, 'shared')) || existsSync(join(dir, '..', 'shared', 'vectors')), 'no vectors beside the bundle');
  const bundle = [out];
  const c = run(bundle, ['config', 'check', join(root, 'configs/reefer.yaml')], dir);
  assert.is(c.code, 0, c.out + c.err);
  const p = run(bundle, ['events', 'preview', '--config', join(root, 'configs/reefer.yaml'), '--readings', join(root, 'configs/golden/reefer.readings.jsonl')], dir);
  assert.is(p.code, 0, p.err);
  assert.is(p.out, readFileSync(join(root, 'configs/golden/reefer.events.jsonl'), 'utf8'));
  const text = readFileSync(out, 'utf8');
  assert.not.ok(/shared\/vectors/.test(text), 'the bundle does not reference the vectors');
  assert.not.ok(/EPCIS-JSON-Schema/.test(text));
});

test.run();
