import type { Column, Row } from '../parse';

/** A database the CLI inserts rows into. */
export interface Sink {
  /** The target as shown to the user (no password). */
  readonly target: string;
  /** Creates the table when it does not exist (types from the first record) and prepares the insert. */
  prepare(table: string, columns: Column[]): Promise<void>;
  /** Inserts all rows or none (one transaction); throws what the database said. */
  insert(rows: Row[]): void | Promise<void>;
  /** True when `error` means the database is gone for good, so retrying more rows is pointless. */
  isFatal(error: unknown): boolean;
  /**
   * The run gave up on what is in flight (its rows are in the rejects file): make sure a
   * statement still running does not commit them after all.
   */
  abort(): Promise<void>;
  count(table: string): Promise<number>;
  close(): Promise<void>;
}

/** Double-quotes an SQL identifier (both SQLite and PostgreSQL); `schema.table` quotes each part. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteTable(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}
