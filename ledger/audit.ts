// Whole-log audit (`iscm-ledger audit`, and the fault tests' final check):
// recomputes the log from its data and compares it with everything stored.
//
// - blocks are contiguous, each block's leaves follow the previous size;
// - every leaf entry is unique (no batch twice in the log);
// - the root after each block, recomputed from the leaves, is the block's root,
//   and its signed tree head verifies with the ledger key and says the same;
// - every signed head is consistent with the next (an RFC 9162 consistency
//   proof from the stored tiles, verified);
// - the stored tiles are the tiles of those leaves; the head's compact range
//   gives the head's root;
// - every batch's data (hot or archived) hashes to its leaf entry, its records
//   hash to the signed root, its signature verifies with the registered key,
//   and per device batch_seq, record seq and both hash chains are unbroken;
// - device heads and batch refs are what the blocks say;
// - every archive segment file verifies (when this node has the archive dir).
import { join } from 'node:path';
import { equalBytes, sha256, toHex, ZERO32 } from '../protocol/bytes.js';
import { verifyBatch, parseBatch } from '../protocol/batch-sign.js';
import { decodeRecord } from '../protocol/record.js';
import { CompactRange, leafHash, verifyConsistency } from '../protocol/merkle.js';
import { verifyTreeHead, type TrustedKey } from '../protocol/receipt.js';
import { errorText } from './errors.js';
import { verifyArchiveFile } from './archive.js';
import { TileAppender } from './log/tiles.js';
import type { LedgerReader } from './query.js';

export interface AuditReport {
  ok: boolean;
  blocks: number;
  leaves: number;
  events: number;
  devices: number;
  segments: number;
  errors: string[];
}

export interface AuditOptions {
  /** Ledger keys the signed tree heads must verify with. */
  trusted: TrustedKey[];
  /** Check consistency proofs between every pair of consecutive heads (default true). */
  consistency?: boolean;
  /** Stop after this many errors (default 50). */
  maxErrors?: number;
  onProgress?: (height: number) => void;
}

interface DevState {
  batchSeq: number;
  lastSeq: number;
  lastEntry: Uint8Array;
  lastRecord: Uint8Array;
  events: number;
  refs: Map<number, number>;
}

