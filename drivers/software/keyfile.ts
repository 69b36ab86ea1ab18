// Passphrase-encrypted key files for the software signer (the fallback when no
// PKCS#11 token is present; ARCHITECTURE §1).
//
// File format, version 1: one deterministic CBOR map (RFC 8949 §4.2.1),
//
//   KeyFile = {
//     1: 1,                     ; format version
//     2: alg int,               ; COSE alg: -7 ES256, -8 EdDSA (Ed25519), -37 PS256, -47 ES256K
//     3: public COSE_Key map,   ; in clear, so tools can show the key and kid without the passphrase
//     4: { 1: "scrypt",         ; KDF (RFC 7914), parameters recorded per file
//          2: N uint,           ;   cost, a power of two (default 2^15)
//          3: r uint,           ;   block size (default 8)
//          4: p uint,           ;   parallelism (default 1)
//          5: salt bstr(32) },
//     5: nonce bstr(24),        ; XSalsa20-Poly1305 nonce (tweetnacl secretbox)
//     6: box bstr               ; secretbox(plaintext, nonce, scrypt(passphrase, salt, 32 bytes))
//   }
//   plaintext = { 1: alg int, 2: private key, PKCS#8 DER bstr }   (deterministic CBOR)
//
// The header fields are not encrypted, so on opening they are checked against
// the authenticated plaintext: the alg must match and the public key derived
// from the decrypted private key must equal field 3. Wrong KDF parameters or
// nonce simply fail to decrypt.
//
// Passphrases (ARCHITECTURE §2 invariant 4) come from an environment variable
// (default ISCM_KEY_PASSPHRASE) or from a file named by `passphraseFile`,
// never from config values or command-line arguments, and never appear in an
// error message. Errors are IscmError('KEYFILE_ERROR').
//
// Writes are atomic: a temporary file in the same directory (mode 0600,
// O_EXCL) is written and fsync'd, renamed over the target, and the directory
// is fsync'd. Opening refuses a key file that group or others can access
// (like ssh), unless `checkMode: false`.
import { generateKeyPair as generateKeyPairCb, createPrivateKey, randomBytes, scrypt as scryptCb, type KeyObject } from 'node:crypto';
import { open, readFile, rename, stat, unlink, lstat } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { promisify } from 'node:util';
import nacl from 'tweetnacl';
import { decode, encode } from '../../protocol/cbor.js';
import { IscmError } from '../../protocol/errors.js';
import { readSecretFile } from '../fs/secret-file.js';
import { ALG, algName } from '../../protocol/cose/algorithms.js';
import { coseKeyFromKeyObject, coseKeyFromMap, coseKeyToMap, sameKey, thumbprint, type CoseKey } from '../../protocol/cose/key.js';

export const KEYFILE_VERSION = 1;
export const DEFAULT_PASSPHRASE_ENV = 'ISCM_KEY_PASSPHRASE';
export const DEFAULT_SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;
/** Algs the software signer supports. */
export const SOFTWARE_ALGS: readonly number[] = [ALG.ES256, ALG.EdDSA, ALG.PS256, ALG.ES256K];

const MAX_FILE_BYTES = 64 * 1024;
const MIN_PASSPHRASE = 8;
const SCRYPT_MAX_MEM = 256 * 1024 * 1024;

export interface PassphraseSource {
  /** Environment variable holding the passphrase (default ISCM_KEY_PASSPHRASE). */
  passphraseEnv?: string;
  /** File holding the passphrase (its content, less one trailing newline). Takes precedence over the environment. */
  passphraseFile?: string;
  /** Environment to read (default process.env); for tests. */
  env?: Record<string, string | undefined>;
}

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export interface KeyFileWriteOptions {
  /** scrypt cost (default N=2^15, r=8, p=1). Lower N only for tests. */
  scrypt?: Partial<ScryptParams>;
  /** Replace an existing file (default false: refuse, so a key is never lost by accident). */
  overwrite?: boolean;
}

export interface KeyFileInfo {
  readonly alg: number;
  readonly publicKey: CoseKey;
  /** RFC 9679 thumbprint of publicKey (the batch kid). */
  readonly kid: Uint8Array;
  readonly scrypt: ScryptParams;
}

export interface KeyFileContents extends KeyFileInfo {
  readonly privateKey: KeyObject;
}

