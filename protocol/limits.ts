// Size bounds of the wire formats (ARCHITECTURE §4). Every decoder checks the
// input length against these before it parses, so a hostile peer cannot make
// a node allocate or walk more than this.

/** One record (§4.1): an EPCIS event with sensor data fits easily. */
export const MAX_RECORD_BYTES = 64 * 1024;
/** Records in one batch (§4.2); the adaptive batcher never closes larger. */
export const MAX_BATCH_RECORDS = 65_536;
/** A batch COSE_Sign1 (header + signature; an RSA-4096 signature is 512 bytes). */
export const MAX_SIGN1_BYTES = 4 * 1024;
/** A batch message on MQTT (§4.3), records included. */
export const MAX_BATCH_MESSAGE_BYTES = 16 * 1024 * 1024;
/** A COSE Receipt (§4.4): two proofs of ≤ 64 hashes each plus headers. */
export const MAX_RECEIPT_BYTES = 16 * 1024;
/** A ReceiptMsg (§4.4). */
export const MAX_RECEIPT_MSG_BYTES = 32 * 1024;
/** An event proof bundle (§4.4). */
export const MAX_BUNDLE_BYTES = MAX_RECORD_BYTES + MAX_SIGN1_BYTES + MAX_RECEIPT_BYTES + 8 * 1024;
/** Nesting of an EPCIS event as CBOR. */
export const MAX_EVENT_DEPTH = 24;
