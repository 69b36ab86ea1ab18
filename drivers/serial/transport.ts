// Serial transport over `serialport`'s native binding, built for ports that
// come and go: USB adapters unplugged and re-enumerated, "Cannot lock port",
// pty pairs whose other end dies. It reconnects forever with capped
// exponential backoff and jitter, reports every problem as a typed
// SerialError on the 'fault' event, and never throws from I/O, never emits
// 'error' (an unhandled 'error' would kill the process), never exits.
//
// We drive the binding directly (read loop + one write at a time) instead of
// the SerialPort stream: its 'close' event may not fire on unplug, and EIO
// from a vanished pty is not treated as a disconnect there. Here any read or
// write error closes the port and schedules a reconnect, and the layer above
// (the link session's PING/PONG heartbeat) calls reopen() when the port stays
// open but silent.
//
// Events: 'open' ({path, realPath}), 'data' (Buffer), 'close' ({reason}),
// 'fault' (SerialError), 'reconnect' ({attempt, delayMs}), 'drain',
// 'listenerError' (an exception thrown by a 'data' listener, caught).
import { EventEmitter } from 'node:events';
import { access, constants, realpath, stat } from 'node:fs/promises';
// serialport (a native addon) is loaded on the first open, not at import:
// commands that never open a port (--version, verify, keys) start without it.
let serialportLib: Promise<typeof import('serialport')> | undefined;
const loadSerialport = () => (serialportLib ??= import('serialport'));
import { SerialError } from './errors.js';
import { Backoff } from '../backoff.js';
import { describeHolders, findHolders } from './holder.js';
import { applyRs485, type Rs485Options } from './rs485.js';

export type Parity = 'none' | 'even' | 'odd';

export interface SerialTransportOptions {
  /** /dev/ttyUSB0, /dev/serial/by-id/usb-…, a pty link … (re-resolved at every reconnect). */
  path: string;
  baudRate?: number;
  dataBits?: 5 | 6 | 7 | 8;
  parity?: Parity;
  stopBits?: 1 | 1.5 | 2;
  /** Hardware flow control (not with RS-485). */
  rtscts?: boolean;
  /** Exclusive lock (flock) so two programs cannot share the port (default true). */
  lock?: boolean;
  rs485?: Rs485Options;
  reconnect?: { initialMs?: number; maxMs?: number; factor?: number; jitter?: number };
  /** write() returns false beyond this many queued bytes (default 64 KiB). */
  highWaterBytes?: number;
  random?: () => number;
}

export type TransportState = 'idle' | 'opening' | 'open' | 'backoff' | 'stopped';

interface PortBinding {
  read(buf: Buffer, offset: number, length: number): Promise<{ bytesRead: number; buffer: Buffer }>;
  write(buf: Buffer): Promise<void>;
  close(): Promise<void>;
  isOpen: boolean;
}

const BAUDS = new Set([50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000]);

/** Validates options; throws SerialError('CONFIG') (a usage problem, not an I/O one). */
export function checkSerialOptions(o: SerialTransportOptions): void {
  const bad = (m: string) => {
    throw new SerialError('CONFIG', o.path ?? '', m);
  };
  if (typeof o.path !== 'string' || o.path.length === 0) bad('a port path is required (e.g. /dev/ttyUSB0 or /dev/serial/by-id/…)');
  const b = o.baudRate ?? 115200;
  if (!Number.isInteger(b) || b < 50 || b > 4_000_000) bad(`baud rate ${b} is out of range 50..4000000`);
  if (!BAUDS.has(b)) {
    /* custom rates are allowed: the driver may refuse them at open */
  }
  if (o.dataBits !== undefined && ![5, 6, 7, 8].includes(o.dataBits)) bad(`data bits must be 5, 6, 7 or 8`);
  if (o.parity !== undefined && !['none', 'even', 'odd'].includes(o.parity)) bad(`parity must be none, even or odd (mark/space are not supported by the Linux serial binding)`);
  if (o.stopBits !== undefined && ![1, 1.5, 2].includes(o.stopBits)) bad(`stop bits must be 1, 1.5 or 2`);
  if (o.rs485 && !['kernel', 'auto', 'off'].includes(o.rs485.mode)) bad('rs485 mode must be kernel, auto or off');
  if (o.rs485?.mode === 'kernel' && o.rtscts) bad('RS-485 mode drives RTS itself: hardware flow control (rtscts) cannot be on too');
}

