/**
 * The disk log: a segmented append-only log of records in one directory, owned by one process
 * at a time (see lock.ts). Appends are grouped: every append made while the previous group is
 * being written joins the next group, which is written with one write per segment and, in
 * `'always'` mode, synced with one fsync per segment before any of its appends resolves.
 * Records are acknowledged by id (in any order); acknowledged records are never read again,
 * also after a restart, and a segment whose records are all acknowledged is deleted.
 *
 * Every operation that touches the files runs on one promise chain (`#run`), so writes,
 * rotations, syncs, acknowledgements and deletions never interleave. Reads run beside it: they
 * only read bytes whose appends have resolved, and those bytes never change.
 */
import { join } from 'node:path';
import { AckFile, toPairs } from './acks';
import { DiskError, osCode } from './errors';
import { type DiskFs, syncDirectory, writeAll } from './fs';
import { type Lock, acquireLock, unlinkIfPresent } from './lock';
import { IdRanges } from './ranges';
import { type StoredRecord, readSpan } from './reader';
import { encodeRecord } from './record';
import { type Segment, recoverSegments, segmentBase, segmentName } from './recovery';
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
  /** Corrupt stretches found at open and moved to the quarantine file. */
  corruptRecords: number;
  /** Segment files. */
  segments: number;
}

interface Waiter<E, R> {
  entry: E;
  resolve(value: R): void;
  reject(error: unknown): void;
}

export class DiskLog {
  readonly path: string;
  readonly #disk: DiskFs;
  readonly #fsync: FsyncMode;
  readonly #segmentBytes: number;
  readonly #ackCompactBytes: number;
  readonly #lock: Lock;
  readonly #acks: AckFile;
  /** Ascending by base; the last one is the active segment, the only one written to. */
  readonly #segments: Segment[];
  /** Acknowledged ids (and ids lost to corruption) from the oldest segment's base on. */
  readonly #acked: IdRanges;
  #activeFd: number;
  /** The id of the next record written. Ids below it are written or were rolled back. */
  #nextId: number;
  /** Bytes of the active segment whose appends resolved: readers stop here. */
  #readable: number;
  /** Appends written since the last fsync ('interval', 'never'). */
  #dirty = false;
  /** Ack entries written since the last fsync of the ack file ('interval', 'never'). */
  #acksDirty = false;
  /** A failed write may have left bytes past the active segment's size: cut them before the next write. */
  #tailDirty = false;
  #held: number;
  readonly #replayed: number;
  readonly #corrupt: number;
  #closed = false;
  /** The chain every file operation runs on. */
  #chain: Promise<unknown> = Promise.resolve();
  #appends: Array<Waiter<Uint8Array, number>> = [];
  #appendQueued = false;
  #acksWaiting: Array<Waiter<number[], void>> = [];
  #ackQueued = false;
  /** Where `read()` goes on: a segment base and a byte offset in it. */
  #readBase: number;
  #readOffset = 0;
  #reading: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  /** An interval fsync that failed: the next append group reports it. */
  #syncError: unknown;

