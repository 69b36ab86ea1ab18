// The PKCS#11 signer: a key that never leaves its token (CKA_SENSITIVE,
// never extractable; ARCHITECTURE §2 inv. 4), behind the same Signer
// interface as the software driver.
//
// Signing
// - ES256 / ES256K: SHA-256 in software, CKM_ECDSA on the token; the raw r‖s
//   is normalised to low-S (§4.2; SoftHSM returns high-S half the time).
// - EdDSA: CKM_EDDSA (pure Ed25519) over the Sig_structure.
// - PS256: SHA-256 in software + CKM_RSA_PKCS_PSS (SHA-256, MGF1-SHA-256,
//   salt 32), or CKM_SHA256_RSA_PKCS_PSS when the token only has that.
//
// Sessions and concurrency
// - A pool of `sessions` sessions (default 2) is opened once and reused; the
//   first holds the login (PKCS#11 logs the application in, not a session,
//   so the others share it). Each sign takes an idle session (FIFO wait when
//   all are busy), so calls are serialised per session and run in parallel
//   across sessions, as far as the token allows (capped by its session count).
// - By default the token call runs on a libuv worker (C_SignAsync), so a slow
//   token (100 ms … 1 s per signature) never blocks the event loop.
//   `blocking: true` calls C_Sign on the main thread: faster for a fast
//   local module (SoftHSM), and forced for modules without OS locking.
//
// PIN (pin.ts): read from ISCM_PKCS11_PIN or a pin file right before the one
// C_Login; never stored, never retried. A wrong, locked, expired PIN (or a
// token on its final try) puts the signer in the `failed` state: every later
// sign() fails at once with that error and no further C_Login is made, so a
// loop of retries can never lock the token. Fix the PIN and open a new signer.
//
// Token removal
// A sign that fails because the token, the session or the key handle went
// away (CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, CKR_SESSION_HANDLE_INVALID,
// CKR_OBJECT_HANDLE_INVALID …) marks the signer `lost`. It then re-opens:
// waits for in-flight calls, C_Finalize + C_Initialize (a fresh scan of
// slots: SoftHSM only sees a token directory that came back after it),
// finds the token again by the same selection, logs in once, finds the key,
// and checks that its public key is the one the signer started with (same
// kid: KEY_MISMATCH otherwise, and it keeps refusing). The failing call is
// retried once after a successful re-open; otherwise it rejects with
// TOKEN_NOT_PRESENT and later calls try again, at most once per
// `reopenIntervalMs`, failing fast in between. The process never exits.
import { createHash } from 'node:crypto';
import { IscmError } from '../../protocol/errors.js';
import { ALG, algName, normalizeLowS, verifySignature } from '../../protocol/cose/algorithms.js';
import type { CoseKey } from '../../protocol/cose/key.js';
import { equalBytes, toHex } from '../../protocol/bytes.js';
import type { Signer } from '../signer.js';
import { CK_PARAMS_RSA_PSS, CKF_SERIAL_SESSION, CKG_MGF1_SHA256, CKM_SHA256, CKR } from './constants.js';
import { ckrOf, deviceError, isTokenLost, Pkcs11DriverError } from './errors.js';
import { acquireModule, releaseModule, type ModuleHandle, type Pkcs11Api } from './module.js';
import { findKey, findToken, login, resolveSelection, signMechanism, type KeyDescription, type Pkcs11Selection, type ResolvedSelection, type SignMechanism, type TokenDescription } from './token.js';
import { formatPkcs11Uri, type Pkcs11Uri } from './uri.js';

type Handle = Buffer;

