import { inspect } from 'node:util';
import type { DeadLetterReason } from './types';

/**
 * Codes a {@link BackpressureError} can carry. Branch on these, never on message text.
 *
 * @example
 * ```ts
 * if (error instanceof BackpressureError && error.code === 'ERR_FLUSH_TIMEOUT') alertSlowSink();
 * ```
 */
export type BackpressureErrorCode =
  | 'ERR_FLUSH_FAILED'
  | 'ERR_FLUSH_TIMEOUT'
  | 'ERR_INVALID_FLUSH_RESULT'
  | 'ERR_STREAM_DESTROYED'
  | 'ERR_SHUTDOWN_TIMEOUT';

/**
 * Codes carried by the `TypeError`/`RangeError` thrown for bad arguments (Node's own codes).
 *
 * @example
 * ```ts
 * try {
 *   new BlockingWritable(flush, { batchSize: 0 });
 * } catch (error) {
 *   (error as { code: ArgumentErrorCode }).code; // 'ERR_OUT_OF_RANGE'
 * }
 * ```
 */
export type ArgumentErrorCode =
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_MISSING_ARGS'
  | 'ERR_INCOMPATIBLE_OPTION_PAIR';

/**
 * An error about items: a failed or timed-out flush, a malformed flush result, a
 * destroyed stream or a shutdown deadline. `items` holds every item it is about,
 * so nothing it reports is lost.
 *
 * @example
 * ```ts
 * try {
 *   await pipeline(source, sink);
 * } catch (error) {
 *   if (error instanceof BackpressureError) await saveForReplay(error.items);
 *   throw error;
 * }
 * ```
 */
export class BackpressureError<T = unknown> extends Error {
  /** Always `'BackpressureError'`. */
  override readonly name = 'BackpressureError';
  /** What went wrong; stable, unlike the message. */
  readonly code: BackpressureErrorCode;
  /** The items not delivered. */
  readonly items: T[];
  /** Why they went to the dead-letter path, when they did. */
  readonly reason: DeadLetterReason | undefined;

  /** Use the static factories; the constructor is for errors that wrap another one. */
  constructor(
    code: BackpressureErrorCode,
    message: string,
    items: T[] = [],
    reason?: DeadLetterReason,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.items = items;
    this.reason = reason;
  }

  /** The sink threw or rejected on every attempt. */
  static flushFailed<T>(items: T[], reason: DeadLetterReason, cause: unknown): BackpressureError<T> {
    return new BackpressureError(
      'ERR_FLUSH_FAILED',
      `Flush failed for ${count(items)}: ${describe(cause)}`,
      items,
      reason,
      cause,
    );
  }

  /** The sink did not settle within `flushTimeoutMs`. */
  static flushTimeout<T>(items: T[], reason: DeadLetterReason, timeoutMs: number): BackpressureError<T> {
    return new BackpressureError(
      'ERR_FLUSH_TIMEOUT',
      `Flush of ${count(items)} did not settle within flushTimeoutMs (${timeoutMs} ms)`,
      items,
      reason,
    );
  }

  /** The flush function resolved something that is not a FlushResult for its batch. */
  static invalidResult<T>(items: T[], problem: string, result: unknown): BackpressureError<T> {
    return new BackpressureError(
      'ERR_INVALID_FLUSH_RESULT',
      `The flush function's result for a batch of ${items.length} is invalid: ${problem}. Received ${inspect(result, { depth: 1 })}`,
      items,
      'invalid_result',
    );
  }

  /** The stream was destroyed (or aborted) while it held items. */
  static destroyed<T>(items: T[], cause: unknown): BackpressureError<T> {
    const why = cause === undefined || cause === null ? '' : `: ${describe(cause)}`;
    return new BackpressureError(
      'ERR_STREAM_DESTROYED',
      `The stream was destroyed while it held ${count(items)}${why}`,
      items,
      'destroyed',
      cause ?? undefined,
    );
  }

  /** `shutdown()` reached its deadline with items still undelivered. */
  static shutdownTimeout<T>(items: T[], timeoutMs: number): BackpressureError<T> {
    return new BackpressureError(
      'ERR_SHUTDOWN_TIMEOUT',
      `Shutdown reached its deadline (${timeoutMs} ms) with ${count(items)} undelivered`,
      items,
      'shutdown_timeout',
    );
  }
}

interface CodedError {
  code: ArgumentErrorCode;
}

/** `TypeError` for an argument of the wrong type, e.g. `The option "batchSize" must be of type number. Received 'ten'`. */
export function invalidArgType(name: string, expected: string, value: unknown): TypeError & CodedError {
  return coded(new TypeError(`${name} must be ${expected}. Received ${received(value)}`), 'ERR_INVALID_ARG_TYPE');
}

/** `RangeError` for a value outside its range, e.g. `The option "batchSize" must be an integer >= 1. Received 0`. */
export function outOfRange(name: string, range: string, value: unknown): RangeError & CodedError {
  return coded(new RangeError(`${name} must be ${range}. Received ${received(value)}`), 'ERR_OUT_OF_RANGE');
}

/** `RangeError` for a value that is not allowed, e.g. an unknown strategy or option. */
export function invalidArgValue(name: string, problem: string, value: unknown): RangeError & CodedError {
  return coded(new RangeError(`${name} ${problem}. Received ${received(value)}`), 'ERR_INVALID_ARG_VALUE');
}

/** `TypeError` for a required argument that is missing, e.g. a sluice Writable given no delivery hook. */
export function missingArgs(message: string): TypeError & CodedError {
  return coded(new TypeError(message), 'ERR_MISSING_ARGS');
}

/** `TypeError` for two arguments or options that exclude each other, e.g. two delivery hooks. */
export function incompatiblePair(message: string): TypeError & CodedError {
  return coded(new TypeError(message), 'ERR_INCOMPATIBLE_OPTION_PAIR');
}

/**
 * The error a stream is destroyed with when a `_writev()` callback is called a second time
 * (or the call threw after calling it), as Node does for `_write`/`_writev`. `cause` is what
 * the second call passed (or threw), if anything.
 */
export function multipleCallback(batchLength: number, cause: unknown): Error & { code: 'ERR_MULTIPLE_CALLBACK' } {
  const error = new Error(
    `Callback called multiple times: the _writev() callback of a batch of ${batchLength === 1 ? '1 item' : `${batchLength} items`}`,
    cause === undefined || cause === null ? undefined : { cause },
  ) as Error & { code: 'ERR_MULTIPLE_CALLBACK' };
  error.code = 'ERR_MULTIPLE_CALLBACK';
  return error;
}

/** The error an aborted `signal` destroys a stream with, as Node makes it. */
export function abortError(reason: unknown): Error & { code: 'ABORT_ERR' } {
  const error = new Error('The operation was aborted', { cause: reason }) as Error & { code: 'ABORT_ERR' };
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  return error;
}

function coded<E extends Error>(error: E, code: ArgumentErrorCode): E & CodedError {
  return Object.assign(error, { code });
}

function received(value: unknown): string {
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  return inspect(value, { depth: 0, breakLength: Infinity });
}

function count(items: readonly unknown[]): string {
  return items.length === 1 ? '1 item' : `${items.length} items`;
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : inspect(cause, { depth: 0 });
}
