import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { CliError, ExitCode, describe } from './errors';

/**
 * Why a record is in the rejects file:
 * - `parse`: malformed record (bad JSON, not an object, bad CSV, too long, a field that is not a column);
 * - `database`: the database refused the row (constraint, type), isolated from the rest of its batch;
 * - `dropped`: a drop strategy (drop_oldest, drop_newest, sample) discarded it;
 * - `undelivered`: the run stopped (signal deadline, lost database, schema error) before it was inserted.
 */
export type RejectStage = 'parse' | 'database' | 'dropped' | 'undelivered';

export interface RejectedRecord {
  line: number;
  raw: string;
  /** The message's broker identity (`STREAM:SEQ`, `KEY:ENTRY-ID`, the AMQP message id), for a broker input. */
  id?: string;
}

/** One line of the rejects file, each with its own stage and error (`writeEach`). */
export interface RejectEntry {
  stage: RejectStage;
  line: number;
  raw: string;
  error: string;
}

/** What `rollback()` returns the file to: its length and the counts at `checkpoint()`. */
export interface RejectsCheckpoint {
  readonly size: number;
  readonly bytes: number;
  readonly counts: Readonly<Record<RejectStage, number>>;
}

/**
 * The rejects file: one JSON object per line, `{ line, stage, error, raw }`,
 * `raw` being the input record as read. Opened before the input is read (an
 * unwritable path stops the run before it starts), emptied unless appending;
 * written synchronously so that nothing is pending at exit and memory stays
 * bounded however many records are rejected. A file this run created and left
 * empty is removed at the end: a clean run leaves no rejects file.
 */
export class RejectsFile {
  readonly path: string;
  /** Records written, by stage. */
  readonly counts: Record<RejectStage, number> = { parse: 0, database: 0, dropped: 0, undelivered: 0 };
  /** Records that could not be written (the file system refused), and why. */
  unwritten = 0;
  /** `--resumable`: records not written because another run took the load (and this file) over. */
  withheld = 0;
  failure: CliError | undefined;
  readonly #fd: number;
  readonly #created: boolean;
  /** Opened to append (O_APPEND): every write goes to the end, so the file can be truncated under it. */
  readonly #append: boolean;
  /** Bytes this run wrote (net of rollbacks). */
  #bytes = 0;
  /** The file's length: what it had when opened, plus what this run wrote (nobody else writes it meanwhile). */
  #size: number;
  /** Written since the last sync(). */
  #dirty = false;
  #withholding = false;
  #onFailure: (error: CliError) => void = () => undefined;

  private constructor(path: string, fd: number, created: boolean, append: boolean) {
    this.path = path;
    this.#fd = fd;
    this.#created = created;
    this.#append = append;
    this.#size = append ? fstatSync(fd).size : 0;
  }

  /** Opens (creates, or empties unless `append`) the file now; exit 2 if that is impossible. */
  static open(path: string, append: boolean): RejectsFile {
    let existed: boolean;
    let fd: number;
    try {
      existed = statSync(path, { throwIfNoEntry: false }) !== undefined;
      fd = openSync(path, append ? 'a' : 'w');
    } catch (error) {
      throw new CliError(ExitCode.USAGE, `cannot write the rejects file ${path}: ${describe(error)}`, error);
    }
    const created = !existed && fstatSync(fd).isFile();
    return new RejectsFile(path, fd, created, append);
  }

  /** Called once, on the first failed write: rows would vanish, so the run must stop. */
  onFailure(listener: (error: CliError) => void): void {
    this.#onFailure = listener;
  }

  get total(): number {
    const { parse, database, dropped, undelivered } = this.counts;
    return parse + database + dropped + undelivered;
  }

