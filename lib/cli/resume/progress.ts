/**
 * `--resumable`: the progress table, `sluice_progress`, as the CLI reads and writes it in either
 * database (docs/cli.md, "Resumable loads", has its schema). One row per load, keyed by the target
 * table and the input's real path; each batch's transaction moves it forward together with the rows.
 * The SQL lives with each sink (sqlite-progress.ts, pg-progress.ts); the decisions in load.ts.
 */
import { CliError, ExitCode } from '../errors';

/** The table's name; in PostgreSQL, in the schema of the target table. */
export const PROGRESS_TABLE = 'sluice_progress';

/** The columns and their types in SQLite and PostgreSQL (docs/cli.md lists them), and the row's field for each. */
const COLUMNS = [
  ['target_table', 'TEXT NOT NULL', 'TEXT NOT NULL', 'table'],
  ['input', 'TEXT NOT NULL', 'TEXT NOT NULL', 'input'],
  ['input_size', 'INTEGER NOT NULL', 'BIGINT NOT NULL', 'inputSize'],
  ['input_mtime', 'TEXT NOT NULL', 'TEXT NOT NULL', 'inputMtime'],
  ['input_head_sha256', 'TEXT NOT NULL', 'TEXT NOT NULL', 'headSha256'],
  ['input_tail_sha256', 'TEXT NOT NULL', 'TEXT NOT NULL', 'tailSha256'],
  ['options', 'TEXT NOT NULL', 'TEXT NOT NULL', 'options'],
  ['rejects_file', 'TEXT NOT NULL', 'TEXT NOT NULL', 'rejectsFile'],
  ['committed_offset', 'INTEGER NOT NULL', 'BIGINT NOT NULL', 'committedOffset'],
  ['committed_line', 'INTEGER NOT NULL', 'BIGINT NOT NULL', 'committedLine'],
  ['records', 'INTEGER NOT NULL', 'BIGINT NOT NULL', 'records'],
  ['inserted', 'INTEGER NOT NULL', 'BIGINT NOT NULL', 'inserted'],
  ['rejected', 'INTEGER NOT NULL', 'BIGINT NOT NULL', 'rejected'],
  ['rejects_offset', 'INTEGER NOT NULL', 'BIGINT NOT NULL', 'rejectsOffset'],
  ['csv_header', 'TEXT', 'TEXT', 'csvHeader'],
  ['strict_columns', 'TEXT', 'TEXT', 'strictColumns'],
  ['runs', 'INTEGER NOT NULL', 'INTEGER NOT NULL', 'runs'],
  ['started_at', 'TEXT NOT NULL', 'TIMESTAMPTZ NOT NULL', 'startedAt'],
  ['updated_at', 'TEXT NOT NULL', 'TIMESTAMPTZ NOT NULL', 'updatedAt'],
  ['finished_at', 'TEXT', 'TIMESTAMPTZ', 'finishedAt'],
] as const satisfies readonly (readonly [string, string, string, keyof ProgressRow])[];

/** The progress table's column names, in order. */
export const PROGRESS_COLUMNS: readonly string[] = COLUMNS.map(([name]) => name);

/** `CREATE TABLE IF NOT EXISTS` for `name` (quoted, maybe schema-qualified). */
export function progressDdl(dialect: 'sqlite' | 'postgres', name: string): string {
  const defs = COLUMNS.map(([column, sqlite, pg]) => `${column} ${dialect === 'sqlite' ? sqlite : pg}`);
  return `CREATE TABLE IF NOT EXISTS ${name} (${defs.join(', ')}, PRIMARY KEY (target_table, input))`;
}

/** The row's values in column order, for an INSERT. */
export function rowValues(row: ProgressRow): (string | number | null)[] {
  return COLUMNS.map(([, , , field]) => row[field]);
}

/** A row as a driver returns it (PostgreSQL's BIGINTs as strings, timestamps as text) into a ProgressRow. */
export function fromRecord(record: Record<string, unknown>): ProgressRow {
  const row: Record<string, string | number | null> = {};
  for (const [column, sqlite, , field] of COLUMNS) {
    const value = record[column];
    if (value === null || value === undefined) row[field] = null;
    else
      row[field] = sqlite.startsWith('INTEGER')
        ? Number(value)
        : typeof value === 'string'
          ? value
          : JSON.stringify(value);
  }
  return row as unknown as ProgressRow;
}

/**
 * The SET list and values of an UPDATE that records `advance`; `param` writes each value's place
 * (a placeholder for the n-th value, 1-based, or the value as a literal).
 */
export function advanceSet(
  advance: Advance,
  param: (n: number, value: string | number | null) => string,
): { set: string; values: (string | number | null)[] } {
  const pairs: [string, string | number | null][] = [
    ['committed_offset', advance.committedOffset],
    ['committed_line', advance.committedLine],
    ['records', advance.records],
    ['inserted', advance.inserted],
    ['rejected', advance.rejected],
    ['rejects_offset', advance.rejectsOffset],
    ['csv_header', advance.csvHeader],
    ['strict_columns', advance.strictColumns],
    ['updated_at', advance.updatedAt],
    ['finished_at', advance.finishedAt ?? null],
  ];
  const set = pairs
    .map(([column, value], i) =>
      column === 'csv_header' || column === 'strict_columns'
        ? `${column} = COALESCE(${column}, ${param(i + 1, value)})`
        : `${column} = ${param(i + 1, value)}`,
    )
    .join(', ');
  return { set, values: pairs.map(([, value]) => value) };
}

