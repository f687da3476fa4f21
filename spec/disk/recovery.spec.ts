import fc from 'fast-check';
import { copyFileSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type DiskFs, MAX_IO_BYTES, nodeFs, readFully, readWholeFile, writeAll } from '../../lib/disk/fs';
import { DiskLog } from '../../lib/disk/log';
import { IdRanges } from '../../lib/disk/ranges';
import { HEADER_BYTES, encodeRecord, recordId } from '../../lib/disk/record';
import { type Recovered, SCAN_CHUNK_BYTES, recoverSegments, segmentBase, segmentName } from '../../lib/disk/recovery';
import type { StoredRecord } from '../../lib/disk/reader';
import { cleanup, payload, tempDir } from './support/helpers';
import { quarantined, referenceScan, repairedBytes } from './support/reference-recovery';

afterEach(cleanup);

const RECORD = HEADER_BYTES + 20;

function flip(bytes: Buffer, at: number): void {
  bytes[at] = (bytes[at] as number) ^ 1;
}

async function readAll(log: DiskLog): Promise<StoredRecord[]> {
  const all: StoredRecord[] = [];
  for await (const record of log.records()) all.push(record);
  return all;
}

/** A closed log of `count` 36-byte records in one segment; resolves the directory and the segment file. */
async function logOf(count: number): Promise<{ dir: string; segment: string }> {
  const dir = tempDir();
  const log = await DiskLog.open({ path: dir, fsync: 'never' });
  for (let n = 1; n <= count; n++) await log.append(payload(n));
  await log.close();
  const name = readdirSync(dir).find((file) => file.endsWith('.seg')) as string;
  return { dir, segment: join(dir, name) };
}

/** Copies a closed log's directory so that each damage starts from the same bytes. */
function copyOf(dir: string): { dir: string; segment: string } {
  const copy = tempDir();
  for (const name of readdirSync(dir)) copyFileSync(join(dir, name), join(copy, name));
  const name = readdirSync(copy).find((file) => file.endsWith('.seg')) as string;
  return { dir: copy, segment: join(copy, name) };
}

async function reopen(dir: string): Promise<{ ids: number[]; stats: ReturnType<DiskLog['stats']>; next: number }> {
  const log = await DiskLog.open({ path: dir, fsync: 'never' });
  const ids = (await readAll(log)).map((record) => record.id);
  const stats = log.stats();
  const next = await log.append(payload(99));
  await log.close();
  return { ids, stats, next };
}

describe('recovery: a torn tail', () => {
  test('cut at every byte of the last record: the record is dropped, the file truncated, nothing counted corrupt', async () => {
    const original = await logOf(3);
    for (let cut = 2 * RECORD; cut < 3 * RECORD; cut++) {
      const { dir, segment } = copyOf(original.dir);
      truncateSync(segment, cut);
      const { ids, stats, next } = await reopen(dir);
      expect({ cut, ids, corrupt: stats.corruptRecords, next }).toEqual({ cut, ids: [1, 2], corrupt: 0, next: 3 });
      expect(statSync(segment).size).toBe(3 * RECORD); // truncated to 2 records, then record 3 appended anew
    }
  });

  test('a flipped byte anywhere in the last record (a bad checksum at the end): the record is dropped as a torn tail', async () => {
    const original = await logOf(3);
    for (let at = 2 * RECORD; at < 3 * RECORD; at++) {
      const { dir, segment } = copyOf(original.dir);
      const bytes = readFileSync(segment);
      bytes[at] = (bytes[at] as number) ^ 0xff;
      writeFileSync(segment, bytes);
      const { ids, stats } = await reopen(dir);
      expect({ at, ids, corrupt: stats.corruptRecords }).toEqual({ at, ids: [1, 2], corrupt: 0 });
    }
  });

  test('zeros after the last record (a file extended but not written, after a power loss) are truncated', async () => {
    const { dir, segment } = await logOf(2);
    writeFileSync(segment, Buffer.concat([readFileSync(segment), Buffer.alloc(100)]));
    expect((await reopen(dir)).ids).toEqual([1, 2]);
  });
});

