import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { describe } from './errors';
import { MappingError } from './mapper';
import type { RowMapper } from './mapper';
import type { Value } from './schema';
import type { TransformCallback } from 'node:stream';

/** One input record on its way to the database. `raw` is kept so a rejected row can be written out as it came. */
export interface Row {
  /** 1-based line number in the input (for CSV: the line the record starts on). */
  line: number;
  raw: string;
  /** In schema column order; shorter than the schema when columns were added after this row was mapped. */
  values: Value[];
}

/** Called for every input record that cannot become a row. */
export type RejectLine = (line: number, raw: string, error: string) => void;

/** `--max-record-bytes`' default: a longer record is rejected rather than buffered without bound. */
export const DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** How much of an over-long record the rejects file keeps. */
export const KEPT_CHARS = 1024;

/** True when `text` is longer than `maxBytes` in UTF-8; cheap unless it is close (a UTF-16 unit is at most 3 bytes). */
export function longerThan(text: string, maxBytes: number): boolean {
  return text.length > maxBytes || (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes);
}

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
  readonly #maxBytes: number;
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

  constructor(reject: RejectLine, maxRecordBytes: number) {
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
    this.#reject = reject;
    this.#maxBytes = maxRecordBytes;
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
    if (longerThan(this.#tail, this.#maxBytes)) {
      // Not buffered further: the rest of this line is skipped as it arrives.
      if (!this.#skipping) this.#tooLong(this.#lineNo + 1, this.#tail);
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
    if (line.length * 3 > this.#maxBytes && longerThan(line, this.#maxBytes)) {
      this.#tooLong(this.#lineNo, line);
      return;
    }
    this.records++;
    this.#numbers.push(this.#lineNo);
    this.#texts.push(line);
  }

  #tooLong(line: number, text: string): void {
    this.records++;
    this.#reject(
      line,
      text.slice(0, KEPT_CHARS),
      `record longer than ${this.#maxBytes} bytes (--max-record-bytes); the first ${KEPT_CHARS} characters are kept here`,
    );
  }

  #pushLines(): void {
    if (this.#texts.length === 0) return;
    this.push({ numbers: this.#numbers, texts: this.#texts } satisfies Lines);
    this.#numbers = [];
    this.#texts = [];
  }
}

/** `Lines` in, one row per valid line out; malformed lines go to `reject` and the run goes on. */
export class NdjsonParser extends Transform {
  readonly #mapper: RowMapper;
  readonly #reject: RejectLine;

  constructor(mapper: RowMapper, reject: RejectLine) {
    super({ objectMode: true, writableHighWaterMark: 4, readableHighWaterMark: 64 });
    this.#mapper = mapper;
    this.#reject = reject;
  }

  override _transform(lines: Lines, _encoding: BufferEncoding, callback: TransformCallback): void {
    const { numbers, texts } = lines;
    for (let i = 0; i < texts.length; i++) {
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
      let values: Value[];
      try {
        values = this.#mapper.map(record as Record<string, unknown>);
      } catch (error) {
        if (!(error instanceof MappingError)) return callback(error as Error);
        this.#reject(line, text, error.message);
        continue;
      }
      this.push({ line, raw: text, values } satisfies Row);
    }
    callback();
  }
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

export function ndjsonStages(mapper: RowMapper, reject: RejectLine, maxRecordBytes: number): Stages {
  const splitter = new LineSplitter(reject, maxRecordBytes);
  return {
    splitter,
    parser: new NdjsonParser(mapper, reject),
    records: () => splitter.records,
    blankLines: () => splitter.blank,
    stop: () => {
      splitter.discardTail = true;
    },
  };
}
