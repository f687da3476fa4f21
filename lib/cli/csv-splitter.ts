import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { CliError, ExitCode } from './errors';
import { KEPT_CHARS, longerThan } from './parse';
import { NewlineOffsets } from './resume/offsets';
import type { RejectLine, ResumeAt } from './parse';
import type { TransformCallback } from 'node:stream';

/**
 * CSV (RFC 4180: fields separated by a delimiter, `"`-quoted fields may hold
 * delimiters, `""` and line breaks) split by hand rather than by a library, so
 * that every physical line is accounted for: it ends up in a stored row or inside
 * the `raw` text of a reject, and reading always resumes at a line start.
 *
 * A quote problem in a record that spans lines (an unclosed quote swallowing the
 * lines after it, text after a closing quote, the end of the input inside quotes,
 * a quoted field running past `--max-record-bytes`) rejects only the record's first
 * line; the lines after it are read again as records of their own. A problem on a
 * single line rejects that line. A syntactically sound record with the wrong
 * number of fields is rejected whole.
 */

/** A chunk's records. `header` is set on the batch that carries the header (not a record). */
export interface CsvBatch {
  header?: string[];
  numbers: number[];
  raws: string[];
  fields: string[][];
  /** `--resumable` only: per record, the byte offset just past it and its last physical line. */
  ends?: number[];
  lasts?: number[];
  /** `--resumable` only: per record, why it was rejected already (its `fields` are empty), or undefined. */
  errors?: (string | undefined)[];
}

const NO_FIELDS: string[] = [];

const QUOTE = 34;
const NL = 10;
const CR = 13;

/** Where the scanner is within a record. */
const enum State {
  /** At the start of a field. */
  FieldStart,
  Unquoted,
  Quoted,
  /** Just after a quote inside a quoted field: `""`, or the end of the field. */
  QuoteInQuoted,
  /** After a quote error on a one-line record: looking for the end of that line to reject it. */
  BadLine,
}

export class CsvSplitter extends Transform {
  readonly #decoder = new StringDecoder('utf8');
  readonly #delimiter: number;
  readonly #maxBytes: number;
  readonly #reject: RejectLine;
  /** `--resumable` only: byte offsets of the line breaks of the text buffered. */
  readonly #offsets: NewlineOffsets | undefined;
  /** `--resumable`: the over-long record being skipped, handed on once its line ends (and its offset is known). */
  #longLine: { line: number; raw: string } | undefined;
  /** Text from the start of the current record (`#start` is 0 between chunks). */
  #buf = '';
  #start = 0;
  #pos = 0;
  #state = State.FieldStart;
  #fields: string[] = [];
  #fieldStart = 0;
  /** The quoted field being read contains `""`. */
  #escaped = false;
  /** The physical line the current record starts on (1-based). */
  #line = 1;
  /** Line breaks inside the current record (in quoted fields), and the index of the first one. */
  #breaks = 0;
  #firstBreak = -1;
  /** Skipping the rest of an over-long line that was already rejected. */
  #skipping = false;
  #bomChecked = false;
  #headerSeen = false;
  #error = '';
  #out: CsvBatch;
  /** Data records read (the header is not one): emitted, or rejected here. */
  records = 0;
  /** The header's fields, once read (or given, for a run resumed past it). */
  header: string[] | undefined;
  blank = 0;
  /** Set when the run stops early: a partial last record was cut by the stop, not by the input. */
  discardTail = false;

  /**
   * With `resume` (`--resumable`), reading starts at `resume.offset`, past `resume.line` lines (and past the
   * header, given in `resume.header`, unless at the start); each record carries the byte offset just past it,
   * and records rejected here are handed on in the batch (`errors`) rather than rejected, so that every record
   * reaches the sluice in input order.
   */
  constructor(reject: RejectLine, options: { delimiter: string; maxRecordBytes: number; resume?: ResumeAt }) {
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
    this.#reject = reject;
    this.#delimiter = options.delimiter.charCodeAt(0);
    this.#maxBytes = options.maxRecordBytes;
    const resume = options.resume;
    if (resume !== undefined) {
      this.#offsets = new NewlineOffsets(resume.offset, resume.line);
      this.#line = resume.line + 1;
      if (resume.offset > 0) this.#bomChecked = true;
    }
    this.#out = this.#batch();
    if (resume?.header !== undefined) {
      this.#headerSeen = true;
      this.#out.header = this.header = resume.header;
    }
  }

