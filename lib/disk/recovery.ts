/**
 * Recovery of the segment files at open: every record's checksum is verified, a torn tail is
 * truncated and a corrupt stretch followed by valid records is quarantined. Runs once, before
 * the log accepts anything; owns no state after it returns.
 *
 * Each segment is first read in pieces of `SCAN_CHUNK_BYTES`, the next piece read while this one
 * is checked: memory stays at two pieces however large the segment, and the event loop is never
 * held for more than one piece's checksums. Only a segment found damaged is then read whole and
 * repaired by the rules below (in id order; the ids of one log only ever grow), the event loop
 * turning every `WALK_SLICE_BYTES` of the walk:
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
import { type DiskFs, readFully, syncDirectory, writeAll } from './fs';
import { BAD, HEADER_BYTES, SHORT, announcedSize, checkRecord, parseRecord, recordId } from './record';
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
      // Damaged (or torn at the tail): read whole, counted again, repaired.
      tally = { expected, held: 0, heldBytes: 0, gaps: [] };
      const bytes = await disk.readFile(file);
      const scan = await scanSegment(
        bytes,
        () => tally.expected,
        (id, recordSize) => count(tally, acked, id, recordSize),
      );
      const isLast = index === bases.length - 1;
      if (scan.tail !== undefined && !isLast) scan.corrupt.push([scan.tail, bytes.length]);
      result.corrupt += scan.corrupt.length;
      size = await repair(disk, directory, file, bytes, scan);
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
 * not (or a file that ends inside a record): then the whole-segment rules decide.
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
      if (piece.length === 0) return undefined; // shorter than its size: the whole-segment rules decide
      let bytes = carry.length === 0 ? piece : Buffer.concat([carry, piece]);
      if (bytes.length >= HEADER_BYTES) {
        // A record longer than what is read: the rest of it now, in one read.
        const missing = announcedSize(bytes, 0) - bytes.length;
        if (missing > 0) {
          if (readTo + missing > end) return undefined;
          const rest = await readNext(missing);
          if (rest.length < missing) return undefined;
          bytes = Buffer.concat([bytes, rest]);
        }
      }
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
 * Bytes of a damaged segment walked between two turns of the event loop: about 30 ms of searching
 * for the next valid record (7 ns per byte on the benchmark machine), much less of checking records.
 */
const WALK_SLICE_BYTES = 4 * 1024 * 1024;

/** Lets the event loop turn (timers, I/O, other work) in the middle of a long walk. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Walks the records of one segment, calling `onRecord` for each valid one in order. */
export async function scanSegment(
  bytes: Buffer,
  expected: () => number,
  onRecord: (id: number, size: number) => void,
): Promise<Scan> {
  const scan: Scan = { kept: [], corrupt: [], tail: undefined };
  let offset = 0;
  let keptFrom = 0;
  let turnAt = WALK_SLICE_BYTES;
  while (offset < bytes.length) {
    if (offset >= turnAt) {
      await nextTurn();
      turnAt = offset + WALK_SLICE_BYTES;
    }
    const record = parseRecord(bytes, offset);
    if (typeof record === 'object' && record.id >= expected()) {
      onRecord(record.id, record.size);
      offset += record.size;
      continue;
    }
    if (offset > keptFrom) scan.kept.push([keptFrom, offset]);
    const next = await findNextRecord(bytes, offset, expected());
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
async function findNextRecord(bytes: Buffer, badAt: number, expected: number): Promise<number | undefined> {
  const last = bytes.length - HEADER_BYTES;
  for (let from = badAt + 1; from <= last; from += WALK_SLICE_BYTES) {
    if (from > badAt + 1) await nextTurn();
    const to = Math.min(last, from + WALK_SLICE_BYTES - 1);
    for (let offset = from; offset <= to; offset++) {
      const id = recordId(bytes, offset);
      if (id < expected || id > expected + Math.ceil((offset - badAt) / HEADER_BYTES)) continue;
      if (checkRecord(bytes, offset) > 0) return offset;
    }
  }
  return undefined;
}

/** Applies a scan: quarantine and rewrite, or truncate a torn tail. Resolves the segment's size. */
async function repair(disk: DiskFs, directory: string, file: string, bytes: Buffer, scan: Scan): Promise<number> {
  const keptBytes = scan.kept.reduce((sum, [start, end]) => sum + end - start, 0);
  if (scan.corrupt.length > 0) {
    await quarantine(disk, directory, file, bytes, scan.corrupt);
    await rewrite(disk, directory, file, Buffer.concat(scan.kept.map(([start, end]) => bytes.subarray(start, end))));
  } else if (scan.tail !== undefined) {
    const fd = await disk.open(file, 'r+');
    try {
      await disk.ftruncate(fd, keptBytes);
      await disk.fsync(fd);
    } finally {
      await disk.close(fd);
    }
  }
  return keptBytes;
}

/** Appends the corrupt stretches to the quarantine file, each after a line saying where it was. */
async function quarantine(
  disk: DiskFs,
  directory: string,
  file: string,
  bytes: Buffer,
  stretches: Array<[number, number]>,
): Promise<void> {
  const parts = stretches.flatMap(([start, end]) => [
    Buffer.from(`sluice quarantine: ${file} offset ${start} length ${end - start}\n`),
    bytes.subarray(start, end),
    Buffer.from('\n'),
  ]);
  const fd = await disk.open(join(directory, QUARANTINE_FILE), 'a');
  try {
    // Opened for appending: the position is ignored, the bytes go at the end.
    await writeAll(disk, fd, Buffer.concat(parts), 0);
    await disk.fsync(fd);
  } finally {
    await disk.close(fd);
  }
}

/** Replaces a file's content atomically: a temporary file, synced, renamed over it. */
export async function rewrite(disk: DiskFs, directory: string, file: string, content: Buffer): Promise<void> {
  const temporary = `${file}.tmp`;
  const fd = await disk.open(temporary, 'w');
  try {
    await writeAll(disk, fd, content, 0);
    await disk.fsync(fd);
  } finally {
    await disk.close(fd);
  }
  await disk.rename(temporary, file);
  await syncDirectory(disk, directory);
}
