// The gateway side of the MCU link (ARCHITECTURE §4.5, docs/LINK.md):
// handshake with version negotiation, in-order data delivery with duplicate
// suppression by (boot_id, seq) persisted across restarts, cumulative ACKs
// issued only after the consumer's durability promise resolves, NACKs for
// gaps / invalid frames / back-pressure, PING/PONG heartbeat, TIME sync and
// CONFIG push. Transport-agnostic: feed bytes in with receive(), bytes go out
// through `send`.
import { EventEmitter } from 'node:events';
import { decode } from '../protocol/cbor.js';
import { errorMessage, IscmError } from '../protocol/errors.js';
import { checkReading, type Reading } from '../protocol/reading.js';
import { DedupeTable, MemoryDedupeStore, type DedupeStore } from './dedupe.js';
import { LinkError } from './errors.js';
import { FrameType, frameTypeName, type Frame } from './frame.js';
import { decodeMessage, encodeMessage, ErrorCodeLink, LINK_VERSIONS, NackReason, type DataMsg, type HelloMsg, type Message, type NackReasonCode, type Settings } from './messages.js';
import { FrameParser, type BadFrame } from './parser.js';

export interface GatewaySessionOptions {
  /** Writes bytes to the link (never throws; the transport handles a dead port). */
  send: (bytes: Uint8Array) => void;
  /**
   * Receives new readings in order (no duplicates). Resolve when they are
   * durable (journal fsync'd): only then is the MCU acknowledged. Reject to
   * refuse them (e.g. journal full): nothing is acked, the MCU keeps them and
   * resends later. Called again only after the previous call settled.
   * Resolve with a DeliverResult to acknowledge less than everything (see there).
   */
  deliver: (readings: Reading[]) => Promise<void | DeliverResult>;
  /** Persisted duplicate table (default in memory only). */
  dedupe?: DedupeStore;
  /** Extra state saved atomically with the duplicate table. */
  aux?: () => Record<string, unknown> | undefined;
  versions?: readonly number[];
  /** Settings pushed in HELLO_ACK (and by pushConfig). */
  config?: Settings;
  /** Gateway name sent in HELLO_ACK. */
  gateway?: string;
  /** Send a PING after this long without receiving anything (default 1000 ms). */
  pingIntervalMs?: number;
  /** Declare the link dead after this long without receiving anything (default 3500 ms). */
  deadAfterMs?: number;
  /** Periodic TIME push (default 10 min; 0 = only at handshake and on request). */
  timeSyncIntervalMs?: number;
  configTimeoutMs?: number;
  /** Coalescing delay of dedupe-table persists (default 250 ms). */
  dedupeFlushMs?: number;
  /** Accepted-but-undelivered readings kept at most (default 8192); beyond, frames are dropped and resent by the MCU. */
  maxPending?: number;
  now?: () => number;
}

/**
 * What a consumer made of a delivery, when it is not simply "all durable".
 * Per MCU boot id:
 * - `ackThrough`: acknowledge only through this seq. The readings above it were
 *   taken (they are not delivered again) but are not durable yet — e.g. held
 *   in memory until the gateway has a trusted time. The MCU keeps them; call
 *   `acknowledge()` once they are durable.
 * - `refusedFrom`: readings from this seq on were not taken (e.g. the journal
 *   is at its high-water mark): NACK BUSY, the MCU resends them later.
 */
export interface DeliverResult {
  ackThrough?: Map<number, number>;
  refusedFrom?: Map<number, number>;
}

export interface HelloInfo {
  bootId: number;
  firmware: string;
  version: number;
  sensors: HelloMsg['sensors'];
  device?: string;
}

export interface SessionStats {
  frames: number;
  readings: number;
  duplicates: number;
  gaps: number;
  invalid: number;
  busy: number;
  acks: number;
  nacks: number;
  unexpected: number;
  handshakes: number;
  reboots: number;
  pings: number;
  pongs: number;
  deaths: number;
  lastRttMs: number | undefined;
  badFrames: Record<string, number>;
}

export type SessionState = 'waiting' | 'linked';

interface Item { boot: number; seq: number; reading: Reading | null }

