// A built event as the Record the journal stores (ARCHITECTURE §4.1):
// field 5 is the EPCIS event's JSON object, field 6 its provenance.
import { encodeRecord, type Record } from '../../protocol/record.js';
import type { BuiltEvent } from './builder.js';

/** The Record of a built event; the light node supplies the chain fields and the gateway clock time. */
export function eventRecord(built: BuiltEvent, chain: { deviceId: string; seq: number; prev: Uint8Array; time: number }): Record {
  return { deviceId: chain.deviceId, seq: chain.seq, prev: chain.prev, time: chain.time, event: built.event, source: built.source };
}

/** …and its bytes. */
export function encodeEventRecord(built: BuiltEvent, chain: { deviceId: string; seq: number; prev: Uint8Array; time: number }): Uint8Array {
  return encodeRecord(eventRecord(built, chain));
}