function kfError(message: string, cause?: unknown): IscmError {
  return new IscmError('KEYFILE_ERROR', message, undefined, cause === undefined ? undefined : { cause });
}

const scryptAsync = promisify(scryptCb) as (pw: Uint8Array, salt: Uint8Array, len: number, opts: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>;
const generateKeyPairAsync = promisify(generateKeyPairCb) as unknown as (type: string, opts: object) => Promise<{ privateKey: KeyObject; publicKey: KeyObject }>;

// ------------------------------------------------------------------ passphrase

/** Reads the passphrase from its source. The returned buffer should be zeroed by the caller. */
export async function readPassphrase(source: PassphraseSource = {}): Promise<Buffer> {
  if (source.passphraseFile !== undefined) {
    try {
      return await readSecretFile(source.passphraseFile, { what: 'passphrase file', maxBytes: 4096 });
    } catch (e) {
      throw kfError((e as Error).message);
    }
  }
  const name = source.passphraseEnv ?? DEFAULT_PASSPHRASE_ENV;
  const env = source.env ?? process.env;
  const v = env[name];
  if (v === undefined) throw kfError(`no passphrase: environment variable ${name} is not set and no passphrase file was given`);
  if (v.length === 0) throw kfError(`environment variable ${name} is empty`);
  return Buffer.from(v, 'utf8');
}

// ------------------------------------------------------------------ scrypt parameters

function checkScrypt(p: ScryptParams, where: string): ScryptParams {
  const { N, r, p: par } = p;
  const pow2 = Number.isSafeInteger(N) && N >= 2 ** 10 && N <= 2 ** 20 && (N & (N - 1)) === 0;
  if (!pow2) throw kfError(`${where}: scrypt N must be a power of two in 2^10..2^20`);
  if (!Number.isSafeInteger(r) || r < 1 || r > 32) throw kfError(`${where}: scrypt r must be 1..32`);
  if (!Number.isSafeInteger(par) || par < 1 || par > 16) throw kfError(`${where}: scrypt p must be 1..16`);
  if (128 * N * r > SCRYPT_MAX_MEM / 2) throw kfError(`${where}: scrypt N·r needs more than ${SCRYPT_MAX_MEM / 2 / 2 ** 20} MiB`);
  return { N, r, p: par };
}

async function deriveKey(pass: Uint8Array, salt: Uint8Array, p: ScryptParams): Promise<Uint8Array> {
  const k = await scryptAsync(pass, salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: SCRYPT_MAX_MEM });
  return new Uint8Array(k.buffer, k.byteOffset, k.length);
}

// ------------------------------------------------------------------ key types

function checkKeyForSoftwareAlg(alg: number, key: KeyObject): void {
  if (!SOFTWARE_ALGS.includes(alg)) throw kfError(`alg ${alg} is not supported by the software signer (use -7, -8, -37 or -47)`);
  if (key.type !== 'private') throw kfError('expected a private key');
  const t = key.asymmetricKeyType;
  const crv = key.asymmetricKeyDetails?.namedCurve;
  const ok =
    (alg === ALG.EdDSA && t === 'ed25519') ||
    (alg === ALG.ES256 && t === 'ec' && crv === 'prime256v1') ||
    (alg === ALG.ES256K && t === 'ec' && crv === 'secp256k1') ||
    (alg === ALG.PS256 && t === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048);
  if (!ok) throw kfError(`the private key (${t}${crv ? ' ' + crv : ''}) does not fit ${algName(alg)}`);
}

