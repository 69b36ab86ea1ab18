// ReceiptMsg (ARCHITECTURE §4.4, normative): the ledger's answer to one batch.
//
//   ReceiptMsg = { 1: batch_seq, 2: status, ? 3: receipt bstr, ? 4: next_seq uint, ? 5: reason tstr }
import { decode, encode } from './cbor.js';
import { abytes, amap, akeys, astr, auint, ValidationError } from './errors.js';
import { MAX_RECEIPT_BYTES, MAX_RECEIPT_MSG_BYTES } from './limits.js';

export const ReceiptStatus = {
  /** Committed: the receipt covers the batch. */
  COMMITTED: 0,
  /** Seen before: the same receipt again. */
  DUPLICATE: 1,
  /** Out of order: resend from `nextSeq`. */
  GAP: 2,
  /** Refused: `reason` says why; the device keeps the data and alarms. */
  REJECTED: 3,
} as const;
export type ReceiptStatus = (typeof ReceiptStatus)[keyof typeof ReceiptStatus];

export interface ReceiptMsg {
  batchSeq: number;
  status: ReceiptStatus;
  receipt?: Uint8Array;
  nextSeq?: number;
  reason?: string;
}

function check(r: ReceiptMsg): void {
  auint(r.batchSeq, 'receipt_msg.batch_seq');
  auint(r.status, 'receipt_msg.status', 0, 3);
  if (r.receipt !== undefined) {
    abytes(r.receipt, 'receipt_msg.receipt');
    if (r.receipt.length > MAX_RECEIPT_BYTES) throw new ValidationError('receipt_msg.receipt', `${r.receipt.length} bytes exceeds ${MAX_RECEIPT_BYTES}`);
  }
  if (r.nextSeq !== undefined) auint(r.nextSeq, 'receipt_msg.next_seq', 1);
  if (r.reason !== undefined) astr(r.reason, 'receipt_msg.reason');
  // Each status carries what the device needs to act on it.
  if ((r.status === 0 || r.status === 1) && r.receipt === undefined) throw new ValidationError('receipt_msg.receipt', `required with status ${r.status}`);
  if (r.status === 2 && r.nextSeq === undefined) throw new ValidationError('receipt_msg.next_seq', 'required with status 2 (gap)');
  if (r.status === 3 && r.reason === undefined) throw new ValidationError('receipt_msg.reason', 'required with status 3 (rejected)');
}

export function encodeReceiptMsg(r: ReceiptMsg): Uint8Array {
  check(r);
  const m = new Map<number, unknown>([
    [1, r.batchSeq],
    [2, r.status],
  ]);
  if (r.receipt !== undefined) m.set(3, r.receipt);
  if (r.nextSeq !== undefined) m.set(4, r.nextSeq);
  if (r.reason !== undefined) m.set(5, r.reason);
  return encode(m);
}

export function decodeReceiptMsg(bytes: Uint8Array): ReceiptMsg {
  abytes(bytes, 'receipt_msg');
  if (bytes.length > MAX_RECEIPT_MSG_BYTES) throw new ValidationError('receipt_msg', `${bytes.length} bytes exceeds ${MAX_RECEIPT_MSG_BYTES}`);
  const m = amap(decode(bytes, { maxBytes: MAX_RECEIPT_MSG_BYTES, maxDepth: 2 }), 'receipt_msg');
  akeys(m, 'receipt_msg', [1, 2], [3, 4, 5]);
  const r: ReceiptMsg = { batchSeq: m.get(1) as number, status: m.get(2) as ReceiptStatus };
  if (m.has(3)) r.receipt = m.get(3) as Uint8Array;
  if (m.has(4)) r.nextSeq = m.get(4) as number;
  if (m.has(5)) r.reason = m.get(5) as string;
  check(r);
  return r;
}
