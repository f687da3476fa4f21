import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLog } from '../../lib/disk/log';
import { LOCK_FILE } from '../../lib/disk/lock';
import { assertBuilt, startChild } from './support/child';
import { nodeFs } from '../../lib/disk/fs';
import { CountingFs, cleanup, deadPid, leaveStaleLock, osError, tempDir } from './support/helpers';

afterEach(cleanup);
beforeAll(assertBuilt);

const holder = (dir: string): number => (JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid;

describe('the disk log lock', () => {
  test('a second opener in the same process gets ERR_DISK_LOCKED naming this pid and the path', async () => {
    const dir = tempDir();
    const first = await DiskLog.open({ path: dir });
    const second = DiskLog.open({ path: dir });
    await expect(second).rejects.toMatchObject({ code: 'ERR_DISK_LOCKED', path: dir });
    await expect(second).rejects.toThrow(new RegExp(`process ${process.pid}\\b.*`));
    await expect(second).rejects.toThrow(dir);
    await first.close();
    // close() released it: the next opener gets it.
    await (await DiskLog.open({ path: dir })).close();
  });

  test('an opener in another process gets ERR_DISK_LOCKED naming the holder, this process', async () => {
    const dir = tempDir();
    const log = await DiskLog.open({ path: dir });
    const child = startChild('open', dir);
    const line = await child.waitFor((message) => 'code' in message);
    expect(line.code).toBe('ERR_DISK_LOCKED');
    expect(line.message).toContain(`process ${process.pid} `);
    expect(line.message).toContain(dir);
    await child.closed;
    await log.close();
  });

  test("a child holds the lock: this process is refused with the child's pid; once the child is killed (-9), the lock is taken over", async () => {
    const dir = tempDir();
    const child = startChild('hold', dir);
    const ready = await child.waitFor((message) => 'ready' in message);
    await expect(DiskLog.open({ path: dir })).rejects.toThrow(new RegExp(`process ${String(ready.ready)} `));
    child.process.kill('SIGKILL');
    await child.closed;
    expect(holder(dir)).toBe(ready.ready); // the dead process's lock is still there…
    const log = await DiskLog.open({ path: dir }); // …and is taken over
    expect(holder(dir)).toBe(process.pid);
    await log.close();
  });

  test('a lock left by a dead pid is taken over', async () => {
    const dir = tempDir();
    leaveStaleLock(dir);
    expect(holder(dir)).toBe(deadPid());
    const log = await DiskLog.open({ path: dir });
    expect(holder(dir)).toBe(process.pid);
    await log.close();
  });

  test('an unreadable lock file (torn by a power loss) is taken over', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOCK_FILE), '{"pid":');
    await (await DiskLog.open({ path: dir })).close();
  });

  test('a missing directory is created, parents too', async () => {
    const dir = join(tempDir(), 'a', 'b');
    const log = await DiskLog.open({ path: dir });
    expect(holder(dir)).toBe(process.pid);
    await log.close();
  });

  test.each([
    ['a regular file', (file: string) => file],
    ['under a regular file', (file: string) => join(file, 'log')],
  ])('a path that is %s is ERR_DISK_UNUSABLE naming the path and the OS error', async (_name, pathOf) => {
    const file = join(tempDir(), 'file');
    writeFileSync(file, 'x');
    const path = pathOf(file);
    const opening = DiskLog.open({ path });
    await expect(opening).rejects.toMatchObject({ code: 'ERR_DISK_UNUSABLE', path });
    await expect(opening).rejects.toThrow(/cannot use .*: (EEXIST|ENOTDIR)/);
  });

  test('a read-only directory is ERR_DISK_UNUSABLE naming the path and EROFS (simulated: the tests may run as root)', async () => {
    const path = tempDir();
    const readOnly = new CountingFs();
    readOnly.open = (file: string, flags: string) =>
      flags === 'r' ? nodeFs.open(file, flags) : Promise.reject(osError('EROFS'));
    const opening = DiskLog.open({ path, fs: readOnly });
    await expect(opening).rejects.toMatchObject({ code: 'ERR_DISK_UNUSABLE', path });
    await expect(opening).rejects.toThrow(`cannot use ${path}: EROFS`);
  });

  test('bad options are coded TypeError/RangeError naming the option', async () => {
    await expect(DiskLog.open({ path: '' })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_TYPE',
      message: expect.stringContaining('"disk.path"'),
    });
    await expect(DiskLog.open({ path: tempDir(), fsync: 'sometimes' as 'never' })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
    await expect(DiskLog.open({ path: tempDir(), segmentBytes: 0 })).rejects.toMatchObject({
      code: 'ERR_OUT_OF_RANGE',
      message: expect.stringContaining('Received 0'),
    });
    await expect(DiskLog.open({ path: tempDir(), fsynk: 'always' } as never)).rejects.toMatchObject({
      code: 'ERR_INVALID_ARG_VALUE',
    });
  });
});
