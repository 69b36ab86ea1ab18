// Typed errors of the journal. `kind` says what went wrong in terms an
// operator and the MCU link can act on; `code` is the project-wide ErrorCode
// (protocol/errors.ts) used by metrics and log filters.
//
// The MCU link's rule (ARCHITECTURE §2 invariant 1, §4.5): whatever the kind,
// a rejected append is NOT durable, so the reading is not acknowledged and
// the MCU keeps it and retransmits. QUOTA, DISK_FULL and READ_ONLY are the
// back-pressure kinds (invariant 6): nothing was written, nothing corrupted.
import { IscmError, type ErrorCode } from '../../protocol/errors.js';

export type JournalErrorKind =
  | 'QUOTA' // the configured quota is reached: free space by syncing (receipts → compaction)
  | 'DISK_FULL' // the filesystem returned ENOSPC/EDQUOT
  | 'READ_ONLY' // opened read-only, or the filesystem refused writes (EROFS, EACCES, EPERM)
  | 'CORRUPT' // damaged bytes where durable data must be: never skipped silently
  | 'CHAIN' // an append or a stored entry breaks the seq / prev-hash / batch chain (invariant 3)
  | 'CLOSED' // used before open() or after close()
  | 'LOCKED' // another live process (or instance) holds the journal directory
  | 'CONFIG' // bad options, or the directory belongs to another device
  | 'TOO_LARGE' // a unit or state blob beyond what one group commit can hold atomically (the message names the limit)
  | 'IO' // any other I/O failure; after a failed fsync the journal stops (see docs/JOURNAL.md)
  | 'NOT_FOUND'; // a batch named by a commit mark does not exist

// Storage kinds are JOURNAL_ERROR; misuse (closed, locked, bad options) is USAGE.
const CODE: { [K in JournalErrorKind]: ErrorCode } = {
  QUOTA: 'JOURNAL_ERROR',
  DISK_FULL: 'JOURNAL_ERROR',
  READ_ONLY: 'JOURNAL_ERROR',
  CORRUPT: 'JOURNAL_ERROR',
  CHAIN: 'JOURNAL_ERROR',
  CLOSED: 'USAGE',
  LOCKED: 'USAGE',
  CONFIG: 'USAGE',
  TOO_LARGE: 'JOURNAL_ERROR',
  IO: 'JOURNAL_ERROR',
  NOT_FOUND: 'JOURNAL_ERROR',
};

export interface JournalErrorDetail {
  field?: string;
  /** The file the error is about, when there is one. */
  path?: string;
  /** Byte offset in `path`. */
  offset?: number;
  /** errno code of the underlying system error (ENOSPC, EROFS …). */
  errno?: string;
  cause?: unknown;
}

export class JournalError extends IscmError {
  readonly kind: JournalErrorKind;
  readonly path: string | undefined;
  readonly offset: number | undefined;
  readonly errno: string | undefined;
  constructor(kind: JournalErrorKind, message: string, detail: JournalErrorDetail = {}) {
    super(CODE[kind], message, detail.field, detail.cause === undefined ? undefined : { cause: detail.cause });
    this.name = 'JournalError';
    this.kind = kind;
    this.path = detail.path;
    this.offset = detail.offset;
    this.errno = detail.errno;
  }
}

export function isJournalError(e: unknown, kind?: JournalErrorKind): e is JournalError {
  return e instanceof JournalError && (kind === undefined || e.kind === kind);
}

/**
 * Maps a Node system error from `op` on `path` to a JournalError whose kind
 * and message say what to do about it. JournalErrors pass through unchanged.
 */
export function fsError(e: unknown, op: string, path: string): JournalError {
  if (e instanceof JournalError) return e;
  const errno = (e as NodeJS.ErrnoException)?.code;
  const what = `${op} ${path}`;
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new JournalError('DISK_FULL', `${what}: the filesystem is full (${errno}); nothing was written past the last acknowledged entry. Free disk space or lower the journal quota below the free space; appends resume by themselves`, { path, errno, cause: e });
    case 'EROFS':
    case 'EACCES':
    case 'EPERM':
      return new JournalError('READ_ONLY', `${what}: the journal directory is not writable (${errno}); check the mount (read-only remount after filesystem errors?) and permissions, or open with readOnly: true to read the backlog`, { path, errno, cause: e });
    default:
      return new JournalError('IO', `${what} failed (${errno ?? (e as Error)?.message ?? e})`, { path, errno, cause: e });
  }
}
