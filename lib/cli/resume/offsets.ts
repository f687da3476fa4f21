/**
 * Where each input line ends, in bytes, for `--resumable`: a resumed run seeks to the byte just past
 * the last committed record instead of reading the file again from its start.
 *
 * The splitters work on decoded text, so they cannot count bytes themselves; but a line break is the
 * byte 0x0A and never part of a multi-byte UTF-8 character, so the n-th `\n` of the text is the n-th
 * 0x0A of the bytes. This records the offset just past each 0x0A of the chunks fed, by line number,
 * and forgets the lines the splitter has passed: it holds the line breaks of the text a splitter
 * still buffers (one record, at most `--max-record-bytes`, and the rest of a chunk), not of the file.
 */
export class NewlineOffsets {
  /** Offset just past each line break fed and not yet forgotten; `#ends[#head]` ends line `#first`. */
  #ends: number[] = [];
  #head = 0;
  #first: number;
  /** Bytes fed, counted from the start of the input (a resumed run starts at its offset). */
  #bytes: number;
  /** Line breaks before `#bytes`; and whether bytes follow the last of them (a line not ended yet). */
  #breaks: number;
  #open = false;

  /** `offset`: where reading starts; `lines`: the physical lines before it. */
  constructor(offset: number, lines: number) {
    this.#bytes = offset;
    this.#breaks = lines;
    this.#first = lines + 1;
  }

  /** Records the line breaks of the next chunk of input, in order. */
  feed(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const base = this.#bytes;
    const before = this.#ends.length;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.#ends.push(base + i + 1);
    this.#breaks += this.#ends.length - before;
    this.#open = chunk[chunk.length - 1] !== 10;
    this.#bytes += chunk.length;
  }

  /** Bytes fed so far, from the start of the input: at the end, the input's length. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Physical lines fed so far, from the start of the input, a last one without a line break included. */
  get lines(): number {
    return this.#breaks + (this.#open ? 1 : 0);
  }

  /**
   * The offset just past line `line`'s line break; for a line without one (the last line of an input
   * that does not end with a line break), the end of the input fed so far. Lines before it are forgotten.
   */
  endOf(line: number): number {
    this.forget(line);
    return line === this.#first && this.#head < this.#ends.length ? (this.#ends[this.#head] as number) : this.#bytes;
  }

  /** Forgets the lines before `line`: the splitter will not ask for them again. */
  forget(line: number): void {
    const skip = Math.min(line - this.#first, this.#ends.length - this.#head);
    if (skip <= 0) return;
    this.#head += skip;
    this.#first += skip;
    if (this.#head >= 1024 && this.#head * 2 >= this.#ends.length) {
      this.#ends = this.#ends.slice(this.#head);
      this.#head = 0;
    }
  }
}
