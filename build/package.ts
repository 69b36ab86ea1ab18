// `npm run package -- --target TARGET [--out DIR]`: one installable tarball
// per gateway target, dist/iscm-edge-<version>-<target>.tar.gz:
//
//   iscm-edge-<version>-<target>/
//     bin/iscm-edge, bin/iscm-ledger     launchers (the gateway's Node ≥ 18, or $ISCM_NODE)
//     lib/iscm-edge.mjs, lib/iscm-ledger.mjs
//     lib/node_modules/…                 what the bundles import, native addons built for TARGET
//     share/systemd/iscm-edge.service    hardened unit
//     share/examples/gateway.yaml        example gateway config
//     share/mosquitto/gateway-bridge.conf
//     INSTALL.md  PACKAGE-NOTES.md  MANIFEST.json  SHA256SUMS
//
// Nothing on the gateway downloads anything: no npm, no prebuilt-binary
// fetcher runs there. The build uses this machine's node_modules (npm ci),
// Node headers (--nodedir) and the target's g++ (build/native.ts).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBundles, packageVersion, type BundleReport } from './bundle.js';
import { buildAddon, checkElf, copyForBuild, headerVersions, nodeHeadersDir, NativeBuildError } from './native.js';
import { copyPackage, MissingPackageError, readPackageJson, runtimeClosure, type ResolvedPackage } from './runtime-deps.js';
import { BuildUsageError, target, TARGET_NAMES, type Target } from './targets.js';
import { writeManifest, type AddonInfo } from './manifest.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Packages the bundles load in a way esbuild cannot see (so its metafile does
 * not list them): the ledger loads etcd3 through createRequire because etcd3
 * reads its .proto files from its own folder.
 */
const RUNTIME_REQUIRES = ['etcd3'];

/** Minimum Node on the gateway: the bundles target node18; N-API 8 is in every Node 18. */
const MIN_NODE = { major: 18, modules: 108, napi: 8 };

/** Native packages, and how each target gets its addon. Any other package with a binding.gyp stops the build. */
const NATIVE: Record<string, { node: string; drop: RegExp[] }> = {
  pkcs11js: { node: 'pkcs11.node', drop: [/^\/(build|src|includes)(\/|$)/, /^\/binding\.gyp$/] },
  '@serialport/bindings-cpp': { node: 'bindings.node', drop: [/^\/(build|prebuilds|src)(\/|$)/, /^\/binding\.gyp$/] },
};

export interface PackageOptions {
  target: Target;
  outDir: string;
  log?: (s: string) => void;
}

export interface PackageResult {
  tarball: string;
  dirName: string;
  target: string;
  bytes: number;
  files: number;
  seconds: number;
  addons: AddonInfo[];
}

function parseArgs(argv: string[]): { target: Target; outDir: string } {
  let t: string | undefined;
  let outDir = join(root, 'dist');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined || v === '') throw new BuildUsageError(`${a.split('=')[0]} needs a value`);
      return v;
    };
    if (a === '--target' || a.startsWith('--target=')) t = value();
    else if (a === '--out' || a.startsWith('--out=')) outDir = value();
    else if (a === '-h' || a === '--help') throw new BuildUsageError('help');
    else throw new BuildUsageError(`unknown argument "${a}"`);
  }
  return { target: target(t), outDir };
}

const USAGE = `usage: npm run package -- --target TARGET [--out DIR]

Builds DIR/iscm-edge-<version>-TARGET.tar.gz (DIR defaults to dist/).
TARGET: ${TARGET_NAMES.join(' | ')}
Needs: npm ci done; the target's g++ (Debian g++-<triplet>); Node headers (include/node).`;

