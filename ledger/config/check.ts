// A small schema checker for YAML (or JSON) config files that reports every
// problem with its place: `FILE:LINE:COL: key.path: message`, unknown keys
// with a did-you-mean, and secrets refused unless given by reference
// (`*_env` names an environment variable, `*_file` a file). The ledger cannot
// use the gateway's loader (runtime/ is off limits to ledger/), so this is the
// same standard, written for the ledger.
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Node, type Pair } from 'yaml';
import { LedgerError } from '../errors.js';

export type Schema =
  | { type: 'object'; props: Record<string, Schema>; required?: string[]; doc?: string }
  | { type: 'string'; pattern?: RegExp; patternText?: string; enum?: readonly string[]; minLength?: number }
  | { type: 'int'; min?: number; max?: number }
  | { type: 'bool' }
  /** "250ms", "5s", "10m", "24h", "2d" or a number of milliseconds. */
  | { type: 'duration'; min?: number; max?: number }
  /** "512KiB", "64MB", "1GiB" or a number of bytes. */
  | { type: 'size'; min?: number; max?: number }
  | { type: 'array'; items: Schema; min?: number; max?: number };

export interface Issue {
  path: string;
  line: number;
  col: number;
  message: string;
}

/** Names that must never hold a secret in a config file. */
const SECRET = /(^|_)(password|passphrase|pin|secret|token|private_key)$/;

export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

export function didYouMean(key: string, known: string[]): string {
  let best = '';
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(key.toLowerCase(), k);
    if (dist < bestD) {
      bestD = dist;
      best = k;
    }
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : ` (known keys: ${known.join(', ')})`;
}

const DUR: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(v);
  return m ? Math.round(Number(m[1]) * DUR[m[2]]) : undefined;
}

export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b)\s*$/i.exec(v);
  return m && SIZE[m[2].toLowerCase()] ? Math.round(Number(m[1]) * SIZE[m[2].toLowerCase()]) : undefined;
}

