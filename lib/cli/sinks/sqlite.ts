import { CliError, ExitCode, describe, errorCode, loadPeer } from '../errors';
import { quoteIdent, quoteTable } from './sink';
import type { Sink } from './sink';
import type { Column, ColumnType, Row } from '../parse';
import type BetterSqlite3 from 'better-sqlite3';

const SQLITE_TYPES: Record<ColumnType, string> = {
  integer: 'INTEGER',
  real: 'REAL',
  boolean: 'INTEGER',
  text: 'TEXT',
  json: 'TEXT',
  unknown: 'ANY',
};

/** Errors after which no insert can succeed: the file is gone, full, read-only or not a database. */
const FATAL = /^SQLITE_(IOERR|CORRUPT|NOTADB|FULL|CANTOPEN|READONLY)/;

/**
 * SQLite through better-sqlite3: one prepared statement, one transaction per
 * batch, WAL. Tables the CLI creates are STRICT, so a value of the wrong type
 * is refused (and isolated into the rejects file) as PostgreSQL would.
 */
export class SqliteSink implements Sink {
  readonly target: string;
  readonly #db: BetterSqlite3.Database;
  #insertMany: ((rows: Row[]) => void) | undefined;

  private constructor(path: string, db: BetterSqlite3.Database) {
    this.target = `sqlite:${path}`;
    this.#db = db;
  }

  static open(path: string): SqliteSink {
    const Database = loadPeer<typeof BetterSqlite3>('better-sqlite3', '>=12 <13', 'Writing to SQLite');
    let db: BetterSqlite3.Database | undefined;
    try {
      db = new Database(path);
      // WAL: readers are not blocked by the ingest; NORMAL sync is durable at each checkpoint and never corrupts.
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    } catch (error) {
      db?.close();
      throw new CliError(ExitCode.USAGE, `cannot open sqlite:${path}: ${describe(error)}`, error);
    }
    return new SqliteSink(path, db);
  }

  async prepare(table: string, columns: Column[]): Promise<void> {
    const name = quoteTable(table);
    try {
      const exists =
        this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
      if (!exists) {
        const defs = columns.map((c) => `${quoteIdent(c.name)} ${SQLITE_TYPES[c.type]}`).join(', ');
        this.#db.exec(`CREATE TABLE ${name} (${defs}) STRICT`);
      }
      const statement = this.#db.prepare(
        `INSERT INTO ${name} (${columns.map((c) => quoteIdent(c.name)).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
      );
      this.#insertMany = this.#db.transaction((rows: Row[]) => {
        for (const row of rows) statement.run(row.values);
      });
    } catch (error) {
      throw new CliError(
        ExitCode.USAGE,
        `cannot insert into table ${table} of ${this.target}: ${describe(error)}`,
        error,
      );
    }
  }

  insert(rows: Row[]): void {
    if (this.#insertMany === undefined) throw new Error('SqliteSink.insert() before prepare()');
    this.#insertMany(rows);
  }

  isFatal(error: unknown): boolean {
    return FATAL.test(errorCode(error));
  }

  /** Nothing to do: an insert is synchronous, so none is ever in flight when the run gives up. */
  async abort(): Promise<void> {}

  async count(table: string): Promise<number> {
    return (this.#db.prepare(`SELECT count(*) AS n FROM ${quoteTable(table)}`).get() as { n: number }).n;
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
