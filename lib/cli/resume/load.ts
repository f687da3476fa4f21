/**
 * `sluice ingest FILE --resumable`: one run of a load that may take several (docs/cli.md, "Resumable
 * loads"). Decides at the start whether the load is new, resumed, grown, finished or refused; then
 * commits each batch with the load's progress; and records the end of the input.
 *
 * The invariant it keeps, in the progress row and the rejects file together: every record before
 * `committed_offset` is a row in the table or a line of the rejects file before `rejects_offset`, and
 * nothing after those two points is. Batches commit one at a time, in input order, each with the parse
 * rejects it carries and the rows the database refused, written and synced before its COMMIT; so a
 * crash at any moment leaves at most some lines past `rejects_offset`, which the next run cuts off
 * before it reads on from `committed_offset`.
 *
 * Owns the progress row's lifecycle and the rejects file's length; not the SQL (the sinks' progress
 * tables), nor reading the input (identity.ts, the splitters).
 */
import { resolve } from 'node:path';
import { CliError, ExitCode, describe } from '../errors';
import { fmt } from '../status-line';
import {
  PROGRESS_TABLE,
  conflictError,
  describeOptions,
  now,
  optionsKey,
  resumeError,
  type Advance,
  type Expected,
  type ProgressRow,
  type ProgressTable,
} from './progress';
import type { IngestOptions } from '../args';
import type { ResumeAt, Row } from '../parse';
import type { RejectEntry, RejectsFile } from '../rejects';
import type { Refusal, Sink } from '../sinks/sink';
import type { ResumableInput } from './identity';

/** How the run found the load. */
export type LoadStart = 'new' | 'restarted' | 'resumed' | 'grown' | 'finished';

/** For the summary (`--json`: `resume`). */
export interface ResumeSummary {
  start: LoadStart;
  /** Records earlier runs committed, which this run did not read again. */
  skipped: number;
  /** Where this run started reading: the line number and the byte offset. */
  fromLine: number;
  fromOffset: number;
  /** The load has read its input to the end: every record is in the table or the rejects file. */
  finished: boolean;
  /** Runs of this load so far, this one included. */
  runs: number;
  /** Over every run of the load: records committed, rows inserted, records rejected. */
  total: { records: number; inserted: number; rejected: number };
}

interface Context {
  options: IngestOptions;
  input: ResumableInput;
  sink: Sink;
  rejects: RejectsFile;
  /** Aborted when the run gives up: no batch commits after that. */
  giveUp: AbortSignal;
  say(message: string): void;
}

/** What the commits record besides the counts: the CSV header, the strict columns (for later runs). */
export interface LoadState {
  csvHeader(): string[] | undefined;
  strictColumns(): string[] | undefined;
}

export class ResumableLoad {
  readonly start: LoadStart;
  /** Where this run reads from. */
  readonly from: ResumeAt;
  /** `--strict-schema` without `--columns`: the columns an earlier run's first record fixed. */
  readonly strictColumns: string[] | undefined;
  /** Rows this run's commits inserted. */
  inserted = 0;
  readonly #context: Context;
  readonly #table: ProgressTable;
  readonly #skipped: number;
  /** The progress row as this run last committed it (a run that changed it since has taken over). */
  #row: ProgressRow;
  #state: LoadState = { csvHeader: () => undefined, strictColumns: () => undefined };
  /** The commit in flight, if any: giving up waits for it, so that its rejects are settled first. */
  #inflight: Promise<void> | undefined;

  private constructor(context: Context, table: ProgressTable, row: ProgressRow, start: LoadStart) {
    this.#context = context;
    this.#table = table;
    this.#row = row;
    this.start = start;
    this.#skipped = row.records;
    this.from = {
      offset: row.committedOffset,
      line: row.committedLine,
      ...(row.csvHeader === null ? {} : { header: JSON.parse(row.csvHeader) as string[] }),
    };
    this.strictColumns = row.strictColumns === null ? undefined : (JSON.parse(row.strictColumns) as string[]);
  }

