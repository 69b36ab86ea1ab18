// SoftHSM2 tokens for tests and benchmarks: a token directory and a
// softhsm2.conf in a temp dir, tokens initialised with softhsm2-util.
//
// SoftHSM reads SOFTHSM2_CONF at C_Initialize, so a process that loads the
// module sees the token dir of the SOFTHSM2_CONF it had then: call
// useSoftHsm() before the first signer/token is opened, or give child
// processes `env`. Tokens created later are seen after a re-initialisation
// (a signer's re-open does one).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { haveCommand, tempDir } from './proc.js';

const CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/arm-linux-gnueabihf/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];

/** Path of the SoftHSM2 PKCS#11 module, or undefined. */
export function softhsmModule(): string | undefined {
  return CANDIDATES.find((p) => existsSync(p));
}

/** True when softhsm2-util and the module are installed; else prints a loud SKIP line. */
export function haveSoftHsm(suite: string): boolean {
  if (!haveCommand('softhsm2-util', 'softhsm2', suite)) return false;
  if (!softhsmModule()) {
    process.stderr.write(`SKIP ${suite}: libsofthsm2.so not found (Debian package softhsm2; looked in ${CANDIDATES.join(', ')})\n`);
    return false;
  }
  return true;
}

export interface SoftHsm {
  dir: string;
  conf: string;
  tokenDir: string;
  module: string;
  /** User PIN of every token made here. */
  pin: string;
  soPin: string;
  /** Environment for child processes: SOFTHSM2_CONF (no PIN). */
  env: Record<string, string>;
  /** Initialises one more token (returns its serial). */
  addToken(label: string): string;
  /** The directory of a token (by label) inside tokenDir. */
  tokenPath(label: string): string;
  /** Moves a token's directory out of tokenDir (the token "is removed"); returns a function that puts it back. */
  removeToken(label: string): () => void;
  /** Deletes a token (softhsm2-util --delete-token). */
  deleteToken(label: string): void;
}

/**
 * Creates a SoftHSM2 setup in a fresh temp dir with the given tokens.
 * The PIN is fixed for tests (never a production practice).
 */
export function createSoftHsm(labels: string[] = ['iscm-test'], pin = '246810', soPin = '13579135'): SoftHsm {
  const module = softhsmModule();
  if (!module) throw new Error('SoftHSM2 is not installed');
  const dir = tempDir('iscm-softhsm-');
  const tokenDir = join(dir, 'tokens');
  mkdirSync(tokenDir, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const env = { SOFTHSM2_CONF: conf };
  const labelsToDirs = new Map<string, string>();
  const util = (args: string[]) => execFileSync('softhsm2-util', args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }).toString();
  const h: SoftHsm = {
    dir,
    conf,
    tokenDir,
    module,
    pin,
    soPin,
    env,
    addToken(label) {
      const before = new Set(readdirSync(tokenDir));
      util(['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin]);
      const added = readdirSync(tokenDir).filter((d) => !before.has(d));
      if (added.length !== 1) throw new Error(`softhsm2-util made ${added.length} token dirs for ${label}`);
      labelsToDirs.set(label, added[0]);
      const out = util(['--show-slots']);
      const block = out.split(/\n(?=Slot )/).find((b) => new RegExp(`Label:\\s+${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`, 'm').test(b));
      return /Serial number:\s+(\S+)/.exec(block ?? '')?.[1] ?? '';
    },
    tokenPath(label) {
      const d = labelsToDirs.get(label);
      if (!d) throw new Error(`no token ${label}`);
      return join(tokenDir, d);
    },
    removeToken(label) {
      const from = h.tokenPath(label);
      const name = labelsToDirs.get(label)!;
      const to = join(dir, `removed-${name}`);
      renameSync(from, to);
      return () => {
        renameSync(to, from);
        labelsToDirs.set(label, name);
      };
    },
    deleteToken(label) {
      util(['--delete-token', '--token', label]);
      labelsToDirs.delete(label);
    },
  };
  for (const l of labels) h.addToken(l);
  return h;
}

/** Points this process's SoftHSM at `h` (before the module is first initialised). */
export function useSoftHsm(h: SoftHsm): void {
  process.env.SOFTHSM2_CONF = h.conf;
}
