// The firmware simulator: the MCU side of the link, behaving like real
// sensor firmware (docs/LINK.md "Firmware contract"):
// - readings go into a ring buffer of unacknowledged data, persisted to a
//   state file (atomic replace) before they count as created;
// - HELLO on boot and until HELLO_ACK, listing every boot with data still in
//   the ring; data frames sent in ring order, at most `window` in flight;
// - cumulative ACKs free the ring; NACK GAP rewinds; NACK INVALID drops one;
//   NACK BUSY backs off; NACK HELLO_REQUIRED re-handshakes; no progress for
//   `retransmitMs` → go back to the oldest unacked frame;
// - reboots (new random boot_id, seq from 1, clock lost) keep the ring;
// - answers PING, applies TIME and CONFIG.
// Transport-agnostic like the gateway session: receive() in, `send` out.
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileIfExistsSync, writeFileAtomic, writeFileAtomicSync } from '../drivers/fs/atomic.js';
import { errorMessage } from '../protocol/errors.js';
import { type Frame } from './frame.js';
import { decodeMessage, encodeMessage, ErrorCodeLink, LINK_VERSIONS, NackReason, type DataMsg, type Message, type Settings } from './messages.js';
import { FrameParser } from './parser.js';
import { SensorBank, simSensor, SIM_SENSOR_KINDS, type SimSensor, type SimSensorName } from './sensors.js';

export interface SimulatorOptions {
  /** Writes bytes; return false when the transport is full or down (call resume() later). */
  send: (bytes: Uint8Array) => boolean;
  sensors?: SimSensorName[];
  /** Readings per second, all sensors together (default 10). */
  rateHz?: number;
  /** Unacknowledged readings kept at most (default 4096); when full, no new readings are created. */
  ringSize?: number;
  /** Data frames in flight at most (default 512). */
  window?: number;
  retransmitMs?: number;
  statePath?: string;
  /** Coalescing delay of state writes (default 50 ms). */
  persistMs?: number;
  /** Reboot every S seconds (±20 %). */
  rebootEverySec?: number;
  /** One JSON object per event: created, acked, rejected, reboot, overflow, error. */
  log?: (o: Record<string, unknown>) => void;
  firmware?: string;
  versions?: number[];
  /** Stop creating after this many readings (this process). */
  maxReadings?: number;
  helloIntervalMs?: number;
  random?: () => number;
  tickMs?: number;
}

interface Entry {
  boot: number;
  seq: number;
  msg: DataMsg;
}

/** The ring of unacknowledged entries: a deque (acks remove from the head in O(acked)). */
class Ring {
  private a: Entry[] = [];
  private h = 0;
  get length(): number {
    return this.a.length - this.h;
  }
  at(i: number): Entry {
    return this.a[this.h + i];
  }
  push(e: Entry): void {
    this.a.push(e);
  }
  toArray(): Entry[] {
    return this.a.slice(this.h);
  }
  reset(entries: Entry[]): void {
    this.a = entries;
    this.h = 0;
  }
  some(fn: (e: Entry) => boolean): boolean {
    for (let i = this.h; i < this.a.length; i++) if (fn(this.a[i])) return true;
    return false;
  }
  /** First seq of every boot present, in ring order. */
  boots(): { bootId: number; firstSeq: number }[] {
    const out: { bootId: number; firstSeq: number }[] = [];
    for (let i = this.h; i < this.a.length; i++) if (!out.some((p) => p.bootId === this.a[i].boot)) out.push({ bootId: this.a[i].boot, firstSeq: this.a[i].seq });
    return out;
  }
  indexOf(boot: number, seq: number): number {
    for (let i = this.h; i < this.a.length; i++) if (this.a[i].boot === boot && this.a[i].seq === seq) return i - this.h;
    return -1;
  }
  removeAt(i: number): Entry {
    const [e] = this.a.splice(this.h + i, 1);
    return e;
  }
  /** Removes the entries of `boot` with seq ≤ `seq` (one contiguous run); returns them and their start index. */
  removeAcked(boot: number, seq: number): { removed: Entry[]; start: number } {
    let i = this.h;
    while (i < this.a.length && this.a[i].boot !== boot) i++;
    let j = i;
    while (j < this.a.length && this.a[j].boot === boot && this.a[j].seq <= seq) j++;
    if (j === i) return { removed: [], start: 0 };
    const start = i - this.h;
    let removed: Entry[];
    if (i === this.h) {
      removed = this.a.slice(i, j);
      this.h = j;
      if (this.h > 1024 && this.h * 2 > this.a.length) this.reset(this.a.slice(this.h));
    } else removed = this.a.splice(i, j - i);
    return { removed, start };
  }
}

