import { CliError, ExitCode, describe, errorCode, loadPeer } from '../errors';
import { quoteIdent, quoteTable } from './sink';
import type { PgMethod } from '../args';
import type { Sink } from './sink';
import type { Column, ColumnType, Row, Value } from '../parse';
import type * as Pg from 'pg';

const PG_TYPES: Record<ColumnType, string> = {
  integer: 'BIGINT',
  real: 'DOUBLE PRECISION',
  boolean: 'BOOLEAN',
  text: 'TEXT',
  json: 'JSONB',
  unknown: 'TEXT',
};

/** PostgreSQL's limit on bind parameters in one statement. */
const MAX_PARAMS = 65_535;

/** SQLSTATE classes after which nothing more will get in: connection exceptions, operator intervention. */
const FATAL_SQLSTATE = /^(08|57P0)/;
const FATAL_SOCKET = /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)/;

/**
 * PostgreSQL through `pg`: one connection, and per batch either one COPY FROM
 * STDIN (the default: measured faster, see docs/cli.md) or multi-row INSERTs
 * in one transaction. Either way a batch goes in whole or not at all.
 */
export class PostgresSink implements Sink {
  readonly target: string;
  readonly #client: Pg.Client;
  readonly #method: PgMethod;
  /** The error the connection died with; set by the client's 'error' event. */
  #lost: Error | undefined;
  readonly #url: string;
  #table = '';
  #columns: Column[] = [];
  #copySql = '';
  /** INSERT text per row count: batches are mostly full, so this stays tiny. */
  readonly #insertSql = new Map<number, string>();

  private constructor(url: string, target: string, client: Pg.Client, method: PgMethod) {
    this.#url = url;
    this.target = target;
    this.#client = client;
    this.#method = method;
    client.on('error', (error) => {
      this.#lost = error;
    });
  }

