// RFC 9162 Merkle tree over SHA-256 — the one Merkle implementation of the project.
//
// The device batcher takes the root of a batch's records (ARCHITECTURE §4.2), the
// ledger sequencer grows one log whose leaves are batch hashes (§4.4), and both
// verifiers (device receipts, offline event bundles) check inclusion and
// consistency proofs. They must all agree bit for bit, so there is exactly one
// definition of the tree here, and every other module imports it.
//
// Policy on top of the bare RFC algorithms (that of transparency-dev's Go verifier,
// see ../shared/vectors/merkle/README.md, plus 32-byte roots), in every verifier:
//   * every hash — leaf hash, root, each path entry — is exactly 32 bytes. The RFC
//     algorithms would accept any length, but a hash of another length can only come
//     from a bug or an attack, so we refuse it with a reason instead of hashing it.
//     Upstream does not check root lengths when size1 = size2 (it only compares the
//     roots), so one upstream "accept" vector with 12-byte roots is rejected here;
//   * a consistency proof from size1 = 0 is rejected, even for size2 = 0: every tree
//     extends the empty tree, so such a "proof" proves nothing, and accepting it
//     would let a device skip the check that links its stored tree head to a new one;
//   * size1 = size2 > 0 is consistent only with an empty proof and equal roots;
//   * an index must be below the tree size; sizes are safe non-negative integers
//     (anything beyond 2^53 - 1 cannot be represented exactly, so it is refused).
// Verifiers throw VerifyError('MERKLE_INVALID') naming the field; builders, which get
// local data, throw ValidationError. Nothing here does I/O.

import { Buffer } from 'node:buffer';
import * as nodeCrypto from 'node:crypto';
import { equalBytes, fromHex, latin1Bytes, sha256Latin1, toHex } from './bytes.js';
import { ValidationError, VerifyError } from './errors.js';

/** Size of every hash in the tree (SHA-256). */
export const HASH_SIZE = 32;

/**
 * MTH({}) = SHA-256("") (RFC 9162 §2.1.1). Shared constant: never mutate it; every
 * function here returns a fresh copy instead of this object.
 */
export const EMPTY_ROOT: Uint8Array = fromHex('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
const EMPTY = EMPTY_ROOT.slice(); // private copy, safe from callers mutating the export

// ---------------------------------------------------------------------------
// Hashing primitives
//
// Speed matters (a batch root over thousands of records on a small gateway, a log
// of millions of leaves), and on Node the cost of SHA-256 over 65 bytes is almost
// all call overhead and garbage: a 32-byte Buffer per digest has its own backing
// store, and collecting millions of those halves the throughput. So the hot paths
// take the digest as a 32-character latin1 string (an ordinary V8 string, cheap to
// collect) and write it straight into one contiguous Buffer per tree level, and the
// 0x01 ‖ left ‖ right input is assembled in one reused scratch buffer.
// ---------------------------------------------------------------------------

// Hashes as latin1 strings ('binary': one char per byte) from protocol/bytes.ts: the
// one-shot crypto.hash where Node has it (see there).

// Safe to share: nothing here is async or re-entrant between filling and hashing it.
const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE);
nodeScratch[0] = 0x01;

// Leaf data is copied behind the 0x00 prefix into a reused buffer for the same
// reason; beyond this size the copy is not worth the memory, so it streams.
const LEAF_SCRATCH_MAX = 16 * 1024;
let leafScratch = Buffer.alloc(512);
const LEAF_PREFIX = new Uint8Array([0x00]);

/** SHA-256(0x00 ‖ data) as latin1. */
function leafStr(data: Uint8Array): string {
  const n = data.length + 1;
  if (n > LEAF_SCRATCH_MAX) return nodeCrypto.createHash('sha256').update(LEAF_PREFIX).update(data).digest('binary');
  if (n > leafScratch.length) leafScratch = Buffer.alloc(Math.min(LEAF_SCRATCH_MAX, Math.max(n, leafScratch.length * 2)));
  leafScratch[0] = 0x00;
  leafScratch.set(data, 1);
  return sha256Latin1(leafScratch.subarray(0, n));
}

/** SHA-256(0x01 ‖ left ‖ right) as latin1; both inputs already known to be 32 bytes. */
function nodeStr(left: Uint8Array, right: Uint8Array): string {
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return sha256Latin1(nodeScratch);
}

/** Node hash of the sibling pair stored contiguously at buf[off : off+64]. */
function nodeStrAt(buf: Buffer, off: number): string {
  buf.copy(nodeScratch, 1, off, off + 2 * HASH_SIZE);
  return sha256Latin1(nodeScratch);
}

