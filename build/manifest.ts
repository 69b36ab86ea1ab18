// MANIFEST.json and SHA256SUMS of a package: what it is for (target, Node
// and N-API it needs), what it holds (bundles, addons and how each was made,
// runtime packages) and the sha256 of every file, so an operator can check an
// unpacked tree with `sha256sum -c SHA256SUMS` before switching to it.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export interface AddonInfo {
  package: string;
  version: string;
  /** Path inside the package's folder. */
  file: string;
  how: string;
  /** N-API version the addon needs. */
  napi: number;
}

export const MANIFEST_FILE = 'MANIFEST.json';
export const SUMS_FILE = 'SHA256SUMS';

/** Every file below `dir` (absolute paths, sorted per folder). */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Writes MANIFEST.json (with `fields` and every file's sha256) and SHA256SUMS into `dir`; returns the number of files. */
export function writeManifest(dir: string, fields: Record<string, unknown>): number {
  const files: Record<string, string> = {};
  for (const p of listFiles(dir)) files[relative(dir, p)] = sha256File(p);
  writeFileSync(join(dir, MANIFEST_FILE), `${JSON.stringify({ ...fields, built_at: new Date().toISOString(), files }, null, 2)}\n`);
  writeFileSync(join(dir, SUMS_FILE), Object.entries(files).map(([f, h]) => `${h}  ${f}\n`).join(''));
  return Object.keys(files).length + 2;
}
