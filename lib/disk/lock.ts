/**
 * The lock that makes one process at a time the owner of a log directory.
 *
 * An opener writes a claim, a file of its own named `LOCK.<pid>.<token>` (the token is random,
 * so no one else ever makes or removes that name), and then lists the directory. If it finds a
 * claim of another live process, it withdraws its own and tries again a little later (or, after a
 * few tries, reports `ERR_DISK_LOCKED` naming that process); otherwise it owns the log and removes
 * the claims of dead processes. Of two openers whose claims overlap in time, the one that lists
 * second sees the other's claim, so two live processes never both own the log; when both see each
 * other both withdraw, and the random pause before the next try separates them. A dead owner's
 * claim is simply ignored, then removed: unlike a single lock file that is taken over by removing
 * it (which another opener of the same instant may be about to replace), removing a claim whose
 * process is dead can never remove a live one. Liveness is `kill(pid, 0)`, so every process using
 * the directory must share one host and one pid namespace, on a local file system.
 *
 * A lock file named plain `LOCK` (written by earlier versions) is read as a claim by the pid it holds.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DiskError, osCode } from './errors';
import { type DiskFs, writeAll } from './fs';

/** The start of every lock file's name inside the log directory (and the whole name of an old one). */
export const LOCK_FILE = 'LOCK';

/** `LOCK.<pid>.<token>`. */
const CLAIM = /^LOCK\.(\d+)\.[0-9a-f]+$/;

/** Tries before a live claim is reported as `ERR_DISK_LOCKED`, and the pause before the n-th: random, up to n × 20 ms. */
const TRIES = 6;
const PAUSE_MS = 20;

/** What a lock file holds (for people and for old-style `LOCK` files; a claim's name says the same). */
interface LockContent {
  pid: number;
  token: string;
  startedAt: string;
}

/** A lock file found in the directory; `pid` undefined when it is an old-style `LOCK` that cannot be read. */
interface Claim {
  name: string;
  pid: number | undefined;
}

/** A held lock. */
export interface Lock {
  /** The owner's claim. */
  readonly file: string;
  readonly token: string;
  /** Removes the claim. */
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
 * Takes the lock of `directory`, or throws `ERR_DISK_LOCKED` naming a live holder, or
 * `ERR_DISK_UNUSABLE` when the directory cannot hold a file.
 */
export async function acquireLock(disk: DiskFs, directory: string): Promise<Lock> {
  const content: LockContent = {
    pid: process.pid,
    token: randomBytes(8).toString('hex'),
    startedAt: new Date().toISOString(),
  };
  const own = `${LOCK_FILE}.${content.pid}.${content.token}`;
  const file = join(directory, own);
  for (let tries = 1; ; tries++) {
    // A live claim already there: no need to write one of ours to find out.
    let holder = liveClaim(await listClaims(disk, directory), own);
    if (holder === undefined) {
      await writeClaim(disk, directory, file, content);
      const claims = await listClaims(disk, directory);
      holder = liveClaim(claims, own);
      if (holder === undefined) {
        for (const claim of claims) if (claim.name !== own) await unlinkIfPresent(disk, join(directory, claim.name));
        return { file, token: content.token, release: () => unlinkIfPresent(disk, file) };
      }
      await unlinkIfPresent(disk, file);
    }
    if (tries === TRIES) throw DiskError.locked(directory, holder.pid, join(directory, holder.name));
    await sleep(Math.random() * tries * PAUSE_MS);
  }
}

/** The first claim other than `own` whose process is alive. */
function liveClaim(claims: readonly Claim[], own?: string): (Claim & { pid: number }) | undefined {
  return claims.find((claim): claim is Claim & { pid: number } => {
    return claim.name !== own && claim.pid !== undefined && isProcessAlive(claim.pid);
  });
}

async function listClaims(disk: DiskFs, directory: string): Promise<Claim[]> {
  let names: string[];
  try {
    names = await disk.readdir(directory);
  } catch (error) {
    throw DiskError.unusable(directory, error);
  }
  const oldPid = names.includes(LOCK_FILE)
    ? await readOldLock(() => disk.readFile(join(directory, LOCK_FILE)))
    : undefined;
  return claimsAmong(names, () => oldPid);
}

/** The same, synchronously (for the checks at construction). */
function listClaimsSync(directory: string): Claim[] {
  return claimsAmong(readdirSync(directory), () => readOldLockSync(join(directory, LOCK_FILE)));
}

/** The lock files among a directory's `names`; `oldPid` reads an old-style `LOCK`, if there is one. */
function claimsAmong(names: readonly string[], oldPid: () => number | undefined): Claim[] {
  const claims: Claim[] = [];
  for (const name of names) {
    const pid = CLAIM.exec(name)?.[1];
    if (pid !== undefined) claims.push({ name, pid: Number(pid) });
    else if (name === LOCK_FILE) claims.push({ name, pid: oldPid() });
  }
  return claims;
}

/** The pids of the live processes that claim `directory` now: its owner, and openers of this instant. */
export function lockHolders(directory: string): number[] {
  return listClaimsSync(directory).flatMap((claim) =>
    claim.pid !== undefined && isProcessAlive(claim.pid) ? [claim.pid] : [],
  );
}

/**
 * The checks a sluice makes when it is constructed, before it opens its log asynchronously: the
 * directory exists (or is created) and is writable, and no live process holds its lock. Throws
 * `ERR_DISK_UNUSABLE` or `ERR_DISK_LOCKED`, so that a bad path fails at `new`, not later in an
 * `'error'` event. (The lock itself is taken by the open that follows; a race lost there is
 * reported by it.)
 */
export function checkDirectorySync(directory: string): void {
  let claims: Claim[];
  try {
    mkdirSync(directory, { recursive: true });
    accessSync(directory, constants.R_OK | constants.W_OK | constants.X_OK);
    claims = listClaimsSync(directory);
  } catch (error) {
    throw DiskError.unusable(directory, error);
  }
  const holder = liveClaim(claims);
  if (holder !== undefined) throw DiskError.locked(directory, holder.pid, join(directory, holder.name));
}

/** Writes a claim. Not synced: a lock matters among live processes only, and a power loss leaves none. */
async function writeClaim(disk: DiskFs, directory: string, path: string, content: LockContent): Promise<void> {
  try {
    const fd = await disk.open(path, 'wx');
    try {
      await writeAll(disk, fd, Buffer.from(`${JSON.stringify(content)}\n`), 0);
    } finally {
      await disk.close(fd);
    }
  } catch (error) {
    throw DiskError.unusable(directory, error);
  }
}

/** The pid in an old-style `LOCK` file; `undefined` when it is gone or unreadable (torn by a power loss). */
async function readOldLock(read: () => Promise<Buffer>): Promise<number | undefined> {
  try {
    return pidIn(await read());
  } catch {
    return undefined;
  }
}

function readOldLockSync(file: string): number | undefined {
  try {
    return pidIn(readFileSync(file));
  } catch {
    return undefined;
  }
}

function pidIn(bytes: Buffer): number | undefined {
  const { pid } = JSON.parse(bytes.toString('utf8')) as Partial<LockContent>;
  return Number.isInteger(pid) ? pid : undefined;
}

/** Removes a file; one that is already gone is fine. */
export async function unlinkIfPresent(disk: DiskFs, path: string): Promise<void> {
  try {
    await disk.unlink(path);
  } catch (error) {
    if (osCode(error) !== 'ENOENT') throw error;
  }
}