export interface Pkcs11SignerOptions extends Pkcs11Selection {
  /** Expected alg; by default inferred from the key (P-256 → ES256, Ed25519 → EdDSA, RSA → PS256, secp256k1 → ES256K). */
  alg?: number;
  /** Pin the signer to a known key: its kid (RFC 9679 thumbprint) must match. */
  expectKid?: Uint8Array;
  /** Session pool size (default 2, capped by the token's session limit). */
  sessions?: number;
  /** Sign on the main thread with C_Sign instead of C_SignAsync on a worker (default false). */
  blocking?: boolean;
  /** Minimum time between two re-open attempts while the token is away (default 1000 ms). */
  reopenIntervalMs?: number;
  /** Sign and verify one test message when opening (default true): catches mismatched key halves and broken tokens. */
  selfTest?: boolean;
  /** Allow logging in when the token has one PIN attempt left (default false). */
  allowFinalPinTry?: boolean;
  /** Wraps the module API (fault-injection tests only). */
  wrapApi?: (api: Pkcs11Api) => Pkcs11Api;
}

export type Pkcs11SignerState = 'ready' | 'lost' | 'failed' | 'closed';

export interface Pkcs11SignerStats {
  signs: number;
  errors: number;
  /** C_Login calls made (at most one per successful open / re-open). */
  loginAttempts: number;
  /** Successful re-opens after a token loss. */
  reopens: number;
  /** Re-open attempts (successful or not). */
  reopenAttempts: number;
  sessionsOpened: number;
  /** Largest number of sign calls waiting for a session. */
  maxQueued: number;
}

export interface Pkcs11SignerStatus {
  state: Pkcs11SignerState;
  /** The token, as last seen. */
  token: TokenDescription;
  /** The key's RFC 7512 URI. */
  uri: string;
  /** The error that made the signer lost or failed. */
  lastError?: { reason: string; message: string };
  sessions: number;
  stats: Pkcs11SignerStats;
}

interface Live {
  gen: number;
  slot: Handle;
  key: Handle;
  mech: SignMechanism;
  sessions: Handle[];
  idle: Handle[];
}

function closedError(): Pkcs11DriverError {
  return new Pkcs11DriverError('CLOSED', 'the PKCS#11 signer is closed');
}

const PERMANENT = new Set(['PIN_INCORRECT', 'PIN_LOCKED', 'PIN_FINAL_TRY', 'PIN_EXPIRED', 'PIN_NOT_INITIALIZED']);

export class Pkcs11Signer implements Signer {
  readonly alg: number;
  readonly publicKey: CoseKey;
  readonly kid: Uint8Array;
  /** RFC 7512 URI of the key (token label/serial, object label, id). */
  readonly uri: string;

  #module: ModuleHandle;
  #api: Pkcs11Api;
  #sel: ResolvedSelection;
  #opts: Pkcs11SignerOptions;
  #poolSize: number;
  #blocking: boolean;
  #sigLen: number;
  #token: TokenDescription;
  #state: Pkcs11SignerState = 'ready';
  #live: Live | null;
  #waiters: { resolve: (s: Handle) => void; reject: (e: Error) => void; epoch: number }[] = [];
  #epoch = 0;
  #failure: Pkcs11DriverError | null = null;
  #lastError: Pkcs11DriverError | null = null;
  #lastAttempt = 0;
  #lostAt = 0;
  /** Module generation seen at our last open / re-open attempt. */
  #seenGen: number;
  #reopening: Promise<void> | null = null;
  #inflight = 0;
  #closing: Promise<void> | null = null;
  #idleWaiters: (() => void)[] = [];
  #stats: Pkcs11SignerStats = { signs: 0, errors: 0, loginAttempts: 0, reopens: 0, reopenAttempts: 0, sessionsOpened: 0, maxQueued: 0 };

  private constructor(
    module: ModuleHandle,
    api: Pkcs11Api,
    sel: ResolvedSelection,
    opts: Pkcs11SignerOptions,
    opened: { live: Live; key: KeyDescription; token: TokenDescription; poolSize: number },
    stats: Pkcs11SignerStats,
  ) {
    this.#module = module;
    this.#api = api;
    this.#sel = sel;
    this.#opts = opts;
    this.#live = opened.live;
    this.#token = opened.token;
    this.#poolSize = opened.poolSize;
    this.#blocking = opts.blocking === true || !module.threadSafe;
    this.#stats = stats;
    this.#seenGen = opened.live.gen;
    this.alg = opened.key.alg!;
    this.publicKey = opened.key.publicKey!;
    this.kid = opened.key.kid!;
    this.uri = opened.key.uri;
    this.#sigLen = this.publicKey.kty === 3 ? this.publicKey.n.length : 64;
  }

