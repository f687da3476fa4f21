import { describe, errorCode } from '../errors';
import type { Dialect, TableType } from './sink';
import type { Column, ColumnType, Value } from '../schema';

/** PostgreSQL's side of the schema and of values: types, widening, the text each value is sent as. */

export const SQL_TYPE: Record<TableType, string> = {
  boolean: 'BOOLEAN',
  integer: 'BIGINT',
  real: 'DOUBLE PRECISION',
  text: 'TEXT',
  json: 'JSONB',
  any: 'TEXT',
  other: 'TEXT',
};

/** boolean < integer < real < text; JSONB holds anything; text and unmanaged types hold anything as text. */
const RANK: Partial<Record<TableType, number>> = { boolean: 1, integer: 2, real: 3 };

export const DIALECT: Dialect = {
  typeFor: (column: Column) => (column.type === 'unknown' ? 'text' : column.type),
  widened: (from: TableType, data: ColumnType) => {
    const rank = RANK[from];
    if (rank === undefined || data === 'unknown') return from;
    if (data === 'text' || data === 'json') return data;
    return (RANK[data] as number) > rank ? data : from;
  },
};

/** The data line a COPY failed on (1-based), from the error's context, if it names one. */
export function copyLine(error: unknown): number | undefined {
  const where = (error as { where?: unknown } | null)?.where;
  const match = typeof where === 'string' ? /\bCOPY [^,]+, line (\d+)/.exec(where) : null;
  return match === null ? undefined : Number(match[1]);
}

/** A value as the text PostgreSQL reads for a column of `type`. */
export function pgText(value: Value, type: TableType): string | null {
  switch (typeof value) {
    case 'string':
      return type === 'json' ? JSON.stringify(value) : value;
    case 'number':
      return String(value);
    case 'boolean':
      if (type === 'boolean') return value ? 't' : 'f';
      if (type === 'integer' || type === 'real') return value ? '1' : '0';
      return value ? 'true' : 'false';
    case 'object':
      return value === null ? null : JSON.stringify(value);
    default:
      return null;
  }
}

/** A column type as format_type() prints it. */
export function tableType(type: string): TableType {
  if (type === 'boolean') return 'boolean';
  if (type === 'smallint' || type === 'integer' || type === 'bigint') return 'integer';
  if (type === 'real' || type === 'double precision' || type.startsWith('numeric')) return 'real';
  if (type === 'text' || type.startsWith('character')) return 'text';
  if (type === 'json' || type === 'jsonb') return 'json';
  return 'other';
}

/** The URL without its password. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** pg's connect errors can be an AggregateError (IPv4 and IPv6) with an empty message. */
export function pgMessage(error: unknown): string {
  if (error instanceof AggregateError && error.message === '') return error.errors.map(pgMessage).join('; ');
  const text = describe(error);
  return text === '' ? errorCode(error) || 'unknown error' : text;
}
