// Test runner: every `*.test.ts` under test/ runs in its own Node process
// (uvu suites, loaded through tsx), two at a time (the machine has 2 cores).
// Isolation matters: suites start real services and child processes, and one
// that hangs or crashes must not take the others with it.
// Usage: node --import tsx test/run.ts [filter-regex]   (filter on the path)
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
const perFileTimeoutMs = Number(process.env.ISCM_TEST_TIMEOUT_MS ?? 15 * 60_000);
const parallel = Number(process.env.ISCM_TEST_JOBS ?? 2);

function find(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

interface Result { file: string; passed: number; failed: number; skipped: number; code: number | null; ms: number; output: string }

function runOne(file: string): Promise<Result> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, env: { ...process.env, FORCE_COLOR: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      output += `\n[runner] ${relative(root, file)} timed out after ${perFileTimeoutMs} ms: killed\n`;
      child.kill('SIGKILL');
    }, perFileTimeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      // uvu prints "Total: N / Passed: N / Skipped: N" per process.
      const num = (label: string) => [...output.matchAll(new RegExp(`${label}:\\s+(\\d+)`, 'g'))].reduce((a, m) => a + Number(m[1]), 0);
      const total = num('Total');
      const passed = num('Passed');
      const skipped = num('Skipped');
      let failed = total - passed - skipped;
      if (code !== 0 && failed === 0) failed = 1; // a crash or a hang is a failure
      resolve({ file, passed, failed, skipped, code, ms: Date.now() - t0, output });
    });
  });
}

const files = find(join(root, 'test')).filter((f) => !filter || filter.test(relative(root, f)));
const results: Result[] = [];
let next = 0;
async function worker(): Promise<void> {
  while (next < files.length) {
    const r = await runOne(files[next++]);
    results.push(r);
    const name = relative(root, r.file);
    const status = r.failed ? 'FAIL' : 'ok  ';
    process.stdout.write(`${status} ${name}  (${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped, ${(r.ms / 1000).toFixed(1)} s)\n`);
    // Loud lines (SKIP …) always show; the whole output only on failure.
    for (const line of r.output.split('\n')) if (/^\s*(SKIP|WARN)\b/.test(line)) process.stdout.write(`     ${line.trim()}\n`);
    if (r.failed) process.stdout.write(r.output.replace(/^/gm, '     | ') + '\n');
  }
}
await Promise.all(Array.from({ length: Math.min(parallel, files.length) }, worker));
const sum = (k: 'passed' | 'failed' | 'skipped') => results.reduce((a, r) => a + r[k], 0);
if (files.length === 0) {
  console.log('no test files matched');
  process.exit(1);
}
console.log(`\n${files.length} files`);
console.log(`${sum('passed')} passed, ${sum('failed')} failed, ${sum('skipped')} skipped`);
process.exit(sum('failed') > 0 ? 1 : 0);
