// Real services and child processes for integration tests: free loopback
// ports, temp dirs, processes started by the test and always stopped by PID
// (SIGTERM, then SIGKILL), also when the test process exits early.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
function cleanup(): void {
  for (const c of live) if (c.pid && c.exitCode === null) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ }
  for (const d of dirs) try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
}
process.once('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { cleanup(); process.exit(130); });

/** A fresh temp dir, removed at exit unless ISCM_KEEP_TMP is set. */
export function tempDir(prefix = 'iscm-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  if (!process.env.ISCM_KEEP_TMP) dirs.add(d);
  return d;
}

/** A free TCP port on 127.0.0.1 (bound and released; good enough for tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  /** Everything the process wrote so far (stdout + stderr). */
  output(): string;
  /** Resolves when a line matching re appears (rejects on exit or timeout). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after graceMs; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** kill -9 */
  kill9(): Promise<void>;
  exited: Promise<number | null>;
}

export function start(cmd: string, args: string[], opts: SpawnOptions & { name?: string } = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  if (!child.pid) throw new Error(`could not start ${cmd}`);
  live.add(child);
  let out = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 4 << 20) out = out.slice(-(2 << 20));
    for (const w of [...waiters]) {
      const m = out.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m[0]);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, sig) => {
    live.delete(child);
    resolve(code ?? (sig ? -1 : null));
  }));
  const pid = child.pid;
  const p: Proc = {
    child,
    pid,
    output: () => out,
    waitFor(re, timeoutMs = 15_000) {
      const m = out.match(re);
      if (m) return Promise.resolve(m[0]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${opts.name ?? cmd}: no ${re} within ${timeoutMs} ms; output:\n${out.slice(-2000)}`)), timeoutMs);
        const w = { re, resolve: (l: string) => { clearTimeout(timer); resolve(l); } };
        waiters.push(w);
        exited.then((code) => {
          if (waiters.includes(w)) {
            clearTimeout(timer);
            reject(new Error(`${opts.name ?? cmd} exited (${code}) before ${re}; output:\n${out.slice(-2000)}`));
          }
        });
      });
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try { process.kill(pid, 'SIGTERM'); } catch { return; }
      const t = setTimeout(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
      await exited;
      clearTimeout(t);
    },
    async kill9() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try { process.kill(pid, 'SIGKILL'); } catch { return; }
      await exited;
    },
    exited,
  };
  return p;
}

/** Polls `check` until it returns truthy (or throws after timeoutMs). */
export async function waitUntil<T>(check: () => T | Promise<T>, timeoutMs = 15_000, what = 'condition', everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** True when `cmd` is on PATH; else prints a loud SKIP line naming the package. */
export function haveCommand(cmd: string, pkg: string, suite: string): boolean {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']);
  if (dirs.some((d) => existsSync(join(d, cmd)))) return true;
  process.stderr.write(`SKIP ${suite}: ${cmd} not found (Debian package ${pkg}; scripts/test.sh installs it when run as root)\n`);
  return false;
}
