// An independent implementation of ARCHITECTURE §4 for interop tests: it shares
// no code with protocol/ (cbor-x for CBOR, node:crypto for hashing and signing,
// its own textbook-recursive RFC 9162 Merkle), written from the spec text.
// It produces records, batches, receipts and event proof bundles that the
// project's verifier must accept, and can be told to make specific mistakes.
import { Encoder, Tag } from 'cbor-x';
import { createHash, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false, variableMapSize: true } as ConstructorParameters<typeof Encoder>[0]);

const H = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** RFC 8949 §4.2.1 order by hand: ints (non-negative, then negative by magnitude), text by length then bytes. */
function canon(v: unknown): unknown {
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') {
    // cbor-x writes integers ≥ 2^32 as float64; a bigint gets the 8-byte integer form.
    if (typeof v === 'number' && Number.isInteger(v) && Math.abs(v) >= 2 ** 32) return BigInt(v);
    if (typeof v === 'number' && !Number.isInteger(v)) throw new Error('the independent producer emits no floats (cbor-x has no shortest-float mode)');
    return v;
  }
  if (Array.isArray(v)) return v.map(canon);
  const entries: [unknown, unknown][] = v instanceof Map ? [...v.entries()] : Object.entries(v as object);
  const rank = (k: unknown): [number, number, string] =>
    typeof k === 'number' ? (k >= 0 ? [0, k, ''] : [1, -1 - k, '']) : [2, Buffer.byteLength(k as string), k as string];
  entries.sort((a, b) => {
    const [x1, y1, z1] = rank(a[0]);
    const [x2, y2, z2] = rank(b[0]);
    return x1 - x2 || y1 - y2 || Buffer.compare(Buffer.from(z1), Buffer.from(z2));
  });
  return new Map(entries.map(([k, x]) => [k, canon(x)]));
}

export const enc = (v: unknown): Uint8Array => new Uint8Array(cbor.encode(canon(v)));

// RFC 9162 §2.1.1 / §2.1.3.1, recursively, as the RFC writes them.
const leaf = (d: Uint8Array) => H(new Uint8Array([0]), d);
const node = (l: Uint8Array, r: Uint8Array) => H(new Uint8Array([1]), l, r);
const split = (n: number) => 2 ** Math.floor(Math.log2(n - 1));
export function mth(d: Uint8Array[]): Uint8Array {
  if (d.length === 0) return H();
  if (d.length === 1) return leaf(d[0]);
  const k = split(d.length);
  return node(mth(d.slice(0, k)), mth(d.slice(k)));
}
export function path(m: number, d: Uint8Array[]): Uint8Array[] {
  if (d.length <= 1) return [];
  const k = split(d.length);
  return m < k ? [...path(m, d.slice(0, k)), mth(d.slice(k))] : [...path(m - k, d.slice(k)), mth(d.slice(0, k))];
}

export type IndAlg = 'EdDSA' | 'ES256';
export interface IndKey {
  alg: IndAlg;
  priv: KeyObject;
  pub: KeyObject;
  /** COSE_Key (public) as a Map. */
  coseKey: Map<number, unknown>;
  kid: Uint8Array;
}

const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

export function makeKey(alg: IndAlg): IndKey {
  const { privateKey, publicKey } = alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as { x: string; y?: string };
  const b = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
  const coseKey = alg === 'EdDSA' ? new Map<number, unknown>([[1, 1], [-1, 6], [-2, b(jwk.x)]]) : new Map<number, unknown>([[1, 2], [-1, 1], [-2, b(jwk.x)], [-3, b(jwk.y!)]]);
  // RFC 9679 §3: thumbprint over the required parameters only (here: all of them).
  return { alg, priv: privateKey, pub: publicKey, coseKey, kid: H(enc(coseKey)) };
}