  /**
   * Reads the load's progress and takes the load over: a new load, `--restart`, a resumed or grown one;
   * or refuses (the input or the options changed, the rejects file was cut, `--restart` over rows still
   * in the table). A finished load with its input unchanged starts as `finished`: nothing to do.
   */
  static async start(context: Context): Promise<ResumableLoad> {
    const { options, input, sink, rejects } = context;
    const key = { table: options.table, input: input.identity.path };
    const table = sink.progress(key);
    let row: ProgressRow | undefined;
    try {
      row = await table.read();
    } catch (error) {
      if (context.giveUp.aborted) throw error;
      throw new CliError(
        ExitCode.USAGE,
        `cannot create or read the progress table ${PROGRESS_TABLE} of ${sink.target} (--resumable keeps it there): ${describe(error)}`,
        error,
      );
    }
    const loadOptions = optionsKey({
      format: options.format,
      delimiter: options.delimiter,
      columns: options.columns ?? null,
      strictSchema: options.strictSchema,
      maxRecordBytes: options.maxRecordBytes,
    });
    const rejectsFile = resolve(options.rejects);
    const identity = input.identity;

    if (row !== undefined && options.restart) {
      if (row.inserted > 0 && (await table.tableHasRows()))
        throw resumeError(
          'ERR_CLI_RESTART_TABLE_NOT_EMPTY',
          `--restart would load ${options.input} again from its first line, but earlier runs of this load inserted ${fmt(row.inserted)} row(s) into table ${options.table}, which still holds rows: empty the table first (DELETE FROM ${options.table}), or load into another table`,
        );
      if (!(await table.forget(expectedOf(row)))) throw conflictError(key, 'start');
      context.say(
        `--restart: forgot the progress of this load (${fmt(row.records)} record(s) committed over ${fmt(row.runs)} run(s)); reading ${options.input} from its first line`,
      );
      row = undefined;
    }

    if (row === undefined) {
      const time = now();
      const fresh: ProgressRow = {
        ...key,
        inputSize: identity.size,
        inputMtime: identity.mtime,
        headSha256: identity.head,
        tailSha256: identity.tail,
        options: loadOptions,
        rejectsFile,
        committedOffset: 0,
        committedLine: 0,
        records: 0,
        inserted: 0,
        rejected: 0,
        // --rejects-append keeps what the file holds; the load's lines start after it.
        rejectsOffset: options.rejectsAppend ? rejects.measure() : 0,
        csvHeader: null,
        strictColumns: null,
        runs: 1,
        startedAt: time,
        updatedAt: time,
        finishedAt: null,
      };
      if (!(await table.create(fresh))) throw conflictError(key, 'start');
      rejects.truncate(fresh.rejectsOffset);
      return new ResumableLoad(context, table, fresh, options.restart ? 'restarted' : 'new');
    }

    if (row.options !== loadOptions)
      throw resumeError(
        'ERR_CLI_RESUME_OPTIONS_CHANGED',
        `this load of ${options.input} into table ${options.table} was started with ${describeOptions(row.options)}; this run has ${describeOptions(loadOptions)}: give the same options to resume it, or add --restart to load the file again from its first line`,
      );
    if (row.rejectsFile !== rejectsFile)
      throw resumeError(
        'ERR_CLI_RESUME_OPTIONS_CHANGED',
        `this load of ${options.input} into table ${options.table} writes its rejects to ${row.rejectsFile}; this run has --rejects ${options.rejects}: give the same --rejects to resume it (a load keeps its rejects in one file), or add --restart`,
      );
    const verdict = await input.compare(
      { size: row.inputSize, mtime: row.inputMtime, head: row.headSha256, tail: row.tailSha256 },
      row.committedOffset,
    );
    if (verdict.kind === 'changed')
      throw resumeError(
        'ERR_CLI_RESUME_INPUT_CHANGED',
        `${options.input} has changed since this load into table ${options.table} last ran: ${verdict.why}. What ${PROGRESS_TABLE} says was committed may no longer match the file; add --restart to load it again from its first line`,
      );
    if (verdict.kind === 'same' && row.finishedAt !== null) return new ResumableLoad(context, table, row, 'finished');
    if (row.inserted > 0 && !(await table.tableHasRows()))
      throw resumeError(
        'ERR_CLI_RESUME_TABLE_EMPTIED',
        `earlier runs of this load inserted ${fmt(row.inserted)} row(s) into table ${options.table}, which now holds none (emptied or dropped since): resuming would leave them out. Add --restart to load ${options.input} again from its first line`,
      );
    const rejectsSize = rejects.measure();
    if (rejectsSize < row.rejectsOffset)
      throw resumeError(
        'ERR_CLI_RESUME_REJECTS_CHANGED',
        `the rejects file ${options.rejects} holds ${fmt(rejectsSize)} bytes, but this load had written ${fmt(row.rejectsOffset)} to it when it last committed: it was cut short or replaced since, and rows + rejects would no longer add up to the input's records. Put it back, or add --restart`,
      );
    const claim = {
      inputSize: identity.size,
      inputMtime: identity.mtime,
      headSha256: identity.head,
      tailSha256: identity.tail,
      updatedAt: now(),
    };
    if (!(await table.claim(expectedOf(row), claim))) throw conflictError(key, 'start');
    // Lines after the last commit are for records this run reads again.
    rejects.truncate(row.rejectsOffset);
    const claimed = { ...row, ...claim, runs: row.runs + 1, finishedAt: null };
    return new ResumableLoad(context, table, claimed, verdict.kind === 'grown' ? 'grown' : 'resumed');
  }