  write(stage: RejectStage, records: readonly RejectedRecord[], error: string): void {
    if (records.length === 0) return;
    let text = '';
    for (const { line, raw, id } of records)
      text += JSON.stringify(id === undefined ? { line, stage, error, raw } : { line, id, stage, error, raw }) + '\n';
    if (this.#put(text, records.length)) this.counts[stage] += records.length;
  }

  /** Several records, each with its stage and error, in one write (`--resumable`: one batch's rejects, in input order). */
  writeEach(entries: readonly RejectEntry[]): void {
    if (entries.length === 0) return;
    let text = '';
    for (const { line, stage, error, raw } of entries) text += JSON.stringify({ line, stage, error, raw }) + '\n';
    if (!this.#put(text, entries.length)) return;
    for (const entry of entries) this.counts[entry.stage]++;
  }

  /** Writes `text` (`count` records) whole, or counts them unwritten and fails the run. */
  #put(text: string, count: number): boolean {
    if (this.#withholding) {
      this.withheld += count;
      return false;
    }
    if (this.failure !== undefined) {
      this.unwritten += count;
      return false;
    }
    try {
      const buffer = Buffer.from(text, 'utf8');
      // writeSync may write less than asked (a full disk, a signal): write the rest, or fail.
      for (let offset = 0; offset < buffer.length;) {
        const written = writeSync(this.#fd, buffer, offset, buffer.length - offset);
        if (written <= 0) throw new Error('nothing written');
        offset += written;
        this.#bytes += written;
        this.#size += written;
        this.#dirty = true;
      }
    } catch (cause) {
      this.unwritten += count;
      this.#fail(cause);
      return false;
    }
    return true;
  }

  #fail(cause: unknown): void {
    this.failure = new CliError(
      ExitCode.FAILED,
      `cannot write the rejects file ${this.path}: ${describe(cause)}`,
      cause,
    );
    this.#onFailure(this.failure);
  }

  /** The file's length in bytes. */
  get size(): number {
    return this.#size;
  }

  /**
   * The file's length as the file system has it now (`--resumable`: another run of the same load may still
   * be writing it when this one starts).
   */
  measure(): number {
    this.#size = fstatSync(this.#fd).size;
    return this.#size;
  }

  /**
   * `--resumable`: cuts the file to `length` bytes: what the load had written when it last committed (the
   * lines after it are for records the run reads again), or 0 to start afresh. The file must have been
   * opened to append, so that later writes go to the new end.
   */
  truncate(length: number): void {
    if (!this.#append) throw new Error('RejectsFile.truncate() needs a file opened to append');
    ftruncateSync(this.#fd, length);
    this.#bytes = Math.max(0, this.#bytes - (this.#size - length));
    this.#size = length;
    this.#dirty = true;
  }

  checkpoint(): RejectsCheckpoint {
    return { size: this.#size, bytes: this.#bytes, counts: { ...this.counts } };
  }

  /** `--resumable`: undoes the writes since `checkpoint` (a batch whose transaction did not commit). */
  rollback(checkpoint: RejectsCheckpoint): void {
    if (this.#size === checkpoint.size || this.failure !== undefined) return;
    ftruncateSync(this.#fd, checkpoint.size);
    this.#size = checkpoint.size;
    this.#bytes = checkpoint.bytes;
    Object.assign(this.counts, checkpoint.counts);
    this.#dirty = true;
  }

  /**
   * Makes what was written durable (fsync), before the commit that counts on it: a power loss may then
   * lose a commit whose rejects are on disk, which the next run cuts away, never the other way round.
   * A failure is the run's failure, and thrown.
   */
  sync(): void {
    if (!this.#dirty || this.failure !== undefined) {
      if (this.failure !== undefined) throw this.failure;
      return;
    }
    try {
      fsyncSync(this.#fd);
    } catch (cause) {
      this.#fail(cause);
      throw this.failure as unknown as Error;
    }
    this.#dirty = false;
  }

  /** `--resumable`: another run has taken the load over, and this file with it: write nothing more. */
  withhold(): void {
    this.#withholding = true;
  }

  /** Closes the file; removes it if this run created it and wrote nothing. */
  close(): void {
    closeSync(this.#fd);
    if (this.#created && this.#bytes === 0 && this.failure === undefined) {
      try {
        unlinkSync(this.path);
      } catch {
        // Someone else removed or replaced it: nothing of ours to clean up.
      }
    }
  }
}
