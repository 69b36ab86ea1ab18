// Event proof bundles (ARCHITECTURE §4.4, protocol/bundle.ts) from what the
// light node holds: the record, its batch, the batch's verified receipt (the
// journal's commit mark) and the device public key. Used by
// `iscm-edge export-proof` and the devnet's --export.
//
// A bundle exists only for events whose batch has a verified receipt on the
// device and whose segment compaction has not deleted yet.
import { leafHash, MerkleTree } from '../../protocol/merkle.js';
import { decodeRecord } from '../../protocol/record.js';
import { encodeEventProof } from '../../protocol/bundle.js';
import { receiptWithoutConsistency } from '../../protocol/receipt.js';
import type { CoseKey } from '../../protocol/cose/key.js';
import { IscmError } from '../../protocol/errors.js';
import type { Journal, StoredBatch } from '../journal/index.js';

export interface ExportedProof {
  seq: number;
  eventId: string;
  batchSeq: number;
  bundle: Uint8Array;
}

/** The batch holding record `seq` (binary search over batch_seq), or undefined when it is not batched yet or not stored. */
export async function batchOfRecord(journal: Journal, seq: number): Promise<StoredBatch | undefined> {
  const st = journal.stats();
  let lo = st.firstBatchSeq;
  let hi = st.lastBatchSeq;
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const b = await journal.getBatch(mid);
    if (!b) return undefined;
    if (seq < b.firstSeq) hi = mid - 1;
    else if (seq >= b.firstSeq + b.count) lo = mid + 1;
    else return b;
  }
  return undefined;
}

/** Every record of `b` (or only record `onlySeq`) as a bundle; the batch tree is built once. */
export async function batchProofs(journal: Journal, b: StoredBatch, deviceKey: CoseKey, onlySeq?: number): Promise<ExportedProof[]> {
  const stored = await journal.getReceipt(b.batchSeq);
  if (!stored) throw new IscmError('INVALID_FIELD', `batch ${b.batchSeq} has no verified receipt on this device yet`, 'batch_seq');
  const records: Uint8Array[] = [];
  for await (const r of journal.records(b.firstSeq, b.firstSeq + b.count - 1)) records.push(r.bytes);
  // The bundle's receipt proves inclusion only (protocol/receipt.ts receiptWithoutConsistency).
  const receipt = receiptWithoutConsistency(stored);
  if (records.length !== b.count) throw new IscmError('INVALID_FIELD', `batch ${b.batchSeq}: ${records.length} of its ${b.count} records are stored (compacted?)`, 'batch_seq');
  const tree = MerkleTree.fromLeafHashes(records.map((r) => leafHash(r)));
  const pick = onlySeq === undefined ? records.map((_, i) => i) : [onlySeq - b.firstSeq];
  return pick.map((index) => ({
    seq: b.firstSeq + index,
    eventId: String(decodeRecord(records[index]).event.eventID ?? ''),
    batchSeq: b.batchSeq,
    bundle: encodeEventProof({ record: records[index], index, path: tree.inclusionProof(index), batch: b.sign1, receipt, deviceKey }),
  }));
}

/** Bundles of every committed event the journal still holds, batch by batch. */
export async function* committedProofs(journal: Journal, deviceKey: CoseKey): AsyncGenerator<ExportedProof> {
  const st = journal.stats();
  for (let n = st.firstBatchSeq; n <= st.committedThroughBatch; n++) {
    const b = await journal.getBatch(n);
    if (!b?.committed) continue;
    yield* await batchProofs(journal, b, deviceKey);
  }
}

/** Finds an event by its eventID (or record seq) and returns its bundle; a typed error says why there is none. */
export async function findEventProof(journal: Journal, deviceKey: CoseKey, want: { eventId?: string; seq?: number }): Promise<ExportedProof> {
  let seq = want.seq;
  if (seq === undefined) {
    const st = journal.stats();
    for await (const r of journal.records(st.firstSeq)) {
      if (decodeRecord(r.bytes).event.eventID === want.eventId) {
        seq = r.seq;
        break;
      }
    }
    if (seq === undefined) throw new IscmError('INVALID_FIELD', `no record with eventID ${want.eventId} in the journal (records ${st.firstSeq}..${st.lastSeq}; older ones were compacted after their receipts)`, 'event_id');
  }
  const b = await batchOfRecord(journal, seq);
  if (!b) throw new IscmError('INVALID_FIELD', `record ${seq} is not in a signed batch yet (or no longer stored); try again once it is receipted`, 'event_id');
  if (!b.committed) throw new IscmError('INVALID_FIELD', `record ${seq} is in batch ${b.batchSeq}, which has no verified receipt yet; try again once the ledger has answered`, 'event_id');
  return (await batchProofs(journal, b, deviceKey, seq))[0];
}