describe('recovery: a corrupt record in the middle', () => {
  test('a flipped byte anywhere in a middle record: quarantined and counted, the records after it kept', async () => {
    const original = await logOf(4);
    for (let at = RECORD; at < 2 * RECORD; at++) {
      const { dir, segment } = copyOf(original.dir);
      const bytes = readFileSync(segment);
      bytes[at] = (bytes[at] as number) ^ 0x5a;
      writeFileSync(segment, bytes);
      const { ids, stats, next } = await reopen(dir);
      expect({ at, ids, corrupt: stats.corruptRecords, next }).toEqual({ at, ids: [1, 3, 4], corrupt: 1, next: 5 });
      const quarantined = readFileSync(join(dir, 'quarantine'));
      expect(quarantined.includes(bytes.subarray(RECORD, 2 * RECORD))).toBe(true);
      expect(quarantined.toString('latin1')).toContain(`offset ${RECORD} length ${RECORD}`);
    }
  });

  test('the quarantine file is only ever appended to at open: deleted, the next damage found starts a new one', async () => {
    const { dir, segment } = await logOf(5);
    const damage = (at: number): Buffer => {
      const bytes = readFileSync(segment);
      flip(bytes, at);
      writeFileSync(segment, bytes);
      return bytes;
    };
    const first = damage(RECORD + 5);
    expect(await reopen(dir)).toMatchObject({ ids: [1, 3, 4, 5], next: 6 });
    expect(readFileSync(join(dir, 'quarantine')).includes(first.subarray(RECORD, 2 * RECORD))).toBe(true);
    rmSync(join(dir, 'quarantine'));
    // The segment now holds records 1, 3, 4, 5 and 6; record 4 is its third.
    const second = damage(2 * RECORD + 5);
    const { ids, stats } = await reopen(dir);
    expect({ ids, corrupt: stats.corruptRecords }).toEqual({ ids: [1, 3, 5, 6], corrupt: 1 });
    const quarantine = readFileSync(join(dir, 'quarantine'));
    expect(quarantine.toString('latin1')).toMatch(
      new RegExp(`^sluice quarantine: \\S+ offset ${2 * RECORD} length ${RECORD}\\n`),
    );
    expect(quarantine.includes(second.subarray(2 * RECORD, 3 * RECORD))).toBe(true);
    expect(quarantine.includes(first.subarray(RECORD, 2 * RECORD))).toBe(false);
  });

  test('the quarantine is done once: a second reopen finds nothing more, and acking the rest deletes the segment', async () => {
    const { dir, segment } = await logOf(3);
    const bytes = readFileSync(segment);
    bytes[RECORD + HEADER_BYTES] = 0;
    writeFileSync(segment, bytes);
    expect((await reopen(dir)).stats).toMatchObject({ corruptRecords: 1, replayed: 2 });
    const log = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 64 });
    expect(log.stats()).toMatchObject({ corruptRecords: 0, replayed: 3 }); // 1, 3 and the 99 appended by reopen()
    expect((await readAll(log)).map((record) => record.id)).toEqual([1, 3, 4]);
    await log.append(payload(5)); // past 64 bytes: the old segment is no longer the active one
    await log.ack([1, 3, 4]);
    expect(readdirSync(dir).filter((name) => name.endsWith('.seg'))).toHaveLength(1);
    await log.close();
  });

  test('a middle record whose length field is corrupt (it claims more bytes than the file has) is quarantined', async () => {
    const { dir, segment } = await logOf(4);
    const bytes = readFileSync(segment);
    bytes.writeUInt32LE(0x7fffffff, RECORD + 4);
    writeFileSync(segment, bytes);
    const { ids, stats } = await reopen(dir);
    expect(ids).toEqual([1, 3, 4]);
    expect(stats.corruptRecords).toBe(1);
  });

  test('two corrupt stretches are two quarantined records', async () => {
    const { dir, segment } = await logOf(6);
    const bytes = readFileSync(segment);
    flip(bytes, RECORD + 20);
    flip(bytes, 3 * RECORD + 20);
    flip(bytes, 4 * RECORD + 20);
    writeFileSync(segment, bytes);
    const { ids, stats } = await reopen(dir);
    expect(ids).toEqual([1, 3, 6]);
    expect(stats.corruptRecords).toBe(2);
  });

  test('a bad stretch at the end of an older segment is corrupt, not a torn tail', async () => {
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 2 * RECORD });
    for (let n = 1; n <= 4; n++) await log.append(payload(n));
    await log.close();
    const first = join(
      dir,
      readdirSync(dir)
        .filter((name) => name.endsWith('.seg'))
        .sort()[0] as string,
    );
    const bytes = readFileSync(first);
    flip(bytes, RECORD + 30);
    writeFileSync(first, bytes);
    const { ids, stats } = await reopen(dir);
    expect(ids).toEqual([1, 3, 4]);
    expect(stats.corruptRecords).toBe(1);
  });
});

