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
 * process is dead can never remove a live one.
 *
 * A claim is live while its pid is (`kill(pid, 0)`) and, on Linux, while that pid is still the
 * process that wrote it: a claim records its process's start (the boot id and the start time in
 * /proc), so a pid reused after the owner died does not hold the log. That case is common: a
 * container restarted after a crash often runs its process under the very same pid. Every
 * process using the directory must share one host and one pid namespace, on a local file system.
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

/** What a lock file holds (its pid and token are also in a claim's name). */
interface LockContent {
  pid: number;
  token: string;
  startedAt: string;
  /** The process's start, on Linux: see {@link processStart}. */
  start?: string;
}

/**
 * A lock file found in the directory; `pid` undefined when it is an old-style `LOCK` that cannot
 * be read; `start` when the file says which process start wrote it.
 */
interface Claim {
  name: string;
  pid: number | undefined;
  start: string | undefined;
}

/** A held lock. */
export interface Lock {
  /** The owner's claim. */
  readonly file: string;
  /** Removes the claim. */
  release(): Promise<void>;
}

/**
 * Which start of a process `pid` is: the boot id and the process's start time in clock ticks
 * since boot (Linux /proc; a pid reused later, or after a reboot, gives another value), or
 * `undefined` where /proc cannot tell.
 */
export function processStart(pid: number): string | undefined {
  try {
    bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name, which is in parentheses and may hold anything: field 22 is the start time.
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return startTime === undefined ? undefined : `${bootId} ${startTime}`;
  } catch {
    return undefined;
  }
}
let bootId: string | undefined;

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
    start: processStart(process.pid),
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
        return { file, release: () => unlinkIfPresent(disk, file) };
      }
      await unlinkIfPresent(disk, file);
    }
    if (tries === TRIES) throw DiskError.locked(directory, holder.pid, join(directory, holder.name));
    await sleep(Math.random() * tries * PAUSE_MS);
  }
}

/** The first live claim other than `own`. */
function liveClaim(claims: readonly Claim[], own?: string): (Claim & { pid: number }) | undefined {
  return claims.find((claim): claim is Claim & { pid: number } => claim.name !== own && isLive(claim));
}

/** Its pid is alive and, where /proc tells, still the process that wrote it. */
function isLive(claim: Claim): boolean {
  if (claim.pid === undefined || !isProcessAlive(claim.pid)) return false;
  const now = claim.start === undefined ? undefined : processStart(claim.pid);
  return now === undefined || now === claim.start;
}

async function listClaims(disk: DiskFs, directory: string): Promise<Claim[]> {
  let names: string[];
  try {
    names = await disk.readdir(directory);
  } catch (error) {
    throw DiskError.unusable(directory, error);
  }
  const lockFiles = names.filter(isLockFile);
  const contents = await Promise.all(
    lockFiles.map((name) => disk.readFile(join(directory, name)).then(parseContent, () => undefined)),
  );
  return lockFiles.map((name, i) => claimOf(name, contents[i]));
}

/** The same, synchronously (for the checks at construction). */
function listClaimsSync(directory: string): Claim[] {
  const lockFiles = readdirSync(directory).filter(isLockFile);
  return lockFiles.map((name) => {
    let content: Partial<LockContent> | undefined;
    try {
      content = parseContent(readFileSync(join(directory, name)));
    } catch {
      content = undefined; // gone meanwhile, or unreadable
    }
    return claimOf(name, content);
  });
}

/** A claim, `LOCK.<pid>.<token>`, or an old-style `LOCK`. */
function isLockFile(name: string): boolean {
  return name === LOCK_FILE || CLAIM.test(name);
}

/**
 * A lock file as a claim. A claim's pid is in its name (its content may be missing: a claim is
 * written after it is made); an old-style `LOCK` has only its content, unreadable if torn.
 */
function claimOf(name: string, content: Partial<LockContent> | undefined): Claim {
  const named = CLAIM.exec(name)?.[1];
  const pid = named !== undefined ? Number(named) : Number.isInteger(content?.pid) ? content?.pid : undefined;
  return { name, pid, start: typeof content?.start === 'string' ? content.start : undefined };
}

function parseContent(bytes: Buffer): Partial<LockContent> | undefined {
  try {
    const content = JSON.parse(bytes.toString('utf8')) as unknown;
    return typeof content === 'object' && content !== null ? content : undefined;
  } catch {
    return undefined;
  }
}

/** The pids of the live processes that claim `directory` now: its owner, and openers of this instant. */
export function lockHolders(directory: string): number[] {
  return listClaimsSync(directory).flatMap((claim) => (isLive(claim) ? [claim.pid as number] : []));
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

/** Removes a file; one that is already gone is fine. */
export async function unlinkIfPresent(disk: DiskFs, path: string): Promise<void> {
  try {
    await disk.unlink(path);
  } catch (error) {
    if (osCode(error) !== 'ENOENT') throw error;
  }
}
