import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { CliError, ExitCode } from './errors';
import { KEPT_CHARS, longerThan } from './parse';
import type { RejectLine } from './parse';
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
}

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
  #out: CsvBatch = { numbers: [], raws: [], fields: [] };
  /** Data records read (the header is not one): emitted, or rejected here. */
  records = 0;
  blank = 0;
  /** Set when the run stops early: a partial last record was cut by the stop, not by the input. */
  discardTail = false;

  constructor(reject: RejectLine, options: { delimiter: string; maxRecordBytes: number }) {
    super({ readableObjectMode: true, readableHighWaterMark: 4 });
    this.#reject = reject;
    this.#delimiter = options.delimiter.charCodeAt(0);
    this.#maxBytes = options.maxRecordBytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
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
    this.#rejectText(this.#buf.slice(this.#start, this.#start + KEPT_CHARS), this.#tooLongRecord());
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

  /** Rejects the current record; one that would have been the header stops the run instead. */
  #rejectText(raw: string, why: string): void {
    if (!this.#headerSeen)
      throw new CliError(ExitCode.USAGE, `the CSV header (line ${this.#line}) is malformed: ${why}`);
    this.records++;
    this.#reject(this.#line, raw, why);
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
      this.#out.header = fields;
    } else {
      this.records++;
      this.#out.numbers.push(this.#line);
      this.#out.raws.push(raw);
      this.#out.fields.push(fields);
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
    this.#out = { numbers: [], raws: [], fields: [] };
  }
}
