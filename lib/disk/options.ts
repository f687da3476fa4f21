/**
 * The disk log's options: documented, validated once, resolved into a frozen object. Bad values
 * throw coded `TypeError`/`RangeError`s that name the option and echo the value, as everywhere
 * in sluice.
 */
import { resolve } from 'node:path';
import { invalidArgType, invalidArgValue, outOfRange } from '../errors';
import { type DiskFs, nodeFs } from './fs';

/**
 * When appended bytes are forced to stable storage. In every mode an append resolves only after
 * its bytes were handed to the OS (`write` returned), so a resolved append survives the process
 * being killed (`kill -9`, an OOM kill, a crash). They differ on a power loss or a kernel crash:
 *
 * - `'always'`: the append resolves after an fsync that covers it; nothing resolved is lost.
 *   Appends made together share one fsync (per segment file they touch).
 * - `'interval'`: an fsync runs every `fsyncIntervalMs` when something was written; up to that
 *   long of resolved appends can be lost.
 * - `'never'`: the OS writes back when it decides (Linux: typically within 30 s); that much can
 *   be lost.
 *
 * A torn record left by any of these is detected at the next open and truncated.
 */
export type FsyncMode = 'always' | 'interval' | 'never';

/** Options of {@link DiskLog.open}. */
export interface DiskLogOptions {
  /** The log's directory; created if missing. One process at a time owns it (a lock file). */
  path: string;
  /**
   * When appends are synced to disk; see {@link FsyncMode}.
   * @default 'interval'
   */
  fsync?: FsyncMode;
  /**
   * The period of the `'interval'` mode's fsync.
   * @default 100
   */
  fsyncIntervalMs?: number;
  /**
   * A segment file is closed and a new one started once the next record would take it past this
   * size. A single record larger than this gets a segment of its own.
   * @default 67108864 (64 MiB)
   */
  segmentBytes?: number;
  /**
   * The ack file is compacted once it is larger than this.
   * @default 1048576 (1 MiB)
   */
  ackCompactBytes?: number;
  /** The file operations to use. For tests (counting fsyncs, tearing writes); defaults to Node's. */
  fs?: DiskFs;
}

/** The options after validation, every default applied; frozen. */
export type ResolvedDiskLogOptions = Readonly<Required<DiskLogOptions>>;

const NAMES = new Set(['path', 'fsync', 'fsyncIntervalMs', 'segmentBytes', 'ackCompactBytes', 'fs']);
/** What a misspelt name is told it may be. */
const KNOWN = 'path, maxBytes, fsync, fsyncIntervalMs, segmentBytes, serialize, deserialize';
const MODES: readonly FsyncMode[] = ['always', 'interval', 'never'];

/** Validates `options` and applies the defaults. */
export function resolveOptions(options: DiskLogOptions): ResolvedDiskLogOptions {
  if (options === null || typeof options !== 'object') throw invalidArgType('The disk options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!NAMES.has(key))
      throw invalidArgValue(
        `The option "disk.${key}"`,
        `is not a disk option (known: ${KNOWN})`,
        options[key as keyof DiskLogOptions],
      );
  }
  if (typeof options.path !== 'string' || options.path === '') {
    throw invalidArgType('The option "disk.path"', 'a non-empty string', options.path);
  }
  const fsync = options.fsync ?? 'interval';
  if (!MODES.includes(fsync))
    throw invalidArgValue('The option "disk.fsync"', "must be 'always', 'interval' or 'never'", fsync);
  return Object.freeze({
    path: resolve(options.path),
    fsync,
    fsyncIntervalMs: integer('fsyncIntervalMs', options.fsyncIntervalMs ?? 100, 1, 2 ** 31 - 1),
    segmentBytes: integer('segmentBytes', options.segmentBytes ?? 64 * 1024 * 1024, 64, 2 ** 32),
    ackCompactBytes: integer('ackCompactBytes', options.ackCompactBytes ?? 1024 * 1024, 64, 2 ** 32),
    fs: options.fs ?? nodeFs,
  });
}

function integer(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(`The option "disk.${name}"`, 'of type number', value);
  if (!Number.isSafeInteger(value) || !(value >= min && value <= max)) {
    throw outOfRange(`The option "disk.${name}"`, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** The `disk` option of a sluice, validated: the log's options, the byte capacity and the codec's functions. */
export interface ResolvedSluiceDisk<T> {
  readonly log: ResolvedDiskLogOptions;
  readonly maxBytes: number;
  readonly serialize: ((item: T) => Uint8Array | string) | undefined;
  readonly deserialize: ((bytes: Buffer) => T) | undefined;
}

const SLUICE_ONLY = new Set(['maxBytes', 'serialize', 'deserialize']);
/** 1 GiB. */
export const DEFAULT_DISK_MAX_BYTES = 2 ** 30;

/**
 * Validates a sluice's `disk` option (`{ path, maxBytes, fsync, fsyncIntervalMs, segmentBytes,
 * serialize, deserialize }`); throws coded errors naming the option, like every option.
 */
export function resolveSluiceDisk<T>(options: unknown): ResolvedSluiceDisk<T> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgType('The option "disk"', 'an object { path, ... }', options);
  }
  const record = options as Record<string, unknown>;
  const logOptions: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) if (!SLUICE_ONLY.has(key)) logOptions[key] = value;
  const log = resolveOptions(logOptions as unknown as DiskLogOptions);
  const maxBytes = record.maxBytes ?? DEFAULT_DISK_MAX_BYTES;
  if (typeof maxBytes !== 'number') throw invalidArgType('The option "disk.maxBytes"', 'of type number', maxBytes);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw outOfRange('The option "disk.maxBytes"', 'an integer >= 1', maxBytes);
  }
  const codecFunction = (name: 'serialize' | 'deserialize'): unknown => {
    const value = record[name];
    if (value !== undefined && typeof value !== 'function') {
      throw invalidArgType(`The option "disk.${name}"`, 'a function', value);
    }
    return value;
  };
  return Object.freeze({
    log,
    maxBytes,
    serialize: codecFunction('serialize') as ResolvedSluiceDisk<T>['serialize'],
    deserialize: codecFunction('deserialize') as ResolvedSluiceDisk<T>['deserialize'],
  });
}
