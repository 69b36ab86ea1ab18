// iscm-edge verify: offline verification of event proof bundles (§4.4), the
// tool an auditor or a customer runs. One line per bundle; exit 0 only if all
// are valid, 1 if any is invalid, 2 on usage errors.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../../../protocol/errors.js';
import { verifyEventProof } from '../../../protocol/bundle.js';
import type { TrustedKey } from '../../../protocol/receipt.js';
import { loadTrustedKeys } from '../trust.js';
import { EXIT, parse, UsageError, type Command } from '../usage.js';

const usage = `usage: iscm-edge verify --ledger-key FILE [--ledger-key FILE …] [--json] BUNDLE|DIR …

Verifies event proof bundles (.iscm) end to end: the record is in the batch
tree, the batch is signed by the bundled device key (whose thumbprint is the
batch kid), the batch is in the ledger's log, and the receipt is signed by a
trusted ledger key. A DIR stands for every *.iscm file in it.

  --ledger-key FILE  trusted ledger public keys: PEM SPKI (one or more blocks)
                     or a CBOR COSE_KeySet
  --json             one JSON object per bundle instead of text

Prints "PATH: ok (…)" or "PATH: invalid: REASON" per bundle.
Exit: 0 all valid, 1 any invalid, 2 usage error.`;

function expand(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      out.push(p); // reported as unreadable, per bundle
      continue;
    }
    if (st.isDirectory()) {
      const files = readdirSync(p).filter((f) => f.endsWith('.iscm')).sort();
      if (files.length === 0) throw new UsageError(`directory ${p} holds no .iscm bundles`);
      out.push(...files.map((f) => join(p, f)));
    } else out.push(p);
  }
  return out;
}

export const command: Command = {
  name: 'verify',
  summary: 'verify event proof bundles offline',
  usage,
  async run(argv, io) {
    const { values, positionals } = parse(argv, { 'ledger-key': { type: 'string', multiple: true }, json: { type: 'boolean' } });
    const keyFiles = values['ledger-key'] ?? [];
    if (keyFiles.length === 0) throw new UsageError('--ledger-key FILE is required (the ledger public key the receipts must be signed with)');
    if (positionals.length === 0) throw new UsageError('give at least one bundle (.iscm file or a directory of them)');
    const trusted: TrustedKey[] = keyFiles.flatMap((f) => loadTrustedKeys(f));
    let invalid = 0;
    for (const path of expand(positionals)) {
      let line: { path: string; ok: boolean; reason?: string; device?: string; seq?: number; batch_seq?: number; leaf_index?: number; tree_size?: number; event_id?: string };
      try {
        const bytes = new Uint8Array(readFileSync(path));
        const v = verifyEventProof(bytes, trusted);
        line = {
          path,
          ok: true,
          device: v.record.deviceId,
          seq: v.record.seq,
          batch_seq: v.batch.batchSeq,
          leaf_index: v.receipt.leafIndex,
          tree_size: v.receipt.treeSize,
          event_id: typeof v.record.event.eventID === 'string' ? v.record.event.eventID : undefined,
        };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const reason = code && /^E[A-Z]+$/.test(code) ? `cannot read the file (${code})` : errorMessage(e);
        line = { path, ok: false, reason };
        invalid++;
      }
      if (values.json) io.out(JSON.stringify(line));
      else if (line.ok) io.out(`${path}: ok (device ${line.device} seq ${line.seq}, batch ${line.batch_seq}, log leaf ${line.leaf_index} of ${line.tree_size})`);
      else io.out(`${path}: invalid: ${line.reason}`);
    }
    return invalid ? EXIT.INVALID : EXIT.OK;
  },
};