  /** Opens the token, logs in, finds the key. Throws Pkcs11DriverError (see errors.ts for the reasons). */
  static async open(opts: Pkcs11SignerOptions): Promise<Pkcs11Signer> {
    const sel = resolveSelection(opts);
    if (sel.type === 'public') throw new Pkcs11DriverError('URI_INVALID', 'the URI selects type=public; a signer needs the private key (type=private or no type)', { code: 'USAGE' });
    const sessions = opts.sessions ?? 2;
    if (!Number.isSafeInteger(sessions) || sessions < 1 || sessions > 64) throw new Pkcs11DriverError('URI_INVALID', 'sessions must be 1..64', { code: 'USAGE', field: 'sessions' });
    const module = await acquireModule(sel.modulePath);
    const api = opts.wrapApi ? opts.wrapApi(module.api) : module.api;
    const stats: Pkcs11SignerStats = { signs: 0, errors: 0, loginAttempts: 0, reopens: 0, reopenAttempts: 0, sessionsOpened: 0, maxQueued: 0 };
    let signer: Pkcs11Signer;
    try {
      const opened = await openLive(module, api, sel, opts, sessions, stats, undefined);
      signer = new Pkcs11Signer(module, api, sel, opts, opened, stats);
    } catch (e) {
      await releaseModule(module);
      throw e;
    }
    if (opts.selfTest ?? true) {
      try {
        await signer.#selfTest();
      } catch (e) {
        await signer.close(); // closes the sessions and releases the module
        throw e;
      }
    }
    return signer;
  }

