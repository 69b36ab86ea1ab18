// npm run bench -- protocol: signing, Merkle and record codec throughput, with
// the alternative implementations measured side by side in the same run.
// Goals (issue "Foundation"): Ed25519 software signing ≥ 20k/s, Merkle ≥ 500k
// leaves/s, record codec ≥ 200k/s each way.
import { generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { loadavg } from 'node:os';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { Encoder, decode as xdecode } from 'cbor-x';
import { emit, opsPerSec, opsPerSecAndCpu, opsPerSecAsync, table } from './_util.js';
import { decodeRecord, encodeRecord } from '../protocol/record.js';
import { decode, encode } from '../protocol/cbor.js';
import { leafHash, merkleRoot, rootFromLeafHashes } from '../protocol/merkle.js';
import { ALG } from '../protocol/cose/algorithms.js';
import { signBatch, verifyBatch } from '../protocol/batch-sign.js';
import { softwareSignerFromKey } from '../drivers/software/signer.js';
import { recordChain } from '../test/helpers/fixtures.js';

const MS = Number(process.env.BENCH_MS ?? 1000);
const msg = new Uint8Array(200).fill(7); // about a Sig_structure of a batch header
emit({ bench: 'protocol', name: 'env', node: process.version, loadavg_1m: loadavg()[0] });

// ---- signatures: node:crypto vs @noble/curves, raw, per algorithm ----
const ed = generateKeyPairSync('ed25519');
const p = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const edSig = nodeSign(null, msg, ed.privateKey);
const pSig = nodeSign('sha256', msg, { key: p.privateKey, dsaEncoding: 'ieee-p1363' });
const k1Sig = nodeSign('sha256', msg, { key: k1.privateKey, dsaEncoding: 'ieee-p1363' });
const pssOpts = { key: rsa.privateKey, padding: 6, saltLength: 32 };
const rsaSig = nodeSign('sha256', msg, pssOpts);
const rows: [string, string, () => unknown, () => unknown][] = [
  ['EdDSA', 'node:crypto', () => nodeSign(null, msg, ed.privateKey), () => nodeVerify(null, msg, ed.publicKey, edSig)],
  ['ES256', 'node:crypto', () => nodeSign('sha256', msg, { key: p.privateKey, dsaEncoding: 'ieee-p1363' }), () => nodeVerify('sha256', msg, { key: p.publicKey, dsaEncoding: 'ieee-p1363' }, pSig)],
  ['ES256K', 'node:crypto', () => nodeSign('sha256', msg, { key: k1.privateKey, dsaEncoding: 'ieee-p1363' }), () => nodeVerify('sha256', msg, { key: k1.publicKey, dsaEncoding: 'ieee-p1363' }, k1Sig)],
  ['PS256', 'node:crypto', () => nodeSign('sha256', msg, pssOpts), () => nodeVerify('sha256', msg, { key: rsa.publicKey, padding: 6, saltLength: 32 }, rsaSig)],
];
{
  const sk = ed25519.utils.randomSecretKey();
  const pk = ed25519.getPublicKey(sk);
  const s = ed25519.sign(msg, sk);
  rows.push(['EdDSA', '@noble/curves', () => ed25519.sign(msg, sk), () => ed25519.verify(s, msg, pk)]);
  const psk = p256.utils.randomSecretKey();
  const ppk = p256.getPublicKey(psk);
  const ps = p256.sign(msg, psk);
  rows.push(['ES256', '@noble/curves', () => p256.sign(msg, psk), () => p256.verify(ps, msg, ppk)]);
  const ksk = secp256k1.utils.randomSecretKey();
  const kpk = secp256k1.getPublicKey(ksk);
  const ks = secp256k1.sign(msg, ksk);
  rows.push(['ES256K', '@noble/curves', () => secp256k1.sign(msg, ksk), () => secp256k1.verify(ks, msg, kpk)]);
}
for (const [alg, impl, s, v] of rows) {
  emit({ bench: 'protocol', name: 'sign_raw', alg, impl, signs_per_s: opsPerSec(s, MS, 10), ...(alg === 'EdDSA' && impl === 'node:crypto' ? { goal: 20000 } : {}) });
  emit({ bench: 'protocol', name: 'verify_raw', alg, impl, verifies_per_s: opsPerSec(v, MS, 10) });
}

// ---- the project's path: software signer → COSE_Sign1 batch, and its verification ----
const { bytes: recBytes } = recordChain('bench-dev', 256);
const header = { deviceId: 'bench-dev', batchSeq: 1, firstSeq: 1, count: 256, root: merkleRoot(recBytes), prev: new Uint8Array(32), time: Date.now() };
for (const [alg, kp] of [[ALG.EdDSA, ed], [ALG.ES256, p], [ALG.ES256K, k1], [ALG.PS256, rsa]] as const) {
  const signer = softwareSignerFromKey(alg, kp.privateKey);
  const one = await signBatch(signer, header);
  emit({ bench: 'protocol', name: 'sign_batch', alg, impl: 'software signer + COSE_Sign1', signs_per_s: await opsPerSecAsync(() => signBatch(signer, header), MS) });
  emit({ bench: 'protocol', name: 'verify_batch', alg, impl: 'verifyBatch (kid, low-S, COSE)', verifies_per_s: opsPerSec(() => verifyBatch(one, signer.publicKey), MS, 10) });
}

// ---- Merkle ----
{
  const data = Array.from({ length: 1 << 20 }, (_, i) => {
    const b = new Uint8Array(32);
    new DataView(b.buffer).setUint32(0, i);
    return b;
  });
  emit({ bench: 'protocol', name: 'merkle_leaf_hash', leaf_bytes: 32, leaves_per_s: opsPerSec((i) => leafHash(data[i & 0xfffff]), MS, 1000), goal: 500000 });
  let t = performance.now();
  const root = merkleRoot(data);
  const withLeaves = performance.now() - t;
  const hashes = data.map(leafHash);
  t = performance.now();
  rootFromLeafHashes(hashes);
  const fromHashes = performance.now() - t;
  emit({ bench: 'protocol', name: 'merkle_root_1M', leaves: data.length, ms_including_leaf_hashing: withLeaves, leaves_per_s: (data.length * 1000) / withLeaves, ms_from_leaf_hashes: fromHashes, goal_leaves_per_s: 500000, root_prefix: Buffer.from(root.subarray(0, 4)).toString('hex') });
}

// ---- record codec: ours vs cbor-x on the same ~600-byte record ----
{
  const { records, bytes } = recordChain('bench-dev', 1000);
  const xenc = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false } as ConstructorParameters<typeof Encoder>[0]);
  const asMaps = records.map((r) => new Map<number, unknown>([[1, r.deviceId], [2, r.seq], [3, r.prev], [4, r.time], [5, r.event], [6, r.source]]));
  const row = (name: string, impl: string, fn: (i: number) => unknown, goal?: number) =>
    emit({ bench: 'protocol', name, impl, record_bytes: bytes[0].length, ...opsPerSecAndCpu(fn, MS), ...(goal ? { goal } : {}) });
  row('record_encode', 'iscm (validated, deterministic)', (i) => encodeRecord(records[i % 1000]), 200000);
  row('record_decode', 'iscm (strict, canonical check, typed)', (i) => decodeRecord(bytes[i % 1000]), 200000);
  row('cbor_encode', 'iscm cbor.encode of the record map (no record checks)', (i) => encode(asMaps[i % 1000]));
  row('cbor_decode', 'iscm cbor.decode to Maps (no JSON mode, no record checks)', (i) => decode(bytes[i % 1000]));
  row('cbor_encode', 'cbor-x (not deterministic: no key sort, float64)', (i) => xenc.encode(asMaps[i % 1000]));
  row('cbor_decode', 'cbor-x (no canonical check)', (i) => xdecode(bytes[i % 1000]));
}
table();
