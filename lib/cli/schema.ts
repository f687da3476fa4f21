/**
 * The shape of the input as read so far: its fields, in the order they were first
 * seen, and for each the narrowest type that holds every value seen. The parser
 * grows it as records arrive; the sink brings the table in line before each batch
 * (docs/cli.md, "Schema evolution"). It only ever grows: a column is never removed
 * and a type never narrows, so the latest schema holds every row mapped under an
 * earlier one.
 */

/**
 * What a column's values have been. `unknown`: only nulls so far (null never fixes
 * a type). `boolean` < `integer` < `real` < `text`; `json` (objects, arrays) takes
 * any value as JSON, and a `text` column takes any value as text.
 */
export type ColumnType = 'unknown' | 'boolean' | 'integer' | 'real' | 'text' | 'json';

export interface Column {
  name: string;
  type: ColumnType;
  /** The type of the column's first non-null value (SQLite declares a new column with it). */
  first: ColumnType;
}

/** A value as parsed: JSON's scalars, or an object/array (stored as JSON). `undefined` is a missing field. */
export type Value = string | number | boolean | null | object | undefined;

/** The type a single value asks for. Integers beyond 2^53 are reals: JSON.parse has already rounded them. */
export function typeOf(value: Value): ColumnType {
  switch (typeof value) {
    case 'number':
      return Number.isSafeInteger(value) ? 'integer' : 'real';
    case 'string':
      return 'text';
    case 'boolean':
      return 'boolean';
    case 'object':
      return value === null ? 'unknown' : 'json';
    default:
      return 'unknown';
  }
}

const RANK: Record<ColumnType, number> = { unknown: 0, boolean: 1, integer: 2, real: 3, text: 4, json: 4 };

/**
 * The type of a column of type `current` once it has held a value of type `next`.
 * A `text` column stays text and a `json` column stays JSON whatever comes next, so
 * between those two the first one reached wins (an object in a text column is its
 * JSON text; a string in a JSON column is a JSON string).
 */
export function widen(current: ColumnType, next: ColumnType): ColumnType {
  if (next === current || next === 'unknown') return current;
  if (current === 'text' || current === 'json') return current;
  return RANK[next] > RANK[current] ? next : current;
}

/**
 * The input's columns. `version` changes with every added column or widened type,
 * so a sink can tell in O(1) whether the table needs altering.
 */
export class Schema {
  /** Every column, in the order first seen. Mutated only through add() and setType(). */
  readonly columns: Column[] = [];
  /** Bumped on every change. */
  version = 0;
  /**
   * False for CSV: every value is a string the database may convert (`"42"` into an
   * INTEGER column), so new columns are TEXT and existing ones are never widened.
   */
  readonly typed: boolean;
  /** `--strict-schema`: fixed by the first record; the table gets no new columns and no wider types. */
  readonly strict: boolean;
  /** How the target compares column names: SQLite ignores ASCII case, PostgreSQL keeps 63 bytes. */
  readonly identity: (name: string) => string;
  /** Column index by identity, and by the exact spellings met so far. */
  readonly #index = new Map<string, number>();
  readonly #spellings = new Map<string, number>();

  constructor(options: { typed: boolean; strict: boolean; identity?: (name: string) => string }) {
    this.typed = options.typed;
    this.strict = options.strict;
    this.identity = options.identity ?? ((name) => name);
  }

  /** The column a field name stands for. Spellings seen before skip the identity function. */
  indexOf(name: string): number | undefined {
    const seen = this.#spellings.get(name);
    if (seen !== undefined) return seen;
    const index = this.#index.get(this.identity(name));
    if (index !== undefined) this.#spellings.set(name, index);
    return index;
  }

  add(name: string, type: ColumnType): number {
    const index = this.columns.length;
    this.columns.push({ name, type, first: type });
    this.#index.set(this.identity(name), index);
    this.version++;
    return index;
  }

  setType(index: number, type: ColumnType): void {
    const column = this.columns[index] as Column;
    if (column.type === type) return;
    if (column.type === 'unknown') column.first = type;
    column.type = type;
    this.version++;
  }
}

/** SQLite compares identifiers ignoring ASCII case (only ASCII: "É" and "é" are two columns). */
export function sqliteIdentity(name: string): string {
  return /[A-Z]/.test(name) ? name.replace(/[A-Z]+/g, (upper) => upper.toLowerCase()) : name;
}

/** PostgreSQL truncates identifiers to 63 bytes. */
export function postgresIdentity(name: string): string {
  if (name.length <= 21) return name; // at most 3 bytes a UTF-16 unit: cannot exceed 63 bytes
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length <= 63) return name;
  let end = 63;
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--; // not inside a character
  return bytes.subarray(0, end).toString('utf8');
}
