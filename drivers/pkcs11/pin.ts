// Where the user PIN comes from (ARCHITECTURE §2 invariant 4): the
// environment variable ISCM_PKCS11_PIN, or a file named by --pin-file, a
// config field (`pin_file`) or the URI's pin-source. Never a config value,
// an argument, a log line or an error message.
//
// The PIN is read right before C_Login and not kept: a re-open after a token
// removal reads it again. (pkcs11js takes the PIN as a JS string, which cannot
// be wiped; the Buffer read from a file is zeroed.) A PIN file must be a
// regular file of at most 256 bytes, not readable by group or others (like
// ssh keys; a systemd credential is 0400), one trailing newline is dropped.
import { readSecretFile } from '../fs/secret-file.js';
import { Pkcs11DriverError } from './errors.js';

export const DEFAULT_PIN_ENV = 'ISCM_PKCS11_PIN';
const MAX_PIN_FILE = 256;

export interface PinSource {
  /** File holding the PIN. Takes precedence over the environment. */
  pinFile?: string;
  /** Environment variable (default ISCM_PKCS11_PIN). */
  pinEnv?: string;
  /** Environment to read (default process.env); for tests. */
  env?: Record<string, string | undefined>;
  /** Refuse a PIN file that group/others can read (default true). */
  checkMode?: boolean;
}

/** Text naming the source, for messages ("ISCM_PKCS11_PIN", "pin file /etc/iscm/pin"). */
export function describePinSource(src: PinSource): string {
  return src.pinFile !== undefined ? `pin file ${src.pinFile}` : `environment variable ${src.pinEnv ?? DEFAULT_PIN_ENV}`;
}

/** True when a PIN is available from the source (without reading a file's content). */
export function hasPin(src: PinSource): boolean {
  if (src.pinFile !== undefined) return true;
  const v = (src.env ?? process.env)[src.pinEnv ?? DEFAULT_PIN_ENV];
  return v !== undefined && v !== '';
}

function pinError(message: string): Pkcs11DriverError {
  return new Pkcs11DriverError('PIN_MISSING', message, { field: 'pin' });
}

/** Reads the PIN. Throws Pkcs11DriverError('PIN_MISSING') with a message that never contains the PIN. */
export async function readPin(src: PinSource): Promise<string> {
  if (src.pinFile !== undefined) {
    let raw: Buffer;
    try {
      raw = await readSecretFile(src.pinFile, { what: 'pin file', maxBytes: MAX_PIN_FILE, privateOnly: src.checkMode ?? true });
    } catch (e) {
      throw pinError((e as Error).message);
    }
    const pin = raw.toString('utf8');
    raw.fill(0);
    return pin;
  }
  const name = src.pinEnv ?? DEFAULT_PIN_ENV;
  const v = (src.env ?? process.env)[name];
  if (v === undefined) throw pinError(`no PIN: set the environment variable ${name} or give a pin file (--pin-file FILE, config pin_file, or pin-source= in the URI)`);
  if (v.length === 0) throw pinError(`the environment variable ${name} is empty`);
  return v;
}
