// Verifying one batch message from a device (ARCHITECTURE §4.2, §4.3, §5):
// everything that can be checked without the log — size, CBOR, the COSE
// structure, the topic, the registry (enrolled, not revoked, kid = key
// thumbprint), the signature (low-S), every record, the record chain inside
// the batch and the Merkle root. Whether the batch continues the device's
// committed chain is `continuesChain`, used by ingest and again by the
// sequencer (which is the one that decides).
import { sha256, equalBytes, toHex, ZERO32 } from '../protocol/bytes.js';
import { errorMessage, IscmError } from '../protocol/errors.js';
import { MAX_BATCH_MESSAGE_BYTES } from '../protocol/limits.js';
import { decodeBatchMessage, type BatchHeader } from '../protocol/batch.js';
import { parseBatch, verifyBatch } from '../protocol/batch-sign.js';
import { decodeRecord } from '../protocol/record.js';
import { merkleRoot } from '../protocol/merkle.js';
import type { Registry } from './registry.js';
import type { DeviceHead } from './store/types.js';

/** Why a batch was refused: a stable label for metrics (the reason text is for humans). */
export type RejectClass =
  | 'oversize'
  | 'malformed'
  | 'topic'
  | 'unknown_device'
  | 'revoked'
  | 'key'
  | 'signature'
  | 'high_s'
  | 'records'
  | 'root'
  | 'chain'
  | 'fork';

export interface VerifiedBatch {
  header: BatchHeader;
  sign1: Uint8Array;
  records: Uint8Array[];
  /** Log leaf entry: SHA-256 of the COSE_Sign1 bytes. */
  entry: Uint8Array;
  knownSize: number;
  /** prev of the first record. */
  firstPrev: Uint8Array;
  /** Hash of the last record. */
  lastRecordHash: Uint8Array;
}

export type Verdict =
  | { ok: true; batch: VerifiedBatch; request?: false }
  /** A receipt request (no records): the device's signature verified, nothing else to check. */
  | { ok: true; request: true; header: BatchHeader; entry: Uint8Array; knownSize: number }
  | { ok: false; cls: RejectClass; reason: string; deviceId?: string; batchSeq: number };

export interface VerifyOptions {
  maxMessageBytes?: number;
  now?: number;
}

/** Verifies a batch message received on the batch topic of `topicDevice`. */
export async function verifyBatchMessage(bytes: Uint8Array, topicDevice: string, registry: Registry, o: VerifyOptions = {}): Promise<Verdict> {
  const max = Math.min(o.maxMessageBytes ?? MAX_BATCH_MESSAGE_BYTES, MAX_BATCH_MESSAGE_BYTES);
  const reject = (cls: RejectClass, reason: string, batchSeq = 0): Verdict => ({ ok: false, cls, reason, deviceId: topicDevice, batchSeq });
  if (bytes.length > max) return reject('oversize', `batch message of ${bytes.length} bytes exceeds the limit of ${max}`);
  let msg;
  try {
    msg = decodeBatchMessage(bytes);
  } catch (e) {
    return reject(/exceeds/.test(errorMessage(e)) ? 'oversize' : 'malformed', `malformed batch message: ${errorMessage(e)}`);
  }
  let parsed;
  try {
    parsed = parseBatch(msg.sign1);
  } catch (e) {
    return reject('malformed', `malformed batch COSE_Sign1: ${errorMessage(e)}`);
  }
  const h = parsed.header;
  if (h.deviceId !== topicDevice) return reject('topic', `batch of device ${h.deviceId} arrived on the topic of device ${topicDevice}`, h.batchSeq);
  const k = await registry.lookup(h.deviceId, parsed.kid, o.now);
  if (!k.ok) return reject(/revoked/.test(k.reason) ? 'revoked' : /not enrolled/.test(k.reason) ? 'unknown_device' : 'key', k.reason, h.batchSeq);
  try {
    verifyBatch(msg.sign1, k.key);
  } catch (e) {
    const m = errorMessage(e);
    return reject(/high-S|low-S/i.test(m) ? 'high_s' : 'signature', `batch signature: ${m}`, h.batchSeq);
  }
  // No records: a receipt request for a batch the ledger already holds (docs/PROTOCOL.md §3).
  if (msg.records.length === 0 && h.count > 0) return { ok: true, request: true, header: h, entry: sha256(msg.sign1), knownSize: msg.knownSize };
  if (msg.records.length !== h.count) return reject('records', `the batch header says ${h.count} records, the message carries ${msg.records.length}`, h.batchSeq);
  let prev: Uint8Array | null = null;
  let firstPrev: Uint8Array = ZERO32;
  for (let i = 0; i < msg.records.length; i++) {
    const b = msg.records[i];
    let r;
    try {
      r = decodeRecord(b);
    } catch (e) {
      return reject('records', `record ${i} (seq ${h.firstSeq + i}): ${e instanceof IscmError ? e.message : errorMessage(e)}`, h.batchSeq);
    }
    if (r.deviceId !== h.deviceId) return reject('records', `record ${i} is from device ${r.deviceId}, the batch from ${h.deviceId}`, h.batchSeq);
    if (r.seq !== h.firstSeq + i) return reject('records', `record ${i} has seq ${r.seq}, expected ${h.firstSeq + i} (first_seq ${h.firstSeq} + ${i})`, h.batchSeq);
    if (prev && !equalBytes(r.prev, prev)) return reject('records', `record seq ${r.seq} does not link to the hash of record seq ${r.seq - 1}`, h.batchSeq);
    if (i === 0) firstPrev = r.prev;
    prev = sha256(b);
  }
  const root = merkleRoot(msg.records);
  if (!equalBytes(root, h.root)) return reject('root', `the records' Merkle root ${toHex(root)} is not the signed root ${toHex(h.root)}`, h.batchSeq);
  return {
    ok: true,
    batch: {
      header: h,
      sign1: msg.sign1,
      records: msg.records,
      entry: sha256(msg.sign1),
      knownSize: msg.knownSize,
      firstPrev,
      lastRecordHash: prev!,
    },
  };
}

export interface ChainLink {
  batchSeq: number;
  /** BatchHeader.prev */
  prev: Uint8Array;
  firstSeq: number;
  /** prev of the first record */
  firstPrev: Uint8Array;
}

/** Why `b` does not directly continue the committed head (null if it does). */
export function continuesChain(head: Pick<DeviceHead, 'batchSeq' | 'lastEntry' | 'lastSeq' | 'lastRecordHash'> | null, b: ChainLink): string | null {
  const seq = head?.batchSeq ?? 0;
  const lastEntry = head?.lastEntry ?? ZERO32;
  const lastSeq = head?.lastSeq ?? 0;
  const lastRecord = head?.lastRecordHash ?? ZERO32;
  if (b.batchSeq !== seq + 1) return `batch_seq ${b.batchSeq} does not follow ${seq}`;
  if (!equalBytes(b.prev, lastEntry)) return `batch ${b.batchSeq} prev ${toHex(b.prev)} is not the hash of committed batch ${seq} (${toHex(lastEntry)})`;
  if (b.firstSeq !== lastSeq + 1) return `batch ${b.batchSeq} starts at record seq ${b.firstSeq}, the device's committed records end at ${lastSeq}`;
  if (!equalBytes(b.firstPrev, lastRecord)) return `record seq ${b.firstSeq} does not link to committed record seq ${lastSeq}`;
  return null;
}