export async function auditLog(reader: LedgerReader, o: AuditOptions): Promise<AuditReport> {
  const store = reader.store;
  const errors: string[] = [];
  const max = o.maxErrors ?? 50;
  const fail = (m: string) => {
    if (errors.length < max) errors.push(m);
  };
  const report: AuditReport = { ok: false, blocks: 0, leaves: 0, events: 0, devices: 0, segments: 0, errors };
  const { head } = await store.head();
  if (!head) {
    report.ok = true;
    return report;
  }
  const seen = new Set<string>();
  const devs = new Map<string, DevState>();
  const range = new CompactRange();
  const tilesOut = new Map<string, [number, number, Uint8Array]>();
  const tiles = await TileAppender.load(0, async () => null);
  let prev: { size: number; root: Uint8Array } | null = null;
  let expectHeight = 1;

  for (let h = 1; h <= head.height && errors.length < max; h += 128) {
    const blocks = await store.blocks(h, Math.min(head.height, h + 127));
    for (const b of blocks) {
      if (b.height !== expectHeight) fail(`block ${expectHeight} is missing (found ${b.height})`);
      expectHeight = b.height + 1;
      if (b.firstLeaf !== range.size) fail(`block ${b.height} starts at leaf ${b.firstLeaf}, the log had ${range.size} leaves`);
      if (b.size !== b.firstLeaf + b.batches.length) fail(`block ${b.height} says size ${b.size} but holds ${b.batches.length} leaves from ${b.firstLeaf}`);
      for (let i = 0; i < b.batches.length; i++) {
        const bb = b.batches[i];
        const leaf = b.firstLeaf + i;
        const k = toHex(bb.entry);
        if (seen.has(k)) fail(`leaf ${leaf}: entry ${k} is already in the log (duplicate leaf)`);
        seen.add(k);
        const lh = leafHash(bb.entry);
        range.append(lh);
        tiles.append(lh);
        for (const t of tiles.takeDirty()) tilesOut.set(`${t[0]}/${t[1]}`, t);
        // Device chain.
        let d = devs.get(bb.deviceId);
        if (!d) devs.set(bb.deviceId, (d = { batchSeq: 0, lastSeq: 0, lastEntry: ZERO32, lastRecord: ZERO32, events: 0, refs: new Map() }));
        if (bb.batchSeq !== d.batchSeq + 1) fail(`leaf ${leaf}: ${bb.deviceId} batch_seq ${bb.batchSeq} after ${d.batchSeq}`);
        if (bb.firstSeq !== d.lastSeq + 1) fail(`leaf ${leaf}: ${bb.deviceId} batch ${bb.batchSeq} starts at record ${bb.firstSeq} after ${d.lastSeq}`);
        // Data: hashes, root, signature, record chain.
        try {
          const ref = { deviceId: bb.deviceId, batchSeq: bb.batchSeq, entry: bb.entry, leafIndex: leaf, height: b.height, firstSeq: bb.firstSeq, count: bb.count };
          const data = await reader.batchData(ref);
          const { header, kid } = parseBatch(data.sign1);
          if (!equalBytes(header.prev, d.lastEntry)) fail(`leaf ${leaf}: ${bb.deviceId} batch ${bb.batchSeq} prev does not hash-link to batch ${d.batchSeq}`);
          const key = await reader.registry.keyByKid(bb.deviceId, kid);
          if (!key) fail(`leaf ${leaf}: the signing key ${toHex(kid)} of ${bb.deviceId} is not in the registry`);
          else verifyBatch(data.sign1, key);
          let prevRec = d.lastRecord;
          data.records.forEach((r, j) => {
            const rec = decodeRecord(r);
            if (rec.seq !== bb.firstSeq + j || rec.deviceId !== bb.deviceId) fail(`leaf ${leaf}: record ${j} is ${rec.deviceId}#${rec.seq}`);
            if (!equalBytes(rec.prev, prevRec)) fail(`leaf ${leaf}: record ${rec.seq} of ${bb.deviceId} does not hash-link to its predecessor`);
            prevRec = sha256(r);
          });
          d.lastRecord = prevRec;
          report.events += data.records.length;
        } catch (e) {
          fail(`leaf ${leaf} (${bb.deviceId}#${bb.batchSeq}): ${errorText(e)}`);
        }
        d.batchSeq = bb.batchSeq;
        d.lastSeq = bb.firstSeq + bb.count - 1;
        d.lastEntry = bb.entry;
        d.events += bb.count;
        d.refs.set(bb.batchSeq, leaf);
      }
      const root = range.root();
      if (!equalBytes(root, b.root)) fail(`block ${b.height}: recomputed root ${toHex(root)} is not the stored ${toHex(b.root)}`);
      try {
        const th = verifyTreeHead(b.sth, o.trusted);
        if (th.size !== b.size || !equalBytes(th.root, b.root)) fail(`block ${b.height}: the signed tree head is for size ${th.size}, not the block's`);
      } catch (e) {
        fail(`block ${b.height}: signed tree head: ${errorText(e)}`);
      }
      if (prev && (o.consistency ?? true)) {
        try {
          const proof = await reader.log.consistency(prev.size, b.size);
          verifyConsistency(prev.size, b.size, prev.root, b.root, proof);
        } catch (e) {
          fail(`block ${b.height}: tree head ${b.size} is not consistent with ${prev.size}: ${errorText(e)}`);
        }
      }
      prev = { size: b.size, root: b.root };
      report.blocks++;
      o.onProgress?.(b.height);
    }
  }
  report.leaves = range.size;
  if (expectHeight !== head.height + 1 && errors.length < max) fail(`the head is at height ${head.height}, blocks end at ${expectHeight - 1}`);
  if (range.size !== head.size) fail(`the head says ${head.size} leaves, the blocks hold ${range.size}`);
  if (!equalBytes(range.root(), head.root)) fail('the head root is not the root of the blocks');
  try {
    if (!equalBytes(CompactRange.fromHashes(head.size, head.range).root(), head.root)) fail("the head's compact range does not give its root");
    const th = verifyTreeHead(head.sth, o.trusted);
    if (th.size !== head.size || !equalBytes(th.root, head.root)) fail('the head STH does not sign the head');
  } catch (e) {
    fail(`head: ${errorText(e)}`);
  }
  for (const [k, [level, index, hashes]] of tilesOut) {
    const stored = await store.tile(level, index);
    if (!stored || !equalBytes(stored.subarray(0, hashes.length), hashes)) fail(`tile ${k} does not hold the hashes of the log's leaves`);
  }
  for (const dh of await store.devices()) {
    const d = devs.get(dh.deviceId);
    if (!d) {
      fail(`device head for ${dh.deviceId} but no batch of it in the log`);
      continue;
    }
    if (dh.batchSeq !== d.batchSeq || dh.lastSeq !== d.lastSeq || !equalBytes(dh.lastEntry, d.lastEntry) || !equalBytes(dh.lastRecordHash, d.lastRecord) || dh.events !== d.events)
      fail(`device head of ${dh.deviceId} (batch ${dh.batchSeq}, record ${dh.lastSeq}) differs from the log (batch ${d.batchSeq}, record ${d.lastSeq})`);
  }
  for (const [id, d] of devs) {
    for (const ref of await store.refs(id)) {
      const leaf = d.refs.get(ref.batchSeq);
      if (leaf === undefined || leaf !== ref.leafIndex) fail(`ref ${id}#${ref.batchSeq} points at leaf ${ref.leafIndex}, the log has it at ${leaf}`);
    }
    if ((await store.refs(id)).length !== d.refs.size) fail(`device ${id}: ${d.refs.size} batches in the log, refs differ in number`);
  }
  report.devices = devs.size;
  for (const seg of await store.segments()) {
    report.segments++;
    if (!reader.archiveDir) continue;
    try {
      await verifyArchiveFile(join(reader.archiveDir, seg.file), seg, store);
    } catch (e) {
      fail(`archive ${seg.file}: ${errorText(e)}`);
    }
  }
  report.ok = errors.length === 0;
  return report;
}
