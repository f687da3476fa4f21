import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { describe } from './errors';
import { MappingError } from './mapper';
import { NewlineOffsets } from './resume/offsets';
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
  /** `--resumable` only: the byte offset just past the record, where a later run may resume. */
  end?: number;
  /** `--resumable` only: the last physical line of the record (a CSV record may span lines). */
  last?: number;
  /**
   * `--resumable` only: why the record was rejected while it was read. Such a record rides through the
   * sluice between the rows around it, so that it reaches the rejects file with the batch that commits
   * past it, in input order (docs/cli.md, "Resumable loads").
   */
  error?: string;
}

/** `--resumable`: where a run starts reading, after what earlier runs committed. */
export interface ResumeAt {
  /** Byte offset in the input (0: its start). */
  offset: number;
  /** Physical lines before that offset. */
  line: number;
  /** CSV read from past its header: the header, as an earlier run read it. */
  header?: string[];
}

/** A record of a `--resumable` run, all with one shape: a row (`error` undefined) or a parse reject. */
export function placedRow(line: number, raw: string, values: Value[], end: number, last: number, error?: string): Row {
  return { line, raw, values, end, last, error };
}

/** The values of a record rejected while it was read (`--resumable`). */
export const NO_VALUES: Value[] = Object.freeze([]) as unknown as Value[];

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
  /** `--resumable` only: per line, the byte offset just past it. */
  ends?: number[];
  /** `--resumable` only: per line, why it was rejected already (over `--max-record-bytes`), or undefined. */
  errors?: (string | undefined)[];
}

/**
 * Bytes in, the chunk's non-blank lines out as one `Lines` (one stream hop per
 * chunk rather than per line). Counts what it reads so the run can prove
 * `read = inserted + rejected` at the end.
 *
 * With `resume` (`--resumable`), it starts numbering lines after `resume.line`, gives each line the
 * byte offset just past it, and hands over-long lines on in `Lines.errors` rather than rejecting
 * them itself, so that every record reaches the sluice in input order.
 */
export class LineSplitter extends Transform {
  readonly #decoder = new StringDecoder('utf8');
  readonly #reject: RejectLine;
  readonly #maxBytes: number;
  /** `--resumable` only. */
  readonly #offsets: NewlineOffsets | undefined;
  #tail = '';
  #lineNo = 0;
  #numbers: number[] = [];
  #texts: string[] = [];
  #ends: number[] = [];
  #errors: (string | undefined)[] = [];
  /** Skipping the rest of a line that was too long. */
  #skipping = false;
  /** `--resumable`: the over-long line being skipped, handed on once its end (and so its offset) is known. */
  #longLine: { line: number; text: string } | undefined;
  /** Non-blank lines pushed, and over-long ones rejected: the records read. */
  records = 0;
  blank = 0;
  /** Set when the run stops early: a partial last line was cut by the stop, not by the input, and is not read. */
  discardTail = false;

  constructor(reject: RejectLine, maxRecordBytes: number, resume?: ResumeAt) {
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
    this.#reject = reject;
    this.#maxBytes = maxRecordBytes;
    if (resume !== undefined) {
      this.#offsets = new NewlineOffsets(resume.offset, resume.line);
      this.#lineNo = resume.line;
    }
  }

