// Simulated devices for ledger tests and the benchmark: real signed batches
// (protocol/ codecs, a software signer), published over MQTT exactly as a
// light node does (§4.3): QoS 1, persistent session, a window of unreceipted
// batches, resend on timeout, receipts verified with the project's verifier
// against the tree head the device trusted when it sent the batch.
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { sha256, toHex, ZERO32 } from '../../protocol/bytes.js';
import { encodeBatchMessage } from '../../protocol/batch.js';
import { signBatch } from '../../protocol/batch-sign.js';
import { merkleRoot } from '../../protocol/merkle.js';
import { encodeRecord, recordHash, type Record } from '../../protocol/record.js';
import { decodeReceiptMsg, ReceiptStatus, type ReceiptMsg } from '../../protocol/receipt-msg.js';
import { batchLeafEntry, receiptProofs, verifyReceipt, type TrustedKey, type VerifiedReceipt } from '../../protocol/receipt.js';
import { topics } from '../../protocol/topics.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { softwareSignerFromKey } from '../../drivers/software/signer.js';
import type { Signer } from '../../drivers/signer.js';
import { sampleEvent } from './fixtures.js';

export interface SimBatch {
  batchSeq: number;
  firstSeq: number;
  count: number;
  sign1: Uint8Array;
  records: Uint8Array[];
  entry: Uint8Array;
  /** Event ids of the records, in order. */
  eventIds: string[];
}

let eventCounter = 0;

/** A device's record and batch chain, signing real batches. */
export class DeviceChain {
  readonly signer: Signer;
  batchSeq = 0;
  seq = 0;
  prevBatch: Uint8Array = ZERO32;
  prevRecord: Uint8Array = ZERO32;
  /** Random (incompressible) text of this many characters added to each event (ILMD), for volume tests. */
  pad = 0;
  constructor(
    readonly deviceId: string,
    alg: number = ALG.ES256,
    privateKey?: KeyObject,
  ) {
    const key =
      privateKey ?? (alg === ALG.EdDSA ? generateKeyPairSync('ed25519').privateKey : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
    this.signer = softwareSignerFromKey(alg, key);
  }

  /** Record bytes for the next n records (advances the record chain). */
  records(n: number): { bytes: Uint8Array[]; eventIds: string[] } {
    const bytes: Uint8Array[] = [];
    const eventIds: string[] = [];
    for (let i = 0; i < n; i++) {
      const seq = ++this.seq;
      const ev = sampleEvent(seq);
      // Unique event ids across devices and runs of one process.
      ev.eventID = `ni:///sha-256;${toHex(sha256(new TextEncoder().encode(`${this.deviceId}/${seq}/${process.pid}/${++eventCounter}`)))}?ver=CBV2.0`;
      if (this.pad > 0) ev.ilmd = { 'example:blob': randomBytes(Math.ceil((this.pad * 3) / 4)).toString('base64').slice(0, this.pad) };
      const r: Record = { deviceId: this.deviceId, seq, prev: this.prevRecord, time: 1_764_000_000_000 + seq * 1000, event: ev, source: { sensor: 't1', boot_id: 7, frame_seq: seq } };
      const b = encodeRecord(r);
      bytes.push(b);
      eventIds.push(ev.eventID as string);
      this.prevRecord = recordHash(b);
    }
    return { bytes, eventIds };
  }

  /** The next batch of n records, signed. */
  async next(n: number, o: { time?: number } = {}): Promise<SimBatch> {
    const firstSeq = this.seq + 1;
    const { bytes, eventIds } = this.records(n);
    const batchSeq = ++this.batchSeq;
    const sign1 = await signBatch(this.signer, {
      deviceId: this.deviceId,
      batchSeq,
      firstSeq,
      count: n,
      root: merkleRoot(bytes),
      prev: this.prevBatch,
      time: o.time ?? Date.now(),
    });
    this.prevBatch = sha256(sign1);
    return { batchSeq, firstSeq, count: n, sign1, records: bytes, entry: batchLeafEntry(sign1), eventIds };
  }
}

export function batchMessage(b: SimBatch, knownSize = 0): Uint8Array {
  return encodeBatchMessage({ sign1: b.sign1, records: b.records, knownSize });
}

export interface SimReceipt {
  msg: ReceiptMsg;
  verified?: VerifiedReceipt;
  error?: string;
  at: number;
}

export interface SimDeviceOptions {
  url: string;
  prefix?: string;
  trusted: TrustedKey[];
  /** Unreceipted batches in flight (default 4). */
  window?: number;
  /** Resend a batch not receipted within this (default 15 s). */
  resendMs?: number;
  alg?: number;
  clientId?: string;
}

/**
 * A device on MQTT: publishes batches, keeps a window, resends, verifies
 * receipts. `committed` maps batch_seq → the verified receipt.
 */
export class SimDevice {
  readonly chain: DeviceChain;
  client!: MqttClient;
  readonly batches = new Map<number, SimBatch & { sentAt: number; firstSentAt: number; known: { size: number; root: Uint8Array } | undefined; sends: number }>();
  readonly committed = new Map<number, SimReceipt>();
  readonly received: SimReceipt[] = [];
  /** The latest tree head this device verified. */
  known: { size: number; root: Uint8Array } | undefined;
  /** Every tree head it verified (all consistent with each other): a receipt's consistency proof may start at any of them. */
  readonly knownHeads = new Map<number, Uint8Array>();
  #timer: NodeJS.Timeout | null = null;
  #waiters: (() => void)[] = [];
  readonly prefix: string;

