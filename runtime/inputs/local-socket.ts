// Local input: readings from integrations on the gateway (a BLE bridge, a PLC
// poller, a shell script) over a Unix socket, one JSON object per line. Every
// line gets exactly one answer line, in order, once its fate is known:
//
//   → {"sensor":"t-air","kind":"temperature","values":{"celsius":4.2}}
//   ← {"ok":true,"line":1,"boot_id":3581229012,"seq":1}              (durable in the journal)
//   ← {"ok":false,"line":2,"retry":false,"field":"values.celsius","error":"…"}  (bad input: fix it)
//   ← {"ok":false,"line":3,"retry":true,"error":"…"}                 (not taken now: send it again later)
//
// Why a socket and not a local MQTT topic: an MQTT publisher's PUBACK comes
// from the broker, not from us, so it could never learn that its reading is
// durable; here "ok" means fsync'd (invariant 1), and "retry" means nothing
// of it was kept. Optional fields: `time` (ms since the epoch or an ISO 8601
// text; default: now, by the gateway clock), `time_source` (mcu, gateway,
// gps), `mono_ms`, and `boot_id` + `seq` together for exactly-once delivery
// (a line whose seq was already taken for that boot_id is answered ok again
// and not recorded twice; seqs must increase per boot_id).
// Without them the node numbers the lines itself (at-least-once: resend what
// was not answered). The line format of `iscm-edge firmware listen` captures
// is accepted as is, so a capture can be replayed into a running node.
import { createServer, type Server, type Socket } from 'node:net';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import { checkReading, type Reading } from '../../protocol/reading.js';
import { errorMessage, IscmError, ValidationError } from '../../protocol/errors.js';
import type { DeliverResult } from '../../firmware-bridge/session.js';
import type { Logger } from '../ops/log.js';
import type { Registry } from '../ops/metrics.js';
import type { SensorConfig } from '../config/types.js';

export const LOCAL_SOURCE = 'local';
const MAX_LINE = 64 * 1024;
/** Lines of one connection waiting for their answer at most; beyond, the socket is not read (back-pressure). */
const MAX_WAITING = 4096;

export interface LocalInputOptions {
  path: string;
  /** File mode of the socket, e.g. 0o660. */
  mode: number;
  maxClients: number;
  sensors: Record<string, SensorConfig>;
  submit: (source: string, readings: Reading[]) => Promise<DeliverResult>;
  log: Logger;
  metrics: Registry;
  now?: () => number;
}

interface Waiting {
  line: number;
  boot: number;
  seq: number;
  /** Answer ready (lines are answered in order). */
  answer?: string;
}

const KNOWN = ['sensor', 'kind', 'values', 'time', 'time_source', 'mono_ms', 'boot_id', 'seq'];

/** Parses one line into a reading; `auto` numbers lines that do not carry boot_id + seq. */
export function parseLocalLine(text: string, now: number, auto: () => [number, number]): Reading {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new ValidationError('line', `not JSON: ${(e as Error).message}`);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ValidationError('line', 'expected a JSON object');
  const j = o as Record<string, unknown>;
  for (const k of Object.keys(j)) if (!KNOWN.includes(k)) throw new ValidationError(k, `unknown field (expected ${KNOWN.join(', ')})`);
  if ((j.boot_id === undefined) !== (j.seq === undefined)) throw new ValidationError(j.seq === undefined ? 'seq' : 'boot_id', 'boot_id and seq go together (both for exactly-once delivery, or neither)');
  let time: unknown = j.time;
  if (typeof time === 'string') {
    const t = Date.parse(time);
    if (!/^\d{4}-\d\d-\d\dT/.test(time) || !Number.isFinite(t)) throw new ValidationError('time', `expected ms since the epoch or an ISO 8601 date-time, got ${JSON.stringify(time).slice(0, 40)}`);
    time = t;
  }
  let timeSource = j.time_source;
  if (time === undefined || time === null) {
    if (timeSource !== undefined && timeSource !== 'none' && timeSource !== 'gateway') throw new ValidationError('time_source', 'a time_source without a time');
    time = now;
    timeSource = 'gateway';
  } else if (timeSource === undefined) timeSource = 'gateway';
  const [boot, seq] = j.boot_id === undefined ? auto() : [j.boot_id, j.seq];
  return checkReading({ bootId: boot, seq, sensor: j.sensor, kind: j.kind, time, timeSource, ...(j.mono_ms !== undefined ? { monoMs: j.mono_ms } : {}), values: j.values }, 'line');
}

export class LocalInput {
  private server: Server | undefined;
  private readonly clients = new Set<Socket>();
  /** Lines numbered by the node: one random boot per start, seq from 1. */
  private readonly autoBoot = randomInt(1, 0xffffffff);
  private autoSeq = 0;
  /** Answers waiting for held readings to become durable: boot id → (seq, answer) in arrival order. */
  private readonly heldWaiters = new Map<number, { seq: number; done: () => void }[]>();
  private readonly m;

  constructor(private readonly o: LocalInputOptions) {
    const r = o.metrics;
    this.m = {
      lines: r.counter('iscm_local_lines_total', 'Lines received on the local input socket, by outcome'),
      clients: r.gauge('iscm_local_clients', 'Connections to the local input socket'),
    };
  }

