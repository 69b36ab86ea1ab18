// Shared benchmark helpers: timing loops and JSON-line output.

/** Runs fn repeatedly for about `ms` milliseconds (after a warm-up) and returns ops/s. */
export function opsPerSec(fn: (i: number) => unknown, ms = 1000, batch = 100): number {
  const warmEnd = performance.now() + Math.min(200, ms / 4);
  let i = 0;
  while (performance.now() < warmEnd) for (let j = 0; j < batch; j++) fn(i++);
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let j = 0; j < batch; j++) fn(n++);
    t = performance.now();
  }
  return (n * 1000) / (t - t0);
}

/**
 * Like opsPerSec, and also per CPU-second of this process (user + system):
 * the rate one core gives, which stays meaningful when other work shares the
 * machine (wall-clock rates on a loaded 2-core box swing 2-3x).
 */
export function opsPerSecAndCpu(fn: (i: number) => unknown, ms = 1000, batch = 100): { per_s: number; per_cpu_s: number } {
  const warmEnd = performance.now() + Math.min(200, ms / 4);
  let i = 0;
  while (performance.now() < warmEnd) for (let j = 0; j < batch; j++) fn(i++);
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let j = 0; j < batch; j++) fn(n++);
    t = performance.now();
  }
  const c = process.cpuUsage(c0);
  return { per_s: (n * 1000) / (t - t0), per_cpu_s: n / ((c.user + c.system) / 1e6) };
}

/** The same for async functions, `concurrency` calls in flight. */
export async function opsPerSecAsync(fn: (i: number) => Promise<unknown>, ms = 1000, concurrency = 1): Promise<number> {
  let n = 0;
  const warmEnd = performance.now() + Math.min(200, ms / 4);
  while (performance.now() < warmEnd) await fn(n++);
  n = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await fn(n++);
    }),
  );
  return (n * 1000) / (performance.now() - t0);
}

const rows: Record<string, unknown>[] = [];

/** Prints one JSON line (stdout) and remembers it for the closing table (stderr). */
export function emit(row: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(row)) if (typeof v === 'number' && !Number.isInteger(v)) row[k] = Number(v.toPrecision(4));
  rows.push(row);
  process.stdout.write(JSON.stringify(row) + '\n');
}

export function table(): void {
  for (const r of rows) process.stderr.write(Object.entries(r).map(([k, v]) => `${k}=${v}`).join('  ') + '\n');
}
