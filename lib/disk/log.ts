/**
 * The disk log: a segmented append-only log of records in one directory, owned by one process
 * at a time (see lock.ts). Appends are grouped: every append made while the previous group is
 * being written joins the next group, which is written with one write per segment and, in
 * `'always'` mode, synced with one fsync per segment before any of its appends resolves.
 * Records are acknowledged by id (in any order); acknowledged records are never read again,
 * also after a restart, and a segment whose records are all acknowledged is deleted.
 *
 * Operations on the segments (writes, rotations, their syncs) run on one promise chain (`#run`),
 * and operations on the ack file (acknowledgements, its syncs and compaction, and the deletion of
 * finished segments) on another (`#runAcks`): each kind never interleaves with itself, and an
 * acknowledgement never waits behind a large group being written (a sink that waits for its
 * acknowledgements would otherwise deliver one batch per group). The two touch different files:
 * deletion only ever removes a segment older than the one being written. Reads run beside both:
 * they only read bytes whose appends have resolved, and those bytes never change. The write side
 * (active segment, ids, rotation) is writer.ts; this module owns the rest: the lock, the queues
 * of appends and acks, acknowledged ids, segment deletion, reading and the counters.
 */
import { join } from 'node:path';
import { AckFile, toPairs } from './acks';
import { DiskError } from './errors';
import { type DiskFs, syncDirectory } from './fs';
import { type Lock, acquireLock, unlinkIfPresent } from './lock';
import { IdRanges } from './ranges';
import { LogReader, type StoredRecord } from './reader';
import { type Segment, recoverSegments, segmentBase } from './recovery';
import { type PendingAppend, SegmentWriter } from './writer';
import { type DiskLogOptions, type FsyncMode, resolveOptions } from './options';

export type { StoredRecord } from './reader';

/** Counters of a disk log; reading them allocates one object. */
export interface DiskLogStats {
  /** Bytes in the segment files and the ack file. */
  bytesOnDisk: number;
  /** Records appended and not acknowledged. */
  recordsHeld: number;
  /** Records found unacknowledged when the log was opened (they are read first). */
  replayed: number;
  /** Their bytes, record headers included. */
  replayedBytes: number;
  /** Corrupt stretches found at open and moved to the quarantine file. */
  corruptRecords: number;
  /** Segment files. */
  segments: number;
}

/** What {@link DiskLog.appendGroup} wrote. */
export interface AppendedGroup {
  /** The id of the first record written (0 when none was). */
  firstId: number;
  /** Records written: the first `written` of the group. */
  written: number;
  /** Why the rest were not; `undefined` when all were. */
  error: DiskError | undefined;
}

/** An ack() call waiting for its ids to be recorded. */
interface PendingAck {
  ids: number[];
  resolve(): void;
  reject(error: unknown): void;
}

/** A write-ahead log in one directory; see the module header and docs/design.md. Open it with {@link DiskLog.open}. */
export class DiskLog {
  /** The log's directory, resolved to an absolute path. */
  readonly path: string;
  readonly #disk: DiskFs;
  readonly #fsync: FsyncMode;
  readonly #ackCompactBytes: number;
  readonly #lock: Lock;
  readonly #acks: AckFile;
  readonly #writer: SegmentWriter;
  /** Ascending by base; the last one is the active segment (the writer adds, deletion removes older ones). */
  readonly #segments: Segment[];
  /** Acknowledged ids (and ids lost to corruption) from the oldest segment's base on. */
  readonly #acked: IdRanges;
  /** Ack entries written since the last fsync of the ack file ('interval', 'never'). */
  #acksDirty = false;
  /** Records on disk and not acknowledged. */
  #held: number;
  readonly #replayed: number;
  readonly #replayedBytes: number;
  readonly #corrupt: number;
  #closed = false;
  /** The chain the segment operations run on. */
  #chain: Promise<unknown> = Promise.resolve();
  /** The chain the ack-file operations and segment deletions run on. */
  #ackChain: Promise<unknown> = Promise.resolve();
  /** Appends waiting for the next group; `#appendQueued` when a task to write them is on the chain. */
  #appends: PendingAppend[] = [];
  #appendQueued = false;
  #acksWaiting: PendingAck[] = [];
  #ackQueued = false;
  readonly #reader: LogReader;
  #timer: NodeJS.Timeout | undefined;
  /** An interval fsync that failed: the next append group reports it. */
  #syncError: unknown;

