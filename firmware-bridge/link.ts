// The light node's entry point to the MCU link: a serial transport (with
// reconnect) under a gateway session (handshake, dedupe, ACK after
// durability, heartbeat). The consumer supplies `deliver`, which must make
// the readings durable before its promise resolves; only then are they
// acknowledged to the firmware (ARCHITECTURE §2 invariant 1).
//
//   const link = new GatewayLink({ serial: { path: '/dev/serial/by-id/…', baudRate: 115200 },
//                                  statePath: '/var/lib/iscm/link-state.json',
//                                  deliver: async (readings) => { await journal.appendReadings(readings); } });
//   await link.start();            // loads the dedupe table, opens the port, reconnects forever
//   link.session.seed(boot, seq);  // optional: from the journal's own durable tail
//   …
//   await link.stop();
import { EventEmitter } from 'node:events';
import type { Reading } from '../protocol/reading.js';
import { SerialTransport, type SerialTransportOptions } from '../drivers/serial/transport.js';
import type { SerialError } from '../drivers/serial/errors.js';
import { FileDedupeStore, type DedupeStore } from './dedupe.js';
import type { LinkError } from './errors.js';
import { GatewaySession, type DeliverResult, type GatewaySessionOptions, type HelloInfo } from './session.js';
import type { BadFrame } from './parser.js';
import type { IscmError } from '../protocol/errors.js';

/** What carries the link's bytes: a SerialTransport, or an in-process pipe (devnet, benchmarks). */
export interface LinkTransport extends EventEmitter {
  start(): void;
  stop(): Promise<void>;
  write(bytes: Uint8Array): boolean;
  reopen(reason: string): void;
}

export interface GatewayLinkOptions {
  /** The serial port (or give `transport`). */
  serial?: SerialTransportOptions;
  transport?: LinkTransport;
  deliver: (readings: Reading[]) => Promise<void | DeliverResult>;
  /** Where the dedupe table is persisted (atomic replace); in memory when absent. */
  statePath?: string;
  dedupe?: DedupeStore;
  /** Further session options (heartbeat, config, versions …). */
  session?: Omit<GatewaySessionOptions, 'send' | 'deliver' | 'dedupe'>;
}

/** One line per thing an operator may want to know (the CLI prints these). */
export type LinkEvent =
  | { event: 'open'; path: string; real_path: string }
  | { event: 'close'; reason: string }
  | { event: 'fault'; kind: string; message: string; repeat: boolean }
  | { event: 'reconnect'; attempt: number; delay_ms: number }
  | { event: 'hello'; boot_id: number; firmware: string; version: number; sensors: number }
  | { event: 'reboot'; from: number; to: number }
  | { event: 'dead'; message: string }
  | { event: 'alive' }
  | { event: 'link_error'; kind: string; message: string }
  | { event: 'bad_frame'; kind: string; bytes: number };

export class GatewayLink extends EventEmitter {
  readonly transport: LinkTransport;
  readonly session: GatewaySession;

  constructor(opts: GatewayLinkOptions) {
    super();
    if (!opts.transport && !opts.serial) throw new TypeError('GatewayLink: give serial options or a transport');
    this.transport = opts.transport ?? new SerialTransport(opts.serial!);
    const dedupe = opts.dedupe ?? (opts.statePath ? new FileDedupeStore(opts.statePath) : undefined);
    this.session = new GatewaySession({ ...opts.session, ...(dedupe ? { dedupe } : {}), send: (b) => void this.transport.write(b), deliver: opts.deliver });
    const ev = (e: LinkEvent) => this.emit('event', e);
    const t = this.transport;
    const s = this.session;
    t.on('open', (o: { path: string; realPath: string }) => {
      ev({ event: 'open', path: o.path, real_path: o.realPath });
      s.linkUp();
    });
    t.on('close', (o: { reason: string }) => {
      s.linkDown();
      ev({ event: 'close', reason: o.reason });
    });
    t.on('data', (b: Buffer) => s.receive(b));
    t.on('fault', (e: SerialError, repeat: boolean) => ev({ event: 'fault', kind: e.kind, message: e.message, repeat }));
    t.on('reconnect', (r: { attempt: number; delayMs: number }) => ev({ event: 'reconnect', attempt: r.attempt, delay_ms: r.delayMs }));
    s.on('hello', (h: HelloInfo) => ev({ event: 'hello', boot_id: h.bootId, firmware: h.firmware, version: h.version, sensors: h.sensors.length }));
    s.on('reboot', (r: { from: number; to: number }) => ev({ event: 'reboot', from: r.from, to: r.to }));
    s.on('dead', (e: LinkError) => {
      ev({ event: 'dead', message: e.message });
      t.reopen(e.message);
    });
    s.on('alive', () => ev({ event: 'alive' }));
    s.on('linkError', (e: IscmError & { kind?: string }) => ev({ event: 'link_error', kind: e.kind ?? e.code, message: e.message }));
    s.on('badFrame', (b: BadFrame) => ev({ event: 'bad_frame', kind: b.kind, bytes: b.bytes }));
  }

  /** Loads the dedupe table (returns the aux state saved with it), then opens the port. */
  async start(): Promise<Record<string, unknown> | undefined> {
    const aux = await this.session.open();
    this.transport.start();
    return aux;
  }

  async stop(): Promise<void> {
    await this.session.close();
    await this.transport.stop();
  }
}