  /** What later runs need that only the reading knows (set once the stages exist). */
  attach(state: LoadState): void {
    this.#state = state;
  }

  /**
   * Commits one batch of the sluice: its rows, with the progress up to its last record, in one
   * transaction; its parse rejects and the rows the database refused go to the rejects file, synced,
   * inside it. A failed commit takes back what it wrote there.
   */
  async commit(items: Row[], signal: AbortSignal): Promise<void> {
    const rows = items.filter((item) => item.error === undefined);
    const rejects = this.#context.rejects;
    const checkpoint = rejects.checkpoint();
    let advance: Advance | undefined;
    const committing = this.#context.sink.commit({
      rows,
      expected: expectedOf(this.#row),
      settle: (refused) => (advance = this.#settle(items, rows.length, refused, checkpoint, signal)),
    });
    this.#inflight = committing.then(
      () => undefined,
      () => undefined,
    );
    let inserted: number;
    try {
      inserted = await committing;
    } catch (error) {
      // Another run owns the load, and the rejects file, from now on: leave both alone.
      if ((error as { code?: unknown }).code === 'ERR_CLI_RESUME_CONFLICT') rejects.withhold();
      else rejects.rollback(checkpoint);
      throw error;
    } finally {
      this.#inflight = undefined;
    }
    this.#advanced(advance as Advance);
    // A call the sluice gave up on meanwhile has had its rows written as undelivered: not this run's inserts.
    if (!signal.aborted) this.inserted += inserted;
  }

  #settle(
    items: Row[],
    rowCount: number,
    refused: Refusal[],
    checkpoint: ReturnType<RejectsFile['checkpoint']>,
    signal: AbortSignal,
  ): Advance {
    const { rejects, giveUp } = this.#context;
    if (signal.aborted) throw signal.reason;
    if (giveUp.aborted) throw giveUp.reason;
    rejects.rollback(checkpoint); // a transaction tried again (SQLite, after a lock) settles afresh
    const refusedBy = new Map(refused.map((refusal) => [refusal.row, refusal.error]));
    const entries: RejectEntry[] = [];
    for (const item of items) {
      if (item.error !== undefined) entries.push({ stage: 'parse', line: item.line, raw: item.raw, error: item.error });
      else if (refusedBy.has(item))
        entries.push({ stage: 'database', line: item.line, raw: item.raw, error: describe(refusedBy.get(item)) });
    }
    rejects.writeEach(entries);
    if (rejects.failure !== undefined) throw rejects.failure;
    rejects.sync();
    const last = items[items.length - 1] as Row;
    const row = this.#row;
    return {
      committedOffset: last.end as number,
      committedLine: last.last as number,
      records: row.records + items.length,
      inserted: row.inserted + rowCount - refused.length,
      rejected: row.rejected + entries.length,
      rejectsOffset: rejects.size,
      ...this.#known(rowCount > 0),
      updatedAt: now(),
    };
  }

  /** The CSV header and the strict columns, the first time they are known (then NULL: the row keeps them). */
  #known(hasRows: boolean): Pick<Advance, 'csvHeader' | 'strictColumns'> {
    const header = this.#row.csvHeader === null ? this.#state.csvHeader() : undefined;
    // Recorded with a batch that has rows, so that the table exists with its types when a later run reads them.
    const strict = this.#row.strictColumns === null && hasRows ? this.#state.strictColumns() : undefined;
    return {
      csvHeader: header === undefined ? null : JSON.stringify(header),
      strictColumns: strict === undefined ? null : JSON.stringify(strict),
    };
  }

  /** The input is read to its end and every batch committed: the load is finished. */
  async finish(position: { offset: number; line: number }): Promise<void> {
    const rejects = this.#context.rejects;
    rejects.sync();
    const time = now();
    const row = this.#row;
    const advance: Advance = {
      committedOffset: position.offset,
      committedLine: position.line,
      records: row.records,
      inserted: row.inserted,
      rejected: row.rejected,
      rejectsOffset: rejects.size,
      ...this.#known(false),
      updatedAt: time,
      finishedAt: time,
    };
    if (!(await this.#table.advance(expectedOf(row), advance))) {
      rejects.withhold();
      throw conflictError(this.#table.key, 'commit');
    }
    this.#advanced(advance);
  }

  /** The row as committed: NULLs in `advance` left the header and strict columns as they were. */
  #advanced(advance: Advance): void {
    const row = this.#row;
    this.#row = {
      ...row,
      ...advance,
      csvHeader: row.csvHeader ?? advance.csvHeader,
      strictColumns: row.strictColumns ?? advance.strictColumns,
      finishedAt: advance.finishedAt ?? row.finishedAt,
    };
  }

  /** Resolves once no commit is in flight, or after `ms` (a connection that hangs). */
  async settled(ms: number): Promise<void> {
    const inflight = this.#inflight;
    if (inflight === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([inflight, new Promise<void>((done) => (timer = setTimeout(done, ms)))]);
    clearTimeout(timer);
  }

  /** A line for stderr when the run starts, if there is something to say. */
  describeStart(): string | undefined {
    const row = this.#row;
    const counts = `${fmt(row.inserted)} inserted, ${fmt(row.rejected)} rejected`;
    const committed = `${fmt(row.records)} record(s) committed by earlier runs (${counts})`;
    switch (this.start) {
      case 'finished':
        return `${this.#context.options.input} is loaded into table ${this.#context.options.table} already (${fmt(row.records)} record(s): ${counts}; finished ${row.finishedAt}): nothing to do; --restart loads it again`;
      case 'resumed':
        return `resuming at line ${fmt(row.committedLine + 1)} (byte ${fmt(row.committedOffset)}): ${committed} are skipped`;
      case 'grown':
        return `${this.#context.options.input} grew since the last run: loading from line ${fmt(row.committedLine + 1)} (byte ${fmt(row.committedOffset)}); ${committed} are skipped`;
      default:
        return undefined;
    }
  }

  /** Records earlier runs committed, which this run did not read again. */
  get skipped(): number {
    return this.#skipped;
  }

  summary(): ResumeSummary {
    const row = this.#row;
    return {
      start: this.start,
      skipped: this.#skipped,
      fromLine: this.from.line + 1,
      fromOffset: this.from.offset,
      finished: row.finishedAt !== null,
      runs: row.runs,
      total: { records: row.records, inserted: row.inserted, rejected: row.rejected },
    };
  }
}

function expectedOf(row: ProgressRow): Expected {
  return { runs: row.runs, committedOffset: row.committedOffset };
}
