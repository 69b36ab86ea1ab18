// A small Prometheus registry (text exposition format 0.0.4): counters,
// gauges and histograms with labels, plus collectors that read gauges from
// components (the journal's metrics(), the link's counters) at scrape time.

type Labels = Record<string, string>;
const key = (l: Labels | undefined) => (l ? Object.keys(l).sort().map((k) => `${k}="${String(l[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',') : '');

interface Metric {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

export class Counter implements Metric {
  readonly type = 'counter' as const;
  private values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels?: Labels, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.values.get(key(labels)) ?? 0;
  }
  render(): string[] {
    if (this.values.size === 0) return [`${this.name} 0`];
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${v}`);
  }
}

export class Gauge implements Metric {
  readonly type = 'gauge' as const;
  private values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  set(v: number, labels?: Labels): void {
    this.values.set(key(labels), v);
  }
  get(labels?: Labels): number {
    return this.values.get(key(labels)) ?? 0;
  }
  render(): string[] {
    if (this.values.size === 0) return [`${this.name} 0`];
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${v}`);
  }
}

export class Histogram implements Metric {
  readonly type = 'histogram' as const;
  private counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]) {
    this.counts = new Array(buckets.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.counts[i]++;
  }
  /** Approximate quantile from the buckets (for /status). */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const want = q * this.count;
    for (let i = 0; i < this.buckets.length; i++) if (this.counts[i] >= want) return this.buckets[i];
    return Infinity;
  }
  render(): string[] {
    const out = this.buckets.map((b, i) => `${this.name}_bucket{le="${b}"} ${this.counts[i]}`);
    out.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return out;
  }
}

export class Registry {
  private metrics = new Map<string, Metric>();
  private collectors: (() => void)[] = [];
  counter(name: string, help: string): Counter {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.add(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets?: number[]): Histogram {
    return this.add(new Histogram(name, help, buckets));
  }
  /** `fn` runs before each scrape to refresh gauges from a component. */
  collect(fn: () => void): void {
    this.collectors.push(fn);
  }
  private add<T extends Metric>(m: T): T {
    const had = this.metrics.get(m.name);
    if (had) {
      if (had.type !== m.type) throw new Error(`metric ${m.name} registered twice with different types`);
      return had as T;
    }
    this.metrics.set(m.name, m);
    return m;
  }
  render(): string {
    for (const c of this.collectors) {
      try {
        c();
      } catch {
        /* a failing collector must not break the scrape */
      }
    }
    const lines: string[] = [];
    for (const m of this.metrics.values()) lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`, ...m.render());
    return lines.join('\n') + '\n';
  }
}