describe('recovery: segments checked in pieces', () => {
  /** The node file system, remembering the largest read and which files were read whole. */
  interface ReadWatch {
    fs: DiskFs;
    largestRead: number;
    readWhole: string[];
  }
  function readWatch(): ReadWatch {
    const watch: ReadWatch = {
      largestRead: 0,
      readWhole: [],
      fs: {
        ...nodeFs,
        read: (fd, buffer, offset, length, position) => {
          watch.largestRead = Math.max(watch.largestRead, length);
          return nodeFs.read(fd, buffer, offset, length, position);
        },
        readFile: (path) => {
          watch.readWhole.push(basename(path));
          return nodeFs.readFile(path);
        },
      },
    };
    return watch;
  }

  /** A closed log of records from 1 to 400 bytes (several segments), a few of them acknowledged. */
  async function mixedLog(): Promise<string> {
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 4096 });
    for (let n = 1; n <= 120; n++) await log.append(payload(n, 1 + ((n * 37) % 400)));
    await log.ack([2, 3, 50, 51, 52, 119]);
    await log.close();
    return dir;
  }

  async function recover(dir: string, chunkBytes?: number): Promise<{ result: Recovered; fs: ReadWatch }> {
    const fs = readWatch();
    const bases = readdirSync(dir)
      .map(segmentBase)
      .filter((base): base is number => base !== undefined)
      .sort((a, b) => a - b);
    const acked = new IdRanges();
    acked.addRange(2, 3);
    return { result: await recoverSegments(fs.fs, dir, bases, acked, chunkBytes), fs };
  }

  test('a clean log: the same result for pieces of any size, records across pieces and longer than one, never a file read whole', async () => {
    const dir = await mixedLog();
    const { result: whole } = await recover(dir);
    expect(whole.segments.length).toBeGreaterThan(3);
    expect({ held: whole.held, corrupt: whole.corrupt, nextId: whole.nextId }).toEqual({
      held: 118,
      corrupt: 0,
      nextId: 121,
    });
    for (const chunkBytes of [1, 15, 16, 17, 100, 255, 416, 1000, 4096]) {
      const { result, fs } = await recover(dir, chunkBytes);
      expect({ chunkBytes, result }).toEqual({ chunkBytes, result: whole });
      expect(fs.readWhole).toEqual([]);
      // A piece (a record longer than one is checked a piece at a time): never the largest record (416 bytes).
      expect(fs.largestRead).toBeLessThanOrEqual(Math.max(chunkBytes, 2 * HEADER_BYTES));
    }
  });

  test('damage found in pieces: the segment is walked and repaired in pieces too, exactly as in one piece', async () => {
    const original = await mixedLog();
    const last = readdirSync(original)
      .filter((name) => name.endsWith('.seg'))
      .sort()
      .at(-1) as string;
    const middle = readdirSync(original)
      .filter((name) => name.endsWith('.seg'))
      .sort()[1] as string;
    const damages: Array<[string, (file: string) => void]> = [
      ['a torn tail', (file) => truncateSync(file, statSync(file).size - 7)],
      ['a flipped byte in a middle record', (file) => flipAt(file, 300)],
      ['a length field claiming more than the file', (file) => flipAt(file, 4 + 3)],
      [
        // Read whole by the check in pieces before: the rest of a record is read in one go.
        'a length field claiming most of the segment',
        (file) => {
          const bytes = readFileSync(file);
          bytes.writeUInt32LE(bytes.length - 100, 4);
          writeFileSync(file, bytes);
        },
      ],
    ];
    for (const [what, damage] of damages) {
      for (const segment of [last, middle]) {
        const results = [];
        for (const chunkBytes of [undefined, 40]) {
          const { dir } = copyOf(original);
          damage(join(dir, segment));
          const { result, fs } = await recover(dir, chunkBytes);
          expect({ what, segment, readWhole: fs.readWhole }).toEqual({ what, segment, readWhole: [] });
          if (chunkBytes !== undefined) expect(fs.largestRead).toBeLessThanOrEqual(chunkBytes);
          results.push({ ...result, segments: result.segments.map(({ base, size }) => ({ base, size })) });
        }
        expect({ what, segment, inPieces: results[1] }).toEqual({ what, segment, inPieces: results[0] });
      }
    }
  });
});

