// Loading trusted ledger keys from a file: PEM SPKI public keys (one or more
// blocks) or a CBOR COSE_KeySet (RFC 9052 §7: an array of COSE_Key maps).
import { readFileSync } from 'node:fs';
import { decode } from '../../protocol/cbor.js';
import { coseKeyFromMap, coseKeyFromPem } from '../../protocol/cose/key.js';
import { errorMessage } from '../../protocol/errors.js';
import type { TrustedKey } from '../../protocol/receipt.js';
import { UsageError } from './usage.js';

export function loadTrustedKeys(path: string): TrustedKey[] {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new UsageError(`cannot read ledger key file ${path}: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`);
  }
  const text = raw.toString('latin1');
  if (text.includes('-----BEGIN')) {
    const blocks = text.match(/-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----/g) ?? [];
    if (blocks.length === 0) throw new UsageError(`${path}: no complete PEM block`);
    return blocks.map((b, i) => {
      if (/PRIVATE KEY/.test(b)) throw new UsageError(`${path}: block ${i + 1} is a private key; give the ledger's public key (SPKI)`);
      try {
        return { key: coseKeyFromPem(b) };
      } catch (e) {
        throw new UsageError(`${path}: PEM block ${i + 1} is not a supported public key: ${errorMessage(e)}`);
      }
    });
  }
  try {
    const set = decode(new Uint8Array(raw), { canonical: false, maxBytes: 1 << 20 });
    const items = Array.isArray(set) ? set : [set];
    if (items.length === 0) throw new Error('the COSE_KeySet is empty');
    return items.map((m, i) => ({ key: coseKeyFromMap(m, `key_set[${i}]`) }));
  } catch (e) {
    throw new UsageError(`${path}: neither PEM public keys nor a CBOR COSE_KeySet: ${errorMessage(e)}`);
  }
}
