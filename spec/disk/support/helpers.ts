import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DiskFs, nodeFs } from '../../../lib/disk/fs';
import { LOCK_FILE } from '../../../lib/disk/lock';

/** A fresh directory under the OS temp dir; `cleanup()` removes every one made. */
const made: string[] = [];
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-disk-'));
  made.push(dir);
  return dir;
}
export function cleanup(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** The pid of a process that has exited (a child run to completion). */
let dead: number | undefined;
export function deadPid(): number {
  dead ??= spawnSync(process.execPath, ['-e', '0']).pid;
  return dead;
}

/**
 * What a process killed while holding the log leaves: its claim, named by a dead pid. This
 * process's own claims there are removed first (a spec that simulates a crash of its log).
 */
export function leaveStaleLock(dir: string): void {
  for (const name of readdirSync(dir)) if (name.startsWith(`${LOCK_FILE}.${process.pid}.`)) rmSync(join(dir, name));
  const content = `${JSON.stringify({ pid: deadPid(), token: 'dead', startedAt: '' })}\n`;
  writeFileSync(join(dir, `${LOCK_FILE}.${deadPid()}.dead`), content);
}

/** The same, as earlier versions wrote it: one file named LOCK holding the dead pid. */
export function leaveOldStaleLock(dir: string): void {
  writeFileSync(join(dir, LOCK_FILE), `${JSON.stringify({ pid: deadPid(), token: 'dead', startedAt: '' })}\n`);
}

/** Payload bytes for a number, recognisable when read back. */
export function payload(n: number, size = 20): Buffer {
  return Buffer.from(`item-${n}-`.padEnd(size, 'x'));
}

/** Counts calls by operation name; optionally fails one. */
export class CountingFs implements DiskFs {
  readonly calls = new Map<string, number>();
  /** When set, called before each write/fsync: throw to fail it. */
  beforeWrite: ((op: 'write' | 'fsync', fd: number) => void) | undefined;
  /** When set, a write writes only this many bytes, then the next hook decides. */
  shortWrite: number | undefined;

  count(name: string): number {
    return this.calls.get(name) ?? 0;
  }
  #seen(name: string): void {
    this.calls.set(name, this.count(name) + 1);
  }
  open = (path: string, flags: string): Promise<number> => (this.#seen('open'), nodeFs.open(path, flags));
  close = (fd: number): Promise<void> => (this.#seen('close'), nodeFs.close(fd));
  write = async (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> => {
    this.#seen('write');
    this.beforeWrite?.('write', fd);
    const cut = this.shortWrite;
    if (cut !== undefined && cut < length) {
      this.shortWrite = undefined;
      return nodeFs.write(fd, buffer, offset, cut, position);
    }
    return nodeFs.write(fd, buffer, offset, length, position);
  };
  /** Bytes read by read() (not readFile()). */
  bytesRead = 0;
  read = async (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> => {
    const count = await nodeFs.read(fd, buffer, offset, length, position);
    this.bytesRead += count;
    return count;
  };
  fsync = async (fd: number): Promise<void> => {
    this.#seen('fsync');
    this.beforeWrite?.('fsync', fd);
    return nodeFs.fsync(fd);
  };
  ftruncate = (fd: number, length: number): Promise<void> => (this.#seen('ftruncate'), nodeFs.ftruncate(fd, length));
  size = (fd: number): Promise<number> => nodeFs.size(fd);
  readdir = (path: string): Promise<string[]> => nodeFs.readdir(path);
  mkdir = (path: string): Promise<void> => nodeFs.mkdir(path);
  readFile = (path: string): Promise<Buffer> => nodeFs.readFile(path);
  rename = (from: string, to: string): Promise<void> => nodeFs.rename(from, to);
  unlink = (path: string): Promise<void> => (this.#seen('unlink'), nodeFs.unlink(path));
}

/** An error as the OS gives it. */
export function osError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated`), { code });
}
