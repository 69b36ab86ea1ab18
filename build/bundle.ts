// `npm run build`: esbuild bundles of the CLIs into dist/ (ARCHITECTURE §3 build/).
// Target node18 so the same file runs on MIPS gateways' Debian Node 18. Native
// addons stay external: they are shipped per target by the package step
// (build/package.ts), which ships exactly the packages the bundles import.
// Prints one JSON line per bundle: bytes, gzip bytes, the 1 MiB goal, and the
// external packages it imports.
import { build, type Metafile } from 'esbuild';
import { readFileSync, statSync, mkdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_GOAL_BYTES = 1_048_576;
// etcd3 reads its gRPC definitions from its own package folder at run time, so
// the full node ships it beside the bundle rather than inside it. mqtt.js and
// its dependencies are ~440 KB minified: shipped beside the bundle too (the
// 1 MiB goal), and imported lazily by sync and the ledger, so a command that
// does not talk MQTT (--version, verify, keys) never loads it.
export const NATIVE_EXTERNALS = ['pkcs11js', 'serialport', '@serialport/*', 'better-sqlite3', 'etcd3', 'mqtt'];

export const ENTRIES: Record<string, string> = {
  'iscm-edge': 'runtime/cli/iscm-edge.ts',
  'iscm-ledger': 'ledger/cli/iscm-ledger.ts',
};

export interface BundleReport {
  bundle: string;
  file: string;
  bytes: number;
  gzip_bytes: number;
  goal_bytes: number;
  within_goal: boolean;
  /** npm packages the bundle imports at run time (they must sit in a node_modules beside it). */
  external_packages: string[];
  /** Top-level repo folders its sources come from (what a Docker build must copy). */
  source_dirs: string[];
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string }).version;
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
function packageOf(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function externalPackages(meta: Metafile): string[] {
  const builtins = new Set(builtinModules);
  const out = new Set<string>();
  for (const o of Object.values(meta.outputs))
    for (const i of o.imports)
      if (i.external && !i.path.startsWith('node:') && !builtins.has(i.path) && !builtins.has(packageOf(i.path))) out.add(packageOf(i.path));
  return [...out].sort();
}

/** Builds every bundle into `outDir` (default dist/). */
export async function buildBundles(outDir = `${root}dist`): Promise<BundleReport[]> {
  mkdirSync(outDir, { recursive: true });
  const version = packageVersion();
  const report: BundleReport[] = [];
  for (const [name, entry] of Object.entries(ENTRIES)) {
    const outfile = `${outDir}/${name}.mjs`;
    const r = await build({
      entryPoints: [`${root}${entry}`],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node18',
      minify: true,
      sourcemap: false,
      legalComments: 'none',
      metafile: true,
      absWorkingDir: root,
      external: NATIVE_EXTERNALS,
      // The build date is the floor of a trusted clock (runtime/events/clock.ts).
      define: { __ISCM_VERSION__: JSON.stringify(version), __ISCM_BUILD_DATE__: JSON.stringify(new Date().toISOString().slice(0, 10)) },
      // CommonJS dependencies (tweetnacl) call require() for Node built-ins.
      banner: { js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
      logLevel: 'warning',
    });
    const bytes = statSync(outfile).size;
    const gz = gzipSync(readFileSync(outfile)).length;
    report.push({
      bundle: `dist/${name}.mjs`,
      file: outfile,
      bytes,
      gzip_bytes: gz,
      goal_bytes: BUNDLE_GOAL_BYTES,
      within_goal: bytes <= BUNDLE_GOAL_BYTES,
      external_packages: externalPackages(r.metafile),
      source_dirs: [...new Set(Object.keys(r.metafile.inputs).filter((i) => !i.startsWith('..') && !i.split('/').includes('node_modules')).map((i) => i.split('/')[0]))].sort(),
    });
  }
  return report;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const { file: _file, ...r } of await buildBundles()) console.log(JSON.stringify(r));
}
