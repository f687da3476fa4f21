import { Writable } from 'node:stream';
import { resolveConfig } from './config';
import { Engine, criticalCount } from './engine';
import { invalidArgType } from './errors';
import { shutdown, watchSignal } from './lifecycle';
import {
  destroyThroughEngine,
  endThroughEngine,
  engineHost,
  finalThroughEngine,
  kEngine,
  reportEngineBuffer,
  writeToEngine,
} from './stream-shell';
import type { AdmissionPolicy } from './engine';
import type {
  BackpressureMetrics,
  BackpressureOptions,
  BackpressureState,
  FlushFunction,
  ShutdownOptions,
  ShutdownResult,
  WriteCallback,
} from './types';

/**
 * The abstract base of the four strategy streams: an object-mode `Writable`
 * whose `write()` and `'drain'` follow the buffer states, and which delivers
 * items to `flush` in batches.
 *
 * Node's own `Writable` buffers without bound and fires `'drain'` only when
 * empty, so `write()` is taken over here: items go straight into sluice's
 * bounded ring and leave it in batches through the flush engine.
 *
 * @example
 * ```ts
 * await pipeline(Readable.from(rows), new BlockingWritable(async (batch) => { await db.insert(batch); }));
 * ```
 */
export abstract class BackpressureWritable<T> extends Writable {
  /** @internal */
  readonly [kEngine]: Engine<T>;
  readonly #unwatchSignal: (() => void) | undefined;
  #shutdown: Promise<ShutdownResult<T>> | undefined;

  /**
   * @param flush delivers one batch; see {@link FlushFunction}.
   * @param config options, validated at once; see {@link BackpressureConfig}.
   * @param policy the strategy's admission hook, given by the subclass.
   */
  protected constructor(
    flush: FlushFunction<T>,
    config: BackpressureOptions<T> | undefined,
    policy: AdmissionPolicy<T>,
  ) {
    if (typeof flush !== 'function') throw invalidArgType('The "flush" argument', 'a function', flush);
    const resolved = resolveConfig(config, policy.strategy, new.target.name);
    super({ objectMode: true, highWaterMark: criticalCount(resolved) });
    this[kEngine] = new Engine(resolved, flush, engineHost(this), policy, new.target.name);
    this.#unwatchSignal = watchSignal(this, resolved.signal);
  }

  /**
   * Offers `chunk`. Returns `false` when the producer should wait for `'drain'`
   * (block, from `critical` on); drop strategies always return `true`. The
   * callback gets `accepted === false` when the item was dropped.
   */
  override write(chunk: T, callback?: WriteCallback): boolean;
  override write(chunk: T, encoding: BufferEncoding | undefined, callback?: WriteCallback): boolean;
  // Lets the type checker match Node's write(string | Uint8Array) signature, so that pipeline() and
  // pipe() accept a sluice, while a call with anything but a T is still an error.
  override write(chunk: never, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean;
  override write(chunk: T, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    return writeToEngine(this, chunk, encoding, callback);
  }

  /** Ends the stream; a last `chunk` goes through the strategy like any other write. */
  override end(chunk?: unknown, encoding?: unknown, callback?: unknown): this {
    endThroughEngine(this, chunk, encoding, callback);
    return this;
  }

  /** @internal */
  override _final(callback: (error?: Error | null) => void): void {
    finalThroughEngine(this, () => callback());
  }

  /** @internal */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#unwatchSignal?.();
    callback(destroyThroughEngine(this, error));
  }

  /**
   * The current state; `'state'` events report every change.
   *
   * @example
   * ```ts
   * if (sink.state === BackpressureState.CRITICAL) response.setHeader('Retry-After', '1');
   * ```
   */
  get state(): BackpressureState {
    return this[kEngine].state;
  }

  /**
   * A snapshot of the counters. Allocates one object; walks no buffer.
   *
   * @example
   * ```ts
   * const { eventsFlushed, eventsDropped, bufferUtilization } = sink.getMetrics();
   * ```
   */
  getMetrics(): BackpressureMetrics {
    return this[kEngine].getMetrics();
  }

  /**
   * Flushes everything held now, without waiting for timers; resolves once nothing is held.
   * The stream stays open.
   *
   * @example
   * ```ts
   * await sink.drain(); // e.g. before a checkpoint
   * ```
   */
  drain(): Promise<void> {
    return this[kEngine].drain();
  }

  /**
   * Ends the stream and flushes for at most `timeoutMs`; then hands what is left to
   * the dead-letter path, destroys the stream without an error, and resolves with it.
   * Calling it again returns the same promise.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', async () => {
   *   const { undelivered } = await sink.shutdown({ timeoutMs: 10_000 });
   *   process.exit(undelivered.length === 0 ? 0 : 1);
   * });
   * ```
   */
  shutdown(options: ShutdownOptions): Promise<ShutdownResult<T>> {
    this.#shutdown ??= shutdown(this, this[kEngine], options);
    return this.#shutdown;
  }
}

reportEngineBuffer(BackpressureWritable.prototype);
