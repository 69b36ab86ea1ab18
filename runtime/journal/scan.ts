// Scanning a segment's entries from an offset: the recovery path. Every frame's
// CRC is checked and every entry is re-checked against the chain rules
// (chain-state.ts), folding the chain state and the segment summary forward.
// The scan stops at the end marker, at the end of the file, or at the first
// damaged frame; what damage means (a torn tail, or corruption) is decided by
// the caller, which knows where the durable data must end.
//
// Units (UNIT_RECORD entries closed by a STATE entry) are all or nothing: a
// scan that stops after some of a unit's records but before its STATE entry
// puts the summary back to where the unit started and reports the unit as
// torn, so the caller drops it whole.
import type { FileHandle } from 'node:fs/promises';
import { batchHeaderOfSign1 } from '../../protocol/batch.js';
import { sha256 } from '../../protocol/bytes.js';
import { applyBatch, applyCommit, applyRecord, checkBatch, checkRecord } from './chain-state.js';
import { JournalError } from './errors.js';
import { checkFrame, EntryType, FRAME_HEAD, isRecordEntry, readCommit } from './frame.js';
import { readRecordHead } from './record-head.js';
import { isZero, readAt } from './fs-util.js';
import type { SegmentSummary, UnitMark } from './segment-summary.js';

export interface ScanOutcome {
  /** Offset just after the last whole, valid entry. */
  end: number;
  /** `end`: an end marker; `eof`: the file ended on a frame boundary; `damage`: a bad frame at `end`. */
  stop: 'end' | 'eof' | 'damage';
  why: string;
  entries: number;
  /** The scan stopped inside a unit: its records (from `offset`) were taken back out of the summary; `end` is `offset`. */
  tornUnit?: { offset: number; firstSeq: number; records: number };
}

const ENTRY_NAMES = ['', 'record', 'batch', 'commit mark', 'state', 'unit record'];

const CHUNK = 1 << 20;

/** Applies one CRC-valid entry at `off` to the summary and its chain state; throws CHAIN/CORRUPT on a rule violation. */
export function applyEntry(s: SegmentSummary, deviceId: string, type: number, payload: Buffer, off: number): void {
  const st = s.endState;
  const where = (e: unknown): JournalError => {
    const msg = e instanceof Error ? e.message : String(e);
    return new JournalError(e instanceof JournalError && e.kind !== 'NOT_FOUND' ? e.kind : 'CORRUPT', `${s.path} at offset ${off}: a stored entry with a valid CRC breaks the chain (${msg}); the journal was written by something else or tampered with — it will not be skipped. Copy the directory for analysis`, { path: s.path, offset: off, cause: e });
  };
  try {
    if (isRecordEntry(type)) {
      const h = readRecordHead(payload);
      checkRecord(st, h, deviceId);
      applyRecord(st, h.seq, sha256(payload));
      s.noteRecord(h.seq, off);
    } else if (type === EntryType.BATCH) {
      const h = batchHeaderOfSign1(payload);
      checkBatch(st, h, deviceId);
      applyBatch(st, h, sha256(payload));
      s.noteBatch(h.batchSeq, off);
    } else if (type === EntryType.STATE) {
      s.noteState(off, payload.length);
    } else {
      const c = readCommit(payload);
      if (c.batchSeq < 1 || c.batchSeq >= st.nextBatchSeq) throw new Error(`commit mark for batch ${c.batchSeq}, but the last batch is ${st.nextBatchSeq - 1}`);
      applyCommit(st, c.batchSeq, c.lastSeq);
      s.noteCommit(c.batchSeq);
    }
  } catch (e) {
    throw where(e);
  }
}