  async start(): Promise<void> {
    // A socket file left by a process that died is in the way of listen().
    const st = await lstat(this.o.path).catch(() => undefined);
    if (st) {
      if (!st.isSocket()) throw new IscmError('CONFIG_INVALID', `local_input.socket: ${this.o.path} exists and is not a socket; refusing to replace it`, 'local_input.socket');
      await unlink(this.o.path);
    }
    const server = createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new IscmError('CONFIG_INVALID', `local_input.socket: cannot listen on ${this.o.path}: ${errorMessage(e)}`, 'local_input.socket')));
      server.listen(this.o.path, () => resolve());
    });
    server.on('error', (e) => this.o.log.error('local input socket error', { error: e }));
    await chmod(this.o.path, this.o.mode);
    this.o.log.info('local input listening', { socket: this.o.path });
  }

  /** The pipeline made held readings of `boot` durable through `seq`. */
  acknowledge(boot: number, seq: number): void {
    const list = this.heldWaiters.get(boot);
    if (!list) return;
    const rest = list.filter((w) => {
      if (w.seq > seq) return true;
      w.done();
      return false;
    });
    if (rest.length) this.heldWaiters.set(boot, rest);
    else this.heldWaiters.delete(boot);
  }

  private accept(s: Socket): void {
    if (this.clients.size >= this.o.maxClients) {
      s.end(JSON.stringify({ ok: false, retry: true, error: `too many connections (local_input.max_clients = ${this.o.maxClients})` }) + '\n');
      return;
    }
    this.clients.add(s);
    this.m.clients.set(this.clients.size);
    let buf = '';
    let lineNo = 0;
    let skipping = false;
    const waiting: Waiting[] = [];
    const flush = () => {
      let out = '';
      while (waiting.length && waiting[0].answer !== undefined) out += waiting.shift()!.answer + '\n';
      if (out && !s.destroyed) s.write(out);
      if (waiting.length < MAX_WAITING && s.isPaused()) s.resume();
    };
    const answer = (w: Waiting, o: Record<string, unknown>, outcome: string) => {
      w.answer = JSON.stringify({ ...o, line: w.line });
      this.m.lines.inc({ outcome });
      flush();
    };
    const lines = (chunk: string) => {
      buf += chunk;
      const batch: { w: Waiting; r: Reading }[] = [];
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (skipping) {
          skipping = false;
          continue;
        }
        if (text.trim() === '') continue;
        const w: Waiting = { line: ++lineNo, boot: 0, seq: 0 };
        waiting.push(w);
        try {
          const r = parseLocalLine(text, (this.o.now ?? Date.now)(), () => [this.autoBoot, ++this.autoSeq]);
          const sc = this.o.sensors[r.sensor];
          if (!sc) throw new ValidationError('sensor', `sensor "${r.sensor}" is not in the gateway config (sensors: ${Object.keys(this.o.sensors).join(', ') || 'none'})`);
          if (sc.kind !== r.kind) throw new ValidationError('kind', `sensor "${r.sensor}" is configured as ${sc.kind}, not ${r.kind}`);
          w.boot = r.bootId;
          w.seq = r.seq;
          batch.push({ w, r });
        } catch (e) {
          answer(w, { ok: false, retry: false, ...(e instanceof IscmError && e.field ? { field: e.field } : {}), error: errorMessage(e) }, 'invalid');
        }
      }
      if (buf.length > MAX_LINE) {
        const w: Waiting = { line: ++lineNo, boot: 0, seq: 0 };
        waiting.push(w);
        answer(w, { ok: false, retry: false, error: `line longer than ${MAX_LINE} bytes` }, 'invalid');
        buf = '';
        skipping = true;
      }
      if (batch.length) this.submit(batch, answer);
      if (waiting.length >= MAX_WAITING) s.pause();
    };
    s.setEncoding('utf8');
    s.on('data', lines);
    s.on('error', () => {});
    s.on('close', () => {
      this.clients.delete(s);
      this.m.clients.set(this.clients.size);
    });
  }

  private submit(batch: { w: Waiting; r: Reading }[], answer: (w: Waiting, o: Record<string, unknown>, outcome: string) => void): void {
    void this.o.submit(LOCAL_SOURCE, batch.map((b) => b.r)).then((res) => {
      for (const { w } of batch) {
        const refused = res.refusedFrom?.get(w.boot);
        const acked = res.ackThrough?.get(w.boot) ?? 0;
        if (refused !== undefined && w.seq >= refused) answer(w, { ok: false, retry: true, boot_id: w.boot, seq: w.seq, error: 'not taken now (journal at its high-water mark, or the reading waits for a trusted time with too many held): nothing was kept; send it again later' }, 'refused');
        else if (w.seq <= acked) answer(w, { ok: true, boot_id: w.boot, seq: w.seq }, 'ok');
        else {
          // Held for a trusted time: answered once its event is durable.
          let list = this.heldWaiters.get(w.boot);
          if (!list) this.heldWaiters.set(w.boot, (list = []));
          list.push({ seq: w.seq, done: () => answer(w, { ok: true, boot_id: w.boot, seq: w.seq }, 'ok') });
        }
      }
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.clients) s.end();
    for (const s of this.clients) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    await unlink(this.o.path).catch(() => {});
  }
}
