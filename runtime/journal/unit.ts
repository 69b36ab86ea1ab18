// Argument rules of appendUnit and of caller-computed record hashes, shared
// by FileJournal and MemoryJournal so both refuse the same things the same way.
import { toHex } from '../../protocol/bytes.js';
import { ValidationError } from '../../protocol/errors.js';
import { JournalError } from './errors.js';
import { FRAME_OVERHEAD } from './frame.js';
import { MAX_STATE_BYTES } from './journal.js';

/** Throws unless `h` is a 32-byte Uint8Array (a SHA-256 the caller passes for a record). */
export function checkHashShape(h: unknown, field: string): asserts h is Uint8Array {
  if (!(h instanceof Uint8Array) || h.length !== 32) throw new ValidationError(field, 'expected the record\'s SHA-256 as a 32-byte Uint8Array');
}

/** The refusal of a caller hash that is not the SHA-256 of the record's bytes. */
export function wrongHash(field: string, seq: number, given: Uint8Array, actual: Uint8Array): JournalError {
  return new JournalError('CHAIN', `${field}: the hash given for record ${seq} (${toHex(given).slice(0, 16)}…) is not the SHA-256 of its bytes (${toHex(actual).slice(0, 16)}…); pass the record's own hash, or none`, { field });
}

/**
 * Checks appendUnit's arguments and returns the unit's framed size. Throws a
 * ValidationError for malformed arguments and TOO_LARGE, naming the limit,
 * for a state or unit beyond what one group commit holds atomically.
 */
export function unitSize(records: unknown, state: unknown, hashes: unknown, maxUnitBytes: number): number {
  if (!Array.isArray(records)) throw new ValidationError('unit.records', 'expected an array of record byte strings (possibly empty)');
  if (!(state instanceof Uint8Array)) throw new ValidationError('unit.state', 'expected a byte string');
  if (state.length === 0) throw new ValidationError('unit.state', 'must not be empty (1..MAX_STATE_BYTES bytes)');
  if (state.length > MAX_STATE_BYTES) throw new JournalError('TOO_LARGE', `unit.state: ${state.length} bytes exceeds MAX_STATE_BYTES (${MAX_STATE_BYTES})`, { field: 'unit.state' });
  if (hashes !== undefined) {
    if (!Array.isArray(hashes) || hashes.length !== records.length) throw new ValidationError('unit.hashes', `expected one hash per record (${records.length}), got ${Array.isArray(hashes) ? hashes.length : typeof hashes}`);
    for (let i = 0; i < hashes.length; i++) checkHashShape(hashes[i], `unit.hashes[${i}]`);
  }
  let size = FRAME_OVERHEAD + state.length;
  for (let i = 0; i < records.length; i++) {
    const r = records[i];
    if (!(r instanceof Uint8Array)) throw new ValidationError(`unit.records[${i}]`, 'expected a byte string');
    size += FRAME_OVERHEAD + r.length;
  }
  if (size > maxUnitBytes)
    throw new JournalError('TOO_LARGE', `unit: ${records.length} records and a ${state.length}-byte state take ${size} bytes framed, more than the ${maxUnitBytes} bytes one atomic unit may take (journal.maxUnitBytes, bounded by journal.maxGroupBytes); split the delivery into smaller units`, { field: 'unit' });
  return size;
}

/** The refusal of a unit record that does not continue the chain: the record rule's error, with its place in the unit. */
export function inUnit(e: unknown, i: number): unknown {
  if (e instanceof JournalError) return new JournalError(e.kind, `unit.records[${i}]: ${e.message}`, { field: e.field, cause: e });
  if (e instanceof ValidationError) return new ValidationError(`unit.records[${i}]`, e.message);
  return e;
}
