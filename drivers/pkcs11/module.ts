// Loading PKCS#11 modules through pkcs11js, once per process and path.
//
// - pkcs11js (a native addon) is imported dynamically on first use, so the
//   bundle and every command that does not touch a token never load it.
// - A module is dlopen'ed and C_Initialize'd once per process (a second
//   C_Initialize fails with CKR_CRYPTOKI_ALREADY_INITIALIZED); signers and CLI
//   operations share it through a reference count, the last release
//   finalizes and unloads it.
// - C_Initialize asks for CKF_OS_LOCKING_OK, because signing runs on libuv
//   worker threads (C_SignAsync) while other calls run on the main thread.
//   A module that cannot lock (CKR_CANT_LOCK) is initialised without it and
//   marked `threadSafe: false`: its users then make every call on the main
//   thread (blocking mode), so calls never overlap.
// - Re-initialisation (C_Finalize + C_Initialize) is how a removed token is
//   found again: SoftHSM, for one, scans its token directory only in
//   C_Initialize, and some USB token modules need it after a replug. It
//   invalidates every session of the module in this process, so the handle
//   counts a `generation`; users whose sessions belong to an older generation
//   re-open without re-initialising again. Re-init waits until no
//   asynchronous call is in flight (finalizing under a worker thread would be
//   use-after-free in the module) and holds new ones back meanwhile.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { PKCS11 } from 'pkcs11js';
import { CKF_OS_LOCKING_OK, CKR } from './constants.js';
import { ckrOf, Pkcs11DriverError } from './errors.js';

/** The part of pkcs11js's PKCS11 class the driver uses (tests may wrap it to inject faults). */
export type Pkcs11Api = PKCS11;

interface Pkcs11jsLib {
  PKCS11: new () => PKCS11;
}

let libPromise: Promise<Pkcs11jsLib> | undefined;

async function loadPkcs11js(): Promise<Pkcs11jsLib> {
  libPromise ??= (async () => {
    try {
      const m = (await import('pkcs11js')) as unknown as { default?: Pkcs11jsLib } & Partial<Pkcs11jsLib>;
      const lib = (m.PKCS11 ? m : m.default) as Pkcs11jsLib | undefined;
      if (!lib?.PKCS11) throw new Error('the module has no PKCS11 class');
      return lib;
    } catch (e) {
      libPromise = undefined;
      throw new Pkcs11DriverError(
        'MODULE_LOAD_FAILED',
        `the pkcs11js native addon cannot be loaded (${(e as Error).message}); install it for this platform (npm ci on the target, or the package's node_modules/pkcs11js)`,
        { cause: e },
      );
    }
  })();
  return libPromise;
}

/** Debian multiarch triplet for this process's architecture. */
function triplet(): string {
  switch (process.arch as string) {
    case 'x64':
      return 'x86_64-linux-gnu';
    case 'arm64':
      return 'aarch64-linux-gnu';
    case 'arm':
      return 'arm-linux-gnueabihf';
    case 'mips64el':
      return 'mips64el-linux-gnuabi64';
    case 'mipsel':
    case 'mips':
      return 'mipsel-linux-gnu';
    case 'ia32':
      return 'i386-linux-gnu';
    default:
      return `${process.arch}-linux-gnu`;
  }
}

/** Directories searched for a URI's module-name (p11-kit's and Debian's usual places). */
export function moduleSearchDirs(): string[] {
  const t = triplet();
  return [`/usr/lib/${t}/pkcs11`, `/usr/lib/${t}/softhsm`, `/usr/lib/${t}`, '/usr/lib/pkcs11', '/usr/lib/softhsm', '/usr/local/lib/pkcs11', '/usr/local/lib/softhsm', '/usr/local/lib', '/usr/lib'];
}

/** Resolves a module-name ("softhsm2", "opensc-pkcs11") to a path, or throws MODULE_LOAD_FAILED listing where it looked. */
export function findModuleByName(name: string): string {
  const files = [`lib${name}.so`, `${name}.so`, name];
  const dirs = moduleSearchDirs();
  for (const d of dirs) for (const f of files) if (existsSync(join(d, f))) return join(d, f);
  throw new Pkcs11DriverError('MODULE_LOAD_FAILED', `PKCS#11 module "${name}" not found (looked for ${files.join(', ')} in ${dirs.join(', ')}); give --module PATH or module-path= instead`);
}

export class ModuleHandle {
  readonly path: string;
  readonly api: PKCS11;
  /** False when the module cannot use OS locking: then all calls must run on the main thread. */
  threadSafe = true;
  /** Increments at every re-initialisation: session handles of older generations are void. */
  generation = 0;
  initialized = false;
  refs = 0;
  #inflight = 0;
  #drained: (() => void)[] = [];
  #gate: Promise<void> | null = null;
  #closed = false;

  /** True after the last release unloaded the module. */
  get closed(): boolean {
    return this.#closed;
  }

  constructor(path: string, api: PKCS11) {
    this.path = path;
    this.api = api;
  }

  /** C_Initialize (with OS locking when the module allows it). Throws MODULE_INIT_FAILED. */
  initialize(): void {
    try {
      this.api.C_Initialize({ flags: CKF_OS_LOCKING_OK });
      this.threadSafe = true;
    } catch (e) {
      const c = ckrOf(e);
      if (c?.value === CKR.CANT_LOCK) {
        try {
          this.api.C_Initialize();
          this.threadSafe = false;
        } catch (e2) {
          throw initError(this.path, e2);
        }
      } else if (c?.value === CKR.CRYPTOKI_ALREADY_INITIALIZED) {
        // Someone else in this process initialised it (another binding): use it as it is.
      } else throw initError(this.path, e);
    }
    this.initialized = true;
  }

