// Signing and verifying batch COSE_Sign1 messages (ARCHITECTURE §4.2).
//
//   protected { 1: alg, 3: "application/vnd.iscm.batch+cbor", 4: kid }, unprotected {}, payload BatchHeader
//
// The kid is the RFC 9679 thumbprint of the device key, so the ledger and any
// auditor find the key by the kid alone; a verifier holding the key checks
// that the kid really is its thumbprint before trusting the signature.
import { equalBytes, toHex } from './bytes.js';
import { VerifyError } from './errors.js';
import { MAX_SIGN1_BYTES } from './limits.js';
import { BATCH_CONTENT_TYPE, decodeBatchHeader, encodeBatchHeader, type BatchHeader } from './batch.js';
import { decodeSign1, signSign1, verifySign1, HEADER, type CoseSigner, type DecodedSign1 } from './cose/sign1.js';
import { thumbprint, type CoseKey } from './cose/key.js';

export interface BatchSigner extends CoseSigner {
  readonly kid: Uint8Array;
}

export async function signBatch(signer: BatchSigner, header: BatchHeader): Promise<Uint8Array> {
  return signSign1(signer, {
    protectedHeader: new Map<number, unknown>([
      [HEADER.alg, signer.alg],
      [HEADER.contentType, BATCH_CONTENT_TYPE],
      [HEADER.kid, signer.kid],
    ]),
    unprotected: new Map(),
    payload: encodeBatchHeader(header),
  });
}

/** Structure of a batch COSE_Sign1 without its signature checked: header, kid, alg. */
export function parseBatch(sign1: Uint8Array): { decoded: DecodedSign1; header: BatchHeader; kid: Uint8Array } {
  if (!(sign1 instanceof Uint8Array)) throw new VerifyError('COSE_INVALID', 'batch must be bytes', 'batch');
  if (sign1.length > MAX_SIGN1_BYTES) throw new VerifyError('COSE_INVALID', `batch of ${sign1.length} bytes exceeds ${MAX_SIGN1_BYTES}`, 'batch');
  const decoded = decodeSign1(sign1, { tagged: 'required', maxBytes: MAX_SIGN1_BYTES });
  if (decoded.protected.get(HEADER.contentType) !== BATCH_CONTENT_TYPE)
    throw new VerifyError('COSE_INVALID', `batch content type must be ${BATCH_CONTENT_TYPE}`, 'batch.protected.3');
  const kid = decoded.protected.get(HEADER.kid);
  if (!(kid instanceof Uint8Array) || kid.length !== 32) throw new VerifyError('COSE_INVALID', 'batch kid (protected label 4) must be a 32-byte key thumbprint', 'batch.protected.4');
  if (decoded.unprotected.size !== 0) throw new VerifyError('COSE_INVALID', 'batch unprotected header must be empty', 'batch.unprotected');
  if (decoded.payload === null) throw new VerifyError('COSE_INVALID', 'batch payload must be attached', 'batch.payload');
  const header = decodeBatchHeader(decoded.payload);
  return { decoded, header, kid };
}

/** Verifies a batch signature with the device key; high-S ECDSA is rejected (§4.2). */
export function verifyBatch(sign1: Uint8Array, deviceKey: CoseKey): BatchHeader {
  const { decoded, header, kid } = parseBatch(sign1);
  const tp = thumbprint(deviceKey);
  if (!equalBytes(tp, kid)) throw new VerifyError('KEY_INVALID', `batch kid ${toHex(kid)} is not the thumbprint of the given device key (${toHex(tp)})`, 'batch.protected.4');
  verifySign1(decoded, deviceKey, { rejectHighS: true });
  return header;
}
