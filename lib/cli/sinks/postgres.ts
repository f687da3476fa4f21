import { untilAborted } from '../../abortable';
import { CliError, ExitCode, describe, errorCode, loadPeer } from '../errors';
import { CopyFrom, copyField } from './pg-copy';
import { DIALECT, SQL_TYPE, copyLine, pgMessage, pgText, redact, tableType } from './pg-values';
import { ADD_HINT, byIdentity, planChanges, quoteIdent, quoteTable, schemaError, uniqueIndexName } from './sink';
import type { Refusal, ResumableBatch, Sink, SinkOptions, TableChanges, TableColumn, TableType } from './sink';
import { conflictError } from '../resume/progress';
import { PgProgress } from '../resume/pg-progress';
import type { FlushResult } from '../../index';
import type { PgMethod } from '../args';
import type { Row } from '../parse';
import type { LoadKey } from '../resume/progress';
import type * as Pg from 'pg';

/** PostgreSQL's limit on bind parameters in one statement. */
const MAX_PARAMS = 65_535;
/** INSERT texts kept, one per row count: full batches, and the halves a bisection of a failed batch tries. */
const INSERT_CACHE_SIZE = 32;

/** SQLSTATE classes after which nothing more will get in: connection exceptions, operator intervention. */
const FATAL_SQLSTATE = /^(08|57P0)/;
const FATAL_SOCKET = /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)/;
/**
 * SQLSTATEs worth a retry: serialization failure, deadlock, lock not available,
 * statement timeout, insufficient resources, system errors. A refused row (class
 * 22 data exception, 23 integrity constraint) fails the same way every time.
 */
const TRANSIENT_SQLSTATE = /^(40001|40P01|55P03|57014|53|58)/;

/**
 * PostgreSQL through `pg`: one connection, and per batch either one COPY FROM
 * STDIN (the default: measured faster, see docs/cli.md) or multi-row INSERTs
 * in one transaction. Either way a batch goes in whole or not at all. The table
 * follows the schema: new columns are added and types widened in place
 * (`ALTER COLUMN ... TYPE ... USING`) between batches.
 */
export class PostgresSink implements Sink {
  readonly target: string;
  readonly changes: TableChanges = { created: false, added: 0, widened: 0 };
  duplicates = 0;
  readonly #client: Pg.Client;
  readonly #method: PgMethod;
  readonly #options: SinkOptions;
  readonly #url: string;
  readonly #name: string;
  /** The error the connection died with; set by the client's 'error' event. */
  #lost: Error | undefined;
  /** The table's columns as it has them; undefined until it exists. */
  #columns: TableColumn[] | undefined;
  #version = -1;
  /** Per statement column: its schema index and the table type its values are formatted for. */
  #indexes: number[] = [];
  #types: TableType[] = [];
  #copySql = '';
  #columnList = '';
  /** INSERT text per row count, at most INSERT_CACHE_SIZE of them (oldest out first). */
  readonly #insertSql = new Map<number, string>();
  #aborting: Promise<void> | undefined;
  /** `--dedupe`: the unique index on options.uniqueColumn exists; INSERTs then skip rows already there. */
  #uniqueReady = false;
  /** `--resumable`: the load's progress table. */
  #progress: PgProgress | undefined;

  private constructor(url: string, target: string, client: Pg.Client, method: PgMethod, options: SinkOptions) {
    this.#url = url;
    this.target = target;
    this.#client = client;
    this.#method = method;
    this.#options = options;
    this.#name = quoteTable(options.table);
    client.on('error', (error) => {
      this.#lost = error;
    });
    options.signal.addEventListener('abort', () => void this.abort(), { once: true });
  }