/** A latin1 digest as a plain, unshared 32-byte Uint8Array (small enough to live on V8's heap). */
const toBytes = latin1Bytes;

function nodeDigest(left: Uint8Array, right: Uint8Array): Uint8Array {
  return toBytes(nodeStr(left, right));
}

/** A plain, unshared Uint8Array copy: callers may keep or mutate what we return. */
function copyOut(h: Uint8Array): Uint8Array {
  return new Uint8Array(h);
}

/** RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 ‖ data). The prefix keeps leaves and nodes apart (second-preimage resistance). */
export function leafHash(data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new ValidationError('data', `expected a byte string, got ${describe(data)}`);
  return toBytes(leafStr(data));
}

/** RFC 9162 §2.1.1 interior node hash: SHA-256(0x01 ‖ left ‖ right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  needHash(left, 'left');
  needHash(right, 'right');
  return nodeDigest(left, right);
}

// ---------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/** Builder-side hash check (local data): ValidationError. */
function needHash(v: unknown, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new ValidationError(field, `expected a ${HASH_SIZE}-byte hash, got ${describe(v)}`);
  if (v.length !== HASH_SIZE) throw new ValidationError(field, `expected a ${HASH_SIZE}-byte hash, got ${v.length} bytes`);
  return v;
}

function needUint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new ValidationError(field, `expected a non-negative safe integer, got ${typeof v === 'number' ? v : describe(v)}`);
  return v;
}

function needHashArray(v: unknown, field: string, count: number): readonly Uint8Array[] {
  if (!Array.isArray(v)) throw new ValidationError(field, `expected an array of ${HASH_SIZE}-byte hashes, got ${describe(v)}`);
  for (let i = 0; i < count; i++) needHash(v[i], `${field}[${i}]`);
  return v as readonly Uint8Array[];
}

function fail(field: string, reason: string): VerifyError {
  return new VerifyError('MERKLE_INVALID', `${field}: ${reason}`, field);
}

/** Verifier-side checks (data from the wire): VerifyError MERKLE_INVALID. */
function checkHash(v: unknown, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw fail(field, `expected a ${HASH_SIZE}-byte hash, got ${describe(v)}`);
  if (v.length !== HASH_SIZE) throw fail(field, `expected a ${HASH_SIZE}-byte hash, got ${v.length} bytes`);
  return v;
}

function checkUint(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw fail(field, `expected a non-negative safe integer, got ${typeof v === 'number' ? v : describe(v)}`);
  return v;
}

function checkProof(v: unknown, field: string): readonly Uint8Array[] {
  if (!Array.isArray(v)) throw fail(field, `expected an array of ${HASH_SIZE}-byte hashes, got ${describe(v)}`);
  // No proof for a tree below 2^53 leaves has more than 54 entries; refuse a huge
  // array before checking or hashing any of it.
  if (v.length > 128) throw fail(field, `has ${v.length} entries, more than any tree of up to 2^53 - 1 leaves needs`);
  for (let i = 0; i < v.length; i++) checkHash(v[i], `${field}[${i}]`);
  return v as readonly Uint8Array[];
}

// ---------------------------------------------------------------------------
// Tree shape. Sizes go up to 2^53 - 1, so no 32-bit bit operators below.
// ---------------------------------------------------------------------------

const isOdd = (x: number): boolean => x % 2 === 1;
const half = (x: number): number => Math.floor(x / 2);

/** k in RFC 9162 §2.1.1: the largest power of two strictly smaller than n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

function popCount(n: number): number {
  let c = 0;
  for (let x = n; x > 0; x = half(x)) if (isOdd(x)) c++;
  return c;
}

/** A leaf range [lo, hi) whose MTH is one proof entry. */
type Range = readonly [lo: number, hi: number];

/**
 * The subtrees whose roots form PATH(m, D[0:n]) (RFC 9162 §2.1.3.1), in proof order
 * (leaf side first). The RFC recursion descends towards the leaf and appends the
 * sibling subtree *after* the deeper part; walking top-down collects the siblings
 * root side first, so the list is reversed at the end.
 */
function inclusionRanges(m: number, n: number): Range[] {
  const out: Range[] = [];
  let lo = 0;
  let hi = n;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (m < lo + k) {
      out.push([lo + k, hi]);
      hi = lo + k;
    } else {
      out.push([lo, lo + k]);
      lo += k;
    }
  }
  return out.reverse();
}