  static async open(url: string, method: PgMethod): Promise<PostgresSink> {
    const pg = loadPeer<typeof Pg>('pg', '^8', 'Writing to PostgreSQL');
    const target = redact(url);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw new CliError(ExitCode.USAGE, `cannot connect to ${target}: ${pgMessage(error)}`, error);
    }
    return new PostgresSink(url, target, client, method);
  }

  async prepare(table: string, columns: Column[]): Promise<void> {
    this.#table = quoteTable(table);
    this.#columns = columns;
    const names = columns.map((c) => quoteIdent(c.name)).join(', ');
    try {
      const defs = columns.map((c) => `${quoteIdent(c.name)} ${PG_TYPES[c.type]}`).join(', ');
      await this.#client.query(`CREATE TABLE IF NOT EXISTS ${this.#table} (${defs})`);
      // Fails now, with a clear message, when a column does not exist, rather than row by row later.
      await this.#client.query(`SELECT ${names} FROM ${this.#table} LIMIT 0`);
    } catch (error) {
      throw new CliError(
        ExitCode.USAGE,
        `cannot insert into table ${table} of ${this.target}: ${pgMessage(error)}`,
        error,
      );
    }
    this.#copySql = `COPY ${this.#table} (${names}) FROM STDIN`;
  }

  async insert(rows: Row[]): Promise<void> {
    if (this.#lost !== undefined) throw this.#lost;
    if (this.#method === 'copy') return this.#copy(rows);
    const perStatement = Math.max(1, Math.floor(MAX_PARAMS / this.#columns.length));
    if (rows.length <= perStatement)
      return void (await this.#client.query(this.#insertText(rows.length), flatten(rows, 0, rows.length)));
    await this.#client.query('BEGIN');
    try {
      for (let start = 0; start < rows.length; start += perStatement) {
        const end = Math.min(rows.length, start + perStatement);
        await this.#client.query(this.#insertText(end - start), flatten(rows, start, end));
      }
      await this.#client.query('COMMIT');
    } catch (error) {
      await this.#client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  #insertText(count: number): string {
    let text = this.#insertSql.get(count);
    if (text === undefined) {
      const width = this.#columns.length;
      const tuples: string[] = [];
      for (let r = 0; r < count; r++)
        tuples.push(`(${this.#columns.map((_, c) => `$${r * width + c + 1}`).join(', ')})`);
      text = `INSERT INTO ${this.#table} (${this.#columns.map((c) => quoteIdent(c.name)).join(', ')}) VALUES ${tuples.join(', ')}`;
      this.#insertSql.set(count, text);
    }
    return text;
  }

  #copy(rows: Row[]): Promise<void> {
    let text = '';
    for (const row of rows) {
      const { values } = row;
      for (let i = 0; i < values.length; i++) text += (i === 0 ? '' : '\t') + copyField(values[i] as Value);
      text += '\n';
    }
    return new Promise((resolve, reject) => {
      this.#client.query(
        new CopyFrom(this.#copySql, Buffer.from(text), (error) => (error ? reject(error) : resolve())) as never,
      );
    });
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

  /**
   * Cancels the statement in flight, if any, from a second connection: a backend
   * waiting on a lock would otherwise commit the batch after the run has written
   * it to the rejects file. (A batch that commits just before the cancel arrives
   * is both inserted and rejected: at-least-once, as docs/cli.md says.)
   */
  async abort(): Promise<void> {
    if (this.#lost !== undefined) return;
    const { processID } = this.#client as unknown as { processID: number | null };
    if (processID === null) return;
    const pg = loadPeer<typeof Pg>('pg', '^8', 'Writing to PostgreSQL');
    const canceller = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: 5_000 });
    try {
      await canceller.connect();
      await canceller.query('SELECT pg_cancel_backend($1)', [processID]);
    } catch {
      // Best effort: closing our connection below ends the session anyway once the server notices.
    } finally {
      await canceller.end().catch(() => undefined);
    }
  }

  async count(table: string): Promise<number> {
    const result = await this.#client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteTable(table)}`);
    return Number(result.rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    await this.#client.end().catch(() => undefined);
  }
}

function flatten(rows: Row[], start: number, end: number): Value[] {
  const params: Value[] = [];
  for (let r = start; r < end; r++) for (const value of (rows[r] as Row).values) params.push(value);
  return params;
}

/** COPY's text format: tab-separated, `\N` for NULL, backslash escapes for the separators. */
function copyField(value: Value): string {
  if (value === null) return '\\N';
  if (typeof value === 'number') return String(value);
  return /[\\\t\n\r]/.test(value) ? value.replace(/[\\\t\n\r]/g, escapeChar) : value;
}

function escapeChar(char: string): string {
  switch (char) {
    case '\t':
      return '\\t';
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    default:
      return '\\\\';
  }
}

interface PgConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

/**
 * A `COPY ... FROM STDIN` with the whole batch as its data, as a pg "submittable"
 * (the interface pg-cursor and pg-copy-streams use), so that no extra package is
 * needed for one buffer per batch.
 */
class CopyFrom {
  readonly #text: string;
  readonly #payload: Buffer;
  #done: ((error?: Error) => void) | undefined;

  constructor(text: string, payload: Buffer, done: (error?: Error) => void) {
    this.#text = text;
    this.#payload = payload;
    this.#done = done;
  }

  submit(connection: PgConnection): void {
    connection.query(this.#text);
  }

  handleCopyInResponse(connection: PgConnection): void {
    connection.sendCopyFromChunk(this.#payload);
    connection.endCopyFrom();
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    this.#settle();
  }

  /** A server error (ReadyForQuery follows) or a dead connection (nothing follows): settle now either way; pg queues the next query until ReadyForQuery. */
  handleError(error: Error): void {
    this.#settle(error);
  }

  #settle(error?: Error): void {
    const done = this.#done;
    this.#done = undefined;
    done?.(error);
  }
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** pg's connect errors can be an AggregateError (IPv4 and IPv6) with an empty message. */
function pgMessage(error: unknown): string {
  if (error instanceof AggregateError && error.message === '') return error.errors.map(pgMessage).join('; ');
  const text = describe(error);
  return text === '' ? errorCode(error) || 'unknown error' : text;
}
