import { createBackpressureStream } from './create';
import { kEngine } from './stream-shell';
import type { BackpressureWritable } from './backpressure-writable';
import type { BackpressureWritableOptions } from './sink';
import type { BackpressureMetrics, BackpressureOptions, FlushFunction, ShutdownOptions, ShutdownResult } from './types';

/**
 * The design document's controller, for code that is not stream-shaped. It is a
 * facade over the strategy stream (`stream`), whose flushing it holds until
 * `start()`.
 *
 * @example
 * ```ts
 * const controller = new BackpressureController(async (items) => { await db.batchInsert('events', items); });
 * controller.start();
 * await controller.push(event);
 * await controller.drain();
 * controller.stop();
 * ```
 */
export class BackpressureController<T> {
  /** The stream doing the work: pipe into it, or listen to its `'drop'`, `'deadletter'` and `'state'` events. */
  readonly stream: BackpressureWritable<T>;
  /** The error the stream failed with; every later call rejects with it. */
  #error: Error | undefined;

  /**
   * @param options options with the delivery hook (`flush` or `writev`); the strategy picks the stream class.
   */
  constructor(options: BackpressureWritableOptions<T>);
  /**
   * @param flush delivers one batch; see {@link FlushFunction}.
   * @param config options; the strategy picks the stream class.
   */
  constructor(flush: FlushFunction<T>, config?: BackpressureOptions<T>);
  constructor(hook: FlushFunction<T> | BackpressureWritableOptions<T>, config?: BackpressureOptions<T>) {
    // Either form: createBackpressureStream and the class check the arguments as they come.
    this.stream = createBackpressureStream(hook as FlushFunction<T>, config);
    this.stream[kEngine].setPaused(true);
    this.stream.on('error', (error: Error) => {
      this.#error = error;
    });
  }

  /** Begins flushing: full batches at once, partial ones on the adaptive interval. */
  start(): void {
    this.stream[kEngine].setPaused(false);
  }

  /** Halts flushing; held items stay held (`drain()` still flushes them). */
  stop(): void {
    this.stream[kEngine].setPaused(true);
  }

  /**
   * Offers `item`. Resolves `true` when it was accepted, `false` when the strategy
   * dropped it (block waits for room up to `maxBlockTimeMs` first). Rejects once
   * the stream has failed.
   *
   * @example
   * ```ts
   * if (!(await controller.push(event))) stats.shed++;
   * ```
   */
  push(item: T): Promise<boolean> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.stream.write(item, (error, accepted) => {
        if (error) reject(this.#error ?? error);
        else resolve(accepted === true);
      });
    });
  }

  /** Flushes everything held, without waiting for timers. */
  drain(): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return this.stream.drain().catch((error: unknown) => Promise.reject(this.#error ?? error));
  }

  /** Flushes for at most `timeoutMs`, then resolves with what could not be delivered. */
  shutdown(options: ShutdownOptions): Promise<ShutdownResult<T>> {
    return this.stream.shutdown(options);
  }

  /** A snapshot of the stream's counters; see {@link BackpressureMetrics}. */
  getMetrics(): BackpressureMetrics {
    return this.stream.getMetrics();
  }
}
