// Typed errors and boundary assertions shared by every layer.
//
// Every error that can reach an operator carries a stable `code` (for metrics
// and log filters), the `field` it is about when there is one, and a message a
// tired operator can act on. Messages never include secret material: callers
// pass field names and sizes, never the offending bytes of a key or PIN.

export type ErrorCode =
  | 'CBOR_MALFORMED' // bytes are not well-formed CBOR
  | 'CBOR_NONCANONICAL' // well-formed but not RFC 8949 §4.2.1 deterministic
  | 'CBOR_LIMIT' // size, depth or count bound exceeded
  | 'CBOR_UNSUPPORTED' // a CBOR feature this protocol does not allow
  | 'INVALID_FIELD' // a structure decoded but a field is wrong
  | 'MERKLE_INVALID' // a Merkle proof or its arguments are invalid
  | 'COSE_INVALID' // a COSE structure is malformed or uses what we reject
  | 'SIGNATURE_INVALID' // a signature does not verify
  | 'KEY_INVALID' // a key is malformed, the wrong type, or untrusted
  | 'RECEIPT_INVALID' // a COSE Receipt fails verification
  | 'BUNDLE_INVALID' // an event proof bundle fails verification
  | 'SIGNER_ERROR' // a signer could not sign
  | 'KEYFILE_ERROR' // a key file cannot be read, decrypted or written
  | 'LINK_ERROR' // the MCU link: bad frames, handshake, dead link
  | 'SERIAL_ERROR' // the serial port: missing, busy, denied, I/O
  | 'NMEA_INVALID' // an NMEA sentence that cannot be used
  | 'CONFIG_INVALID' // a config file or override is wrong
  | 'JOURNAL_ERROR' // the journal refused or failed a write (quota, disk, chain, damage)
  | 'CLOCK_UNTRUSTED' // no trusted time yet: readings are held
  | 'USAGE'; // bad CLI arguments or config

export class IscmError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  constructor(code: ErrorCode, message: string, field?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IscmError';
    this.code = code;
    this.field = field;
  }
}

/** CBOR bytes could not be decoded under the protocol's rules. */
export class CborError extends IscmError {
  readonly offset: number;
  constructor(code: ErrorCode, message: string, offset: number) {
    super(code, `${message} (at byte ${offset})`);
    this.name = 'CborError';
    this.offset = offset;
  }
}

/** A decoded value violates a wire-format rule; `field` names where. */
export class ValidationError extends IscmError {
  constructor(field: string, message: string) {
    super('INVALID_FIELD', `${field}: ${message}`, field);
    this.name = 'ValidationError';
  }
}

/** A verification step failed; `code` says which kind, message says why. */
export class VerifyError extends IscmError {
  constructor(code: ErrorCode, message: string, field?: string) {
    super(code, message, field);
    this.name = 'VerifyError';
  }
}

// ---- boundary assertions (after noble's abytes/anumber) ----

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'a map';
  return typeof v;
}

export function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** Asserts a byte string, optionally of an exact length. */
export function abytes(v: unknown, field: string, length?: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new ValidationError(field, `expected a byte string, got ${describe(v)}`);
  if (length !== undefined && v.length !== length)
    throw new ValidationError(field, `expected ${length} bytes, got ${v.length}`);
  return v;
}

/** Asserts a non-negative safe integer within [min, max]. */
export function auint(v: unknown, field: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new ValidationError(field, `expected an unsigned integer, got ${typeof v === 'number' ? v : describe(v)}`);
  if (v < min || v > max) throw new ValidationError(field, `expected ${min}..${max}, got ${v}`);
  return v;
}

/** Asserts a safe integer (may be negative). */
export function aint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v))
    throw new ValidationError(field, `expected an integer, got ${describe(v)}`);
  return v;
}

/** Asserts a text string, optionally matching a pattern. */
export function astr(v: unknown, field: string, pattern?: RegExp, patternText?: string): string {
  if (typeof v !== 'string') throw new ValidationError(field, `expected a text string, got ${describe(v)}`);
  if (pattern && !pattern.test(v))
    throw new ValidationError(field, `${JSON.stringify(v.slice(0, 80))} does not match ${patternText ?? String(pattern)}`);
  return v;
}

/** Asserts a CBOR map decoded as a Map (integer keys) and returns it. */
export function amap(v: unknown, field: string): Map<unknown, unknown> {
  if (!(v instanceof Map)) throw new ValidationError(field, `expected a map, got ${describe(v)}`);
  return v;
}

/** Asserts an array, optionally with a length range. */
export function aarray(v: unknown, field: string, min = 0, max = Number.MAX_SAFE_INTEGER): unknown[] {
  if (!Array.isArray(v)) throw new ValidationError(field, `expected an array, got ${describe(v)}`);
  if (v.length < min || v.length > max)
    throw new ValidationError(field, `expected ${min === max ? min : `${min}..${max}`} elements, got ${v.length}`);
  return v;
}

/** Asserts that a map has only the allowed integer keys and all the required ones. */
export function akeys(m: Map<unknown, unknown>, field: string, required: readonly number[], optional: readonly number[] = []): void {
  for (const k of required) if (!m.has(k)) throw new ValidationError(`${field}.${k}`, 'required key is missing');
  for (const k of m.keys())
    if (!required.includes(k as number) && !optional.includes(k as number))
      throw new ValidationError(field, `unknown key ${JSON.stringify(typeof k === 'bigint' ? String(k) : k)}`);
}

/** Message of any thrown value, for logs and CLI output. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
