// The device registry: which keys may sign batches for which device.
//
// Devices are enrolled, and keys revoked, by claims that an operator key signs
// (COSE_Sign1, tag 18). The ledger accepts only claims signed by an operator
// key in its config, and checks them again whenever it loads them from the
// store, so write access to etcd alone cannot enroll a device.
//
//   protected   { 1: alg, 3: content type, 4: kid = RFC 9679 thumbprint of the operator key }
//   unprotected {}
//   payload, content type "application/vnd.iscm.enroll+cbor":
//     Enrollment = { 1: device_id tstr, 2: device public COSE_Key map,
//                    3: not_before uint (ms), ? 4: not_after uint (ms),
//                    5: issued_at uint (ms), ? 6: chain_id tstr }
//   payload, content type "application/vnd.iscm.revoke+cbor":
//     Revocation = { 1: device_id tstr, 2: kid bstr(32) (thumbprint of the revoked device key),
//                    5: issued_at uint (ms), ? 6: chain_id tstr, ? 7: reason tstr }
//
// A revocation is final for that key. Of several enrollments of one key the
// latest issued_at wins (a re-enrollment can extend not_after). With chain_id
// present a claim is valid only on that chain.
import { decode, encode } from '../protocol/cbor.js';
import { equalBytes, toHex } from '../protocol/bytes.js';
import { amap, akeys, astr, auint, abytes, errorMessage, IscmError } from '../protocol/errors.js';
import { assertDeviceId } from '../protocol/record.js';
import { coseKeyFromMap, coseKeyToMap, thumbprint, type CoseKey } from '../protocol/cose/key.js';
import { decodeSign1, signSign1, verifySign1, HEADER, type CoseSigner } from '../protocol/cose/sign1.js';
import { LedgerError } from './errors.js';
import type { LedgerStore } from './store/store.js';
import type { StoredClaim } from './store/types.js';

export const ENROLL_CONTENT_TYPE = 'application/vnd.iscm.enroll+cbor';
export const REVOKE_CONTENT_TYPE = 'application/vnd.iscm.revoke+cbor';
const MAX_CLAIM_BYTES = 8 * 1024;

export interface Enrollment {
  deviceId: string;
  key: CoseKey;
  notBefore: number;
  notAfter?: number;
  issuedAt: number;
  chainId?: string;
}

export interface Revocation {
  deviceId: string;
  kid: Uint8Array;
  issuedAt: number;
  chainId?: string;
  reason?: string;
}

export type Claim = ({ kind: 'enroll' } & Enrollment) | ({ kind: 'revoke' } & Revocation);

export interface OperatorSigner extends CoseSigner {
  readonly kid: Uint8Array;
}

const bad = (m: string) => new LedgerError('REGISTRY', m);

export async function signEnrollment(op: OperatorSigner, e: Enrollment): Promise<Uint8Array> {
  assertDeviceId(e.deviceId);
  const m = new Map<number, unknown>([[1, e.deviceId], [2, coseKeyToMap(e.key)], [3, e.notBefore], [5, e.issuedAt]]);
  if (e.notAfter !== undefined) {
    if (e.notAfter <= e.notBefore) throw bad('not_after must be later than not_before');
    m.set(4, e.notAfter);
  }
  if (e.chainId !== undefined) m.set(6, e.chainId);
  return signClaim(op, ENROLL_CONTENT_TYPE, encode(m));
}

export async function signRevocation(op: OperatorSigner, r: Revocation): Promise<Uint8Array> {
  assertDeviceId(r.deviceId);
  if (r.kid.length !== 32) throw bad('the revoked kid must be a 32-byte key thumbprint');
  const m = new Map<number, unknown>([[1, r.deviceId], [2, r.kid], [5, r.issuedAt]]);
  if (r.chainId !== undefined) m.set(6, r.chainId);
  if (r.reason !== undefined) m.set(7, r.reason);
  return signClaim(op, REVOKE_CONTENT_TYPE, encode(m));
}

function signClaim(op: OperatorSigner, contentType: string, payload: Uint8Array): Promise<Uint8Array> {
  return signSign1(op, {
    protectedHeader: new Map<number, unknown>([[HEADER.alg, op.alg], [HEADER.contentType, contentType], [HEADER.kid, op.kid]]),
    payload,
  });
}

