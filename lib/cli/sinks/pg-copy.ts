/** COPY's text format: tab-separated, `\N` for NULL, backslash escapes for the separators. */
export function copyField(value: string | null): string {
  if (value === null) return '\\N';
  return /[\\\t\n\r]/.test(value) ? value.replace(/[\\\t\n\r]/g, escapeChar) : value;
}

function escapeChar(char: string): string {
  switch (char) {
    case '\t':
      return '\\t';
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    default:
      return '\\\\';
  }
}

interface PgConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

/**
 * A `COPY ... FROM STDIN` with the whole batch as its data, as a pg "submittable"
 * (the interface pg-cursor and pg-copy-streams use), so that no extra package is
 * needed for one buffer per batch.
 */
export class CopyFrom {
  readonly #text: string;
  readonly #payload: Buffer;
  #done: ((error?: Error) => void) | undefined;

  constructor(text: string, payload: Buffer, done: (error?: Error) => void) {
    this.#text = text;
    this.#payload = payload;
    this.#done = done;
  }

  submit(connection: PgConnection): void {
    connection.query(this.#text);
  }

  handleCopyInResponse(connection: PgConnection): void {
    connection.sendCopyFromChunk(this.#payload);
    connection.endCopyFrom();
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    this.#settle();
  }

  /** A server error (ReadyForQuery follows) or a dead connection (nothing follows): settle now either way; pg queues the next query until ReadyForQuery. */
  handleError(error: Error): void {
    this.#settle(error);
  }

  #settle(error?: Error): void {
    const done = this.#done;
    this.#done = undefined;
    done?.(error);
  }
}
