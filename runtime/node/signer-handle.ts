// The device key, as the light node holds it: opened from the config's
// `signer` section (PKCS#11 token or software key file) in the background,
// and re-opened with capped backoff when opening fails — a token that is not
// plugged in at boot, a wrong PIN file being fixed, a key file on a slow
// mount. The node runs meanwhile (readings are journaled; batches wait), and
// the failure is reported, not fatal (lifecycle discipline).
//
// Once open, the public key is written to the state directory
// (device-key.cose) so that `iscm-edge export-proof` can put it in a bundle
// without the PIN. The key never leaves the token (invariant 4): only its
// public half is written.
import { join } from 'node:path';
import { Backoff } from '../../drivers/backoff.js';
import { writeFileAtomic } from '../../drivers/fs/atomic.js';
import type { Signer } from '../../drivers/signer.js';
import { encodeCoseKey } from '../../protocol/cose/key.js';
import { ALG } from '../../protocol/cose/algorithms.js';
import { errorMessage, IscmError } from '../../protocol/errors.js';
import { toHex } from '../../protocol/bytes.js';
import type { SignerConfig } from '../config/types.js';
import type { Logger } from '../ops/log.js';

export const DEVICE_KEY_FILE = 'device-key.cose';

/**
 * Failures a retry cannot fix and could make worse: trying a wrong PIN again
 * counts down the token's PIN attempts until it locks (then only the SO can
 * unlock it). These stop the retries until an operator fixes it and restarts.
 */
const NO_RETRY = new Set(['PIN_INCORRECT', 'PIN_LOCKED', 'PIN_FINAL_TRY', 'PIN_EXPIRED', 'PIN_NOT_INITIALIZED', 'KEY_MISMATCH']);

/** Opens the signer a config names (no retries; SignerHandle retries). */
export async function openConfiguredSigner(c: SignerConfig, env: NodeJS.ProcessEnv = process.env): Promise<Signer> {
  if (c.driver === 'software') {
    const { openSoftwareSigner } = await import('../../drivers/software/signer.js');
    return openSoftwareSigner(c.key_file!, { passphraseFile: c.passphrase_file, passphraseEnv: c.passphrase_env, env });
  }
  const { openPkcs11Signer } = await import('../../drivers/pkcs11/signer.js');
  return openPkcs11Signer({
    module: c.module,
    ...(c.uri ? { uri: c.uri } : {}),
    ...(c.token !== undefined ? { token: c.token } : {}),
    ...(c.slot !== undefined ? { slotId: c.slot } : {}),
    ...(c.key_label !== undefined ? { label: c.key_label } : {}),
    ...(c.pin_file !== undefined ? { pinFile: c.pin_file } : {}),
    ...(c.pin_env !== undefined ? { pinEnv: c.pin_env } : {}),
    ...(c.alg ? { alg: ALG[c.alg] } : {}),
    env,
  });
}

export interface SignerHandleOptions {
  open: () => Promise<Signer>;
  stateDir: string;
  log: Logger;
  backoff?: { initialMs?: number; maxMs?: number };
}

export type SignerHandleState = 'opening' | 'ready' | 'failed' | 'closed';

export class SignerHandle {
  private signer: Signer | undefined;
  private opening: Promise<Signer> | undefined;
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** A failure retrying cannot fix (see NO_RETRY): no more attempts. */
  permanent = false;
  state: SignerHandleState = 'opening';
  lastError: string | undefined;
  private waiters: { resolve: (s: Signer) => void; reject: (e: unknown) => void }[] = [];

  constructor(private readonly o: SignerHandleOptions) {
    this.backoff = new Backoff({ initialMs: o.backoff?.initialMs ?? 1000, maxMs: o.backoff?.maxMs ?? 60_000 });
  }

  /** Starts opening in the background; never throws. */
  start(): void {
    this.attempt();
  }

  private attempt(): void {
    if (this.closed || this.opening || this.signer || this.permanent) return;
    this.opening = this.o.open();
    this.opening.then(
      async (s) => {
        this.opening = undefined;
        if (this.closed) {
          await s.close?.().catch(() => {});
          return;
        }
        this.signer = s;
        this.state = 'ready';
        this.lastError = undefined;
        this.backoff.reset();
        this.o.log.info('signing key ready', { kid: toHex(s.kid), alg: s.alg });
        await writeFileAtomic(join(this.o.stateDir, DEVICE_KEY_FILE), encodeCoseKey(s.publicKey)).catch((e) =>
          this.o.log.warn('could not write the device public key to the state directory (export-proof needs it)', { error: e }),
        );
        for (const w of this.waiters.splice(0)) w.resolve(s);
      },
      (e) => {
        this.opening = undefined;
        this.state = 'failed';
        this.lastError = errorMessage(e);
        for (const w of this.waiters.splice(0)) w.reject(e);
        const reason = (e as { reason?: string }).reason;
        if (reason && NO_RETRY.has(reason)) {
          this.permanent = true;
          this.lastError = `${this.lastError} — not retried (another try could lock the token): fix it, then restart the node`;
          this.o.log.error('cannot open the signing key and will not retry; batches wait, readings are still journaled', { error: e instanceof IscmError ? e : this.lastError, reason });
          return;
        }
        const delay = this.backoff.next();
        this.o.log.error('cannot open the signing key; batches wait, readings are still journaled', { error: e instanceof IscmError ? e : this.lastError, retry_in_ms: delay });
        this.timer = setTimeout(() => this.attempt(), delay);
        this.timer.unref?.();
      },
    );
  }

  /** The open signer; while it is not open, rejects with the last error once the current attempt fails. */
  get(): Promise<Signer> {
    if (this.signer) return Promise.resolve(this.signer);
    if (this.closed) return Promise.reject(new IscmError('SIGNER_ERROR', 'the signer is closed'));
    if (!this.opening && this.lastError) return Promise.reject(new IscmError('SIGNER_ERROR', `the signing key is not open yet: ${this.lastError}`));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** The signer's own view (PKCS#11: ready / lost / failed) when it has one. */
  detail(): Record<string, unknown> {
    const s = this.signer as (Signer & { status?: () => { state: string; uri?: string } }) | undefined;
    const st = s?.status?.();
    return { state: st?.state === 'lost' ? 'token_removed' : this.state, ...(st?.uri ? { uri: st.uri } : {}), ...(s ? { kid: toHex(s.kid), alg: s.alg } : {}), ...(this.lastError ? { error: this.lastError } : {}) };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.state = 'closed';
    clearTimeout(this.timer);
    await this.opening?.catch(() => {});
    const s = this.signer;
    this.signer = undefined;
    for (const w of this.waiters.splice(0)) w.reject(new IscmError('SIGNER_ERROR', 'the signer is closed'));
    await s?.close?.().catch(() => {});
  }
}
