// Duplicate suppression for the MCU link: per firmware boot_id, the highest
// data seq that is durable (or refused for good). Data frames arrive in seq
// order per boot (the gateway NACKs gaps), so one number per boot is the
// whole state: seq ≤ durable(boot) is a duplicate.
//
// The table is persisted with the atomic file helper so duplicates are also
// dropped across gateway restarts. Persisting is coalesced (it is not on the
// ACK path); the window between a durable append and the next persist is
// closed by the consumer seeding the table from its own durable data on start
// (`seed`): the capture tool scans its file after the recorded offset, the
// light node reads the source {boot_id, seq} of its journal's last records.
import { readFileIfExists, writeFileAtomic } from '../drivers/fs/atomic.js';
import { ValidationError } from '../protocol/errors.js';

export interface DedupeSnapshot {
  /** [boot_id, durable seq, last seen ms] */
  boots: [number, number, number][];
  /** Consumer-defined extra state saved in the same atomic write (e.g. a file offset). */
  aux?: Record<string, unknown>;
}

export interface DedupeStore {
  load(): Promise<DedupeSnapshot | undefined>;
  save(s: DedupeSnapshot): Promise<void>;
}

export class MemoryDedupeStore implements DedupeStore {
  snapshot: DedupeSnapshot | undefined;
  async load() {
    return this.snapshot && structuredClone(this.snapshot);
  }
  async save(s: DedupeSnapshot) {
    this.snapshot = structuredClone(s);
  }
}

/** JSON file replaced atomically (tmp, fsync, rename, fsync dir). */
export class FileDedupeStore implements DedupeStore {
  constructor(readonly path: string) {}
  async load(): Promise<DedupeSnapshot | undefined> {
    const bytes = await readFileIfExists(this.path);
    if (!bytes) return undefined;
    let o: unknown;
    try {
      o = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      throw new ValidationError(this.path, `link state file is not JSON: ${(e as Error).message}`);
    }
    const j = o as { v?: unknown; boots?: unknown; aux?: unknown };
    if (!j || j.v !== 1 || !Array.isArray(j.boots)) throw new ValidationError(this.path, 'not a link state file (expected {"v":1,"boots":[…]})');
    const boots: [number, number, number][] = [];
    for (const b of j.boots) {
      if (!Array.isArray(b) || b.length !== 3 || !b.every((x) => Number.isSafeInteger(x) && x >= 0)) throw new ValidationError(this.path, 'bad boots entry');
      boots.push([b[0], b[1], b[2]]);
    }
    const out: DedupeSnapshot = { boots };
    if (j.aux && typeof j.aux === 'object' && !Array.isArray(j.aux)) out.aux = j.aux as Record<string, unknown>;
    return out;
  }
  async save(s: DedupeSnapshot): Promise<void> {
    await writeFileAtomic(this.path, JSON.stringify({ v: 1, boots: s.boots, ...(s.aux ? { aux: s.aux } : {}) }) + '\n');
  }
}

/** The in-memory table; keeps the `maxBoots` most recently seen boots. */
export class DedupeTable {
  private readonly m = new Map<number, { seq: number; seen: number }>();
  constructor(readonly maxBoots = 256) {}

  get(bootId: number): number | undefined {
    return this.m.get(bootId)?.seq;
  }
  has(bootId: number): boolean {
    return this.m.has(bootId);
  }
  /** Raises the durable seq of a boot (never lowers it). Returns true when it changed. */
  advance(bootId: number, seq: number, now = Date.now()): boolean {
    const e = this.m.get(bootId);
    if (e && e.seq >= seq) {
      e.seen = now;
      return false;
    }
    this.m.delete(bootId);
    this.m.set(bootId, { seq: Math.max(seq, e?.seq ?? 0), seen: now });
    if (this.m.size > this.maxBoots) {
      // Evict the least recently seen.
      let oldest: number | undefined;
      let t = Infinity;
      for (const [k, v] of this.m) if (v.seen < t) ((t = v.seen), (oldest = k));
      if (oldest !== undefined && oldest !== bootId) this.m.delete(oldest);
    }
    return true;
  }
  isDuplicate(bootId: number, seq: number): boolean {
    const e = this.m.get(bootId);
    return e !== undefined && seq <= e.seq;
  }
  snapshot(aux?: Record<string, unknown>): DedupeSnapshot {
    const boots: [number, number, number][] = [...this.m].map(([b, v]) => [b, v.seq, v.seen]);
    return aux ? { boots, aux } : { boots };
  }
  restore(s: DedupeSnapshot): void {
    for (const [b, seq, seen] of s.boots) this.advance(b, seq, seen);
  }
  get size(): number {
    return this.m.size;
  }
}
