// Typed, actionable errors of the PKCS#11 driver.
//
// Every failure is a Pkcs11DriverError: an IscmError with code 'SIGNER_ERROR'
// (or 'USAGE' for a bad URI or option), plus a `reason` that says what went
// wrong in a way a program can branch on and an operator can look up in
// docs/KEYS.md, and `ckr`, the PKCS#11 return value name when there is one.
// Messages name the module path, token, key label/id and the CKR code, and
// never contain a PIN (the driver never has it in a string it formats).
import { IscmError, type ErrorCode } from '../../protocol/errors.js';
import { CKR } from './constants.js';

export type Pkcs11Reason =
  | 'URI_INVALID' // the pkcs11: URI or a selection option is malformed
  | 'MODULE_LOAD_FAILED' // dlopen of the module failed, or pkcs11js is missing
  | 'MODULE_INIT_FAILED' // C_Initialize failed
  | 'TOKEN_NOT_FOUND' // no present token matches the selection (lists what was found)
  | 'TOKEN_AMBIGUOUS' // several tokens match
  | 'TOKEN_NOT_PRESENT' // the token went away (removed mid-run); the signer re-opens it when it returns
  | 'PIN_MISSING' // no PIN source: ISCM_PKCS11_PIN unset and no pin file
  | 'PIN_INCORRECT' // the token rejected the PIN; never retried
  | 'PIN_LOCKED' // the user PIN is locked (needs the SO to unlock/reset it)
  | 'PIN_FINAL_TRY' // one attempt left: the driver refuses to spend it unattended
  | 'PIN_EXPIRED' // the PIN must be changed first
  | 'PIN_NOT_INITIALIZED' // the token has no user PIN yet
  | 'KEY_NOT_FOUND' // no private key matches (lists what was found)
  | 'KEY_AMBIGUOUS' // several keys match
  | 'KEY_EXISTS' // keygen: a key with that label or id already exists
  | 'KEY_MISMATCH' // after a re-open, the key found is not the key this signer started with
  | 'KEY_UNSUPPORTED' // key type/curve not usable (or not for the alg asked for)
  | 'KEY_ATTRIBUTES' // keygen: the token did not honour CKA_SENSITIVE / CKA_EXTRACTABLE
  | 'MECHANISM_UNSUPPORTED' // the token lacks the mechanism for the alg
  | 'SIGN_FAILED' // the token failed a signing operation
  | 'DEVICE_ERROR' // any other token/module failure
  | 'CLOSED'; // the signer was closed

export class Pkcs11DriverError extends IscmError {
  readonly reason: Pkcs11Reason;
  /** PKCS#11 return value name (e.g. "CKR_PIN_INCORRECT"), when the error came from the module. */
  readonly ckr: string | undefined;
  constructor(reason: Pkcs11Reason, message: string, opts: { ckr?: string; cause?: unknown; code?: ErrorCode; field?: string } = {}) {
    super(opts.code ?? 'SIGNER_ERROR', message, opts.field, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'Pkcs11DriverError';
    this.reason = reason;
    this.ckr = opts.ckr;
  }
}

const CKR_NAMES: Record<number, string> = Object.fromEntries(Object.entries(CKR).map(([k, v]) => [v, `CKR_${k}`]));

/** The CKR name and number of a pkcs11js error, or undefined for other errors. */
export function ckrOf(e: unknown): { name: string; value: number } | undefined {
  if (!(e instanceof Error)) return undefined;
  const m = /\b(CKR_[A-Z0-9_]+)/.exec(e.message);
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'number' && code > 0) return { name: m?.[1] ?? CKR_NAMES[code] ?? `CKR 0x${code.toString(16)}`, value: code };
  if (m) {
    const v = Object.entries(CKR_NAMES).find(([, n]) => n === m[1]);
    return { name: m[1], value: v ? Number(v[0]) : -1 };
  }
  return undefined;
}

/** Return values meaning the token, its session or its objects went away: re-open. */
const LOST = new Set<number>([
  CKR.DEVICE_REMOVED,
  CKR.TOKEN_NOT_PRESENT,
  CKR.TOKEN_NOT_RECOGNIZED,
  CKR.SESSION_CLOSED,
  CKR.SESSION_HANDLE_INVALID,
  CKR.OBJECT_HANDLE_INVALID,
  CKR.KEY_HANDLE_INVALID,
  CKR.CRYPTOKI_NOT_INITIALIZED,
  CKR.USER_NOT_LOGGED_IN,
  CKR.DEVICE_ERROR,
  CKR.GENERAL_ERROR,
  CKR.SLOT_ID_INVALID,
]);