  /** `--resumable`: the physical lines and bytes read, from the start of the input. */
  position(): { offset: number; line: number } {
    return { offset: this.#offsets?.bytes ?? 0, line: this.#offsets?.lines ?? 0 };
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#offsets?.feed(chunk);
    let text = this.#decoder.write(chunk);
    if (!this.#bomChecked && text.length > 0) {
      this.#bomChecked = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.#buf += text;
    try {
      this.#scan(false);
    } catch (error) {
      return callback(error as Error);
    }
    this.#compact();
    this.#emit();
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#buf += this.#decoder.end();
    try {
      if (this.discardTail) this.#buf = this.#buf.slice(0, this.#start);
      else this.#scan(true);
    } catch (error) {
      return callback(error as Error);
    }
    const long = this.#longLine;
    if (long !== undefined) {
      this.#longLine = undefined;
      if (this.discardTail)
        this.records--; // cut by the stop: not read, and read again by the next run
      else this.#hand(long.line, long.raw, NO_FIELDS, long.line, this.#tooLongRecord()); // the input ends inside it
    }
    this.#emit();
    callback();
  }

  /** Reads records from `#pos`; at the end of the input (`final`) the last record needs no line break. */
  #scan(final: boolean): void {
    const delimiter = this.#delimiter;
    for (;;) {
      const buf = this.#buf;
      const length = buf.length;
      let i = this.#pos;
      if (this.#skipping) {
        const nl = buf.indexOf('\n', i);
        if (nl === -1) {
          this.#buf = '';
          this.#start = this.#pos = 0;
          return;
        }
        this.#skipping = false;
        const long = this.#longLine;
        if (long !== undefined) {
          this.#longLine = undefined;
          this.#hand(long.line, long.raw, NO_FIELDS, long.line, this.#tooLongRecord());
        }
        this.#nextRecord(nl + 1, 1);
        continue;
      }
      let ended = false;
      while (i < length && !ended) {
        switch (this.#state) {
          case State.FieldStart:
            if (buf.charCodeAt(i) === QUOTE) {
              this.#state = State.Quoted;
              this.#escaped = false;
              this.#fieldStart = ++i;
            } else {
              this.#state = State.Unquoted;
              this.#fieldStart = i;
            }
            break;
          case State.Unquoted: {
            let c = 0;
            for (; i < length; i++) {
              c = buf.charCodeAt(i);
              if (c === delimiter || c === NL || c === QUOTE) break;
            }
            if (i === length) break;
            if (c === QUOTE) {
              this.#fail(
                i,
                'a quote inside an unquoted field (quote the whole field and double the quote: "a ""b"" c")',
              );
              ended = true;
            } else if (c === delimiter) {
              this.#fields.push(buf.slice(this.#fieldStart, i++));
              this.#state = State.FieldStart;
            } else {
              const end = i > this.#fieldStart && buf.charCodeAt(i - 1) === CR ? i - 1 : i;
              this.#fields.push(buf.slice(this.#fieldStart, end));
              this.#endRecord(i);
              ended = true;
            }
            break;
          }
          case State.Quoted: {
            const quote = buf.indexOf('"', i);
            const stop = quote === -1 ? length : quote;
            for (let nl = buf.indexOf('\n', i); nl !== -1 && nl < stop; nl = buf.indexOf('\n', nl + 1)) {
              if (this.#breaks++ === 0) this.#firstBreak = nl;
            }
            i = quote === -1 ? length : quote + 1;
            if (quote !== -1) this.#state = State.QuoteInQuoted;
            break;
          }
          case State.QuoteInQuoted: {
            const c = buf.charCodeAt(i);
            if (c === QUOTE) {
              this.#escaped = true;
              this.#state = State.Quoted;
              i++;
              break;
            }
            if (c === CR && i + 1 === length && !final) return this.#pause(i); // is a \n next?
            const lineEnd = c === NL ? i : c === CR && (i + 1 === length || buf.charCodeAt(i + 1) === NL) ? i + 1 : -1;
            if (c === delimiter || lineEnd !== -1) {
              this.#fields.push(this.#quoted(buf.slice(this.#fieldStart, i - 1)));
              if (c === delimiter) {
                this.#state = State.FieldStart;
                i++;
              } else {
                this.#endRecord(lineEnd);
                ended = true;
              }
              break;
            }
            this.#fail(i, 'text after a closing quote (a quote inside a quoted field is written "")');
            ended = true;
            break;
          }
          case State.BadLine: {
            const nl = buf.indexOf('\n', i);
            if (nl === -1) {
              i = length;
              break;
            }
            this.#rejectLine(this.#start, nl, this.#error);
            this.#nextRecord(nl + 1, 1);
            ended = true;
            break;
          }
        }
      }
      if (ended) continue;
      // The input so far ends inside a record.
      this.#pos = i;
      if (final) {
        if (!this.#finish()) continue;
        return;
      }
      if (this.#tooLong()) continue;
      return;
    }
  }

  /** A pending `\r` at the end of a chunk: wait for the next one before deciding. */
  #pause(i: number): void {
    this.#pos = i;
  }

  /** End of input inside a record: complete it, or reject what cannot be. Returns true when done. */
  #finish(): boolean {
    const buf = this.#buf;
    const length = buf.length;
    switch (this.#state) {
      case State.FieldStart:
        if (length === this.#start) return true; // nothing after the last line break
        this.#fields.push('');
        break;
      case State.Unquoted:
        this.#fields.push(buf.slice(this.#fieldStart, buf.charCodeAt(length - 1) === CR ? length - 1 : length));
        break;
      case State.QuoteInQuoted:
        this.#fields.push(this.#quoted(buf.slice(this.#fieldStart, length - 1)));
        break;
      case State.Quoted:
        if (this.#breaks > 0) {
          this.#backtrack('the input ends inside a quoted field that started on this line (an unclosed quote?)');
          return false;
        }
        this.#rejectLine(this.#start, length, 'the input ends inside a quoted field (an unclosed quote?)');
        this.#nextRecord(length, 0);
        return true;
      case State.BadLine:
        this.#rejectLine(this.#start, length, this.#error);
        this.#nextRecord(length, 0);
        return true;
    }
    this.#endRecord(length);
    return true;
  }

  /** The pending record is over --max-record-bytes: reject and resume at a line start. Returns true if so. */
  #tooLong(): boolean {
    const pending = this.#buf.length - this.#start;
    if (pending * 3 <= this.#maxBytes || !longerThan(this.#buf.slice(this.#start), this.#maxBytes)) return false;
    if (this.#breaks > 0) {
      this.#backtrack(this.#tooLongField());
      return true;
    }
    const raw = this.#buf.slice(this.#start, this.#start + KEPT_CHARS);
    if (this.#offsets === undefined) this.#rejectText(raw, this.#tooLongRecord());
    else {
      // --resumable: handed on at the end of its line, when its offset is known.
      this.#checkHeader(this.#tooLongRecord());
      this.records++;
      this.#longLine = { line: this.#line, raw };
    }
    this.#skipping = true;
    this.#nextRecord(this.#buf.length, 0);
    return true;
  }

  #tooLongField(): string {
    return `a quoted field that starts on this line runs past --max-record-bytes (${this.#maxBytes}) (an unclosed quote?)`;
  }

  #tooLongRecord(): string {
    return `record longer than ${this.#maxBytes} bytes (--max-record-bytes); the first ${KEPT_CHARS} characters are kept here`;
  }

  /** A quote error at `i`: a one-line record waits for its line's end; a longer one is backtracked. */
  #fail(i: number, why: string): void {
    if (this.#breaks > 0) return this.#backtrack(why);
    this.#error = why;
    this.#state = State.BadLine;
    this.#pos = i;
  }

  /** Rejects the current record's first line alone and reads again from the line after it. */
  #backtrack(why: string): void {
    const firstBreak = this.#firstBreak;
    this.#rejectLine(this.#start, firstBreak, why);
    this.#nextRecord(firstBreak + 1, 1);
  }

