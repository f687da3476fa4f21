import { Writable } from 'node:stream';
import { resolveConfig } from './config';
import { Engine, criticalCount } from './engine';
import { shutdown, watchSignal } from './lifecycle';
import { hookOf, optionsOf, writevSink } from './sink';
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
import type { BackpressureEvents, AnyListener, ListenerOf, OtherEvent } from './events';
import type { BackpressureWritableOptions } from './sink';
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
 * items in batches through its one delivery hook: a `_writev(chunks, callback)`
 * method (Node's shape), or a flush function (the first argument, or the
 * `flush` option), or the `writev` option.
 *
 * Node's own `Writable` buffers without bound and fires `'drain'` only when
 * empty, so `write()` is taken over here: items go straight into sluice's
 * bounded ring and leave it in batches through the flush engine, which calls
 * the hook with one batch at a time, at most `maxConcurrentFlushes` at once.
 *
 * @example
 * ```ts
 * class RowSink extends BlockingWritable<Row> {
 *   override _writev(chunks: WritevChunks<Row>, callback: WritevCallback<Row>): void {
 *     db.insertMany(chunks.map((c) => c.chunk)).then(() => callback(), callback);
 *   }
 * }
 * await pipeline(Readable.from(rows), new RowSink({ batchSize: 500 }));
 * await pipeline(Readable.from(rows), new BlockingWritable<Row>(async (batch) => { await db.insertMany(batch); }));
 * ```
 */
export abstract class BackpressureWritable<T> extends Writable {
  /** @internal */
  readonly [kEngine]: Engine<T>;
  readonly #unwatchSignal: (() => void) | undefined;
  #shutdown: Promise<ShutdownResult<T>> | undefined;

  /**
   * @param hook a flush function (see {@link FlushFunction}), or the options with the hook among
   *   them (`flush`, `writev`) or, for a class with a `_writev()` method, without one.
   * @param config with a flush function first: the options, validated at once; see {@link BackpressureConfig}.
   * @param policy the strategy's admission hook, given by the subclass.
   * @throws a `TypeError` with code `ERR_MISSING_ARGS` without a delivery hook, or
   *   `ERR_INCOMPATIBLE_OPTION_PAIR` with more than one.
   */
  protected constructor(
    hook: FlushFunction<T> | BackpressureWritableOptions<T> | undefined,
    config: BackpressureOptions<T> | undefined,
    policy: AdmissionPolicy<T>,
  ) {
    const options = optionsOf(hook, config);
    const resolved = resolveConfig(options, policy.strategy, new.target.name);
    const found = hookOf(hook, options, new.target.prototype as object);
    super({ objectMode: true, highWaterMark: criticalCount(resolved) });
    const flush = 'flush' in found ? found.flush : writevSink(this, found.writev);
    this[kEngine] = new Engine(resolved, flush, engineHost(this), policy, new.target.name);
    this.#unwatchSignal = watchSignal(this, resolved.signal);
  }

  /**
   * Offers `chunk`. Returns `false` when the producer should wait for `'drain'`
   * (block, from `critical` on); drop strategies always return `true`.
   *
   * The callback means *accepted*, not *delivered* (Node calls it once `_write`
   * handled the chunk): it runs as soon as the strategy took or dropped the item,
   * with `accepted === false` when it was dropped. Delivery happens later, per
   * batch, possibly after retries; learn of it from the sink itself (the flush
   * function resolving, the `_writev` callback), from `getMetrics().eventsFlushed`,
   * from `await sink.drain()`, or from `'finish'` (`await pipeline(...)`).
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

  /** Adds a listener; the events of {@link BackpressureEvents} are typed. */
  override on<E extends keyof BackpressureEvents<T>>(event: E, listener: ListenerOf<BackpressureEvents<T>, E>): this;
  override on<E extends string | symbol>(event: OtherEvent<BackpressureEvents<T>, E>, listener: AnyListener): this;
  override on(event: string | symbol, listener: AnyListener): this {
    return super.on(event, listener);
  }

  /** Adds a one-time listener; the events of {@link BackpressureEvents} are typed. */
  override once<E extends keyof BackpressureEvents<T>>(event: E, listener: ListenerOf<BackpressureEvents<T>, E>): this;
  override once<E extends string | symbol>(event: OtherEvent<BackpressureEvents<T>, E>, listener: AnyListener): this;
  override once(event: string | symbol, listener: AnyListener): this {
    return super.once(event, listener);
  }

  /** Removes a listener; the events of {@link BackpressureEvents} are typed. */
  override off<E extends keyof BackpressureEvents<T>>(event: E, listener: ListenerOf<BackpressureEvents<T>, E>): this;
  override off<E extends string | symbol>(event: OtherEvent<BackpressureEvents<T>, E>, listener: AnyListener): this;
  override off(event: string | symbol, listener: AnyListener): this {
    return super.off(event, listener);
  }

  /** @internal */
  override _final(callback: (error?: Error | null) => void): void {
    finalThroughEngine(this, callback);
  }

  /** @internal */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#unwatchSignal?.();
    destroyThroughEngine(this, error, callback);
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