/** One load's row. */
export interface ProgressRow {
  table: string;
  /** The input's real path. */
  input: string;
  /** The input when the last run started: size, mtime, SHA-256 of its first and last 64 KiB. */
  inputSize: number;
  inputMtime: string;
  headSha256: string;
  tailSha256: string;
  /** The options that decide what a line becomes (JSON, see optionsKey()). */
  options: string;
  /** The rejects file's absolute path. */
  rejectsFile: string;
  /** Every record before this byte offset is committed: a row in the table or a line in the rejects file. */
  committedOffset: number;
  /** Physical lines before committedOffset. */
  committedLine: number;
  /** Records (non-blank lines; CSV records) before committedOffset: inserted + rejected. */
  records: number;
  inserted: number;
  rejected: number;
  /** The rejects file's length when the last batch committed: lines after it are for records not committed. */
  rejectsOffset: number;
  /** CSV: the header (JSON array), for runs that start past it. */
  csvHeader: string | null;
  /** --strict-schema without --columns: the columns the first record fixed (JSON array). */
  strictColumns: string | null;
  /** Runs of this load so far; each run takes the load over by incrementing it. */
  runs: number;
  startedAt: string;
  updatedAt: string;
  /** Set when a run read the input to its end; cleared when a later run finds the file grown. */
  finishedAt: string | null;
}

/**
 * What a commit of a batch (or the end of the input) records: those fields of the row. `csvHeader` and
 * `strictColumns` are set once (the first commit that knows them records them; NULL stays NULL
 * otherwise); `finishedAt` only when the input is read to its end.
 */
export type Advance = Pick<
  ProgressRow,
  | 'committedOffset'
  | 'committedLine'
  | 'records'
  | 'inserted'
  | 'rejected'
  | 'rejectsOffset'
  | 'csvHeader'
  | 'strictColumns'
  | 'updatedAt'
> & { finishedAt?: string };

/** The row as this run last saw it: a change means another run took the load over. */
export interface Expected {
  runs: number;
  committedOffset: number;
}

/** The progress table of one load, on the sink's connection (outside the batches' transactions). */
export interface ProgressTable {
  readonly key: LoadKey;
  /** Creates the table if it does not exist, and reads this load's row. */
  read(): Promise<ProgressRow | undefined>;
  /** A new load: inserts its row; false if another run inserted one meanwhile. */
  create(row: ProgressRow): Promise<boolean>;
  /** This run takes the load over: `runs + 1` and the input as it is now, if the row is still `expected`. */
  claim(
    expected: Expected,
    input: Pick<ProgressRow, 'inputSize' | 'inputMtime' | 'headSha256' | 'tailSha256' | 'updatedAt'>,
  ): Promise<boolean>;
  /** `--restart`: deletes the row, if it is still `expected`. */
  forget(expected: Expected): Promise<boolean>;
  /** Records `advance` (the end of the input, finishedAt) outside a batch, if the row is still `expected`. */
  advance(expected: Expected, advance: Advance): Promise<boolean>;
  /** Whether the target table exists and holds a row. */
  tableHasRows(): Promise<boolean>;
}

/** Which load a progress row is: the target table, as given to --table, and the input's real path. */
export interface LoadKey {
  table: string;
  input: string;
}

/** The options that decide what each line of the input becomes; a resumed run must have the same. */
export interface LoadOptions {
  format: string;
  delimiter: string;
  columns: string[] | null;
  strictSchema: boolean;
  maxRecordBytes: number;
}

export function optionsKey(options: LoadOptions): string {
  return JSON.stringify({
    format: options.format,
    delimiter: options.delimiter,
    columns: options.columns,
    strictSchema: options.strictSchema,
    maxRecordBytes: options.maxRecordBytes,
  });
}

/** The flags that stand for `options`, for messages. */
export function describeOptions(key: string): string {
  const o = JSON.parse(key) as LoadOptions;
  return [
    `--format ${o.format}${o.format === 'csv' && o.delimiter === '\t' ? ' (tab-separated)' : ''}`,
    ...(o.columns === null ? [] : [`--columns ${o.columns.join(',')}`]),
    ...(o.strictSchema ? ['--strict-schema'] : []),
    `--max-record-bytes ${o.maxRecordBytes}`,
  ].join(' ');
}

/** Errors of resumable loads, each with its own code (docs/cli.md, "Resumable loads"). */
export type ResumeCode =
  | 'ERR_CLI_RESUME_INPUT_CHANGED'
  | 'ERR_CLI_RESUME_OPTIONS_CHANGED'
  | 'ERR_CLI_RESUME_REJECTS_CHANGED'
  | 'ERR_CLI_RESUME_TABLE_EMPTIED'
  | 'ERR_CLI_RESUME_CONFLICT'
  | 'ERR_CLI_RESTART_TABLE_NOT_EMPTY';

export function resumeError(code: ResumeCode, message: string, exitCode: number = ExitCode.USAGE): CliError {
  return new CliError(exitCode, message, undefined, code);
}

/** Another run changed the progress row: it has taken the load over (or is running it). */
export function conflictError(key: LoadKey, when: 'start' | 'commit'): CliError {
  return when === 'start'
    ? resumeError(
        'ERR_CLI_RESUME_CONFLICT',
        `another run of sluice is loading ${key.input} into table ${key.table} (its progress moved while this run started): one run at a time`,
      )
    : resumeError(
        'ERR_CLI_RESUME_CONFLICT',
        `another run of sluice has taken over the load of ${key.input} into table ${key.table}: this run stopped; what it committed stays, the other run loads the rest`,
        ExitCode.FAILED,
      );
}

/** The current time for the progress table: ISO 8601 (PostgreSQL reads it into TIMESTAMPTZ). */
export function now(): string {
  return new Date().toISOString();
}
