/**
 * `--resumable` with PostgreSQL: the progress table's statements on the sink's connection. The table
 * lives in the target table's schema (`app.sluice_progress` for `--table app.events`). A batch's
 * transaction (PostgresSink.commit) sends check() with BEGIN and record() with COMMIT, as literals,
 * so that the progress costs no round trip of its own.
 */
import { errorCode } from '../errors';
import { quoteIdent, quoteTable } from '../sinks/sink';
import { PROGRESS_COLUMNS, PROGRESS_TABLE, advanceSet, fromRecord, progressDdl, rowValues } from './progress';
import type { Advance, Expected, LoadKey, ProgressRow, ProgressTable } from './progress';
import type * as Pg from 'pg';

/** Another session created the table (or its type) at the same moment: it exists now, which is all we asked. */
const CREATED_MEANWHILE = /^(23505|42P07)$/;

const TIMESTAMPS = new Set(['started_at', 'updated_at', 'finished_at']);

export class PgProgress implements ProgressTable {
  readonly #client: Pg.Client;
  readonly key: LoadKey;
  /** The progress table, quoted, in the target table's schema. */
  readonly #name: string;

  constructor(client: Pg.Client, key: LoadKey) {
    this.#client = client;
    this.key = key;
    const dot = key.table.lastIndexOf('.');
    this.#name =
      dot === -1 ? quoteIdent(PROGRESS_TABLE) : `${quoteIdent(key.table.slice(0, dot))}.${quoteIdent(PROGRESS_TABLE)}`;
  }

  async read(): Promise<ProgressRow | undefined> {
    try {
      await this.#client.query(progressDdl('postgres', this.#name));
    } catch (error) {
      if (!CREATED_MEANWHILE.test(errorCode(error))) throw error;
    }
    // Timestamps as ISO 8601 text, as SQLite keeps them.
    const columns = PROGRESS_COLUMNS.map((c) => (TIMESTAMPS.has(c) ? `to_json(${c}) #>> '{}' AS ${c}` : c));
    const { rows } = await this.#client.query<Record<string, unknown>>(
      `SELECT ${columns.join(', ')} FROM ${this.#name} WHERE target_table = $1 AND input = $2`,
      [this.key.table, this.key.input],
    );
    return rows[0] === undefined ? undefined : fromRecord(rows[0]);
  }

  async create(row: ProgressRow): Promise<boolean> {
    const params = PROGRESS_COLUMNS.map((_, i) => `$${i + 1}`).join(', ');
    const result = await this.#client.query(
      `INSERT INTO ${this.#name} (${PROGRESS_COLUMNS.join(', ')}) VALUES (${params}) ON CONFLICT (target_table, input) DO NOTHING`,
      rowValues(row),
    );
    return result.rowCount === 1;
  }

  async claim(
    expected: Expected,
    input: Pick<ProgressRow, 'inputSize' | 'inputMtime' | 'headSha256' | 'tailSha256' | 'updatedAt'>,
  ): Promise<boolean> {
    const result = await this.#client.query(
      `UPDATE ${this.#name} SET runs = runs + 1, input_size = $5, input_mtime = $6, input_head_sha256 = $7, input_tail_sha256 = $8, updated_at = $9, finished_at = NULL WHERE ${this.#expectedParams()}`,
      [
        ...this.#expected(expected),
        input.inputSize,
        input.inputMtime,
        input.headSha256,
        input.tailSha256,
        input.updatedAt,
      ],
    );
    return result.rowCount === 1;
  }

  async forget(expected: Expected): Promise<boolean> {
    const result = await this.#client.query(
      `DELETE FROM ${this.#name} WHERE ${this.#expectedParams()}`,
      this.#expected(expected),
    );
    return result.rowCount === 1;
  }

  async advance(expected: Expected, advance: Advance): Promise<boolean> {
    const { set, values } = advanceSet(advance, (n) => `$${n + 4}`);
    const result = await this.#client.query(`UPDATE ${this.#name} SET ${set} WHERE ${this.#expectedParams()}`, [
      ...this.#expected(expected),
      ...values,
    ]);
    return result.rowCount === 1;
  }

  async tableHasRows(): Promise<boolean> {
    const name = quoteTable(this.key.table);
    const { rows } = await this.#client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [
      name,
    ]);
    if (rows[0]?.exists !== true) return false;
    const found = await this.#client.query(`SELECT 1 FROM ${name} LIMIT 1`);
    return found.rows.length > 0;
  }

  /** In the batch's transaction, first: locks the row if it is still as this run left it (rowCount 1). */
  checkSql(expected: Expected): string {
    return `UPDATE ${this.#name} SET updated_at = updated_at WHERE ${this.#expectedLiterals(expected)}`;
  }

  /** In the batch's transaction, last: records `advance` (the row is locked by checkSql's statement). */
  recordSql(expected: Expected, advance: Advance): string {
    const literal = (_: number, value: string | number | null): string =>
      value === null ? 'NULL' : typeof value === 'number' ? String(value) : this.#client.escapeLiteral(value);
    return `UPDATE ${this.#name} SET ${advanceSet(advance, literal).set} WHERE ${this.#expectedLiterals(expected)}`;
  }

  #expected(expected: Expected): (string | number)[] {
    return [this.key.table, this.key.input, expected.runs, expected.committedOffset];
  }

  #expectedParams(): string {
    return 'target_table = $1 AND input = $2 AND runs = $3 AND committed_offset = $4';
  }

  #expectedLiterals(expected: Expected): string {
    const lit = (text: string): string => this.#client.escapeLiteral(text);
    return `target_table = ${lit(this.key.table)} AND input = ${lit(this.key.input)} AND runs = ${expected.runs} AND committed_offset = ${expected.committedOffset}`;
  }
}