function flipAt(file: string, at: number): void {
  const bytes = readFileSync(file);
  flip(bytes, at);
  writeFileSync(file, bytes);
}

describe('a damaged segment past 2 GiB', () => {
  test('the cap: Node refuses more than 2 GiB − 1 bytes in one fs.read or fs.write, so one call moves at most 1 GiB', () => {
    expect(MAX_IO_BYTES).toBeLessThanOrEqual(2 ** 31 - 1);
  });

  /**
   * A file that is never read for real, 10 MiB + 1 byte with calls capped at 1 MiB (standing in for
   * 2 GiB + 1 MiB with calls capped at 1 GiB): `read` and `write` only count, and refuse more than
   * the cap in one call, as Node refuses more than 2 GiB − 1.
   */
  const SIZE = 10 * 1024 ** 2 + 1;
  const CAP = 1024 ** 2;
  function fakeFile(): { fs: DiskFs; calls: Array<[number, number]> } {
    const calls: Array<[number, number]> = [];
    const refuse = (length: number): Promise<number> | undefined =>
      length > CAP ? Promise.reject(new RangeError(`The value of "length" is out of range: ${length}`)) : undefined;
    const fs: DiskFs = {
      ...nodeFs,
      open: () => Promise.resolve(7),
      close: () => Promise.resolve(),
      size: () => Promise.resolve(SIZE),
      read: (_fd, buffer, offset, length, position) => {
        const count = Math.max(0, Math.min(length, SIZE - position, buffer.length - offset));
        calls.push([position, count]);
        return refuse(length) ?? Promise.resolve(count);
      },
      write: (_fd, _bytes, _offset, length, position) => {
        calls.push([position, length]);
        return refuse(length) ?? Promise.resolve(length);
      },
    };
    return { fs, calls };
  }

  /** The calls cover [0, SIZE) once, in order, none over the cap. */
  function expectCovered(calls: Array<[number, number]>): void {
    let next = 0;
    for (const [position, count] of calls) {
      expect(position).toBe(next);
      expect(count).toBeLessThanOrEqual(CAP);
      next += count;
    }
    expect(next).toBe(SIZE);
  }

  test('readWholeFile (lock claims; fs.promises.readFile stops at 2 GiB) reads in capped reads, every byte once', async () => {
    const { fs, calls } = fakeFile();
    expect((await readWholeFile(fs, 'segment', CAP)).length).toBe(SIZE);
    expectCovered(calls);
  });

  test('readFully and writeAll move at most the cap per call', async () => {
    const reader = fakeFile();
    expect(await readFully(reader.fs, 7, Buffer.alloc(SIZE), SIZE, 0, CAP)).toBe(SIZE);
    expectCovered(reader.calls);
    const writer = fakeFile();
    await writeAll(writer.fs, 7, Buffer.alloc(SIZE), 0, CAP);
    expectCovered(writer.calls);
  });

  test('a file larger than one buffer can be fails with EFBIG, naming it', async () => {
    const { fs } = fakeFile();
    const huge: DiskFs = { ...fs, size: () => Promise.resolve(2 ** 32 + 1) };
    await expect(readWholeFile(huge, '/logs/0000000000000001.seg')).rejects.toMatchObject({
      code: 'EFBIG',
      message: expect.stringContaining('/logs/0000000000000001.seg holds 4294967297 bytes') as unknown,
    });
  });
});

