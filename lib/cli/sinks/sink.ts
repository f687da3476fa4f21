import { CliError, ExitCode } from '../errors';
import type { FlushResult } from '../../index';
import type { Row } from '../parse';
import type { Advance, Expected, LoadKey, ProgressTable } from '../resume/progress';
import type { Column, ColumnType, Schema } from '../schema';

/** A database the CLI inserts rows into. */
export interface Sink {
  /** The target as shown to the user (no password). */
  readonly target: string;
  /** What the run did to the table's shape, for the summary. */
  readonly changes: TableChanges;
  /** Rows not inserted because their `uniqueColumn` value was in the table already (`--dedupe`). */
  readonly duplicates: number;
  /**
   * Brings the table in line with the schema first (creates it, adds columns,
   * widens types: cheap when the schema has not changed), then inserts the rows:
   * all or none (one transaction), throwing what the database said; or, when the
   * database names the row it refused, the others, resolving a FlushResult that
   * lists the refused ones (the sluice isolates those further).
   */
  insert(rows: Row[]): Promise<FlushResult<Row> | undefined>;
  /** The run is over and went well: columns that only ever held null are created now (untyped or TEXT). */
  finish(): Promise<void>;
  /** True when `error` means the database is gone for good, so retrying more rows is pointless. */
  isFatal(error: unknown): boolean;
  /** True when the same statement may succeed if tried again (a deadlock, a lock timeout), unlike a refused row. */
  isTransient(error: unknown): boolean;
  /**
   * The run gave up on what is in flight (its rows are in the rejects file): make sure a
   * statement still running does not commit them after all.
   */
  abort(): Promise<void>;
  close(): Promise<void>;
  /** `--resumable`: the progress table of the load `key`, on this connection (commit() records into it). */
  progress(key: LoadKey): ProgressTable;
  /**
   * `--resumable`: one transaction that first checks the progress row is still `batch.expected` (else a
   * ERR_CLI_RESUME_CONFLICT error: another run has taken the load over), inserts the rows, isolating
   * those the database refuses inside it (the others stay in), calls `batch.settle` with the refused
   * ones, records the progress it returns, and commits. Resolves to the number of rows inserted.
   */
  commit(batch: ResumableBatch): Promise<number>;
}

/** A row the database refused inside a resumable batch's transaction, and what it said. */
export interface Refusal {
  row: Row;
  error: unknown;
}

/** `--resumable`: one batch, committed in one transaction with the load's progress. */
export interface ResumableBatch {
  rows: Row[];
  /** The progress row as this run last committed it. */
  expected: Expected;
  /**
   * Called in the transaction once the rows are in, before it commits: writes the batch's rejects and
   * makes them durable, and returns the progress to record. Throwing rolls the transaction back.
   */
  settle(refused: Refusal[]): Advance;
}

export interface TableChanges {
  created: boolean;
  added: number;
  widened: number;
}

/** What a sink needs besides its target. */
export interface SinkOptions {
  table: string;
  schema: Schema;
  /** Aborted when the run gives up: waits (a lock, a connection) end at once. */
  signal: AbortSignal;
  /** One line on stderr, for what the user should know but that does not stop the run. */
  warn(message: string): void;
  /**
   * `--dedupe`: a column given a unique index once the table has it; a row whose value is in the
   * table already is skipped (`ON CONFLICT (column) DO NOTHING`) and counted in `duplicates`.
   */
  uniqueColumn?: string;
}

/** The name of the unique index on `column` of `table` (unqualified: it lives in the table's schema). */
export function uniqueIndexName(table: string, column: string): string {
  return `${table.split('.').pop() as string}_${column}_sluice_key`;
}

/**
 * A column type as the table has it, in the terms the CLI reasons in. `any`: a
 * SQLite column without a type, which stores every value as it is. `other`: a
 * type the CLI does not manage (a date, a UUID, NUMERIC in SQLite...): values are
 * passed as they are and the database converts or refuses them.
 */
export type TableType = 'boolean' | 'integer' | 'real' | 'text' | 'json' | 'any' | 'other';

export interface TableColumn {
  name: string;
  type: TableType;
}

/**
 * The schema error that stops a run (exit 2): the table lacks a column under
 * --strict-schema, or one cannot be added.
 */
export function schemaError(message: string, cause?: unknown): CliError {
  return new CliError(ExitCode.USAGE, message, cause);
}

