import { Writable } from 'node:stream';
import { incompatiblePair, invalidArgType, missingArgs, multipleCallback } from './errors';
import type { BackpressureOptions, FlushContext, FlushFunction, FlushResult } from './types';
import type { CallbackSink } from './engine/call';

/**
 * The delivery hook of a sluice Writable: which one it was given (the flush
 * argument, a `flush` or `writev` option, or a `_writev()` method), and the
 * adapter that turns a Node-shaped `_writev(chunks, callback)` into a flush
 * function, so that the engine knows only flush functions. Exactly one hook.
 */

/**
 * One item as `_writev()` receives it, in Node's shape. `encoding` is typed as in @types/node (so
 * that a `_writev` written for a plain `Writable` keeps compiling), but, as from Node's own
 * object-mode `Writable` for a `write()` without an encoding, its value is `undefined`: a sluice
 * keeps no per-write encoding.
 */
export interface WritevChunk<T> {
  chunk: T;
  encoding: BufferEncoding;
}

/**
 * The batch `_writev()` receives: at most `batchSize` chunks in write order (a full batch is
 * exactly `batchSize`), a fresh array per call (a sink may keep it), with the call's flush context
 * on it, the way Node hangs `allBuffers` on its own.
 *
 * @example
 * ```ts
 * override _writev(chunks: WritevChunks<Row>, callback: WritevCallback<Row>): void {
 *   db.insertMany(chunks.map((c) => c.chunk), { signal: chunks.signal }).then(() => callback(), callback);
 * }
 * ```
 */
export type WritevChunks<T> = WritevChunk<T>[] & {
  /** Aborted when this call is given up (flush timeout, `destroy()`, shutdown deadline); see {@link FlushContext}. */
  readonly signal: AbortSignal;
  /** 1 for the batch's first call, 2 for its first retry, and so on. */
  readonly attempt: number;
  /** With the `disk` option: the chunks' durable ids, in step with them; see {@link FlushContext}. */
  readonly ids?: readonly number[];
};

/**
 * The callback of one `_writev()` call; call it once. `callback()` or `callback(null)`: delivered.
 * `callback(error)`: failed, retried like a flush function that throws. `callback(null, result)`:
 * a {@link FlushResult}, for a partial failure. A second call destroys the stream with
 * `ERR_MULTIPLE_CALLBACK`, as Node does.
 */
export type WritevCallback<T> = (error?: Error | null, result?: FlushResult<T>) => void;

/**
 * A `_writev()` given as the `writev` option (Node's simplified construction); `this` is the stream.
 *
 * @example
 * ```ts
 * const sink = new BlockingWritable<Row>({
 *   writev(chunks, callback) {
 *     db.insertMany(chunks.map((c) => c.chunk)).then(() => callback(), callback);
 *   },
 *   batchSize: 500,
 * });
 * ```
 */
export type WritevFunction<T> = (this: Writable, chunks: WritevChunks<T>, callback: WritevCallback<T>) => void;

/**
 * What the one-argument constructors of the sluice Writables take: the options, with the delivery
 * hook among them (`flush` or `writev`), or without one when the class has a `_writev()` method.
 *
 * @example
 * ```ts
 * new BlockingWritable<Row>({ flush: async (rows, { signal }) => db.insertMany(rows, { signal }), batchSize: 500 });
 * ```
 */
export type BackpressureWritableOptions<T = unknown> = BackpressureOptions<T> &
  (
    | {
        /** Delivers one batch; see {@link FlushFunction}. */
        flush: FlushFunction<T>;
        writev?: undefined;
      }
    | {
        /** Delivers one batch, Node's way; see {@link WritevFunction}. */
        writev: WritevFunction<T>;
        flush?: undefined;
      }
    | { flush?: undefined; writev?: undefined }
  );

/** A class's own `_writev()`, if it has one (Node's `Writable.prototype._writev` is `null`). */
function writevMethod<T>(prototype: object): WritevFunction<T> | undefined {
  const method = (prototype as { _writev?: unknown })._writev;
  return typeof method === 'function' ? (method as WritevFunction<T>) : undefined;
}

/** Whether the class overrides `_write()`, which a sluice never calls. */
function overridesWrite(prototype: object): boolean {
  return (prototype as { _write?: unknown })._write !== Writable.prototype._write;
}

/** The options of a constructor call, from either form: `(flush, options?)` or `(options?)`. */
export function optionsOf<T>(
  first: FlushFunction<T> | BackpressureWritableOptions<T> | undefined,
  second: BackpressureOptions<T> | undefined,
): BackpressureOptions<T> | undefined {
  if (typeof first === 'function') return second;
  if (
    (first === undefined && second !== undefined) ||
    (first !== undefined && (first === null || typeof first !== 'object'))
  ) {
    throw invalidArgType('The "flush" argument', 'a function or an options object', first);
  }
  if (second !== undefined) {
    throw invalidArgType(
      'The second argument',
      'left out when the first is an options object (the "(flush, options)" form takes a function first)',
      second,
    );
  }
  return first;
}