  #rejectLine(from: number, to: number, why: string): void {
    let end = to;
    if (end > from && this.#buf.charCodeAt(end - 1) === CR) end--;
    this.#rejectText(this.#buf.slice(from, end), why);
  }

  /**
   * Rejects the current record's first line (or the whole record, on that line alone); one that would
   * have been the header stops the run instead.
   */
  #rejectText(raw: string, why: string): void {
    this.#checkHeader(why);
    this.records++;
    if (this.#offsets === undefined) this.#reject(this.#line, raw, why);
    else this.#hand(this.#line, raw, NO_FIELDS, this.#line, why);
  }

  #checkHeader(why: string): void {
    if (!this.#headerSeen)
      throw new CliError(ExitCode.USAGE, `the CSV header (line ${this.#line}) is malformed: ${why}`);
  }

  /** A record (or, with `error`, a reject) into the batch; `--resumable` adds where it ends. */
  #hand(line: number, raw: string, fields: string[], last: number, error: string | undefined): void {
    const out = this.#out;
    out.numbers.push(line);
    out.raws.push(raw);
    out.fields.push(fields);
    const offsets = this.#offsets;
    if (offsets === undefined) return;
    (out.ends as number[]).push(offsets.endOf(last));
    (out.lasts as number[]).push(last);
    (out.errors as (string | undefined)[]).push(error);
  }

  /** The record ends with the line break at `nl` (or the end of the input). */
  #endRecord(nl: number): void {
    const buf = this.#buf;
    let end = nl;
    if (end > this.#start && buf.charCodeAt(end - 1) === CR) end--;
    const raw = buf.slice(this.#start, end);
    const fields = this.#fields;
    if ((end - this.#start) * 3 > this.#maxBytes && longerThan(raw, this.#maxBytes)) {
      // Complete, but over the limit all the same: as if it had been found at a chunk's end.
      if (this.#breaks > 0) return this.#backtrack(this.#tooLongField());
      this.#rejectText(raw.slice(0, KEPT_CHARS), this.#tooLongRecord());
      return this.#nextRecord(Math.min(nl + 1, buf.length), 1);
    }
    if (fields.length === 1 && raw.trim() === '') this.blank++;
    else if (!this.#headerSeen) {
      this.#headerSeen = true;
      this.#out.header = this.header = fields;
    } else {
      this.records++;
      this.#hand(this.#line, raw, fields, this.#line + this.#breaks, undefined);
    }
    this.#nextRecord(Math.min(nl + 1, buf.length), 1 + this.#breaks);
  }

  /** The next record starts at `at`, `lines` physical lines after the current one. */
  #nextRecord(at: number, lines: number): void {
    this.#line += lines;
    this.#start = this.#pos = at;
    this.#state = State.FieldStart;
    this.#fields = [];
    this.#breaks = 0;
    this.#firstBreak = -1;
    this.#offsets?.forget(this.#line);
  }

  #quoted(text: string): string {
    return this.#escaped ? text.replace(/""/g, '"') : text;
  }

  /** Drops the text of finished records, keeping indexes relative to the current record. */
  #compact(): void {
    const start = this.#start;
    if (start === 0) return;
    this.#buf = this.#buf.slice(start);
    this.#pos -= start;
    this.#fieldStart -= start;
    if (this.#firstBreak !== -1) this.#firstBreak -= start;
    this.#start = 0;
  }

  #emit(): void {
    const out = this.#out;
    if (out.header === undefined && out.raws.length === 0) return;
    this.push(out);
    this.#out = this.#batch();
  }

  #batch(): CsvBatch {
    return this.#offsets === undefined
      ? { numbers: [], raws: [], fields: [] }
      : { numbers: [], raws: [], fields: [], ends: [], lasts: [], errors: [] };
  }
}
