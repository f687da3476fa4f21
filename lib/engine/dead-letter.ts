import { BackpressureError } from '../errors';
import type { DeadLetterHandler } from '../types';

/**
 * Where undeliverable items go: `onDeadLetter` and `'deadletter'` listeners, or,
 * with neither, nowhere but the error the stream fails with. Also the process
 * warnings of last resort. Owns no counter: the caller accounts for the items.
 */

/** Bound functions of the stream (callable detached). */
export interface EventHost {
  readonly emit: (event: string, ...args: unknown[]) => boolean;
  readonly listenerCount: (event: string) => number;
}

export class DeadLetters<T> {
  readonly #host: EventHost;
  readonly #handler: DeadLetterHandler<T> | undefined;

  constructor(host: EventHost, handler: DeadLetterHandler<T> | undefined) {
    this.#host = host;
    this.#handler = handler;
  }

  hasPath(): boolean {
    return this.#handler !== undefined || this.#host.listenerCount('deadletter') > 0;
  }

  /**
   * Hands `items` on and waits for the handler. Resolves the error the stream must
   * fail with: `error` itself when there is no dead-letter path, a wrapped one when
   * the handler threw or rejected, else undefined.
   */
  async hand(items: T[], error: BackpressureError<T>): Promise<BackpressureError<T> | undefined> {
    if (!this.hasPath()) return error;
    try {
      this.#host.emit('deadletter', items, error);
      await this.#handler?.(items, error);
      return undefined;
    } catch (handlerError) {
      return handlerFailed(error, handlerError);
    }
  }

  /** On the way out: nothing is left to wait for the handler, so a failure becomes a warning. */
  handLate(items: T[], error: BackpressureError<T>): void {
    const report = (handlerError: unknown): void => warnHandlerFailed(handlerFailed(error, handlerError));
    try {
      this.#host.emit('deadletter', items, error);
      const pending = this.#handler?.(items, error);
      if (pending !== undefined) Promise.resolve(pending).catch(report);
    } catch (handlerError) {
      report(handlerError);
    }
  }
}

function handlerFailed<T>(error: BackpressureError<T>, handlerError: unknown): BackpressureError<T> {
  const why = handlerError instanceof Error ? handlerError.message : String(handlerError);
  return new BackpressureError(
    error.code,
    `The dead-letter handler failed for ${error.items.length} item(s) (${error.message}): ${why}`,
    error.items,
    error.reason,
    handlerError,
  );
}

/** A dead-letter handler failed after its stream was destroyed: the last place left to report it. */
export function warnHandlerFailed(error: Error): void {
  process.emitWarning(error, { code: 'SLUICE_DEAD_LETTER_FAILED' } as NodeJS.EmitWarningOptions);
}

/** destroy() without an error and without a dead-letter path: say what was discarded. */
export function warnDiscarded(count: number, className: string): void {
  process.emitWarning(
    `${className} was destroyed while it held ${count} item(s) and had no dead-letter path (onDeadLetter or a 'deadletter' listener): they were discarded. getMetrics().deadLettered counts them.`,
    { type: 'SluiceWarning', code: 'SLUICE_ITEMS_DISCARDED' },
  );
}

/** Drops that nobody heard, reported once per stream. */
export function warnUnheardDrops(count: number, byReason: Readonly<Record<string, number>>): void {
  const reasons = Object.entries(byReason)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason}: ${n}`)
    .join(', ');
  process.emitWarning(
    `sluice dropped ${count} item(s) with no 'drop' listener (${reasons}). Listen to 'drop' or read getMetrics().droppedByReason to see them.`,
    { type: 'SluiceDropWarning', code: 'SLUICE_ITEMS_DROPPED' },
  );
}