  static async open(url: string, method: PgMethod, options: SinkOptions): Promise<PostgresSink> {
    const pg = loadPeer<typeof Pg>('pg', 'Writing to PostgreSQL');
    const target = redact(url);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined); // reported by connect() or, once open, by the sink
    try {
      await untilAborted(client.connect(), options.signal, () => destroy(client));
    } catch (error) {
      destroy(client);
      if (options.signal.aborted) throw options.signal.reason;
      throw new CliError(ExitCode.USAGE, `cannot connect to ${target}: ${pgMessage(error)}`, error);
    }
    const sink = new PostgresSink(url, target, client, method, options);
    try {
      await sink.#readTable();
    } catch (error) {
      await sink.close();
      if (options.signal.aborted) throw options.signal.reason;
      throw new CliError(ExitCode.USAGE, `cannot read table ${options.table} of ${target}: ${pgMessage(error)}`, error);
    }
    return sink;
  }

  async insert(rows: Row[]): Promise<FlushResult<Row> | undefined> {
    if (this.#lost !== undefined) throw this.#lost;
    if (this.#version !== this.#options.schema.version) await this.#sync(false);
    if (this.#method === 'copy') return this.#copyAround(rows);
    await this.#insertAll(rows);
    return undefined;
  }

  /**
   * COPY names the line it failed on (`where`: "COPY t, line 7"): the rows before
   * it are good, so they are sent again, that row is set aside, and the rows after
   * it follow, in order. A batch with k refused rows costs 2k + 1 statements and
   * k + 1 commits, where halving it takes about 2k log2(n/k) statements, half of
   * them commits. The refused rows go back to the sluice in a FlushResult, and
   * its bisection tries each one alone before it is dead-lettered with the
   * database's own error. An error that names no line fails the call as it is.
   */
  async #copyAround(rows: Row[]): Promise<FlushResult<Row> | undefined> {
    const refused: Row[] = [];
    const errors: Error[] = [];
    let delivered = 0;
    // Ranges [from, to) still to insert, in input order: a row refused because of an earlier one stays refused.
    const ranges: [number, number][] = [[0, rows.length]];
    for (let range = ranges.shift(); range !== undefined; range = ranges.shift()) {
      const [from, to] = range;
      if (from === to) continue;
      try {
        await this.#copy(from === 0 && to === rows.length ? rows : rows.slice(from, to));
        delivered += to - from;
        continue;
      } catch (error) {
        const line = copyLine(error);
        if (delivered === 0 && refused.length === 0 && (line === undefined || to - from === 1)) throw error;
        if (line === undefined || line > to - from || this.isFatal(error) || this.#options.signal.aborted) {
          // Nothing more to learn here: what is left goes back to the sluice as it is.
          for (let i = from; i < to; i++) refused.push(rows[i] as Row);
          for (const [start, end] of ranges.splice(0)) for (let i = start; i < end; i++) refused.push(rows[i] as Row);
          errors.push(error as Error);
          break;
        }
        const bad = from + line - 1;
        refused.push(rows[bad] as Row);
        errors.push(error as Error);
        ranges.unshift([from, bad], [bad + 1, to]);
      }
    }
    if (refused.length === 0) return undefined;
    // Nothing went in: a plain failure, so that the sluice's probes carry the database's own error.
    if (delivered === 0) throw errors[0] as Error;
    return { success: delivered, failed: refused.length, errors, failedItems: refused };
  }

  async #insertAll(rows: Row[]): Promise<void> {
    const perStatement = Math.max(1, Math.floor(MAX_PARAMS / this.#indexes.length));
    if (rows.length <= perStatement) {
      const result = await this.#client.query(this.#insertText(rows.length), this.#params(rows, 0, rows.length));
      this.duplicates += rows.length - (result.rowCount ?? rows.length);
      return;
    }
    await this.#client.query('BEGIN');
    try {
      const inserted = await this.#insertStatements(rows);
      await this.#client.query('COMMIT');
      this.duplicates += rows.length - inserted;
    } catch (error) {
      await this.#client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /** Multi-row INSERTs of at most MAX_PARAMS parameters each, in the caller's transaction; resolves to the rows inserted. */
  async #insertStatements(rows: Row[]): Promise<number> {
    const perStatement = Math.max(1, Math.floor(MAX_PARAMS / this.#indexes.length));
    let inserted = 0;
    for (let start = 0; start < rows.length; start += perStatement) {
      const end = Math.min(rows.length, start + perStatement);
      const result = await this.#client.query(this.#insertText(end - start), this.#params(rows, start, end));
      inserted += result.rowCount ?? end - start;
    }
    return inserted;
  }

  progress(key: LoadKey): PgProgress {
    return (this.#progress = new PgProgress(this.#client, key));
  }

  /**
   * One transaction: BEGIN with the progress check (which locks the progress row, so that a second
   * run waits, then finds it moved) and a savepoint; the rows by COPY or INSERT; on a refusal, the
   * rows are isolated under savepoints (#isolate); the progress with COMMIT. Three round trips when
   * nothing is refused.
   */
  async commit(batch: ResumableBatch): Promise<number> {
    if (this.#lost !== undefined) throw this.#lost;
    const progress = this.#progress as PgProgress;
    const rows = batch.rows;
    if (rows.length > 0 && this.#version !== this.#options.schema.version) await this.#sync(false);
    try {
      const begun = (await this.#client.query(
        `BEGIN; ${progress.checkSql(batch.expected)}; SAVEPOINT sluice_rows`,
      )) as unknown as Pg.QueryResult[];
      if (begun[1]?.rowCount !== 1) throw conflictError(progress.key, 'commit');
      const refused = rows.length === 0 ? [] : await this.#isolate(rows);
      const advance = batch.settle(refused);
      // The progress row is locked since the check: this UPDATE finds it.
      await this.#client.query(`${progress.recordSql(batch.expected, advance)}; COMMIT`);
      return rows.length - refused.length;
    } catch (error) {
      await this.#client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  /**
   * Inserts the rows inside the open transaction, keeping every row the database accepts: a failed
   * attempt is rolled back to its savepoint, and the rows are tried again around the line COPY names,
   * or in halves, until each refused row stands alone. An error that is not about the rows (the
   * connection, a deadlock, a timeout) fails the whole batch.
   */
  async #isolate(rows: Row[]): Promise<Refusal[]> {
    const refused: Refusal[] = [];
    const ranges: [number, number][] = [[0, rows.length]];
    let first = true;
    for (let range = ranges.shift(); range !== undefined; range = ranges.shift()) {
      const [from, to] = range;
      if (from === to) continue;
      if (!first) await this.#client.query('SAVEPOINT sluice_rows');
      first = false;
      try {
        if (this.#method === 'copy') await this.#copy(from === 0 && to === rows.length ? rows : rows.slice(from, to));
        else await this.#insertStatements(rows.slice(from, to));
        continue;
      } catch (error) {
        if (this.isFatal(error) || this.isTransient(error) || this.#options.signal.aborted) throw error;
        await this.#client.query('ROLLBACK TO SAVEPOINT sluice_rows');
        if (to - from === 1) {
          refused.push({ row: rows[from] as Row, error });
          continue;
        }
        const line = this.#method === 'copy' ? copyLine(error) : undefined;
        if (line !== undefined && line >= 1 && line <= to - from) {
          const bad = from + line - 1;
          ranges.unshift([from, bad], [bad, bad + 1], [bad + 1, to]);
        } else {
          const middle = from + Math.floor((to - from) / 2);
          ranges.unshift([from, middle], [middle, to]);
        }
      }
    }
    return refused;
  }

  async finish(): Promise<void> {
    // Nothing was read (an empty input): no column to create a table with.
    if (this.#options.schema.columns.length === 0) return;
    if (this.#lost === undefined) await this.#sync(true);
  }

  isFatal(error: unknown): boolean {
    if (this.#lost !== undefined) return true;
    const code = errorCode(error);
    return (
      FATAL_SQLSTATE.test(code) ||
      FATAL_SOCKET.test(code) ||
      /Connection terminated|not queryable/.test(describe(error))
    );
  }

  isTransient(error: unknown): boolean {
    return !this.isFatal(error) && TRANSIENT_SQLSTATE.test(errorCode(error));
  }

  /**
   * Cancels the statement in flight, if any (an insert, or DDL waiting on a lock),
   * from a second connection: a backend waiting on a lock would otherwise commit
   * the batch after the run has written it to the rejects file. (A batch that
   * commits just before the cancel arrives is both inserted and rejected:
   * at-least-once, as docs/cli.md says.)
   */
  abort(): Promise<void> {
    return (this.#aborting ??= this.#cancel());
  }

  async #cancel(): Promise<void> {
    if (this.#lost !== undefined) return;
    const { processID } = this.#client as unknown as { processID: number | null };
    if (processID === null) return;
    const pg = loadPeer<typeof Pg>('pg', 'Writing to PostgreSQL');
    const canceller = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: 5_000 });
    canceller.on('error', () => undefined);
    try {
      await canceller.connect();
      await canceller.query('SELECT pg_cancel_backend($1)', [processID]);
    } catch {
      // Best effort: closing our connection below ends the session anyway once the server notices.
    } finally {
      await canceller.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.#client.end().catch(() => undefined);
  }

  async #readTable(): Promise<void> {
    const { rows } = await this.#client.query<{ name: string; type: string }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
         FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [this.#name],
    );
    const exists = await this.#client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [
      this.#name,
    ]);
    this.#columns =
      exists.rows[0]?.exists === true ? rows.map(({ name, type }) => ({ name, type: tableType(type) })) : undefined;
  }

  /** Brings the table in line with the schema; `final`: also creates the columns that only held null. */
  async #sync(final: boolean): Promise<void> {
    const { schema, table } = this.#options;
    const version = schema.version;
    if (this.#columns === undefined) {
      let columns = schema.columns.filter((column) => column.type !== 'unknown' || schema.strict || final);
      if (columns.length === 0) columns = schema.columns;
      const defs = columns.map((c) => `${quoteIdent(c.name)} ${SQL_TYPE[DIALECT.typeFor(c)]}`);
      await this.#ddl(`CREATE TABLE IF NOT EXISTS ${this.#name} (${defs.join(', ')})`, 'create table', table);
      await this.#readTable(); // what is there now, whoever created it
      this.changes.created = true;
    }
    const existing = byIdentity(this.#columns as TableColumn[], schema);
    const plan = planChanges(schema, existing, DIALECT, {
      strict: schema.strict,
      tableName: table,
      target: this.target,
      nullType: final ? 'text' : undefined,
    });
    if (plan.add.length > 0) {
      const adds = plan.add.map(({ index, type }) => {
        const name = (schema.columns[index] as { name: string }).name;
        return `ADD COLUMN IF NOT EXISTS ${quoteIdent(name)} ${SQL_TYPE[type]}`;
      });
      const all = plan.add.map(({ index }) => (schema.columns[index] as { name: string }).name);
      const names = all.length <= 5 ? all.join(', ') : `${all.slice(0, 5).join(', ')} and ${all.length - 5} more`;
      await this.#ddl(`ALTER TABLE ${this.#name} ${adds.join(', ')}`, `add column(s) ${names} to`, table, ADD_HINT);
      for (const { index, type } of plan.add)
        (this.#columns as TableColumn[]).push({ name: (schema.columns[index] as { name: string }).name, type });
      this.changes.added += plan.add.length;
    }
    for (const { column, to } of plan.widen) await this.#widen(column, to);
    await this.#ensureUnique();
    this.#prepare();
    this.#version = version;
  }

  /** `--dedupe`: a unique index on the id column, once the table has it (ON CONFLICT needs one to name). */
  async #ensureUnique(): Promise<void> {
    const { uniqueColumn, schema, table } = this.#options;
    if (uniqueColumn === undefined || this.#uniqueReady) return;
    if (!(this.#columns as TableColumn[]).some((c) => schema.identity(c.name) === schema.identity(uniqueColumn)))
      return;
    const index = quoteIdent(uniqueIndexName(table, uniqueColumn));
    await this.#ddl(
      `CREATE UNIQUE INDEX IF NOT EXISTS ${index} ON ${this.#name} (${quoteIdent(uniqueColumn)})`,
      `make column ${uniqueColumn} unique (--dedupe) in`,
      table,
    );
    this.#uniqueReady = true;
  }

  /** DDL the run cannot do without: a failure stops it (exit 2), unless the run is giving up anyway. */
  async #ddl(sql: string, what: string, table: string, hint = ''): Promise<void> {
    try {
      await this.#client.query(sql);
    } catch (error) {
      if (this.#options.signal.aborted || this.isFatal(error)) throw error;
      throw schemaError(`cannot ${what} table ${table} of ${this.target}: ${pgMessage(error)}${hint}`, error);
    }
  }

  /** Alters the column's type in place, converting what it holds; if PostgreSQL refuses, values go as they are. */
  async #widen(column: TableColumn, to: TableType): Promise<void> {
    const name = quoteIdent(column.name);
    const using =
      to === 'json'
        ? `to_jsonb(${name})`
        : to === 'text'
          ? `${name}::text`
          : column.type === 'boolean'
            ? `${name}::int::${SQL_TYPE[to]}`
            : `${name}::${SQL_TYPE[to]}`;
    try {
      await this.#client.query(`ALTER TABLE ${this.#name} ALTER COLUMN ${name} TYPE ${SQL_TYPE[to]} USING ${using}`);
      column.type = to;
      this.changes.widened++;
    } catch (error) {
      if (this.#options.signal.aborted || this.isFatal(error)) throw error;
      this.#options.warn(
        `cannot make column ${column.name} of table ${this.#options.table} ${SQL_TYPE[to]}: ${pgMessage(error)}; its values are sent as they come`,
      );
      column.type = 'other';
    }
  }

  #prepare(): void {
    const { schema } = this.#options;
    const existing = byIdentity(this.#columns as TableColumn[], schema);
    this.#indexes = [];
    this.#types = [];
    const names: string[] = [];
    schema.columns.forEach((column, index) => {
      const target = existing.get(schema.identity(column.name));
      if (target === undefined) return; // only nulls so far
      names.push(quoteIdent(column.name));
      this.#indexes.push(index);
      this.#types.push(target.type);
    });
    this.#columnList = names.join(', ');
    this.#copySql = `COPY ${this.#name} (${this.#columnList}) FROM STDIN`;
    this.#insertSql.clear();
  }

  #insertText(count: number): string {
    let text = this.#insertSql.get(count);
    if (text === undefined) {
      const width = this.#indexes.length;
      const tuples: string[] = [];
      for (let r = 0; r < count; r++) {
        const params: string[] = [];
        for (let c = 0; c < width; c++) params.push(`$${r * width + c + 1}`);
        tuples.push(`(${params.join(', ')})`);
      }
      const unique = this.#uniqueReady
        ? ` ON CONFLICT (${quoteIdent(this.#options.uniqueColumn as string)}) DO NOTHING`
        : '';
      text = `INSERT INTO ${this.#name} (${this.#columnList}) VALUES ${tuples.join(', ')}${unique}`;
      if (this.#insertSql.size >= INSERT_CACHE_SIZE)
        this.#insertSql.delete(this.#insertSql.keys().next().value as number);
      this.#insertSql.set(count, text);
    }
    return text;
  }

  /** The parameters of rows[start..end), as text PostgreSQL parses for each column's type. */
  #params(rows: Row[], start: number, end: number): (string | null)[] {
    const indexes = this.#indexes;
    const types = this.#types;
    const params: (string | null)[] = [];
    for (let r = start; r < end; r++) {
      const values = (rows[r] as Row).values;
      for (let c = 0; c < indexes.length; c++) params.push(pgText(values[indexes[c] as number], types[c] as TableType));
    }
    return params;
  }

  #copy(rows: Row[]): Promise<void> {
    const indexes = this.#indexes;
    const types = this.#types;
    let text = '';
    for (const row of rows) {
      const values = row.values;
      for (let c = 0; c < indexes.length; c++)
        text += (c === 0 ? '' : '\t') + copyField(pgText(values[indexes[c] as number], types[c] as TableType));
      text += '\n';
    }
    return new Promise((resolve, reject) => {
      this.#client.query(
        new CopyFrom(this.#copySql, Buffer.from(text), (error) => (error ? reject(error) : resolve())) as never,
      );
    });
  }
}

/** Closes the client's socket, connected or not. */
function destroy(client: Pg.Client): void {
  const connection = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
  connection?.stream?.destroy();
}
