/**
 * Recovery of the segment files at open: every record's checksum is verified, a torn tail is
 * truncated and a corrupt stretch followed by valid records is quarantined. Runs once, before
 * the log accepts anything; owns no state after it returns.
 *
 * Each segment is first read in pieces of `SCAN_CHUNK_BYTES`, the next piece read while this one
 * is checked: memory stays at two pieces however large the segment, and the event loop is never
 * held for more than one piece's checksums. Only a segment found damaged (or holding a record longer
 * than a piece, which this check leaves alone) is then walked again through a window of pieces (see
 * SegmentWindow) and repaired by the rules below, its bytes copied a piece at a time (in id order; the
 * ids of one log only ever grow):
 * - a record is valid when its checksum matches and its id is at least the next expected id;
 * - after an invalid spot, the bytes are searched for the next valid record; if one is found,
 *   the stretch between is corrupt: it is appended to the quarantine file, counted, and the
 *   segment is rewritten without it (via a temporary file and a rename);
 * - if none is found and this is the last segment, the rest is a torn tail (a write cut short
 *   by a crash): it is truncated. In an older segment it is corrupt, since later ones follow.
 * - ids missing between valid records (lost with a corrupt stretch) are marked acknowledged,
 *   so that they neither block a segment's deletion nor count as held.
 */
import { join } from 'node:path';
import { crc32c } from './crc';
import { type DiskFs, readFully, syncDirectory, writeAll } from './fs';
import { BAD, HEADER_BYTES, SHORT, announcedSize, checkRecord, recordId } from './record';
import type { IdRanges } from './ranges';

/** Bytes read at a time while checking a segment. */
export const SCAN_CHUNK_BYTES = 1024 * 1024;

/** The quarantine file's name inside the log directory. */
export const QUARANTINE_FILE = 'quarantine';

/** One segment file: records with ids from `base` on. */
export interface Segment {
  readonly base: number;
  readonly file: string;
  /** Bytes written (and kept) so far. */
  size: number;
}

/** What recovery found. */
export interface Recovered {
  /** The segments, ascending; the last one is where appends go. */
  segments: Segment[];
  /** Records found that are not acknowledged: they are replayed. */
  held: number;
  /** Their bytes, headers included. */
  heldBytes: number;
  /** Corrupt stretches moved to the quarantine file. */
  corrupt: number;
  /** The id the next appended record gets. */
  nextId: number;
}

/** A scan of one segment's bytes. */
interface Scan {
  /** Byte ranges [start, end) of valid records, in order. */
  kept: Array<[number, number]>;
  /** Corrupt byte ranges, in order. */
  corrupt: Array<[number, number]>;
  /** Where a torn tail starts, if there is one. */
  tail: number | undefined;
}

/** Segment file name for a base id: zero-padded so that names sort like ids. */
export function segmentName(base: number): string {
  return `${String(base).padStart(16, '0')}.seg`;
}

/** The base id of a segment file name, or `undefined` for another file. */
export function segmentBase(name: string): number | undefined {
  return /^\d{16}\.seg$/.test(name) ? Number(name.slice(0, 16)) : undefined;
}

/** The records of one segment, counted before they are added to the result (a damaged one is counted again). */
interface Tally {
  /** The id the next record must have at least. */
  expected: number;
  held: number;
  heldBytes: number;
  /** Ids skipped between records (lost with a corrupt stretch), to be marked acknowledged. */
  gaps: Array<[number, number]>;
}

/**
 * Verifies the segments with these base ids (ascending), repairs them as described above, and
 * adds the ids lost to corruption to `acked`.
 */
export async function recoverSegments(
  disk: DiskFs,
  directory: string,
  bases: number[],
  acked: IdRanges,
  chunkBytes = SCAN_CHUNK_BYTES,
): Promise<Recovered> {
  const result: Recovered = { segments: [], held: 0, heldBytes: 0, corrupt: 0, nextId: 1 };
  let expected = bases[0] ?? 1;
  for (const [index, base] of bases.entries()) {
    if (base > expected) acked.addRange(expected, base - 1);
    expected = Math.max(expected, base);
    const file = join(directory, segmentName(base));
    let tally: Tally = { expected, held: 0, heldBytes: 0, gaps: [] };
    let size = await scanInPieces(disk, file, tally, acked, chunkBytes);
    if (size === undefined) {
      // Damaged (or torn at the tail): walked again from the start, counted again, repaired.
      tally = { expected, held: 0, heldBytes: 0, gaps: [] };
      const repaired = await repairSegment(disk, directory, file, index === bases.length - 1, chunkBytes, tally, acked);
      result.corrupt += repaired.corrupt;
      size = repaired.size;
    }
    for (const [from, to] of tally.gaps) acked.addRange(from, to);
    result.held += tally.held;
    result.heldBytes += tally.heldBytes;
    expected = tally.expected;
    result.segments.push({ base, file, size });
  }
  result.nextId = Math.max(expected, acked.max + 1);
  return result;
}

