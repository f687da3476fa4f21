import { Transform } from 'node:stream';
import { CsvSplitter } from './csv-splitter';
import { CliError, ExitCode } from './errors';
import type { CsvBatch } from './csv-splitter';
import { NO_VALUES, placedRow } from './parse';
import type { RejectLine, ResumeAt, Row, Stages } from './parse';
import type { Schema } from './schema';
import type { TransformCallback } from 'node:stream';

/**
 * Header and records in, rows out: the header names the columns (a repeated name
 * is renamed `name_2`, an empty one `column_N`); a record with another number of
 * fields than the header is rejected.
 */
export class CsvParser extends Transform {
  readonly #schema: Schema;
  readonly #explicit: string[] | undefined;
  readonly #reject: RejectLine;
  readonly #notice: (message: string) => void;
  /** Per schema column, its field index in a record. */
  #pick: number[] = [];
  #width = 0;

  constructor(schema: Schema, explicit: string[] | undefined, reject: RejectLine, notice: (message: string) => void) {
    super({ objectMode: true, writableHighWaterMark: 4, readableHighWaterMark: 64 });
    this.#schema = schema;
    this.#explicit = explicit;
    this.#reject = reject;
    this.#notice = notice;
  }

  override _transform(batch: CsvBatch, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (batch.header !== undefined) {
      try {
        this.#setHeader(batch.header);
      } catch (error) {
        return callback(error as Error);
      }
    }
    const { numbers, raws, fields, ends, lasts, errors } = batch;
    const pick = this.#pick;
    for (let r = 0; r < raws.length; r++) {
      const record = fields[r] as string[];
      const line = numbers[r] as number;
      const raw = raws[r] as string;
      const known = errors?.[r];
      if (known !== undefined) {
        this.#refuse(batch, r, known);
        continue;
      }
      if (record.length !== this.#width) {
        this.#refuse(batch, r, `the record has ${record.length} field(s); the header has ${this.#width}`);
        continue;
      }
      const values = new Array<string>(pick.length);
      for (let c = 0; c < pick.length; c++) values[c] = record[pick[c] as number] as string;
      if (ends === undefined) this.push({ line, raw, values } satisfies Row);
      else this.push(placedRow(line, raw, values, ends[r] as number, (lasts as number[])[r] as number));
    }
    callback();
  }

  /** Record `r` cannot become a row: to the rejects file now, or (`--resumable`) on through the sluice. */
  #refuse(batch: CsvBatch, r: number, error: string): void {
    const line = batch.numbers[r] as number;
    const raw = batch.raws[r] as string;
    if (batch.ends === undefined) this.#reject(line, raw, error);
    else
      this.push(
        placedRow(line, raw, NO_VALUES, batch.ends[r] as number, (batch.lasts as number[])[r] as number, error),
      );
  }

  #setHeader(header: string[]): void {
    const names = uniqueNames(header, this.#schema.identity);
    names.forEach((name, i) => {
      if (name !== header[i])
        this.#notice(`CSV header field ${i + 1} ${JSON.stringify(header[i])} is read as column "${name}"`);
    });
    this.#width = names.length;
    const wanted = this.#explicit ?? names;
    const byIdentity = new Map(names.map((name, i) => [this.#schema.identity(name), i]));
    this.#pick = wanted.map((name) => {
      const index = byIdentity.get(this.#schema.identity(name));
      if (index === undefined)
        throw new CliError(
          ExitCode.USAGE,
          `--columns names "${name}", which is not in the CSV header (${names.join(', ')})`,
        );
      return index;
    });
    for (const name of wanted) this.#schema.add(name, 'text');
  }
}

/** Header names made usable as columns: empty ones become `column_N`, repeated ones `name_2`, `name_3`... */
export function uniqueNames(header: string[], identity: (name: string) => string): string[] {
  const taken = new Set(header.map(identity));
  const used = new Set<string>();
  return header.map((field, i) => {
    let name = field.trim() === '' ? `column_${i + 1}` : field;
    if (used.has(identity(name))) {
      let n = 2;
      while (taken.has(identity(`${name}_${n}`)) || used.has(identity(`${name}_${n}`))) n++;
      name = `${name}_${n}`;
    }
    used.add(identity(name));
    return name;
  });
}

export function csvStages(
  schema: Schema,
  options: {
    columns: string[] | undefined;
    delimiter: string;
    maxRecordBytes: number;
    reject: RejectLine;
    notice: (message: string) => void;
    /** `--resumable`: read from there, and pass every record on in input order, rejects included. */
    resume?: ResumeAt;
  },
): Stages {
  const splitter = new CsvSplitter(options.reject, options);
  return {
    splitter,
    parser: new CsvParser(schema, options.columns, options.reject, options.notice),
    records: () => splitter.records,
    blankLines: () => splitter.blank,
    stop: () => {
      splitter.discardTail = true;
    },
    ...(options.resume === undefined ? {} : { position: () => splitter.position(), header: () => splitter.header }),
  };
}