function addonFor(p: ResolvedPackage, pkgOut: string, t: Target, scratch: string, log: (s: string) => void): AddonInfo {
  const spec = NATIVE[p.name];
  if (p.name === '@serialport/bindings-cpp' && t.serialPrebuild) {
    const src = join(p.dir, 'prebuilds', t.serialPrebuild.dir, t.serialPrebuild.file);
    if (!existsSync(src)) throw new NativeBuildError(`${src} is missing: @serialport/bindings-cpp ${p.version} no longer ships a ${t.name} prebuild`);
    const to = join(pkgOut, 'prebuilds', t.serialPrebuild.dir, t.serialPrebuild.file);
    mkdirSync(join(pkgOut, 'prebuilds', t.serialPrebuild.dir), { recursive: true });
    copyFileSync(src, to);
    checkElf(to, t);
    const napi = (readPackageJson(p.dir) as { binary?: { napi_versions?: number[] } }).binary?.napi_versions?.[0] ?? MIN_NODE.napi;
    return { package: p.name, version: p.version, file: relative(pkgOut, to), how: `prebuild shipped in the npm package (prebuilds/${t.serialPrebuild.dir})`, napi };
  }
  const built = buildAddon(copyForBuild(p.dir, join(scratch, p.name.replace('/', '+'))), t, spec.node, log);
  const dest = join(pkgOut, 'build/Release', spec.node);
  mkdirSync(join(pkgOut, 'build/Release'), { recursive: true });
  copyFileSync(built, dest);
  return { package: p.name, version: p.version, file: relative(pkgOut, dest), how: `compiled from source with ${t.triplet}-g++ (node-gyp, --nodedir)`, napi: headerVersions(nodeHeadersDir()).napiDefault };
}

function notes(t: Target, bundles: BundleReport[], addons: AddonInfo[], absent: string[]): string {
  const lines = [
    `# Package notes: iscm-edge ${packageVersion()} for ${t.name}`,
    '',
    `Gateway: Linux ${t.debianArch} (glibc), Node.js ≥ ${MIN_NODE.major} (Debian bookworm's \`nodejs\` works). Node is not in this package.`,
    '',
    '## Native addons',
    '',
    ...addons.map((a) => `- ${a.package} ${a.version}: \`lib/node_modules/${a.package}/${a.file}\`, ${a.how}; N-API ${a.napi}.`),
    '',
    '## What this package lacks',
    '',
  ];
  const lacks: string[] = [];
  if (t.nodeArch === 'mipsel' || t.nodeArch === 'arm')
    lacks.push(`Not run under emulation by the test suite (only linux-arm64 and linux-mips64el are); the addons are built and checked to be ${t.elf.bits}-bit ELF for this machine.`);
  if (!t.serialPrebuild) lacks.push('@serialport/bindings-cpp ships no prebuild for this architecture: the addon here is compiled from its sources with Debian\'s cross g++.');
  for (const a of absent) lacks.push(`\`${a}\`: an optional module a dependency tries to load (and does without); not installed, not shipped.`);
  lacks.push('No Node.js runtime, no SoftHSM/TPM module, no mosquitto: install them from the gateway\'s distribution (see INSTALL.md).');
  lines.push(...lacks.map((l) => `- ${l}`), '', '## Bundles', '', ...bundles.map((b) => `- ${b.bundle.replace('dist/', 'lib/')}: ${b.bytes} bytes (${b.gzip_bytes} gzip)`), '');
  return lines.join('\n');
}

function launcher(name: string): string {
  return readFileSync(join(root, 'build/launcher.sh'), 'utf8').replace(/@NAME@/g, name);
}

