// The signer interface every signer driver implements (software key file,
// PKCS#11 token, …), so the runtime and the ledger never know which one they
// hold. A driver keeps the private key to itself (ARCHITECTURE §2 invariant 4):
// nothing here exposes key material, PINs or passphrases.
import type { CoseKey } from '../protocol/cose/key.js';
import type { CoseSigner } from '../protocol/cose/sign1.js';

export interface Signer extends CoseSigner {
  /** COSE alg id: -7 ES256, -8 EdDSA, -37 PS256, -47 ES256K. */
  readonly alg: number;
  /** The public key (a validated COSE_Key; encode it with encodeCoseKey). */
  readonly publicKey: CoseKey;
  /** RFC 9679 thumbprint (SHA-256) of publicKey: the batch `kid`. */
  readonly kid: Uint8Array;
  /**
   * Signs `data` (the COSE Sig_structure bytes) and returns the COSE signature:
   * raw r‖s, low-S for ECDSA; 64 bytes for Ed25519; modulus-sized for PS256.
   * Failures reject with an IscmError whose code is 'SIGNER_ERROR'.
   */
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** Releases the key / token session. Signing after close fails with SIGNER_ERROR. */
  close?(): Promise<void>;
}
