// A virtual serial cable: a socat pty pair with stable link names (A ↔ B),
// started and stopped by PID. kill() simulates an unplug (SIGKILL: the pty
// devices vanish, the link names dangle, as a USB adapter's by-id link does
// until udev removes it); restart() plugs it back in under the same names.
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, start, waitUntil, type Proc } from './proc.js';

export interface PtyPair {
  a: string;
  b: string;
  proc: Proc;
  /** SIGKILL socat (unplug), links left dangling. */
  kill(): Promise<void>;
  /** SIGSTOP: the ptys stay open but nothing flows (a hung adapter). */
  freeze(): void;
  thaw(): void;
  /** Starts socat again with the same link names. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function haveSocat(suite: string): boolean {
  return haveCommand('socat', 'socat', suite);
}

function unlinkStale(p: string): void {
  try {
    if (lstatSync(p).isSymbolicLink()) unlinkSync(p);
  } catch {
    /* absent */
  }
}

async function launch(a: string, b: string): Promise<Proc> {
  unlinkStale(a);
  unlinkStale(b);
  const proc = start('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { name: 'socat' });
  await waitUntil(() => existsSync(a) && existsSync(b), 10_000, `socat links ${a} ${b}`, 20);
  return proc;
}

/** Starts socat with links `dir/name-a` and `dir/name-b`. */
export async function ptyPair(dir: string, name = 'tty'): Promise<PtyPair> {
  const a = join(dir, `${name}-a`);
  const b = join(dir, `${name}-b`);
  const pair: PtyPair = {
    a,
    b,
    proc: await launch(a, b),
    async kill() {
      await pair.proc.kill9();
    },
    freeze() {
      process.kill(pair.proc.pid, 'SIGSTOP');
    },
    thaw() {
      process.kill(pair.proc.pid, 'SIGCONT');
    },
    async restart() {
      await pair.proc.kill9();
      pair.proc = await launch(a, b);
    },
    async stop() {
      try {
        process.kill(pair.proc.pid, 'SIGCONT');
      } catch {
        /* gone */
      }
      await pair.proc.stop(2000);
    },
  };
  return pair;
}
