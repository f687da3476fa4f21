import { HEADER_BYTES, checkRecord, parseRecord, recordId } from '../../../lib/disk/record';

/**
 * The recovery rules of lib/disk/recovery.ts, applied to a whole segment in one buffer: the model
 * that the real recovery, which walks a segment through a window of pieces, must agree with.
 * Written for clarity, not speed.
 */
export interface ReferenceScan {
  /** The valid records kept, in order. */
  records: Array<{ id: number; size: number }>;
  kept: Array<[number, number]>;
  corrupt: Array<[number, number]>;
  /** Where a torn tail starts (the last segment only; elsewhere the rest is corrupt). */
  tail: number | undefined;
  /** The id the next record must have at least, after this segment. */
  expected: number;
}

export function referenceScan(bytes: Buffer, expectedAtStart: number, isLast: boolean): ReferenceScan {
  const scan: ReferenceScan = { records: [], kept: [], corrupt: [], tail: undefined, expected: expectedAtStart };
  let offset = 0;
  let keptFrom = 0;
  while (offset < bytes.length) {
    const record = parseRecord(bytes, offset);
    if (typeof record === 'object' && record.id >= scan.expected) {
      scan.records.push({ id: record.id, size: record.size });
      scan.expected = record.id + 1;
      offset += record.size;
      continue;
    }
    if (offset > keptFrom) scan.kept.push([keptFrom, offset]);
    const next = nextIntact(bytes, offset, scan.expected);
    if (next === undefined) {
      if (isLast) scan.tail = offset;
      else scan.corrupt.push([offset, bytes.length]);
      return scan;
    }
    scan.corrupt.push([offset, next]);
    offset = keptFrom = next;
  }
  if (offset > keptFrom) scan.kept.push([keptFrom, offset]);
  return scan;
}

/** The first offset after `badAt` holding an intact record whose id could follow (see findNextRecord). */
function nextIntact(bytes: Buffer, badAt: number, expected: number): number | undefined {
  for (let offset = badAt + 1; offset <= bytes.length - HEADER_BYTES; offset++) {
    const id = recordId(bytes, offset);
    if (id < expected || id > expected + Math.ceil((offset - badAt) / HEADER_BYTES)) continue;
    if (checkRecord(bytes, offset) > 0) return offset;
  }
  return undefined;
}

/** The segment's bytes after the repair the scan calls for. */
export function repairedBytes(bytes: Buffer, scan: ReferenceScan): Buffer {
  if (scan.corrupt.length > 0) return Buffer.concat(scan.kept.map(([start, end]) => bytes.subarray(start, end)));
  if (scan.tail !== undefined) return bytes.subarray(0, scan.tail);
  return bytes;
}

/** What the repair appends to the quarantine file for this segment (`file` as recovery names it). */
export function quarantined(bytes: Buffer, scan: ReferenceScan, file: string): Buffer {
  return Buffer.concat(
    scan.corrupt.flatMap(([start, end]) => [
      Buffer.from(`sluice quarantine: ${file} offset ${start} length ${end - start}\n`),
      bytes.subarray(start, end),
      Buffer.from('\n'),
    ]),
  );
}
