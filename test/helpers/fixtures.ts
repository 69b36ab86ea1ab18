// Realistic protocol objects for tests and benchmarks.
import { encodeRecord, recordHash, GENESIS_PREV, type Record, type JsonObject } from '../../protocol/record.js';

/** An EPCIS 2.0 ObjectEvent with sensor data, roughly the size the gateway emits (~600 bytes as CBOR). */
export function sampleEvent(i: number, time = 1_764_000_000_000 + i * 1000): JsonObject {
  const iso = new Date(time).toISOString();
  return {
    type: 'ObjectEvent',
    eventTime: iso,
    eventTimeZoneOffset: '+00:00',
    eventID: `ni:///sha-256;${(i * 2654435761 >>> 0).toString(16).padStart(64, '0')}?ver=CBV2.0`,
    epcList: ['urn:epc:id:sscc:4012345.0000000001'],
    action: 'OBSERVE',
    bizStep: 'sensor_reporting',
    disposition: 'in_transit',
    readPoint: { id: 'urn:epc:id:sgln:4012345.00001.0' },
    sensorElementList: [
      {
        sensorMetadata: { time: iso, deviceID: 'urn:epc:id:giai:4012345.reefer-07-t1', deviceMetadata: 'https://id.example.org/fw/2.3.1' },
        sensorReport: [
          { type: 'Temperature', value: 4.5 + (i % 10) / 10, uom: 'CEL' },
          { type: 'RelativeHumidity', value: 61.25, uom: 'P1' },
        ],
      },
    ],
  };
}

/** A chain of `n` records for one device, starting at `firstSeq` after `prev`. */
export function recordChain(deviceId: string, n: number, firstSeq = 1, prev: Uint8Array = GENESIS_PREV): { records: Record[]; bytes: Uint8Array[] } {
  const records: Record[] = [];
  const bytes: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const seq = firstSeq + i;
    const r: Record = { deviceId, seq, prev, time: 1_764_000_000_000 + seq * 1000, event: sampleEvent(seq), source: { sensor: 't1', boot_id: 7, frame_seq: seq } };
    const b = encodeRecord(r);
    records.push(r);
    bytes.push(b);
    prev = recordHash(b);
  }
  return { records, bytes };
}
