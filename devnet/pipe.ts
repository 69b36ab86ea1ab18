// An in-process "serial cable" between a light node's MCU link and a
// firmware simulator (devnet, benchmarks): the gateway side is a
// LinkTransport (what GatewayLink reads and writes), the other end feeds the
// simulator. Bytes cross on the next turn of the event loop, as they would
// from a port, so neither side ever re-enters the other.
import { EventEmitter } from 'node:events';
import type { LinkTransport } from '../firmware-bridge/link.js';
import type { FirmwareSimulator } from '../firmware-bridge/simulator.js';

export class PipeTransport extends EventEmitter implements LinkTransport {
  private sim: FirmwareSimulator | undefined;
  private open = false;
  readonly counters = { bytesIn: 0, bytesOut: 0 };

  constructor(readonly name: string) {
    super();
  }

  /** The simulator at the other end (it sends with `toGateway`). */
  attach(sim: FirmwareSimulator): void {
    this.sim = sim;
  }

  /** The simulator's `send`: bytes towards the gateway. */
  toGateway = (bytes: Uint8Array): boolean => {
    if (!this.open) return false;
    const b = Buffer.from(bytes);
    setImmediate(() => {
      if (!this.open) return;
      this.counters.bytesIn += b.length;
      this.emit('data', b);
    });
    return true;
  };

  start(): void {
    if (this.open) return;
    this.open = true;
    setImmediate(() => {
      this.emit('open', { path: this.name, realPath: this.name });
      this.sim?.reconnected();
    });
  }

  write(bytes: Uint8Array): boolean {
    if (!this.open) return false;
    const b = Buffer.from(bytes);
    this.counters.bytesOut += b.length;
    setImmediate(() => this.sim?.receive(b));
    return true;
  }

  reopen(reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.emit('close', { reason });
    setTimeout(() => this.start(), 100);
  }

  async stop(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    this.emit('close', { reason: 'stopped' });
  }
}