  constructor(readonly deviceId: string, readonly o: SimDeviceOptions) {
    this.chain = new DeviceChain(deviceId, o.alg ?? ALG.ES256);
    this.prefix = o.prefix ?? 'iscm/v1';
  }

  get publicKey() {
    return this.chain.signer.publicKey;
  }

  async connect(): Promise<void> {
    this.client = await mqtt.connectAsync(this.o.url, {
      clientId: this.o.clientId ?? `dev-${this.deviceId}`,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
      reconnectPeriod: 500,
      connectTimeout: 10_000,
    });
    this.client.on('message', (topic, payload) => this.#onReceipt(topic, payload));
    await this.client.subscribeAsync(topics.receipt(this.prefix, this.deviceId), { qos: 1 });
    this.#timer = setInterval(() => this.#resend(), 1000);
  }

  #onReceipt(_topic: string, payload: Buffer): void {
    let msg: ReceiptMsg;
    try {
      msg = decodeReceiptMsg(new Uint8Array(payload));
    } catch (e) {
      this.received.push({ msg: { batchSeq: 0, status: ReceiptStatus.REJECTED, reason: 'undecodable receipt msg' }, error: (e as Error).message, at: Date.now() });
      return;
    }
    const r: SimReceipt = { msg, at: Date.now() };
    this.received.push(r);
    const b = this.batches.get(msg.batchSeq);
    if ((msg.status === ReceiptStatus.COMMITTED || msg.status === ReceiptStatus.DUPLICATE) && b && msg.receipt) {
      try {
        // The proof starts at the known_size of whichever send of this batch was answered.
        const from = receiptProofs(msg.receipt).consistency[0]?.size1;
        const knownHead = from !== undefined && this.knownHeads.has(from) ? { size: from, root: this.knownHeads.get(from)! } : from === undefined ? undefined : b.known;
        r.verified = verifyReceipt(msg.receipt, { leafEntry: b.entry, trusted: this.o.trusted, knownHead, requireSignedSize: true });
        if (!this.committed.has(msg.batchSeq)) this.committed.set(msg.batchSeq, r);
        this.knownHeads.set(r.verified.treeSize!, r.verified.root);
        if (!this.known || r.verified.treeSize! > this.known.size) this.known = { size: r.verified.treeSize!, root: r.verified.root };
      } catch (e) {
        r.error = (e as Error).message;
      }
    } else if (msg.status === ReceiptStatus.GAP && msg.nextSeq !== undefined) {
      // Resend from next_seq.
      for (const [seq, x] of this.batches) if (seq >= msg.nextSeq && !this.committed.has(seq)) x.sentAt = 0;
      this.#resend();
    }
    for (const w of this.#waiters.splice(0)) w();
  }

  #publishBatch(b: SimBatch & { sentAt: number; known: { size: number; root: Uint8Array } | undefined; sends: number }): void {
    b.known = this.known ? { ...this.known } : undefined;
    b.sentAt = Date.now();
    b.sends++;
    this.client.publish(topics.batch(this.prefix, this.deviceId), Buffer.from(batchMessage(b, b.known?.size ?? 0)), { qos: 1 });
  }

