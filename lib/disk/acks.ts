/**
 * The ack file: which record ids were delivered, so that a restart does not replay them. Each
 * entry is a record (same framing as the segments) whose payload is [start, end] id pairs as
 * float64s (ids stay below 2^53). Entries are appended; when the file outgrows its budget it is
 * compacted to one entry holding the current ranges (a temporary file renamed over it).
 *
 * A torn or corrupt entry ends the file: it and everything after it are dropped at open. Losing
 * an acknowledgement can only cause a duplicate delivery, never a lost record.
 */
import { join } from 'node:path';
import { type DiskFs, readAll, writeAll } from './fs';
import { IdRanges } from './ranges';
import { encodeRecord, parseRecord } from './record';
import { rewrite } from './recovery';

/** The ack file's name inside the log directory. */
export const ACK_FILE = 'acks';

/** The ack file, open for appending. */
export class AckFile {
  /** Bytes in the file; every entry up to here is complete. */
  #size: number;
  /** The entry counter (the record id of ack entries; not used for anything but framing). */
  #entries = 0;

  private constructor(
    private readonly disk: DiskFs,
    private readonly directory: string,
    private fd: number,
    size: number,
  ) {
    this.#size = size;
  }

  get size(): number {
    return this.#size;
  }

  /** Opens (or creates) the ack file and reads every acknowledged id into `acked`. */
  static async open(disk: DiskFs, directory: string, acked: IdRanges): Promise<AckFile> {
    const file = join(directory, ACK_FILE);
    const fd = await disk.open(file, 'a+');
    try {
      const bytes = await readAll(disk, fd, file);
      let offset = 0;
      for (let entry = parseRecord(bytes, 0); typeof entry === 'object'; entry = parseRecord(bytes, offset)) {
        for (const [start, end] of decodePairs(entry.payload)) acked.addRange(start, end);
        offset += entry.size;
      }
      if (offset < bytes.length) {
        await disk.ftruncate(fd, offset);
        await disk.fsync(fd);
      }
      return new AckFile(disk, directory, fd, offset);
    } catch (error) {
      await disk.close(fd);
      throw error;
    }
  }

  /** Appends one entry with these ranges. Not synced: the caller decides when. */
  async append(pairs: Array<[number, number]>): Promise<void> {
    const entry = encodeRecord(++this.#entries, encodePairs(pairs));
    await writeAll(this.disk, this.fd, entry, this.#size);
    this.#size += entry.length;
  }

  async sync(): Promise<void> {
    await this.disk.fsync(this.fd);
  }

  /** Replaces the file with one entry holding `acked` (already pruned by the caller). */
  async compact(acked: IdRanges): Promise<void> {
    const entry = encodeRecord(++this.#entries, encodePairs(acked.toPairs()));
    const file = join(this.directory, ACK_FILE);
    await rewrite(this.disk, this.directory, file, entry);
    await this.disk.close(this.fd);
    this.fd = await this.disk.open(file, 'a+');
    this.#size = entry.length;
  }

  async close(): Promise<void> {
    await this.disk.close(this.fd);
  }
}

function encodePairs(pairs: Array<[number, number]>): Buffer {
  const bytes = Buffer.allocUnsafe(pairs.length * 16);
  pairs.forEach(([start, end], i) => {
    bytes.writeDoubleLE(start, i * 16);
    bytes.writeDoubleLE(end, i * 16 + 8);
  });
  return bytes;
}

function decodePairs(bytes: Buffer): Array<[number, number]> {
  const pairs: Array<[number, number]> = [];
  for (let offset = 0; offset + 16 <= bytes.length; offset += 16) {
    pairs.push([bytes.readDoubleLE(offset), bytes.readDoubleLE(offset + 8)]);
  }
  return pairs;
}

/** Sorted ids as [start, end] runs of consecutive ids. */
export function toPairs(ids: number[]): Array<[number, number]> {
  const sorted = [...ids].sort((a, b) => a - b);
  const pairs: Array<[number, number]> = [];
  for (const id of sorted) {
    const last = pairs[pairs.length - 1];
    if (last !== undefined && id === last[1] + 1) last[1] = id;
    else if (last === undefined || id > last[1]) pairs.push([id, id]);
  }
  return pairs;
}
