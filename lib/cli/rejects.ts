import { closeSync, fstatSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
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
  failure: CliError | undefined;
  readonly #fd: number;
  readonly #created: boolean;
  #bytes = 0;
  #onFailure: (error: CliError) => void = () => undefined;

  private constructor(path: string, fd: number, created: boolean) {
    this.path = path;
    this.#fd = fd;
    this.#created = created;
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
    return new RejectsFile(path, fd, created);
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
    if (this.failure !== undefined) {
      this.unwritten += records.length;
      return;
    }
    let text = '';
    for (const { line, raw, id } of records)
      text += JSON.stringify(id === undefined ? { line, stage, error, raw } : { line, id, stage, error, raw }) + '\n';
    try {
      const buffer = Buffer.from(text, 'utf8');
      // writeSync may write less than asked (a full disk, a signal): write the rest, or fail.
      for (let offset = 0; offset < buffer.length;) {
        const written = writeSync(this.#fd, buffer, offset, buffer.length - offset);
        if (written <= 0) throw new Error('nothing written');
        offset += written;
      }
      this.#bytes += buffer.length;
    } catch (cause) {
      this.unwritten += records.length;
      this.failure = new CliError(
        ExitCode.FAILED,
        `cannot write the rejects file ${this.path}: ${describe(cause)}`,
        cause,
      );
      this.#onFailure(this.failure);
      return;
    }
    this.counts[stage] += records.length;
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
