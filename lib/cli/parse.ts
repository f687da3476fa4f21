import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { describe, loadPeer } from './errors';
import type { TransformCallback } from 'node:stream';

/** A value as it is bound to a statement: booleans become 1/0, objects and arrays their JSON text. */
export type Value = string | number | null;

/** One input record on its way to the database. `raw` is kept so a rejected row can be written out as it came. */
export interface Row {
  /** 1-based line number in the input (for CSV: the line the record ends on). */
  line: number;
  raw: string;
  values: Value[];
}

/** The column type inferred from the first record, mapped to a SQL type by each sink. */
export type ColumnType = 'integer' | 'real' | 'boolean' | 'text' | 'json' | 'unknown';

export interface Column {
  name: string;
  type: ColumnType;
}

/** Called for every input record that cannot become a row. */
export type RejectLine = (line: number, raw: string, error: string) => void;

/** Called once, with the columns, before the first row is pushed; the sink creates its table and statement. */
export type PrepareColumns = (columns: Column[]) => Promise<void>;

/** Longest line accepted; a longer one is rejected rather than buffered without bound. */
export const MAX_LINE_CHARS = 16 * 1024 * 1024;

/**
 * A chunk's non-blank lines: `texts[i]` is line number `numbers[i]` (1-based).
 * Two arrays rather than an object per line: one allocation fewer per record.
 */
export interface Lines {
  numbers: number[];
  texts: string[];
}

/**
 * Bytes in, the chunk's non-blank lines out as one `Lines` (one stream hop per
 * chunk rather than per line). Counts what it reads so the run can prove
 * `read = inserted + rejected` at the end.
 */
export class LineSplitter extends Transform {
  readonly #decoder = new StringDecoder('utf8');
  readonly #reject: RejectLine;
  #tail = '';
  #lineNo = 0;
  #numbers: number[] = [];
  #texts: string[] = [];
  /** Skipping the rest of a line that was too long. */
  #skipping = false;
  /** Non-blank lines pushed, and over-long ones rejected: the records read. */
  records = 0;
  blank = 0;
  /** Set when the run stops early: a partial last line was cut by the stop, not by the input, and is not read. */
  discardTail = false;

  constructor(reject: RejectLine) {
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
    this.#reject = reject;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const text = this.#tail + this.#decoder.write(chunk);
    let start = 0;
    for (let nl = text.indexOf('\n', start); nl !== -1; nl = text.indexOf('\n', start)) {
      this.#line(text.slice(start, nl));
      start = nl + 1;
    }
    this.#tail = start === 0 ? text : text.slice(start);
    this.#pushLines();
    if (this.#tail.length > MAX_LINE_CHARS) {
      if (!this.#skipping) {
        this.records++;
        this.#reject(
          this.#lineNo + 1,
          this.#tail.slice(0, 1024),
          `line longer than ${MAX_LINE_CHARS} characters (first 1024 kept)`,
        );
      }
      this.#skipping = true;
      this.#tail = '';
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const rest = this.#tail + this.#decoder.end();
    this.#tail = '';
    if (rest !== '' && !this.discardTail) this.#line(rest);
    this.#pushLines();
    callback();
  }

  #line(text: string): void {
    this.#lineNo++;
    if (this.#skipping) {
      this.#skipping = false; // the end of the over-long line: already rejected
      return;
    }
    const line = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (line.length === 0 || (line.charCodeAt(0) <= 32 && line.trim() === '')) {
      this.blank++;
      return;
    }
    this.records++;
    this.#numbers.push(this.#lineNo);
    this.#texts.push(line);
  }

  #pushLines(): void {
    if (this.#texts.length === 0) return;
    this.push({ numbers: this.#numbers, texts: this.#texts } satisfies Lines);
    this.#numbers = [];
    this.#texts = [];
  }
}

export class MappingError extends Error {}

/**
 * Turns records into rows of values in column order. The columns are `--columns`
 * (other fields are ignored, as asked) or the first record's fields (then a later
 * field that is not a column is an error: it would be lost silently otherwise).
 */
export class RowMapper {
  readonly #explicit: string[] | undefined;
  #columns: Column[] | undefined;
  #names: string[] = [];
  #index = new Map<string, number>();

  constructor(explicit: string[] | undefined) {
    this.#explicit = explicit;
  }

  get columns(): Column[] | undefined {
    return this.#columns;
  }

  /** Fixes the columns from the first record. */
  init(record: Record<string, unknown>, typed: boolean): Column[] {
    const names = this.#explicit ?? Object.keys(record);
    if (names.length === 0)
      throw new MappingError('the first record has no fields, so there are no columns (give --columns)');
    if (names.some((name) => name === ''))
      throw new MappingError('the first record has a field with an empty name (give --columns)');
    this.#names = names;
    this.#index = new Map(names.map((name, i) => [name, i]));
    this.#columns = names.map((name) => ({ name, type: typed ? typeOf(record[name]) : 'text' }));
    return this.#columns;
  }

  map(record: Record<string, unknown>): Value[] {
    const names = this.#names;
    const values = new Array<Value>(names.length);
    if (this.#explicit === undefined) {
      // The hot path: a record with the first record's fields in the same order (JSON.parse keeps the
      // order of the text) is checked by comparing names while reading the values. A Map lookup per
      // field made the mapping half again as slow (docs/cli.md, Performance).
      let i = 0;
      for (const key in record) {
        if (key !== names[i]) {
          this.#checkFields(record);
          break;
        }
        values[i++] = toValue(record[key]);
      }
      if (i === names.length) return values;
    }
    for (let i = 0; i < names.length; i++) values[i] = toValue(record[names[i] as string]);
    return values;
  }

  /** Throws unless every field of `record` is a column (they may be in any order, some missing). */
  #checkFields(record: Record<string, unknown>): void {
    for (const key in record) {
      if (!this.#index.has(key))
        throw new MappingError(
          `field "${key}" is not a column (columns come from the first record: ${this.#names.join(', ')}); give --columns to choose them`,
        );
    }
  }
}

function typeOf(value: unknown): ColumnType {
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) ? 'integer' : 'real';
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'text';
    case 'object':
      return value === null ? 'unknown' : 'json';
    default:
      return 'unknown';
  }
}