interface StateFile {
  v: 1;
  boots: number[];
  ring: [number, number, DataMsg][];
  config?: { version: number; settings: Settings };
}

export class FirmwareSimulator extends EventEmitter {
  bootId = 0;
  handshake = false;
  readonly counters = { created: 0, acked: 0, rejected: 0, retransmits: 0, reboots: 0, framesSent: 0, framesIn: 0, nacks: 0, overflow: 0, badIn: 0 };
  private readonly o: SimulatorOptions;
  private readonly sensors: SimSensor[];
  private readonly bank: SensorBank;
  private readonly parser: FrameParser;
  private readonly random: () => number;
  private ring = new Ring();
  private staged: Entry[] = [];
  private cursor = 0;
  private nextSeq = 1;
  private ctlSeq = 1;
  private bootsUsed: number[] = [];
  private monoStart = 0;
  private clockOffset: number | undefined;
  private rate: number;
  private createdThisRun = 0;
  private rateStart = 0;
  private createdAtRateStart = 0;
  private lastProgress = 0;
  private lastHello = -Infinity;
  private helloInterval: number;
  private blocked = false;
  private pausedUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private nextReboot = Infinity;
  private sensorIdx = 0;
  private dirty = false;
  private persisting = false;
  private persistTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private config: { version: number; settings: Settings } | undefined;
  private overflowing = false;
  private allAckedReported = false;

  constructor(opts: SimulatorOptions) {
    super();
    this.o = opts;
    this.random = opts.random ?? Math.random;
    this.sensors = (opts.sensors ?? [...SIM_SENSOR_KINDS]).map(simSensor);
    this.bank = new SensorBank(this.random);
    this.rate = opts.rateHz ?? 10;
    this.helloInterval = opts.helloIntervalMs ?? 1000;
    this.parser = new FrameParser({ onFrame: (f) => this.onFrame(f), onBad: () => this.counters.badIn++ });
  }

  get ringLength(): number {
    return this.ring.length;
  }
  /** All created readings acknowledged and nothing staged. */
  get idle(): boolean {
    return this.ring.length === 0 && this.staged.length === 0;
  }

  /** Loads the state file (the ring survives restarts), boots, starts the clock. */
  start(): void {
    if (this.o.statePath) {
      const bytes = readFileIfExistsSync(this.o.statePath);
      if (bytes) {
        const s = JSON.parse(new TextDecoder().decode(bytes)) as StateFile;
        if (s.v !== 1 || !Array.isArray(s.ring)) throw new Error(`${this.o.statePath}: not a simulator state file`);
        this.ring.reset(s.ring.map(([boot, seq, msg]) => ({ boot, seq, msg })));
        this.bootsUsed = s.boots ?? [];
        if (s.config) this.config = s.config;
      }
    }
    this.boot();
    const tick = this.o.tickMs ?? 10;
    this.timer = setInterval(() => this.tick(), tick);
  }

  /** Simulated reboot: new boot_id, seq from 1, wall clock lost; the ring stays. */
  reboot(): void {
    this.counters.reboots++;
    const from = this.bootId;
    this.boot();
    this.o.log?.({ event: 'reboot', from, boot_id: this.bootId });
    this.emit('reboot', { from, to: this.bootId });
  }

  /** Stops creating readings (what is in the ring is still sent until acknowledged). */
  stopCreating(): void {
    this.rate = 0;
  }

  /** The transport can take bytes again (drained or reopened). */
  resume(): void {
    this.blocked = false;
    this.pump();
  }

