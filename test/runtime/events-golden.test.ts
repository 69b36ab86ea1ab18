// Golden tests: each example config with its readings file gives exactly the
// events in configs/golden/<name>.events.jsonl, byte for byte, through the
// same code path as `iscm-edge events preview`. Regenerate after an intended
// change with ISCM_UPDATE_GOLDEN=1 (and read the diff before committing).
// Every golden event is also checked on its own: GS1 schema, the extra rules,
// its eventID, and its Record encoding.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeRecord, encodeRecord, GENESIS_PREV } from '../../protocol/record.js';
import { main } from '../../runtime/cli/iscm-edge.js';
import { eventHashId, eventRuleProblems } from '../../runtime/events/index.js';
import { readJson, vectorDir } from '../helpers/vectors.js';

// ajv-formats is CommonJS: its default export is the plugin itself.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

const root = fileURLToPath(new URL('../../', import.meta.url));
const update = process.env.ISCM_UPDATE_GOLDEN === '1';

async function preview(name: string): Promise<{ code: number; out: string; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['events', 'preview', '--config', `configs/${name}.yaml`, '--readings', `configs/golden/${name}.readings.jsonl`, '--no-env'], { out: (l) => out.push(l), err: (l) => err.push(l), env: {} });
  return { code, out: out.map((l) => l + '\n').join(''), err };
}

const dir = vectorDir('epcis');
const validate = dir
  ? (() => {
      const ajv = new Ajv({ allErrors: true });
      addFormats(ajv);
      return ajv.compile(readJson(join(dir, 'schema', 'EPCIS-JSON-Schema.json')));
    })()
  : undefined;

const expectations: Record<string, { events: number; stderr: RegExp[] }> = {
  reefer: { events: 12, stderr: [/104 reading\(s\) → 12 event\(s\)/] },
  'dock-door': { events: 15, stderr: [/:10: warning: pack-1: station read with no sscc identifiers/, /26 reading\(s\) → 15 event\(s\)/] },
  devnet: { events: 12, stderr: [/10 reading\(s\) → 12 event\(s\)/] },
};

process.chdir(root); // the CLI resolves the config paths as given
for (const [name, want] of Object.entries(expectations)) {
  test(`golden: configs/${name}.yaml + its readings → configs/golden/${name}.events.jsonl, byte for byte`, async () => {
    const r = await preview(name);
    assert.is(r.code, 0, r.err.join('\n'));
    const file = join(root, 'configs', 'golden', `${name}.events.jsonl`);
    if (update) writeFileSync(file, r.out);
    const golden = readFileSync(file, 'utf8');
    if (r.out !== golden) {
      const a = r.out.split('\n');
      const b = golden.split('\n');
      const i = a.findIndex((l, k) => l !== b[k]);
      assert.fixture(a[i] ?? '', b[i] ?? '', `first difference at line ${i + 1} (ISCM_UPDATE_GOLDEN=1 regenerates after an intended change)`);
    }
    assert.is(golden.trimEnd().split('\n').length, want.events);
    for (const re of want.stderr) assert.ok(r.err.some((l) => re.test(l)), `stderr lacks ${re}:\n${r.err.join('\n')}`);
  });

  test(`golden: configs/${name}: every event valid (schema, extra rules, event hash), and a Record`, () => {
    const lines = readFileSync(join(root, 'configs', 'golden', `${name}.events.jsonl`), 'utf8').trimEnd().split('\n');
    lines.forEach((l, i) => {
      const e = JSON.parse(l);
      if (validate) assert.ok(validate(e), `line ${i + 1}: ${JSON.stringify(validate.errors)}`);
      assert.equal(eventRuleProblems(e, { gateway: true }), [], `line ${i + 1}`);
      assert.is(e.eventID, eventHashId(e));
      const bytes = encodeRecord({ deviceId: 'x', seq: 1, prev: GENESIS_PREV, time: Date.parse(e.eventTime), event: e });
      assert.equal(decodeRecord(bytes).event, e);
    });
  });
}

test('golden: the reefer shows clock sanity (held readings stamped by the GPS anchor) and every alarm', () => {
  const events = readFileSync(join(root, 'configs', 'golden', 'reefer.events.jsonl'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.ok(events.some((e) => /gps-mono/.test(e['iscm:timeSource'])));
  assert.equal(events.filter((e) => e['iscm:rule']).map((e) => e['iscm:rule']), ['rough-handling', 'cold-chain-excursion', 'door-open-in-transit']);
  assert.is(events.filter((e) => e['iscm:window']).length, 5);
});

test.run();