function toValue(value: unknown): Value {
  switch (typeof value) {
    case 'string':
    case 'number':
      return value;
    case 'boolean':
      return value ? 1 : 0;
    case 'undefined':
      return null;
    default:
      return value === null ? null : JSON.stringify(value);
  }
}

/** `Lines` in, one row per valid line out; malformed lines go to `reject` and the run goes on. */
export class NdjsonParser extends Transform {
  readonly #mapper: RowMapper;
  readonly #prepare: PrepareColumns;
  readonly #reject: RejectLine;

  constructor(mapper: RowMapper, prepare: PrepareColumns, reject: RejectLine) {
    super({ objectMode: true, writableHighWaterMark: 4, readableHighWaterMark: 64 });
    this.#mapper = mapper;
    this.#prepare = prepare;
    this.#reject = reject;
  }

  override _transform(lines: Lines, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#from(lines, 0, callback);
  }

  /** Parses lines[start..]; pauses once, at the very first record, while the sink prepares its table. */
  #from(lines: Lines, start: number, callback: TransformCallback): void {
    const { numbers, texts } = lines;
    for (let i = start; i < texts.length; i++) {
      const line = numbers[i] as number;
      const text = texts[i] as string;
      let record: unknown;
      try {
        record = JSON.parse(text);
      } catch (error) {
        this.#reject(line, text, `invalid JSON: ${describe(error)}`);
        continue;
      }
      if (record === null || typeof record !== 'object' || Array.isArray(record)) {
        this.#reject(line, text, 'expected a JSON object');
        continue;
      }
      if (this.#mapper.columns === undefined) {
        pushRow(
          this,
          this.#mapper,
          this.#prepare,
          this.#reject,
          line,
          text,
          record as Record<string, unknown>,
          true,
          (error) => {
            if (error) callback(error);
            else this.#from(lines, i + 1, callback);
          },
        );
        return;
      }
      try {
        this.push({ line, raw: text, values: this.#mapper.map(record as Record<string, unknown>) } satisfies Row);
      } catch (error) {
        if (!(error instanceof MappingError)) return callback(error as Error);
        this.#reject(line, text, error.message);
      }
    }
    callback();
  }
}

/** Maps one record and pushes its row; on the first record, waits for the sink to prepare its table. */
function pushRow(
  stream: Transform,
  mapper: RowMapper,
  prepare: PrepareColumns,
  reject: RejectLine,
  line: number,
  raw: string,
  record: Record<string, unknown>,
  typed: boolean,
  callback: TransformCallback,
): void {
  const map = (): void => {
    try {
      stream.push({ line, raw, values: mapper.map(record) } satisfies Row);
    } catch (error) {
      if (!(error instanceof MappingError)) return callback(error as Error);
      reject(line, raw, error.message);
    }
    callback();
  };
  if (mapper.columns !== undefined) return map();
  let columns: Column[];
  try {
    columns = mapper.init(record, typed);
  } catch (error) {
    return callback(error as Error);
  }
  prepare(columns).then(map, callback);
}

interface CsvRecord {
  record: Record<string, string>;
  raw: string;
  info: { lines: number };
}

interface CsvSkipError extends Error {
  lines?: number;
  raw?: string;
}

/** The two stages between the input bytes and the sink, and what they have read. */
export interface Stages {
  splitter: Transform;
  parser: Transform;
  /** Records read so far (lines for NDJSON, records for CSV; blank lines not counted). */
  records(): number;
  blankLines(): number;
  /** The run is stopping: a partial last line is the stop's doing, not a record. */
  stop(): void;
}

export function ndjsonStages(mapper: RowMapper, prepare: PrepareColumns, reject: RejectLine): Stages {
  const splitter = new LineSplitter(reject);
  return {
    splitter,
    parser: new NdjsonParser(mapper, prepare, reject),
    records: () => splitter.records,
    blankLines: () => splitter.blank,
    stop: () => {
      splitter.discardTail = true;
    },
  };
}

/**
 * CSV does its own line splitting, since a quoted field may span lines, so
 * csv-parse is the splitter; the parser maps its records to rows. The first
 * line is the header.
 */
export function csvStages(mapper: RowMapper, prepare: PrepareColumns, reject: RejectLine): Stages {
  const { parse } = loadPeer<typeof import('csv-parse')>('csv-parse', '^5', 'Reading CSV');
  let records = 0;
  const splitter = parse({
    columns: true,
    info: true,
    raw: true,
    bom: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
  });
  splitter.on('skip', (error: CsvSkipError) => {
    records++;
    reject(error.lines ?? 0, (error.raw ?? '').replace(/^\r?\n/, '').replace(/\r?\n$/, ''), describe(error));
  });
  const parser = new Transform({
    objectMode: true,
    highWaterMark: 64,
    transform(item: CsvRecord, _encoding, callback) {
      records++;
      pushRow(
        this,
        mapper,
        prepare,
        reject,
        item.info.lines,
        item.raw.replace(/\r?\n$/, ''),
        item.record,
        false,
        callback,
      );
    },
  });
  return {
    splitter,
    parser,
    records: () => records,
    blankLines: () => splitter.info.empty_lines,
    // csv-parse reports a record cut by the stop as malformed; that is the one line we cannot tell apart.
    stop: () => undefined,
  };
}