function rawSign(k: IndKey, data: Uint8Array, highS = false): Uint8Array {
  if (k.alg === 'EdDSA') return new Uint8Array(nodeSign(null, data, k.priv));
  const sig = new Uint8Array(nodeSign('sha256', data, { key: k.priv, dsaEncoding: 'ieee-p1363' }));
  let s = BigInt('0x' + Buffer.from(sig.subarray(32)).toString('hex'));
  const high = s > P256_N / 2n;
  if (high !== highS) s = P256_N - s; // §4.2: low-S unless told to misbehave
  sig.set(Buffer.from(s.toString(16).padStart(64, '0'), 'hex'), 32);
  return sig;
}

function sign1(k: IndKey, prot: Map<number, unknown>, unprot: Map<number, unknown>, payload: Uint8Array, detached: boolean, highS = false): Uint8Array {
  const protBytes = enc(prot);
  const tbs = enc(['Signature1', protBytes, new Uint8Array(0), payload]);
  return new Uint8Array(cbor.encode(new Tag([protBytes, canon(unprot), detached ? null : payload, rawSign(k, tbs, highS)], 18)));
}

const algId = (a: IndAlg) => (a === 'EdDSA' ? -8 : -7);

export interface IndOptions {
  records?: number;
  deviceId?: string;
  /** Misbehaviours for negative tests. */
  highS?: boolean;
  vds?: number;
}

export interface IndResult {
  bundles: Uint8Array[];
  ledgerKey: IndKey;
  deviceKey: IndKey;
  records: Uint8Array[];
  batch: Uint8Array;
  receipt: Uint8Array;
}

/** One device, one batch of `records` records, committed at leaf 3 of a 6-leaf log; one bundle per record. */
export function produceBundles(deviceAlg: IndAlg, ledgerAlg: IndAlg, o: IndOptions = {}): IndResult {
  const n = o.records ?? 5;
  const deviceId = o.deviceId ?? 'independent-1';
  const deviceKey = makeKey(deviceAlg);
  const ledgerKey = makeKey(ledgerAlg);
  const records: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(32);
  for (let seq = 1; seq <= n; seq++) {
    const t = 1_764_000_000_000 + seq * 1000;
    const event = {
      type: 'ObjectEvent', action: 'OBSERVE', eventTime: new Date(t).toISOString(), eventTimeZoneOffset: '+00:00', bizStep: 'sensor_reporting',
      epcList: ['urn:epc:id:sscc:4012345.0000000009'],
      sensorElementList: [{ sensorReport: [{ type: 'Temperature', value: 4 + (seq % 3), uom: 'CEL' }] }],
    };
    const r = enc(new Map<number, unknown>([[1, deviceId], [2, seq], [3, prev], [4, t], [5, event]]));
    records.push(r);
    prev = H(r);
  }
  const header = enc(new Map<number, unknown>([[1, deviceId], [2, 1], [3, 1], [4, n], [5, mth(records)], [6, new Uint8Array(32)], [7, 1_764_000_100_000]]));
  const batch = sign1(deviceKey, new Map<number, unknown>([[1, algId(deviceAlg)], [3, 'application/vnd.iscm.batch+cbor'], [4, deviceKey.kid]]), new Map(), header, false, o.highS);
  // The log: five other entries around ours, at index 3.
  const entries = [0, 1, 2].map((i) => H(new TextEncoder().encode(`other ${i}`)));
  entries.push(H(batch));
  entries.push(H(new TextEncoder().encode('other 4')), H(new TextEncoder().encode('other 5')));
  const root = mth(entries);
  const receipt = sign1(
    ledgerKey,
    new Map<number, unknown>([[1, algId(ledgerAlg)], [4, ledgerKey.kid], [395, o.vds ?? 1], [15, new Map<number, unknown>([[1, 'independent-chain'], [6, 1_764_000_200]])], [-65537, entries.length]]),
    new Map<number, unknown>([[396, new Map<number, unknown>([[-1, [enc([entries.length, 3, path(3, entries)])]]])]]),
    root,
    true,
  );
  const bundles = records.map((r, i) => enc([r, [i, path(i, records)], batch, receipt, deviceKey.coseKey]));
  return { bundles, ledgerKey, deviceKey, records, batch, receipt };
}

export function ledgerPem(k: IndKey): string {
  return k.pub.export({ type: 'spki', format: 'pem' }) as string;
}
