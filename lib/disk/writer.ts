/**
 * The write side of the disk log: the active segment, the next id, rotation, and what a failed
 * write leaves behind. It owns the active file descriptor and appends to the log's segment list
 * (the log only ever removes older segments from it). Every method is called from the log's one
 * promise chain, never two at once.
 */
import { join } from 'node:path';
import { DiskError } from './errors';
import { type DiskFs, syncDirectory, writeAll } from './fs';
import type { FsyncMode } from './options';
import { HEADER_BYTES, encodeRecords } from './record';
import { type Segment, segmentName } from './recovery';

/** One queued append: its payload and how to settle its promise. */
export interface PendingAppend {
  payload: Uint8Array;
  resolve(id: number): void;
  reject(error: unknown): void;
}

/** Appends groups of records to the active segment, rotating to a new one when it is full. */
export class SegmentWriter {
  #activeFd: number;
  /** The id of the next record written; ids below it are on disk (or were in a deleted segment). */
  #nextId: number;
  /** Bytes of the active segment whose appends resolved: readers stop here. */
  #readable: number;
  /** Written since the last fsync of the active segment ('interval', 'never'). */
  #dirty = false;
  /** A failed write may have left bytes past the active segment's size: cut them before the next write. */
  #tailDirty = false;

  private constructor(
    private readonly disk: DiskFs,
    private readonly directory: string,
    private readonly fsync: FsyncMode,
    private readonly segmentBytes: number,
    /** Ascending by base; the last one is the active segment. Shared with the log. */
    private readonly segments: Segment[],
    activeFd: number,
    nextId: number,
  ) {
    this.#activeFd = activeFd;
    this.#nextId = nextId;
    this.#readable = this.#active.size;
  }

  /** Opens the last segment for appending (creating a first one in an empty log). */
  static async open(
    disk: DiskFs,
    directory: string,
    fsync: FsyncMode,
    segmentBytes: number,
    segments: Segment[],
    nextId: number,
  ): Promise<SegmentWriter> {
    if (segments.length === 0) segments.push(await createSegment(disk, directory, nextId, true));
    const fd = await disk.open((segments[segments.length - 1] as Segment).file, 'r+');
    return new SegmentWriter(disk, directory, fsync, segmentBytes, segments, fd, nextId);
  }

  get nextId(): number {
    return this.#nextId;
  }

  /** Where readers of `segment` must stop: the resolved bytes of the active one, all of an older one. */
  readableEnd(segment: Segment): number {
    return segment === this.#active ? this.#readable : segment.size;
  }

  /**
   * Writes a group of appends, one chunk per segment it fills, and settles every one of them.
   * Resolves how many were written; a failure rejects the rest of the group with a `DiskError`.
   */
  async write(group: PendingAppend[]): Promise<number> {
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
      const failure = error instanceof DiskError ? error : DiskError.io(this.directory, 'rotate segments', error);
      for (const pending of group.slice(start)) pending.reject(failure);
    }
    return start;
  }

  /** Syncs the active segment if something was written since its last sync. */
  async sync(): Promise<void> {
    if (this.#dirty) await this.disk.fsync(this.#activeFd);
    this.#dirty = false;
  }

  async close(): Promise<void> {
    await this.disk.close(this.#activeFd);
  }

  get #active(): Segment {
    return this.segments[this.segments.length - 1] as Segment;
  }

  /** How many of `group[start…]` fit in the active segment (an empty segment takes at least one). */
  #chunkEnd(group: PendingAppend[], start: number): number {
    let bytes = this.#active.size;
    let end = start;
    while (end < group.length) {
      bytes += HEADER_BYTES + (group[end] as PendingAppend).payload.length;
      if (bytes > this.segmentBytes && !(end === start && this.#active.size === 0)) break;
      end++;
    }
    return end;
  }

  /** Writes records to the active segment and resolves their appends, or undoes the write. */
  async #writeChunk(chunk: PendingAppend[]): Promise<void> {
    const segment = this.#active;
    const firstId = this.#nextId;
    const bytes = encodeRecords(firstId, chunk);
    try {
      if (this.#tailDirty) await this.disk.ftruncate(this.#activeFd, segment.size);
      this.#tailDirty = false;
      await writeAll(this.disk, this.#activeFd, bytes, segment.size);
      if (this.fsync === 'always') await this.disk.fsync(this.#activeFd);
    } catch (error) {
      await this.#undoTail(segment.size);
      throw DiskError.io(this.directory, `append to ${segment.file}`, error);
    }
    this.#nextId = firstId + chunk.length;
    segment.size += bytes.length;
    this.#readable = segment.size;
    this.#dirty = this.fsync !== 'always';
    chunk.forEach((pending, i) => pending.resolve(firstId + i));
  }

  /** Cuts a failed write's bytes off; if that fails too, the next write tries again first. */
  async #undoTail(size: number): Promise<void> {
    try {
      await this.disk.ftruncate(this.#activeFd, size);
    } catch {
      this.#tailDirty = true;
    }
  }

  /** Closes the full active segment (synced unless 'never') and starts a new one. */
  async #rotate(): Promise<void> {
    if (this.fsync !== 'never') await this.sync();
    const next = await createSegment(this.disk, this.directory, this.#nextId, this.fsync !== 'never');
    // The new descriptor first: a failed open must leave the old segment active, not a closed fd.
    const fd = await this.disk.open(next.file, 'r+');
    const previous = this.#activeFd;
    this.#activeFd = fd;
    this.segments.push(next);
    this.#readable = 0;
    this.#dirty = false;
    await this.disk.close(previous);
  }
}

/** Creates an empty segment file for ids from `base` on (and syncs the directory entry). */
async function createSegment(disk: DiskFs, directory: string, base: number, durable: boolean): Promise<Segment> {
  const file = join(directory, segmentName(base));
  // 'w', not 'wx': a rotation that failed after creating the file left it empty; reuse it.
  await disk.close(await disk.open(file, 'w'));
  if (durable) await syncDirectory(disk, directory);
  return { base, file, size: 0 };
}
