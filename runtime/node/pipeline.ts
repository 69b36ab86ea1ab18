// The pipeline: readings in (MCU links, NMEA GPS, the local socket), EPCIS
// events out, journaled as records together with the state they leave behind
// (ARCHITECTURE §1: link → events → record → journal → ACK on durability).
//
// Units. Readings are taken in arrival order into *units*: the records the
// readings completed (their own events, rule alarms, closed windows) and the
// pipeline state after them (the event builder's snapshot and, per source and
// MCU boot, how far readings were consumed and acknowledged), appended with
// Journal.appendUnit as one atomic entry group. A reading is acknowledged to
// its source only when the unit that consumed it is durable, so whatever a
// crash leaves behind, every acknowledged reading is either in a record or in
// the state the journal returns at the next start (invariant 1) — including
// readings that sit in an open aggregation window. Readings held for a
// trusted time are the exception: they live in memory only and are *not*
// acknowledged until their event is durable, so the firmware keeps them.
//
// Two units may be in flight at once (the next is built while the previous is
// on its way to the disk). A unit that fails (quota, disk full, I/O) rolls the
// builder back to the last durable state, and everything not durable is
// refused to its source, which resends it: nothing is half-taken.
import type { Reading } from '../../protocol/reading.js';
import { errorMessage, IscmError } from '../../protocol/errors.js';
import { sha256 } from '../../protocol/bytes.js';
import type { DeliverResult } from '../../firmware-bridge/session.js';
import { EventBuilder, HoldFullError, type BuilderOptions, type BuiltEvent } from '../events/builder.js';
import { encodeEventRecord } from '../events/record.js';
import type { EventsConfig } from '../config/types.js';
import type { Journal } from '../journal/index.js';
import type { Logger } from '../ops/log.js';
import type { Registry } from '../ops/metrics.js';
import { decodeNodeState, encodeNodeState, MAX_BOOTS_PER_SOURCE, type SourcePosition } from './unit-state.js';

export interface PipelineOptions {
  deviceId: string;
  journal: Journal;
  config: EventsConfig;
  builder?: BuilderOptions;
  log: Logger;
  metrics: Registry;
  /** Gateway clock for records' `time` (default Date.now). */
  now?: () => number;
  /** Records firstSeq… became durable (the batcher takes them). */
  onRecords?: (firstSeq: number, records: readonly Uint8Array[]) => void;
  /** Readings of (source, boot) became durable after their delivery resolved (held readings released): acknowledge through `seq`. */
  onAck?: (source: string, boot: number, seq: number) => void;
  /** Most record bytes in one unit (a unit must fit one journal group; default 128 KiB). */
  unitBytes?: number;
}

interface Submission {
  source: string;
  readings: Reading[];
  /** Next reading to take. */
  next: number;
  /** Units holding readings of this submission that are not settled yet. */
  units: number;
  /** Per boot: first seq not taken. */
  refused: Map<number, number>;
  t0: number;
  settled: boolean;
  resolve: (r: DeliverResult) => void;
}

interface Unit {
  gen: number;
  /** Per submission: the first seq per boot it took into this unit (to refuse from, should it fail). */
  parts: Map<Submission, Map<number, number>>;
  /** Ack points this unit makes durable: source → boot → seq. */
  acks: Map<string, Map<number, number>>;
  records: number;
  /** The unit's records and the seq of the first (handed to the batcher once durable). */
  recordBytes: Uint8Array[];
  firstSeq: number;
  done: Promise<void>;
}

const MAX_IN_FLIGHT = 2;

