import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { CliError, ExitCode, describe, usageError } from './errors';
import type { IngestOptions } from './args';
import type { Readable } from 'node:stream';

/** The files SQLite keeps next to a database. */
const SQLITE_SIDE_FILES = ['', '-wal', '-shm', '-journal'];

/**
 * Refuses, before anything is opened, a rejects file that is the input or the
 * database (or one of its side files): rejects appended to the file being read
 * were read again, and rejects written into a database corrupt it. Paths are
 * compared resolved, and existing files by device and inode (links, `./x`).
 */
export function checkPaths(options: IngestOptions): void {
  const rejects = options.rejects;
  const clash = (other: string, what: string): void => {
    if (sameFile(rejects, other))
      throw usageError(`--rejects ${rejects} is ${what}: choose another file for the rejects`);
  };
  if (options.input !== '-') clash(options.input, 'the input file');
  if (options.target.kind === 'sqlite') {
    const db = options.target.path;
    for (const suffix of SQLITE_SIDE_FILES)
      clash(db + suffix, suffix === '' ? 'the database file' : `a file of the database (${db}${suffix})`);
    if (options.input !== '-' && sameFile(options.input, db))
      throw usageError(`the input ${options.input} is the database file: choose another --into`);
  }
}

function sameFile(a: string, b: string): boolean {
  if (resolvePath(a) === resolvePath(b)) return true;
  const sa = statSync(a, { throwIfNoEntry: false });
  const sb = statSync(b, { throwIfNoEntry: false });
  return sa !== undefined && sb !== undefined && sa.dev === sb.dev && sa.ino === sb.ino;
}

/** The input as a byte stream: stdin for `-`, else the file, which must be readable and not a directory. */
export async function openInput(input: string, stdin: NodeJS.ReadStream): Promise<Readable> {
  if (input === '-') {
    if (stdin.isTTY === true)
      throw new CliError(ExitCode.USAGE, 'no input: give a FILE, or pipe data into sluice ingest -');
    return stdin;
  }
  const cannot = (why: string, cause?: unknown): CliError =>
    new CliError(ExitCode.USAGE, `cannot read ${input}: ${why}`, cause);
  let handle;
  try {
    handle = await open(input, 'r');
  } catch (error) {
    throw cannot(describe(error), error);
  }
  const stat = await handle.stat();
  if (stat.isDirectory()) {
    await handle.close();
    throw cannot('it is a directory (give one file, or pipe several: cat dir/*.ndjson | sluice ingest -)');
  }
  return handle.createReadStream({ highWaterMark: 256 * 1024 });
}

const STOP = Symbol('stop');

/**
 * The input's chunks until it ends or `signal` aborts: stopping must not wait for
 * a producer on stdin that has nothing more to say.
 */
export async function* stoppable(source: Readable, signal: AbortSignal): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    while (!signal.aborted) {
      const next = await nextOrStop(iterator, signal);
      if (next === STOP || next.done === true) return;
      yield next.value;
    }
  } finally {
    // Close the file or release stdin so it keeps nothing alive; return() alone waits for a pending read.
    iterator.return?.().catch(() => undefined);
    source.destroy();
  }
}

/**
 * The next chunk, or STOP if `signal` aborts first. Not Promise.race against one
 * long-lived "stopped" promise: every race leaves a reaction on it that holds its
 * chunk, which leaked the whole input (1.1 GB RSS for a 1 GB file).
 */
function nextOrStop(
  iterator: AsyncIterator<Buffer>,
  signal: AbortSignal,
): Promise<IteratorResult<Buffer> | typeof STOP> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(STOP);
    signal.addEventListener('abort', onAbort, { once: true });
    iterator.next().then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
