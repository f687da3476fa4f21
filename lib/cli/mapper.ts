import { typeOf, widen } from './schema';
import type { Column, ColumnType, Schema, Value } from './schema';

/** A record that cannot become a row; it goes to the rejects file (stage `parse`). */
export class MappingError extends Error {}

/**
 * Turns records into rows of values in column order, growing the schema as
 * records ask (a new field adds a column, a value of a wider type widens its
 * column), unless `--strict-schema` froze it at the first record (then a field
 * that is not a column is a reject). `columns` (`--columns`): only these fields,
 * in this order; other fields are ignored, as asked.
 */
export class RowMapper {
  readonly schema: Schema;
  readonly #explicit: boolean;
  readonly #strict: boolean;
  /** Column names in order, mirrored from the schema for the hot path. */
  readonly #names: string[] = [];
  /** Per column, the record (by stamp) that last set it: finds two fields naming one column. */
  readonly #seen: number[] = [];
  readonly #seenKey: string[] = [];
  #stamp = 0;
  #initialised: boolean;

  /**
   * `strictColumns` (`--resumable`, `--strict-schema` without `--columns`): the columns the load's first
   * record fixed, as an earlier run recorded them; a resumed run keeps them rather than taking the first
   * record it reads. (Their types are the table's by then.)
   */
  constructor(schema: Schema, columns: string[] | undefined, strictColumns?: string[]) {
    this.schema = schema;
    this.#explicit = columns !== undefined;
    this.#strict = schema.strict;
    for (const name of columns ?? []) this.#add(name, 'unknown');
    // Strict mode takes its types (and, without --columns, its columns) from the first record.
    this.#initialised = !schema.strict;
    if (schema.strict && !this.#explicit && strictColumns !== undefined) {
      for (const name of strictColumns) this.#add(name, 'unknown');
      this.#initialised = true;
    }
  }

  map(record: Record<string, unknown>): Value[] {
    if (!this.#initialised) this.#init(record);
    // The hot path: a record whose fields come in the columns' order (JSON.parse keeps the order of the
    // text), some perhaps absent, is matched by comparing names while reading the values. A Map lookup
    // per field made the mapping half again as slow (docs/cli.md, Performance). A field out of that
    // order, or new, takes #mapAny.
    const names = this.#names;
    const columns = this.schema.columns;
    const n = names.length;
    const values = new Array<Value>(n);
    const evolve = !this.#strict;
    let i = 0;
    for (const key in record) {
      while (i < n && key !== names[i]) i++; // columns this record does not have stay undefined: NULL
      if (i === n) return this.#mapAny(record);
      const value = record[key] as Value;
      if (evolve) {
        const type = typeOf(value);
        const current = (columns[i] as Column).type;
        if (type !== current) {
          const wider = widen(current, type);
          if (wider !== current) this.schema.setType(i, wider);
        }
      }
      values[i++] = value;
    }
    return values;
  }

  /** Fields in any order, some missing, some new. Checks everything before changing the schema. */
  #mapAny(record: Record<string, unknown>): Value[] {
    const schema = this.schema;
    const stamp = ++this.#stamp;
    const seen = this.#seen;
    let added: Map<string, string> | undefined;
    for (const key in record) {
      const index = schema.indexOf(key);
      if (index !== undefined) {
        if (seen[index] === stamp) throw this.#clash(this.#seenKey[index] as string, key);
        seen[index] = stamp;
        this.#seenKey[index] = key;
        continue;
      }
      if (this.#explicit) continue;
      if (this.#strict) {
        throw new MappingError(
          `field "${key}" is not a column (--strict-schema: the columns are the first record's: ${this.#names.join(', ')})`,
        );
      }
      if (key === '') throw new MappingError('a field with an empty name cannot be a column');
      const identity = schema.identity(key);
      const other = (added ??= new Map<string, string>()).get(identity);
      if (other !== undefined) throw this.#clash(other, key);
      added.set(identity, key);
    }
    if (this.#names.length === 0 && added === undefined)
      throw new MappingError('a record with no fields, and no column yet to put it in');

    const values = new Array<Value>(this.#names.length + (added?.size ?? 0));
    const columns = schema.columns;
    for (const key in record) {
      let index = schema.indexOf(key);
      const value = record[key] as Value;
      if (index === undefined) {
        if (added === undefined || added.get(schema.identity(key)) !== key) continue; // ignored (--columns)
        index = this.#add(key, typeOf(value));
      } else if (!this.#strict) {
        const current = (columns[index] as Column).type;
        const wider = widen(current, typeOf(value));
        if (wider !== current) schema.setType(index, wider);
      }
      values[index] = value;
    }
    return values;
  }

  /** --strict-schema: columns (unless --columns) and types from the first record. */
  #init(record: Record<string, unknown>): void {
    if (!this.#explicit) {
      const keys = Object.keys(record);
      if (keys.length === 0)
        throw new MappingError('the first record has no fields, so there are no columns (give --columns)');
      if (keys.includes('')) throw new MappingError('the first record has a field with an empty name (give --columns)');
      const identities = new Set(keys.map((key) => this.schema.identity(key)));
      if (identities.size !== keys.length)
        throw new MappingError('the first record has two fields that name the same column (give --columns)');
      for (const key of keys) this.#add(key, 'unknown');
    }
    this.schema.columns.forEach((column, index) => this.schema.setType(index, typeOf(record[column.name] as Value)));
    this.#initialised = true;
  }

  #add(name: string, type: ColumnType): number {
    this.#names.push(name);
    this.#seen.push(0);
    this.#seenKey.push('');
    return this.schema.add(name, type);
  }

  #clash(first: string, second: string): MappingError {
    return new MappingError(
      first === second
        ? `field "${first}" appears twice`
        : `fields "${first}" and "${second}" name the same column in the target`,
    );
  }
}