export class Pipeline {
  private builder: EventBuilder;
  private readonly o: PipelineOptions;
  private readonly now: () => number;
  private readonly unitBytes: number;
  private positions = new Map<string, Map<number, SourcePosition>>();
  /** source → boot → acknowledged seq as of the last durable unit (positions run ahead of it). */
  private durableAcked = new Map<string, Map<number, number>>();
  /** `${boot}:${seq}` → source, for readings held inside the builder now (not those a restart orphaned). */
  private heldIndex = new Map<string, string>();
  private queue: Submission[] = [];
  private inFlight: Unit[] = [];
  private gen = 0;
  private tickDue = false;
  private scheduled = false;
  private restoring: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  private nextSeq = 1;
  private prev: Uint8Array = new Uint8Array(32);
  private stopped = false;
  private readonly m;

  constructor(o: PipelineOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.unitBytes = o.unitBytes ?? 128 * 1024;
    this.builder = new EventBuilder(o.config, o.builder);
    const r = o.metrics;
    this.m = {
      readings: r.counter('iscm_readings_total', 'Readings received, by source'),
      duplicates: r.counter('iscm_readings_duplicate_total', 'Readings received again that were already taken (resent after a restart)'),
      refused: r.counter('iscm_readings_refused_total', 'Readings not taken (the source keeps and resends them), by reason'),
      invalid: r.counter('iscm_readings_invalid_total', 'Readings that fit no configured sensor (acknowledged, logged, not recorded), by source'),
      events: r.counter('iscm_events_total', 'EPCIS events built, by what made them'),
      records: r.counter('iscm_records_total', 'Records made durable in the journal'),
      units: r.counter('iscm_units_total', 'Journal units (records + pipeline state) made durable'),
      unitFailures: r.counter('iscm_unit_failures_total', 'Journal units refused (quota, disk full, I/O); their readings were refused to their sources'),
      durable: r.histogram('iscm_reading_durable_seconds', 'Reading delivery to durable in the journal', [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5]),
      held: r.gauge('iscm_readings_held', 'Readings held in memory for a trusted time (not acknowledged)'),
      windowed: r.gauge('iscm_readings_windowed', 'Readings in open aggregation windows (durable in the pipeline state)'),
    };
    r.collect(() => {
      const p = this.builder.pending();
      this.m.held.set(p.held);
      this.m.windowed.set(p.windowed);
    });
  }

  /** Restores the builder and the source positions from the journal's last state. Call after journal.open(). */
  async start(): Promise<void> {
    this.restore();
  }

  private restore(): void {
    const bytes = this.o.journal.lastState();
    const head = this.o.journal.head();
    this.nextSeq = head.nextSeq;
    this.prev = head.prev;
    this.heldIndex.clear();
    this.durableAcked = new Map();
    if (!bytes) {
      this.builder = new EventBuilder(this.o.config, this.o.builder);
      this.positions = new Map();
      return;
    }
    const s = decodeNodeState(bytes);
    this.builder = s.builder ? EventBuilder.restore(this.o.config, s.builder, this.o.builder) : new EventBuilder(this.o.config, this.o.builder);
    this.positions = s.positions;
    for (const [source, boots] of s.positions) this.durableAcked.set(source, new Map([...boots].map(([b, p]) => [b, p.acked])));
  }

  /** Where (source, boot) stands: what a link session seeds its duplicate table with after a restart. */
  position(source: string, boot: number): { acked: number; consumed: number } | undefined {
    const p = this.positions.get(source)?.get(boot);
    return p && { acked: p.acked, consumed: p.consumed };
  }

  /** Every boot of a source with its acknowledged seq. */
  ackedBoots(source: string): [number, number][] {
    return [...(this.positions.get(source) ?? [])].map(([b, p]) => [b, p.acked]);
  }

  /**
   * Takes readings of one source, in order. Resolves when every taken reading
   * is durable, with what to acknowledge (DeliverResult: ackThrough below held
   * readings, refusedFrom where readings were not taken). Never rejects.
   */
  submit(source: string, readings: Reading[]): Promise<DeliverResult> {
    if (this.stopped) {
      const refused = new Map<number, number>();
      for (const r of readings) if (!refused.has(r.bootId)) refused.set(r.bootId, r.seq);
      this.m.refused.inc({ source, reason: 'stopping' }, readings.length);
      return Promise.resolve({ refusedFrom: refused });
    }
    this.m.readings.inc({ source }, readings.length);
    return new Promise((resolve) => {
      this.queue.push({ source, readings, next: 0, units: 0, refused: new Map(), t0: performance.now(), settled: false, resolve });
      this.schedule();
    });
  }

