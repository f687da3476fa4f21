import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ACK_FILE } from '../../lib/disk/acks';
import { type DiskFs, nodeFs } from '../../lib/disk/fs';
import { DiskLog } from '../../lib/disk/log';
import type { StoredRecord } from '../../lib/disk/reader';
import { CountingFs, cleanup, osError, payload, tempDir } from './support/helpers';

afterEach(cleanup);

async function readAll(log: DiskLog): Promise<StoredRecord[]> {
  const all: StoredRecord[] = [];
  for await (const record of log.records(7)) all.push(record);
  return all;
}

const texts = (records: StoredRecord[]): string[] => records.map((record) => record.payload.toString());
const segmentFiles = (dir: string): string[] => readdirSync(dir).filter((name) => name.endsWith('.seg'));

describe('DiskLog: append, read, ack', () => {
  test('appends resolve ids 1, 2, 3 … in call order; read() gives the records back in order, at most N at a time', async () => {
    const log = await DiskLog.open({ path: tempDir(), fsync: 'never' });
    const ids = await Promise.all(Array.from({ length: 25 }, (_, n) => log.append(payload(n))));
    expect(ids).toEqual(Array.from({ length: 25 }, (_, n) => n + 1));
    const first = await log.read(10);
    expect(first.map((record) => record.id)).toEqual(ids.slice(0, 10));
    expect(texts(first)).toEqual(Array.from({ length: 10 }, (_, n) => payload(n).toString()));
    expect((await log.read(100)).map((record) => record.id)).toEqual(ids.slice(10));
    expect(await log.read(100)).toEqual([]);
    expect(log.stats()).toMatchObject({ recordsHeld: 25, replayed: 0, corruptRecords: 0, segments: 1 });
    await log.close();
  });

  test('reads cross the 64 KiB read buffer, and a record larger than it is read whole', async () => {
    const log = await DiskLog.open({ path: tempDir(), fsync: 'never' });
    const big = Buffer.alloc(200 * 1024, 'b');
    const payloads = [...Array.from({ length: 3000 }, (_, n) => payload(n, 100)), big, payload(3001, 100)];
    await Promise.all(payloads.map((bytes) => log.append(bytes)));
    const back = await readAll(log);
    expect(back).toHaveLength(payloads.length);
    back.forEach((record, i) => expect(record.payload.equals(payloads[i] as Buffer)).toBe(true));
    await log.close();
  });

  test('each byte is read from the file once, however few records each read() asks for', async () => {
    const dir = tempDir();
    const disk = new CountingFs();
    const log = await DiskLog.open({ path: dir, fsync: 'never', fs: disk });
    const big = Buffer.alloc(100 * 1024, 'b');
    const payloads = [...Array.from({ length: 2000 }, (_, n) => payload(n, 100)), big, payload(2001, 100)];
    await Promise.all(payloads.map((bytes) => log.append(bytes)));
    const before = disk.bytesRead;
    const back = await readAll(log); // 7 records per read(): a few hundred bytes of a 64 KiB read buffer
    expect(back.map((record) => record.id)).toEqual(payloads.map((_, i) => i + 1));
    back.forEach((record, i) => expect(record.payload.equals(payloads[i] as Buffer)).toBe(true));
    const logBytes = segmentFiles(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
    expect(disk.bytesRead - before).toBe(logBytes);
    await log.close();
  });

  test('a reader positioned in a segment that gets deleted goes on with the next one', async () => {
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 100 });
    for (let n = 1; n <= 6; n++) await log.append(payload(n));
    expect((await log.read(1)).map((record) => record.id)).toEqual([1]);
    await log.ack([1, 2, 3, 4]); // segments 1 and 2 go, including the one the reader is in
    expect((await log.read(10)).map((record) => record.id)).toEqual([5, 6]);
    await log.close();
  });

  test('records appended after the reader caught up are read next', async () => {
    const log = await DiskLog.open({ path: tempDir(), fsync: 'never' });
    await log.append(payload(1));
    expect(await log.read(10)).toHaveLength(1);
    await log.append(payload(2));
    expect(texts(await log.read(10))).toEqual([payload(2).toString()]);
    await log.close();
  });

  test('segments rotate at segmentBytes; a record larger than a segment gets one of its own', async () => {
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 100 });
    // 16-byte header + 20-byte payload = 36 bytes: two records per 100-byte segment.
    for (let n = 0; n < 6; n++) await log.append(payload(n));
    await log.append(Buffer.alloc(300, 7));
    await log.append(payload(7));
    expect(segmentFiles(dir)).toHaveLength(5);
    expect((await readAll(log)).map((record) => record.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await log.close();
  });

  test('acknowledged records are not read again after a reopen; fully acknowledged segments are deleted', async () => {
    const dir = tempDir();
    let log = await DiskLog.open({ path: dir, fsync: 'always', segmentBytes: 100 });
    for (let n = 0; n < 8; n++) await log.append(payload(n));
    expect(segmentFiles(dir)).toHaveLength(4);
    // Out of order and across concurrent "batches": 3 and 4 (segment 2) before 1 and 2 (segment 1).
    await Promise.all([log.ack([4, 3]), log.ack([7])]);
    expect(segmentFiles(dir)).toHaveLength(3);
    await log.ack([1, 2]);
    expect(segmentFiles(dir)).toHaveLength(2);
    expect(log.stats().recordsHeld).toBe(3);
    await log.close();

    log = await DiskLog.open({ path: dir, fsync: 'always', segmentBytes: 100 });
    expect(log.stats()).toMatchObject({ replayed: 3, recordsHeld: 3 });
    expect((await readAll(log)).map((record) => record.id)).toEqual([5, 6, 8]);
    // Ids stay unique across restarts: the next one follows the last.
    expect(await log.append(payload(9))).toBe(9);
    await log.close();
  });

  test('ids keep growing after every record was acknowledged and deleted', async () => {
    const dir = tempDir();
    let log = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 100 });
    for (let n = 0; n < 5; n++) await log.append(payload(n));
    await log.ack([1, 2, 3, 4, 5]);
    await log.close();
    log = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 100 });
    expect(log.stats()).toMatchObject({ replayed: 0, recordsHeld: 0 });
    expect(await log.append(payload(6))).toBe(6);
    await log.close();
  });

  test('replay after a reopen: the unacknowledged records first, in their original order, then new ones', async () => {
    const dir = tempDir();
    let log = await DiskLog.open({ path: dir, fsync: 'interval', segmentBytes: 120 });
    for (let n = 1; n <= 12; n++) await log.append(payload(n));
    await log.ack([2, 5, 6, 11]);
    await log.close();
    log = await DiskLog.open({ path: dir, fsync: 'interval', segmentBytes: 120 });
    await log.append(payload(13));
    expect(texts(await readAll(log))).toEqual([1, 3, 4, 7, 8, 9, 10, 12, 13].map((n) => payload(n).toString()));
    expect(log.stats()).toMatchObject({ replayed: 8, recordsHeld: 9 });
    await log.close();
  });

  test('ack(): twice is harmless; an id never handed out is refused and marks nothing', async () => {
    const log = await DiskLog.open({ path: tempDir(), fsync: 'never' });
    await log.append(payload(1));
    await log.append(payload(2));
    await log.ack([1]);
    await log.ack([1]);
    expect(log.stats().recordsHeld).toBe(1);
    await expect(log.ack([2, 3])).rejects.toMatchObject({
      code: 'ERR_DISK_UNKNOWN_ID',
      message: expect.stringContaining('id 3'),
    });
    await expect(log.ack([0.5])).rejects.toMatchObject({ code: 'ERR_DISK_UNKNOWN_ID' });
    expect(log.stats().recordsHeld).toBe(1);
    await log.close();
  });

  test('the ack file is compacted once past ackCompactBytes', async () => {
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 64, ackCompactBytes: 64 });
    for (let n = 1; n <= 20; n++) await log.append(payload(n));
    for (let n = 1; n <= 19; n += 2) await log.ack([n]);
    for (let n = 2; n <= 20; n += 2) await log.ack([n]);
    // 20 entries of 32 bytes uncompacted; compaction leaves one entry, and at most one more is appended.
    expect(statSync(join(dir, 'acks')).size).toBeLessThanOrEqual(96);
    await log.close();
    const reopened = await DiskLog.open({ path: dir, fsync: 'never', segmentBytes: 64 });
    expect(await readAll(reopened)).toEqual([]);
    expect(await reopened.append(payload(21))).toBe(21);
    await reopened.close();
  });

  test('an ack file that ends before the size it reported is read as far as it goes, not waited on for ever', async () => {
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir, fsync: 'never' });
    for (let n = 1; n <= 3; n++) await log.append(payload(n));
    await log.ack([1, 2]);
    await log.close();
    const ackFd = new Set<number>();
    // The ack file's size said 100 bytes more than a read finds (a file truncated meanwhile, or a size
    // that cannot be trusted): reads past its end return 0.
    const shrinking: DiskFs = {
      ...nodeFs,
      open: async (path, flags) => {
        const fd = await nodeFs.open(path, flags);
        if (basename(path) === ACK_FILE) ackFd.add(fd);
        return fd;
      },
      size: async (fd) => (await nodeFs.size(fd)) + (ackFd.has(fd) ? 100 : 0),
    };
    const reopened = await DiskLog.open({ path: dir, fsync: 'never', fs: shrinking });
    expect(texts(await readAll(reopened))).toEqual([payload(3).toString()]);
    await reopened.close();
  });

  test('after close(), every call rejects with ERR_DISK_CLOSED', async () => {
    const log = await DiskLog.open({ path: tempDir() });
    await log.close();
    await expect(log.append(payload(1))).rejects.toMatchObject({ code: 'ERR_DISK_CLOSED' });
    await expect(log.ack([1])).rejects.toMatchObject({ code: 'ERR_DISK_CLOSED' });
    await expect(log.read(1)).rejects.toMatchObject({ code: 'ERR_DISK_CLOSED' });
    await log.close();
  });

  test('close() waits for appends made before it', async () => {
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir, fsync: 'always' });
    const appends = [log.append(payload(1)), log.append(payload(2))];
    await log.close();
    await expect(Promise.all(appends)).resolves.toEqual([1, 2]);
    const reopened = await DiskLog.open({ path: dir });
    expect(reopened.stats().replayed).toBe(2);
    await reopened.close();
  });
});

