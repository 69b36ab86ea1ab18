// Where receipts and tree heads go: MQTT in production (mqtt.ts), a recorder
// in unit tests. Publishing is fire-and-forget at QoS 1: a receipt that does
// not arrive costs a resend, and the ledger answers it again (idempotent).
import { encodeReceiptMsg, type ReceiptMsg } from '../protocol/receipt-msg.js';

export interface Publisher {
  /** ReceiptMsg to {p}/dev/{id}/receipt (QoS 1). */
  receipt(deviceId: string, msg: ReceiptMsg): void;
  /** Signed tree head to {p}/ledger/head (QoS 1, retained). */
  head(sth: Uint8Array): void;
}

/** Keeps everything published, for tests and the in-process devnet. */
export class RecordingPublisher implements Publisher {
  readonly receipts: { deviceId: string; msg: ReceiptMsg; bytes: Uint8Array }[] = [];
  readonly heads: Uint8Array[] = [];
  #listeners: ((deviceId: string, msg: ReceiptMsg) => void)[] = [];
  receipt(deviceId: string, msg: ReceiptMsg): void {
    const bytes = encodeReceiptMsg(msg);
    this.receipts.push({ deviceId, msg, bytes });
    for (const l of this.#listeners) l(deviceId, msg);
  }
  head(sth: Uint8Array): void {
    this.heads.push(sth);
  }
  onReceipt(l: (deviceId: string, msg: ReceiptMsg) => void): void {
    this.#listeners.push(l);
  }
}