  /** Runs an asynchronous module call, counted so re-initialisation can wait for it. */
  op<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#gate) return this.#gate.catch(() => undefined).then(() => this.op(fn));
    this.#inflight++;
    let p: Promise<T>;
    try {
      p = fn();
    } catch (e) {
      this.#leave();
      return Promise.reject(e);
    }
    return p.then(
      (v) => {
        this.#leave();
        return v;
      },
      (e) => {
        this.#leave();
        throw e;
      },
    );
  }

  #leave(): void {
    if (--this.#inflight === 0 && this.#drained.length) for (const w of this.#drained.splice(0)) w();
  }

  /** Resolves when no op() is in flight (after any re-initialisation under way). */
  async idle(): Promise<void> {
    while (this.#gate) await this.#gate.catch(() => undefined);
    if (this.#inflight > 0) await new Promise<void>((r) => this.#drained.push(r));
  }

  /**
   * C_Finalize + C_Initialize, unless somebody already did it since
   * `seenGeneration` (then returns at once). Throws MODULE_INIT_FAILED when
   * C_Initialize fails (the handle then stays uninitialised; call again later).
   */
  async reinitialize(seenGeneration: number): Promise<void> {
    while (this.#gate) await this.#gate.catch(() => undefined);
    if (this.#closed) throw new Pkcs11DriverError('CLOSED', `PKCS#11 module ${this.path} was unloaded`);
    if (this.generation !== seenGeneration && this.initialized) return;
    this.#gate = (async () => {
      if (this.#inflight > 0) await new Promise<void>((r) => this.#drained.push(r));
      if (this.initialized) {
        try {
          this.api.C_Finalize();
        } catch {
          /* a module that lost its device may fail to finalize; initialise anyway */
        }
        this.initialized = false;
      }
      this.generation++;
      this.initialize();
    })();
    try {
      await this.#gate;
    } finally {
      this.#gate = null;
    }
  }

  /** Finalizes and unloads (when the last user releases). */
  async shutdown(): Promise<void> {
    this.#closed = true;
    await this.idle();
    if (this.initialized) {
      try {
        this.api.C_Finalize();
      } catch {
        /* ignore */
      }
      this.initialized = false;
    }
    try {
      this.api.close();
    } catch {
      /* ignore */
    }
  }
}

function initError(path: string, e: unknown): Pkcs11DriverError {
  const c = ckrOf(e);
  const hint = /softhsm/i.test(path) ? '; for SoftHSM check SOFTHSM2_CONF and that its directories.tokendir exists and is readable' : '';
  return new Pkcs11DriverError('MODULE_INIT_FAILED', `C_Initialize of PKCS#11 module ${path} failed (${c?.name ?? (e as Error).message})${hint}`, { ckr: c?.name, cause: e });
}

const registry = new Map<string, Promise<ModuleHandle>>();
const shuttingDown = new Map<string, Promise<void>>();

/** Checks a module path before dlopen, for a clear message. */
function checkModulePath(path: string): string {
  if (typeof path !== 'string' || path === '') throw new Pkcs11DriverError('MODULE_LOAD_FAILED', 'no PKCS#11 module given (--module PATH, config module, or module-path= in the URI)', { code: 'USAGE' });
  const abs = isAbsolute(path) ? path : resolve(path);
  let st;
  try {
    st = statSync(abs);
  } catch (e) {
    throw new Pkcs11DriverError('MODULE_LOAD_FAILED', `cannot load PKCS#11 module ${abs}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { cause: e });
  }
  if (!st.isFile()) throw new Pkcs11DriverError('MODULE_LOAD_FAILED', `cannot load PKCS#11 module ${abs}: not a regular file`);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

/**
 * Loads and initialises the module at `path` (shared per process and real
 * path) and takes a reference; give it back with releaseModule().
 * Throws MODULE_LOAD_FAILED (path + dlopen error) or MODULE_INIT_FAILED.
 */
export async function acquireModule(path: string): Promise<ModuleHandle> {
  const real = checkModulePath(path);
  for (;;) {
    const h = await loadOnce(real);
    if (h.closed) continue; // released by its last user while we waited: load again
    h.refs++;
    return h;
  }
}

async function loadOnce(real: string): Promise<ModuleHandle> {
  const down = shuttingDown.get(real);
  if (down) await down;
  let p = registry.get(real);
  if (!p) {
    p = (async () => {
      const lib = await loadPkcs11js();
      const api = new lib.PKCS11();
      try {
        api.load(real);
      } catch (e) {
        throw new Pkcs11DriverError('MODULE_LOAD_FAILED', `cannot load PKCS#11 module ${real}: ${(e as Error).message}`, { cause: e });
      }
      const h = new ModuleHandle(real, api);
      try {
        h.initialize();
      } catch (e) {
        try {
          api.close();
        } catch {
          /* ignore */
        }
        throw e;
      }
      return h;
    })();
    registry.set(real, p);
    p.catch(() => registry.delete(real));
  }
  return p;
}

/** Gives back a reference; the last one finalizes and unloads the module. */
export async function releaseModule(h: ModuleHandle): Promise<void> {
  if (--h.refs > 0) return;
  if (h.refs < 0) {
    h.refs = 0;
    return;
  }
  registry.delete(h.path);
  const done = h.shutdown().finally(() => shuttingDown.delete(h.path));
  shuttingDown.set(h.path, done);
  await done;
}