/** Scans [from, fileSize) of a segment, folding valid entries into `s` (s.end advances). */
export async function scanSegment(fh: FileHandle, s: SegmentSummary, deviceId: string, from: number, fileSize: number): Promise<ScanOutcome> {
  let buf = Buffer.allocUnsafe(CHUNK);
  let bufPos = from; // file offset of buf[0]
  let valid = 0;
  let p = 0;
  let entries = 0;
  const refill = async (): Promise<boolean> => {
    const keep = valid - p;
    if (p > 0) buf.copy(buf, 0, p, valid);
    bufPos += p;
    p = 0;
    valid = keep;
    const want = Math.min(buf.length - valid, fileSize - (bufPos + valid));
    if (want <= 0) return false;
    const got = await readAt(fh, buf.subarray(valid), want, bufPos + valid);
    valid += got.length;
    return got.length > 0;
  };
  await refill();
  let unit: { at: number; mark: UnitMark; firstSeq: number; records: number } | undefined;
  const stop = (o: ScanOutcome): ScanOutcome => {
    if (!unit) return o;
    s.restoreUnit(unit.mark);
    const torn = `a unit of ${unit.records} record${unit.records === 1 ? '' : 's'} from seq ${unit.firstSeq} without its state entry (torn), then ${o.why}`;
    return { ...o, end: unit.at, stop: 'damage', why: torn, tornUnit: { offset: unit.at, firstSeq: unit.firstSeq, records: unit.records } };
  };
  for (;;) {
    const r = checkFrame(buf, p, valid);
    if (r.ok) {
      const off = bufPos + p;
      if (r.type === EntryType.UNIT_RECORD) {
        unit ??= { at: off, mark: s.saveBeforeUnit(), firstSeq: s.endState.nextSeq, records: 0 };
        unit.records++;
      } else if (unit && r.type !== EntryType.STATE)
        throw new JournalError('CORRUPT', `${s.path} at offset ${off}: the unit of ${unit.records} records from offset ${unit.at} is followed by a ${ENTRY_NAMES[r.type]} entry instead of its state entry, which the journal never writes; the file was written by something else or tampered with — it will not be skipped. Copy the directory for analysis`, { path: s.path, offset: off });
      applyEntry(s, deviceId, r.type, buf.subarray(p + FRAME_HEAD, p + FRAME_HEAD + r.len), off);
      if (r.type === EntryType.STATE) unit = undefined;
      p += r.size;
      s.end = bufPos + p;
      entries++;
      continue;
    }
    if (r.why === 'short' && bufPos + valid < fileSize && (await refill())) continue;
    if (r.why === 'short') {
      // The file ends here or inside a frame.
      if (p === valid) return stop({ end: s.end, stop: 'eof', why: 'end of file', entries });
      if (valid - p < FRAME_HEAD && isZero(buf, p, valid)) return stop({ end: s.end, stop: 'end', why: 'end marker', entries });
      return stop({ end: s.end, stop: 'damage', why: 'a frame runs past the end of the file', entries });
    }
    if (r.why === 'end') return stop({ end: s.end, stop: 'end', why: 'end marker', entries });
    return stop({ end: s.end, stop: 'damage', why: r.why === 'crc' ? 'CRC-32C mismatch' : r.why === 'type' ? 'unknown entry type' : 'impossible entry length', entries });
  }
}

/**
 * Finds non-zero bytes in [from, fileSize): returns the end of the last
 * non-zero byte below `window` (from + window), and whether any non-zero byte
 * lies at or beyond it.
 */
export async function nonZeroExtent(fh: FileHandle, from: number, fileSize: number, window: number): Promise<{ dirtyEnd: number; beyond: boolean; beyondAt: number }> {
  const buf = Buffer.allocUnsafe(CHUNK);
  let dirtyEnd = from;
  const limit = from + window;
  for (let pos = from; pos < fileSize; pos += CHUNK) {
    const got = await readAt(fh, buf, Math.min(CHUNK, fileSize - pos), pos);
    if (got.length === 0) break;
    if (isZero(got)) continue;
    for (let i = got.length - 1; i >= 0; i--) {
      if (got[i] !== 0) {
        const at = pos + i;
        if (at >= limit) {
          // Find the first non-zero byte at or beyond the window, for the message.
          let j = Math.max(0, limit - pos);
          while (got[j] === 0) j++;
          return { dirtyEnd, beyond: true, beyondAt: pos + j };
        }
        dirtyEnd = Math.max(dirtyEnd, at + 1);
        break;
      }
    }
  }
  return { dirtyEnd, beyond: false, beyondAt: -1 };
}
