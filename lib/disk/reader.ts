/**
 * Reading records back in bounded pieces: at most `maxRecords` records and two read buffers
 * (64 KiB each, or one record's size if larger) are in memory at a time. `LogReader` keeps the
 * position (a segment and a byte offset), the bytes read past it but not parsed yet (so that each
 * byte is read once, however few records a read asks for), and skips acknowledged records; it
 * never writes.
 */
import { DiskError, osCode } from './errors';
import { type DiskFs, readFully } from './fs';
import { HEADER_BYTES, announcedSize, parseRecord } from './record';
import type { Segment } from './recovery';

/** A stored record: its durable id and its payload bytes. */
export interface StoredRecord {
  readonly id: number;
  readonly payload: Buffer;
}

const CHUNK_BYTES = 64 * 1024;

/** What one read found, where the next read starts, and the bytes from there already read. */
export interface Span {
  records: StoredRecord[];
  next: number;
  /** Bytes at `next` read but not parsed: the next read's `carry`. */
  rest: Buffer;
}

const EMPTY = Buffer.alloc(0);

/**
 * Reads up to `maxRecords` records of `file` from byte `from` (a record boundary) up to `end`
 * (bytes known complete); `carry` holds bytes at `from` read before. A record that fails its
 * checksum here was damaged after the log was opened (recovery checked every record): `onBad`
 * decides what to do (it throws).
 */
export async function readSpan(
  disk: DiskFs,
  fd: number,
  from: number,
  end: number,
  maxRecords: number,
  onBad: (offset: number) => never,
  carry: Buffer = EMPTY,
): Promise<Span> {
  const records: StoredRecord[] = [];
  /** `bytes` are the file's bytes from `position` on. */
  let position = from;
  let bytes = carry;
  for (;;) {
    let offset = 0;
    while (records.length < maxRecords) {
      const record = parseRecord(bytes, offset);
      if (record === 'bad') onBad(position + offset);
      if (record === 'short') break;
      records.push({ id: record.id, payload: record.payload });
      offset += record.size;
    }
    position += offset;
    bytes = bytes.subarray(offset);
    if (records.length === maxRecords || position >= end) return { records, next: position, rest: bytes };
    // The record at `position` is not all here: read a chunk more, or the rest of a record larger than one.
    const size = bytes.length >= HEADER_BYTES ? announcedSize(bytes, 0) : HEADER_BYTES;
    if (position + size > end || position + bytes.length >= end) onBad(position);
    const total = Math.min(Math.max(size, CHUNK_BYTES), end - position);
    // A fresh buffer per read: the payloads returned are views into it, not copies.
    const buffer = Buffer.allocUnsafe(total);
    bytes.copy(buffer);
    const wanted = total - bytes.length;
    if ((await readFully(disk, fd, buffer.subarray(bytes.length), wanted, position + bytes.length)) < wanted) {
      onBad(position);
    }
    bytes = buffer;
  }
}

/** What the reader needs from the log: its segments, how far each may be read, which ids are done. */
export interface ReadableLog {
  readonly disk: DiskFs;
  readonly path: string;
  /** Ascending by base; older ones may disappear (deleted once acknowledged), new ones appear at the end. */
  readonly segments: readonly Segment[];
  readableEnd(segment: Segment): number;
  isAcknowledged(id: number): boolean;
}

/** The log's read position, from the oldest segment on; reads run one at a time. */
export class LogReader {
  /** The segment being read (by base, which survives deletions of older ones) and the offset in it. */
  #base: number;
  #offset = 0;
  /** The segment file being read, kept open between reads (a deleted one still reads). */
  #fd: number | undefined;
  #fdBase = 0;
  /** Bytes of that file from `#offset` on, read and not parsed yet. */
  #rest: Buffer = EMPTY;
  /** Records below this id are not returned (the caller holds them in memory); see {@link skipBelow}. */
  #floor = 0;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly log: ReadableLog) {
    this.#base = (log.segments[0] as Segment).base;
  }

  /** The next unacknowledged records, at most `maxRecords`; `[]` when every resolved append was read. */
  read(maxRecords: number): Promise<StoredRecord[]> {
    const result = this.#queue.then(() => this.#next(maxRecords));
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /**
   * From now on, records with ids below `id` are passed over like acknowledged ones: their owner
   * kept them in memory, so reading them back would deliver them twice.
   */
  skipBelow(id: number): void {
    this.#floor = Math.max(this.#floor, id);
  }

  /** Resolves once the reads started so far are over, and closes the file being read. */
  async idle(): Promise<void> {
    await this.#queue;
    await this.#closeFile();
  }

  async #closeFile(): Promise<void> {
    const fd = this.#fd;
    this.#fd = undefined;
    this.#rest = EMPTY;
    if (fd !== undefined) await this.log.disk.close(fd);
  }

  /** The descriptor of `segment`'s file, opened once; the previous segment's is closed. */
  async #fileOf(segment: Segment): Promise<number> {
    if (this.#fd !== undefined && this.#fdBase === segment.base) return this.#fd;
    await this.#closeFile();
    const fd = await this.log.disk.open(segment.file, 'r');
    this.#fd = fd;
    this.#fdBase = segment.base;
    return fd;
  }

  async #next(maxRecords: number): Promise<StoredRecord[]> {
    const { segments } = this.log;
    const out: StoredRecord[] = [];
    while (out.length < maxRecords) {
      // The segment read so far, or the next one if it was deleted meanwhile.
      const index = segments.findIndex((segment) => segment.base >= this.#base);
      const segment = segments[index];
      if (segment === undefined) break;
      if (segment.base !== this.#base) [this.#base, this.#offset, this.#rest] = [segment.base, 0, EMPTY];
      const end = this.log.readableEnd(segment);
      if (this.#offset >= end) {
        const next = segments[index + 1];
        if (next === undefined) break;
        [this.#base, this.#offset, this.#rest] = [next.base, 0, EMPTY];
        continue;
      }
      const span = await this.#span(segment, end, maxRecords - out.length);
      for (const record of span.records)
        if (record.id >= this.#floor && !this.log.isAcknowledged(record.id)) out.push(record);
      this.#offset = span.next;
      this.#rest = span.rest;
    }
    return out;
  }

  /** One span of a segment; a segment deleted meanwhile (all acknowledged) reads as empty. */
  async #span(segment: Segment, end: number, maxRecords: number): Promise<Span> {
    const { disk, path } = this.log;
    try {
      const fd = await this.#fileOf(segment);
      const onBad = (offset: number): never => {
        throw new DiskError(
          'ERR_DISK_IO',
          path,
          `The record at ${segment.file} offset ${offset} fails its checksum: the file changed after the log was opened.`,
        );
      };
      return await readSpan(disk, fd, this.#offset, end, maxRecords, onBad, this.#rest);
    } catch (error) {
      if (osCode(error) === 'ENOENT') return { records: [], next: end, rest: EMPTY };
      throw error;
    }
  }
}