/**
 * The subtrees whose roots form PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true)
 * (RFC 9162 §2.1.4.1), 0 < m < n, in proof order. `complete` is the RFC's flag b:
 * it stays true while D[0:m] is a left subtree the verifier already knows as root1,
 * and only when the recursion had to go right must the node MTH(D[lo:m]) be sent.
 */
function consistencyRanges(m: number, n: number): Range[] {
  const siblings: Range[] = [];
  let lo = 0;
  let hi = n;
  let complete = true;
  while (hi !== m) {
    const k = splitPoint(hi - lo);
    if (m - lo <= k) {
      siblings.push([lo + k, hi]);
      hi = lo + k;
    } else {
      siblings.push([lo, lo + k]);
      lo += k;
      complete = false;
    }
  }
  siblings.reverse();
  return complete ? siblings : [[lo, hi], ...siblings];
}

// ---------------------------------------------------------------------------
// Merkle Tree Hash (RFC 9162 §2.1.1)
// ---------------------------------------------------------------------------

/**
 * Reduces n hashes stored contiguously in buf[0 : 32n) to MTH, left in buf[0 : 32).
 * Bottom-up pairing with the odd last node promoted unchanged equals the RFC's
 * recursive split at the largest power of two k < n: at height h, entry j covers
 * leaves [j·2^h, min((j+1)·2^h, n)), and for a range of more than 2^(h-1) leaves k is
 * exactly 2^(h-1), the pair boundary. Iterating avoids the recursion's slicing and
 * needs no memory beyond the leaf level (each parent overwrites the left child's
 * slot after both children were copied out).
 */
function reduceInPlace(buf: Buffer, n: number): void {
  let m = n;
  while (m > 1) {
    const pairs = Math.floor(m / 2);
    for (let j = 0; j < pairs; j++) buf.write(nodeStrAt(buf, 2 * HASH_SIZE * j), HASH_SIZE * j, HASH_SIZE, 'latin1');
    if (m % 2 === 1) buf.copy(buf, HASH_SIZE * pairs, HASH_SIZE * (m - 1), HASH_SIZE * m);
    m = pairs + (m % 2);
  }
}

/** MTH of `n` hashes given by `write(buf, i, offset)`; a fresh plain Uint8Array. */
function mthOf(n: number, write: (buf: Buffer, i: number, offset: number) => void): Uint8Array {
  if (n === 0) return copyOut(EMPTY);
  const buf = Buffer.allocUnsafe(n * HASH_SIZE);
  for (let i = 0; i < n; i++) write(buf, i, i * HASH_SIZE);
  reduceInPlace(buf, n);
  return copyOut(buf.subarray(0, HASH_SIZE));
}

/** MTH over already hashed leaves (RFC 9162 §2.1.1). A single leaf's root is its leaf hash. */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Uint8Array {
  if (!Array.isArray(hashes)) throw new ValidationError('leafHashes', `expected an array of ${HASH_SIZE}-byte hashes, got ${describe(hashes)}`);
  return mthOf(hashes.length, (buf, i, off) => buf.set(needHash(hashes[i], `leafHashes[${i}]`), off));
}

/** MTH over leaf data: each entry is hashed as a leaf first (SHA-256(0x00 ‖ data)). */
export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (!Array.isArray(leaves)) throw new ValidationError('leaves', `expected an array of byte strings, got ${describe(leaves)}`);
  return mthOf(leaves.length, (buf, i, off) => {
    buf.write(leafStr(needData(leaves[i], `leaves[${i}]`)), off, HASH_SIZE, 'latin1');
  });
}

function needData(v: unknown, field: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new ValidationError(field, `expected a byte string, got ${describe(v)}`);
  return v;
}

// ---------------------------------------------------------------------------
// Proof generation
// ---------------------------------------------------------------------------

/**
 * Leaf hashes of a log that need not sit in one array (a store, a file of tiles).
 * `subtree(start, end)`, if given, returns MTH(D[start:end]) for the ranges proofs
 * need — a source that keeps interior nodes answers in O(1) instead of rehashing
 * the range. `MerkleTree` is such a source.
 */
export interface HashSource {
  readonly size: number;
  leaf(index: number): Uint8Array;
  subtree?(start: number, end: number): Uint8Array;
}

/** Leaf hashes in an array, or a HashSource. */
export type LeafHashes = readonly Uint8Array[] | HashSource;

interface RangeHasher {
  readonly size: number;
  /** MTH(D[lo:hi]); may alias internal storage, copy before returning it. */
  range(lo: number, hi: number): Uint8Array;
}