  /** `--resumable`: the physical lines and bytes read, from the start of the input. */
  position(): { offset: number; line: number } {
    return { offset: this.#offsets?.bytes ?? 0, line: this.#offsets?.lines ?? 0 };
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#offsets?.feed(chunk);
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
    else if (this.#longLine !== undefined) {
      if (this.discardTail)
        this.records--; // cut by the stop: not read, and read again by the next run
      else this.#line(''); // the input ends inside the over-long line
    }
    this.#pushLines();
    callback();
  }

  #line(text: string): void {
    this.#lineNo++;
    if (this.#skipping) {
      this.#skipping = false; // the end of the over-long line: already rejected, or handed on now
      const long = this.#longLine;
      if (long !== undefined) {
        this.#longLine = undefined;
        this.#hand(long.line, long.text.slice(0, KEPT_CHARS), this.#tooLongError());
      }
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
    if (this.#offsets !== undefined) return this.#hand(this.#lineNo, line, undefined);
    this.#numbers.push(this.#lineNo);
    this.#texts.push(line);
  }

  #tooLong(line: number, text: string): void {
    this.records++;
    // --resumable: a line still being read is handed on at its end, when its offset is known.
    if (this.#offsets !== undefined && line > this.#lineNo) this.#longLine = { line, text };
    else if (this.#offsets !== undefined) this.#hand(line, text.slice(0, KEPT_CHARS), this.#tooLongError());
    else this.#reject(line, text.slice(0, KEPT_CHARS), this.#tooLongError());
  }

  #tooLongError(): string {
    return `record longer than ${this.#maxBytes} bytes (--max-record-bytes); the first ${KEPT_CHARS} characters are kept here`;
  }

  /** `--resumable`: line `line` (just ended) goes on with its end offset, and the error that rejects it, if any. */
  #hand(line: number, text: string, error: string | undefined): void {
    this.#numbers.push(line);
    this.#texts.push(text);
    this.#ends.push((this.#offsets as NewlineOffsets).endOf(line));
    this.#errors.push(error);
  }

  #pushLines(): void {
    if (this.#texts.length === 0) return;
    if (this.#offsets === undefined) this.push({ numbers: this.#numbers, texts: this.#texts } satisfies Lines);
    else {
      this.push({ numbers: this.#numbers, texts: this.#texts, ends: this.#ends, errors: this.#errors } satisfies Lines);
      this.#ends = [];
      this.#errors = [];
    }
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
    const { numbers, texts, ends, errors } = lines;
    for (let i = 0; i < texts.length; i++) {
      const line = numbers[i] as number;
      const text = texts[i] as string;
      const known = errors?.[i];
      if (known !== undefined) {
        this.#refuse(lines, i, known);
        continue;
      }
      let record: unknown;
      try {
        record = JSON.parse(text);
      } catch (error) {
        this.#refuse(lines, i, `invalid JSON: ${describe(error)}`);
        continue;
      }
      if (record === null || typeof record !== 'object' || Array.isArray(record)) {
        this.#refuse(lines, i, 'expected a JSON object');
        continue;
      }
      let values: Value[];
      try {
        values = this.#mapper.map(record as Record<string, unknown>);
      } catch (error) {
        if (!(error instanceof MappingError)) return callback(error as Error);
        this.#refuse(lines, i, error.message);
        continue;
      }
      if (ends === undefined) this.push({ line, raw: text, values } satisfies Row);
      else this.push(placedRow(line, text, values, ends[i] as number, line));
    }
    callback();
  }

  /** Line `i` cannot become a row: to the rejects file now, or (`--resumable`) on through the sluice. */
  #refuse(lines: Lines, i: number, error: string): void {
    const line = lines.numbers[i] as number;
    const text = lines.texts[i] as string;
    if (lines.ends === undefined) this.#reject(line, text, error);
    else this.push(placedRow(line, text, NO_VALUES, lines.ends[i] as number, line, error));
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
  /** `--resumable` only: bytes and physical lines read, from the start of the input. */
  position?(): { offset: number; line: number };
  /** `--resumable`, CSV: the header's fields, once read. */
  header?(): string[] | undefined;
}

/** `resume` (`--resumable`): read from there, and pass every record on in input order, rejects included. */
export function ndjsonStages(mapper: RowMapper, reject: RejectLine, maxRecordBytes: number, resume?: ResumeAt): Stages {
  const splitter = new LineSplitter(reject, maxRecordBytes, resume);
  return {
    splitter,
    parser: new NdjsonParser(mapper, reject),
    records: () => splitter.records,
    blankLines: () => splitter.blank,
    stop: () => {
      splitter.discardTail = true;
    },
    ...(resume === undefined ? {} : { position: () => splitter.position() }),
  };
}
