/**
 * The file operations the disk log uses, as one small interface over file descriptors. The log
 * takes them from here and nowhere else, so a test can count fsyncs, tear a write at a chosen
 * byte or fail one with ENOSPC by wrapping {@link nodeFs}.
 */
import { constants } from 'node:buffer';
import * as fs from 'node:fs';

/** File operations, promise-returning, positional (the log tracks every offset itself). */
export interface DiskFs {
  open(path: string, flags: string): Promise<number>;
  close(fd: number): Promise<void>;
  /** Writes up to `length` bytes at `position`; resolves how many were written. */
  write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Reads up to `length` bytes at `position`; resolves how many were read (0 at the end). */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  size(fd: number): Promise<number>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string): Promise<void>;
  /** The whole file, however large (`fs.promises.readFile` stops at 2 GiB). The log reads only small files whole (lock claims). */
  readFile(path: string): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

/** The most one read or write call moves: Node's fs.read and fs.write take at most 2 GiB − 1 bytes. */
export const MAX_IO_BYTES = 1024 * 1024 * 1024;

/** Adapts a callback-last call to a promise. */
function settle<T>(run: (done: (error: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value as T))));
}

/** The real file system. */
export const nodeFs: DiskFs = {
  open: (path, flags) => settle<number>((done) => fs.open(path, flags, done)),
  close: (fd) => settle<void>((done) => fs.close(fd, done)),
  write: (fd, buffer, offset, length, position) =>
    settle<number>((done) => fs.write(fd, buffer, offset, length, position, done)),
  read: (fd, buffer, offset, length, position) =>
    settle<number>((done) => fs.read(fd, buffer, offset, length, position, done)),
  fsync: (fd) => settle<void>((done) => fs.fsync(fd, done)),
  ftruncate: (fd, length) => settle<void>((done) => fs.ftruncate(fd, length, done)),
  size: (fd) => settle<fs.Stats>((done) => fs.fstat(fd, done)).then((stats) => stats.size),
  readdir: (path) => fs.promises.readdir(path),
  mkdir: (path) => fs.promises.mkdir(path, { recursive: true }).then(() => undefined),
  readFile: (path) => readWholeFile(nodeFs, path),
  rename: (from, to) => fs.promises.rename(from, to),
  unlink: (path) => fs.promises.unlink(path),
};

/** A file's bytes, opened by path; see {@link readAll}. */
export async function readWholeFile(disk: DiskFs, path: string, maxIo = MAX_IO_BYTES): Promise<Buffer> {
  const fd = await disk.open(path, 'r');
  try {
    return await readAll(disk, fd, path, maxIo);
  } finally {
    await disk.close(fd);
  }
}

/**
 * The bytes of the open file `fd` (named `path` in errors), read in calls of at most `maxIo` bytes
 * into one buffer of its size: as many as there are, if it ends before the size it reported. A file
 * larger than a buffer can be (4 GiB) fails with `EFBIG`, naming it.
 */
export async function readAll(disk: DiskFs, fd: number, path: string, maxIo = MAX_IO_BYTES): Promise<Buffer> {
  const size = await disk.size(fd);
  if (size > constants.MAX_LENGTH) {
    const message = `${path} holds ${size} bytes, more than one buffer can (${constants.MAX_LENGTH})`;
    throw Object.assign(new Error(message), { code: 'EFBIG' });
  }
  const bytes = Buffer.allocUnsafe(size);
  return bytes.subarray(0, await readFully(disk, fd, bytes, size, 0, maxIo));
}

/**
 * Makes the directory's entries durable (a created, renamed or deleted file): on Linux a new
 * file's data can be synced and still vanish at a power loss if its directory entry was not.
 */
export async function syncDirectory(disk: DiskFs, directory: string): Promise<void> {
  const fd = await disk.open(directory, 'r');
  try {
    await disk.fsync(fd);
  } finally {
    await disk.close(fd);
  }
}

/**
 * Reads `length` bytes at `position` into the start of `buffer`, at most `maxIo` per call; resolves
 * how many were read: fewer only where the file ends.
 */
export async function readFully(
  disk: DiskFs,
  fd: number,
  buffer: Uint8Array,
  length: number,
  position: number,
  maxIo = MAX_IO_BYTES,
): Promise<number> {
  let filled = 0;
  while (filled < length) {
    const count = await disk.read(fd, buffer, filled, Math.min(length - filled, maxIo), position + filled);
    if (count === 0) break;
    filled += count;
  }
  return filled;
}

/** Writes all of `bytes` at `position`, at most `maxIo` per call (a write may be short: a full disk, a signal). */
export async function writeAll(
  disk: DiskFs,
  fd: number,
  bytes: Uint8Array,
  position: number,
  maxIo = MAX_IO_BYTES,
): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const count = await disk.write(fd, bytes, written, Math.min(bytes.length - written, maxIo), position + written);
    if (count <= 0) throw Object.assign(new Error('write wrote nothing'), { code: 'EIO' });
    written += count;
  }
}
