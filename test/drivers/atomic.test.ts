// Atomic small-file writes (drivers/fs/atomic.ts) and the cleanup of what an
// interrupted one leaves behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeStaleTemps, writeFileAtomic } from '../../drivers/fs/atomic.js';
import { tempDir } from '../helpers/proc.js';

test('writeFileAtomic replaces the file and leaves no temp behind', async () => {
  const d = tempDir('iscm-atomic-');
  await writeFileAtomic(join(d, 'head.cbor'), 'one');
  await writeFileAtomic(join(d, 'head.cbor'), 'two');
  assert.is(readFileSync(join(d, 'head.cbor'), 'utf8'), 'two');
  assert.equal(readdirSync(d), ['head.cbor']);
});

test('removeStaleTemps deletes only the temps a crash left (.NAME.tmp-PID-N)', async () => {
  const d = tempDir('iscm-atomic-');
  for (const f of ['.head.cbor.tmp-4242-7', '.link-mcu.json.tmp-1-1', 'head.cbor', '.keep', 'x.tmp-1-1', '.head.cbor.tmp-abc']) writeFileSync(join(d, f), 'x');
  assert.is(await removeStaleTemps(d), 2);
  assert.equal(readdirSync(d).sort(), ['.head.cbor.tmp-abc', '.keep', 'head.cbor', 'x.tmp-1-1']);
  assert.is(await removeStaleTemps(join(d, 'missing')), 0, 'a missing directory is nothing to clean');
});

test.run();
