// iscm-edge export-proof: the proof bundle (.iscm, ARCHITECTURE §4.4) of one
// event the node holds a verified receipt for, so anyone can check it offline
// with `iscm-edge verify`. Reads the journal read-only (works while the node
// runs) and the device public key the node saved in its state directory;
// checks the bundle against the config's ledger keys before writing it.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { errorMessage } from '../../../protocol/errors.js';
import { EXIT, parse, UsageError, type Command } from '../usage.js';

const usage = `usage: iscm-edge export-proof --config FILE (EVENT_ID | --seq N) --out FILE.iscm

Writes the proof bundle of one event: its record, its place in the signed
batch, the batch, the ledger's receipt and the device's public key. Only for
events whose batch has a verified receipt on this device (and is not yet
compacted away). The bundle is verified against trust.ledger_keys first.

  --config FILE   the gateway config (journal.dir, state.dir, trust)
  EVENT_ID        the EPCIS eventID (ni:///sha-256;…?ver=CBV2.0)
  --seq N         the record seq instead of the eventID
  --out FILE      where to write the bundle

Exit: 0 written, 1 no such event / not receipted yet / cannot read, 2 usage error.`;

export const command: Command = {
  name: 'export-proof',
  summary: 'write the proof bundle of one receipted event',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { config: { type: 'string' }, out: { type: 'string' }, seq: { type: 'string' } });
    if (!values.config) throw new UsageError('--config FILE is required');
    if (!values.out) throw new UsageError('--out FILE.iscm is required');
    if (positionals.length > 1) throw new UsageError(`one event at a time (got ${positionals.length})`);
    if ((positionals.length === 1) === (values.seq !== undefined)) throw new UsageError('give the EVENT_ID or --seq N (one of them)');
    let seq: number | undefined;
    if (values.seq !== undefined) {
      seq = Number(values.seq);
      if (!Number.isSafeInteger(seq) || seq < 1) throw new UsageError(`--seq ${values.seq}: expected a record seq (1, 2, …)`);
    }
    const { loadConfig } = await import('../../config/index.js');
    const { FileJournal } = await import('../../journal/index.js');
    const { findEventProof } = await import('../../node/proofs.js');
    const { DEVICE_KEY_FILE } = await import('../../node/signer-handle.js');
    const { decodeCoseKey } = await import('../../../protocol/cose/key.js');
    const { verifyEventProof } = await import('../../../protocol/bundle.js');
    const { writeFileAtomic } = await import('../../../drivers/fs/atomic.js');
    const { loadTrustedKeys } = await import('../trust.js');
    let config;
    try {
      config = loadConfig(values.config, io.env);
    } catch (e) {
      io.err(`iscm-edge export-proof: ${errorMessage(e)}`);
      return EXIT.INVALID;
    }
    const keyPath = join(config.state.dir, DEVICE_KEY_FILE);
    let deviceKey;
    try {
      deviceKey = decodeCoseKey(new Uint8Array(readFileSync(keyPath)));
    } catch (e) {
      io.err(`iscm-edge export-proof: cannot read the device public key ${keyPath} (the node writes it once its signing key is open): ${errorMessage(e)}`);
      return EXIT.INVALID;
    }
    const journal = new FileJournal({ dir: config.journal.dir, deviceId: config.device.id, maxBytes: config.journal.quota, readOnly: true });
    try {
      await journal.open();
    } catch (e) {
      io.err(`iscm-edge export-proof: cannot open the journal ${config.journal.dir}: ${errorMessage(e)}`);
      return EXIT.INVALID;
    }
    try {
      const p = await findEventProof(journal, deviceKey, seq !== undefined ? { seq } : { eventId: positionals[0] });
      const v = verifyEventProof(p.bundle, config.trust.ledger_keys.flatMap((f) => loadTrustedKeys(f)));
      await writeFileAtomic(values.out, p.bundle);
      io.out(`${values.out}: event ${p.eventId} (record ${p.seq}, batch ${p.batchSeq}, log leaf ${v.receipt.leafIndex} of ${v.receipt.treeSize}), ${p.bundle.length} bytes`);
      return EXIT.OK;
    } catch (e) {
      io.err(`iscm-edge export-proof: ${errorMessage(e)}`);
      return EXIT.INVALID;
    } finally {
      await journal.close();
    }
  },
};