/** A valid record, in order: counts it as held unless it is acknowledged. */
function count(tally: Tally, acked: IdRanges, id: number, size: number): void {
  if (id > tally.expected) tally.gaps.push([tally.expected, id - 1]);
  if (!acked.has(id)) {
    tally.held++;
    tally.heldBytes += size;
  }
  tally.expected = id + 1;
}

/**
 * Checks a segment piece by piece, reading the next piece while this one is checked. Resolves its
 * size if every record is intact and in order to the end, `undefined` at the first record that is
 * not, or is longer than a piece, or that the file ends inside: then the walk that repairs decides.
 */
async function scanInPieces(
  disk: DiskFs,
  file: string,
  tally: Tally,
  acked: IdRanges,
  chunkBytes: number,
): Promise<number | undefined> {
  const fd = await disk.open(file, 'r');
  /** The read in progress, of the bytes after those checked. */
  let next: Promise<Buffer> | undefined;
  try {
    const end = await disk.size(fd);
    /** Where the bytes asked for so far end. */
    let readTo = 0;
    const readNext = (length: number): Promise<Buffer> => {
      const from = readTo;
      readTo += length;
      const buffer = Buffer.allocUnsafe(length);
      return readFully(disk, fd, buffer, length, from).then((count) => buffer.subarray(0, count));
    };
    if (end > 0) next = readNext(Math.min(chunkBytes, end));
    /** The start of a record whose end was not read yet. */
    let carry: Buffer = Buffer.alloc(0);
    while (next !== undefined) {
      const piece = await next;
      next = undefined;
      if (piece.length === 0) return undefined; // shorter than its size: the walk that repairs decides
      const bytes = carry.length === 0 ? piece : Buffer.concat([carry, piece]);
      // A record longer than a piece (or a damaged length field that says so) is left to the walk, which
      // checks it a piece at a time: reading all that the length claims could take the whole segment.
      if (bytes.length >= HEADER_BYTES && announcedSize(bytes, 0) > bytes.length) return undefined;
      if (readTo < end) next = readNext(Math.min(chunkBytes, end - readTo));
      let offset = 0;
      for (let size = checkRecord(bytes, offset); size !== SHORT; size = checkRecord(bytes, offset)) {
        const id = recordId(bytes, offset);
        if (size === BAD || id < tally.expected) return undefined;
        count(tally, acked, id, size);
        offset += size;
      }
      carry = bytes.subarray(offset);
    }
    // Bytes left over: the file ends inside a record (a torn tail).
    return carry.length === 0 ? end : undefined;
  } finally {
    // A damaged record found while the next piece is being read: that read ends before the file is closed.
    await next?.catch(() => undefined);
    await disk.close(fd);
  }
}

/**
 * One open segment file read through a window: the bytes of one piece (or of one record that fits in
 * a piece) at a time, in one buffer, so that walking a damaged segment holds one piece however large
 * the segment. Every read is an I/O callback, so the event loop turns between pieces.
 */
class SegmentWindow {
  readonly #disk: DiskFs;
  readonly #fd: number;
  readonly pieceBytes: number;
  /** The most one view may span: a piece, and never less than two headers. */
  readonly span: number;
  /** The file's size; lowered if a read finds it shorter. */
  size: number;
  /** The window's bytes (the start of #buffer), and the offset of the first of them in the file. */
  #bytes: Buffer = Buffer.alloc(0);
  #from = 0;
  #buffer: Buffer | undefined;

  constructor(disk: DiskFs, fd: number, size: number, pieceBytes: number) {
    this.#disk = disk;
    this.#fd = fd;
    this.size = size;
    this.pieceBytes = pieceBytes;
    this.span = Math.max(pieceBytes, 2 * HEADER_BYTES);
  }