/** Turns whatever the binding threw into a SerialError with the probable cause. */
export function classifyOpenError(path: string, e: unknown): SerialError {
  const msg = (e as Error)?.message ?? String(e);
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || /No such file or directory/i.test(msg))
    return new SerialError('NOT_FOUND', path, `${path}: no such device (unplugged? for USB adapters prefer the stable /dev/serial/by-id/… name)`, { errno: 'ENOENT', cause: e });
  if (code === 'EACCES' || code === 'EPERM' || /Permission denied|Operation not permitted/i.test(msg))
    return new SerialError('ACCESS_DENIED', path, `${path}: permission denied (add the service user to the group owning the device, usually "dialout", then log in again)`, { errno: code ?? 'EACCES', cause: e });
  if (code === 'EBUSY' || /Cannot lock port|Resource temporarily unavailable|Device or resource busy/i.test(msg)) {
    const holders = findHolders(path);
    const who = holders.length ? `held by ${describeHolders(holders)}` : 'held by another process (could not tell which)';
    return new SerialError('BUSY', path, `${path}: port ${who}; stop it (e.g. ModemManager, another iscm-edge, a terminal program) or point this one at another port`, { errno: 'EBUSY', holders, cause: e });
  }
  if (code === 'ENOTTY' || /Inappropriate ioctl/i.test(msg)) return new SerialError('NOT_A_TTY', path, `${path}: not a serial port`, { errno: 'ENOTTY', cause: e });
  if (/baud|Invalid argument/i.test(msg)) return new SerialError('CONFIG', path, `${path}: the driver refused the settings: ${msg}`, { cause: e });
  return new SerialError('IO', path, `${path}: ${msg}`, { errno: code, cause: e });
}

export class SerialTransport extends EventEmitter {
  state: TransportState = 'idle';
  /** The device the path resolved to at the last open. */
  realPath: string | undefined;
  /** Reconnect schedule (drivers/backoff.ts); created at the first failure from `reconnect` options. */
  private retry: Backoff | undefined;
  get attempts(): number {
    return this.retry?.attempts ?? 0;
  }
  readonly counters = { opens: 0, closes: 0, faults: 0, bytesIn: 0, bytesOut: 0, dropped: 0 };
  private readonly o: SerialTransportOptions;
  private port: PortBinding | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Buffer[] = [];
  private queued = 0;
  private writing = false;
  private needDrain = false;
  private openedAt = 0;
  private generation = 0;
  private readLoop: Promise<void> = Promise.resolve();
  private lastFaultKey = '';

  constructor(opts: SerialTransportOptions) {
    super();
    checkSerialOptions(opts);
    this.o = opts;
  }

  get path(): string {
    return this.o.path;
  }
  get isOpen(): boolean {
    return this.state === 'open';
  }
  /** Bytes accepted by write() and not yet handed to the OS. */
  get pendingBytes(): number {
    return this.queued;
  }

  /** Starts connecting (and reconnecting, until stop()). */
  start(): void {
    if (this.state !== 'idle') return;
    void this.connect();
  }

  /**
   * Queues bytes for the port. Returns false when the port is closed (the
   * bytes are dropped: the link protocol resends) or the queue is above the
   * high-water mark ('drain' follows).
   */
  write(bytes: Uint8Array): boolean {
    if (this.state !== 'open') {
      this.counters.dropped += bytes.length;
      return false;
    }
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.queue.push(Buffer.from(b));
    this.queued += b.length;
    if (!this.writing) void this.pump(this.generation);
    const ok = this.queued < (this.o.highWaterBytes ?? 65536);
    if (!ok) this.needDrain = true;
    return ok;
  }

  /** Closes and reopens the port (a dead link seen from above). */
  reopen(reason: string): void {
    if (this.state === 'open') void this.lost(new SerialError('DEAD', this.o.path, `${this.o.path}: ${reason}; reopening the port`));
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const was = this.state;
    this.state = 'stopped';
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.port;
    this.port = undefined;
    if (p?.isOpen) await p.close().catch(() => {});
    await this.readLoop.catch(() => {});
    this.dropQueue();
    if (was === 'open') this.emit('close', { reason: 'stopped' });
  }

  // ------------------------------------------------------------ internals

  private isStopped(): boolean {
    return this.state === 'stopped';
  }

  private fault(e: SerialError): void {
    this.counters.faults++;
    // Repeated identical faults while backing off are reported once per streak.
    const key = `${e.kind}:${e.message}`;
    const repeat = key === this.lastFaultKey;
    this.lastFaultKey = key;
    this.emit('fault', e, repeat);
  }

