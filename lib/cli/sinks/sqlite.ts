import { CliError, ExitCode, describe, errorCode, loadPeer } from '../errors';
import {
  ADD_HINT,
  EventLoopTurns,
  byIdentity,
  planChanges,
  quoteIdent,
  quoteTable,
  schemaError,
  sleep,
  uniqueIndexName,
} from './sink';
import type { Dialect, Refusal, ResumableBatch, Sink, SinkOptions, TableChanges, TableColumn, TableType } from './sink';
import { conflictError } from '../resume/progress';
import { SqliteProgress } from '../resume/sqlite-progress';
import type { Row } from '../parse';
import type { LoadKey } from '../resume/progress';
import type { Column, ColumnType, Value } from '../schema';
import type BetterSqlite3 from 'better-sqlite3';

/** Errors after which no insert can succeed: the file is gone, full, read-only or not a database. */
const FATAL = /^SQLITE_(IOERR|CORRUPT|NOTADB|FULL|CANTOPEN|READONLY)/;
/** Another connection holds the lock: wait (asynchronously, so signals are heard) and try again. */
const BUSY = /^SQLITE_(BUSY|LOCKED)/;
/**
 * How long batches may run one after another without a turn of the event loop (see EventLoopTurns): a
 * signal or the status line waits about this plus one batch (or a change of the table's shape).
 */
const TURN_EVERY_MS = 20;
/** A string SQLite would turn into a number in an INTEGER or REAL column ("007" → 7). */
const NUMERIC_TEXT = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

const SQL_TYPE: Record<TableType, string> = {
  boolean: 'INTEGER',
  integer: 'INTEGER',
  real: 'REAL',
  text: 'TEXT',
  json: 'TEXT',
  any: '',
  other: '',
};

/**
 * How values are bound, per column. PLAIN: as they are (numbers are bound as
 * doubles; an INTEGER column stores 5.0 as 5), booleans 1/0, objects as JSON.
 * TEXT: numbers and booleans as their text too (a TEXT column would store 5.0 as
 * "5.0"). ANY: integers as BigInt, so that an untyped column stores 5 and not 5.0.
 */
const enum Bind {
  Plain,
  Text,
  Any,
}

/**
 * Plain tables: SQLite stores each value with its own type, so an INTEGER column
 * holds 0.5 and "timeout" as they are; only a string SQLite would read as a number
 * needs a TEXT column (checked per value in insert()). STRICT tables (from
 * --strict-schema or an earlier version) hold only their declared type.
 */
function dialect(strict: boolean): Dialect {
  return {
    // A plain table's column is declared with its first value's type: what batch it was created in does not matter.
    typeFor: (column: Column) => {
      const type = strict ? column.type : column.first;
      return type === 'boolean' ? 'integer' : type === 'json' ? 'text' : type === 'unknown' ? 'any' : type;
    },
    widened: (from: TableType, data: ColumnType) => {
      if (!strict || (from !== 'integer' && from !== 'real')) return from;
      if (data === 'text' || data === 'json') return 'text';
      return data === 'real' ? 'real' : from;
    },
  };
}

/**
 * SQLite through better-sqlite3: one prepared statement, one transaction per
 * batch, WAL. The table follows the schema (docs/cli.md, "Schema evolution").
 * Every statement runs through #locked(), which waits for a lock held by another
 * connection without blocking the event loop, until the run gives up.
 */