  #resend(): void {
    const now = Date.now();
    const timeout = this.o.resendMs ?? 15_000;
    for (const [seq, b] of this.batches) if (!this.committed.has(seq) && now - b.sentAt > timeout) this.#publishBatch(b);
  }

  /** Signs and publishes the next batch of n records. */
  async send(n: number): Promise<SimBatch> {
    const b = await this.chain.next(n);
    const x = { ...b, sentAt: 0, firstSentAt: Date.now(), known: undefined, sends: 0 };
    this.batches.set(b.batchSeq, x);
    this.#publishBatch(x);
    return b;
  }

  /** Publishes raw bytes on this device's batch topic (bad-input tests). */
  publishRaw(payload: Uint8Array): void {
    this.client.publish(topics.batch(this.prefix, this.deviceId), Buffer.from(payload), { qos: 1 });
  }

  inFlight(): number {
    let n = 0;
    for (const seq of this.batches.keys()) if (!this.committed.has(seq)) n++;
    return n;
  }

  /** Resolves on the next receipt message (or after ms). */
  nextReceipt(ms = 1000): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(r, ms);
      this.#waiters.push(() => {
        clearTimeout(t);
        r();
      });
    });
  }

  /** Sends `batches` batches of `n` records keeping the window full; resolves when all are committed. */
  async run(batches: number, n: number, timeoutMs = 120_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    const window = this.o.window ?? 4;
    let sent = 0;
    while (this.committed.size < this.chain.batchSeq || sent < batches) {
      if (Date.now() > end) throw new Error(`${this.deviceId}: ${this.committed.size}/${batches} batches receipted after ${timeoutMs} ms`);
      while (sent < batches && this.inFlight() < window) {
        await this.send(n);
        sent++;
      }
      await this.nextReceipt(500);
    }
  }

  #load: Promise<void> | null = null;
  #loadOn = false;

  /** Keeps sending batches of n records, window full, until stopLoad(). */
  startLoad(n: number): void {
    this.#loadOn = true;
    this.#load = (async () => {
      const window = this.o.window ?? 4;
      while (this.#loadOn) {
        if (this.inFlight() < window) await this.send(n);
        else await this.nextReceipt(500);
      }
    })();
  }

  /** Stops sending new batches; resolves when every sent batch is receipted. */
  async stopLoad(timeoutMs = 120_000): Promise<void> {
    this.#loadOn = false;
    await this.#load;
    const end = Date.now() + timeoutMs;
    while (this.inFlight() > 0) {
      if (Date.now() > end) throw new Error(`${this.deviceId}: ${this.inFlight()} batches still unreceipted after ${timeoutMs} ms`);
      await this.nextReceipt(500);
    }
  }

  /** Receipts with status committed or duplicate received so far. */
  receiptsOk(): number {
    return this.received.filter((r) => r.msg.status === ReceiptStatus.COMMITTED || r.msg.status === ReceiptStatus.DUPLICATE).length;
  }

  async close(): Promise<void> {
    this.#loadOn = false;
    if (this.#timer) clearInterval(this.#timer);
    await this.client?.endAsync(true).catch(() => undefined);
  }
}