/**
 * Verifies a claim against the trusted operator keys (and the chain id, when
 * the claim names one). Throws LedgerError('REGISTRY') with the reason.
 */
export function verifyClaim(bytes: Uint8Array, operators: readonly CoseKey[], chainId?: string): Claim {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_CLAIM_BYTES) throw bad(`a claim is a COSE_Sign1 of at most ${MAX_CLAIM_BYTES} bytes`);
  try {
    const d = decodeSign1(bytes, { tagged: 'required', maxBytes: MAX_CLAIM_BYTES });
    const ct = d.protected.get(HEADER.contentType);
    if (ct !== ENROLL_CONTENT_TYPE && ct !== REVOKE_CONTENT_TYPE) throw bad(`claim content type must be ${ENROLL_CONTENT_TYPE} or ${REVOKE_CONTENT_TYPE}`);
    const kid = d.protected.get(HEADER.kid);
    if (!(kid instanceof Uint8Array)) throw bad('claim has no protected kid (the operator key thumbprint)');
    const op = operators.find((k) => equalBytes(thumbprint(k), kid));
    if (!op) throw bad(`claim is signed by operator key ${toHex(kid)}, which is not among the trusted operator keys`);
    verifySign1(d, op, { rejectHighS: true });
    if (!d.payload) throw bad('claim payload must be attached');
    const m = amap(decode(d.payload, { maxBytes: MAX_CLAIM_BYTES, maxDepth: 4 }), 'claim');
    let c: Claim;
    if (ct === ENROLL_CONTENT_TYPE) {
      akeys(m, 'enrollment', [1, 2, 3, 5], [4, 6]);
      const key = coseKeyFromMap(m.get(2), 'enrollment.2');
      c = { kind: 'enroll', deviceId: assertDeviceId(m.get(1), 'enrollment.1'), key, notBefore: auint(m.get(3), 'enrollment.3'), issuedAt: auint(m.get(5), 'enrollment.5') };
      if (m.has(4)) c.notAfter = auint(m.get(4), 'enrollment.4');
      if (m.has(6)) c.chainId = astr(m.get(6), 'enrollment.6');
    } else {
      akeys(m, 'revocation', [1, 2, 5], [6, 7]);
      c = { kind: 'revoke', deviceId: assertDeviceId(m.get(1), 'revocation.1'), kid: abytes(m.get(2), 'revocation.2', 32), issuedAt: auint(m.get(5), 'revocation.5') };
      if (m.has(6)) c.chainId = astr(m.get(6), 'revocation.6');
      if (m.has(7)) c.reason = astr(m.get(7), 'revocation.7');
    }
    if (chainId !== undefined && c.chainId !== undefined && c.chainId !== chainId) throw bad(`claim is for chain ${JSON.stringify(c.chainId)}, this ledger is ${JSON.stringify(chainId)}`);
    return c;
  } catch (e) {
    if (e instanceof LedgerError) throw e;
    if (e instanceof IscmError) throw new LedgerError('REGISTRY', `invalid claim: ${e.message}`, { cause: e });
    throw e;
  }
}

export function claimKid(c: Claim): Uint8Array {
  return c.kind === 'enroll' ? thumbprint(c.key) : c.kid;
}

export interface DeviceKey {
  kid: Uint8Array;
  key?: CoseKey;
  notBefore?: number;
  notAfter?: number;
  revoked?: { issuedAt: number; reason?: string };
}

export type KeyLookup = { ok: true; key: CoseKey } | { ok: false; reason: string };

/**
 * The registry as the ledger processes use it: claims verified on submit and
 * on every load, per-device cache with a short TTL (revocations take effect
 * within `ttlMs` on every process).
 */
export class Registry {
  #cache = new Map<string, { at: number; keys: DeviceKey[] }>();
  readonly invalidStored: string[] = [];
  constructor(
    readonly store: LedgerStore,
    readonly operators: readonly CoseKey[],
    readonly chainId: string,
    readonly ttlMs = 2000,
  ) {}

