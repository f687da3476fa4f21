/**
 * Errors of the disk log. Like every sluice error they carry a stable `code`; messages name the
 * directory or the record concerned and, for an OS failure, the OS error (kept as `cause`).
 */

/**
 * Codes a {@link DiskError} can carry. Branch on these, never on message text.
 *
 * @example
 * ```ts
 * if (error instanceof DiskError && error.code === 'ERR_DISK_LOCKED') console.error(error.message);
 * ```
 */
export type DiskErrorCode =
  | 'ERR_DISK_LOCKED'
  | 'ERR_DISK_UNUSABLE'
  | 'ERR_DISK_FULL'
  | 'ERR_DISK_IO'
  | 'ERR_DISK_CLOSED'
  | 'ERR_DISK_UNKNOWN_ID'
  | 'ERR_DISK_UNSERIALIZABLE'
  | 'ERR_DISK_UNDECODABLE';

/** An error of the disk log: a directory it cannot use, a failed write, an item it cannot store. */
export class DiskError extends Error {
  /** Always `'DiskError'`. */
  override readonly name = 'DiskError';
  /** What went wrong; stable, unlike the message. */
  readonly code: DiskErrorCode;
  /** The directory of the log. */
  readonly path: string;

  /** Use the static factories. */
  constructor(code: DiskErrorCode, path: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.path = path;
  }

  /** Another live process (or another log in this one) holds the directory's lock. */
  static locked(path: string, pid: number, lockFile: string): DiskError {
    return new DiskError(
      'ERR_DISK_LOCKED',
      path,
      `The disk log at ${path} is in use by process ${pid} (lock file ${lockFile}). One process at a time may own it.`,
    );
  }

  /** The directory is missing and cannot be created, is read-only, or is not a directory. */
  static unusable(path: string, cause: unknown): DiskError {
    return new DiskError('ERR_DISK_UNUSABLE', path, `The disk log cannot use ${path}: ${osMessage(cause)}`, cause);
  }

  /** A write, sync or truncate failed. ENOSPC/EDQUOT become `ERR_DISK_FULL`, the rest `ERR_DISK_IO`. */
  static io(path: string, action: string, cause: unknown): DiskError {
    const code = osCode(cause);
    const full = code === 'ENOSPC' || code === 'EDQUOT';
    return new DiskError(
      full ? 'ERR_DISK_FULL' : 'ERR_DISK_IO',
      path,
      `The disk log at ${path} could not ${action}${full ? ': the disk is full' : ''}: ${osMessage(cause)}`,
      cause,
    );
  }

  /** The log was closed (or failed) before the call. */
  static closed(path: string): DiskError {
    return new DiskError('ERR_DISK_CLOSED', path, `The disk log at ${path} is closed.`);
  }

  /** `ack()` was given an id the log never handed out. */
  static unknownId(path: string, id: unknown): DiskError {
    return new DiskError(
      'ERR_DISK_UNKNOWN_ID',
      path,
      `The disk log at ${path} has no record with id ${String(id)}: ack() takes ids of appended records.`,
    );
  }

  /** The item cannot be turned into bytes: nothing was written. */
  static unserializable(path: string, reason: string, cause?: unknown): DiskError {
    return new DiskError(
      'ERR_DISK_UNSERIALIZABLE',
      path,
      `An item cannot be stored in the disk log at ${path}: ${reason}. Nothing was written.`,
      cause,
    );
  }

  /** A stored record's bytes (intact, checksum good) could not be turned back into an item. */
  static undecodable(path: string, id: number, cause: unknown): DiskError {
    return new DiskError(
      'ERR_DISK_UNDECODABLE',
      path,
      `Record ${id} of the disk log at ${path} cannot be deserialized: ${osMessage(cause)}`,
      cause,
    );
  }
}

/** The `code` of an OS error (`'ENOSPC'`, `'EACCES'`, …), if it has one. */
export function osCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function osMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