function rangeOf(get: (i: number) => Uint8Array, lo: number, hi: number): Uint8Array {
  return mthOf(hi - lo, (buf, i, off) => buf.set(get(lo + i), off));
}

/** Wraps the accepted source kinds; `need` leaves [0, need) must be present. */
function rangeHasher(src: LeafHashes, field: string, need: number): RangeHasher {
  if (Array.isArray(src)) {
    const arr = src as readonly Uint8Array[];
    if (arr.length < need) throw new ValidationError(field, `has ${arr.length} leaf hashes, need at least ${need}`);
    needHashArray(arr, field, need);
    return { size: arr.length, range: (lo, hi) => rangeOf((i) => arr[i], lo, hi) };
  }
  if (typeof src !== 'object' || src === null || typeof (src as HashSource).leaf !== 'function')
    throw new ValidationError(field, `expected an array of leaf hashes or a HashSource, got ${describe(src)}`);
  const s = src as HashSource;
  const size = needUint(s.size, `${field}.size`);
  if (size < need) throw new ValidationError(field, `has ${size} leaves, need at least ${need}`);
  const leaf = (i: number): Uint8Array => needHash(s.leaf(i), `${field}.leaf(${i})`);
  if (typeof s.subtree === 'function') {
    const sub = s.subtree.bind(s);
    return {
      size,
      range: (lo, hi) => (hi - lo === 1 ? leaf(lo) : needHash(sub(lo, hi), `${field}.subtree(${lo}, ${hi})`)),
    };
  }
  return { size, range: (lo, hi) => rangeOf(leaf, lo, hi) };
}

function materialise(t: RangeHasher, ranges: readonly Range[]): Uint8Array[] {
  return ranges.map(([lo, hi]) => copyOut(t.range(lo, hi)));
}

/**
 * PATH(index, D[0:treeSize]) (RFC 9162 §2.1.3.1), leaf side first. `treeSize`
 * defaults to all leaves of the source, so a log can prove against an older head.
 * With an array this rehashes the other n-1 leaves (O(n)); to prove many leaves of
 * one tree, build a MerkleTree once and ask it.
 */
export function inclusionProof(leafHashes: LeafHashes, index: number, treeSize?: number): Uint8Array[] {
  const size = treeSize === undefined ? sourceSize(leafHashes, 'leafHashes') : needUint(treeSize, 'treeSize');
  needUint(index, 'index');
  if (index >= size) throw new ValidationError('index', `leaf index ${index} is not below the tree size ${size}`);
  const t = rangeHasher(leafHashes, 'leafHashes', size);
  return materialise(t, inclusionRanges(index, size));
}

/**
 * PROOF(size1, D[0:size2]) (RFC 9162 §2.1.4.1). size1 = size2 gives the empty proof;
 * size1 = 0 is refused (the verifier would reject the result, see the policy above).
 */
export function consistencyProof(leafHashes: LeafHashes, size1: number, size2?: number): Uint8Array[] {
  const n = size2 === undefined ? sourceSize(leafHashes, 'leafHashes') : needUint(size2, 'size2');
  const m = needConsistencySizes(size1, n);
  return consistencyFrom(rangeHasher(leafHashes, 'leafHashes', n), m, n);
}

function needConsistencySizes(size1: unknown, n: number): number {
  const m = needUint(size1, 'size1');
  if (m === 0) throw new ValidationError('size1', 'a consistency proof from the empty tree is not defined (RFC 9162 §2.1.4.1 needs 0 < size1)');
  if (m > n) throw new ValidationError('size1', `size1 ${m} is larger than size2 ${n}`);
  return m;
}

function consistencyFrom(t: RangeHasher, m: number, n: number): Uint8Array[] {
  return m === n ? [] : materialise(t, consistencyRanges(m, n));
}

function sourceSize(src: LeafHashes, field: string): number {
  if (Array.isArray(src)) return src.length;
  if (typeof src === 'object' && src !== null) return needUint((src as HashSource).size, `${field}.size`);
  throw new ValidationError(field, `expected an array of leaf hashes or a HashSource, got ${describe(src)}`);
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/**
 * Recomputes the root from an inclusion proof (RFC 9162 §2.1.3.2). COSE Receipts
 * (RFC 9942) carry no root: the verifier recomputes it here and then checks the
 * log's signature over it, so this must reject every malformed proof by itself.
 */
export function rootFromInclusionProof(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
): Uint8Array {
  const [m, n] = checkInclusionShape(index, treeSize);
  return copyOut(inclusionRoot(checkHash(leafHash, 'leafHash'), m, n, checkProof(proof, 'proof')));
}

/** Verifies an inclusion proof (RFC 9162 §2.1.3.2); throws VerifyError 'MERKLE_INVALID' with the reason. */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  const [m, n] = checkInclusionShape(index, treeSize);
  const leaf = checkHash(leafHash, 'leafHash');
  const expected = checkHash(root, 'root');
  const got = inclusionRoot(leaf, m, n, checkProof(proof, 'proof'));
  if (!equalBytes(got, expected))
    throw fail('root', `the inclusion proof for leaf ${m} of a tree of ${n} leads to ${short(got)}, not to the expected root ${short(expected)}`);
}