  /**
   * The bytes [start, end) of the file, `end - start` at most {@link span}: a view of the window, which
   * is moved to start at `start` (and to hold a span from there) when it does not hold them. Shorter
   * where the file ends. Valid until the next call, which may move the window.
   */
  async view(start: number, end: number): Promise<Buffer> {
    const held = this.#from + this.#bytes.length;
    if (start < this.#from || Math.min(end, this.size) > held) {
      const buffer = (this.#buffer ??= Buffer.allocUnsafe(this.span));
      const length = Math.max(0, Math.min(this.size, start + this.span) - start);
      // What the window holds from `start` on moves to the front (copy() allows the overlap), and is not read again.
      const kept = start >= this.#from && start < held ? this.#bytes.copy(buffer, 0, start - this.#from) : 0;
      const count =
        kept >= length ? 0 : await readFully(this.#disk, this.#fd, buffer.subarray(kept), length - kept, start + kept);
      if (kept + count < length) this.size = start + kept + count; // shorter than it said
      this.#bytes = buffer.subarray(0, Math.min(length, kept + count));
      this.#from = start;
    }
    return this.#bytes.subarray(start - this.#from, Math.max(start, Math.min(end, this.size)) - this.#from);
  }

  /**
   * The intact record at `offset`: its id and size, or `undefined` (a bad checksum, or the file ends
   * before the record does). A record longer than a piece is checked piece by piece, never held.
   */
  async recordAt(offset: number): Promise<{ id: number; size: number } | undefined> {
    if (this.size - offset < HEADER_BYTES) return undefined;
    const header = await this.view(offset, offset + HEADER_BYTES);
    if (header.length < HEADER_BYTES) return undefined; // the file is shorter than it said
    const id = recordId(header, 0);
    const size = announcedSize(header, 0);
    return (await this.#isIntact(offset, size, header.readUInt32LE(0))) ? { id, size } : undefined;
  }

  /** Whether the `size` bytes at `offset` are within the file and their checksum (after its 4 bytes) is `stored`. */
  async #isIntact(offset: number, size: number, stored: number): Promise<boolean> {
    if (offset + size > this.size) return false;
    if (size <= this.pieceBytes) {
      const bytes = await this.view(offset, offset + size);
      return bytes.length === size && checkRecord(bytes, 0) === size;
    }
    let crc = 0;
    for (let at = offset + 4; at < offset + size; at += this.pieceBytes) {
      const piece = await this.view(at, Math.min(offset + size, at + this.pieceBytes));
      if (piece.length === 0) return false;
      crc = crc32c(piece, 0, piece.length, crc);
    }
    return crc === stored;
  }
}

/** Walks the records of one segment, calling `onRecord` for each valid one in order. */
async function scanSegment(
  window: SegmentWindow,
  expected: () => number,
  onRecord: (id: number, size: number) => void,
): Promise<Scan> {
  const scan: Scan = { kept: [], corrupt: [], tail: undefined };
  let offset = 0;
  let keptFrom = 0;
  while (offset < window.size) {
    const record = await window.recordAt(offset);
    if (record !== undefined && record.id >= expected()) {
      onRecord(record.id, record.size);
      offset += record.size;
      continue;
    }
    if (offset > keptFrom) scan.kept.push([keptFrom, offset]);
    const next = await findNextRecord(window, offset, expected());
    if (next === undefined) {
      scan.tail = offset;
      return scan;
    }
    scan.corrupt.push([offset, next]);
    offset = keptFrom = next;
  }
  if (offset > keptFrom) scan.kept.push([keptFrom, offset]);
  return scan;
}

/**
 * The offset of the first valid record after the invalid spot at `badAt`. A candidate's id must
 * be one that could follow: at least `expected`, and not more ahead of it than the records the
 * skipped bytes could have held. That filter keeps the search linear (a random header almost
 * never passes it) before the checksum is computed.
 */
async function findNextRecord(window: SegmentWindow, badAt: number, expected: number): Promise<number | undefined> {
  // A span at a time: the headers that lie wholly within it, then on from the first that does not.
  for (let from = badAt + 1; from <= window.size - HEADER_BYTES;) {
    const bytes = await window.view(from, from + window.span);
    const last = from + bytes.length - HEADER_BYTES;
    let offset = from;
    for (; offset <= last; offset++) {
      const id = recordId(bytes, offset - from);
      if (id >= expected && id <= expected + Math.ceil((offset - badAt) / HEADER_BYTES)) break;
    }
    if (offset > last) {
      from = last + 1;
      continue;
    }
    // A candidate: checked as any record is (its header is in the window, so no read for it).
    if ((await window.recordAt(offset)) !== undefined) return offset;
    from = offset + 1;
  }
  return undefined;
}

/**
 * A segment that the check in pieces found damaged: walked again from its start through a window of
 * `pieceBytes` (counting its records into `tally`), then repaired. Resolves its size after the repair
 * and the number of corrupt stretches quarantined.
 */
async function repairSegment(
  disk: DiskFs,
  directory: string,
  file: string,
  isLast: boolean,
  pieceBytes: number,
  tally: Tally,
  acked: IdRanges,
): Promise<{ size: number; corrupt: number }> {
  const fd = await disk.open(file, 'r');
  let scan: Scan;
  let size: number;
  try {
    const window = new SegmentWindow(disk, fd, await disk.size(fd), pieceBytes);
    scan = await scanSegment(
      window,
      () => tally.expected,
      (id, recordSize) => count(tally, acked, id, recordSize),
    );
    if (scan.tail !== undefined && !isLast) scan.corrupt.push([scan.tail, window.size]);
    size = await repair(disk, directory, file, fd, Math.min(pieceBytes, window.size), scan);
  } finally {
    await disk.close(fd);
  }
  // Renamed over the segment once it is closed (Windows refuses to replace an open file).
  if (scan.corrupt.length > 0) await replaceWithReplacement(disk, directory, file);
  return { size, corrupt: scan.corrupt.length };
}

/**
 * Applies a scan: quarantine and write the replacement, or truncate a torn tail. Resolves the
 * segment's size. The bytes are copied `pieceBytes` at a time, from the segment (open as `fd`) to
 * the quarantine file and to the replacement.
 */
async function repair(
  disk: DiskFs,
  directory: string,
  file: string,
  fd: number,
  pieceBytes: number,
  scan: Scan,
): Promise<number> {
  const keptBytes = scan.kept.reduce((sum, [start, end]) => sum + end - start, 0);
  if (scan.corrupt.length > 0) {
    const buffer = Buffer.allocUnsafe(Math.max(1, pieceBytes));
    const copy = (to: number, [start, end]: [number, number], position: number): Promise<void> =>
      copyRange(disk, fd, start, end, to, position, buffer);
    await quarantine(disk, directory, file, scan.corrupt, copy);
    await writeReplacement(disk, file, async (to) => {
      let position = 0;
      for (const range of scan.kept) {
        await copy(to, range, position);
        position += range[1] - range[0];
      }
    });
  } else if (scan.tail !== undefined) {
    const writable = await disk.open(file, 'r+');
    try {
      await disk.ftruncate(writable, keptBytes);
      await disk.fsync(writable);
    } finally {
      await disk.close(writable);
    }
  }
  return keptBytes;
}

/** Copies the bytes [start, end) of the open file `from` to `position` of `to`, a buffer's length at a time. */
async function copyRange(
  disk: DiskFs,
  from: number,
  start: number,
  end: number,
  to: number,
  position: number,
  buffer: Buffer,
): Promise<void> {
  for (let at = start; at < end; at += buffer.length) {
    const length = Math.min(buffer.length, end - at);
    if ((await readFully(disk, from, buffer, length, at)) < length) {
      throw Object.assign(new Error(`a segment ended at ${at} while it was repaired`), { code: 'EIO' });
    }
    await writeAll(disk, to, buffer.subarray(0, length), position + at - start);
  }
}

/** Appends the corrupt stretches to the quarantine file, each after a line saying where it was. */
async function quarantine(
  disk: DiskFs,
  directory: string,
  file: string,
  stretches: Array<[number, number]>,
  copy: (to: number, range: [number, number], position: number) => Promise<void>,
): Promise<void> {
  const fd = await disk.open(join(directory, QUARANTINE_FILE), 'a');
  try {
    // Opened for appending: positions are ignored, the bytes go at the end.
    for (const stretch of stretches) {
      const [start, end] = stretch;
      await writeAll(disk, fd, Buffer.from(`sluice quarantine: ${file} offset ${start} length ${end - start}\n`), 0);
      await copy(fd, stretch, 0);
      await writeAll(disk, fd, Buffer.from('\n'), 0);
    }
    await disk.fsync(fd);
  } finally {
    await disk.close(fd);
  }
}

/** Writes a file's replacement beside it (`<file>.tmp`), synced; {@link replaceWithReplacement} puts it in place. */
async function writeReplacement(disk: DiskFs, file: string, fill: (fd: number) => Promise<void>): Promise<void> {
  const fd = await disk.open(`${file}.tmp`, 'w');
  try {
    await fill(fd);
    await disk.fsync(fd);
  } finally {
    await disk.close(fd);
  }
}

/** Renames the replacement over the file, atomically, and makes the rename durable. */
async function replaceWithReplacement(disk: DiskFs, directory: string, file: string): Promise<void> {
  await disk.rename(`${file}.tmp`, file);
  await syncDirectory(disk, directory);
}

/** Replaces a file's content atomically: a temporary file, synced, renamed over it. */
export async function rewrite(disk: DiskFs, directory: string, file: string, content: Buffer): Promise<void> {
  await writeReplacement(disk, file, (fd) => writeAll(disk, fd, content, 0));
  await replaceWithReplacement(disk, directory, file);
}