/** The delivery hook, before it is bound to its stream. */
export type Hook<T> = { flush: FlushFunction<T> } | { writev: WritevFunction<T> };

/**
 * Finds the one delivery hook of a construction. `first` is the constructor's first argument and
 * `options` what {@link optionsOf} made of both; `prototype` is the constructed class's.
 */
export function hookOf<T>(
  first: FlushFunction<T> | BackpressureWritableOptions<T> | undefined,
  options: BackpressureOptions<T> | undefined,
  prototype: object,
): Hook<T> {
  const hooks = options as Partial<Record<'flush' | 'writev', unknown>> | undefined;
  const found: [string, Hook<T>][] = [];
  if (typeof first === 'function') found.push(['the "flush" argument', { flush: first }]);
  if (hooks?.flush !== undefined) {
    if (typeof hooks.flush !== 'function') throw invalidArgType('The option "flush"', 'a function', hooks.flush);
    found.push(['the "flush" option', { flush: hooks.flush as FlushFunction<T> }]);
  }
  if (hooks?.writev !== undefined) {
    if (typeof hooks.writev !== 'function') throw invalidArgType('The option "writev"', 'a function', hooks.writev);
    found.push(['the "writev" option', { writev: hooks.writev as WritevFunction<T> }]);
  }
  const method = writevMethod<T>(prototype);
  if (method !== undefined) found.push(['a _writev() method', { writev: method }]);
  const one =
    'a sluice Writable takes exactly one delivery hook: the "flush" argument, the "flush" option, the "writev" option or a _writev() method';
  if (found.length === 1) return (found[0] as [string, Hook<T>])[1];
  if (found.length === 0) {
    const why = overridesWrite(prototype)
      ? ' (a sluice delivers batches: _write() is never called, use _writev())'
      : '';
    throw missingArgs(`No delivery hook was given: ${one}${why}`);
  }
  throw incompatiblePair(`${capitalize(found.map(([name]) => name).join(' and '))} were given together: ${one}`);
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// What Node's object-mode Writable passes for a write() without an encoding (see WritevChunk).
const NO_ENCODING = undefined as unknown as BufferEncoding;

function toChunk<T>(chunk: T): WritevChunk<T> {
  return { chunk, encoding: NO_ENCODING };
}

/** Where a batch of chunks keeps its call's context (internal; `signal` reads it). */
const kContext = Symbol('sluice.context');

/**
 * `signal` on the chunks is a getter, so the call's AbortController is made only if the sink reads
 * it (see CallContext): reading the context's `signal` eagerly cost one AbortController per call
 * (about 2.5 µs), more than the rest of the adapter's work on a fast sink. One descriptor for every
 * call, defined with `Object.defineProperty` (measured cheaper per call than `defineProperties`, and
 * it leaves the sink's own `chunks.map()` faster).
 */
const SIGNAL: PropertyDescriptor = {
  get(this: { [kContext]: FlushContext }): AbortSignal {
    return this[kContext].signal;
  },
  enumerable: true,
};

/**
 * `writev` as the engine's sink, bound to `stream` once. Per call: one `{ chunk, encoding }` per
 * item, copied straight out of the batch, the array and the callback; no promise (the engine's
 * own settles on the callback). The first call of the callback (or a synchronous throw, which
 * counts as `callback(error)`) settles the call; a second destroys the stream with
 * `ERR_MULTIPLE_CALLBACK` and counts nothing: the engine saw only the first.
 */
export function writevSink<T>(stream: Writable, writev: WritevFunction<T>): CallbackSink<T> {
  return {
    deliver(source, from, count, context, done) {
      // Filled by a loop, not map(): the arrays map() returned did not all have one hidden class,
      // and the stores below deoptimized (`--trace-deopt`: "wrong map") early in every run.
      const chunks = new Array<WritevChunk<T>>(count) as WritevChunk<T>[] & {
        [kContext]: FlushContext;
        attempt: number;
        ids?: readonly number[];
      };
      for (let i = 0; i < count; i++) chunks[i] = toChunk(source[from + i] as T);
      chunks[kContext] = context;
      Object.defineProperty(chunks, 'signal', SIGNAL);
      chunks.attempt = context.attempt;
      if (context.ids !== undefined) chunks.ids = context.ids;
      let called = false;
      const settle = (failed: boolean, error: unknown, result: unknown): void => {
        if (called) {
          stream.destroy(multipleCallback(count, error));
          return;
        }
        called = true;
        done(failed, error, result);
      };
      try {
        writev.call(stream, chunks as unknown as WritevChunks<T>, (error, result) =>
          settle(Boolean(error), error, result),
        );
      } catch (error) {
        settle(true, error, undefined);
      }
    },
  };
}
