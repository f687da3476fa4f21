/**
 * `--resumable` with SQLite: the progress table's statements on the sink's connection. The batch's
 * own transaction (SqliteSink.commit) uses check() and record() inside it; the rest runs on its own,
 * through the sink's lock wait (`locked`), so that a lock held elsewhere is waited for, not an error.
 */
import { quoteIdent, quoteTable } from '../sinks/sink';
import { PROGRESS_COLUMNS, PROGRESS_TABLE, advanceSet, fromRecord, progressDdl, rowValues } from './progress';
import type { Advance, Expected, LoadKey, ProgressRow, ProgressTable } from './progress';
import type BetterSqlite3 from 'better-sqlite3';

const NAME = quoteIdent(PROGRESS_TABLE);
const KEY = 'target_table = ? AND input = ?';
const EXPECTED = `${KEY} AND runs = ? AND committed_offset = ?`;

export class SqliteProgress implements ProgressTable {
  readonly #db: BetterSqlite3.Database;
  readonly key: LoadKey;
  readonly #locked: <T>(work: () => T) => Promise<T>;
  #check: BetterSqlite3.Statement | undefined;
  #record: BetterSqlite3.Statement | undefined;

  constructor(db: BetterSqlite3.Database, key: LoadKey, locked: <T>(work: () => T) => Promise<T>) {
    this.#db = db;
    this.key = key;
    this.#locked = locked;
  }

  read(): Promise<ProgressRow | undefined> {
    return this.#locked(() => {
      this.#db.exec(progressDdl('sqlite', NAME));
      const record = this.#db
        .prepare(`SELECT ${PROGRESS_COLUMNS.join(', ')} FROM ${NAME} WHERE ${KEY}`)
        .get(this.key.table, this.key.input) as Record<string, unknown> | undefined;
      return record === undefined ? undefined : fromRecord(record);
    });
  }

  create(row: ProgressRow): Promise<boolean> {
    const sql = `INSERT INTO ${NAME} (${PROGRESS_COLUMNS.join(', ')}) VALUES (${PROGRESS_COLUMNS.map(() => '?').join(', ')}) ON CONFLICT (target_table, input) DO NOTHING`;
    return this.#locked(() => this.#db.prepare(sql).run(rowValues(row)).changes === 1);
  }

  claim(
    expected: Expected,
    input: Pick<ProgressRow, 'inputSize' | 'inputMtime' | 'headSha256' | 'tailSha256' | 'updatedAt'>,
  ): Promise<boolean> {
    const sql = `UPDATE ${NAME} SET runs = runs + 1, input_size = ?, input_mtime = ?, input_head_sha256 = ?, input_tail_sha256 = ?, updated_at = ?, finished_at = NULL WHERE ${EXPECTED}`;
    const values = [input.inputSize, input.inputMtime, input.headSha256, input.tailSha256, input.updatedAt];
    return this.#locked(() => this.#db.prepare(sql).run(...values, ...this.#expected(expected)).changes === 1);
  }

  forget(expected: Expected): Promise<boolean> {
    return this.#locked(
      () => this.#db.prepare(`DELETE FROM ${NAME} WHERE ${EXPECTED}`).run(...this.#expected(expected)).changes === 1,
    );
  }

  advance(expected: Expected, advance: Advance): Promise<boolean> {
    return this.#locked(() => this.record(expected, advance));
  }

  tableHasRows(): Promise<boolean> {
    return this.#locked(() => {
      const exists = this.#db.prepare('SELECT 1 FROM pragma_table_list WHERE name = ?').get(this.key.table);
      return (
        exists !== undefined &&
        this.#db.prepare(`SELECT 1 FROM ${quoteTable(this.key.table)} LIMIT 1`).get() !== undefined
      );
    });
  }

  /** In the batch's transaction, first: is the row still as this run left it? (Takes the write lock.) */
  check(expected: Expected): boolean {
    this.#check ??= this.#db.prepare(`UPDATE ${NAME} SET updated_at = updated_at WHERE ${EXPECTED}`);
    return this.#check.run(...this.#expected(expected)).changes === 1;
  }

  /** In the batch's transaction, last (or on its own): records `advance`. */
  record(expected: Expected, advance: Advance): boolean {
    const { set, values } = advanceSet(advance, () => '?');
    this.#record ??= this.#db.prepare(`UPDATE ${NAME} SET ${set} WHERE ${EXPECTED}`);
    return this.#record.run(...values, ...this.#expected(expected)).changes === 1;
  }

  #expected(expected: Expected): (string | number)[] {
    return [this.key.table, this.key.input, expected.runs, expected.committedOffset];
  }
}
