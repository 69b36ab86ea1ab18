// Event proof bundle (.iscm file, ARCHITECTURE §4.4): everything an auditor
// needs to verify one event offline, given only the ledger's public key.
//
//   EventProof = [ record bstr, [index uint, [path bstr …]], batch bstr, receipt bstr, device_key map ]
import { decode, encode } from './cbor.js';
import { aarray, abytes, auint, CborError, IscmError, VerifyError } from './errors.js';
import { MAX_BUNDLE_BYTES, MAX_RECORD_BYTES, MAX_RECEIPT_BYTES, MAX_SIGN1_BYTES } from './limits.js';
import { decodeRecord, type Record } from './record.js';
import { verifyBatch } from './batch-sign.js';
import { leafHash, verifyInclusion } from './merkle.js';
import { batchLeafEntry, verifyReceipt, type TrustedKey, type VerifiedReceipt } from './receipt.js';
import { coseKeyFromMap, coseKeyToMap, type CoseKey } from './cose/key.js';
import type { BatchHeader } from './batch.js';

export interface EventProof {
  record: Uint8Array;
  /** Leaf index in the batch tree: seq − first_seq. */
  index: number;
  /** RFC 9162 inclusion path in the batch tree of `count` leaves. */
  path: Uint8Array[];
  batch: Uint8Array;
  receipt: Uint8Array;
  deviceKey: CoseKey;
}

export function encodeEventProof(p: EventProof): Uint8Array {
  return encode([p.record, [p.index, p.path], p.batch, p.receipt, coseKeyToMap(p.deviceKey)]);
}

export function decodeEventProof(bytes: Uint8Array): EventProof {
  abytes(bytes, 'bundle');
  if (bytes.length > MAX_BUNDLE_BYTES) throw new VerifyError('BUNDLE_INVALID', `bundle of ${bytes.length} bytes exceeds ${MAX_BUNDLE_BYTES}`, 'bundle');
  let top: unknown;
  try {
    top = decode(bytes, { maxBytes: MAX_BUNDLE_BYTES, maxDepth: 6 });
  } catch (e) {
    if (e instanceof CborError) throw new VerifyError('BUNDLE_INVALID', `not a valid bundle (truncated or corrupted file?): ${e.message}`, 'bundle');
    throw e;
  }
  const a = aarray(top, 'bundle', 5, 5);
  const record = abytes(a[0], 'bundle.record');
  if (record.length > MAX_RECORD_BYTES) throw new VerifyError('BUNDLE_INVALID', 'record too large', 'bundle.record');
  const pos = aarray(a[1], 'bundle.position', 2, 2);
  const path = aarray(pos[1], 'bundle.position.path', 0, 64).map((p, i) => abytes(p, `bundle.position.path[${i}]`, 32));
  const batch = abytes(a[2], 'bundle.batch');
  if (batch.length > MAX_SIGN1_BYTES) throw new VerifyError('BUNDLE_INVALID', 'batch too large', 'bundle.batch');
  const receipt = abytes(a[3], 'bundle.receipt');
  if (receipt.length > MAX_RECEIPT_BYTES) throw new VerifyError('BUNDLE_INVALID', 'receipt too large', 'bundle.receipt');
  return { record, index: auint(pos[0], 'bundle.position.index'), path, batch, receipt, deviceKey: coseKeyFromMap(a[4], 'bundle.device_key') };
}

export interface VerifiedEvent {
  record: Record;
  batch: BatchHeader;
  receipt: VerifiedReceipt;
}

/**
 * Verifies a bundle end to end (§4.4), in the order that gives the most useful
 * reason first: record well-formed → device signature on the batch (key whose
 * thumbprint is the kid; low-S) → record in the batch tree at its seq →
 * batch in the log (receipt inclusion) → receipt signed by a trusted ledger key.
 */
export function verifyEventProof(bytes: Uint8Array, trusted: readonly TrustedKey[]): VerifiedEvent {
  const p = decodeEventProof(bytes);
  const step = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof IscmError) throw new VerifyError(e.code === 'INVALID_FIELD' || e.code.startsWith('CBOR') ? 'BUNDLE_INVALID' : e.code, `${what}: ${e.message}`, e.field);
      throw e;
    }
  };
  const record = step('record', () => decodeRecord(p.record));
  const batch = step('batch signature', () => verifyBatch(p.batch, p.deviceKey));
  step('record in batch', () => {
    if (record.deviceId !== batch.deviceId)
      throw new VerifyError('BUNDLE_INVALID', `record is from device ${record.deviceId}, the batch from ${batch.deviceId}`);
    const last = batch.firstSeq + batch.count - 1;
    if (record.seq < batch.firstSeq || record.seq > last)
      throw new VerifyError('BUNDLE_INVALID', `record seq ${record.seq} is outside the batch's ${batch.firstSeq}..${last}`);
    if (p.index !== record.seq - batch.firstSeq)
      throw new VerifyError('BUNDLE_INVALID', `leaf index ${p.index} does not match seq ${record.seq} − first_seq ${batch.firstSeq}`);
    verifyInclusion(leafHash(p.record), p.index, batch.count, p.path, batch.root);
  });
  const receipt = step('receipt', () => verifyReceipt(p.receipt, { leafEntry: batchLeafEntry(p.batch), trusted, requireSignedSize: true }));
  return { record, batch, receipt };
}