  private constructor(
    options: ReturnType<typeof resolveOptions>,
    lock: Lock,
    acks: AckFile,
    acked: IdRanges,
    recovered: Awaited<ReturnType<typeof recoverSegments>>,
    writer: SegmentWriter,
  ) {
    this.path = options.path;
    this.#disk = options.fs;
    this.#fsync = options.fsync;
    this.#ackCompactBytes = options.ackCompactBytes;
    this.#lock = lock;
    this.#acks = acks;
    this.#acked = acked;
    this.#segments = recovered.segments;
    this.#writer = writer;
    this.#held = this.#replayed = recovered.held;
    this.#replayedBytes = recovered.heldBytes;
    this.#corrupt = recovered.corrupt;
    this.#reader = new LogReader({
      disk: this.#disk,
      path: this.path,
      segments: this.#segments,
      readableEnd: (segment) => writer.readableEnd(segment),
      // Below the oldest segment, ids are gone from `acked` (pruned) but were all acknowledged.
      isAcknowledged: (id) => id < (this.#segments[0] as Segment).base || acked.has(id),
    });
    if (this.#fsync === 'interval') {
      const tick = (): void => {
        this.sync().catch((error: unknown) => (this.#syncError = error));
      };
      this.#timer = setInterval(tick, options.fsyncIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * Opens the log in `options.path` (created if missing): takes the lock, verifies and repairs
   * the segments, and positions `read()` at the first unacknowledged record.
   *
   * @example
   * ```ts
   * const log = await DiskLog.open({ path: '/var/lib/app/queue', fsync: 'always' });
   * const id = await log.append(Buffer.from('{"n":1}'));
   * for (const record of await log.read(100)) await deliver(record.payload).then(() => log.ack([record.id]));
   * await log.close();
   * ```
   */
  static async open(options: DiskLogOptions): Promise<DiskLog> {
    const resolved = resolveOptions(options);
    const { fs: disk, path } = resolved;
    try {
      await disk.mkdir(path);
    } catch (error) {
      throw DiskError.unusable(path, error);
    }
    const lock = await acquireLock(disk, path);
    try {
      const names = await disk.readdir(path);
      for (const name of names) if (/\.seg\.tmp$|^acks\.tmp$/.test(name)) await unlinkIfPresent(disk, join(path, name));
      const acked = new IdRanges();
      const acks = await AckFile.open(disk, path, acked);
      const bases = names.map(segmentBase).filter((base): base is number => base !== undefined);
      const recovered = await recoverSegments(
        disk,
        path,
        bases.sort((a, b) => a - b),
        acked,
      );
      const { fsync, segmentBytes } = resolved;
      const writer = await SegmentWriter.open(disk, path, fsync, segmentBytes, recovered.segments, recovered.nextId);
      acked.pruneBelow((recovered.segments[0] as Segment).base);
      return new DiskLog(resolved, lock, acks, acked, recovered, writer);
    } catch (error) {
      await lock.release();
      throw error instanceof DiskError ? error : DiskError.unusable(path, error);
    }
  }

  /**
   * Appends one record; resolves its id once it is written (and, in `'always'` mode, synced).
   * Rejects with `ERR_DISK_FULL`/`ERR_DISK_IO` if the write fails: then nothing of it is kept.
   */
  append(payload: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(DiskError.closed(this.path));
    return new Promise((resolve, reject) => {
      this.#appends.push({ payload, resolve, reject });
      this.#writeSoon();
    });
  }

  /**
   * Appends records in order, as one group; never rejects. Resolves how many were written (a
   * prefix of `payloads`, with consecutive ids from `firstId`) and, if not all, the `DiskError`
   * that stopped the rest: nothing of those is kept. One promise for the group, not one per record.
   */
  appendGroup(payloads: readonly Uint8Array[]): Promise<AppendedGroup> {
    if (this.#closed) return Promise.resolve({ firstId: 0, written: 0, error: DiskError.closed(this.path) });
    return new Promise((resolve) => {
      const result: AppendedGroup = { firstId: 0, written: 0, error: undefined };
      let left = payloads.length;
      const settled = (): void => {
        if (--left === 0) resolve(result);
      };
      const onWritten = (id: number): void => {
        if (result.written++ === 0) result.firstId = id;
        settled();
      };
      const onFailed = (error: unknown): void => {
        result.error ??= error as DiskError;
        settled();
      };
      if (left === 0) return resolve(result);
      for (const payload of payloads) this.#appends.push({ payload, resolve: onWritten, reject: onFailed });
      this.#writeSoon();
    });
  }

  /**
   * Marks records delivered. Resolves once that is recorded (synced in `'always'` mode) and the
   * segments it finished are deleted (a failed deletion is retried by the next ack).
   * Acknowledging an id twice is harmless; an id never handed out rejects with
   * `ERR_DISK_UNKNOWN_ID` and marks nothing. The ids count as
   * acknowledged in this process at once (`read()` skips them); if recording fails, the promise
   * rejects and a restart may deliver them again (at-least-once, never a loss).
   */
  ack(ids: readonly number[]): Promise<void> {
    if (this.#closed) return Promise.reject(DiskError.closed(this.path));
    const unknown = ids.find((id) => !Number.isSafeInteger(id) || id < 1 || id >= this.#writer.nextId);
    if (unknown !== undefined) return Promise.reject(DiskError.unknownId(this.path, unknown));
    const floor = (this.#segments[0] as Segment).base;
    const fresh = ids.filter((id) => id >= floor && this.#acked.add(id));
    // Nothing new: still wait for the acks queued before (they may hold these ids).
    if (fresh.length === 0) return this.#runAcks(async () => undefined);
    this.#held -= fresh.length;
    return new Promise((resolve, reject) => {
      this.#acksWaiting.push({ ids: fresh, resolve, reject });
      if (this.#ackQueued) return;
      this.#ackQueued = true;
      void this.#runAcks(() => this.#writeAcks());
    });
  }

  /**
   * The next unacknowledged records, in id order, at most `maxRecords` of them: only those are
   * in memory, however large the log. Resolves `[]` once every appended record has been read.
   * Records are not read twice by one log; after a restart, every unacknowledged one is.
   */
  read(maxRecords: number): Promise<StoredRecord[]> {
    if (this.#closed) return Promise.reject(DiskError.closed(this.path));
    return this.#reader.read(maxRecords);
  }

  /** From now on, `read()` passes over records below `id` (their owner kept them in memory). */
  skipBelow(id: number): void {
    this.#reader.skipBelow(id);
  }

  /** Every unacknowledged record not read yet, `readAhead` at a time. */
  async *records(readAhead = 1000): AsyncGenerator<StoredRecord> {
    for (let batch = await this.read(readAhead); batch.length > 0; batch = await this.read(readAhead)) yield* batch;
  }

  /** Forces an fsync of what was written (any mode). */
  async sync(): Promise<void> {
    await Promise.all([this.#run(() => this.#writer.sync()), this.#runAcks(() => this.#syncAcksIfDirty())]);
  }

  stats(): DiskLogStats {
    const segmentBytes = this.#segments.reduce((sum, segment) => sum + segment.size, 0);
    return {
      bytesOnDisk: segmentBytes + this.#acks.size,
      recordsHeld: this.#held,
      replayed: this.#replayed,
      replayedBytes: this.#replayedBytes,
      corruptRecords: this.#corrupt,
      segments: this.#segments.length,
    };
  }

  /** Finishes pending appends and acks, syncs (unless `'never'`), closes the files, releases the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      const closeSegments = this.#run(async () => {
        try {
          if (this.#fsync !== 'never') await this.#writer.sync();
        } finally {
          await this.#writer.close();
        }
      });
      const closeAcks = this.#runAcks(async () => {
        try {
          if (this.#fsync !== 'never') await this.#syncAcksIfDirty();
        } finally {
          await this.#acks.close();
        }
      });
      const [segments, acks] = await Promise.allSettled([closeSegments, closeAcks]);
      if (segments.status === 'rejected') throw segments.reason;
      if (acks.status === 'rejected') throw acks.reason;
    } finally {
      await this.#reader.idle();
      await this.#lock.release();
    }
  }

  #run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#chain.then(task);
    this.#chain = result.catch(() => undefined);
    return result;
  }

  #runAcks<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#ackChain.then(task);
    this.#ackChain = result.catch(() => undefined);
    return result;
  }

  /** Puts a task on the chain that writes the waiting appends, unless one is there already. */
  #writeSoon(): void {
    if (this.#appendQueued) return;
    this.#appendQueued = true;
    void this.#run(() => this.#writeGroup());
  }

  /** Writes every append waiting now as one group. */
  async #writeGroup(): Promise<void> {
    this.#appendQueued = false;
    const group = this.#appends;
    this.#appends = [];
    if (this.#syncError !== undefined) {
      const error = DiskError.io(this.path, 'sync a segment', this.#syncError);
      this.#syncError = undefined;
      for (const pending of group) pending.reject(error);
      return;
    }
    // Not `#held += await …`: that would read #held before the write and lose acks made during it.
    const written = await this.#writer.write(group);
    this.#held += written;
  }

  async #syncAcksIfDirty(): Promise<void> {
    if (this.#acksDirty) await this.#acks.sync();
    this.#acksDirty = false;
  }

  /** Records every acknowledgement waiting now in one ack-file entry, then deletes finished segments. */
  async #writeAcks(): Promise<void> {
    this.#ackQueued = false;
    const group = this.#acksWaiting;
    this.#acksWaiting = [];
    try {
      await this.#acks.append(toPairs(group.flatMap((pending) => pending.ids)));
      if (this.#fsync === 'always') await this.#acks.sync();
      else this.#acksDirty = true;
    } catch (error) {
      const failure = DiskError.io(this.path, 'record acknowledgements', error);
      for (const waiter of group) waiter.reject(failure);
      return;
    }
    try {
      await this.#deleteAcknowledgedSegments();
    } catch {
      // The acknowledgements are recorded; only the clean-up failed. The next ack() tries it again
      // (a segment not deleted costs disk space, never a record), so the ack() still resolves.
    }
    // After the clean-up, so that a resolved ack() means its finished segments are gone.
    for (const waiter of group) waiter.resolve();
  }

  /** Deletes every segment but the active one whose ids are all acknowledged; compacts the ack file. */
  async #deleteAcknowledgedSegments(): Promise<void> {
    let deleted = false;
    for (let i = this.#segments.length - 2; i >= 0; i--) {
      const segment = this.#segments[i] as Segment;
      const nextBase = (this.#segments[i + 1] as Segment).base;
      if (!this.#acked.covers(segment.base, nextBase - 1)) continue;
      await unlinkIfPresent(this.#disk, segment.file);
      this.#segments.splice(i, 1);
      deleted = true;
    }
    if (!deleted) return;
    if (this.#fsync !== 'never') await syncDirectory(this.#disk, this.path);
    this.#acked.pruneBelow((this.#segments[0] as Segment).base);
    if (this.#acks.size > this.#ackCompactBytes) await this.#acks.compact(this.#acked);
  }
}
