import { Duplex } from 'node:stream';
import { resolveConfig } from './config';
import { Engine, criticalCount } from './engine';
import { invalidArgValue } from './errors';
import { shutdown, watchSignal } from './lifecycle';
import { createPolicy } from './policies';
import {
  destroyThroughEngine,
  endThroughEngine,
  engineHost,
  finalThroughEngine,
  kEngine,
  reportEngineBuffer,
  writeToEngine,
} from './stream-shell';
import type { BackpressureTransformEvents, AnyListener, ListenerOf, OtherEvent } from './events';
import type { BackpressureWritableOptions } from './sink';
import type {
  BackpressureMetrics,
  BackpressureOptions,
  BackpressureState,
  ShutdownOptions,
  ShutdownResult,
  WriteCallback,
} from './types';

/** Options about a sink, which the Transform has not: it pushes its batches downstream. */
const SINK_OPTIONS: readonly [keyof BackpressureWritableOptions, string][] = [
  ['flush', 'it has no sink: its batches are pushed downstream; pipe them into one'],
  ['writev', 'it has no sink: its batches are pushed downstream; pipe them into one'],
  ['flushTimeoutMs', 'pushing a batch downstream cannot fail'],
  ['retry', 'pushing a batch downstream cannot fail'],
  ['fallbackToSequential', 'pushing a batch downstream cannot fail'],
  ['isolateFailures', 'pushing a batch downstream cannot fail'],
];

/**
 * An object-mode Duplex: items in, `T[]` batches out, with the same states and
 * strategies as the Writables. A slow reader is a slow sink: while the readable
 * side is full, batches wait, the buffer fills and the strategy engages.
 *
 * @example
 * ```ts
 * await pipeline(source, new BackpressureTransform<Row>({ batchSize: 500, strategy: 'block' }), batchWriter);
 * ```
 */
export class BackpressureTransform<T> extends Duplex {
  /** @internal */
  readonly [kEngine]: Engine<T>;
  readonly #unwatchSignal: (() => void) | undefined;
  /** Resolve the batch pushes that found the readable side full (one per flush slot), once it is read. */
  #resumePushes: (() => void)[] = [];
  #shutdown: Promise<ShutdownResult<T>> | undefined;

  /** @param config the same options as the Writables, less those about a failing sink. */
  constructor(config?: BackpressureOptions<T>) {
    const resolved = resolveConfig(config);
    for (const [name, why] of SINK_OPTIONS) {
      // Read as a record: a JavaScript caller may pass the Writables' own options here.
      const value = (config as Record<string, unknown> | undefined)?.[name];
      if (value !== undefined) {
        throw invalidArgValue(`The option "${name}"`, `does not apply to BackpressureTransform (${why})`, value);
      }
    }
    // One batch may wait on the readable side; more would be memory outside the bound.
    super({
      writableObjectMode: true,
      readableObjectMode: true,
      writableHighWaterMark: criticalCount(resolved),
      readableHighWaterMark: 1,
    });
    this[kEngine] = new Engine(
      resolved,
      this.#pushBatch,
      engineHost(this),
      createPolicy<T>(resolved.strategy),
      'BackpressureTransform',
    );
    this.#unwatchSignal = watchSignal(this, resolved.signal);
  }