describe('recordId', () => {
  test('reads the id encodeRecord wrote, any id up to 2^53 − 1 at any offset, as two readUInt32LE calls would', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.nat({ max: 40 }), fc.uint8Array({ maxLength: 20 }), (id, at, payload) => {
        const bytes = Buffer.concat([Buffer.alloc(at, 0xff), encodeRecord(id, payload)]);
        expect(recordId(bytes, at)).toBe(id);
        expect(recordId(bytes, at)).toBe(bytes.readUInt32LE(at + 12) * 2 ** 32 + bytes.readUInt32LE(at + 8));
      }),
      { numRuns: 1000 },
    );
  });

  test('on any 16 bytes (the garbage a damaged stretch holds), the same as two readUInt32LE calls', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 40 }), fc.nat(), (array, at) => {
        const bytes = Buffer.from(array);
        const offset = at % (bytes.length - 15);
        expect(recordId(bytes, offset)).toBe(
          bytes.readUInt32LE(offset + 12) * 2 ** 32 + bytes.readUInt32LE(offset + 8),
        );
      }),
      { numRuns: 1000 },
    );
  });
});

describe('a long damaged stretch', () => {
  test('is searched a piece at a time, the event loop turning between pieces, and the record after it is kept', async () => {
    // Record 1, 24 MiB of zeros (a stretch of a segment never written, or overwritten), record 2.
    const dir = tempDir();
    const stretch = 24 * 1024 * 1024;
    writeFileSync(
      join(dir, segmentName(1)),
      Buffer.concat([encodeRecord(1, payload(1)), Buffer.alloc(stretch), encodeRecord(2, payload(2))]),
    );
    const events: string[] = [];
    let largestRead = 0;
    const watched: DiskFs = {
      ...nodeFs,
      read: (fd, buffer, offset, length, position) => {
        largestRead = Math.max(largestRead, length);
        return nodeFs.read(fd, buffer, offset, length, position);
      },
      readFile: (path) => {
        events.push('read whole');
        return nodeFs.readFile(path);
      },
      open: (path, flags) => {
        events.push(`open ${flags} ${basename(path)}`);
        return nodeFs.open(path, flags);
      },
    };
    let spinning = true;
    const spin = (): void => {
      events.push('turn');
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    let result: Recovered;
    try {
      result = await recoverSegments(watched, dir, [1], new IdRanges());
    } finally {
      spinning = false;
    }
    expect({ held: result.held, corrupt: result.corrupt, nextId: result.nextId }).toEqual({
      held: 2,
      corrupt: 1,
      nextId: 3,
    });
    expect(events).not.toContain('read whole');
    expect(largestRead).toBeLessThanOrEqual(SCAN_CHUNK_BYTES);
    // The check in pieces stops at the first damaged spot; the walk that repairs opens the segment
    // again, and between that and the quarantine's open the loop turned once per piece read (24 MiB
    // in pieces of 1 MiB), not never.
    const segmentOpens = events.flatMap((event, index) => (event === `open r ${segmentName(1)}` ? [index] : []));
    expect(segmentOpens).toHaveLength(2);
    const walk = events.slice((segmentOpens[1] as number) + 1, events.indexOf('open a quarantine'));
    expect(walk.filter((event) => event === 'turn').length).toBeGreaterThanOrEqual(20);
  });
});

describe('a segment shorter than its size says', () => {
  test('a header cut by the real end is a torn tail, not an error', async () => {
    const dir = tempDir();
    const bytes = Buffer.concat([
      encodeRecord(1, Buffer.alloc(0)),
      encodeRecord(2, Buffer.alloc(0)),
      Buffer.alloc(4, 7),
    ]);
    writeFileSync(join(dir, segmentName(1)), bytes);
    const lying: DiskFs = { ...nodeFs, size: async (fd) => (await nodeFs.size(fd)) + 100 };
    const result = await recoverSegments(lying, dir, [1], new IdRanges(), 32);
    expect({ held: result.held, corrupt: result.corrupt, nextId: result.nextId }).toEqual({
      held: 2,
      corrupt: 0,
      nextId: 3,
    });
    expect(readFileSync(join(dir, segmentName(1)))).toEqual(bytes.subarray(0, 2 * HEADER_BYTES));
  });
});

describe('the search for the next intact record', () => {
  test('goes on from the byte after a candidate that fails its checksum, which may be where the record starts', async () => {
    // Record 2 right after one byte that, with record 2's first 15 bytes, reads as a header whose id
    // is 2 × 256: a candidate once the stretch before it is long enough to have held that many
    // records (16 bytes each), and one that fails its checksum.
    const stretch = 16 * (2 * 256) + 100;
    const dir = tempDir();
    writeFileSync(
      join(dir, segmentName(1)),
      Buffer.concat([encodeRecord(1, payload(1)), Buffer.alloc(stretch + 1), encodeRecord(2, payload(2))]),
    );
    const result = await recoverSegments(nodeFs, dir, [1], new IdRanges());
    expect({ held: result.held, corrupt: result.corrupt, nextId: result.nextId }).toEqual({
      held: 2,
      corrupt: 1,
      nextId: 3,
    });
    expect(readFileSync(join(dir, segmentName(1)))).toEqual(
      Buffer.concat([encodeRecord(1, payload(1)), encodeRecord(2, payload(2))]),
    );
  });
});

describe('recovery against a model of its rules', () => {
  /** A record to write: its payload length, and whether the ids skip one before it (lost earlier). */
  const recordSpec = fc.record({ length: fc.nat({ max: 120 }), skip: fc.boolean() });
  /** One damage to a segment's bytes; positions are taken modulo the bytes there are. */
  const damage = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ kind: fc.constant('zeros' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 80 }) }),
    fc.record({
      kind: fc.constant('overwrite' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 60 }),
    }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 60 }),
    }),
    fc.record({
      kind: fc.constant('copy' as const),
      from: fc.nat(),
      to: fc.nat(),
      length: fc.integer({ min: 16, max: 200 }),
    }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('append' as const), length: fc.integer({ min: 1, max: 100 }) }),
  );
  type Damage = typeof damage extends fc.Arbitrary<infer D> ? D : never;

  /** A set of ids as sorted, disjoint, non-adjacent inclusive ranges (IdRanges.toPairs()'s form). */
  function asRanges(ids: Set<number>): Array<[number, number]> {
    const ranges: Array<[number, number]> = [];
    for (const id of [...ids].sort((a, b) => a - b)) {
      const last = ranges[ranges.length - 1];
      if (last !== undefined && last[1] + 1 === id) last[1] = id;
      else ranges.push([id, id]);
    }
    return ranges;
  }

  function damaged(bytes: Buffer, damages: Damage[]): Buffer {
    let out = Buffer.from(bytes);
    for (const d of damages) {
      const at = 'at' in d ? d.at % (out.length + 1) : 0;
      if (d.kind === 'flip' && at < out.length) out[at] = (out[at] as number) ^ d.xor;
      if (d.kind === 'zeros') out.fill(0, at, Math.min(out.length, at + d.length));
      if (d.kind === 'overwrite') Buffer.from(d.bytes).copy(out, at);
      if (d.kind === 'insert') out = Buffer.concat([out.subarray(0, at), Buffer.from(d.bytes), out.subarray(at)]);
      if (d.kind === 'copy' && out.length > 0) {
        // A stretch of this segment found again elsewhere in it (an old record where it does not belong).
        const from = d.from % out.length;
        out.subarray(from, from + d.length).copy(out, d.to % out.length);
      }
      if (d.kind === 'truncate') out = out.subarray(0, at);
      if (d.kind === 'append') out = Buffer.concat([out, Buffer.alloc(d.length)]);
    }
    return out;
  }

  test('any damage to one of two segments, walked in pieces of any size: what is kept, rewritten and quarantined is what the model says', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(recordSpec, { minLength: 1, maxLength: 24 }),
        fc.nat(),
        fc.array(damage, { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        fc.oneof(
          { arbitrary: fc.integer({ min: 1, max: 64 }), weight: 3 },
          { arbitrary: fc.integer({ min: 65, max: 300 }), weight: 1 },
          { arbitrary: fc.constant(SCAN_CHUNK_BYTES), weight: 1 },
        ),
        fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 6 }),
        async (specs, split, damages, damageFirst, chunkBytes, ackedIds) => {
          // Records with ids 1, 2, … (skipping where asked), in one segment or two.
          let id = 0;
          const records = specs.map(({ length, skip }, n) => {
            id += skip ? 2 : 1;
            return { id, bytes: encodeRecord(id, payload(n, length)) };
          });
          const cut = split % records.length;
          const groups = (cut === 0 ? [records] : [records.slice(0, cut), records.slice(cut)]).map((group) => ({
            base: (group[0] as { id: number }).id,
            bytes: Buffer.concat(group.map((record) => record.bytes)),
          }));
          const target = damageFirst ? 0 : groups.length - 1;
          (groups[target] as { bytes: Buffer }).bytes = damaged((groups[target] as { bytes: Buffer }).bytes, damages);

          const dir = tempDir();
          for (const group of groups) writeFileSync(join(dir, segmentName(group.base)), group.bytes);
          const acked = new IdRanges();
          for (const ackedId of ackedIds) acked.add(ackedId);
          const ackedBefore = new Set(ackedIds);
          const result = await recoverSegments(
            nodeFs,
            dir,
            groups.map((group) => group.base),
            acked,
            chunkBytes,
          );

          // The model, segment by segment. The ids skipped before a segment's base or between two records
          // kept (lost with a damaged stretch) are acknowledged, so that nothing waits for them.
          let expected = (groups[0] as { base: number }).base;
          let held = 0;
          let heldBytes = 0;
          let corrupt = 0;
          const quarantine: Buffer[] = [];
          const ackedAfter = new Set(ackedIds);
          const skip = (from: number, to: number): void => {
            for (let skipped = from; skipped <= to; skipped++) ackedAfter.add(skipped);
          };
          for (const [index, group] of groups.entries()) {
            skip(expected, group.base - 1);
            expected = Math.max(expected, group.base);
            const file = join(dir, segmentName(group.base));
            const scan = referenceScan(group.bytes, expected, index === groups.length - 1);
            for (const record of scan.records) {
              skip(expected, record.id - 1);
              expected = record.id + 1;
              if (ackedBefore.has(record.id)) continue;
              held++;
              heldBytes += record.size;
            }
            expected = scan.expected;
            corrupt += scan.corrupt.length;
            quarantine.push(quarantined(group.bytes, scan, file));
            const repaired = repairedBytes(group.bytes, scan);
            expect(readFileSync(file)).toEqual(repaired);
            expect(result.segments[index]).toEqual({ base: group.base, file, size: repaired.length });
          }
          expect({ held: result.held, heldBytes: result.heldBytes, corrupt: result.corrupt }).toEqual({
            held,
            heldBytes,
            corrupt,
          });
          expect(result.nextId).toBe(Math.max(expected, ...ackedIds.map((ackedId) => ackedId + 1)));
          expect(acked.toPairs()).toEqual(asRanges(ackedAfter));
          const quarantineFile = join(dir, 'quarantine');
          const expectedQuarantine = Buffer.concat(quarantine);
          if (expectedQuarantine.length === 0) expect(readdirSync(dir)).not.toContain('quarantine');
          else expect(readFileSync(quarantineFile)).toEqual(expectedQuarantine);
          expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
          cleanup();
        },
      ),
      { numRuns: 300 },
    );
  });
});
