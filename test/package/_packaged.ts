// A package built by the real package step (build/package.ts, what
// `npm run package -- --target …` runs) into a temp dir and unpacked there,
// outside the repo, so nothing resolves from the project's node_modules.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildPackage, type PackageResult } from '../../build/package.js';
import { target, type TargetName } from '../../build/targets.js';
import { tempDir } from '../helpers/proc.js';

export interface Packaged {
  /** The unpacked package folder (iscm-edge-<version>-<target>/). */
  dir: string;
  result: PackageResult;
  /** Seconds the package step took. */
  buildSeconds: number;
}

export async function buildAndUnpack(name: TargetName): Promise<Packaged> {
  const work = tempDir(`iscm-pkg-${name}-`);
  const result = await buildPackage({ target: target(name), outDir: join(work, 'out'), log: () => {} });
  execFileSync('tar', ['-xzf', result.tarball, '-C', work]);
  return { dir: join(work, result.dirName), result, buildSeconds: result.seconds };
}