/** True when `e` means the token (or our session on it) is gone and a re-open may help. */
export function isTokenLost(e: unknown): boolean {
  if (e instanceof Pkcs11DriverError) return e.reason === 'TOKEN_NOT_PRESENT';
  const c = ckrOf(e);
  return c !== undefined && LOST.has(c.value);
}

const PIN_REASONS: Partial<Record<number, Pkcs11Reason>> = {
  [CKR.PIN_INCORRECT]: 'PIN_INCORRECT',
  [CKR.PIN_INVALID]: 'PIN_INCORRECT',
  [CKR.PIN_LEN_RANGE]: 'PIN_INCORRECT',
  [CKR.PIN_LOCKED]: 'PIN_LOCKED',
  [CKR.PIN_EXPIRED]: 'PIN_EXPIRED',
  [CKR.USER_PIN_NOT_INITIALIZED]: 'PIN_NOT_INITIALIZED',
};

/** Maps a C_Login failure to a typed error (the PIN itself is never part of it). */
export function loginError(e: unknown, token: string, source: string): Pkcs11DriverError {
  const c = ckrOf(e);
  const reason = c ? PIN_REASONS[c.value] : undefined;
  const ckr = c?.name;
  switch (reason) {
    case 'PIN_INCORRECT':
      return new Pkcs11DriverError(
        'PIN_INCORRECT',
        `token ${token} rejected the user PIN from ${source} (${ckr}). It is not retried, so the token does not lock: correct the PIN, then restart or re-open the signer`,
        { ckr, cause: e },
      );
    case 'PIN_LOCKED':
      return new Pkcs11DriverError(
        'PIN_LOCKED',
        `the user PIN of token ${token} is locked (${ckr}): the security officer must unlock or reset it (e.g. pkcs11-tool --unlock-pin / --init-pin); see docs/KEYS.md`,
        { ckr, cause: e },
      );
    case 'PIN_EXPIRED':
      return new Pkcs11DriverError('PIN_EXPIRED', `the user PIN of token ${token} has expired (${ckr}): change it with the token's tools first`, { ckr, cause: e });
    case 'PIN_NOT_INITIALIZED':
      return new Pkcs11DriverError('PIN_NOT_INITIALIZED', `token ${token} has no user PIN yet (${ckr}): initialise it (softhsm2-util --init-token, pkcs11-tool --init-pin)`, { ckr, cause: e });
    default:
      return deviceError(e, `login to token ${token}`);
  }
}

/** Return values that say the token (or our session on it) is definitely gone. */
const GONE = new Set<number>([
  CKR.DEVICE_REMOVED,
  CKR.TOKEN_NOT_PRESENT,
  CKR.TOKEN_NOT_RECOGNIZED,
  CKR.SESSION_CLOSED,
  CKR.SESSION_HANDLE_INVALID,
  CKR.OBJECT_HANDLE_INVALID,
  CKR.KEY_HANDLE_INVALID,
  CKR.CRYPTOKI_NOT_INITIALIZED,
  CKR.SLOT_ID_INVALID,
]);

/**
 * A typed error for any other module failure during `what`: TOKEN_NOT_PRESENT
 * when the return value says the token or session is gone, MECHANISM_UNSUPPORTED,
 * else DEVICE_ERROR (CKR_GENERAL_ERROR, CKR_DEVICE_ERROR … — the signer still
 * treats those as a reason to re-open, see isTokenLost).
 */
export function deviceError(e: unknown, what: string): Pkcs11DriverError {
  if (e instanceof Pkcs11DriverError) return e;
  const c = ckrOf(e);
  if (c && GONE.has(c.value))
    return new Pkcs11DriverError('TOKEN_NOT_PRESENT', `${what} failed: the token or its session went away (${c.name}); it is re-opened when it returns`, { ckr: c.name, cause: e });
  if (c && (c.value === CKR.MECHANISM_INVALID || c.value === CKR.MECHANISM_PARAM_INVALID))
    return new Pkcs11DriverError('MECHANISM_UNSUPPORTED', `${what} failed: the token does not support the mechanism or its parameters (${c.name})`, { ckr: c.name, cause: e });
  if (c) return new Pkcs11DriverError('DEVICE_ERROR', `${what} failed (${c.name})`, { ckr: c.name, cause: e });
  return new Pkcs11DriverError('DEVICE_ERROR', `${what} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}
