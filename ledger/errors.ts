// Errors of the full node. Wire-format and verification failures keep the
// protocol's IscmError codes (protocol/errors.ts); what only the ledger can
// hit (its store, its config, its services) is a LedgerError with one of the
// codes below. Messages never carry secrets: passwords, PINs and passphrases
// are referred to by the variable or file that holds them.

export type LedgerErrorCode =
  | 'STORE_UNAVAILABLE' // etcd unreachable, no quorum, deadline exceeded
  | 'STORE_LIMIT' // a request over --max-request-bytes / --max-txn-ops, or etcd's quota
  | 'STORE_CORRUPT' // a stored value does not decode (or fails its own checks)
  | 'CONFIG' // the config file is wrong (message carries file:line:col)
  | 'REGISTRY' // a claim is malformed, unsigned by a trusted operator, or does not fit
  | 'ARCHIVE' // an archive file is missing, unreadable or fails verification
  | 'NOT_FOUND' // what a query asked for is not in the log
  | 'AUDIT'; // the whole-log audit found a violation

export class LedgerError extends Error {
  readonly code: LedgerErrorCode;
  constructor(code: LedgerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LedgerError';
    this.code = code;
  }
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
