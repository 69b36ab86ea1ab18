// Software signer: a private key held in this process, loaded from a
// passphrase-encrypted key file (keyfile.ts) or handed over in memory (tests,
// devnet). Implements the same Signer interface as the PKCS#11 driver.
//
// Signing uses node:crypto for every alg, chosen by measurement (signs/s on
// the dev box: Ed25519 33 300 node vs 1 660 noble; P-256 35 000 vs 2 140;
// secp256k1 3 100 node vs 1 580 noble; RSA-2048 PS256 2 860 node). If the
// node build's OpenSSL lacks secp256k1, ES256K falls back to @noble/curves
// (see protocol/cose/algorithms.ts). ECDSA output is raw r‖s, low-S.
import type { KeyObject } from 'node:crypto';
import { IscmError } from '../../protocol/errors.js';
import { createRawSigner, type RawSign } from '../../protocol/cose/algorithms.js';
import { coseKeyFromKeyObject, thumbprint, type CoseKey } from '../../protocol/cose/key.js';
import type { Signer } from '../signer.js';
import { SOFTWARE_ALGS, readKeyFile, type PassphraseSource } from './keyfile.js';

class SoftwareSigner implements Signer {
  readonly alg: number;
  readonly publicKey: CoseKey;
  readonly kid: Uint8Array;
  #sign: RawSign | null;

  constructor(alg: number, privateKey: KeyObject) {
    if (!SOFTWARE_ALGS.includes(alg))
      throw new IscmError('SIGNER_ERROR', `alg ${alg} is not supported by the software signer (use -7, -8, -37 or -47)`);
    try {
      this.#sign = createRawSigner(alg, privateKey);
      if (alg === -8 && privateKey.asymmetricKeyType !== 'ed25519') throw new Error('EdDSA software keys are Ed25519');
      this.publicKey = coseKeyFromKeyObject(privateKey, { alg });
    } catch (e) {
      throw new IscmError('SIGNER_ERROR', `unusable key for alg ${alg}: ${(e as Error).message}`, undefined, { cause: e });
    }
    this.alg = alg;
    this.kid = thumbprint(this.publicKey);
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    const f = this.#sign;
    if (!f) throw new IscmError('SIGNER_ERROR', 'the signer is closed');
    if (!(data instanceof Uint8Array)) throw new IscmError('SIGNER_ERROR', 'data to sign must be bytes');
    try {
      return f(data);
    } catch (e) {
      throw new IscmError('SIGNER_ERROR', `software signing failed: ${(e as Error).message}`, undefined, { cause: e });
    }
  }

  async close(): Promise<void> {
    // A KeyObject cannot be wiped; dropping the reference is what we can do.
    this.#sign = null;
  }
}

/** A signer over an in-memory private key (tests, devnet). Throws SIGNER_ERROR for a key that does not fit `alg`. */
export function softwareSignerFromKey(alg: number, privateKey: KeyObject): Signer {
  return new SoftwareSigner(alg, privateKey);
}

/**
 * Opens a key file with the passphrase from `source` (environment variable or
 * passphrase file; never an argument) and returns its signer. Errors are
 * IscmError('KEYFILE_ERROR') and never contain the passphrase.
 */
export async function openSoftwareSigner(path: string, source: PassphraseSource = {}, opts: { checkMode?: boolean } = {}): Promise<Signer> {
  const k = await readKeyFile(path, source, opts);
  return new SoftwareSigner(k.alg, k.privateKey);
}