export class SqliteSink implements Sink {
  readonly target: string;
  readonly changes: TableChanges = { created: false, added: 0, widened: 0 };
  duplicates = 0;
  readonly #db: BetterSqlite3.Database;
  readonly #options: SinkOptions;
  readonly #name: string;
  /** The table's columns as it has them; undefined until it exists. */
  #columns: TableColumn[] | undefined;
  #strictTable = false;
  /** The schema version the table and statement were last brought in line with. */
  #version = -1;
  /** Per statement parameter: its schema index and how its values are bound. */
  #indexes: number[] = [];
  #binds: Bind[] = [];
  /** Schema indexes of INTEGER/REAL columns of a plain table that have been sent strings. */
  #textChecks: number[] = [];
  #scratch: unknown[] = [];
  #insertMany: ((rows: Row[]) => number) | undefined;
  /** `--resumable`: one row, in the batch's transaction; the load's progress table; the batch's transaction. */
  #insertRow: ((row: Row) => number) | undefined;
  #progress: SqliteProgress | undefined;
  readonly #commitBatch: (batch: ResumableBatch) => number;
  /** `--dedupe`: the unique index on options.uniqueColumn exists (created here or found). */
  #uniqueReady = false;
  /**
   * `--resumable`: better-sqlite3 runs each batch synchronously, and commit() makes the event loop turn when
   * a chain of them has kept it from turning. insert() makes no turns: a plain load's batches run inside
   * the input's own turns, so its buffer holds little more than a chunk whatever the table's speed.
   */
  readonly #turns = new EventLoopTurns(TURN_EVERY_MS);

  private constructor(path: string, db: BetterSqlite3.Database, options: SinkOptions) {
    this.target = `sqlite:${path}`;
    this.#db = db;
    this.#options = options;
    this.#name = quoteTable(options.table);
    this.#commitBatch = db.transaction((batch: ResumableBatch) => this.#commitRows(batch));
  }

