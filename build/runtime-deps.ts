// The npm packages a bundle needs beside it at run time, copied from the
// project's node_modules into a package's lib/node_modules in the same
// layout, so Node's resolution from lib/*.mjs finds them exactly as it does
// in the repo. The closure follows dependencies and installed
// optionalDependencies, resolving each the way Node does (nearest
// node_modules upwards). Type declarations and source maps are left out;
// native packages also leave their sources and host build (build/package.ts).
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';

export interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

export interface ResolvedPackage {
  name: string;
  version: string;
  /** Absolute folder in the source node_modules. */
  dir: string;
  /** Path relative to the source root's node_modules (e.g. `@serialport/bindings-cpp/node_modules/debug`). */
  rel: string;
}

export function readPackageJson(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** Resolves `name` from package folder `fromDir` as Node does: nearest `node_modules/name` upwards, up to the project root. */
function resolveFrom(name: string, fromDir: string, projectRoot: string): string | null {
  for (let d = fromDir; ; d = dirname(d)) {
    if (basename(d) !== 'node_modules') {
      const candidate = join(d, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) return candidate;
    }
    if (d === projectRoot || d === dirname(d)) return null;
  }
}

/** Declared dependencies that nothing loads at run time: type declarations; node-addon-api is C++ headers for compiling. */
const BUILD_ONLY = /^(@types\/.*|node-addon-api)$/;

export class MissingPackageError extends Error {
  override name = 'MissingPackageError';
}

/**
 * Every package `roots` need, from the node_modules of `projectRoot`.
 * A missing dependency is an error (run `npm ci` first); a missing optional
 * one is skipped.
 */
export function runtimeClosure(projectRoot: string, roots: string[]): ResolvedPackage[] {
  const modules = join(projectRoot, 'node_modules');
  const seen = new Map<string, ResolvedPackage>();
  const walk = (name: string, fromDir: string, optional: boolean, via: string): void => {
    if (BUILD_ONLY.test(name)) return;
    const dir = resolveFrom(name, fromDir, projectRoot);
    if (!dir) {
      if (optional) return;
      throw new MissingPackageError(`${name} (needed by ${via}) is not installed under ${modules}: run \`npm ci\` first`);
    }
    if (seen.has(dir)) return;
    const pj = readPackageJson(dir);
    seen.set(dir, { name: pj.name, version: pj.version, dir, rel: relative(modules, dir) });
    for (const d of Object.keys(pj.dependencies ?? {})) walk(d, dir, false, pj.name);
    for (const d of Object.keys(pj.optionalDependencies ?? {})) if (!(pj.dependencies ?? {})[d]) walk(d, dir, true, pj.name);
  };
  for (const r of roots) walk(r, projectRoot, false, 'the bundles');
  return [...seen.values()].sort((a, b) => a.rel.localeCompare(b.rel));
}

/** Paths inside any package that a gateway never needs (native packages drop more: see `extraDrop`). */
const DROP = [
  /\/node_modules(\/|$)/, // nested packages are copied as packages of their own
  /\/\.github(\/|$)/,
  /\.(d\.ts|d\.mts|d\.cts|map)$/,
];

/** Copies one package into `modulesOut` (a node_modules folder), pruned. */
export function copyPackage(p: ResolvedPackage, modulesOut: string, extraDrop: RegExp[] = []): string {
  const to = join(modulesOut, p.rel);
  cpSync(p.dir, to, {
    recursive: true,
    filter: (src) => {
      const inner = src.slice(p.dir.length);
      return inner === '' || ![...DROP, ...extraDrop].some((re) => re.test(inner));
    },
  });
  return to;
}
