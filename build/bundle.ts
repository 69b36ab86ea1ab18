// `npm run build`: esbuild bundles of the CLIs into dist/ (ARCHITECTURE §3 build/).
// Target node18 so the same file runs on MIPS gateways' Debian Node 18. Native
// addons stay external: they are shipped per target by the package step.
import { build } from 'esbuild';
import { readFileSync, statSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };
// etcd3 reads its gRPC definitions from its own package folder at run time, so
// the full node ships it beside the bundle rather than inside it.
export const NATIVE_EXTERNALS = ['pkcs11js', 'serialport', '@serialport/*', 'better-sqlite3', 'etcd3'];

const entries: Record<string, string> = {
  'iscm-edge': 'runtime/cli/iscm-edge.ts',
  'iscm-ledger': 'ledger/cli/iscm-ledger.ts',
};

mkdirSync(`${root}dist`, { recursive: true });
const report: Record<string, unknown>[] = [];
for (const [name, entry] of Object.entries(entries)) {
  const outfile = `${root}dist/${name}.mjs`;
  await build({
    entryPoints: [`${root}${entry}`],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    external: NATIVE_EXTERNALS,
    // The build date is the floor of a trusted clock (runtime/events/clock.ts).
    define: { __ISCM_VERSION__: JSON.stringify(pkg.version), __ISCM_BUILD_DATE__: JSON.stringify(new Date().toISOString().slice(0, 10)) },
    // CommonJS dependencies (tweetnacl) call require() for Node built-ins.
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'warning',
  });
  const bytes = statSync(outfile).size;
  const gz = gzipSync(readFileSync(outfile)).length;
  report.push({ bundle: `dist/${name}.mjs`, bytes, gzip_bytes: gz, goal_bytes: 1_048_576, within_goal: bytes <= 1_048_576 });
}
for (const r of report) console.log(JSON.stringify(r));
