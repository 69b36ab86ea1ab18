// Keys the full node uses: its signer (software key file or PKCS#11 token,
// through the drivers' Signer interface) and the public keys it trusts
// (operator keys for registry claims; device keys given to `enroll`).
import { readFileSync } from 'node:fs';
import { decode } from '../protocol/cbor.js';
import { coseKeyFromMap, coseKeyFromPem, type CoseKey } from '../protocol/cose/key.js';
import type { Signer } from '../drivers/signer.js';
import { openSoftwareSigner } from '../drivers/software/signer.js';
import { readKeyFileInfo } from '../drivers/software/keyfile.js';
import { LedgerError, errorText } from './errors.js';
import type { LedgerConfig } from './config/config.js';
import { openPkcs11Signer } from '../drivers/pkcs11/index.js';

/**
 * Public keys from a file: PEM "PUBLIC KEY" blocks, a CBOR COSE_Key or
 * COSE_KeySet, or a software key file (its public part; no passphrase needed).
 */
export function loadPublicKeys(path: string): CoseKey[] {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new LedgerError('CONFIG', `cannot read key file ${path} (${(e as NodeJS.ErrnoException).code ?? errorText(e)})`);
  }
  const text = raw.toString('latin1');
  if (text.includes('-----BEGIN')) {
    const blocks = text.match(/-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----/g) ?? [];
    if (blocks.length === 0) throw new LedgerError('CONFIG', `${path}: no complete PEM block`);
    return blocks.map((b, i) => {
      if (/PRIVATE KEY/.test(b)) throw new LedgerError('CONFIG', `${path}: block ${i + 1} is a private key; give the public key (SPKI PEM)`);
      try {
        return coseKeyFromPem(b);
      } catch (e) {
        throw new LedgerError('CONFIG', `${path}: PEM block ${i + 1} is not a supported public key: ${errorText(e)}`);
      }
    });
  }
  let v: unknown;
  try {
    v = decode(new Uint8Array(raw), { canonical: false, maxBytes: 1 << 20 });
  } catch (e) {
    throw new LedgerError('CONFIG', `${path}: neither PEM nor CBOR (${errorText(e)})`);
  }
  // A software key file is a CBOR map {1: version, 2: alg, 3: public COSE_Key, …}.
  if (v instanceof Map && v.get(1) === 1 && v.get(3) instanceof Map && v.has(6)) {
    try {
      return [coseKeyFromMap(v.get(3), `${path} public key`)];
    } catch (e) {
      throw new LedgerError('CONFIG', `${path}: ${errorText(e)}`);
    }
  }
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) throw new LedgerError('CONFIG', `${path}: empty COSE_KeySet`);
  return items.map((m, i) => {
    try {
      return coseKeyFromMap(m, `${path}[${i}]`);
    } catch (e) {
      throw new LedgerError('CONFIG', `${path}: ${errorText(e)}`);
    }
  });
}

/** The public key of a software key file, without its passphrase. */
export async function keyFilePublicKey(path: string): Promise<CoseKey> {
  return (await readKeyFileInfo(path)).publicKey;
}

/** Opens the node's signer as configured. */
export async function openLedgerSigner(cfg: LedgerConfig['signer'], env: NodeJS.ProcessEnv = process.env): Promise<Signer> {
  if (cfg.kind === 'software') {
    return openSoftwareSigner(cfg.keyFile, { passphraseEnv: cfg.passphrase.env, passphraseFile: cfg.passphrase.file, env });
  }
  // The PKCS#11 driver implements the same Signer interface (pkcs11js is loaded by it on first use).
  return openPkcs11Signer({
    module: cfg.module,
    uri: cfg.uri,
    token: cfg.token,
    serial: cfg.serial,
    slotId: cfg.slotId,
    label: cfg.label,
    id: cfg.id,
    pinEnv: cfg.pin.env,
    pinFile: cfg.pin.file,
    env,
  });
}
