// Open-time recovery (docs/JOURNAL.md "Recovery"). For each segment, oldest
// first: check its header (device, number, and that its base chain state is
// the previous segment's end — a missing or swapped file is caught); take a
// sealed segment's summary from its index sidecar, or rescan it; resume the
// last segment from the checkpoint and scan only what follows it.
//
// The tail of the last segment is where an interrupted group commit can leave
// garbage. Every group is written and fsync'd before the next one starts, and
// a group is at most maxGroupBytes, so bytes that were never acknowledged can
// only lie within maxGroupBytes of the first bad frame. Damage with non-zero
// data beyond that window is not a torn write: it is corruption of durable
// entries, and open() fails loudly rather than skip it (invariant 1).
//
// A unit (appendUnit) is written in one group, so a unit whose STATE entry is
// missing at the tail was in that last, unsynced group: none of it was
// acknowledged, and it is dropped whole (the report says so). The latest state
// is then read from where the summaries say it is (every segment starts with
// a copy of the state before it), so open never rescans for it.
import { open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { equalBytes } from '../../protocol/bytes.js';
import { genesisState, sameState, describeState, type ChainState } from './chain-state.js';
import { readCheckpoint, readIndex, writeIndex } from './checkpoint.js';
import { JournalError, fsError } from './errors.js';
import { checkFrame, EntryType, FRAME_HEAD, FRAME_OVERHEAD } from './frame.js';
import { appendFlags, fsyncDir, readAt, writeAll, zeroFill } from './fs-util.js';
import type { Preallocator } from './preallocate.js';
import type { DroppedTail, RecoveryReport } from './journal.js';
import { nonZeroExtent, scanSegment } from './scan.js';
import { decodeSegmentHeader, encodeSegmentHeader, MAX_HEADER_BYTES, newNonce, parseSegmentName, segmentName } from './segment-header.js';
import { SegmentSummary } from './segment-summary.js';

export const SPARE_NAME = 'spare';

export interface RecoveryConfig {
  dir: string;
  deviceId: string;
  readOnly: boolean;
  /** How segment files get their blocks; undefined: they grow as they fill. */
  preallocate: Preallocator | undefined;
  segmentBytes: number;
  maxGroupBytes: number;
}

export interface Recovered {
  segments: SegmentSummary[];
  /** The last segment opened for writing (undefined when read-only or empty). */
  activeFh: FileHandle | undefined;
  report: RecoveryReport;
  /** A preallocated spare segment left by the previous run, ready to use. */
  spareReady: boolean;
  /** The state blob of the last durable unit (a copy), if any. */
  lastState: Uint8Array | undefined;
}

/** Creates segment `id` with `base` as `name.tmp`, preallocated, fsync'd, renamed into place, directory fsync'd. */
export async function createSegmentFile(dir: string, id: number, deviceId: string, base: ChainState, sizeBytes: number, prealloc: Preallocator | undefined): Promise<void> {
  const final = join(dir, segmentName(id));
  const tmp = `${final}.tmp`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'w');
    const header = encodeSegmentHeader({ id, nonce: newNonce(), deviceId, createdMs: Date.now(), base });
    if (prealloc) await prealloc.allocate(fh, tmp, header.length, sizeBytes);
    await writeAll(fh, [header], 0);
    await fh.datasync();
    await fh.close();
    fh = undefined;
    await rename(tmp, final);
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw fsError(e, 'create segment', final);
  }
  await fsyncDir(dir);
}

/** Reads the STATE entry a summary points at (a copy of its payload); damage there is CORRUPT. */
async function readStateEntry(fh: FileHandle, path: string, at: number, len: number): Promise<Uint8Array> {
  const size = FRAME_OVERHEAD + len;
  const buf = await readAt(fh, Buffer.allocUnsafe(size), size, at);
  const f = checkFrame(buf, 0, buf.length);
  if (!f.ok || f.type !== EntryType.STATE || f.len !== len)
    throw new JournalError('CORRUPT', `${path} at offset ${at}: the latest state entry is damaged (${f.ok ? `a type ${f.type} entry of ${f.len} bytes` : f.why}); it will not be skipped. Copy the journal directory for analysis; run verify() to list the damage`, { path, offset: at });
  return new Uint8Array(buf.subarray(FRAME_HEAD, FRAME_HEAD + len));
}