  static async open(path: string, options: SinkOptions): Promise<SqliteSink> {
    const Database = loadPeer<typeof BetterSqlite3>('better-sqlite3', 'Writing to SQLite');
    let db: BetterSqlite3.Database | undefined;
    try {
      // A short busy timeout: a lock held elsewhere is waited for in #locked(), between turns of the event loop.
      db = new Database(path, { timeout: 20 });
    } catch (error) {
      throw new CliError(ExitCode.USAGE, `cannot open sqlite:${path}: ${describe(error)}`, error);
    }
    const sink = new SqliteSink(path, db, options);
    try {
      await sink.#locked(() => {
        // WAL: readers are not blocked by the ingest; NORMAL sync is durable at each checkpoint and never corrupts.
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        sink.#readTable();
      });
    } catch (error) {
      db.close();
      if (options.signal.aborted) throw error;
      throw new CliError(ExitCode.USAGE, `cannot open sqlite:${path}: ${describe(error)}`, error);
    }
    return sink;
  }

  async insert(rows: Row[]): Promise<undefined> {
    if (this.#version !== this.#options.schema.version) await this.#sync(false, rows);
    if (this.#textChecks.length > 0) await this.#checkText(rows);
    const inserted = await this.#locked(() => (this.#insertMany as (rows: Row[]) => number)(rows));
    this.duplicates += rows.length - inserted;
    return undefined;
  }

  async finish(): Promise<void> {
    // Nothing was read (an empty input): no column to create a table with.
    if (this.#options.schema.columns.length === 0) return;
    await this.#sync(true, []);
  }

  isFatal(error: unknown): boolean {
    return FATAL.test(errorCode(error));
  }

  /** A lock held elsewhere is waited for in #locked(); whatever else SQLite says will not change by trying again. */
  isTransient(): boolean {
    return false;
  }

  /** Nothing to cancel: a statement runs synchronously, and a wait for a lock ends with the signal. */
  async abort(): Promise<void> {}

  progress(key: LoadKey): SqliteProgress {
    return (this.#progress = new SqliteProgress(this.#db, key, (work) => this.#locked(work)));
  }

  async commit(batch: ResumableBatch): Promise<number> {
    await this.#turns.take();
    const rows = batch.rows;
    if (rows.length > 0) {
      if (this.#version !== this.#options.schema.version) await this.#sync(false, rows);
      if (this.#textChecks.length > 0) await this.#checkText(rows);
    }
    return this.#locked(() => this.#commitBatch(batch));
  }

  /**
   * Inside the batch's transaction. A statement SQLite refuses (a constraint, a type in a STRICT table)
   * is undone alone and the transaction goes on (SQLite's ABORT), so a refused row costs one statement,
   * not a bisection; an error that ends the transaction (I/O, a full disk, a lock) fails the batch.
   */
  #commitRows(batch: ResumableBatch): number {
    const progress = this.#progress as SqliteProgress;
    if (!progress.check(batch.expected)) throw conflictError(progress.key, 'commit');
    const refused: Refusal[] = [];
    const insert = this.#insertRow as (row: Row) => number;
    for (const row of batch.rows) {
      try {
        insert(row);
      } catch (error) {
        const code = errorCode(error);
        if (FATAL.test(code) || BUSY.test(code) || !this.#db.inTransaction) throw error;
        refused.push({ row, error });
      }
    }
    // The row is locked by check() for this transaction: recording cannot miss it.
    progress.record(batch.expected, batch.settle(refused));
    return batch.rows.length - refused.length;
  }

  async count(): Promise<number> {
    return (this.#db.prepare(`SELECT count(*) AS n FROM ${this.#name}`).get() as { n: number }).n;
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  /** Runs `work`, waiting and trying again while another connection holds the lock. */
  async #locked<T>(work: () => T): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (this.#options.signal.aborted) throw this.#options.signal.reason;
      try {
        return work();
      } catch (error) {
        if (!BUSY.test(errorCode(error))) throw error;
      }
      await sleep(Math.min(200, 5 * 2 ** attempt), this.#options.signal);
    }
  }

  #readTable(): void {
    const table = this.#options.table;
    const info = this.#db.prepare('SELECT strict FROM pragma_table_list WHERE name = ?').get(table) as
      { strict: number } | undefined;
    if (info === undefined) return;
    this.#strictTable = info.strict === 1;
    const columns = this.#db.prepare('SELECT name, type FROM pragma_table_info(?)').all(table) as {
      name: string;
      type: string;
    }[];
    this.#columns = columns.map(({ name, type }) => ({ name, type: tableType(type, this.#strictTable) }));
  }

  /**
   * Brings the table in line with the schema; `final`: also creates the columns that only held null.
   * `rows`, the batch about to go in, tells a new table which columns already need to be TEXT.
   */
  async #sync(final: boolean, rows: Row[]): Promise<void> {
    const { schema, table } = this.#options;
    const version = schema.version;
    if (this.#columns === undefined) await this.#create(final, rows);
    const existing = byIdentity(this.#columns as TableColumn[], schema);
    const plan = planChanges(schema, existing, dialect(this.#strictTable), {
      strict: schema.strict,
      tableName: table,
      target: this.target,
      nullType: final ? 'any' : undefined,
    });
    for (const { index, type } of plan.add) {
      const name = (schema.columns[index] as { name: string }).name;
      try {
        await this.#locked(() =>
          this.#db.exec(`ALTER TABLE ${this.#name} ADD COLUMN ${quoteIdent(name)} ${sqlType(type, this.#strictTable)}`),
        );
      } catch (error) {
        if (this.#options.signal.aborted) throw error;
        throw schemaError(
          `cannot add column ${name} to table ${table} of ${this.target}: ${describe(error)}${ADD_HINT}`,
          error,
        );
      }
      (this.#columns as TableColumn[]).push({ name, type });
      this.changes.added++;
    }
    for (const { column, to } of plan.widen) await this.#widen(column, to);
    await this.#ensureUnique();
    this.#prepareInsert();
    this.#version = version;
  }

  async #create(final: boolean, rows: Row[]): Promise<void> {
    const { schema } = this.#options;
    // Columns only ever null wait for a typed value, unless nothing else can make the table.
    let columns = schema.columns.filter((column) => column.type !== 'unknown' || schema.strict || final);
    if (columns.length === 0) columns = schema.columns;
    const strict = schema.strict;
    const kinds = dialect(strict);
    const defs = columns.map((c) => {
      const type = kinds.typeFor(c);
      const numeric = type === 'integer' || type === 'real';
      // What #checkText would do at once to the empty table, without moving the column to the end.
      const text = numeric && !strict && holdsNumericText(rows, schema.columns.indexOf(c));
      return { name: c.name, type: text ? ('text' as const) : type };
    });
    const sql = `CREATE TABLE ${this.#name} (${defs.map((d) => `${quoteIdent(d.name)} ${sqlType(d.type, strict)}`.trimEnd()).join(', ')})${strict ? ' STRICT' : ''}`;
    try {
      await this.#locked(() => this.#db.exec(sql));
    } catch (error) {
      if (this.#options.signal.aborted) throw error;
      throw schemaError(
        `cannot create table ${this.#options.table} of ${this.target}: ${describe(error)}${ADD_HINT}`,
        error,
      );
    }
    this.#strictTable = strict;
    this.#columns = defs;
    this.changes.created = true;
  }

  /**
   * SQLite cannot change a column's type: the column is rebuilt under the same
   * name (at the end of the table) with its values converted, in one transaction.
   * If SQLite refuses (the column is indexed, or part of a key or a view), the
   * column stays as it is and its values are bound as they come.
   */
  async #widen(column: TableColumn, to: TableType): Promise<void> {
    const { table } = this.#options;
    const type = sqlType(to, this.#strictTable);
    const old = quoteIdent(`${column.name}__sluice_widening`);
    const name = quoteIdent(column.name);
    const value = to === 'text' ? `CAST(${old} AS TEXT)` : old;
    const steps = [
      `ALTER TABLE ${this.#name} RENAME COLUMN ${name} TO ${old}`,
      `ALTER TABLE ${this.#name} ADD COLUMN ${name} ${type}`,
      `UPDATE ${this.#name} SET ${name} = ${value}`,
      `ALTER TABLE ${this.#name} DROP COLUMN ${old}`,
    ];
    try {
      await this.#locked(() => this.#db.transaction(() => steps.forEach((sql) => this.#db.exec(sql)))());
      column.type = to;
      this.changes.widened++;
    } catch (error) {
      if (this.#options.signal.aborted) throw error;
      this.#options.warn(
        `cannot make column ${column.name} of table ${table} ${type}: ${describe(error)}; its values are stored as SQLite converts them`,
      );
      column.type = 'other';
    }
  }

  /** `--dedupe`: a unique index on the id column, once the table has it; a table whose ids repeat cannot get one. */
  async #ensureUnique(): Promise<void> {
    const { uniqueColumn, schema, table } = this.#options;
    if (uniqueColumn === undefined || this.#uniqueReady) return;
    if (!(this.#columns as TableColumn[]).some((c) => schema.identity(c.name) === schema.identity(uniqueColumn)))
      return;
    const sql = `CREATE UNIQUE INDEX IF NOT EXISTS ${quoteIdent(uniqueIndexName(table, uniqueColumn))} ON ${this.#name} (${quoteIdent(uniqueColumn)})`;
    try {
      await this.#locked(() => this.#db.exec(sql));
    } catch (error) {
      if (this.#options.signal.aborted) throw error;
      throw schemaError(
        `cannot make column ${uniqueColumn} of table ${table} unique (--dedupe): ${describe(error)}`,
        error,
      );
    }
    this.#uniqueReady = true;
  }

  #prepareInsert(): void {
    const { schema } = this.#options;
    const existing = byIdentity(this.#columns as TableColumn[], schema);
    this.#indexes = [];
    this.#binds = [];
    this.#textChecks = [];
    const names: string[] = [];
    schema.columns.forEach((column, index) => {
      const target = existing.get(schema.identity(column.name));
      if (target === undefined) return; // only nulls so far
      names.push(quoteIdent(column.name));
      this.#indexes.push(index);
      this.#binds.push(target.type === 'text' ? Bind.Text : target.type === 'any' ? Bind.Any : Bind.Plain);
      const numeric = target.type === 'integer' || target.type === 'real';
      if (numeric && !this.#strictTable && (column.type === 'text' || column.type === 'json'))
        this.#textChecks.push(index);
    });
    this.#scratch = new Array<unknown>(names.length);
    const unique = this.#uniqueReady
      ? ` ON CONFLICT (${quoteIdent(this.#options.uniqueColumn as string)}) DO NOTHING`
      : '';
    const statement = this.#db.prepare(
      `INSERT INTO ${this.#name} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})${unique}`,
    );
    const indexes = this.#indexes;
    const binds = this.#binds;
    const scratch = this.#scratch;
    this.#insertRow = (row: Row) => {
      const values = row.values;
      for (let k = 0; k < indexes.length; k++) scratch[k] = bind(values[indexes[k] as number], binds[k] as Bind);
      return statement.run(scratch).changes;
    };
    this.#insertMany = this.#db.transaction((rows: Row[]) => {
      let inserted = 0;
      for (const row of rows) {
        const values = row.values;
        for (let k = 0; k < indexes.length; k++) scratch[k] = bind(values[indexes[k] as number], binds[k] as Bind);
        inserted += statement.run(scratch).changes;
      }
      // Counted once the transaction commits (a rolled-back batch skipped nothing).
      return inserted;
    });
  }

  /** A string that SQLite would read as a number is about to go into an INTEGER/REAL column: make it TEXT first. */
  async #checkText(rows: Row[]): Promise<void> {
    const columns = byIdentity(this.#columns as TableColumn[], this.#options.schema);
    let changed = false;
    for (const index of this.#textChecks) {
      const name = (this.#options.schema.columns[index] as { name: string }).name;
      if (!holdsNumericText(rows, index)) continue;
      await this.#widen(columns.get(this.#options.schema.identity(name)) as TableColumn, 'text');
      changed = true;
    }
    if (changed) this.#prepareInsert();
  }
}

/** Does a row have, at `index`, a string SQLite would store as a number in an INTEGER/REAL column? */
function holdsNumericText(rows: Row[], index: number): boolean {
  return rows.some((row) => {
    const value = row.values[index];
    return typeof value === 'string' && NUMERIC_TEXT.test(value);
  });
}

function bind(value: Value, how: Bind): unknown {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      return how === Bind.Plain
        ? value
        : how === Bind.Text
          ? String(value)
          : Number.isSafeInteger(value)
            ? BigInt(value)
            : value;
    case 'boolean':
      return how === Bind.Text ? (value ? '1' : '0') : value ? 1 : 0;
    case 'object':
      return value === null ? null : JSON.stringify(value);
    default:
      return null;
  }
}

/** The SQL type of a new column; STRICT tables need one of theirs. */
function sqlType(type: TableType, strict: boolean): string {
  const sql = SQL_TYPE[type];
  return strict && sql === '' ? 'ANY' : sql;
}

/** A declared type read with SQLite's affinity rules (plain tables) or as a STRICT type. */
function tableType(declared: string, strict: boolean): TableType {
  const type = declared.toUpperCase();
  if (strict) {
    if (type === 'INT' || type === 'INTEGER') return 'integer';
    if (type === 'REAL') return 'real';
    if (type === 'TEXT') return 'text';
    return type === 'ANY' ? 'any' : 'other';
  }
  if (type.includes('INT')) return 'integer';
  if (/CHAR|CLOB|TEXT/.test(type)) return 'text';
  if (type === '' || type.includes('BLOB')) return 'any';
  if (/REAL|FLOA|DOUB/.test(type)) return 'real';
  return 'other';
}
