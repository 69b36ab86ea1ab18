// systemd integration of `iscm-edge run` (Type=notify, WatchdogSec=): the
// node tells the service manager READY=1 once running, pets the watchdog at
// half its interval while healthy, and says STOPPING=1 on SIGTERM. The
// notification socket is a real AF_UNIX datagram socket (socat), as systemd's
// is; the messages go through systemd-notify(1) as in production.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { ALG } from '../../protocol/cose/algorithms.js';
import { generateKeyFile } from '../../drivers/software/keyfile.js';
import { haveCommand, start } from '../helpers/proc.js';
import { haveSocat } from '../helpers/socat.js';
import { freePort, startNode, tempDir, waitUntil, writeNodeConfig } from './_env.js';

const SUITE = 'light node under systemd (notify, watchdog)';
const ok = haveSocat(SUITE) && haveCommand('systemd-notify', 'systemd', SUITE);

if (ok) {
  test('READY=1 once running, WATCHDOG=1 every half interval, STOPPING=1 on SIGTERM', async () => {
    const dir = tempDir('iscm-systemd-');
    const sock = join(dir, 'notify.sock');
    const out = join(dir, 'notify.out');
    const listener = start('sh', ['-c', `exec socat -u UNIX-RECV:${sock} OPEN:${out},creat,append`], { name: 'notify socket' });
    await waitUntil(() => { try { readFileSync(out); return true; } catch { return false; } }, 5000, 'socket up', 20).catch(() => undefined);
    const keyFile = join(dir, 'device.key');
    await generateKeyFile(keyFile, ALG.EdDSA, { passphraseEnv: 'DEV_PASS', env: { DEV_PASS: 'systemd test passphrase' } }, { scrypt: { N: 2 ** 10 } });
    writeFileSync(join(dir, 'ledger.pem'), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    const config = writeNodeConfig({ deviceId: 'sd-dev', dir: join(dir, 'node'), mqttUrl: `mqtt://127.0.0.1:${await freePort()}`, ledgerPem: join(dir, 'ledger.pem'), softwareKey: { file: keyFile, passEnv: 'DEV_PASS' }, metricsPort: await freePort() });
    const node = await startNode(config, { DEV_PASS: 'systemd test passphrase', NOTIFY_SOCKET: sock, WATCHDOG_USEC: '2000000' });
    const text = () => { try { return readFileSync(out, 'utf8'); } catch { return ''; } };
    await waitUntil(() => /READY=1/.test(text()), 10_000, 'READY=1');
    assert.match(text(), /STATUS=device sd-dev: running/);
    await waitUntil(() => (text().match(/WATCHDOG=1/g) ?? []).length >= 2, 10_000, 'two watchdog pets');
    await node.stop(20_000);
    await waitUntil(() => /STOPPING=1/.test(text()), 10_000, 'STOPPING=1');
    await listener.stop();
  });
}

test.run();
