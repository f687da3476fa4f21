/**
 * `--resumable`: what identifies an input file across runs, and how a run tells whether the file is
 * still the one earlier runs loaded from. Owns the file handle of a resumable input (it reads the
 * head and tail it hashes, then the stream the run loads from); does not own the progress table.
 */
import { createHash } from 'node:crypto';
import { open, realpath } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { CliError, ExitCode, describe } from '../errors';
import type { FileHandle } from 'node:fs/promises';

/** Bytes hashed at each end of the file. */
export const HASHED_BYTES = 64 * 1024;

/** The file as a run finds it; the progress table keeps the last run's. */
export interface InputIdentity {
  /** Its real path (links resolved): with the table, the load's key. */
  path: string;
  size: number;
  /** Last modification, ISO 8601 to the nanosecond the file system keeps. */
  mtime: string;
  /** SHA-256 (hex) of its first HASHED_BYTES bytes (all of a smaller file). */
  head: string;
  /** SHA-256 (hex) of its last HASHED_BYTES bytes. */
  tail: string;
}

/** What a run finds against what the last run recorded. */
export type Verdict = { kind: 'same' } | { kind: 'grown' } | { kind: 'changed'; why: string };

/** A resumable input: a regular file, opened once, read from where the load resumes. */
export class ResumableInput {
  readonly identity: InputIdentity;
  readonly #handle: FileHandle;

  private constructor(handle: FileHandle, identity: InputIdentity) {
    this.#handle = handle;
    this.identity = identity;
  }

  /** Opens `input` (exit 2 if it cannot be read, or is not a regular file) and takes its identity. */
  static async open(input: string): Promise<ResumableInput> {
    const cannot = (why: string, cause?: unknown): CliError =>
      new CliError(ExitCode.USAGE, `cannot read ${input}: ${why}`, cause);
    let handle: FileHandle;
    try {
      handle = await open(input, 'r');
    } catch (error) {
      throw cannot(describe(error), error);
    }
    try {
      const stat = await handle.stat({ bigint: true });
      if (stat.isDirectory())
        throw cannot('it is a directory (give one file, or pipe several: cat dir/*.ndjson | sluice ingest -)');
      if (!stat.isFile())
        throw cannot('--resumable needs a regular file, which a later run can read again (this is a pipe or a device)');
      const size = Number(stat.size);
      const identity: InputIdentity = {
        path: await realpath(input),
        size,
        mtime: isoNanoseconds(stat.mtimeNs),
        head: await hashRange(handle, 0, Math.min(HASHED_BYTES, size)),
        tail: await hashRange(handle, Math.max(0, size - HASHED_BYTES), size),
      };
      return new ResumableInput(handle, identity);
    } catch (error) {
      await handle.close();
      if (error instanceof CliError) throw error;
      throw cannot(describe(error), error);
    }
  }

  /**
   * Compares the file with what the last run recorded (`recorded`, the file as it was then) and where the
   * load had committed up to. A file that only grew is a log appended to: the load goes on from there.
   */
  async compare(recorded: Omit<InputIdentity, 'path'>, committedOffset: number): Promise<Verdict> {
    const now = this.identity;
    if (now.size < recorded.size)
      return changed(`it is shorter than when this load last ran (${recorded.size} bytes, now ${now.size})`);
    const headBytes = Math.min(HASHED_BYTES, recorded.size);
    const head = now.size === recorded.size ? now.head : await hashRange(this.#handle, 0, headBytes);
    if (head !== recorded.head) return changed(`its first ${headBytes} bytes are not the ones this load read`);
    const tailStart = Math.max(0, recorded.size - HASHED_BYTES);
    const tail = now.size === recorded.size ? now.tail : await hashRange(this.#handle, tailStart, recorded.size);
    if (tail !== recorded.tail)
      return changed(
        `bytes ${tailStart} to ${recorded.size} (the end of the file when this load last ran) are not the ones it read`,
      );
    if (now.size === recorded.size)
      return now.mtime === recorded.mtime
        ? { kind: 'same' }
        : changed(`it was modified since this load last ran (mtime ${recorded.mtime}, now ${now.mtime})`);
    // Grown. A last line loaded without a line break may be continued by what was appended: refused.
    if (committedOffset === recorded.size && committedOffset > 0) {
      const last = Buffer.alloc(1);
      await this.#handle.read(last, 0, 1, committedOffset - 1);
      if (last[0] !== 10)
        return changed(
          `it grew from ${recorded.size} to ${now.size} bytes, but its last line, loaded already, had no line break: what was appended may be the rest of that line`,
        );
    }
    return { kind: 'grown' };
  }

  /** The bytes from `offset` to the end the file had when it was opened; the stream owns the handle. */
  stream(offset: number): Readable {
    const size = this.identity.size;
    if (offset >= size) {
      void this.close();
      return Readable.from([], { objectMode: false });
    }
    return this.#handle.createReadStream({ start: offset, end: size - 1, highWaterMark: 256 * 1024 });
  }

  async close(): Promise<void> {
    await this.#handle.close().catch(() => undefined);
  }
}

function changed(why: string): Verdict {
  return { kind: 'changed', why };
}

async function hashRange(handle: FileHandle, start: number, end: number): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(end - start);
  for (let done = 0; done < buffer.length;) {
    const { bytesRead } = await handle.read(buffer, done, buffer.length - done, start + done);
    if (bytesRead === 0) break; // shorter than it said: the hash will differ
    done += bytesRead;
  }
  return hash.update(buffer).digest('hex');
}

/** 2024-05-01T12:00:00.123456789Z: milliseconds from Date, the rest from the nanoseconds. */
function isoNanoseconds(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const rest = String(ns % 1_000_000n).padStart(6, '0');
  return new Date(Number(ms)).toISOString().replace('Z', `${rest}Z`);
}
