// The ledger signs its tree heads with a key on a PKCS#11 token (SoftHSM2 in
// a temp dir) through the drivers' Signer interface, configured as an
// operator would (signer kind pkcs11, PIN from the environment): blocks
// commit, receipts verify with the token's public key, and
// `iscm-ledger key public --config` prints that key.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { ALG } from '../../protocol/cose/algorithms.js';
import { coseKeyFromPem, coseKeyToPem, thumbprint } from '../../protocol/cose/key.js';
import { toHex } from '../../protocol/bytes.js';
import { verifyReceipt } from '../../protocol/receipt.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import { Pkcs11Token } from '../../drivers/pkcs11/token.js';
import { parseConfig } from '../../ledger/config/config.js';
import { openLedgerSigner } from '../../ledger/keys.js';
import { MemoryKv } from '../../ledger/store/memory-kv.js';
import { LedgerStore } from '../../ledger/store/store.js';
import { Registry, signEnrollment } from '../../ledger/registry.js';
import { LogView } from '../../ledger/log/log.js';
import { RecordingPublisher } from '../../ledger/publisher.js';
import { LedgerMetrics } from '../../ledger/metrics.js';
import { silentLogger } from '../../ledger/logger.js';
import { ActivityTracker, Ingest } from '../../ledger/ingest.js';
import { Sequencer } from '../../ledger/sequencer.js';
import { createSoftHsm, haveSoftHsm, useSoftHsm } from '../helpers/softhsm.js';
import { tempDir } from '../helpers/proc.js';
import { DeviceChain, batchMessage, type SimBatch } from '../helpers/device-sim.js';
import { root } from './_env.js';

if (haveSoftHsm('ledger PKCS#11 signer (SoftHSM2)')) {
  const hsm = createSoftHsm(['ledger-node']);
  useSoftHsm(hsm);
  const env = { ...process.env, ISCM_LEDGER_PIN: hsm.pin };
  const dir = tempDir('iscm-ledger-p11-');
  const opPem = join(dir, 'op.pem');
  const op = softwareSignerFromKey(ALG.EdDSA, generateKeyPairSync('ed25519').privateKey);
  writeFileSync(opPem, coseKeyToPem(op.publicKey));
  const configText = `chain_id: p11
store:
  kind: memory
signer:
  kind: pkcs11
  module: ${hsm.module}
  token: ledger-node
  label: tree-head-key
  pin_env: ISCM_LEDGER_PIN
registry:
  operator_keys: [${opPem}]
api:
  listen: "off"
`;
  const configFile = join(dir, 'ledger.yaml');
  writeFileSync(configFile, configText);
  let tokenKid = '';

  test.before(async () => {
    const t = await Pkcs11Token.open({ module: hsm.module, token: 'ledger-node', env: { ISCM_PKCS11_PIN: hsm.pin }, rw: true });
    try {
      const d = t.generateKeyPair({ alg: ALG.ES256, label: 'tree-head-key' });
      tokenKid = toHex(d.kid!);
    } finally {
      await t.close();
    }
  });

  test('blocks are signed on the token; receipts verify with its public key', async () => {
    const cfg = parseConfig(configText, configFile);
    const signer = await openLedgerSigner(cfg.signer, env);
    try {
      assert.is(toHex(signer.kid), tokenKid);
      const store = new LedgerStore(new MemoryKv());
      const registry = new Registry(store, [op.publicKey], 'p11', 0);
      const log = new LogView(store);
      const pub = new RecordingPublisher();
      const metrics = new LedgerMetrics();
      const ingest = new Ingest(store, registry, log, pub, metrics, silentLogger, new ActivityTracker(store, 'n'), { nodeId: 'n', prefix: 'iscm/v1' });
      const seq = new Sequencer(store, log, signer, pub, metrics, silentLogger, { nodeId: 'n', chainId: 'p11', election: false });
      const d = new DeviceChain('p11-dev');
      await registry.submit(await signEnrollment(op, { deviceId: d.deviceId, key: d.signer.publicKey, notBefore: 0, issuedAt: Date.now() }));
      const sent: SimBatch[] = [];
      for (let i = 0; i < 3; i++) {
        for (let k = 0; k < 4; k++) {
          const b = await d.next(5);
          sent.push(b);
          assert.is((await ingest.handle('iscm/v1/dev/p11-dev/batch', batchMessage(b))).kind, 'pending');
        }
        assert.is((await seq.round()).committed, 4);
      }
      assert.is(pub.receipts.length, 12);
      pub.receipts.forEach((r, i) => verifyReceipt(r.msg.receipt!, { leafEntry: sent[i].entry, trusted: [{ key: signer.publicKey }], requireSignedSize: true }));
      assert.is(metrics.blocks.total(), 3, 'one token signature per block');
    } finally {
      await signer.close?.();
    }
  });

  test('`iscm-ledger key public --config` prints the token key; a wrong PIN is an error without the PIN in it', () => {
    const cli = (e: NodeJS.ProcessEnv) => spawnSync(process.execPath, ['--import', 'tsx', join(root, 'ledger/cli/iscm-ledger.ts'), 'key', 'public', '--config', configFile], { cwd: root, encoding: 'utf8', env: { ...process.env, ...hsm.env, ...e }, timeout: 60_000 });
    const r = cli({ ISCM_LEDGER_PIN: hsm.pin });
    assert.is(r.status, 0, r.stderr);
    assert.is(toHex(thumbprint(coseKeyFromPem(r.stdout))), tokenKid);
    const w = cli({ ISCM_LEDGER_PIN: '999999' });
    assert.is(w.status, 1, w.stdout + w.stderr);
    assert.match(w.stderr, /PIN/i);
    assert.not.match(w.stderr, /999999/);
  });
}

test.run();
