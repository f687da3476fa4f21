/**
 * Reading records back from a segment file in bounded pieces: at most `maxRecords` records and
 * one read buffer (64 KiB, or one record's size if larger) are in memory at a time.
 */
import type { DiskFs } from './fs';
import { HEADER_BYTES, announcedSize, parseRecord } from './record';

/** A stored record: its durable id and its payload bytes. */
export interface StoredRecord {
  readonly id: number;
  readonly payload: Buffer;
}

const CHUNK_BYTES = 64 * 1024;

/** What one read found, and where the next read starts. */
export interface Span {
  records: StoredRecord[];
  next: number;
}

/**
 * Reads up to `maxRecords` records of `file` from byte `from` (a record boundary) up to `end`
 * (bytes known complete). A record that fails its checksum here was damaged after the log was
 * opened (recovery checked every record): `onBad` decides what to do (it throws).
 */
export async function readSpan(
  disk: DiskFs,
  file: string,
  from: number,
  end: number,
  maxRecords: number,
  onBad: (offset: number) => never,
): Promise<Span> {
  const records: StoredRecord[] = [];
  const fd = await disk.open(file, 'r');
  try {
    let position = from;
    let buffer = Buffer.alloc(Math.min(CHUNK_BYTES, end - from));
    while (records.length < maxRecords && position < end) {
      const length = await fill(disk, fd, buffer, position, end);
      let offset = 0;
      while (records.length < maxRecords) {
        const record = parseRecord(buffer, offset, length);
        if (record === 'bad') onBad(position + offset);
        if (record === 'short') break;
        records.push({ id: record.id, payload: Buffer.from(record.payload) });
        offset += record.size;
      }
      if (offset === 0 && records.length < maxRecords) {
        // Nothing parsed: either one record larger than the buffer (grow it to fit exactly that
        // record), or a record running past the bytes known complete (damage).
        if (length < buffer.length || length < HEADER_BYTES) onBad(position);
        const size = announcedSize(buffer, 0);
        if (position + size > end) onBad(position);
        buffer = Buffer.alloc(size);
      }
      position += offset;
    }
    return { records, next: position };
  } finally {
    await disk.close(fd);
  }
}

/** Fills `buffer` from `position`, stopping at `end`; resolves the bytes read. */
async function fill(disk: DiskFs, fd: number, buffer: Buffer, position: number, end: number): Promise<number> {
  const wanted = Math.min(buffer.length, end - position);
  let filled = 0;
  while (filled < wanted) {
    const count = await disk.read(fd, buffer, filled, wanted - filled, position + filled);
    if (count === 0) break;
    filled += count;
  }
  return filled;
}
