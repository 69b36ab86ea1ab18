// A GPS receiver on its own serial port (ports.<name>.protocol: nmea): NMEA
// 0183 bytes in (drivers/gps), one `gps` reading per reporting cycle with a
// fix out, into the pipeline like any sensor's. A receiver is not
// acknowledged (it does not resend), so its readings are numbered by the
// node: one random boot id per start, seq from 1. Cycles without a fix make
// no reading (they are counted); broken sentences are counted by kind.
import { randomInt } from 'node:crypto';
import { SerialTransport, type SerialTransportOptions } from '../../drivers/serial/transport.js';
import type { SerialError } from '../../drivers/serial/errors.js';
import { fixToReading, NmeaDriver } from '../../drivers/gps/driver.js';
import type { Reading } from '../../protocol/reading.js';
import type { DeliverResult } from '../../firmware-bridge/session.js';
import type { Logger } from '../ops/log.js';
import type { Registry } from '../ops/metrics.js';

export interface NmeaPortOptions {
  name: string;
  sensor: string;
  serial: SerialTransportOptions;
  submit: (source: string, readings: Reading[]) => Promise<DeliverResult>;
  log: Logger;
  metrics: Registry;
}

export class NmeaPort {
  readonly transport: SerialTransport;
  readonly driver: NmeaDriver;
  readonly source: string;
  private readonly boot = randomInt(1, 0xffffffff);
  private seq = 0;
  lastFixAt = 0;
  private readonly m;

  constructor(private readonly o: NmeaPortOptions) {
    this.source = `nmea:${o.name}`;
    const r = o.metrics;
    this.m = {
      sentences: r.counter('iscm_nmea_sentences_total', 'NMEA lines received, by port and outcome (valid, checksum, malformed)'),
      fixes: r.counter('iscm_nmea_fixes_total', 'GPS reporting cycles, by port and whether they had a fix'),
      errors: r.counter('iscm_link_errors_total', 'Link and port errors, by port and kind'),
    };
    this.driver = new NmeaDriver({
      onFix: (fix) => {
        const v = fixToReading(fix);
        if (!v) {
          this.m.fixes.inc({ port: o.name, fix: 'none' });
          return;
        }
        this.m.fixes.inc({ port: o.name, fix: 'yes' });
        this.lastFixAt = Date.now();
        const reading: Reading = { bootId: this.boot, seq: ++this.seq, sensor: o.sensor, kind: 'gps', time: v.time, timeSource: v.timeSource, values: v.values };
        void o.submit(this.source, [reading]);
      },
      onError: (e) => this.m.sentences.inc({ port: o.name, outcome: e.kind ?? 'malformed' }),
      onSentence: () => this.m.sentences.inc({ port: o.name, outcome: 'valid' }),
    });
    this.transport = new SerialTransport(o.serial);
    this.transport.on('data', (b: Buffer) => this.driver.push(b));
    this.transport.on('fault', (e: SerialError, repeat: boolean) => {
      this.m.errors.inc({ port: o.name, kind: e.kind });
      if (!repeat) o.log.warn('gps port fault; reopening with backoff', { port: o.name, error: e });
    });
    this.transport.on('open', () => o.log.info('gps port open', { port: o.name, path: o.serial.path }));
  }

  start(): void {
    this.transport.start();
  }

  async stop(): Promise<void> {
    await this.transport.stop();
  }

  status(): Record<string, unknown> {
    return { protocol: 'nmea', state: this.transport.state, fixes: this.driver.stats.fixes, no_fix: this.driver.stats.noFix, last_fix_age_s: this.lastFixAt ? Math.round((Date.now() - this.lastFixAt) / 1000) : null, bad_sentences: this.driver.stats.checksum + this.driver.stats.malformed };
  }
}