function checkInclusionShape(index: unknown, treeSize: unknown): [number, number] {
  const m = checkUint(index, 'index');
  const n = checkUint(treeSize, 'treeSize');
  if (m >= n) throw fail('index', `leaf index ${m} is not below the tree size ${n}`);
  return [m, n];
}

function inclusionRoot(leaf: Uint8Array, m: number, n: number, path: readonly Uint8Array[]): Uint8Array {
  // The RFC loop detects a wrong length too (sn reaches 0 early or not at all); the
  // explicit count only turns that into a message an operator can act on.
  const want = inclusionRanges(m, n).length;
  if (path.length !== want)
    throw fail('proof', `has ${path.length} entries, but leaf ${m} of a tree of ${n} needs exactly ${want}`);

  // fn walks up from the leaf, sn from the last leaf. Where fn is a right child, or
  // the last node of its level (fn = sn: on the right border), the entry is its left
  // sibling; otherwise it is the right sibling.
  let fn = m;
  let sn = n - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) throw fail('proof', 'is longer than the path from the leaf to the root');
    if (isOdd(fn) || fn === sn) {
      r = nodeDigest(p, r);
      // A right-border node was promoted unchanged through the heights where it had
      // no sibling; skip those so the next entry lines up with the next real sibling.
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeDigest(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw fail('proof', 'is shorter than the path from the leaf to the root');
  return r;
}

/**
 * Runs RFC 9162 §2.1.4.2 and returns the two roots the proof leads to: the root of
 * the first size1 leaves and of the first size2 leaves. Equal sizes need an empty
 * proof and yield root1 twice. root1 is an input because when size1 is a power of two
 * the old tree is a complete subtree of the new one and the RFC leaves it out of the
 * proof (the verifier already has it); the returned root1 is then the given one.
 * The caller compares the results with the roots it trusts (see verifyConsistency).
 */
export function rootsFromConsistencyProof(
  size1: number,
  size2: number,
  root1: Uint8Array,
  proof: readonly Uint8Array[],
): { root1: Uint8Array; root2: Uint8Array } {
  const [m, n] = checkConsistencyShape(size1, size2);
  const r = consistencyRoots(m, n, checkHash(root1, 'root1'), checkProof(proof, 'proof'));
  return { root1: copyOut(r.root1), root2: copyOut(r.root2) };
}

/** Verifies a consistency proof (RFC 9162 §2.1.4.2); throws VerifyError 'MERKLE_INVALID' with the reason. */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): void {
  const [m, n] = checkConsistencyShape(size1, size2);
  if (m === n) {
    // Same tree: nothing is hashed, the roots only have to be the same bytes.
    // (transparency-dev's verifier does not length-check them here either; its
    // vector sizes-are-equal-one-and-proof-is-empty uses 12-byte "roots".)
    const path = checkProof(proof, 'proof');
    if (path.length !== 0) throw fail('proof', `must be empty when size1 = size2 (${m}), got ${path.length} entries`);
    if (!(root1 instanceof Uint8Array)) throw fail('root1', 'must be bytes');
    if (!(root2 instanceof Uint8Array) || !equalBytes(root1, root2))
      throw fail('root2', `trees of the same size ${m} have different roots ${short(root1)} and ${short(root2 as Uint8Array)}`);
    return;
  }
  const first = checkHash(root1, 'root1');
  const second = checkHash(root2, 'root2');
  const got = consistencyRoots(m, n, first, checkProof(proof, 'proof'));
  if (!equalBytes(got.root1, first))
    throw fail('root1', `the proof leads to ${short(got.root1)} for size ${m}, not to the old root ${short(first)}`);
  if (!equalBytes(got.root2, second))
    throw fail('root2', `the proof leads to ${short(got.root2)} for size ${n}, not to the new root ${short(second)}`);
}