  readonly #pushBatch = (batch: T[]): Promise<void> | undefined => {
    if (this.push(batch)) return undefined;
    return new Promise((resolve) => {
      this.#resumePushes.push(resolve);
    });
  };

  /** @internal */
  override _read(): void {
    // The batches are already in the readable buffer: reading means all of them went downstream.
    const resumes = this.#resumePushes;
    this.#resumePushes = [];
    for (const resume of resumes) resume();
  }

  /** Offers `chunk`, as {@link BackpressureWritable.write} does. */
  override write(chunk: T, callback?: WriteCallback): boolean;
  override write(chunk: T, encoding: BufferEncoding | undefined, callback?: WriteCallback): boolean;
  // Lets the type checker match Node's write(string | Uint8Array) signature, so that pipeline() and
  // pipe() accept a sluice, while a call with anything but a T is still an error.
  override write(chunk: never, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean;
  override write(chunk: T, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    return writeToEngine(this, chunk, encoding, callback);
  }

  /** Ends the writable side; a last `chunk` goes through the strategy like any other write. */
  override end(chunk?: unknown, encoding?: unknown, callback?: unknown): this {
    endThroughEngine(this, chunk, encoding, callback);
    return this;
  }

  /**
   * Reads one batch, or `null` when none is buffered on the readable side.
   *
   * (`for await (const batch of transform)` yields `T[]` too, but stays typed as Node's iterator of
   * `any`: a `T[]` iterator would not fit the `NodeJS.ReadableStream` that @types/node's `pipeline()`
   * asks of a middle stage, and TypeScript's `for await` reads every overload of the iterator at once.)
   */
  override read(size?: number): T[] | null;
  // Lets the type checker match NodeJS.ReadableStream's read(): string | Buffer, so that pipeline()
  // accepts the Transform; no call can pick it (its `this` is never).
  override read(this: never, size?: number): never;
  override read(size?: number): T[] | null {
    return super.read(size) as T[] | null;
  }

  /** Adds a listener; the events of {@link BackpressureTransformEvents} are typed. */
  override on<E extends keyof BackpressureTransformEvents<T>>(
    event: E,
    listener: ListenerOf<BackpressureTransformEvents<T>, E>,
  ): this;
  override on<E extends string | symbol>(
    event: OtherEvent<BackpressureTransformEvents<T>, E>,
    listener: AnyListener,
  ): this;
  override on(event: string | symbol, listener: AnyListener): this {
    return super.on(event, listener);
  }

  /** Adds a one-time listener; the events of {@link BackpressureTransformEvents} are typed. */
  override once<E extends keyof BackpressureTransformEvents<T>>(
    event: E,
    listener: ListenerOf<BackpressureTransformEvents<T>, E>,
  ): this;
  override once<E extends string | symbol>(
    event: OtherEvent<BackpressureTransformEvents<T>, E>,
    listener: AnyListener,
  ): this;
  override once(event: string | symbol, listener: AnyListener): this {
    return super.once(event, listener);
  }

  /** Removes a listener; the events of {@link BackpressureTransformEvents} are typed. */
  override off<E extends keyof BackpressureTransformEvents<T>>(
    event: E,
    listener: ListenerOf<BackpressureTransformEvents<T>, E>,
  ): this;
  override off<E extends string | symbol>(
    event: OtherEvent<BackpressureTransformEvents<T>, E>,
    listener: AnyListener,
  ): this;
  override off(event: string | symbol, listener: AnyListener): this {
    return super.off(event, listener);
  }

  /** @internal */
  override _final(callback: (error?: Error | null) => void): void {
    finalThroughEngine(this, (error) => {
      if (error) return callback(error);
      this.push(null);
      callback();
    });
  }

  /** @internal */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#unwatchSignal?.();
    this.#resumePushes = [];
    destroyThroughEngine(this, error, callback);
  }

  /** The current state; `'state'` events report every change. */
  get state(): BackpressureState {
    return this[kEngine].state;
  }

  /** A snapshot of the counters; see {@link BackpressureMetrics}. */
  getMetrics(): BackpressureMetrics {
    return this[kEngine].getMetrics();
  }

  /** Pushes everything held downstream now; resolves once nothing is held. */
  drain(): Promise<void> {
    return this[kEngine].drain();
  }

  /** Ends the writable side and flushes for at most `timeoutMs`; then resolves with what is left. */
  shutdown(options: ShutdownOptions): Promise<ShutdownResult<T>> {
    this.#shutdown ??= shutdown(this, this[kEngine], options);
    return this.#shutdown;
  }
}

reportEngineBuffer(BackpressureTransform.prototype);
