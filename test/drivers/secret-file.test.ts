// Secrets by reference (drivers/fs/secret-file.ts): the one reader of PIN,
// passphrase and password files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSecretFile, SecretFileError, type SecretFileOptions } from '../../drivers/fs/secret-file.js';
import { tempDir } from '../helpers/proc.js';

const o: SecretFileOptions = { what: 'pin file', maxBytes: 16 };

test('one trailing LF or CRLF dropped, the rest kept as it is', async () => {
  const d = tempDir('iscm-secret-');
  for (const [name, text, want] of [['a', '1234\n', '1234'], ['b', '1234\r\n', '1234'], ['c', '12 34\n\n', '12 34\n'], ['d', 'x', 'x']] as const) {
    writeFileSync(join(d, name), text, { mode: 0o600 });
    assert.is((await readSecretFile(join(d, name), o)).toString(), want, name);
  }
});

test('refused with a message naming the file, never the content: empty, too large, not a file, missing, readable by others', async () => {
  const d = tempDir('iscm-secret-');
  const err = async (p: string, opts = o) => {
    try {
      await readSecretFile(p, opts);
    } catch (e) {
      assert.instance(e, SecretFileError);
      return (e as Error).message;
    }
    return 'accepted';
  };
  writeFileSync(join(d, 'empty'), '\n', { mode: 0o600 });
  writeFileSync(join(d, 'big'), 'secret-secret-secret', { mode: 0o600 });
  writeFileSync(join(d, 'open'), 'hunter2', { mode: 0o644 });
  chmodSync(join(d, 'open'), 0o644);
  mkdirSync(join(d, 'dir'));
  assert.is(await err(join(d, 'empty')), `pin file ${join(d, 'empty')} is empty`);
  assert.is(await err(join(d, 'big')), `pin file ${join(d, 'big')} is larger than 16 bytes`);
  assert.is(await err(join(d, 'dir')), `pin file ${join(d, 'dir')} is not a regular file`);
  assert.is(await err(join(d, 'none')), `cannot read pin file ${join(d, 'none')} (ENOENT)`);
  assert.is(await err(join(d, 'open')), 'accepted', 'private only when asked');
  const m = await err(join(d, 'open'), { ...o, privateOnly: true });
  assert.match(m, /is accessible by group or others \(mode 644\); run chmod 600/);
  assert.not.match(m, /hunter2/);
});

test.run();