/** Said when a column cannot be added: how to keep the columns as they are. */
export const ADD_HINT = ' (--columns or --strict-schema keep the columns the table has)';

/** The table's columns by identity (SQLite ignores case, PostgreSQL truncates to 63 bytes). */
export function byIdentity(columns: TableColumn[], schema: Schema): Map<string, TableColumn> {
  return new Map(columns.map((column) => [schema.identity(column.name), column]));
}

/** What a target does with a schema: the types it gives new columns and what its columns hold. */
export interface Dialect {
  /** The table type of a new column. */
  typeFor(column: Column): TableType;
  /** The table type a column of type `from` must become to hold values of type `data`, or `from` if it holds them. */
  widened(from: TableType, data: ColumnType): TableType;
}

/** The changes that bring a table in line with the schema. */
export interface Plan {
  /** Schema indexes of the columns to add, with their types. */
  add: { index: number; type: TableType }[];
  /** Existing columns to widen. */
  widen: { index: number; column: TableColumn; to: TableType }[];
}

/**
 * Compares the schema with the table's columns. Columns only ever null (`unknown`)
 * wait for a typed value, or for the end of the run: then (`nullType` given) they are
 * added with that type, after the others; under --strict-schema nothing is added or
 * widened, and a missing column is an error.
 */
export function planChanges(
  schema: Schema,
  columns: Map<string, TableColumn>,
  dialect: Dialect,
  options: { strict: boolean; tableName: string; target: string; nullType?: TableType | undefined },
): Plan {
  const plan: Plan = { add: [], widen: [] };
  const onlyNull: Plan['add'] = [];
  schema.columns.forEach((column, index) => {
    const existing = columns.get(schema.identity(column.name));
    if (existing === undefined) {
      if (options.strict)
        throw schemaError(
          `table ${options.tableName} of ${options.target} has no column named ${column.name} (--strict-schema adds no columns)`,
        );
      if (column.type !== 'unknown') plan.add.push({ index, type: dialect.typeFor(column) });
      else if (options.nullType !== undefined) onlyNull.push({ index, type: options.nullType });
      return;
    }
    if (options.strict || !schema.typed) return;
    const to = dialect.widened(existing.type, column.type);
    if (to !== existing.type) plan.widen.push({ index, column: existing, to });
  });
  plan.add.push(...onlyNull);
  return plan;
}

/** Double-quotes an SQL identifier (both SQLite and PostgreSQL); `schema.table` quotes each part. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteTable(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}

/**
 * When a sink whose statements run synchronously (SQLite) makes the event loop turn: before a batch, once
 * the batches run since the loop last turned have taken `everyMs`.
 *
 * Batches chain through promises while the buffer holds more than one (a small file is a single chunk of
 * input), so without a turn a signal, the `--shutdown-timeout` deadline and the status line would wait
 * until the chain ends (seconds, on a slow table). A turn before every batch is too many: each lets the
 * input read another chunk (256 KiB, often more rows than a batch) for the one batch committed, so a
 * sluice whose sink was faster than its input still filled to its critical count and stayed there. So
 * the turns the loop takes on its own, between the input's chunks, are watched for (one `setImmediate`
 * at a time after a batch), and the first batch after one starts a new stretch. A sink slower than its
 * input (every batch longer than `everyMs`) fills the buffer all the same, as it should.
 */
export class EventLoopTurns {
  /** When the current stretch of batches without a turn of the loop began, on `now`'s clock. */
  #since = 0;
  /** The loop has turned since the last batch: the next one starts a new stretch. */
  #turned = true;
  /** A `setImmediate` is waiting to see the loop's next turn. */
  #watching = false;

  constructor(
    readonly everyMs: number,
    readonly now: () => number = () => performance.now(),
  ) {}

  /** Before a batch: resolves after a turn of the event loop if one is due, else in a microtask. */
  async take(): Promise<void> {
    const now = this.now();
    if (this.#turned) {
      this.#turned = false;
      this.#since = now;
    } else if (now - this.#since >= this.everyMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      // The watcher saw this turn too: the stretch it ends is accounted for, the next one starts now.
      this.#turned = false;
      this.#since = this.now();
    }
    this.#watch();
  }

  /** Sees the loop's next turn, whoever causes it (the input's next read, a timer, another sink call). */
  #watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    setImmediate(() => {
      this.#watching = false;
      this.#turned = true;
    });
  }
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
