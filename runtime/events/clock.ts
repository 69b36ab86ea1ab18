// Clock sanity. Gateways without an RTC boot in 1970; an event must never be
// stamped with an impossible time. The gateway's own clock is trusted when
//  - the OS says it is NTP-synchronised, or
//  - it reads later than the build date of this release ("not before"), or
//  - a TIME source set it: a GPS fix or an MCU with a trusted clock; then the
//    gateway keeps wall = monotonic + offset itself, without touching the OS.
// Until then readings without a trustworthy time of their own are held with
// their monotonic receive time and stamped once a time is known.
//
// The clock is an interface so tests, `events preview` and replays control it.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export interface Clock {
  /** Wall-clock ms since the epoch, as the OS says (1970 on an RTC-less board until NTP). */
  now(): number;
  /** Monotonic ms; only differences within one OS boot mean anything. */
  mono(): number;
  /** True when the OS reports NTP synchronisation; false when it does not or nobody knows. */
  synced(): boolean;
  /** The OS boot this monotonic clock belongs to ('' when unknown). */
  bootId(): string;
}

declare const __ISCM_BUILD_DATE__: string | undefined;

/** The floor below which no time is plausible: the build date (injected by the bundle), else this release's date. */
export const RELEASE_FLOOR_MS: number = (() => {
  if (typeof __ISCM_BUILD_DATE__ === 'string') {
    const t = Date.parse(__ISCM_BUILD_DATE__);
    if (Number.isFinite(t)) return t;
  }
  return Date.UTC(2026, 10, 1); // 2026-11-01: this code was written in November 2026
})();

export type NtpCheck = 'auto' | 'file' | 'timedatectl' | 'off';

/** The system clock: Date.now(), the kernel's monotonic clock, and NTP status from systemd. */
export function systemClock(ntpCheck: NtpCheck = 'auto', recheckMs = 30_000): Clock {
  let cached = false;
  let checkedAt = -Infinity;
  let pending = false;
  let haveTimedatectl = ntpCheck === 'timedatectl' || ntpCheck === 'auto';
  const mono = () => Number(process.hrtime.bigint() / 1_000_000n);
  let boot: string | undefined;
  return {
    now: () => Date.now(),
    mono,
    synced() {
      if (ntpCheck === 'off') return false;
      const t = mono();
      if (t - checkedAt < recheckMs) return cached;
      checkedAt = t;
      // systemd-timesyncd touches this file once synchronised (cheap, no process).
      if ((ntpCheck === 'auto' || ntpCheck === 'file') && existsSync('/run/systemd/timesync/synchronized')) return (cached = true);
      if (haveTimedatectl && !pending) {
        // Asynchronous: the answer is used from the next call on; never blocks the pipeline.
        pending = true;
        execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 2000 }, (err, stdout) => {
          pending = false;
          if (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') haveTimedatectl = false;
            cached = false;
          } else cached = stdout.trim() === 'yes';
        });
      }
      return cached;
    },
    bootId() {
      if (boot === undefined) {
        try {
          boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
        } catch {
          boot = '';
        }
      }
      return boot;
    },
  };
}

/** A clock the caller moves: tests, `events preview`, replays. Starts in 1970, unsynchronised, unless told otherwise. */
export class ManualClock implements Clock {
  wall: number;
  monotonic: number;
  ntp: boolean;
  boot: string;
  constructor(o: { now?: number; mono?: number; synced?: boolean; bootId?: string } = {}) {
    this.wall = o.now ?? 0;
    this.monotonic = o.mono ?? 0;
    this.ntp = o.synced ?? false;
    this.boot = o.bootId ?? 'manual';
  }
  now(): number {
    return this.wall;
  }
  mono(): number {
    return this.monotonic;
  }
  synced(): boolean {
    return this.ntp;
  }
  bootId(): string {
    return this.boot;
  }
  /** Time passes: both clocks advance. */
  advance(ms: number): void {
    this.wall += ms;
    this.monotonic += ms;
  }
  /** The wall clock is set (NTP step, operator); the monotonic clock does not move. */
  setWall(ms: number, synced = this.ntp): void {
    this.wall = ms;
    this.ntp = synced;
  }
}

/** Why the gateway trusts its clock right now. */
export type ClockTrust = 'ntp' | 'rtc' | 'gps' | 'mcu';

/** The gateway's idea of the time: the OS clock when trustworthy, else an offset learnt from a TIME source. */
export class TimeKeeper {
  readonly clock: Clock;
  readonly notBefore: number;
  readonly maxFuture: number;
  /** wall - mono, learnt from a TIME source, and which. */
  private offset: { ms: number; via: 'gps' | 'mcu'; boot: string } | undefined;

  constructor(clock: Clock, o: { notBefore?: number; maxFutureMs?: number } = {}) {
    this.clock = clock;
    this.notBefore = o.notBefore ?? RELEASE_FLOOR_MS;
    this.maxFuture = o.maxFutureMs ?? 600_000;
  }

  /** The trusted wall time now and why; null while there is none. */
  trusted(): { ms: number; via: ClockTrust } | null {
    const now = this.clock.now();
    if (this.clock.synced()) return { ms: now, via: 'ntp' };
    if (now >= this.notBefore) return { ms: now, via: 'rtc' };
    if (this.offset && this.offset.boot === this.clock.bootId()) return { ms: this.clock.mono() + this.offset.ms, via: this.offset.via };
    return null;
  }

  /** Whether a time could be real: not before the floor, and not ahead of the trusted clock by more than maxFuture. */
  plausible(ms: number): boolean {
    if (!Number.isFinite(ms) || ms < this.notBefore) return false;
    const t = this.trusted();
    return !t || ms <= t.ms + this.maxFuture;
  }

  /**
   * A TIME source says the wall time was `ms` at monotonic `mono`. Adopted
   * when the gateway has no better trust (NTP or a plausible OS clock) and
   * the time is plausible. Returns true when adopted.
   */
  offerTime(ms: number, via: 'gps' | 'mcu', mono = this.clock.mono()): boolean {
    if (this.clock.synced() || this.clock.now() >= this.notBefore) return false;
    if (!Number.isFinite(ms) || ms < this.notBefore) return false;
    // GPS outranks an MCU clock; a newer offer from the same rank refreshes drift.
    if (this.offset && this.offset.via === 'gps' && via === 'mcu' && this.offset.boot === this.clock.bootId()) return false;
    this.offset = { ms: ms - mono, via, boot: this.clock.bootId() };
    return true;
  }

  /** The learnt offset (for snapshots). */
  state(): { ms: number; via: 'gps' | 'mcu'; boot: string } | undefined {
    return this.offset && { ...this.offset };
  }

  restore(s: { ms: number; via: 'gps' | 'mcu'; boot: string } | undefined): void {
    this.offset = s && { ...s };
  }
}
