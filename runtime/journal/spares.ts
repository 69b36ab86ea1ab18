// The next segment, prepared ahead of time (docs/JOURNAL.md "Preallocation"):
// at most one spare exists or is being made, a rollover takes it, and none is
// made while a rollover holds one — a new spare renamed onto `spare` then
// would be what the rollover renames into place, while the header went to the
// file it had opened.
//
// Preparing the spare is also how a full disk shows up a segment ahead: a
// failure with ENOSPC turns disk-full on (records then stop short of the
// active segment's end), a later success turns it off.
import { createSpare, reopenSpare, type Spare } from './segment-files.js';
import type { JournalError } from './errors.js';
import type { Preallocator } from './preallocate.js';

export interface SpareHost {
  readonly dir: string;
  readonly segmentBytes: number;
  /** A spare may be made now (the journal is open, not failed, and the quota has room for another segment). */
  mayPrepare(): boolean;
  /** Bytes used in the active segment, to wait an eighth of it after a rollover. */
  activeEnd(): number;
  /** The filesystem is (or is no longer) full; `message` says why when it is. */
  diskFull(full: boolean, message?: string): void;
}

/** After a failed attempt, the next one waits this long (unless eager): a full disk is not retried on every group commit. */
const RETRY_MS = 1000;

export class Spares {
  private spare: Promise<Spare> | undefined;
  private rolling = false;
  private failedAt = -Infinity;

  constructor(
    private readonly host: SpareHost,
    private readonly prealloc: Preallocator,
  ) {}

  /** Takes over the full-size spare an earlier run left. */
  adopt(): void {
    const p = reopenSpare(this.host.dir);
    this.track(p);
  }

  /**
   * Starts making the next segment unless one exists: at open and after
   * compaction at once (`eager`), otherwise once the active segment is an
   * eighth full (a rollover's own fsyncs are burst enough for the appends
   * behind it), and again after a failure.
   */
  prepare(eager: boolean): void {
    if (this.spare || this.rolling || !this.host.mayPrepare()) return;
    if (!eager && (this.host.activeEnd() < this.host.segmentBytes / 8 || performance.now() - this.failedAt < RETRY_MS)) return;
    this.track(this.make());
  }

  /** Resolves when the spare being made is ready (or failed). */
  async ready(): Promise<void> {
    await this.spare?.catch(() => {});
  }

  /** For a rollover: the spare (making one if none is); no other is made until `done`. */
  take(): Promise<Spare> {
    this.rolling = true;
    const p = this.spare ?? this.make();
    this.spare = undefined;
    return p;
  }

  /** The rollover that took the spare is over. */
  done(): void {
    this.rolling = false;
  }

  async close(): Promise<void> {
    const s = await this.spare?.catch(() => undefined);
    this.spare = undefined;
    await s?.fh.close().catch(() => {});
  }

  private track(p: Promise<Spare>): void {
    this.spare = p;
    p.catch(() => {
      if (this.spare === p) this.spare = undefined;
    });
  }

  private async make(): Promise<Spare> {
    let s: Spare;
    try {
      s = await createSpare(this.host.dir, this.host.segmentBytes, this.prealloc);
    } catch (e) {
      this.failedAt = performance.now();
      const err = e as JournalError;
      if (err.kind === 'DISK_FULL') this.host.diskFull(true, `the next journal segment (${this.host.segmentBytes} bytes) cannot be preallocated; appends continue until the current segment is full: ${err.message}`);
      throw err;
    }
    this.host.diskFull(false);
    return s;
  }
}
