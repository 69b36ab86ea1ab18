// Access to ../shared/vectors (never copied into the repo). When the folder is
// absent, suites say so loudly on stderr and register no vector tests.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const VECTORS = fileURLToPath(new URL('../../../shared/vectors/', import.meta.url));

/** The vector folder `name`, or null after printing a loud SKIP line. */
export function vectorDir(name: string): string | null {
  const dir = join(VECTORS, name);
  if (existsSync(dir)) return dir;
  process.stderr.write(`SKIP ${name} vectors: ${dir} not found (these tests need ../shared/vectors beside the repo)\n`);
  return null;
}

export function readBytes(...parts: string[]): Uint8Array {
  return new Uint8Array(readFileSync(join(...parts)));
}

export function readJson<T = any>(...parts: string[]): T {
  return JSON.parse(readFileSync(join(...parts), 'utf8')) as T;
}

export function listFiles(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p, suffix));
    else if (name.endsWith(suffix)) out.push(p);
  }
  return out;
}