export async function buildPackage(o: PackageOptions): Promise<PackageResult> {
  const t0 = Date.now();
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const t = o.target;
  const version = packageVersion();
  const dirName = `iscm-edge-${version}-${t.name}`;
  const work = join(tmpdir(), `iscm-package-${process.pid}-${Date.now()}`);
  const stage = join(work, dirName);
  const scratch = join(work, 'scratch');
  try {
    mkdirSync(join(stage, 'bin'), { recursive: true });
    mkdirSync(join(stage, 'lib'), { recursive: true });
    mkdirSync(scratch, { recursive: true });
    const bundles = await buildBundles(join(work, 'bundles')); // not dist/: package builds may run side by side
    for (const b of bundles) copyFileSync(b.file, join(stage, 'lib', basename(b.file)));
    log(`bundles: ${bundles.map((b) => `${b.bundle} ${b.bytes} B`).join(', ')}`);

    const imported = new Set([...bundles.flatMap((b) => b.external_packages), ...RUNTIME_REQUIRES]);
    const installed = [...imported].filter((n) => existsSync(join(root, 'node_modules', n, 'package.json')));
    const absent = [...imported].filter((n) => !installed.includes(n));
    const closure = runtimeClosure(root, installed);
    const modulesOut = join(stage, 'lib/node_modules');
    const addons: AddonInfo[] = [];
    for (const p of closure) {
      const native = NATIVE[p.name];
      if (!native && existsSync(join(p.dir, 'binding.gyp')))
        throw new NativeBuildError(`${p.name} is a native package build/package.ts does not know how to build for ${t.name}: add it to NATIVE`);
      const out = copyPackage(p, modulesOut, native?.drop ?? []);
      if (native) addons.push(addonFor(p, out, t, scratch, log));
    }
    log(`runtime packages: ${closure.length} (roots: ${installed.join(", ")})`);

    for (const name of bundles.map((b) => basename(b.file, '.mjs'))) {
      writeFileSync(join(stage, 'bin', name), launcher(name));
      chmodSync(join(stage, 'bin', name), 0o755);
    }
    const share = (from: string, to: string) => {
      mkdirSync(join(stage, 'share', to, '..'), { recursive: true });
      copyFileSync(join(root, from), join(stage, 'share', to));
    };
    share('configs/systemd/iscm-edge.service', 'systemd/iscm-edge.service');
    share('configs/package/gateway.yaml', 'examples/gateway.yaml');
    share('configs/mosquitto/gateway-bridge.conf', 'mosquitto/gateway-bridge.conf');
    copyFileSync(join(root, 'configs/package/INSTALL.md'), join(stage, 'INSTALL.md'));
    writeFileSync(join(stage, 'PACKAGE-NOTES.md'), notes(t, bundles, addons, absent));
    const headers = headerVersions(nodeHeadersDir());
    const files = writeManifest(stage, {
      name: 'iscm-edge',
      version,
      target: t.name,
      node_arch: t.nodeArch,
      debian_arch: t.debianArch,
      requires: { node: `>=${MIN_NODE.major}`, node_abi_min: MIN_NODE.modules, napi_min: Math.max(...addons.map((a) => a.napi), MIN_NODE.napi), libc: 'glibc' },
      built_with: { node_headers: headers.node, build_host: `${process.platform}-${process.arch}`, compiler: `${t.triplet}-g++` },
      addons,
      packages: closure.map((p) => ({ name: p.name, version: p.version, path: `lib/node_modules/${p.rel}` })),
      optional_absent: absent,
      bundles: bundles.map((b) => ({ file: b.bundle.replace('dist/', 'lib/'), bytes: b.bytes, gzip_bytes: b.gzip_bytes })),
    });

    mkdirSync(o.outDir, { recursive: true });
    const tarball = join(o.outDir, `${dirName}.tar.gz`);
    execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-czf', tarball, '-C', work, dirName]);
    return { tarball, dirName, target: t.name, bytes: statSync(tarball).size, files, seconds: (Date.now() - t0) / 1000, addons };
  } finally {
    if (!process.env.ISCM_KEEP_TMP) rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const { target: t, outDir } = parseArgs(process.argv.slice(2));
    const r = await buildPackage({ target: t, outDir });
    console.log(JSON.stringify({ package: relative(process.cwd(), r.tarball) || r.tarball, target: r.target, bytes: r.bytes, files: r.files, build_seconds: r.seconds }));
  } catch (e) {
    if (e instanceof BuildUsageError) {
      process.stderr.write(e.message === 'help' ? `${USAGE}\n` : `npm run package: ${e.message}\n\n${USAGE}\n`);
      process.exit(e.message === 'help' ? 0 : 2);
    }
    if (e instanceof NativeBuildError || e instanceof MissingPackageError) {
      process.stderr.write(`npm run package: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
}