const NACK_MIN_INTERVAL_MS = 150;

/** Key 6 (boot_id) of a data payload that failed strict decoding, if it can be read at all. */
function peekBoot(payload: Uint8Array): number | undefined {
  try {
    const m = decode(payload, { canonical: false, maxBytes: 1024, maxDepth: 8 });
    const b = m instanceof Map ? m.get(6) : undefined;
    return typeof b === 'number' && Number.isInteger(b) && b >= 0 && b <= 0xffffffff ? b : undefined;
  } catch {
    return undefined;
  }
}

export class GatewaySession extends EventEmitter {
  readonly table = new DedupeTable();
  readonly parser: FrameParser;
  state: SessionState = 'waiting';
  bootId: number | undefined;
  version: number | undefined;
  hello: HelloInfo | undefined;
  readonly counters = { frames: 0, readings: 0, duplicates: 0, gaps: 0, invalid: 0, busy: 0, acks: 0, nacks: 0, unexpected: 0, handshakes: 0, reboots: 0, pings: 0, pongs: 0, deaths: 0 };
  private lastRtt: number | undefined;

  private readonly o: Required<Omit<GatewaySessionOptions, 'dedupe' | 'aux' | 'config' | 'gateway'>> & Pick<GatewaySessionOptions, 'aux' | 'gateway'>;
  private readonly store: DedupeStore;
  private readonly accepted = new Map<number, number>();
  private pending: Item[] = [];
  private inflight: Item[] | null = null;
  private inflightDone: Promise<void> = Promise.resolve();
  private flushScheduled = false;
  private ackDue = new Set<number>();
  private ackScheduled = false;
  private lastNack = new Map<string, number>();
  private ctlSeq = 1;
  private monoOffset: number | undefined;
  private lastRx = 0;
  private lastPing = 0;
  private lastTime = 0;
  private dead = false;
  private connected = false;
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private saveTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  private closed = false;
  private config: { version: number; settings: Settings } | undefined;
  private configWaits = new Map<number, { version: number; resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(opts: GatewaySessionOptions) {
    super();
    this.o = {
      send: opts.send,
      deliver: opts.deliver,
      versions: opts.versions ?? LINK_VERSIONS,
      pingIntervalMs: opts.pingIntervalMs ?? 1000,
      deadAfterMs: opts.deadAfterMs ?? 3500,
      timeSyncIntervalMs: opts.timeSyncIntervalMs ?? 600_000,
      configTimeoutMs: opts.configTimeoutMs ?? 5000,
      dedupeFlushMs: opts.dedupeFlushMs ?? 250,
      maxPending: opts.maxPending ?? 8192,
      now: opts.now ?? Date.now,
      aux: opts.aux,
      gateway: opts.gateway,
    };
    this.store = opts.dedupe ?? new MemoryDedupeStore();
    if (opts.config) this.config = { version: 1, settings: opts.config };
    this.parser = new FrameParser({ onFrame: (f) => this.onFrame(f), onBad: (b) => this.onBad(b) });
  }

  /** Loads the persisted duplicate table and starts the heartbeat. Returns the aux state saved with it. */
  async open(): Promise<Record<string, unknown> | undefined> {
    const snap = await this.store.load();
    if (snap) this.table.restore(snap);
    const tick = Math.max(50, Math.min(250, Math.floor(this.o.pingIntervalMs / 2)));
    this.timer = setInterval(() => this.heartbeat(), tick);
    this.timer.unref?.();
    return snap?.aux;
  }

  /** Raises the durable seq of a boot from the consumer's own durable data (call after open()). */
  seed(bootId: number, seq: number): void {
    if (this.table.advance(bootId, seq, 0)) this.markDirty();
  }

  get stats(): SessionStats {
    return { ...this.counters, lastRttMs: this.lastRtt, badFrames: { ...this.parser.stats.bad } };
  }

  /** Bytes from the transport. */
  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    this.lastRx = this.o.now();
    if (this.dead) {
      this.dead = false;
      this.emit('alive');
    }
    this.parser.push(chunk);
  }