describe('DiskLog: fsync modes', () => {
  test("'always': N appends in one turn are covered by one fsync, and none resolves before it", async () => {
    const fs = new CountingFs();
    const log = await DiskLog.open({ path: tempDir(), fsync: 'always', fs });
    const before = fs.count('fsync');
    const resolved: number[] = [];
    let fsyncsWhenFirstResolved = -1;
    const appends = Array.from({ length: 50 }, (_, n) =>
      log.append(payload(n)).then((id) => {
        if (resolved.length === 0) fsyncsWhenFirstResolved = fs.count('fsync') - before;
        resolved.push(id);
      }),
    );
    await Promise.all(appends);
    expect(fs.count('fsync') - before).toBe(1);
    expect(fsyncsWhenFirstResolved).toBe(1);
    expect(fs.count('write')).toBeLessThanOrEqual(3); // the lock file's write and one write for the 50 records
    await log.close();
  });

  test("'always': appends made while a group is being written form the next group (group commit)", async () => {
    const fs = new CountingFs();
    const log = await DiskLog.open({ path: tempDir(), fsync: 'always', fs });
    const before = fs.count('fsync');
    const first = log.append(payload(0));
    await Promise.resolve();
    const later = Array.from({ length: 20 }, (_, n) => log.append(payload(n + 1)));
    await Promise.all([first, ...later]);
    expect(fs.count('fsync') - before).toBeLessThanOrEqual(2);
    await log.close();
  });

  test("'never': no fsync for appends", async () => {
    const fs = new CountingFs();
    const log = await DiskLog.open({ path: tempDir(), fsync: 'never', fs });
    const before = fs.count('fsync');
    for (let n = 0; n < 10; n++) await log.append(payload(n));
    expect(fs.count('fsync')).toBe(before);
    await log.close();
    expect(fs.count('fsync')).toBe(before);
  });

  test("'interval': appends resolve without an fsync; one runs per fsyncIntervalMs when something was written", async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    try {
      const fs = new CountingFs();
      const log = await DiskLog.open({ path: tempDir(), fsync: 'interval', fsyncIntervalMs: 100, fs });
      const before = fs.count('fsync');
      for (let n = 0; n < 10; n++) await log.append(payload(n));
      expect(fs.count('fsync')).toBe(before);
      await jest.advanceTimersByTimeAsync(100);
      await log.sync(); // queued behind the timer's fsync: waits for it
      expect(fs.count('fsync')).toBe(before + 1);
      await jest.advanceTimersByTimeAsync(500); // nothing written since: no fsync
      await log.sync();
      expect(fs.count('fsync')).toBe(before + 1);
      await log.close();
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('DiskLog: a full disk', () => {
  test('an append failing with ENOSPC rejects with ERR_DISK_FULL; nothing of it is kept; the next append works', async () => {
    const dir = tempDir();
    const fs = new CountingFs();
    const log = await DiskLog.open({ path: dir, fsync: 'always', fs });
    await log.append(payload(1));
    const sizeBefore = log.stats().bytesOnDisk;
    // A short write (part of the record reaches the file), then ENOSPC.
    fs.shortWrite = 10;
    let writes = 0;
    fs.beforeWrite = (op) => {
      if (op === 'write' && ++writes === 2) throw osError('ENOSPC');
    };
    const refused = [log.append(payload(2)), log.append(payload(3))];
    for (const append of refused) {
      await expect(append).rejects.toMatchObject({
        code: 'ERR_DISK_FULL',
        message: expect.stringContaining('disk is full'),
      });
    }
    fs.beforeWrite = undefined;
    expect(log.stats()).toMatchObject({ bytesOnDisk: sizeBefore, recordsHeld: 1 });
    expect(await log.append(payload(4))).toBe(2);
    await log.close();
    const reopened = await DiskLog.open({ path: dir });
    expect(texts(await readAll(reopened))).toEqual([payload(1).toString(), payload(4).toString()]);
    await reopened.close();
  });

  test('an fsync failing in always mode rejects the group and keeps nothing of it', async () => {
    const fs = new CountingFs();
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir, fsync: 'always', fs });
    fs.beforeWrite = (op) => {
      if (op === 'fsync') throw osError('EIO');
    };
    await expect(log.append(payload(1))).rejects.toMatchObject({ code: 'ERR_DISK_IO' });
    fs.beforeWrite = undefined;
    expect(await log.append(payload(2))).toBe(1);
    await log.close();
  });
});
