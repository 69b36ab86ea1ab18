// Which process holds a device open: scans /proc/*/fd (Linux). Used to turn
// "Cannot lock port" into "port held by PID 1234 (node iscm-edge …)". Only
// processes we may inspect are seen (all of them as root).
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import type { PortHolder } from './errors.js';

export function findHolders(path: string, exceptPid?: number): PortHolder[] {
  let target: string;
  try {
    target = realpathSync(path);
  } catch {
    return [];
  }
  const out: PortHolder[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  for (const p of pids) {
    const pid = Number(p);
    if (pid === exceptPid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${p}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link === target) {
        out.push({ pid, command: commandOf(pid) });
        break;
      }
    }
  }
  return out;
}

function commandOf(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    if (cmd) return cmd.length > 120 ? `${cmd.slice(0, 117)}...` : cmd;
  } catch {
    /* gone */
  }
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

export function describeHolders(h: PortHolder[]): string {
  return h.map((x) => `PID ${x.pid} (${x.command})`).join(', ');
}