  /** Verifies and stores a claim; returns it. */
  async submit(bytes: Uint8Array): Promise<Claim> {
    const c = verifyClaim(bytes, this.operators, this.chainId);
    const stored: StoredClaim = { kind: c.kind, deviceId: c.deviceId, kid: claimKid(c), claim: bytes };
    if (c.kind === 'enroll') {
      // Keep the latest enrollment of a key.
      const existing = (await this.store.claims(c.deviceId)).find((s) => s.kind === 'enroll' && equalBytes(s.kid, stored.kid));
      if (existing) {
        try {
          const old = verifyClaim(existing.claim, this.operators, this.chainId);
          if (old.issuedAt > c.issuedAt) throw bad(`a later enrollment of this key exists (issued_at ${old.issuedAt} > ${c.issuedAt})`);
        } catch (e) {
          if (e instanceof LedgerError && /later enrollment/.test(e.message)) throw e;
        }
      }
    }
    await this.store.putClaim(stored);
    this.#cache.delete(c.deviceId);
    return c;
  }

  /** Keys of a device, from verified claims (cached for ttlMs). */
  async keys(deviceId: string, fresh = false): Promise<DeviceKey[]> {
    const now = Date.now();
    const hit = this.#cache.get(deviceId);
    if (hit && !fresh && now - hit.at < this.ttlMs) return hit.keys;
    const byKid = new Map<string, DeviceKey & { issued?: number }>();
    for (const s of await this.store.claims(deviceId)) {
      let c: Claim;
      try {
        c = verifyClaim(s.claim, this.operators, this.chainId);
        if (c.deviceId !== deviceId || !equalBytes(claimKid(c), s.kid)) throw bad('stored under the wrong device or kid');
      } catch (e) {
        this.invalidStored.push(`${deviceId}/${toHex(s.kid)}: ${errorMessage(e)}`);
        continue;
      }
      const k = toHex(s.kid);
      const dk = byKid.get(k) ?? { kid: s.kid };
      if (c.kind === 'enroll') {
        if (dk.issued === undefined || c.issuedAt >= dk.issued) {
          dk.key = c.key;
          dk.notBefore = c.notBefore;
          dk.notAfter = c.notAfter;
          dk.issued = c.issuedAt;
        }
      } else dk.revoked = { issuedAt: c.issuedAt, reason: c.reason };
      byKid.set(k, dk);
    }
    const keys = [...byKid.values()].map(({ issued: _i, ...k }) => k);
    this.#cache.set(deviceId, { at: now, keys });
    if (this.#cache.size > 100_000) this.#cache.delete(this.#cache.keys().next().value as string);
    return keys;
  }

  /** The key that may verify a batch of `deviceId` with `kid` at time `now`, or why none. */
  async lookup(deviceId: string, kid: Uint8Array, now = Date.now()): Promise<KeyLookup> {
    let keys = await this.keys(deviceId);
    if (keys.length === 0) keys = await this.keys(deviceId, true);
    if (keys.length === 0) return { ok: false, reason: `unknown device ${deviceId}: not enrolled` };
    const k = keys.find((x) => equalBytes(x.kid, kid));
    if (!k || !k.key) return { ok: false, reason: `device ${deviceId} has no enrolled key with kid ${toHex(kid)}` };
    if (k.revoked) return { ok: false, reason: `device key ${toHex(kid)} of ${deviceId} is revoked${k.revoked.reason ? ` (${k.revoked.reason})` : ''}` };
    if (k.notBefore !== undefined && now < k.notBefore) return { ok: false, reason: `device key of ${deviceId} is not valid before ${new Date(k.notBefore).toISOString()}` };
    if (k.notAfter !== undefined && now >= k.notAfter) return { ok: false, reason: `device key of ${deviceId} expired at ${new Date(k.notAfter).toISOString()}` };
    return { ok: true, key: k.key };
  }

  /** The enrolled public key with this kid (revoked or not): bundles carry the key that signed. */
  async keyByKid(deviceId: string, kid: Uint8Array): Promise<CoseKey | undefined> {
    return (await this.keys(deviceId)).find((x) => equalBytes(x.kid, kid))?.key;
  }
}
