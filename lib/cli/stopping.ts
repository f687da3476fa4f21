import { describe } from './errors';

/**
 * How a run ends early, in two steps that every phase honours:
 *
 * - `reading` aborts on the first SIGINT/SIGTERM: no more input is read, and what
 *   was read still goes to the database, for `--shutdown-timeout` at most;
 * - `giveUp` aborts at that deadline, on a second signal, or when the run cannot
 *   go on (`fail()`: the database lost, a column that cannot be added, the rejects
 *   file failing): whatever waits on the database is cancelled and what is not
 *   inserted goes to the rejects file. Its reason's message says why.
 *
 * Owns the signal listeners and the deadline timer, and nothing else.
 */
export class Stopping {
  readonly reading = new AbortController();
  readonly giveUp = new AbortController();
  /** The first signal received, if any. */
  signal: NodeJS.Signals | undefined;
  /** What stopped the run (see fail()), if anything did. */
  fatal: unknown;
  readonly #shutdownTimeoutMs: number;
  /** One line on stderr, so the user sees the key press was heard. */
  readonly #say: (message: string) => void;
  #deadline: NodeJS.Timeout | undefined;
  /** Called when reading stops (the parser discards a partial last line). */
  onStopReading: () => void = () => undefined;

  /** What the run does with what it read, in its messages: `insert` (ingest) or `publish`. */
  readonly #verb: string;

  constructor(shutdownTimeoutMs: number, say: (message: string) => void, verb: 'insert' | 'publish' = 'insert') {
    this.#shutdownTimeoutMs = shutdownTimeoutMs;
    this.#say = say;
    this.#verb = verb;
  }

  install(): void {
    process.on('SIGINT', this.#onSignal);
    process.on('SIGTERM', this.#onSignal);
  }

  uninstall(): void {
    clearTimeout(this.#deadline);
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
  }

  /** Stop reading; what was read still flows to the database until the deadline. */
  stopReading(): void {
    if (this.reading.signal.aborted) return;
    this.onStopReading();
    this.reading.abort();
    const ms = this.#shutdownTimeoutMs;
    this.#deadline = setTimeout(
      () => this.giveUp.abort(new Error(`not ${this.#verb}ed within --shutdown-timeout (${ms} ms)`)),
      ms,
    );
  }

  /** Giving up: the deadline timer has no more to do. */
  clearDeadline(): void {
    clearTimeout(this.#deadline);
  }

  /** The run cannot go on: remember why (the first reason only) and give up. */
  fail(error: unknown, lost: boolean): void {
    if (this.fatal !== undefined) return;
    this.fatal = error;
    this.giveUp.abort(
      new Error(
        lost
          ? `the ${this.#verb === 'insert' ? 'database' : 'broker'} was lost: ${describe(error)}`
          : `not ${this.#verb}ed: ${describe(error)}`,
      ),
    );
  }

  readonly #onSignal = (name: NodeJS.Signals): void => {
    if (this.signal !== undefined) {
      if (this.giveUp.signal.aborted) return;
      this.#say(`${name} again: giving up; what is not ${this.#verb}ed goes to the rejects file`);
      this.giveUp.abort(new Error(`interrupted by a second ${name}`));
      return;
    }
    this.signal = name;
    this.#say(
      `${name}: reading stopped; ${this.#verb}ing what was read for up to ${this.#shutdownTimeoutMs} ms (--shutdown-timeout); a second signal gives up`,
    );
    this.stopReading();
  };
}