  private async connect(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'opening';
    const gen = ++this.generation;
    const path = this.o.path;
    try {
      // Pre-checks give errno codes the binding's messages lack.
      let real: string;
      try {
        real = await realpath(path);
      } catch (e) {
        throw classifyOpenError(path, e);
      }
      const st = await stat(real).catch((e) => {
        throw classifyOpenError(path, e);
      });
      if (!st.isCharacterDevice()) throw new SerialError('NOT_A_TTY', path, `${path}: not a serial port (${real} is not a character device)`);
      await access(real, constants.R_OK | constants.W_OK).catch((e) => {
        throw classifyOpenError(path, e);
      });
      if (this.o.rs485) await applyRs485(real, this.o.rs485);
      let port: PortBinding;
      try {
        const { SerialPort } = await loadSerialport();
        port = (await SerialPort.binding.open({
          path: real,
          baudRate: this.o.baudRate ?? 115200,
          dataBits: this.o.dataBits ?? 8,
          parity: this.o.parity ?? 'none',
          stopBits: this.o.stopBits ?? 1,
          rtscts: this.o.rtscts ?? false,
          lock: this.o.lock ?? true,
          hupcl: false,
        })) as unknown as PortBinding;
      } catch (e) {
        throw classifyOpenError(path, e);
      }
      if (this.isStopped() || gen !== this.generation) {
        await port.close().catch(() => {});
        return;
      }
      this.port = port;
      this.realPath = real;
      this.state = 'open';
      this.openedAt = Date.now();
      this.counters.opens++;
      this.lastFaultKey = '';
      this.emit('open', { path, realPath: real });
      this.readLoop = this.read(port, gen);
    } catch (e) {
      if (this.isStopped() || gen !== this.generation) return;
      this.fault(e instanceof SerialError ? e : classifyOpenError(path, e));
      this.backoff();
    }
  }

  private backoff(): void {
    if (this.state === 'stopped') return;
    const r = this.o.reconnect ?? {};
    this.retry ??= new Backoff({ initialMs: r.initialMs ?? 200, maxMs: r.maxMs ?? 10_000, factor: r.factor, jitter: r.jitter, random: this.o.random });
    const delayMs = this.retry.next();
    this.state = 'backoff';
    this.emit('reconnect', { attempt: this.attempts, delayMs });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, delayMs);
  }

  private async read(port: PortBinding, gen: number): Promise<void> {
    const buf = Buffer.allocUnsafe(65536);
    while (gen === this.generation && port.isOpen) {
      let n: number;
      try {
        ({ bytesRead: n } = await port.read(buf, 0, buf.length));
      } catch (e) {
        if (gen !== this.generation || this.state === 'stopped') return;
        const code = (e as NodeJS.ErrnoException).code;
        void this.lost(new SerialError('IO', this.o.path, `${this.o.path}: read failed (${code ?? (e as Error).message}); the device went away or the line broke`, { errno: code, cause: e }));
        return;
      }
      if (gen !== this.generation) return;
      if (n > 0) {
        this.counters.bytesIn += n;
        try {
          this.emit('data', Buffer.from(buf.subarray(0, n)));
        } catch (e) {
          // A bug in a 'data' listener must not stop the port (nor crash the process).
          this.emit('listenerError', e);
        }
      }
    }
  }

  private async pump(gen: number): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length && gen === this.generation && this.port) {
        const chunk = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue.splice(0, Math.min(this.queue.length, 64)));
        if (this.queue[0] === chunk) this.queue.shift();
        try {
          await this.port.write(chunk);
        } catch (e) {
          if (gen === this.generation && this.state === 'open') {
            const code = (e as NodeJS.ErrnoException).code;
            void this.lost(new SerialError('IO', this.o.path, `${this.o.path}: write failed (${code ?? (e as Error).message})`, { errno: code, cause: e }));
          }
          return;
        }
        this.queued -= chunk.length;
        this.counters.bytesOut += chunk.length;
        if (this.needDrain && this.queued < (this.o.highWaterBytes ?? 65536) / 2) {
          this.needDrain = false;
          this.emit('drain');
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private dropQueue(): void {
    this.counters.dropped += this.queued;
    this.queue = [];
    this.queued = 0;
    this.needDrain = false;
  }

  private async lost(err: SerialError): Promise<void> {
    if (this.state !== 'open') return;
    this.generation++;
    const p = this.port;
    this.port = undefined;
    this.state = 'backoff';
    this.counters.closes++;
    this.dropQueue();
    if (Date.now() - this.openedAt >= 5000) this.retry?.reset();
    this.fault(err);
    this.emit('close', { reason: err.message });
    if (p?.isOpen) await p.close().catch(() => {});
    if (this.isStopped()) return;
    this.backoff();
  }
}
