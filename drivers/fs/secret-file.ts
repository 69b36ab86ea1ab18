// Secrets given by reference (ARCHITECTURE §2 invariant 4): a PIN, a key
// file passphrase or a broker password in a file of its own. One way to read
// them: a regular file of bounded size, one trailing newline (LF or CRLF)
// dropped, never empty, and — where asked — readable by its owner only.
// Messages name the file, never its content; callers wrap them in their own
// typed errors and zero what they got once used.
import { readFile, stat } from 'node:fs/promises';

export class SecretFileError extends Error {
  override name = 'SecretFileError';
}

export interface SecretFileOptions {
  /** How messages name the file, e.g. "pin file". */
  what: string;
  maxBytes: number;
  /** Refuse a file group or others can read (PINs). */
  privateOnly?: boolean;
}

export async function readSecretFile(path: string, o: SecretFileOptions): Promise<Buffer> {
  let raw: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new SecretFileError(`${o.what} ${path} is not a regular file`);
    if (st.size > o.maxBytes) throw new SecretFileError(`${o.what} ${path} is larger than ${o.maxBytes} bytes`);
    if (o.privateOnly && process.platform !== 'win32' && (st.mode & 0o077) !== 0)
      throw new SecretFileError(`${o.what} ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`);
    raw = await readFile(path);
  } catch (e) {
    if (e instanceof SecretFileError) throw e;
    throw new SecretFileError(`cannot read ${o.what} ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let end = raw.length;
  if (end > 0 && raw[end - 1] === 0x0a) end--;
  if (end > 0 && raw[end - 1] === 0x0d) end--;
  const out = Buffer.from(raw.subarray(0, end));
  raw.fill(0);
  if (out.length === 0) throw new SecretFileError(`${o.what} ${path} is empty`);
  return out;
}