  async #selfTest(): Promise<void> {
    const msg = new TextEncoder().encode(`iscm-edge pkcs11 self-test ${toHex(this.kid)}`);
    const sig = await this.sign(msg);
    try {
      verifySignature(this.alg, this.publicKey, msg, sig);
    } catch (e) {
      throw new Pkcs11DriverError('KEY_MISMATCH', `self-test failed: a signature by key ${this.uri} does not verify with its public key (${(e as Error).message}); the public and private objects do not belong together`, { cause: e });
    }
  }

  /** Current state, token, last error and counters (no secrets). */
  status(): Pkcs11SignerStatus {
    const e = this.#failure ?? (this.#state === 'lost' ? this.#lastError : null);
    return {
      state: this.#state,
      token: this.#token,
      uri: this.uri,
      ...(e ? { lastError: { reason: e.reason, message: e.message } } : {}),
      sessions: this.#live?.sessions.length ?? 0,
      stats: { ...this.#stats },
    };
  }

  get state(): Pkcs11SignerState {
    return this.#state;
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    if (!(data instanceof Uint8Array)) throw new Pkcs11DriverError('SIGN_FAILED', 'data to sign must be bytes');
    if (this.#state === 'closed' || this.#closing) throw closedError();
    if (this.#failure) throw this.#failure;
    this.#inflight++;
    try {
      return await this.#signWithReopen(data);
    } catch (e) {
      this.#stats.errors++;
      throw e;
    } finally {
      if (--this.#inflight === 0) for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  async #signWithReopen(data: Uint8Array): Promise<Uint8Array> {
    if (this.#state === 'lost') await this.#reopen(false);
    try {
      return await this.#signOnce(data);
    } catch (e) {
      if (this.#state === 'closed') throw closedError();
      if (this.#failure) throw this.#failure;
      if (!isTokenLost(e)) throw e instanceof IscmError ? e : deviceError(e, `signing with ${this.uri}`);
      this.#markLost(e);
      await this.#reopen(true);
      try {
        return await this.#signOnce(data);
      } catch (e2) {
        if (isTokenLost(e2)) this.#markLost(e2);
        throw e2 instanceof IscmError ? e2 : deviceError(e2, `signing with ${this.uri}`);
      }
    }
  }

  async #signOnce(data: Uint8Array): Promise<Uint8Array> {
    const live = this.#live;
    if (!live) throw this.#lastError ?? deviceError(new Error('no session'), `signing with ${this.uri}`);
    const input = live.mech.prehash ? createHash('sha256').update(data).digest() : Buffer.from(data.buffer, data.byteOffset, data.length);
    const mechanism = live.mech.pss
      ? { mechanism: live.mech.mechanism, parameter: { type: CK_PARAMS_RSA_PSS, hashAlg: CKM_SHA256, mgf: CKG_MGF1_SHA256, saltLen: 32 } }
      : { mechanism: live.mech.mechanism };
    const session = live.idle.shift() ?? (await this.#acquire(live));
    const epoch = this.#epoch;
    let out: Buffer;
    try {
      const buf = Buffer.allocUnsafe(this.#sigLen);
      if (this.#blocking) {
        this.#api.C_SignInit(session, mechanism, live.key);
        out = this.#api.C_Sign(session, input, buf);
      } else {
        out = await this.#module.op(async () => {
          this.#api.C_SignInit(session, mechanism, live.key);
          return this.#api.C_SignAsync(session, input, buf);
        });
      }
    } catch (e) {
      if (isTokenLost(e)) throw e;
      const c = ckrOf(e);
      if (c?.value === CKR.OPERATION_ACTIVE) {
        // A previous operation on this session did not terminate: retire the session.
        this.#retire(live, session);
        throw deviceError(e, `signing with ${this.uri}`);
      }
      throw deviceError(e, `signing with ${this.uri}`);
    } finally {
      if (epoch === this.#epoch) this.#release(live, session);
    }
    this.#stats.signs++;
    return this.#finish(new Uint8Array(out));
  }

  #finish(sig: Uint8Array): Uint8Array {
    switch (this.alg) {
      case ALG.ES256:
      case ALG.ES256K:
        if (sig.length !== 64) throw new Pkcs11DriverError('SIGN_FAILED', `the token returned a ${sig.length}-byte ECDSA signature (expected 64 bytes raw r‖s)`);
        return normalizeLowS(sig, this.alg === ALG.ES256 ? 'P-256' : 'secp256k1');
      case ALG.EdDSA:
        if (sig.length !== 64) throw new Pkcs11DriverError('SIGN_FAILED', `the token returned a ${sig.length}-byte Ed25519 signature (expected 64)`);
        return sig;
      default:
        if (sig.length !== this.#sigLen) throw new Pkcs11DriverError('SIGN_FAILED', `the token returned a ${sig.length}-byte RSA signature (expected ${this.#sigLen})`);
        return sig;
    }
  }

  // ---------------------------------------------------------------- session pool

  #acquire(live: Live): Promise<Handle> {
    const s = live.idle.shift();
    if (s) return Promise.resolve(s);
    if (live.sessions.length < this.#poolSize) {
      try {
        const n = this.#api.C_OpenSession(live.slot, CKF_SERIAL_SESSION);
        live.sessions.push(n);
        this.#stats.sessionsOpened++;
        return Promise.resolve(n);
      } catch (e) {
        const c = ckrOf(e);
        if (c?.value === CKR.SESSION_COUNT && live.sessions.length > 0) this.#poolSize = live.sessions.length; // the token's limit
        else return Promise.reject(e);
      }
    }
    return new Promise<Handle>((resolve, reject) => {
      this.#waiters.push({ resolve, reject, epoch: this.#epoch });
      if (this.#waiters.length > this.#stats.maxQueued) this.#stats.maxQueued = this.#waiters.length;
    });
  }

  #release(live: Live, s: Handle): void {
    if (this.#live !== live || !live.sessions.includes(s)) return;
    const w = this.#waiters.shift();
    if (w) w.resolve(s);
    else live.idle.push(s);
  }

  #retire(live: Live, s: Handle): void {
    const i = live.sessions.indexOf(s);
    if (i < 0 || i === 0) return; // never the login session
    live.sessions.splice(i, 1);
    try {
      this.#api.C_CloseSession(s);
    } catch {
      /* ignore */
    }
  }

  // ---------------------------------------------------------------- loss and re-open

  #markLost(e: unknown): void {
    if (this.#state !== 'ready') return;
    this.#state = 'lost';
    this.#lostAt = Date.now();
    this.#lastError = deviceError(e, `signing with ${this.uri}`);
    if (this.#lastError.reason !== 'TOKEN_NOT_PRESENT')
      this.#lastError = new Pkcs11DriverError('TOKEN_NOT_PRESENT', this.#lastError.message, { ckr: this.#lastError.ckr, cause: e });
    this.#dropSessions();
  }

  #dropSessions(): void {
    const live = this.#live;
    this.#live = null;
    this.#epoch++;
    const waiters = this.#waiters.splice(0);
    for (const w of waiters) w.reject(this.#lastError ?? closedError());
    if (live && live.gen === this.#module.generation && this.#module.initialized) {
      // Same module generation: the handles are ours and may be closed (never close stale handles:
      // after a re-initialisation their numbers may belong to someone else's new sessions).
      for (const s of live.sessions)
        try {
          this.#api.C_CloseSession(s);
        } catch {
          /* the token is gone anyway */
        }
    }
  }

  /**
   * Re-opens after a loss; concurrent callers share one attempt. Attempts are
   * at most one per reopenIntervalMs, except that the first one after a new
   * loss runs at once (`immediate`), so a failing call can be retried.
   */
  async #reopen(immediate: boolean): Promise<void> {
    if (this.#reopening) return this.#reopening;
    if (this.#state === 'ready') return;
    if (this.#state === 'closed') throw closedError();
    if (this.#failure) throw this.#failure;
    const interval = this.#opts.reopenIntervalMs ?? 1000;
    const since = Date.now() - this.#lastAttempt;
    // Immediate only for a new loss, and not more than once per interval unless the module was
    // re-initialised by someone else (then our sessions died through no fault of the token).
    const fresh = immediate && this.#lastAttempt <= this.#lostAt && (since >= interval || this.#module.generation !== this.#seenGen);
    if (!fresh && since < interval) {
      const e = this.#lastError ?? new Pkcs11DriverError('TOKEN_NOT_PRESENT', `the token of ${this.uri} is not available`);
      throw new Pkcs11DriverError(e.reason, `${e.message} (next re-open attempt in ${interval - since} ms)`, { ckr: e.ckr });
    }
    this.#reopening = this.#attemptReopen();
    try {
      await this.#reopening;
    } finally {
      this.#reopening = null;
    }
  }

  async #attemptReopen(): Promise<void> {
    this.#lastAttempt = Date.now();
    this.#stats.reopenAttempts++;
    const m = this.#module;
    try {
      // Re-initialise the module unless somebody else did since our last attempt
      // (then its slot scan is fresh and the others' new sessions are spared).
      let reinit = false;
      if (m.generation === this.#seenGen || !m.initialized) {
        await m.reinitialize(m.generation);
        reinit = true;
      }
      let opened;
      try {
        opened = await openLive(m, this.#api, this.#sel, this.#opts, this.#poolSize, this.#stats, this.kid);
      } catch (e) {
        if (reinit || !(e instanceof Pkcs11DriverError) || e.reason !== 'TOKEN_NOT_FOUND') throw e;
        await m.reinitialize(m.generation);
        opened = await openLive(m, this.#api, this.#sel, this.#opts, this.#poolSize, this.#stats, this.kid);
      } finally {
        this.#seenGen = m.generation;
      }
      if (this.#state === 'closed') {
        for (const s of opened.live.sessions)
          try {
            this.#api.C_CloseSession(s);
          } catch {
            /* ignore */
          }
        throw closedError();
      }
      this.#live = opened.live;
      this.#token = opened.token;
      this.#state = 'ready';
      this.#lastError = null;
      this.#stats.reopens++;
    } catch (e) {
      const err = e instanceof Pkcs11DriverError ? e : deviceError(e, `re-opening ${this.uri}`);
      if (err.reason === 'CLOSED') throw err;
      if (PERMANENT.has(err.reason)) {
        this.#failure = err;
        this.#state = 'failed';
        throw err;
      }
      this.#lastError =
        err.reason === 'TOKEN_NOT_FOUND' || err.reason === 'MODULE_INIT_FAILED' || err.reason === 'TOKEN_NOT_PRESENT'
          ? new Pkcs11DriverError('TOKEN_NOT_PRESENT', `the token of ${this.uri} is not present (removed?): ${err.message}; the signer re-opens it when it returns`, { ckr: err.ckr, cause: err })
          : err;
      throw this.#lastError;
    }
  }

  /** Waits for in-flight sign calls, closes the sessions and releases the module. Later sign() calls fail with CLOSED. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#inflight > 0) await new Promise<void>((r) => this.#idleWaiters.push(r));
      if (this.#reopening) await this.#reopening.catch(() => undefined);
      this.#state = 'closed';
      this.#lastError = closedError();
      this.#dropSessions();
      await releaseModule(this.#module);
    })();
    return this.#closing;
  }
}

/** Opens the token, logs in once, finds the key, opens the first session. */
async function openLive(
  module: ModuleHandle,
  api: Pkcs11Api,
  sel: ResolvedSelection,
  opts: Pkcs11SignerOptions,
  poolSize: number,
  stats: Pkcs11SignerStats,
  expectKid: Uint8Array | undefined,
): Promise<{ live: Live; key: KeyDescription; token: TokenDescription; poolSize: number }> {
  const gen = module.generation;
  const { slot, desc } = findToken(api, module.path, sel.token);
  let anchor: Handle;
  try {
    anchor = api.C_OpenSession(slot, CKF_SERIAL_SESSION);
  } catch (e) {
    throw deviceError(e, `opening a session on token "${desc.label}"`);
  }
  stats.sessionsOpened++;
  try {
    await login(api, anchor, slot, sel.pin, { allowFinalTry: opts.allowFinalPinTry, onAttempt: () => stats.loginAttempts++ });
    const uriBase: Pkcs11Uri = { token: desc.label, manufacturer: desc.manufacturer, serial: desc.serial, model: desc.model };
    const key = findKey(api, anchor, sel.key, desc, uriBase);
    if (opts.alg !== undefined && key.alg !== opts.alg)
      throw new Pkcs11DriverError('KEY_UNSUPPORTED', `key ${key.uri} is a ${algName(key.alg!)} key (${key.curve}), not ${algName(opts.alg)}`);
    const pin = expectKid ?? opts.expectKid;
    if (pin && !equalBytes(pin, key.kid!))
      throw new Pkcs11DriverError(
        'KEY_MISMATCH',
        `the key found at ${key.uri} has kid ${toHex(key.kid!)}, not the expected ${toHex(pin)}: a different key (or token) answers to this selection; refusing to sign with it`,
      );
    const mech = signMechanism(api, slot, key.alg!, desc);
    let cap = poolSize;
    try {
      const ti = api.C_GetTokenInfo(slot);
      const max = ti.maxSessionCount;
      // 0 = CK_EFFECTIVELY_INFINITE; ~0 (as a large number) = CK_UNAVAILABLE_INFORMATION.
      if (max > 0 && max < 1_000_000) cap = Math.max(1, Math.min(cap, max - Math.min(max - 1, ti.sessionCount)));
    } catch {
      /* keep the requested size */
    }
    return { live: { gen, slot, key: key.privateHandle!, mech, sessions: [anchor], idle: [anchor] }, key, token: desc, poolSize: cap };
  } catch (e) {
    try {
      api.C_CloseSession(anchor);
    } catch {
      /* ignore */
    }
    throw e;
  }
}

/**
 * Opens a PKCS#11 signer (see the file header). Example:
 *   openPkcs11Signer({ module: '/usr/lib/softhsm/libsofthsm2.so', uri: 'pkcs11:token=gw;object=batch' })
 * with the PIN in ISCM_PKCS11_PIN. Throws Pkcs11DriverError.
 */
export async function openPkcs11Signer(opts: Pkcs11SignerOptions): Promise<Pkcs11Signer> {
  return Pkcs11Signer.open(opts);
}

export { formatPkcs11Uri };