export async function recover(c: RecoveryConfig): Promise<Recovered> {
  const t0 = performance.now();
  const report: RecoveryReport = { ms: 0, clean: false, usedCheckpoint: false, segments: 0, segmentsRescanned: 0, bytesScanned: 0, entriesScanned: 0, dropped: undefined };
  let names: string[];
  try {
    names = await readdir(c.dir);
  } catch (e) {
    throw fsError(e, 'list', c.dir);
  }
  // Leftovers of interrupted creations and atomic writes: never referenced, safe to drop.
  let spareReady = false;
  if (!c.readOnly) {
    // (`.name.tmp-PID-N`: the temporaries of durable replacements, drivers/fs/atomic.ts.)
    for (const n of names) if (n.endsWith('.tmp') || /^\..*\.tmp-\d+-\d+$/.test(n)) await unlink(join(c.dir, n)).catch(() => {});
    if (names.includes(SPARE_NAME)) {
      const st = await stat(join(c.dir, SPARE_NAME)).catch(() => undefined);
      if (c.preallocate && st && st.size === c.segmentBytes) spareReady = true;
      else await unlink(join(c.dir, SPARE_NAME)).catch(() => {});
    }
  }
  let ids = names.map(parseSegmentName).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (ids.length === 0) {
    if (c.readOnly) {
      report.ms = performance.now() - t0;
      return { segments: [], activeFh: undefined, report, spareReady: false, lastState: undefined };
    }
    await createSegmentFile(c.dir, 1, c.deviceId, genesisState(), c.segmentBytes, c.preallocate);
    ids = [1];
  }
  for (let i = 1; i < ids.length; i++)
    if (ids[i] !== ids[i - 1] + 1)
      throw new JournalError('CORRUPT', `${c.dir}: segment ${segmentName(ids[i - 1] + 1)} is missing between ${segmentName(ids[i - 1])} and ${segmentName(ids[i])}; records in it are lost to this node. Restore the file, or move the directory aside`, { path: join(c.dir, segmentName(ids[i - 1] + 1)) });

  const segments: SegmentSummary[] = [];
  let prevEnd: ChainState | undefined;
  let activeFh: FileHandle | undefined;
  const headBuf = Buffer.allocUnsafe(MAX_HEADER_BYTES);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const last = i === ids.length - 1;
    const path = join(c.dir, segmentName(id));
    let fh: FileHandle;
    try {
      // The last segment stays open for the appends (O_DSYNC: each write durable when it returns).
      fh = await open(path, last && !c.readOnly ? appendFlags() : 'r');
    } catch (e) {
      throw fsError(e, 'open', path);
    }
    let keep = false;
    try {
      const size = (await fh.stat()).size;
      const h = decodeSegmentHeader(await readAt(fh, headBuf, Math.min(MAX_HEADER_BYTES, size), 0), path);
      if (h.id !== id) throw new JournalError('CORRUPT', `${path}: its header says segment ${h.id}; was the file renamed?`, { path });
      if (h.deviceId !== c.deviceId)
        throw new JournalError('CONFIG', `${c.dir} holds the journal of device ${JSON.stringify(h.deviceId)}, but this node is configured as ${JSON.stringify(c.deviceId)}; point journal.dir at this device's own directory`, { path });
      if (prevEnd && !sameState(h.base, prevEnd))
        throw new JournalError('CORRUPT', `${path} does not continue the segment before it (its header starts at ${describeState(h.base)}; the previous segment ends at ${describeState(prevEnd)}); a segment was replaced or lost`, { path });
      let s: SegmentSummary | undefined;
      let from = h.dataStart;
      let clean = false;
      if (!last) s = await readIndex(c.dir, id, h.nonce, path);
      else {
        const ck = await readCheckpoint(c.dir, () => path);
        if (typeof ck !== 'string' && ck.summary.id === id && equalBytes(ck.summary.nonce, h.nonce) && ck.summary.end >= h.dataStart && ck.summary.end <= size) {
          s = ck.summary;
          from = s.end;
          clean = ck.clean;
          report.usedCheckpoint = true;
          report.clean = clean;
        }
      }
      if (s && !last) {
        // A trusted sidecar: nothing to scan.
      } else {
        s ??= new SegmentSummary(id, h.nonce, h.dataStart, h.base, path);
        if (!last) report.segmentsRescanned++;
        const out = await scanSegment(fh, s, c.deviceId, from, size);
        report.bytesScanned += out.end - from;
        report.entriesScanned += out.entries;
        const cleanEnd = last && clean && out.stop === 'end' && out.end === from && !out.tornUnit;
        if (out.stop !== 'eof' && !cleanEnd) {
          const window = last ? c.maxGroupBytes : 0;
          const nz = await nonZeroExtent(fh, out.end, size, window);
          const what = out.stop === 'damage' ? out.why : 'non-zero bytes after the end of the entries';
          if (nz.beyond)
            throw new JournalError(
              'CORRUPT',
              `${path}: ${what} at offset ${out.end}, but data follows at offset ${nz.beyondAt}${last ? `, more than one group commit (${c.maxGroupBytes} bytes) past the damage` : ' in a sealed segment'}: durable entries are damaged (disk or filesystem fault), not torn by an interrupted write. The journal refuses to open rather than skip them. Kept intact: records through ${s.endState.nextSeq - 1}. Copy the directory for analysis before repairing`,
              { path, offset: out.end },
            );
          if (nz.dirtyEnd > out.end || out.stop === 'damage') {
            const tornUnit = out.tornUnit ? { firstSeq: out.tornUnit.firstSeq, records: out.tornUnit.records } : undefined;
            const dropped: DroppedTail = { path, offset: out.end, bytes: Math.max(nz.dirtyEnd, out.end) - out.end, reason: what, keptThroughSeq: s.endState.nextSeq - 1, keptThroughBatchSeq: s.endState.nextBatchSeq - 1, tornUnit };
            report.dropped = dropped;
            if (!c.readOnly) {
              // Zero the torn bytes (or cut them off) so they can never be read as entries later.
              try {
                if (c.preallocate && size >= c.segmentBytes) await zeroFill(fh, out.end, Math.max(nz.dirtyEnd, out.end));
                else await fh.truncate(out.end);
                await fh.datasync();
              } catch (e) {
                throw fsError(e, 'truncate torn tail of', path);
              }
            }
          }
        }
        if (!last && !c.readOnly) await writeIndex(c.dir, s).catch(() => {}); // a cache: next open rescans if this fails
      }
      segments.push(s);
      prevEnd = s.endState;
      if (last && !c.readOnly) {
        activeFh = fh;
        keep = true;
      }
    } finally {
      if (!keep) await fh.close().catch(() => {});
    }
  }
  // The latest state: in the last segment that holds one (the active one,
  // once any state exists: rollover carries it forward).
  let lastState: Uint8Array | undefined;
  for (let i = segments.length - 1; i >= 0 && !lastState; i--) {
    const s = segments[i];
    if (!s.stateAt) continue;
    const fh = i === segments.length - 1 && activeFh ? activeFh : await open(s.path, 'r').catch((e) => {
      throw fsError(e, 'open', s.path);
    });
    try {
      lastState = await readStateEntry(fh, s.path, s.stateAt, s.stateLen);
    } catch (e) {
      await activeFh?.close().catch(() => {});
      throw e;
    } finally {
      if (fh !== activeFh) await fh.close().catch(() => {});
    }
  }
  report.segments = segments.length;
  report.ms = performance.now() - t0;
  return { segments, activeFh, report, spareReady, lastState };
}