  /** The transport reopened: whatever was in flight is lost; start over from the oldest. */
  reconnected(): void {
    this.parser.reset();
    this.cursor = 0;
    this.resume();
  }

  receive(chunk: Uint8Array): void {
    if (!this.stopped) this.parser.push(chunk);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.persistTimer) clearTimeout(this.persistTimer);
    while (this.persisting) await new Promise((r) => setTimeout(r, 5));
    this.persistNowSync();
  }

  // ------------------------------------------------------------ internals

  private boot(): void {
    let id: number;
    do id = randomInt(1, 0xffffffff);
    while (id === this.bootId || this.bootsUsed.includes(id) || this.ring.some((e) => e.boot === id));
    this.bootId = id;
    this.bootsUsed = [...this.bootsUsed.slice(-15), id];
    this.nextSeq = 1;
    this.handshake = false;
    this.clockOffset = undefined;
    this.monoStart = performance.now();
    this.cursor = 0;
    this.lastHello = -Infinity;
    this.helloInterval = this.o.helloIntervalMs ?? 1000;
    this.allAckedReported = false;
    const every = this.o.rebootEverySec;
    this.nextReboot = every ? Date.now() + every * 1000 * (0.8 + 0.4 * this.random()) : Infinity;
    this.markDirty();
    this.sendHello();
  }

  private mono(): number {
    return Math.floor(performance.now() - this.monoStart);
  }

  private nextCtl(): number {
    const s = this.ctlSeq;
    this.ctlSeq = this.ctlSeq >= 0xffffffff ? 1 : this.ctlSeq + 1;
    return s;
  }

  private out(msg: Message, seq: number): boolean {
    this.counters.framesSent++;
    return this.o.send(encodeMessage(msg, seq));
  }

  private sendHello(): void {
    this.lastHello = Date.now();
    const pending = this.ring.boots();
    this.out(
      {
        type: 'HELLO',
        versions: this.o.versions ?? [...LINK_VERSIONS],
        bootId: this.bootId,
        firmware: this.o.firmware ?? 'iscm-sim/1.0',
        sensors: this.sensors.map((s) => ({ id: s.id, kind: s.kind })),
        monoMs: this.mono(),
        pending: pending.slice(-16),
        ...(this.clockOffset !== undefined ? { time: Date.now() + this.clockOffset } : {}),
      },
      this.nextCtl(),
    );
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    if (now >= this.nextReboot) this.reboot();
    this.create(now);
    if (!this.handshake) {
      if (now - this.lastHello >= this.helloInterval) this.sendHello();
      return;
    }
    if (this.ring.length > 0 && this.cursor > 0 && now - this.lastProgress >= (this.o.retransmitMs ?? 1000)) {
      this.counters.retransmits++;
      this.cursor = 0;
      this.lastProgress = now;
      this.blocked = false;
    }
    this.pump();
  }

  private create(now: number): void {
    if (this.rate <= 0) return;
    if (this.rateStart === 0) {
      this.rateStart = now;
      this.createdAtRateStart = this.createdThisRun;
    }
    let due = Math.floor(((now - this.rateStart) * this.rate) / 1000) - (this.createdThisRun - this.createdAtRateStart);
    const max = this.o.maxReadings;
    if (max !== undefined) due = Math.min(due, max - this.createdThisRun);
    if (due <= 0) return;
    const room = (this.o.ringSize ?? 4096) - this.ring.length - this.staged.length;
    if (due > room) {
      this.counters.overflow += due - Math.max(0, room);
      if (!this.overflowing) this.o.log?.({ event: 'overflow', boot_id: this.bootId, ring: this.ring.length });
      this.overflowing = true;
      // Time moves on: skip the readings that did not fit (never created, never logged).
      this.createdAtRateStart -= due - Math.max(0, room);
      due = Math.max(0, room);
    } else this.overflowing = false;
    const wall = this.clockOffset !== undefined ? now + this.clockOffset : undefined;
    for (let i = 0; i < due; i++) {
      const s = this.sensors[this.sensorIdx++ % this.sensors.length];
      const v = this.bank.values(s, wall ?? this.mono());
      const msg: DataMsg = { type: s.frame, sensor: s.id, kind: s.kind, values: v.values, monoMs: this.mono() };
      if (v.time !== undefined) {
        msg.time = v.time;
        msg.timeSource = v.timeSource;
      } else if (wall !== undefined) msg.time = wall;
      const e: Entry = { boot: this.bootId, seq: this.nextSeq++, msg };
      this.createdThisRun++;
      if (this.o.statePath) this.staged.push(e);
      else this.admit([e]);
    }
    if (this.staged.length) this.markDirty();
  }

  /** Entries become sendable (and "created") once persisted. */
  private admit(entries: Entry[]): void {
    for (const e of entries) {
      this.ring.push(e);
      this.counters.created++;
      this.o.log?.({ event: 'created', boot_id: e.boot, seq: e.seq, sensor: e.msg.sensor, kind: e.msg.kind, ...(e.msg.time !== undefined ? { time: e.msg.time } : {}) });
    }
    this.pump();
  }

  private pump(): void {
    if (!this.handshake || this.blocked || this.stopped) return;
    if (Date.now() < this.pausedUntil) return;
    const window = this.o.window ?? 512;
    while (this.cursor < this.ring.length && this.cursor < window) {
      const e = this.ring.at(this.cursor);
      if (this.cursor === 0) this.lastProgress = Date.now();
      this.cursor++;
      const msg: DataMsg = e.boot === this.bootId ? e.msg : { ...e.msg, bootId: e.boot };
      if (!this.out(msg, e.seq)) {
        this.blocked = true;
        return;
      }
    }
    this.checkAllAcked();
  }

  private checkAllAcked(): void {
    const max = this.o.maxReadings;
    if (max !== undefined && this.createdThisRun >= max && this.idle && !this.allAckedReported) {
      this.allAckedReported = true;
      this.emit('allAcked');
    }
  }

  private onFrame(f: Frame): void {
    this.counters.framesIn++;
    let m: Message;
    try {
      m = decodeMessage(f);
    } catch (e) {
      this.out({ type: 'ERROR', code: ErrorCodeLink.MALFORMED, message: errorMessage(e).slice(0, 120), ref: f.seq }, this.nextCtl());
      return;
    }
    switch (m.type) {
      case 'HELLO_ACK':
        this.handshake = true;
        this.clockOffset = m.time - Date.now();
        if (m.config) this.applyConfig(m.config.version, m.config.settings, f.seq);
        this.cursor = 0;
        this.lastProgress = Date.now();
        this.blocked = false;
        this.emit('linked', m.version);
        this.pump();
        return;
      case 'ACK':
        return this.onAck(m.bootId, m.seq);
      case 'NACK': {
        this.counters.nacks++;
        if (m.reason === NackReason.HELLO_REQUIRED) {
          this.handshake = false;
          if (Date.now() - this.lastHello >= 200) this.sendHello();
          return;
        }
        const i = this.ring.indexOf(m.bootId, m.seq);
        if (m.reason === NackReason.INVALID) {
          if (i >= 0) {
            const e = this.ring.removeAt(i);
            if (i < this.cursor) this.cursor--;
            this.counters.rejected++;
            this.o.log?.({ event: 'rejected', boot_id: e.boot, seq: e.seq, reason: m.message ?? '' });
            this.markDirty();
          }
          return;
        }
        if (m.reason === NackReason.BUSY) {
          this.pausedUntil = Date.now() + 500;
          this.cursor = 0;
          setTimeout(() => this.pump(), 510).unref?.();
          return;
        }
        // GAP: resend from the frame the gateway expects.
        if (i >= 0 && i < this.cursor) {
          this.cursor = i;
          this.blocked = false;
          this.pump();
        }
        return;
      }
      case 'TIME':
        if (m.time !== undefined) this.clockOffset = m.time - Date.now();
        return;
      case 'CONFIG':
        if (m.settings) this.applyConfig(m.version, m.settings, f.seq);
        return;
      case 'PING':
        this.out({ type: 'PONG', ...(m.time !== undefined ? { time: m.time } : {}) }, f.seq);
        return;
      case 'ERROR':
        this.o.log?.({ event: 'error', code: m.code, message: m.message, ...(m.versions ? { gateway_versions: m.versions } : {}) });
        this.emit('remoteError', m);
        if (m.code === ErrorCodeLink.VERSION) this.helloInterval = 5000;
        return;
      default:
        return;
    }
  }

  private onAck(boot: number, seq: number): void {
    const { removed, start } = this.ring.removeAcked(boot, seq);
    if (removed.length === 0) return;
    // Entries [start, start+n) left: the cursor moves back by those that were before it.
    this.cursor = Math.max(0, this.cursor - Math.max(0, Math.min(this.cursor - start, removed.length)));
    this.lastProgress = Date.now();
    this.counters.acked += removed.length;
    if (this.o.log) for (const e of removed) this.o.log({ event: 'acked', boot_id: e.boot, seq: e.seq });
    this.markDirty();
    this.blocked = false;
    this.pump();
  }

  private applyConfig(version: number, settings: Settings, ref: number): void {
    const known = ['rate_hz', 'window', 'retransmit_ms'];
    const bad = Object.keys(settings).find((k) => !known.includes(k));
    const rate = settings.rate_hz;
    if (bad || (rate !== undefined && (typeof rate !== 'number' || rate < 0 || rate > 1e6))) {
      this.out({ type: 'ERROR', code: ErrorCodeLink.CONFIG, message: bad ? `unknown setting ${bad} (known: ${known.join(', ')})` : 'rate_hz must be a number 0..1000000', ref }, this.nextCtl());
      return;
    }
    if (typeof rate === 'number') {
      this.rate = rate;
      this.rateStart = 0;
    }
    if (typeof settings.window === 'number') this.o.window = settings.window;
    if (typeof settings.retransmit_ms === 'number') this.o.retransmitMs = settings.retransmit_ms;
    this.config = { version, settings };
    this.o.log?.({ event: 'config', version, settings });
    this.out({ type: 'CONFIG', version }, this.nextCtl());
  }

  // ------------------------------------------------------------ persistence

  private state(): StateFile {
    return { v: 1, boots: this.bootsUsed, ring: [...this.ring.toArray(), ...this.staged].map((e) => [e.boot, e.seq, e.msg]), ...(this.config ? { config: this.config } : {}) };
  }

  private markDirty(): void {
    if (!this.o.statePath) {
      return;
    }
    this.dirty = true;
    if (this.persistTimer || this.persisting || this.stopped) return;
    this.persistTimer = setTimeout(() => void this.persist(), this.o.persistMs ?? 50);
  }

  private async persist(): Promise<void> {
    this.persistTimer = undefined;
    if (!this.o.statePath || this.persisting) return;
    this.persisting = true;
    this.dirty = false;
    const staged = this.staged;
    this.staged = [];
    try {
      const s = this.state();
      // staged entries are in s.ring (as the tail) already; write, then admit.
      s.ring.push(...staged.map((e) => [e.boot, e.seq, e.msg] as [number, number, DataMsg]));
      await writeFileAtomic(this.o.statePath, JSON.stringify(s));
      this.admit(staged);
    } catch (e) {
      this.staged = [...staged, ...this.staged];
      this.o.log?.({ event: 'error', message: `cannot write the state file: ${errorMessage(e)}` });
    } finally {
      this.persisting = false;
      if (this.dirty && !this.stopped) this.markDirty();
    }
  }

  private persistNowSync(): void {
    if (!this.o.statePath) return;
    try {
      const staged = this.staged;
      this.staged = [];
      writeFileAtomicSync(this.o.statePath, JSON.stringify({ ...this.state(), ring: [...this.ring.toArray(), ...staged].map((e) => [e.boot, e.seq, e.msg]) }));
      // Persisted: they are created now (they will be sent after the next start).
      for (const e of staged) {
        this.ring.push(e);
        this.counters.created++;
        this.o.log?.({ event: 'created', boot_id: e.boot, seq: e.seq, sensor: e.msg.sensor, kind: e.msg.kind });
      }
    } catch (e) {
      this.o.log?.({ event: 'error', message: `cannot write the state file: ${errorMessage(e)}` });
    }
  }
}

