// Log lines of the full node: one line per event on stderr,
//   2025-11-24T01:30:00.000Z info  sequencer: block committed height=12 size=340
// Fields are key=value (values with spaces quoted). Nothing secret is ever
// passed in: callers log names of variables and files, never their contents.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(msg: string, f?: Fields): void;
  info(msg: string, f?: Fields): void;
  warn(msg: string, f?: Fields): void;
  error(msg: string, f?: Fields): void;
  child(f: Fields): Logger;
}

function fmt(f: Fields | undefined): string {
  if (!f) return '';
  let s = '';
  for (const [k, v] of Object.entries(f)) {
    if (v === undefined) continue;
    const t = String(v);
    s += ` ${k}=${/[\s"=]/.test(t) || t === '' ? JSON.stringify(t) : t}`;
  }
  return s;
}

export function createLogger(level: Level = 'info', write: (line: string) => void = (l) => process.stderr.write(l), base: Fields = {}): Logger {
  const min = ORDER[level];
  const emit = (lv: Level, msg: string, f?: Fields) => {
    if (ORDER[lv] < min) return;
    write(`${new Date().toISOString()} ${lv.padEnd(5)} ${msg}${fmt({ ...base, ...f })}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (f) => createLogger(level, write, { ...base, ...f }),
  };
}

export const silentLogger: Logger = createLogger('error', () => {});