/** Generates a fresh private key for a software alg (RSA: `rsaBits`, default 3072). */
export async function generatePrivateKey(alg: number, rsaBits = 3072): Promise<KeyObject> {
  switch (alg) {
    case ALG.EdDSA:
      return (await generateKeyPairAsync('ed25519', {})).privateKey;
    case ALG.ES256:
      return (await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' })).privateKey;
    case ALG.ES256K:
      return (await generateKeyPairAsync('ec', { namedCurve: 'secp256k1' })).privateKey;
    case ALG.PS256:
      if (!Number.isSafeInteger(rsaBits) || rsaBits < 2048 || rsaBits > 8192) throw kfError('RSA key size must be 2048..8192 bits');
      return (await generateKeyPairAsync('rsa', { modulusLength: rsaBits })).privateKey;
    default:
      throw kfError(`alg ${alg} is not supported by the software signer (use -7, -8, -37 or -47)`);
  }
}

// ------------------------------------------------------------------ write

/** Writes `privateKey` (for `alg`) encrypted under the passphrase from `source`, atomically, mode 0600. */
export async function writeKeyFile(
  path: string,
  alg: number,
  privateKey: KeyObject,
  source: PassphraseSource,
  opts: KeyFileWriteOptions = {},
): Promise<KeyFileInfo> {
  checkKeyForSoftwareAlg(alg, privateKey);
  const params = checkScrypt({ ...DEFAULT_SCRYPT, ...opts.scrypt }, 'options');
  const pass = await readPassphrase(source);
  let derived: Uint8Array | undefined;
  let der: Buffer | undefined;
  let plain: Uint8Array | undefined;
  try {
    if (pass.length < MIN_PASSPHRASE) throw kfError(`the passphrase is too short (minimum ${MIN_PASSPHRASE} bytes)`);
    const salt = new Uint8Array(randomBytes(32));
    const nonce = new Uint8Array(randomBytes(nacl.secretbox.nonceLength));
    derived = await deriveKey(pass, salt, params);
    der = privateKey.export({ format: 'der', type: 'pkcs8' });
    plain = encode(new Map<number, unknown>([[1, alg], [2, new Uint8Array(der.buffer, der.byteOffset, der.length)]]));
    const box = nacl.secretbox(plain, nonce, derived);
    const publicKey = coseKeyFromKeyObject(privateKey, { alg });
    const file = encode(
      new Map<number, unknown>([
        [1, KEYFILE_VERSION],
        [2, alg],
        [3, coseKeyToMap(publicKey)],
        [4, new Map<number, unknown>([[1, 'scrypt'], [2, params.N], [3, params.r], [4, params.p], [5, salt]])],
        [5, nonce],
        [6, box],
      ]),
    );
    await atomicWrite(path, file, opts.overwrite ?? false);
    return { alg, publicKey, kid: thumbprint(publicKey), scrypt: params };
  } finally {
    pass.fill(0);
    derived?.fill(0);
    der?.fill(0);
    plain?.fill(0);
  }
}

/** Generates a key for `alg` and writes it to a new key file. Returns the public part. */
export async function generateKeyFile(
  path: string,
  alg: number,
  source: PassphraseSource,
  opts: KeyFileWriteOptions & { rsaBits?: number } = {},
): Promise<KeyFileInfo> {
  if (!SOFTWARE_ALGS.includes(alg)) throw kfError(`alg ${alg} is not supported by the software signer (use -7, -8, -37 or -47)`);
  // Fail on the passphrase before spending time on key generation.
  (await readPassphrase(source)).fill(0);
  const key = await generatePrivateKey(alg, opts.rsaBits);
  return writeKeyFile(path, alg, key, source, opts);
}

async function atomicWrite(path: string, data: Uint8Array, overwrite: boolean): Promise<void> {
  const dir = dirname(path);
  if (!overwrite) {
    try {
      await lstat(path);
      throw kfError(`key file ${path} already exists (refusing to overwrite a key)`);
    } catch (e) {
      if (e instanceof IscmError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw kfError(`cannot check ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, e);
    }
  }
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let written = false;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.chmod(0o600); // independent of the umask
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    written = true;
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch (e) {
    if (!written) await unlink(tmp).catch(() => undefined);
    if (e instanceof IscmError) throw e;
    throw kfError(`cannot write key file ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, e);
  }
}

// ------------------------------------------------------------------ read

interface ParsedFile {
  alg: number;
  publicKey: CoseKey;
  scrypt: ScryptParams;
  salt: Uint8Array;
  nonce: Uint8Array;
  box: Uint8Array;
}

async function loadFile(path: string, checkMode: boolean): Promise<Uint8Array> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw kfError(`key file ${path} is not a regular file`);
    if (st.size > MAX_FILE_BYTES) throw kfError(`key file ${path} is larger than ${MAX_FILE_BYTES} bytes`);
    if (checkMode && process.platform !== 'win32' && (st.mode & 0o077) !== 0)
      throw kfError(`key file ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`);
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if (e instanceof IscmError) throw e;
    throw kfError(`cannot read key file ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, e);
  }
}

function parseFile(path: string, bytes: Uint8Array): ParsedFile {
  let top: unknown;
  try {
    top = decode(bytes, { canonical: true, maxBytes: MAX_FILE_BYTES });
  } catch (e) {
    throw kfError(`key file ${path} is corrupt (${(e as Error).message})`);
  }
  const bad = (what: string) => kfError(`key file ${path} is corrupt: ${what}`);
  if (!(top instanceof Map)) throw bad('not a map');
  const version = top.get(1);
  if (version !== KEYFILE_VERSION) throw kfError(`key file ${path} has unsupported format version ${typeof version === 'number' ? version : '?'} (expected ${KEYFILE_VERSION})`);
  for (const k of top.keys()) if (![1, 2, 3, 4, 5, 6].includes(k as number)) throw bad(`unknown field ${String(k)}`);
  const alg = top.get(2);
  if (typeof alg !== 'number' || !SOFTWARE_ALGS.includes(alg)) throw bad('unsupported alg');
  let publicKey: CoseKey;
  try {
    publicKey = coseKeyFromMap(top.get(3), 'public_key');
  } catch (e) {
    throw bad(`invalid public key (${(e as Error).message})`);
  }
  const kdf = top.get(4);
  if (!(kdf instanceof Map) || kdf.get(1) !== 'scrypt' || kdf.size !== 5) throw bad('unsupported KDF');
  const salt = kdf.get(5);
  if (!(salt instanceof Uint8Array) || salt.length < 16 || salt.length > 64) throw bad('bad salt');
  const scrypt = checkScrypt({ N: kdf.get(2) as number, r: kdf.get(3) as number, p: kdf.get(4) as number }, `key file ${path}`);
  const nonce = top.get(5);
  if (!(nonce instanceof Uint8Array) || nonce.length !== nacl.secretbox.nonceLength) throw bad('bad nonce');
  const box = top.get(6);
  if (!(box instanceof Uint8Array) || box.length <= nacl.secretbox.overheadLength) throw bad('bad ciphertext');
  return { alg, publicKey, scrypt, salt, nonce, box };
}

/** The public part of a key file (no passphrase needed). */
export async function readKeyFileInfo(path: string, opts: { checkMode?: boolean } = {}): Promise<KeyFileInfo> {
  const f = parseFile(path, await loadFile(path, opts.checkMode ?? true));
  return { alg: f.alg, publicKey: f.publicKey, kid: thumbprint(f.publicKey), scrypt: f.scrypt };
}

/** Decrypts a key file. Wrong passphrase or tampering → KEYFILE_ERROR (no secret in the message). */
export async function readKeyFile(path: string, source: PassphraseSource, opts: { checkMode?: boolean } = {}): Promise<KeyFileContents> {
  const f = parseFile(path, await loadFile(path, opts.checkMode ?? true));
  const pass = await readPassphrase(source);
  let derived: Uint8Array | undefined;
  let plain: Uint8Array | null = null;
  try {
    derived = await deriveKey(pass, f.salt, f.scrypt);
    plain = nacl.secretbox.open(f.box, f.nonce, derived);
    if (!plain) throw kfError(`cannot decrypt key file ${path}: wrong passphrase, or the file is damaged`);
    let inner: unknown;
    try {
      inner = decode(plain, { canonical: true });
    } catch {
      throw kfError(`key file ${path} is corrupt: bad decrypted content`);
    }
    if (!(inner instanceof Map) || inner.size !== 2 || !(inner.get(2) instanceof Uint8Array)) throw kfError(`key file ${path} is corrupt: bad decrypted content`);
    if (inner.get(1) !== f.alg) throw kfError(`key file ${path} was tampered with: the alg in the header does not match the encrypted key`);
    let privateKey: KeyObject;
    const der = Buffer.from(inner.get(2) as Uint8Array);
    try {
      privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch {
      throw kfError(`key file ${path} is corrupt: the decrypted private key does not parse`);
    } finally {
      der.fill(0);
    }
    checkKeyForSoftwareAlg(f.alg, privateKey);
    const derivedPublic = coseKeyFromKeyObject(privateKey, { alg: f.alg });
    if (!sameKey(derivedPublic, f.publicKey)) throw kfError(`key file ${path} was tampered with: the public key in the header does not match the encrypted key`);
    return { alg: f.alg, publicKey: derivedPublic, kid: thumbprint(derivedPublic), scrypt: f.scrypt, privateKey };
  } finally {
    pass.fill(0);
    derived?.fill(0);
    plain?.fill(0);
  }
}