function fmtMs(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * Parses and checks `text`; returns the plain value with durations and sizes
 * converted to numbers (ms, bytes). Throws LedgerError('CONFIG') listing every issue.
 */
export interface Checked {
  value: Record<string, unknown>;
  /** Where each key path sits in the file (for errors found after the schema check). */
  positions: Map<string, { line: number; col: number }>;
}

export function checkConfigText(text: string, file: string, schema: Schema): Checked {
  const positions = new Map<string, { line: number; col: number }>();
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const issues: Issue[] = [];
  const pos = (n: Node | null | undefined) => {
    const off = n?.range?.[0] ?? 0;
    const p = lc.linePos(off);
    return { line: p.line, col: p.col };
  };
  for (const e of doc.errors) {
    const p = e.linePos?.[0] ?? (e.pos ? lc.linePos(e.pos[0]) : { line: 1, col: 1 });
    issues.push({ path: '', line: p.line, col: p.col, message: `YAML: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}` });
  }
  if (issues.length) throw configError(file, issues);
  const root = doc.contents as Node | null;
  if (!root) throw configError(file, [{ path: '', line: 1, col: 1, message: 'the file is empty' }]);

  const walk = (node: Node | null, s: Schema, path: string, at: Node | null): unknown => {
    const where = pos(node ?? at);
    const add = (message: string, n: Node | null = node ?? at) => {
      const p = pos(n);
      issues.push({ path, line: p.line, col: p.col, message });
    };
    if (s.type === 'object') {
      if (!isMap(node)) {
        add(`expected a mapping (key: value lines)${node && isScalar(node) ? `, got ${JSON.stringify(node.value)}` : ''}`);
        return undefined;
      }
      const out: Record<string, unknown> = {};
      const known = Object.keys(s.props);
      for (const pair of node.items as Pair<Node, Node>[]) {
        const keyNode = pair.key;
        const key = isScalar(keyNode) ? String(keyNode.value) : '';
        const kp = path ? `${path}.${key}` : key;
        positions.set(kp, pos(keyNode));
        if (!(key in s.props)) {
          if (SECRET.test(key)) {
            issues.push({ path: kp, ...pos(keyNode), message: `secrets are never written in config files: give ${key}_env (an environment variable) or ${key}_file (a file readable only by the ledger)` });
          } else issues.push({ path: kp, ...pos(keyNode), message: `unknown key${didYouMean(key, known)}` });
          continue;
        }
        const v = walk(pair.value ?? null, s.props[key], kp, keyNode);
        if (v !== undefined) out[key] = v;
      }
      for (const r of s.required ?? []) if (!(r in out) && !issues.some((i) => i.path === (path ? `${path}.${r}` : r))) issues.push({ path: path ? `${path}.${r}` : r, ...where, message: 'required key is missing' });
      return out;
    }
    if (s.type === 'array') {
      if (!isSeq(node)) {
        add('expected a list');
        return undefined;
      }
      const items = node.items as Node[];
      if (s.min !== undefined && items.length < s.min) add(`expected at least ${s.min} entr${s.min === 1 ? 'y' : 'ies'}`);
      if (s.max !== undefined && items.length > s.max) add(`expected at most ${s.max} entries`);
      return items.map((n, i) => {
        positions.set(`${path}[${i}]`, pos(n));
        return walk(n, s.items, `${path}[${i}]`, node);
      });
    }
    if (!isScalar(node)) {
      add(`expected a single value, got a ${isMap(node) ? 'mapping' : isSeq(node) ? 'list' : 'nothing'}`);
      return undefined;
    }
    const v = node.value;
    switch (s.type) {
      case 'string': {
        if (typeof v !== 'string') {
          add(`expected text, got ${JSON.stringify(v)}`);
          return undefined;
        }
        if (s.enum && !s.enum.includes(v)) {
          add(`must be one of ${s.enum.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(v)}${didYouMean(v, [...s.enum]).startsWith(' (did') ? didYouMean(v, [...s.enum]) : ''}`);
          return undefined;
        }
        if (s.minLength !== undefined && v.length < s.minLength) add('must not be empty');
        if (s.pattern && !s.pattern.test(v)) add(`${JSON.stringify(v)} is not ${s.patternText ?? `matching ${s.pattern}`}`);
        return v;
      }
      case 'int': {
        if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
          add(`expected a whole number, got ${JSON.stringify(v)}`);
          return undefined;
        }
        if ((s.min !== undefined && v < s.min) || (s.max !== undefined && v > s.max)) add(`must be ${s.min ?? '-∞'}..${s.max ?? '∞'}, got ${v}`);
        return v;
      }
      case 'bool':
        if (typeof v !== 'boolean') {
          add(`expected true or false, got ${JSON.stringify(v)}`);
          return undefined;
        }
        return v;
      case 'duration': {
        const ms = parseDuration(v);
        if (ms === undefined) {
          add(`expected a duration like "250ms", "5s", "10m", "24h", got ${JSON.stringify(v)}`);
          return undefined;
        }
        if ((s.min !== undefined && ms < s.min) || (s.max !== undefined && ms > s.max))
          add(`must be between ${fmtMs(s.min ?? 0)} and ${s.max !== undefined ? fmtMs(s.max) : '∞'}, got ${JSON.stringify(v)}`);
        return ms;
      }
      case 'size': {
        const n = parseSize(v);
        if (n === undefined) {
          add(`expected a size like "512KiB", "64MB", "1GiB" or a number of bytes, got ${JSON.stringify(v)}`);
          return undefined;
        }
        if ((s.min !== undefined && n < s.min) || (s.max !== undefined && n > s.max)) add(`must be between ${s.min ?? 0} and ${s.max ?? '∞'} bytes, got ${JSON.stringify(v)}`);
        return n;
      }
    }
  };
  const out = walk(root, schema, '', null) as Record<string, unknown>;
  if (issues.length) throw configError(file, issues);
  return { value: out, positions };
}

export function configError(file: string, issues: Issue[]): LedgerError {
  issues.sort((a, b) => a.line - b.line || a.col - b.col);
  const lines = issues.map((i) => `${file}:${i.line}:${i.col}: ${i.path ? `${i.path}: ` : ''}${i.message}`);
  const e = new LedgerError('CONFIG', lines.join('\n'));
  (e as LedgerError & { issues: Issue[] }).issues = issues;
  return e;
}
