// The light node's hold on its key (runtime/node/signer-handle.ts): opening
// is retried with backoff while the token is absent, never after a wrong PIN
// (each try would count down the token's PIN attempts until it locks).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ALG } from '../../protocol/cose/algorithms.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { Pkcs11DriverError } from '../../drivers/pkcs11/errors.js';
import { SignerHandle, DEVICE_KEY_FILE } from '../../runtime/node/signer-handle.js';
import { memoryLogger } from '../../runtime/ops/log.js';
import { tempDir, waitUntil } from '../helpers/proc.js';

const key = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);

test('a token that is not there yet: retried with backoff, then the key is ready and its public half saved', async () => {
  let tries = 0;
  const dir = tempDir('iscm-signer-');
  const h = new SignerHandle({ stateDir: dir, log: memoryLogger('error'), backoff: { initialMs: 20, maxMs: 40 }, open: async () => (++tries < 4 ? Promise.reject(new Pkcs11DriverError('TOKEN_NOT_FOUND', 'no token labelled gw')) : key) });
  h.start();
  assert.is((await h.get().catch((e) => e)).reason, 'TOKEN_NOT_FOUND', 'a caller is told why while it is not open');
  await waitUntil(() => h.state === 'ready', 5000, 'ready');
  assert.is(tries, 4);
  assert.is(await h.get(), key);
  await waitUntil(() => existsSync(join(dir, DEVICE_KEY_FILE)), 2000, 'device key file');
  await h.close();
});

for (const reason of ['PIN_INCORRECT', 'PIN_LOCKED', 'PIN_FINAL_TRY'] as const) {
  test(`${reason}: tried once, never again; the status says to fix it and restart`, async () => {
    let tries = 0;
    const log = memoryLogger('error');
    const h = new SignerHandle({ stateDir: tempDir('iscm-signer-'), log, backoff: { initialMs: 10, maxMs: 10 }, open: async () => (tries++, Promise.reject(new Pkcs11DriverError(reason, 'the token said no'))) });
    h.start();
    await new Promise((r) => setTimeout(r, 300));
    assert.is(tries, 1, 'one attempt only');
    assert.is(h.state, 'failed');
    assert.match(String(h.detail().error), /not retried .*restart the node/);
    assert.ok(log.lines.some((l) => /will not retry/.test(String(l.msg))));
    await h.close();
  });
}

test.run();