  private constructor(
    options: ReturnType<typeof resolveOptions>,
    lock: Lock,
    acks: AckFile,
    acked: IdRanges,
    recovered: Awaited<ReturnType<typeof recoverSegments>>,
    activeFd: number,
  ) {
    this.path = options.path;
    this.#disk = options.fs;
    this.#fsync = options.fsync;
    this.#segmentBytes = options.segmentBytes;
    this.#ackCompactBytes = options.ackCompactBytes;
    this.#lock = lock;
    this.#acks = acks;
    this.#acked = acked;
    this.#segments = recovered.segments;
    this.#nextId = recovered.nextId;
    this.#held = this.#replayed = recovered.held;
    this.#corrupt = recovered.corrupt;
    this.#activeFd = activeFd;
    this.#readable = this.#active.size;
    this.#readBase = (this.#segments[0] as Segment).base;
    if (this.#fsync === 'interval') {
      const tick = (): void => {
        this.#run(() => this.#syncIfDirty()).catch((error: unknown) => (this.#syncError = error));
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
      if (recovered.segments.length === 0) recovered.segments.push(await createSegment(disk, path, recovered.nextId));
      const active = recovered.segments[recovered.segments.length - 1] as Segment;
      const fd = await disk.open(active.file, 'r+');
      acked.pruneBelow((recovered.segments[0] as Segment).base);
      return new DiskLog(resolved, lock, acks, acked, recovered, fd);
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
      this.#appends.push({ entry: payload, resolve, reject });
      if (this.#appendQueued) return;
      this.#appendQueued = true;
      void this.#run(() => this.#writeGroup());
    });
  }

  /**
   * Marks records delivered. Resolves once that is recorded (synced in `'always'` mode); fully
   * acknowledged segments are then deleted. Acknowledging an id twice is harmless; an id never
   * handed out rejects with `ERR_DISK_UNKNOWN_ID` and marks nothing.
   */
  ack(ids: readonly number[]): Promise<void> {
    if (this.#closed) return Promise.reject(DiskError.closed(this.path));
    const unknown = ids.find((id) => !Number.isSafeInteger(id) || id < 1 || id >= this.#nextId);
    if (unknown !== undefined) return Promise.reject(DiskError.unknownId(this.path, unknown));
    const floor = (this.#segments[0] as Segment).base;
    const fresh = ids.filter((id) => id >= floor && this.#acked.add(id));
    if (fresh.length === 0) return Promise.resolve();
    this.#held -= fresh.length;
    return new Promise((resolve, reject) => {
      this.#acksWaiting.push({ entry: fresh, resolve, reject });
      if (this.#ackQueued) return;
      this.#ackQueued = true;
      void this.#run(() => this.#writeAcks());
    });
  }

  /**
   * The next unacknowledged records, in id order, at most `maxRecords` of them: only those are
   * in memory, however large the log. Resolves `[]` once every appended record has been read.
   * Records are not read twice by one log; after a restart, every unacknowledged one is.
   */
  read(maxRecords: number): Promise<StoredRecord[]> {
    if (this.#closed) return Promise.reject(DiskError.closed(this.path));
    const result = this.#reading.then(() => this.#readNext(maxRecords));
    this.#reading = result.catch(() => undefined);
    return result;
  }

  /** Every unacknowledged record not read yet, `readAhead` at a time. */
  async *records(readAhead = 1000): AsyncGenerator<StoredRecord> {
    for (let batch = await this.read(readAhead); batch.length > 0; batch = await this.read(readAhead)) yield* batch;
  }

  /** Forces an fsync of what was written (any mode). */
  sync(): Promise<void> {
    return this.#run(() => this.#syncIfDirty());
  }

  stats(): DiskLogStats {
    const segmentBytes = this.#segments.reduce((sum, segment) => sum + segment.size, 0);
    return {
      bytesOnDisk: segmentBytes + this.#acks.size,
      recordsHeld: this.#held,
      replayed: this.#replayed,
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
      await this.#run(async () => {
        try {
          if (this.#fsync !== 'never') await this.#syncIfDirty();
        } finally {
          await this.#disk.close(this.#activeFd);
          await this.#acks.close();
        }
      });
    } finally {
      await this.#reading;
      await this.#lock.release();
    }
  }

  get #active(): Segment {
    return this.#segments[this.#segments.length - 1] as Segment;
  }

  #run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#chain.then(task);
    this.#chain = result.catch(() => undefined);
    return result;
  }

  /** Writes every append waiting now, one chunk per segment it fills. */
  async #writeGroup(): Promise<void> {
    this.#appendQueued = false;
    const group = this.#appends;
    this.#appends = [];
    if (this.#syncError !== undefined) {
      const error = DiskError.io(this.path, 'sync a segment', this.#syncError);
      this.#syncError = undefined;
      for (const waiter of group) waiter.reject(error);
      return;
    }
    let start = 0;
    try {
      while (start < group.length) {
        const end = this.#chunkEnd(group, start);
        if (end === start) {
          await this.#rotate();
          continue;
        }
        await this.#writeChunk(group.slice(start, end));
        start = end;
      }
    } catch (error) {
      const failure = error instanceof DiskError ? error : DiskError.io(this.path, 'rotate segments', error);
      for (const waiter of group.slice(start)) waiter.reject(failure);
    }
  }

  /** How many of `group[start…]` fit in the active segment (an empty segment takes at least one). */
  #chunkEnd(group: Array<Waiter<Uint8Array, number>>, start: number): number {
    let bytes = this.#active.size;
    let end = start;
    while (end < group.length) {
      bytes += 16 + (group[end] as Waiter<Uint8Array, number>).entry.length;
      if (bytes > this.#segmentBytes && !(end === start && this.#active.size === 0)) break;
      end++;
    }
    return end;
  }

  /** Writes records to the active segment and resolves their appends, or undoes the write. */
  async #writeChunk(chunk: Array<Waiter<Uint8Array, number>>): Promise<void> {
    const segment = this.#active;
    const firstId = this.#nextId;
    const bytes = Buffer.concat(chunk.map((waiter, i) => encodeRecord(firstId + i, waiter.entry)));
    try {
      if (this.#tailDirty) await this.#disk.ftruncate(this.#activeFd, segment.size);
      this.#tailDirty = false;
      await writeAll(this.#disk, this.#activeFd, bytes, segment.size);
      if (this.#fsync === 'always') await this.#disk.fsync(this.#activeFd);
    } catch (error) {
      await this.#undoTail(segment.size);
      throw DiskError.io(this.path, `append to ${segment.file}`, error);
    }
    this.#nextId = firstId + chunk.length;
    segment.size += bytes.length;
    this.#readable = segment.size;
    this.#held += chunk.length;
    this.#dirty = this.#fsync !== 'always';
    chunk.forEach((waiter, i) => waiter.resolve(firstId + i));
  }

  /** Cuts a failed write's bytes off; if that fails too, the next write tries again first. */
  async #undoTail(size: number): Promise<void> {
    try {
      await this.#disk.ftruncate(this.#activeFd, size);
    } catch {
      this.#tailDirty = true;
    }
  }

  /** Closes the full active segment (synced unless 'never') and starts a new one. */
  async #rotate(): Promise<void> {
    if (this.#fsync !== 'never') await this.#syncIfDirty();
    const next = await createSegment(this.#disk, this.path, this.#nextId, this.#fsync !== 'never');
    await this.#disk.close(this.#activeFd);
    this.#activeFd = await this.#disk.open(next.file, 'r+');
    this.#segments.push(next);
    this.#readable = 0;
  }

  async #syncIfDirty(): Promise<void> {
    if (this.#dirty) await this.#disk.fsync(this.#activeFd);
    this.#dirty = false;
    if (this.#acksDirty) await this.#acks.sync();
    this.#acksDirty = false;
  }

  /** Records every acknowledgement waiting now in one ack-file entry, then deletes finished segments. */
  async #writeAcks(): Promise<void> {
    this.#ackQueued = false;
    const group = this.#acksWaiting;
    this.#acksWaiting = [];
    try {
      await this.#acks.append(toPairs(group.flatMap((waiter) => waiter.entry)));
      if (this.#fsync === 'always') await this.#acks.sync();
      else this.#acksDirty = true;
    } catch (error) {
      const failure = DiskError.io(this.path, 'record acknowledgements', error);
      for (const waiter of group) waiter.reject(failure);
      return;
    }
    for (const waiter of group) waiter.resolve();
    try {
      await this.#deleteAcknowledgedSegments();
    } catch {
      // The acknowledgements are recorded; only the clean-up failed. The next ack() tries it again
      // (a segment not deleted costs disk space, never a record).
    }
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

  async #readNext(maxRecords: number): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    while (out.length < maxRecords) {
      const index = this.#segments.findIndex((segment) => segment.base >= this.#readBase);
      const segment = this.#segments[index];
      if (segment === undefined) break;
      if (segment.base !== this.#readBase) [this.#readBase, this.#readOffset] = [segment.base, 0];
      const isActive = index === this.#segments.length - 1;
      const end = isActive ? this.#readable : segment.size;
      if (this.#readOffset >= end) {
        if (isActive) break;
        this.#readBase = (this.#segments[index + 1] as Segment).base;
        this.#readOffset = 0;
        continue;
      }
      const span = await this.#readSegment(segment, end, maxRecords - out.length);
      for (const record of span.records) if (!this.#acked.has(record.id)) out.push(record);
      this.#readOffset = span.next;
    }
    return out;
  }

  /** One span of a segment; a segment deleted meanwhile (all acknowledged) reads as empty. */
  async #readSegment(
    segment: Segment,
    end: number,
    maxRecords: number,
  ): Promise<{ records: StoredRecord[]; next: number }> {
    try {
      return await readSpan(this.#disk, segment.file, this.#readOffset, end, maxRecords, (offset) => {
        throw new DiskError(
          'ERR_DISK_IO',
          this.path,
          `The record at ${segment.file} offset ${offset} fails its checksum: the file changed after the log was opened.`,
        );
      });
    } catch (error) {
      if (osCode(error) === 'ENOENT') return { records: [], next: end };
      throw error;
    }
  }
}

/** Creates an empty segment file for ids from `base` on (and syncs the directory entry). */
async function createSegment(disk: DiskFs, directory: string, base: number, durable = true): Promise<Segment> {
  const file = join(directory, segmentName(base));
  // 'w', not 'wx': a rotation that failed after creating the file left it empty; reuse it.
  await disk.close(await disk.open(file, 'w'));
  if (durable) await syncDirectory(disk, directory);
  return { base, file, size: 0 };
}