function checkConsistencyShape(size1: unknown, size2: unknown): [number, number] {
  const m = checkUint(size1, 'size1');
  const n = checkUint(size2, 'size2');
  if (m === 0)
    throw fail('size1', 'a consistency proof from the empty tree (size1 = 0) is rejected: every tree extends it, so it proves nothing');
  if (n < m) throw fail('size2', `the new tree size ${n} is smaller than the old size ${m}: a log never shrinks`);
  return [m, n];
}

function consistencyRoots(
  m: number,
  n: number,
  first: Uint8Array,
  path: readonly Uint8Array[],
): { root1: Uint8Array; root2: Uint8Array } {
  if (m === n) {
    // Same tree: nothing to prove, and a non-empty proof means the sender is confused.
    if (path.length !== 0) throw fail('proof', `must be empty when size1 = size2 (${m}), got ${path.length} entries`);
    return { root1: first, root2: first };
  }
  // RFC 9162 §2.1.4.2 step 1: an empty proof for different sizes fails; the count
  // check covers that and every other wrong length with a precise message.
  const want = consistencyRanges(m, n).length;
  if (path.length !== want)
    throw fail('proof', `has ${path.length} entries, but a proof from size ${m} to ${n} needs exactly ${want}`);

  // When size1 is a power of two the old tree is one complete subtree of the new one
  // and PROOF leaves it out (b = true all the way down): the verifier supplies root1.
  const c = isPowerOfTwo(m) ? [first, ...path] : path;
  let fn = m - 1;
  let sn = n - 1;
  // Levels where the old tree's last node is a right child are inside c[0] (the
  // largest complete subtree ending at size1), so start above them.
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // fr rebuilds the old root, sr the new one, from the same starting subtree: left
  // siblings are shared by both trees, right siblings exist only in the new one.
  let fr = c[0];
  let sr = c[0];
  for (let i = 1; i < c.length; i++) {
    if (sn === 0) throw fail('proof', 'is longer than the path to the new root');
    const x = c[i];
    if (isOdd(fn) || fn === sn) {
      fr = nodeDigest(x, fr);
      sr = nodeDigest(x, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeDigest(sr, x);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw fail('proof', 'is shorter than the path to the new root');
  return { root1: fr, root2: sr };
}

function short(h: Uint8Array): string {
  return `${toHex(h).slice(0, 16)}…`;
}

// ---------------------------------------------------------------------------
// MerkleTree: all complete subtrees kept, proofs in O(log n)
// ---------------------------------------------------------------------------

/** Hashes of one height, concatenated in one growable Buffer (no object per node). */
class Level {
  bytes: Buffer;
  count = 0;
  constructor(capacity = 64) {
    this.bytes = Buffer.allocUnsafe(Math.max(1, capacity) * HASH_SIZE);
  }
  #reserve(): number {
    const off = this.count * HASH_SIZE;
    if (off + HASH_SIZE > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(off + HASH_SIZE, this.bytes.length * 2));
      this.bytes.copy(grown, 0, 0, off);
      this.bytes = grown;
    }
    this.count++;
    return off;
  }
  // #reserve() may replace this.bytes, so it must run before this.bytes is read.
  push(h: Uint8Array): void {
    const off = this.#reserve();
    this.bytes.set(h, off);
  }
  pushStr(h: string): void {
    const off = this.#reserve();
    this.bytes.write(h, off, HASH_SIZE, 'latin1');
  }
  at(i: number): Uint8Array {
    return this.bytes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE);
  }
}

/**
 * An append-only tree that keeps the root of every complete (perfect, aligned)
 * subtree — about 2 hashes per leaf — so roots of any prefix, inclusion proofs and
 * consistency proofs cost O(log n) hashes instead of rehashing the leaves. A batch
 * builds one to hand out a proof per record; a log can append to it.
 */
export class MerkleTree implements HashSource {
  readonly #levels: Level[] = [new Level()];
  #size = 0;

  static fromLeafHashes(hashes: readonly Uint8Array[]): MerkleTree {
    if (!Array.isArray(hashes)) throw new ValidationError('leafHashes', `expected an array of ${HASH_SIZE}-byte hashes, got ${describe(hashes)}`);
    return MerkleTree.#build(hashes.length, (lv, i) => lv.push(needHash(hashes[i], `leafHashes[${i}]`)));
  }

  /** Hashes each entry as a leaf (SHA-256(0x00 ‖ data)) and builds the tree. */
  static fromLeaves(leaves: readonly Uint8Array[]): MerkleTree {
    if (!Array.isArray(leaves)) throw new ValidationError('leaves', `expected an array of byte strings, got ${describe(leaves)}`);
    return MerkleTree.#build(leaves.length, (lv, i) => lv.pushStr(leafStr(needData(leaves[i], `leaves[${i}]`))));
  }

