// The capture file and the durable-file helpers under it: torn tails cut on
// open, (boot_id, seq) fed back for dedupe, lines exactly formatReadingLine;
// atomic replace (drivers/fs/atomic.ts); the dedupe table and its file store.
import { existsSync, readdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileIfExists, writeFileAtomic, writeFileAtomicSync } from '../../drivers/fs/atomic.js';
import { formatReadingLine, parseReadingLine, type Reading } from '../../protocol/reading.js';
import { ValidationError } from '../../protocol/errors.js';
import { CaptureFile } from '../../firmware-bridge/capture.js';
import { DedupeTable, FileDedupeStore } from '../../firmware-bridge/dedupe.js';
import { tempDir } from '../helpers/proc.js';

const reading = (bootId: number, seq: number): Reading => ({ bootId, seq, sensor: 't1', kind: 'temperature', time: 1_700_000_000_000 + seq, timeSource: 'mcu', monoMs: seq, values: { celsius: 4.5 } });

test('atomic write: replaces whole files, leaves no temp files, sync variant too', async () => {
  const dir = tempDir('iscm-atomic-');
  const p = join(dir, 'state.json');
  assert.is(await readFileIfExists(p), undefined);
  await writeFileAtomic(p, 'one');
  await writeFileAtomic(p, new TextEncoder().encode('two'));
  assert.is(readFileSync(p, 'utf8'), 'two');
  writeFileAtomicSync(p, 'three');
  assert.is(readFileSync(p, 'utf8'), 'three');
  assert.equal(readdirSync(dir), ['state.json']);
  // A failing write leaves the old file and no temp file.
  await writeFileAtomic(join(dir, 'missing-dir', 'x'), 'y').then(() => assert.unreachable(), () => {});
  assert.equal(readdirSync(dir), ['state.json']);
});

test('capture: appends formatReadingLine lines, fsync before resolve; reopen seeds (boot_id, seq)', async () => {
  const dir = tempDir('iscm-cap-');
  const p = join(dir, 'c.jsonl');
  const c = new CaptureFile(p);
  await c.open();
  await c.append([reading(1, 1), reading(1, 2)]);
  await c.append([reading(2, 1)]);
  await c.close();
  const text = readFileSync(p, 'utf8');
  assert.is(text, [reading(1, 1), reading(1, 2), reading(2, 1)].map((r) => formatReadingLine(r) + '\n').join(''));
  for (const l of text.trim().split('\n')) parseReadingLine(l);
  const seen: string[] = [];
  const c2 = new CaptureFile(p);
  const r = await c2.open(0, (b, s) => seen.push(`${b}:${s}`));
  assert.equal(seen, ['1:1', '1:2', '2:1']);
  assert.is(r.scanned, 3);
  await c2.close();
});

test('capture: a torn last line (crash mid-append) is cut; scanning from an offset reads only the tail', async () => {
  const dir = tempDir('iscm-cap-');
  const p = join(dir, 'c.jsonl');
  const first = formatReadingLine(reading(7, 1)) + '\n';
  writeFileSync(p, first + formatReadingLine(reading(7, 2)) + '\n' + formatReadingLine(reading(7, 3)).slice(0, 20));
  const seen: string[] = [];
  const c = new CaptureFile(p);
  const r = await c.open(first.length, (b, s) => seen.push(`${b}:${s}`));
  assert.ok(r.truncated > 0);
  assert.equal(seen, ['7:2']);
  await c.append([reading(7, 3)]);
  await c.close();
  const lines = readFileSync(p, 'utf8').trim().split('\n').map((l) => parseReadingLine(l));
  assert.equal(lines.map((x) => x.seq), [1, 2, 3]);
  // Bad lines are reported, not fatal.
  appendFileSync(p, '{"not":"a reading"}\n');
  const bad: string[] = [];
  const c3 = new CaptureFile(p);
  await c3.open(0, () => {}, (w, m) => bad.push(`${w}: ${m}`));
  assert.is(bad.length, 1);
  await c3.close();
});

test('dedupe table: advance never lowers, duplicates by (boot_id, seq), LRU bound', () => {
  const t = new DedupeTable(3);
  assert.ok(t.advance(1, 5, 1));
  assert.not.ok(t.advance(1, 3, 2));
  assert.is(t.get(1), 5);
  assert.ok(t.isDuplicate(1, 5));
  assert.not.ok(t.isDuplicate(1, 6));
  assert.not.ok(t.isDuplicate(2, 1));
  t.advance(2, 1, 3);
  t.advance(3, 1, 4);
  t.advance(4, 1, 5); // evicts boot 1 (least recently seen)
  assert.is(t.size, 3);
  assert.not.ok(t.has(1));
  const t2 = new DedupeTable();
  t2.restore(t.snapshot());
  assert.equal(t2.snapshot(), t.snapshot());
});

test('dedupe file store: atomic JSON, aux state, bad files are typed errors', async () => {
  const dir = tempDir('iscm-dd-');
  const p = join(dir, 'link-state.json');
  const s = new FileDedupeStore(p);
  assert.is(await s.load(), undefined);
  await s.save({ boots: [[1, 2, 3]], aux: { capture_offset: 42 } });
  assert.equal(await s.load(), { boots: [[1, 2, 3]], aux: { capture_offset: 42 } });
  assert.ok(existsSync(p));
  writeFileSync(p, 'garbage');
  await s.load().then(() => assert.unreachable(), (e) => assert.ok(e instanceof ValidationError));
  writeFileSync(p, '{"v":1,"boots":[[1,-2,3]]}');
  await s.load().then(() => assert.unreachable(), (e) => assert.ok(e instanceof ValidationError));
});

test.run();
