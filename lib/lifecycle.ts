import { abortError, invalidArgType, outOfRange } from './errors';
import type { Engine } from './engine';
import type { ShutdownOptions, ShutdownResult } from './types';
import type { Duplex, Writable } from 'node:stream';

/** The shutdown deadline is a timer too; Node caps those at 2^31 - 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Destroys `stream` when `signal` aborts. Returns the function that stops
 * watching (called on destroy, so a long-lived signal does not keep the stream).
 */
export function watchSignal(stream: Writable | Duplex, signal: AbortSignal | undefined): (() => void) | undefined {
  if (signal === undefined) return undefined;
  const onAbort = (): void => {
    stream.destroy(abortError(signal.reason));
  };
  if (signal.aborted) {
    process.nextTick(onAbort);
    return undefined;
  }
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/**
 * Stops accepting, flushes, and at the deadline hands every item not confirmed
 * delivered to the dead-letter path, destroys the stream without an error and
 * resolves with those items. The deadline timer is not unref'd: a shutdown in
 * progress keeps the process alive until it is done.
 */
export function shutdown<T>(
  stream: Writable | Duplex,
  engine: Engine<T>,
  options: ShutdownOptions,
): Promise<ShutdownResult<T>> {
  if (options === null || typeof options !== 'object')
    throw invalidArgType('The "options" argument', 'an object', options);
  const { timeoutMs } = options;
  if (typeof timeoutMs !== 'number') throw invalidArgType('The option "timeoutMs"', 'of type number', timeoutMs);
  if (!(timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS)) {
    throw outOfRange('The option "timeoutMs"', `a number of milliseconds from 0 to ${MAX_TIMER_MS}`, timeoutMs);
  }
  if (stream.destroyed) return Promise.resolve({ undelivered: [] });
  const lostBefore = engine.lost.length;
  engine.beginShutdown();
  return new Promise((resolve, reject) => {
    const settle = (): void => {
      clearTimeout(deadline);
      stream.off('finish', onDone);
      stream.off('close', onDone);
      stream.off('error', onError);
    };
    // Finished: nothing lost. Closed otherwise (a destroy() during the shutdown): what it took.
    const onDone = (): void => {
      settle();
      resolve({ undelivered: engine.lost.slice(lostBefore) });
    };
    const onError = (error: Error): void => {
      settle();
      reject(error);
    };
    const deadline = setTimeout(() => {
      settle();
      const undelivered = engine.abandon(timeoutMs);
      stream.destroy();
      resolve({ undelivered });
    }, timeoutMs);
    stream.once('finish', onDone);
    stream.once('close', onDone);
    stream.once('error', onError);
    if (!stream.writableEnded) stream.end();
  });
}
