// Native addons for a target: compiled from the package sources in
// node_modules with node-gyp and the target's g++ (`<triplet>-g++`: Debian's
// cross compiler on an amd64 host, the native one on a host of the target's
// architecture). Both addons use N-API, so the headers of any local Node
// (≥ 18) build them for every Node ≥ 18 on the gateway; node-gyp gets
// --nodedir so it never downloads headers. Every .node file shipped is
// checked to be an ELF of the target's machine and class.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Target } from './targets.js';

export class NativeBuildError extends Error {
  override name = 'NativeBuildError';
}

const root = fileURLToPath(new URL('..', import.meta.url));

/** True when `cmd` is in a PATH folder (or /usr/sbin, /sbin). */
export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']).some((d) => d && existsSync(join(d, cmd)));
}

/** The node-gyp that ships inside npm (no download, no devDependency). */
export function nodeGypScript(): string {
  const candidates = [process.env.ISCM_NODE_GYP];
  try {
    const npmRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
    candidates.push(join(npmRoot, 'npm/node_modules/node-gyp/bin/node-gyp.js'));
  } catch {
    /* npm not on PATH */
  }
  candidates.push(join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new NativeBuildError(`node-gyp not found (looked for npm's bundled copy; set ISCM_NODE_GYP=/path/to/node-gyp.js)`);
  return found;
}

/** A directory with include/node/node_api.h (node-gyp --nodedir). */
export function nodeHeadersDir(): string {
  const candidates = [process.env.ISCM_NODEDIR, join(dirname(process.execPath), '..'), '/usr', '/usr/local'];
  const found = candidates.find((d) => d && existsSync(join(d, 'include/node/node_api.h')) && existsSync(join(d, 'include/node/common.gypi')));
  if (!found) throw new NativeBuildError(`Node headers not found (include/node/node_api.h under ${candidates.filter(Boolean).join(', ')}); install the nodejs headers (Debian: libnode-dev) or set ISCM_NODEDIR`);
  return found;
}

/** The Node version of the headers in `nodedir` and the N-API version an addon built against them asks for by default. */
export function headerVersions(nodedir: string): { node: string; napiDefault: number } {
  const v = readFileSync(join(nodedir, 'include/node/node_version.h'), 'utf8');
  const num = (k: string) => new RegExp(`#define\\s+NODE_${k}_VERSION\\s+(\\d+)`).exec(v)?.[1] ?? '?';
  const api = readFileSync(join(nodedir, 'include/node/js_native_api.h'), 'utf8');
  // js_native_api.h: "#ifndef NAPI_VERSION … #define NAPI_VERSION 8" is what an addon gets unless it sets its own.
  const def = /#ifndef NAPI_VERSION[\s\S]*?#define NAPI_VERSION (\d+)/.exec(api.replace(/#define NAPI_VERSION NAPI_VERSION_EXPERIMENTAL/, ''))?.[1];
  return { node: `${num('MAJOR')}.${num('MINOR')}.${num('PATCH')}`, napiDefault: Number(def ?? 8) };
}

/** The compiler commands for a target; a NativeBuildError naming the Debian package when absent. */
export function toolchain(t: Target): { cc: string; cxx: string; strip: string } {
  const tc = { cc: `${t.triplet}-gcc`, cxx: `${t.triplet}-g++`, strip: `${t.triplet}-strip` };
  for (const c of Object.values(tc))
    if (!onPath(c))
      throw new NativeBuildError(`${c} not found: install Debian's ${t.crossPackage} (or g++ on a ${t.debianArch} build host) to build ${t.name} addons`);
  return tc;
}

/**
 * Builds the addon in `srcDir` (a copy of its npm package) for `t`:
 * `node-gyp rebuild` with the target's compiler; returns the stripped
 * build/Release/<name>.node. `NODE_PATH` lets binding.gyp's
 * `require('node-addon-api')` find the project's copy.
 */
export function buildAddon(srcDir: string, t: Target, nodeName: string, log: (s: string) => void): string {
  const tc = toolchain(t);
  rmSync(join(srcDir, 'build'), { recursive: true, force: true });
  const env = {
    ...process.env,
    CC: tc.cc,
    CXX: tc.cxx,
    LINK: tc.cxx,
    AR: `${t.triplet}-ar`,
    NODE_PATH: join(root, 'node_modules'),
    // Never fetch headers or tools.
    npm_config_nodedir: nodeHeadersDir(),
  };
  const args = [nodeGypScript(), 'rebuild', `--arch=${t.gypArch}`, `--nodedir=${nodeHeadersDir()}`, '--jobs=2'];
  const r = spawnSync(process.execPath, args, { cwd: srcDir, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new NativeBuildError(`node-gyp failed building ${srcDir} for ${t.name} (exit ${r.status}):\n${(r.stdout + r.stderr).split('\n').slice(-25).join('\n')}`);
  }
  const out = join(srcDir, 'build/Release', nodeName);
  if (!existsSync(out)) throw new NativeBuildError(`node-gyp succeeded but ${out} is missing`);
  execFileSync(tc.strip, ['--strip-unneeded', out]);
  checkElf(out, t);
  log(`built ${nodeName} for ${t.name} with ${tc.cxx}`);
  return out;
}

/** Throws unless `file` is an ELF shared object for the target's machine and class. */
export function checkElf(file: string, t: Target): void {
  const fd = openSync(file, 'r');
  const h = Buffer.alloc(20);
  try {
    readSync(fd, h, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  const isElf = h.readUInt32BE(0) === 0x7f454c46;
  const bits = h[4] === 2 ? 64 : 32;
  const machine = h[5] === 1 ? h.readUInt16LE(18) : h.readUInt16BE(18);
  if (!isElf || bits !== t.elf.bits || machine !== t.elf.machine)
    throw new NativeBuildError(`${file} is not a ${t.elf.bits}-bit ELF for ${t.name} (machine ${machine}, ${bits}-bit; want machine ${t.elf.machine})`);
}

/** Copies a package folder (without its nested node_modules and build output) to compile it apart. */
export function copyForBuild(pkgDir: string, to: string): string {
  cpSync(pkgDir, to, { recursive: true, filter: (s) => !/\/(node_modules|build|prebuilds)(\/|$)/.test(s.slice(pkgDir.length)) });
  return to;
}