  // Level by level rather than leaf by leaf: each level is sized once and read
  // sequentially. Only complete pairs make parents; the right border stays implicit.
  static #build(n: number, fill: (level: Level, i: number) => void): MerkleTree {
    const t = new MerkleTree();
    let lv = new Level(n);
    for (let i = 0; i < n; i++) fill(lv, i);
    t.#levels[0] = lv;
    while (lv.count >= 2) {
      const next = new Level(Math.floor(lv.count / 2));
      for (let j = 0; j < Math.floor(lv.count / 2); j++) next.pushStr(nodeStrAt(lv.bytes, 2 * HASH_SIZE * j));
      t.#levels.push(next);
      lv = next;
    }
    t.#size = n;
    return t;
  }

  get size(): number {
    return this.#size;
  }

  /** Appends a leaf hash; returns its index. */
  append(leafHash: Uint8Array): number {
    needHash(leafHash, 'leafHash');
    if (this.#size >= Number.MAX_SAFE_INTEGER) throw new ValidationError('size', 'the tree is full (2^53 - 1 leaves)');
    this.#levels[0].push(leafHash);
    return this.#completeParents();
  }

  /** After a leaf was pushed: stores the subtrees it completes; returns its index. */
  #completeParents(): number {
    const index = this.#size;
    // A leaf with an odd index completes a pair at height 0, which may complete one
    // at height 1, and so on: one new complete node per trailing 1-bit of the index.
    // The pair is the last two entries of its level, adjacent in memory.
    let height = 0;
    for (let c = index; isOdd(c); c = half(c)) {
      const lv = this.#levels[height];
      const node = nodeStrAt(lv.bytes, (lv.count - 2) * HASH_SIZE);
      height++;
      if (this.#levels.length === height) this.#levels.push(new Level());
      this.#levels[height].pushStr(node);
    }
    this.#size = index + 1;
    return index;
  }

  leaf(index: number): Uint8Array {
    this.#checkIndex(index, 'index');
    return copyOut(this.#levels[0].at(index));
  }

  /** MTH(D[start:end]), for any 0 ≤ start < end ≤ size. */
  subtree(start: number, end: number): Uint8Array {
    needUint(start, 'start');
    needUint(end, 'end');
    if (start >= end || end > this.#size)
      throw new ValidationError('end', `expected 0 ≤ start < end ≤ ${this.#size}, got [${start}, ${end})`);
    return copyOut(this.#range(start, end));
  }

  /** Root of the first `size` leaves (default: all of them). */
  root(size: number = this.#size): Uint8Array {
    this.#checkSize(size, 'size');
    return size === 0 ? copyOut(EMPTY) : copyOut(this.#range(0, size));
  }

  inclusionProof(index: number, treeSize: number = this.#size): Uint8Array[] {
    this.#checkSize(treeSize, 'treeSize');
    needUint(index, 'index');
    if (index >= treeSize) throw new ValidationError('index', `leaf index ${index} is not below the tree size ${treeSize}`);
    return materialise(this.#hasher(), inclusionRanges(index, treeSize));
  }

  consistencyProof(size1: number, size2: number = this.#size): Uint8Array[] {
    this.#checkSize(size2, 'size2');
    return consistencyFrom(this.#hasher(), needConsistencySizes(size1, size2), size2);
  }

  #hasher(): RangeHasher {
    return { size: this.#size, range: (lo, hi) => this.#range(lo, hi) };
  }

  // MTH(D[lo:hi]) by the RFC 9162 §2.1.1 definition, except that a complete aligned
  // subtree is looked up. The ranges proofs ask for decompose into O(log n) of those.
  #range(lo: number, hi: number): Uint8Array {
    const n = hi - lo;
    if (isPowerOfTwo(n) && lo % n === 0) {
      let height = 0;
      for (let w = n; w > 1; w /= 2) height++;
      return this.#levels[height].at(lo / n);
    }
    const k = splitPoint(n);
    const left = this.#range(lo, lo + k);
    const right = this.#range(lo + k, hi);
    return nodeDigest(left, right);
  }

  #checkSize(size: number, field: string): void {
    needUint(size, field);
    if (size > this.#size) throw new ValidationError(field, `${size} is larger than the tree (${this.#size} leaves)`);
  }

  #checkIndex(index: number, field: string): void {
    needUint(index, field);
    if (index >= this.#size) throw new ValidationError(field, `leaf index ${index} is not below the tree size ${this.#size}`);
  }
}

// ---------------------------------------------------------------------------
// CompactRange: O(log n) state of a growing log
// ---------------------------------------------------------------------------

/** JSON form of a CompactRange: the perfect-subtree roots as hex, left to right. */
export interface CompactRangeJSON {
  size: number;
  hashes: string[];
}

/**
 * The state a log needs to append and to know its root without its leaves (the
 * "compact range" [0, size) of transparency-dev; in RFC 9162 terms, the roots of the
 * complete subtrees the tree of `size` leaves splits into). There is one per set bit
 * of size, largest (leftmost) first, so the state is at most 53 hashes and a ledger
 * persists it to restart without rehashing its log.
 */
export class CompactRange {
  #size = 0;
  // The subtree roots as a stack in one Buffer: the two roots an append merges are
  // the top two, adjacent in memory, so appending allocates nothing. At most 53
  // roots (popcount of a safe integer), plus the one being carried.
  readonly #stack = Buffer.alloc(54 * HASH_SIZE);
  #count = 0;

  /** Restores a state saved from `hashes`/`toJSON`; checks the count against size. */
  static fromHashes(size: number, hashes: readonly Uint8Array[]): CompactRange {
    needUint(size, 'size');
    if (!Array.isArray(hashes)) throw new ValidationError('hashes', `expected an array of ${HASH_SIZE}-byte hashes, got ${describe(hashes)}`);
    const want = popCount(size);
    if (hashes.length !== want)
      throw new ValidationError('hashes', `a range of ${size} leaves has ${want} subtree roots (one per set bit of the size), got ${hashes.length}`);
    const r = new CompactRange();
    for (let i = 0; i < want; i++) r.#stack.set(needHash(hashes[i], `hashes[${i}]`), i * HASH_SIZE);
    r.#size = size;
    r.#count = want;
    return r;
  }

  static fromJSON(v: unknown): CompactRange {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError('compactRange', `expected an object, got ${describe(v)}`);
    const o = v as { size?: unknown; hashes?: unknown };
    const size = needUint(o.size, 'compactRange.size');
    if (!Array.isArray(o.hashes)) throw new ValidationError('compactRange.hashes', `expected an array of hex strings, got ${describe(o.hashes)}`);
    const hashes = o.hashes.map((s: unknown, i: number) => {
      if (typeof s !== 'string' || !/^[0-9a-f]{64}$/.test(s))
        throw new ValidationError(`compactRange.hashes[${i}]`, `expected ${2 * HASH_SIZE} lowercase hex digits`);
      return fromHex(s);
    });
    return CompactRange.fromHashes(size, hashes);
  }

  get size(): number {
    return this.#size;
  }

  /** Copies of the subtree roots, left to right (one per set bit of size, largest first). */
  get hashes(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let i = 0; i < this.#count; i++) out.push(copyOut(this.#at(i)));
    return out;
  }

  /** Appends a leaf hash; returns the leaf's index. */
  append(leafHash: Uint8Array): number {
    needHash(leafHash, 'leafHash');
    const index = this.#size;
    if (index >= Number.MAX_SAFE_INTEGER) throw new ValidationError('size', 'the log is full (2^53 - 1 leaves)');
    const st = this.#stack;
    let top = this.#count;
    st.set(leafHash, top * HASH_SIZE);
    top++;
    // Like a binary increment: each trailing 1-bit of the old size is a subtree of the
    // same height as the one being carried, so the two merge into one twice as high.
    for (let c = index; isOdd(c); c = half(c)) {
      top--;
      st.write(nodeStrAt(st, (top - 1) * HASH_SIZE), (top - 1) * HASH_SIZE, HASH_SIZE, 'latin1');
    }
    this.#count = top;
    this.#size = index + 1;
    return index;
  }

  /**
   * MTH of the whole range. The RFC splits at the largest power of two below n, which
   * is exactly the leftmost stored subtree, so the root folds from the right.
   */
  root(): Uint8Array {
    if (this.#count === 0) return copyOut(EMPTY);
    let r = this.#at(this.#count - 1);
    for (let i = this.#count - 2; i >= 0; i--) r = nodeDigest(this.#at(i), r);
    return copyOut(r);
  }

  clone(): CompactRange {
    return CompactRange.fromHashes(this.#size, this.hashes);
  }

  #at(i: number): Uint8Array {
    return this.#stack.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE);
  }

  toJSON(): CompactRangeJSON {
    return { size: this.#size, hashes: this.hashes.map((h) => toHex(h)) };
  }
}
