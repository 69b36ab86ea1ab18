// Structured JSON logs, one object per line, with levels. Secrets never reach
// a log line: fields whose names look secret are redacted whatever the caller
// passes (invariant 4), and errors are logged by code and message only.
import { IscmError } from '../../protocol/errors.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET = /(pin|passphrase|password|secret|private|token_pin)/i;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LogSink {
  write(line: string): void;
}

function clean(v: unknown, depth = 0): unknown {
  if (v instanceof IscmError) return { code: v.code, field: v.field, message: v.message };
  if (v instanceof Error) return { name: v.name, message: v.message, code: (v as NodeJS.ErrnoException).code };
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (typeof v === 'bigint') return v.toString();
  if (depth > 4 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.slice(0, 50).map((x) => clean(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = SECRET.test(k) ? '[redacted]' : clean(x, depth + 1);
  return out;
}

/** One line of text: `TIME LEVEL msg key=value …` (values JSON-quoted when they need it). */
function textLine(rec: Record<string, unknown>): string {
  const { time, level, msg, ...rest } = rec;
  const kv = Object.entries(rest).map(([k, v]) => {
    const t = typeof v === 'string' ? (/^[\w./:@+-]+$/.test(v) ? v : JSON.stringify(v)) : JSON.stringify(v);
    return `${k}=${t}`;
  });
  return `${time} ${String(level).toUpperCase().padEnd(5)} ${msg}${kv.length ? ' ' + kv.join(' ') : ''}`;
}

export function createLogger(opts: { level?: Level; sink?: LogSink; base?: Record<string, unknown>; now?: () => number; format?: 'json' | 'text' } = {}): Logger {
  const min = ORDER[opts.level ?? 'info'];
  const sink = opts.sink ?? { write: (l: string) => process.stderr.write(l) };
  const now = opts.now ?? Date.now;
  const base = opts.base ?? {};
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    const rec = { time: new Date(now()).toISOString(), level, msg, ...(clean({ ...base, ...fields }) as object) };
    let line: string;
    try {
      line = opts.format === 'text' ? textLine(rec) : JSON.stringify(rec);
    } catch {
      line = JSON.stringify({ time: rec.time, level, msg, note: 'fields not serialisable' });
    }
    sink.write(line + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger({ ...opts, base: { ...base, ...f } }),
  };
}

/** A logger that keeps lines in memory (tests). */
export function memoryLogger(level: Level = 'debug'): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const l = createLogger({ level, sink: { write: (s) => lines.push(JSON.parse(s)) } });
  return Object.assign(l, { lines });
}