  /** The transport (re)opened: stale partial bytes are dropped, the heartbeat restarts. */
  linkUp(): void {
    this.connected = true;
    this.parser.reset();
    this.lastRx = this.o.now();
    this.dead = false;
    this.ping();
    if (this.state === 'linked') this.sendTime();
  }

  /** The transport closed (it reconnects by itself). */
  linkDown(): void {
    this.connected = false;
  }

  /** Sends TIME now. */
  sendTime(): void {
    this.lastTime = this.o.now();
    this.send({ type: 'TIME', time: this.o.now() }, this.nextCtl());
  }

  /**
   * Pushes settings to the MCU; resolves when it confirms them (CONFIG echo),
   * rejects on its ERROR or after configTimeoutMs. The settings are also sent
   * in every later HELLO_ACK.
   */
  pushConfig(settings: Settings): Promise<void> {
    if (this.closed) return Promise.reject(new LinkError('CLOSED', 'the session is closed'));
    const version = (this.config?.version ?? 0) + 1;
    this.config = { version, settings };
    if (this.state !== 'linked') return Promise.reject(new LinkError('NOT_CONNECTED', 'no firmware connected (no handshake yet); the config will be sent at the next handshake'));
    const seq = this.nextCtl();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.configWaits.delete(seq);
        reject(new LinkError('TIMEOUT', `firmware did not confirm CONFIG version ${version} within ${this.o.configTimeoutMs} ms`));
      }, this.o.configTimeoutMs);
      this.configWaits.set(seq, { version, resolve, reject, timer });
      this.send({ type: 'CONFIG', version, settings }, seq);
    });
  }

  /** Stops timers, waits for the delivery in flight (it may still ack), saves the duplicate table. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.saveTimer) clearTimeout(this.saveTimer);
    for (const w of this.configWaits.values()) {
      clearTimeout(w.timer);
      w.reject(new LinkError('CLOSED', 'the session closed before the firmware confirmed the config'));
    }
    this.configWaits.clear();
    await this.inflightDone;
    await this.saving;
    if (this.dirty) await this.save();
  }

  // ------------------------------------------------------------ internals

  private nextCtl(): number {
    const s = this.ctlSeq;
    this.ctlSeq = this.ctlSeq >= 0xffffffff ? 1 : this.ctlSeq + 1;
    return s;
  }

  private send(msg: Message, seq: number): void {
    if (this.closed && msg.type !== 'ACK') return;
    try {
      this.o.send(encodeMessage(msg, seq));
    } catch (e) {
      this.problem(e instanceof IscmError ? e : new LinkError('FRAME', `cannot send ${msg.type}: ${errorMessage(e)}`));
    }
  }

  private problem(e: IscmError): void {
    this.emit('linkError', e);
  }

  private onBad(b: BadFrame): void {
    this.emit('badFrame', b);
    if (b.kind === 'version' && this.state !== 'linked') {
      this.problem(new LinkError('VERSION', `firmware sends frames of link frame version ${b.version}; this gateway speaks frame version 1 (protocol versions ${this.o.versions.join(', ')})`));
    }
  }

  private heartbeat(): void {
    if (this.closed || !this.connected) return;
    const now = this.o.now();
    const idle = now - this.lastRx;
    if (idle >= this.o.deadAfterMs) {
      if (!this.dead) {
        this.dead = true;
        this.counters.deaths++;
        this.emit('dead', new LinkError('DEAD_LINK', `nothing received from the firmware for ${idle} ms (heartbeat limit ${this.o.deadAfterMs} ms)`));
      }
    }
    if (idle >= this.o.pingIntervalMs && now - this.lastPing >= this.o.pingIntervalMs) this.ping();
    if (this.state === 'linked' && this.o.timeSyncIntervalMs > 0 && now - this.lastTime >= this.o.timeSyncIntervalMs) this.sendTime();
  }

  private ping(): void {
    this.lastPing = this.o.now();
    this.counters.pings++;
    this.send({ type: 'PING', time: this.o.now() }, this.nextCtl());
  }

  private onFrame(f: Frame): void {
    this.counters.frames++;
    let msg: Message;
    try {
      msg = decodeMessage(f);
    } catch (e) {
      if (f.type === FrameType.READING || f.type === FrameType.EVENT) return this.onData(f, undefined, e as Error);
      this.problem(new LinkError('MESSAGE', `${frameTypeName(f.type)} frame seq ${f.seq}: ${errorMessage(e)}`));
      this.send({ type: 'ERROR', code: ErrorCodeLink.MALFORMED, message: `${frameTypeName(f.type)}: ${errorMessage(e)}`, ref: f.seq }, this.nextCtl());
      return;
    }
    switch (msg.type) {
      case 'HELLO':
        return this.onHello(msg);
      case 'READING':
      case 'EVENT':
        return this.onData(f, msg);
      case 'PING':
        this.send({ type: 'PONG', ...(msg.time !== undefined ? { time: msg.time } : {}) }, f.seq);
        return;
      case 'PONG':
        this.counters.pongs++;
        if (msg.time !== undefined) this.lastRtt = Math.max(0, this.o.now() - msg.time);
        return;
      case 'TIME':
        if (msg.time === undefined) this.sendTime();
        return;
      case 'CONFIG': {
        // The MCU confirms a config version (no settings in its echo).
        for (const [seq, w] of this.configWaits)
          if (w.version === msg.version) {
            clearTimeout(w.timer);
            this.configWaits.delete(seq);
            w.resolve();
          }
        this.emit('configApplied', msg.version);
        return;
      }
      case 'ERROR': {
        const w = msg.ref !== undefined ? this.configWaits.get(msg.ref) : undefined;
        const err = new LinkError(msg.code === ErrorCodeLink.VERSION ? 'VERSION' : 'REMOTE', `firmware reports error ${msg.code}: ${msg.message}${msg.versions ? ` (firmware speaks versions ${msg.versions.join(', ')}; this gateway speaks ${this.o.versions.join(', ')})` : ''}`);
        if (w && msg.ref !== undefined) {
          clearTimeout(w.timer);
          this.configWaits.delete(msg.ref);
          w.reject(err);
        }
        this.emit('remoteError', msg);
        this.problem(err);
        return;
      }
      default:
        // HELLO_ACK / ACK / NACK travel gateway → MCU only (an RS-485 echo of our own frames lands here).
        this.counters.unexpected++;
        return;
    }
  }

  private onHello(msg: HelloMsg): void {
    const common = msg.versions.filter((v) => this.o.versions.includes(v));
    if (common.length === 0) {
      const text = `firmware "${msg.firmware}" (boot ${msg.bootId}) speaks link protocol version${msg.versions.length > 1 ? 's' : ''} ${msg.versions.join(', ')}; this gateway speaks ${this.o.versions.join(', ')}: update the firmware or the gateway so they share a version`;
      this.send({ type: 'ERROR', code: ErrorCodeLink.VERSION, message: `gateway speaks versions ${this.o.versions.join(', ')}`, versions: [...this.o.versions] }, this.nextCtl());
      this.state = 'waiting';
      this.problem(new LinkError('VERSION', text, 'HELLO.1'));
      return;
    }
    const version = Math.max(...common);
    const now = this.o.now();
    if (this.bootId !== undefined && this.bootId !== msg.bootId) {
      this.counters.reboots++;
      this.emit('reboot', { from: this.bootId, to: msg.bootId });
    }
    this.counters.handshakes++;
    this.bootId = msg.bootId;
    this.version = version;
    this.monoOffset = msg.monoMs !== undefined ? now - msg.monoMs : undefined;
    const pending = msg.pending ?? [];
    if (!pending.some((p) => p.bootId === msg.bootId)) pending.push({ bootId: msg.bootId, firstSeq: 1 });
    const acks: [number, number][] = [];
    for (const p of pending) {
      // The MCU holds nothing of this boot below firstSeq: nothing to wait for there.
      if (this.table.advance(p.bootId, p.firstSeq - 1, now)) this.markDirty();
      const durable = this.table.get(p.bootId) ?? 0;
      this.accepted.set(p.bootId, Math.max(this.accepted.get(p.bootId) ?? 0, durable));
      if (durable >= p.firstSeq) acks.push([p.bootId, durable]);
    }
    this.state = 'linked';
    this.hello = { bootId: msg.bootId, firmware: msg.firmware, version, sensors: msg.sensors, ...(msg.device ? { device: msg.device } : {}) };
    this.send({ type: 'HELLO_ACK', version, time: now, ...(this.config ? { config: this.config } : {}), ...(this.o.gateway ? { gateway: this.o.gateway } : {}) }, this.nextCtl());
    this.lastTime = now;
    for (const [b, s] of acks) this.sendAck(b, s);
    this.emit('hello', this.hello);
  }

  private nack(bootId: number, seq: number, reason: NackReasonCode, message?: string, force = false): void {
    const key = `${bootId}:${reason}`;
    const now = this.o.now();
    if (!force && now - (this.lastNack.get(key) ?? -Infinity) < NACK_MIN_INTERVAL_MS) return;
    this.lastNack.set(key, now);
    this.counters.nacks++;
    this.send({ type: 'NACK', bootId, seq, reason, ...(message ? { message } : {}) }, this.nextCtl());
  }

  private onData(f: Frame, msg: DataMsg | undefined, err?: Error): void {
    if (this.state !== 'linked' || this.bootId === undefined) {
      this.nack(msg?.bootId ?? 0, f.seq, NackReason.HELLO_REQUIRED);
      return;
    }
    // A frame whose payload did not decode may still say which boot it is from.
    const boot = msg ? (msg.bootId ?? this.bootId) : (peekBoot(f.payload) ?? this.bootId);
    const acc = this.accepted.get(boot) ?? this.table.get(boot);
    if (acc === undefined) {
      // A boot the MCU did not list in HELLO and we have no state for: ask for a HELLO.
      this.nack(boot, f.seq, NackReason.HELLO_REQUIRED);
      return;
    }
    const seq = f.seq;
    if (seq <= acc) {
      this.counters.duplicates++;
      const durable = this.table.get(boot) ?? 0;
      if (seq <= durable) this.scheduleAck(boot);
      return;
    }
    if (seq > acc + 1) {
      this.counters.gaps++;
      this.nack(boot, acc + 1, NackReason.GAP);
      return;
    }
    if (this.pending.length >= this.o.maxPending) {
      this.counters.busy++;
      this.nack(boot, seq, NackReason.BUSY, 'gateway queue full');
      return;
    }
    let reading: Reading | null = null;
    if (msg && !err) {
      try {
        reading = this.toReading(msg, boot, seq);
      } catch (e) {
        err = e as Error;
      }
    }
    this.accepted.set(boot, seq);
    if (!reading) {
      this.counters.invalid++;
      const text = `${frameTypeName(f.type)} boot ${boot} seq ${seq} refused: ${errorMessage(err)}`;
      this.problem(err instanceof IscmError ? new LinkError('MESSAGE', text) : new LinkError('MESSAGE', text));
      this.emit('invalid', { bootId: boot, seq, error: err });
      this.nack(boot, seq, NackReason.INVALID, errorMessage(err).slice(0, 120), true);
    } else this.counters.readings++;
    this.pending.push({ boot, seq, reading });
    this.scheduleFlush();
  }

  private toReading(m: DataMsg, boot: number, seq: number): Reading {
    let time: number | null = null;
    let timeSource: Reading['timeSource'] = 'none';
    if (m.time !== undefined) {
      time = m.time;
      timeSource = m.timeSource ?? 'mcu';
    } else if (boot === this.bootId) {
      // No MCU clock: the gateway's, at creation (via the MCU's monotonic ms) or at receipt.
      time = m.monoMs !== undefined && this.monoOffset !== undefined ? Math.max(0, this.monoOffset + m.monoMs) : this.o.now();
      timeSource = 'gateway';
    }
    const r: Record<string, unknown> = { bootId: boot, seq, sensor: m.sensor, kind: m.kind, time, timeSource, values: m.values };
    if (m.monoMs !== undefined) r.monoMs = m.monoMs;
    return checkReading(r);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.inflight) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.inflight || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.inflight = batch;
    const readings: Reading[] = [];
    for (const it of batch) if (it.reading) readings.push(it.reading);
    let p: Promise<void | DeliverResult>;
    try {
      p = readings.length ? Promise.resolve(this.o.deliver(readings)) : Promise.resolve();
    } catch (e) {
      p = Promise.reject(e);
    }
    this.inflightDone = p
      .then(
        (res) => this.delivered(batch, res ? res : undefined),
        (e) => this.refused(batch, e),
      )
      .catch((e) => this.problem(new LinkError('STORE', `internal error after a delivery: ${errorMessage(e)}`)));
  }

  private delivered(batch: Item[], res: DeliverResult | undefined): void {
    const last = new Map<number, number>();
    const now = this.o.now();
    for (const it of batch) last.set(it.boot, it.seq);
    for (const [b, s] of last) {
      let ack = s;
      const refused = res?.refusedFrom?.get(b);
      if (refused !== undefined && refused <= s) {
        // Not taken from `refused` on: roll the boot back there, and drop what
        // queued behind it (the MCU resends all of it in order).
        ack = Math.min(ack, refused - 1);
        this.accepted.set(b, Math.min(this.accepted.get(b) ?? 0, refused - 1));
        this.pending = this.pending.filter((it) => it.boot !== b || it.seq < refused);
        this.counters.busy++;
        this.nack(b, refused, NackReason.BUSY, 'gateway cannot take readings now', true);
      }
      const limit = res?.ackThrough?.get(b);
      if (limit !== undefined) ack = Math.min(ack, limit);
      if (ack > (this.table.get(b) ?? 0)) {
        this.table.advance(b, ack, now);
        this.sendAck(b, ack);
      }
    }
    this.markDirty();
    this.inflight = null;
    this.emit('delivered', batch.length);
    this.flush();
  }

  /**
   * Acknowledges a boot's readings through `seq` later than their delivery
   * (they became durable after being held, see DeliverResult.ackThrough).
   * Never beyond what was taken; never backwards.
   */
  acknowledge(bootId: number, seq: number): void {
    const taken = this.accepted.get(bootId) ?? this.table.get(bootId) ?? 0;
    const ack = Math.min(seq, taken);
    if (ack <= (this.table.get(bootId) ?? 0)) return;
    this.table.advance(bootId, ack, this.o.now());
    this.sendAck(bootId, ack);
    this.markDirty();
  }

  private refused(batch: Item[], e: unknown): void {
    // Nothing of this batch (nor what queued behind it) is durable: roll back
    // to the durable seqs; the MCU keeps everything and resends.
    const boots = new Set<number>([...batch, ...this.pending].map((it) => it.boot));
    this.pending = [];
    this.inflight = null;
    for (const b of boots) {
      const d = this.table.get(b) ?? 0;
      this.accepted.set(b, d);
      this.counters.busy++;
      this.nack(b, d + 1, NackReason.BUSY, 'gateway cannot store readings now', true);
    }
    this.problem(e instanceof IscmError ? e : new LinkError('STORE', `readings not stored (not acknowledged; the firmware keeps them): ${errorMessage(e)}`));
    this.emit('refused', e);
  }

  private sendAck(bootId: number, seq: number): void {
    this.counters.acks++;
    this.send({ type: 'ACK', bootId, seq }, this.nextCtl());
  }

  private scheduleAck(bootId: number): void {
    this.ackDue.add(bootId);
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setTimeout(() => {
      this.ackScheduled = false;
      for (const b of this.ackDue) {
        const d = this.table.get(b);
        if (d !== undefined && d > 0) this.sendAck(b, d);
      }
      this.ackDue.clear();
    }, 20).unref?.();
  }

  private markDirty(): void {
    this.dirty = true;
    if (this.saveTimer || this.closed) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.saving = this.saving.then(() => this.save());
    }, this.o.dedupeFlushMs);
    this.saveTimer.unref?.();
  }

  private async save(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await this.store.save(this.table.snapshot(this.o.aux?.()));
    } catch (e) {
      this.dirty = true;
      this.problem(new LinkError('STORE', `cannot save the link state (duplicates may reappear after a restart): ${errorMessage(e)}`));
    }
  }
}
