/**
 * The lock that makes one process at a time the owner of a log directory. The lock file holds
 * the owner's pid and a random token. It is created complete or not at all (written to a
 * private temporary file, then hard-linked into place: `link` fails if the name exists), so a
 * reader never sees a half-written lock. A lock whose pid is no longer alive is taken over.
 *
 * Known limit: if two processes find the same stale lock at the same instant, both may remove
 * it and one of them may then remove the other's new lock. Opening a log is not that racy in
 * practice (one service instance per directory); a fully safe takeover needs a rename dance.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskError, osCode } from './errors';
import { type DiskFs, writeAll } from './fs';

/** The lock file's name inside the log directory. */
export const LOCK_FILE = 'LOCK';

/** What a lock file holds. */
interface LockContent {
  pid: number;
  token: string;
  startedAt: string;
}

/** A held lock. */
export interface Lock {
  readonly file: string;
  readonly token: string;
  /** Removes the lock file, if it is still ours. */
  release(): Promise<void>;
}

/** Whether a process with this pid exists. EPERM means it exists but belongs to another user. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return osCode(error) === 'EPERM';
  }
}

/**
 * Takes the lock of `directory`, or throws `ERR_DISK_LOCKED` naming the live holder, or
 * `ERR_DISK_UNUSABLE` when the directory cannot hold a file.
 */
export async function acquireLock(disk: DiskFs, directory: string): Promise<Lock> {
  const file = join(directory, LOCK_FILE);
  const content: LockContent = {
    pid: process.pid,
    token: randomBytes(8).toString('hex'),
    startedAt: new Date().toISOString(),
  };
  const temporary = join(directory, `${LOCK_FILE}.${content.token}.tmp`);
  await writeTemporary(disk, directory, temporary, `${JSON.stringify(content)}\n`);
  try {
    // Two tries: the second after removing a stale lock.
    for (let attempt = 0; ; attempt++) {
      try {
        await disk.link(temporary, file);
        return { file, token: content.token, release: () => releaseLock(disk, file, content.token) };
      } catch (error) {
        if (osCode(error) !== 'EEXIST') throw DiskError.unusable(directory, error);
      }
      const holder = await readHolder(disk, file);
      if (holder !== undefined && isProcessAlive(holder.pid)) throw DiskError.locked(directory, holder.pid, file);
      if (attempt > 0) throw DiskError.locked(directory, holder?.pid ?? -1, file);
      await unlinkIfPresent(disk, file);
    }
  } finally {
    await unlinkIfPresent(disk, temporary);
  }
}

/**
 * The checks a sluice makes when it is constructed, before it opens its log asynchronously: the
 * directory exists (or is created) and is writable, and no live process holds its lock. Throws
 * `ERR_DISK_UNUSABLE` or `ERR_DISK_LOCKED`, so that a bad path fails at `new`, not later in an
 * `'error'` event. (The lock itself is taken by the open that follows; a race lost there is
 * reported by it.)
 */
export function checkDirectorySync(directory: string): void {
  try {
    mkdirSync(directory, { recursive: true });
    accessSync(directory, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (error) {
    throw DiskError.unusable(directory, error);
  }
  const file = join(directory, LOCK_FILE);
  let holder: Partial<LockContent> | undefined;
  try {
    holder = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockContent>;
  } catch {
    return; // no lock, or a half-written one: the open decides
  }
  if (Number.isInteger(holder.pid) && isProcessAlive(holder.pid as number)) {
    throw DiskError.locked(directory, holder.pid as number, file);
  }
}

async function writeTemporary(disk: DiskFs, directory: string, path: string, text: string): Promise<void> {
  try {
    const fd = await disk.open(path, 'wx');
    try {
      await writeAll(disk, fd, Buffer.from(text), 0);
      await disk.fsync(fd);
    } finally {
      await disk.close(fd);
    }
  } catch (error) {
    throw DiskError.unusable(directory, error);
  }
}

/** The lock's content; `undefined` when it is gone or unreadable (left half-written by a power loss). */
async function readHolder(disk: DiskFs, file: string): Promise<LockContent | undefined> {
  try {
    const parsed = JSON.parse((await disk.readFile(file)).toString('utf8')) as Partial<LockContent>;
    return Number.isInteger(parsed.pid) && typeof parsed.token === 'string' ? (parsed as LockContent) : undefined;
  } catch {
    return undefined;
  }
}

async function releaseLock(disk: DiskFs, file: string, token: string): Promise<void> {
  if ((await readHolder(disk, file))?.token === token) await unlinkIfPresent(disk, file);
}

/** Removes a file; one that is already gone is fine. */
export async function unlinkIfPresent(disk: DiskFs, path: string): Promise<void> {
  try {
    await disk.unlink(path);
  } catch (error) {
    if (osCode(error) !== 'ENOENT') throw error;
  }
}
