// A packaged command run under qemu-user with the target's own Node, the way
// the gateway runs it: the package's bin/ launcher, with ISCM_NODE pointing at
// a shim that starts the target's node under the emulator (so the launcher
// itself is exercised too). run() waits for exit; start() returns a Proc for
// long-running commands (`firmware listen`, later `run --config …`).
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { emulation, type EmulatedArch, type Emulation } from '../../build/cross-sysroots.js';
import type { TargetName } from '../../build/targets.js';
import { start, tempDir, type Proc } from '../helpers/proc.js';
import { buildAndUnpack, type Packaged } from './_packaged.js';

export type Command = 'iscm-edge' | 'iscm-ledger';

export interface Ran {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

export interface EmulatedPackage {
  arch: EmulatedArch;
  pkg: Packaged;
  emu: Emulation;
  /** The shim ISCM_NODE points at: `qemu … <target node> "$@"`. */
  nodeShim: string;
  env(extra?: Record<string, string>): Record<string, string>;
  run(cmd: Command, args: string[], extraEnv?: Record<string, string>, timeoutMs?: number): Ran;
  /** Runs the target's node itself (e.g. `-e …`). */
  node(args: string[], extraEnv?: Record<string, string>): Ran;
  start(cmd: Command, args: string[], extraEnv?: Record<string, string>): Proc;
}

const TARGET: Record<EmulatedArch, TargetName> = { arm64: 'linux-arm64', mips64el: 'linux-mips64el' };
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Builds and unpacks the arch's package; null (after a loud SKIP line) when the emulation is not ready. */
export async function emulatedPackage(arch: EmulatedArch, suite: string): Promise<EmulatedPackage | null> {
  const emu = emulation(arch);
  if ('missing' in emu) {
    process.stderr.write(`SKIP ${suite}: ${emu.missing}\n`);
    return null;
  }
  const pkg = await buildAndUnpack(TARGET[arch]);
  const nodeShim = join(tempDir(`iscm-emu-${arch}-`), 'node');
  writeFileSync(nodeShim, `#!/bin/sh\nexec ${[emu.qemu, ...emu.qemuArgs, emu.node].map(q).join(' ')} "$@"\n`);
  chmodSync(nodeShim, 0o755);
  const env = (extra: Record<string, string> = {}) => {
    const e: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('ISCM_')) e[k] = v;
    return { ...e, ISCM_NODE: nodeShim, ...extra };
  };
  const sync = (file: string, args: string[], extra: Record<string, string> | undefined, timeoutMs = 180_000): Ran => {
    const t0 = Date.now();
    const r = spawnSync(file, args, { env: env(extra), encoding: 'utf8', timeout: timeoutMs, cwd: pkg.dir });
    return { code: r.status, out: r.stdout, err: r.stderr + (r.error ? `\n${r.error.message}` : ''), ms: Date.now() - t0 };
  };
  return {
    arch,
    pkg,
    emu,
    nodeShim,
    env,
    run: (cmd, args, extra, timeoutMs) => sync(join(pkg.dir, 'bin', cmd), args, extra, timeoutMs),
    node: (args, extra) => sync(nodeShim, args, extra),
    start: (cmd, args, extra) => start(join(pkg.dir, 'bin', cmd), args, { env: env(extra), cwd: pkg.dir, name: `${arch} ${cmd} ${args[0] ?? ''}` }),
  };
}
