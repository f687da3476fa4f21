import { basename } from 'node:path';
import { type DiskFs, nodeFs } from '../../../lib/disk/fs';
import { LOCK_FILE } from '../../../lib/disk/lock';

/**
 * The real file system, until the process "dies": the write that reaches byte `tearAt` (counted
 * over every write to the log's files but the lock) writes only the bytes before it, and from
 * then on every call fails, those in progress included. That is what SIGKILL leaves on disk
 * during a write: a prefix of it (the OS keeps what was written; nothing is synced or undone).
 */
export class FaultyFs implements DiskFs {
  #written = 0;
  #crashed = false;
  readonly #open = new Map<number, string>();

  constructor(private readonly tearAt: number) {}

  get crashed(): boolean {
    return this.#crashed;
  }

  /** Closes what the dead process had open (the OS would). */
  async release(): Promise<void> {
    this.#crashed = true;
    for (const fd of this.#open.keys()) await nodeFs.close(fd);
    this.#open.clear();
  }

  #alive(): void {
    if (this.#crashed) throw Object.assign(new Error('the process is dead'), { code: 'ECRASHED' });
  }

  async #live<T>(call: () => Promise<T>): Promise<T> {
    this.#alive();
    const result = await call();
    this.#alive();
    return result;
  }

  open = async (path: string, flags: string): Promise<number> => {
    const fd = await this.#live(() => nodeFs.open(path, flags));
    this.#open.set(fd, basename(path));
    return fd;
  };
  close = async (fd: number): Promise<void> => {
    this.#alive();
    this.#open.delete(fd);
    await nodeFs.close(fd);
  };
  write = async (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> => {
    this.#alive();
    if ((this.#open.get(fd) ?? '').startsWith(LOCK_FILE)) return nodeFs.write(fd, buffer, offset, length, position);
    const room = this.tearAt - this.#written;
    if (room < length) {
      if (room > 0) await nodeFs.write(fd, buffer, offset, room, position);
      this.#written = this.tearAt;
      this.#crashed = true;
      this.#alive();
    }
    this.#written += length;
    return this.#live(() => nodeFs.write(fd, buffer, offset, length, position));
  };
  read = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> =>
    this.#live(() => nodeFs.read(fd, buffer, offset, length, position));
  fsync = (fd: number): Promise<void> => this.#live(() => nodeFs.fsync(fd));
  ftruncate = (fd: number, length: number): Promise<void> => this.#live(() => nodeFs.ftruncate(fd, length));
  size = (fd: number): Promise<number> => this.#live(() => nodeFs.size(fd));
  readdir = (path: string): Promise<string[]> => this.#live(() => nodeFs.readdir(path));
  mkdir = (path: string): Promise<void> => this.#live(() => nodeFs.mkdir(path));
  readFile = (path: string): Promise<Buffer> => this.#live(() => nodeFs.readFile(path));
  rename = (from: string, to: string): Promise<void> => this.#live(() => nodeFs.rename(from, to));
  unlink = (path: string): Promise<void> => this.#live(() => nodeFs.unlink(path));
}
