// What the ledger keeps in its store (etcd, or memory for the devnet).
// Key layout and encodings are in store.ts and codec.ts; docs/LEDGER.md
// has the table.

/** The log's current state: read and compare-and-set by every block commit. */
export interface HeadState {
  /** Height of the last committed block (blocks are numbered from 1; 0 = none yet). */
  height: number;
  /** Tree size: log leaves (batches) so far. */
  size: number;
  /** RFC 9162 root at `size`. */
  root: Uint8Array;
  /** Compact range of the tree of `size` leaves (one hash per set bit of size): appending needs nothing else. */
  range: Uint8Array[];
  /** ms since the epoch of the commit. */
  time: number;
  /** The signed tree head for (size, root) (protocol/receipt.ts signTreeHead). */
  sth: Uint8Array;
  /** Node id of the sequencer that committed it. */
  sequencer: string;
  /** Random per commit attempt: tells an ambiguous commit (deadline after success) from a lost race. */
  nonce: Uint8Array;
}

/** One batch (log leaf) in a block. */
export interface BlockBatch {
  deviceId: string;
  batchSeq: number;
  /** Log leaf entry: SHA-256 of the batch COSE_Sign1 bytes (§4.4). */
  entry: Uint8Array;
  firstSeq: number;
  count: number;
  /** Stored (compressed) size of the batch data, for the hot-tier budget. */
  bytes: number;
  /** ms when the batch was first written as pending. */
  received: number;
}

export interface Block {
  height: number;
  /** Leaf index of batches[0]; batches[i] is leaf firstLeaf + i. */
  firstLeaf: number;
  /** Tree size and root after this block. */
  size: number;
  root: Uint8Array;
  time: number;
  /** The signed tree head for (size, root). */
  sth: Uint8Array;
  sequencer: string;
  batches: BlockBatch[];
}

/** A device's committed chain head. */
export interface DeviceHead {
  deviceId: string;
  batchSeq: number;
  /** Last record seq committed. */
  lastSeq: number;
  /** Leaf entry (= SHA-256 of the COSE_Sign1) of the last committed batch: the next batch's `prev`. */
  lastEntry: Uint8Array;
  /** SHA-256 of the last committed record: the next record's `prev`. */
  lastRecordHash: Uint8Array;
  lastLeaf: number;
  height: number;
  /** Records committed in total. */
  events: number;
  /** ms of the commit. */
  time: number;
}

/** Where a committed batch sits: (device, batch_seq) → leaf. */
export interface BatchRef {
  deviceId: string;
  batchSeq: number;
  entry: Uint8Array;
  leafIndex: number;
  height: number;
  firstSeq: number;
  count: number;
}

/** A verified batch waiting for the sequencer (its data is stored beside it). */
export interface PendingMarker {
  deviceId: string;
  batchSeq: number;
  entry: Uint8Array;
  /** BatchHeader.prev: the leaf entry of the device's previous batch. */
  prev: Uint8Array;
  firstSeq: number;
  count: number;
  /** prev of the first record: hash of the device's previous record. */
  firstPrev: Uint8Array;
  /** Hash of the last record of this batch. */
  lastRecordHash: Uint8Array;
  /** The device's known_size when it sent the batch (for the receipt's consistency proof). */
  knownSize: number;
  received: number;
  /** Ingest node that wrote it. */
  node: string;
  /** Stored (compressed) bytes of the data. */
  bytes: number;
}

/** A batch as the device sent it: the exact COSE_Sign1 and record bytes. */
export interface BatchData {
  sign1: Uint8Array;
  records: Uint8Array[];
}

/** Per device and ingest node: what that node saw (merged over nodes for status). */
export interface DeviceActivity {
  node: string;
  lastSeen: number;
  batches: number;
  rejects: number;
  lastReject?: string;
  lastRejectTime?: number;
}

export type ClaimKind = 'enroll' | 'revoke';

export interface StoredClaim {
  kind: ClaimKind;
  deviceId: string;
  /** Thumbprint of the device key the claim is about. */
  kid: Uint8Array;
  /** The operator-signed COSE_Sign1 claim, as received. */
  claim: Uint8Array;
}

/** Two validly signed, conflicting batches of one device: kept forever, alarmed. */
export interface ForkEvidence {
  deviceId: string;
  batchSeq: number;
  /** What the conflicting batch conflicts with. */
  kind: 'committed' | 'pending' | 'chain';
  /** The batch that was refused. */
  sign1: Uint8Array;
  entry: Uint8Array;
  /** The batch it conflicts with (committed or pending), by leaf entry. */
  otherEntry: Uint8Array;
  reason: string;
  detected: number;
  node: string;
}

/** A sealed archive file holding the data of blocks firstHeight..lastHeight. */
export interface ArchiveSegment {
  firstHeight: number;
  lastHeight: number;
  firstLeaf: number;
  leafCount: number;
  /** File name inside the archive directory. */
  file: string;
  /** SHA-256 of the whole file. */
  sha256: Uint8Array;
  bytes: number;
  events: number;
  created: number;
  node: string;
}
