import { closeSync, openSync, writeSync } from 'node:fs';
import { CliError, ExitCode, describe } from './errors';

/**
 * Why a record is in the rejects file:
 * - `parse`: malformed line (bad JSON, not an object, bad CSV, field that is not a column);
 * - `database`: the database refused the row (constraint, type), isolated by the sequential fallback;
 * - `dropped`: a drop strategy (drop_oldest, drop_newest, sample) discarded it;
 * - `undelivered`: the run stopped (signal deadline, lost database) before it was inserted.
 */
export type RejectStage = 'parse' | 'database' | 'dropped' | 'undelivered';

export interface RejectedRecord {
  line: number;
  raw: string;
}

/**
 * The rejects file: one JSON object per line, `{ line, stage, error, raw }`,
 * `raw` being the input record as read. Opened on the first reject (a clean run
 * leaves no file), written synchronously so that nothing is pending at exit and
 * memory stays bounded however many records are rejected.
 */
export class RejectsFile {
  readonly path: string;
  readonly counts: Record<RejectStage, number> = { parse: 0, database: 0, dropped: 0, undelivered: 0 };
  #fd: number | undefined;

  constructor(path: string) {
    this.path = path;
  }

  get total(): number {
    const { parse, database, dropped, undelivered } = this.counts;
    return parse + database + dropped + undelivered;
  }

  write(stage: RejectStage, records: readonly RejectedRecord[], error: string): void {
    if (records.length === 0) return;
    let text = '';
    for (const { line, raw } of records) text += JSON.stringify({ line, stage, error, raw }) + '\n';
    this.#fd ??= this.#open();
    writeSync(this.#fd, text);
    this.counts[stage] += records.length;
  }

  close(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
  }

  #open(): number {
    try {
      return openSync(this.path, 'a');
    } catch (error) {
      // Nowhere to put rejects means rows would vanish: stop the run instead.
      throw new CliError(ExitCode.FAILED, `cannot write the rejects file ${this.path}: ${describe(error)}`, error);
    }
  }
}