  /** Periodic (about once a second): windows whose time is up, held readings the clock can now stamp. */
  tick(): void {
    this.tickDue = true;
    this.schedule();
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight.length === 0 && !this.scheduled && !this.restoring) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Takes no more readings and waits for what is in flight. Open windows stay in the journaled state. */
  async stop(): Promise<void> {
    await this.idle();
    this.stopped = true;
  }

  /** What the builder holds in memory (for /status). */
  pending(): { held: number; windowed: number } {
    const p = this.builder.pending();
    return { held: p.held, windowed: p.windowed };
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /**
   * Builds at most one unit per turn of the event loop: a unit the journal
   * refuses at once must be seen (its rejection handled, the builder rolled
   * back) before anything is built on top of it.
   */
  private pump(): void {
    if (!this.restoring && this.inFlight.length < MAX_IN_FLIGHT && (this.queue.length > 0 || this.tickDue)) {
      this.buildUnit();
      if (this.queue.length > 0 || this.tickDue) this.schedule();
    }
    this.maybeIdle();
  }

  private maybeIdle(): void {
    if (this.queue.length === 0 && this.inFlight.length === 0 && !this.scheduled && !this.restoring) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  private pos(source: string, boot: number): SourcePosition {
    let boots = this.positions.get(source);
    if (!boots) this.positions.set(source, (boots = new Map()));
    let p = boots.get(boot);
    if (p) {
      // Most recently used last: the oldest boot is the one forgotten.
      boots.delete(boot);
    } else {
      p = { acked: 0, consumed: 0, held: new Set() };
      while (boots.size >= MAX_BOOTS_PER_SOURCE) boots.delete(boots.keys().next().value as number);
    }
    boots.set(boot, p);
    return p;
  }

  /** Builds one unit from the queue (and a due tick) and appends it. */
  private buildUnit(): void {
    const parts = new Map<Submission, Map<number, number>>();
    const touched = new Map<string, Set<number>>();
    const touch = (source: string, boot: number) => {
      let s = touched.get(source);
      if (!s) touched.set(source, (s = new Set()));
      s.add(boot);
    };
    const records: Uint8Array[] = [];
    const hashes: Uint8Array[] = [];
    const firstSeq = this.nextSeq;
    let bytes = 0;
    const time = this.now();
    const kinds = new Map<string, number>();
    // Records, chained as they are made (ARCHITECTURE §4.1): seq and prev continue the journal's tip.
    const emit = (out: BuiltEvent[]) => {
      for (const ev of out) {
        const rec = encodeEventRecord(ev, { deviceId: this.o.deviceId, seq: this.nextSeq, prev: this.prev, time });
        const h = sha256(rec);
        records.push(rec);
        hashes.push(h);
        this.nextSeq++;
        this.prev = h;
        bytes += rec.length;
        kinds.set(ev.kind, (kinds.get(ev.kind) ?? 0) + 1);
      }
    };
    const bp = this.o.journal.backpressure().state;
    const finished: Submission[] = [];
    while (this.queue.length > 0 && bytes < this.unitBytes) {
      const sub = this.queue[0];
      while (sub.next < sub.readings.length && bytes < this.unitBytes) {
        const r = sub.readings[sub.next++];
        if (sub.refused.has(r.bootId)) continue; // nothing of a boot after its first refusal (ACKs are cumulative)
        if (bp !== 'ok') {
          // High water or full: the firmware keeps its readings (invariant 6).
          sub.refused.set(r.bootId, r.seq);
          this.m.refused.inc({ source: sub.source, reason: 'backpressure' });
          continue;
        }
        const p = this.pos(sub.source, r.bootId);
        const key = `${r.bootId}:${r.seq}`;
        // Taken already: acknowledged, or in a record / the state — unless it is
        // a held reading a restart took out of memory (then take it again).
        if (r.seq <= p.acked || (r.seq <= p.consumed && (!p.held.has(r.seq) || this.heldIndex.has(key)))) {
          this.m.duplicates.inc({ source: sub.source });
          continue;
        }
        const heldBefore = this.builder.heldCount;
        let out: BuiltEvent[];
        try {
          out = this.builder.push(r);
        } catch (e) {
          if (e instanceof HoldFullError) {
            sub.refused.set(r.bootId, r.seq);
            this.m.refused.inc({ source: sub.source, reason: 'hold_full' });
            this.o.log.warn('reading refused: too many readings held for a trusted time; the firmware keeps it', { source: sub.source, boot_id: r.bootId, seq: r.seq, error: e });
            continue;
          }
          // Fits no configured sensor: bad input, never a crash. Taken (so the
          // link moves on), logged and counted; nothing to record.
          this.m.invalid.inc({ source: sub.source });
          this.o.log.warn('reading does not fit the config; acknowledged but not recorded', { source: sub.source, boot_id: r.bootId, seq: r.seq, sensor: r.sensor, kind: r.kind, error: e instanceof IscmError ? e : errorMessage(e) });
          out = [];
        }
        let firsts = parts.get(sub);
        if (!firsts) parts.set(sub, (firsts = new Map()));
        if (!firsts.has(r.bootId)) firsts.set(r.bootId, r.seq);
        if (r.seq > p.consumed) p.consumed = r.seq;
        const heldNow = this.builder.justHeld(r.bootId, r.seq);
        if (heldNow) {
          p.held.add(r.seq);
          this.heldIndex.set(key, sub.source);
        } else p.held.delete(r.seq);
        if (this.builder.heldCount < heldBefore + (heldNow ? 1 : 0)) this.noteReleased(touch);
        touch(sub.source, r.bootId);
        emit(out);
      }
      if (sub.next >= sub.readings.length) {
        this.queue.shift();
        finished.push(sub);
      } else break;
    }
    if (this.tickDue && bytes < this.unitBytes) {
      this.tickDue = false;
      const before = this.builder.heldCount;
      emit(this.builder.tick());
      if (this.builder.heldCount < before) this.noteReleased(touch);
    }
    for (const [kind, n] of kinds) this.m.events.inc({ kind }, n);
    // Ack points this unit makes durable.
    const acks = new Map<string, Map<number, number>>();
    for (const [source, boots] of touched)
      for (const boot of boots) {
        const p = this.positions.get(source)?.get(boot);
        if (!p) continue;
        let minHeld = Infinity;
        for (const h of p.held) if (h < minHeld) minHeld = h;
        const point = Math.min(p.consumed, minHeld - 1);
        if (point > p.acked) {
          p.acked = point;
          let m = acks.get(source);
          if (!m) acks.set(source, (m = new Map()));
          m.set(boot, point);
        }
      }
    if (records.length === 0 && parts.size === 0 && acks.size === 0) {
      // Nothing taken (duplicates, refusals) and nothing emitted: no unit to write.
      for (const sub of finished) this.settle(sub);
      return;
    }
    const state = encodeNodeState({ builder: this.builder.snapshot({ withHeld: false }), positions: this.positions, writtenMs: time });
    for (const sub of parts.keys()) sub.units++;
    const unit: Unit = { gen: this.gen, parts, acks, records: records.length, recordBytes: records, firstSeq, done: Promise.resolve() };
    this.inFlight.push(unit);
    unit.done = this.o.journal.appendUnit(records, state, hashes).then(
      () => this.unitDurable(unit),
      (e) => this.unitFailed(unit, e),
    );
    for (const sub of finished) if (sub.units === 0) this.settle(sub);
  }

  /** Held readings the builder let go of: their positions no longer hold them. */
  private noteReleased(touch: (source: string, boot: number) => void): void {
    const still = new Set(this.builder.heldKeys().map(([b, s]) => `${b}:${s}`));
    for (const [key, source] of this.heldIndex) {
      if (still.has(key)) continue;
      this.heldIndex.delete(key);
      const [boot, seq] = key.split(':').map(Number);
      this.positions.get(source)?.get(boot)?.held.delete(seq);
      touch(source, boot);
    }
  }

  private unitDurable(unit: Unit): void {
    this.inFlight.splice(this.inFlight.indexOf(unit), 1);
    this.m.units.inc();
    if (unit.records) {
      this.m.records.inc(undefined, unit.records);
      this.o.onRecords?.(unit.firstSeq, unit.recordBytes);
    }
    unit.recordBytes = [];
    // Units become durable in order, so this is the acknowledged position now.
    for (const [source, boots] of unit.acks)
      for (const [boot, seq] of boots) {
        let m = this.durableAcked.get(source);
        if (!m) this.durableAcked.set(source, (m = new Map()));
        m.set(boot, seq);
        // Idempotent for the receiver; it carries the acknowledgements no
        // delivery does (held readings released by a tick or another reading).
        this.o.onAck?.(source, boot, seq);
      }
    for (const sub of unit.parts.keys()) {
      sub.units--;
      if (sub.units === 0 && sub.next >= sub.readings.length && !this.queue.includes(sub)) this.settle(sub);
    }
    this.schedule();
  }

  private unitFailed(unit: Unit, e: unknown): void {
    this.inFlight.splice(this.inFlight.indexOf(unit), 1);
    this.m.unitFailures.inc();
    // Everything of this unit, and whatever was built on it, is not durable: refuse it.
    for (const [sub, firsts] of unit.parts) {
      for (const [boot, seq] of firsts) if (!sub.refused.has(boot) || sub.refused.get(boot)! > seq) sub.refused.set(boot, seq);
      this.m.refused.inc({ source: sub.source, reason: 'journal' }, firsts.size);
    }
    if (unit.gen === this.gen) {
      this.gen++;
      this.o.log.warn('journal refused a unit; its readings are not acknowledged (the sources keep them) and the pipeline rolls back to the last durable state', { error: e, records: unit.records });
      // Queued readings are refused too: their sources resend them, in order.
      for (const sub of this.queue) {
        for (let i = sub.next; i < sub.readings.length; i++) {
          const r = sub.readings[i];
          if (!sub.refused.has(r.bootId)) sub.refused.set(r.bootId, r.seq);
        }
        sub.next = sub.readings.length;
      }
      const queued = this.queue;
      this.queue = [];
      this.restoring = (async () => {
        // Let the other unit in flight (built on this one) settle before rolling back.
        await Promise.all(this.inFlight.map((u) => u.done));
        try {
          this.restore();
        } catch (err) {
          this.o.log.error('cannot restore the pipeline state from the journal', { error: err });
        }
      })().finally(() => {
        this.restoring = undefined;
        for (const sub of queued) if (sub.units === 0) this.settle(sub);
        this.schedule();
      });
    }
    for (const sub of unit.parts.keys()) {
      sub.units--;
      if (sub.units === 0 && sub.next >= sub.readings.length && !this.queue.includes(sub)) this.settle(sub);
    }
  }

  private settle(sub: Submission): void {
    if (sub.settled) return;
    sub.settled = true;
    const ackThrough = new Map<number, number>();
    for (const r of sub.readings) if (!ackThrough.has(r.bootId)) ackThrough.set(r.bootId, this.durableAcked.get(sub.source)?.get(r.bootId) ?? 0);
    this.m.durable.observe((performance.now() - sub.t0) / 1000);
    sub.resolve({ ackThrough, ...(sub.refused.size ? { refusedFrom: sub.refused } : {}) });
    this.maybeIdle();
  }
}
