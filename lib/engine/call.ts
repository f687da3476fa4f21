import { BackpressureError } from '../errors';
import { judge } from './judge';
import type { FlushContext, FlushFunction } from '../types';
import type { KeepAlive } from './keep-alive';
import type { Outcome } from './judge';

/**
 * Sink calls: one call of the flush function with its `{ signal, attempt }`
 * context, its timeout (which aborts the signal and abandons the call), and the
 * bound on unsettled calls: a call abandoned at its timeout may still be running,
 * so at most 2 × maxConcurrentFlushes calls are unsettled at once, and a try that
 * finds no room within flushTimeoutMs times out too. Also the retry backoff.
 * Knows nothing of counters or what an outcome means for the items.
 */

export interface Batch<T> {
  items: T[];
  /** Sizes of `items`, taken once at admission; only with a byte bound. */
  sizes: number[] | undefined;
  /** Durable ids of `items`; only with a disk log. */
  ids: number[] | undefined;
  /** Items before it are resolved. */
  start: number;
  /**
   * How many items it was cut with. A call of fewer carries part of it (the items a FlushResult
   * failed, or an isolating probe): its failure is the items', not the sink's load or the size.
   */
  readonly cut: number;
  /** Sink calls made for this batch so far (the context's `attempt` of the last one). */
  attempt: number;
  /** Tries so far: calls, and waits for a call slot that timed out (what the retry budget counts). */
  tries: number;
  /** Taken over by destroy() or a shutdown deadline: its outcome no longer counts. */
  abandoned: boolean;
  /** The call in progress. */
  /** The context of the call in progress (its signal is aborted on destroy). */
  context: CallContext | undefined;
  /** The call's timeout or the retry backoff, whichever the batch waits on. */
  timer: NodeJS.Timeout | undefined;
  /** Ends the current wait early (on destroy). */
  wake: (() => void) | undefined;
  /** disk: the acknowledgements of its items being recorded (see Delivery.run for when the slot waits on them). */
  acking: Promise<void> | undefined;
}

/**
 * A sink that calls back, Node's way (the `_writev` adapter in sink.ts): it is handed the call's
 * items as a range of the batch, so that it copies them once into its own shape, and calls `done`
 * exactly once (a synchronous throw included). Called without a promise of its own in between: on
 * a fast sink, the promise, its executor and its reaction per call were measurable.
 */
export interface CallbackSink<T> {
  deliver(
    source: readonly T[],
    from: number,
    count: number,
    context: FlushContext,
    done: (failed: boolean, cause: unknown, result: unknown) => void,
  ): void;
}

/** What the engine calls: a flush function, or a sink that calls back. */
export type SinkHook<T> = FlushFunction<T> | CallbackSink<T>;

/** What a settled or timed-out call tells the batch size and concurrency controllers. */
export interface CallRecorder {
  /**
   * A call of `items` items settled after `latencyMs`, delivering `delivered` of them (0 if it
   * failed; fewer than `items` if its FlushResult failed some). `counts`: the controllers may learn
   * from it: it carried its whole batch (its first call or a retry of all of it, not the items a
   * FlushResult failed or an isolating probe: see {@link Batch.cut}), and its result could be read
   * (an invalid FlushResult is the flush function's bug, not the sink's load or the size).
   */
  latency: (latencyMs: number, items: number, delivered: number, counts: boolean) => void;
  /** A call of `items` items was given up at its timeout; `counts` as above. */
  timeout: (items: number, counts: boolean) => void;
}

export interface CallConfig {
  readonly maxConcurrentFlushes: number;
  readonly flushTimeoutMs: number;
  readonly retry: { readonly initialDelayMs: number; readonly maxDelayMs: number };
}

export const ABANDONED: Outcome<never> = Object.freeze({
  kind: 'failed',
  failed: undefined,
  cause: undefined,
  timedOut: false,
});
const TIMED_OUT: Outcome<never> = Object.freeze({
  kind: 'failed',
  failed: undefined,
  cause: undefined,
  timedOut: true,
});
const now = (): number => performance.now();
const same = <R>(outcome: R): R => outcome;

/**
 * The flush context. Its AbortController is made only when the sink reads
 * `signal`: creating one per call costs more than the rest of a fast sink's call
 * (an EventTarget, and garbage). An abort before that is kept and applied then.
 */
export class CallContext implements FlushContext {
  readonly attempt: number;
  readonly ids: readonly number[] | undefined;
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  constructor(attempt: number, ids?: readonly number[]) {
    this.attempt = attempt;
    this.ids = ids;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

export class SinkCalls<T> {
  readonly #config: CallConfig;
  readonly #flush: FlushFunction<T>;
  /** The hook, when it calls back: the untimed path calls it without a promise of its own. */
  readonly #callback: CallbackSink<T> | undefined;
  readonly #keepAlive: KeepAlive;
  /** Told every settled call's sink time and items; see {@link CallRecorder}. */
  readonly #recordLatency: CallRecorder['latency'];
  /** Told of every call given up at its timeout (it may settle later: that is not told). */
  readonly #recordTimeout: CallRecorder['timeout'];
  /** Sink calls not yet settled, abandoned (timed-out) ones included; at most 2 × maxConcurrentFlushes. */
  #unsettled = 0;
  /** Batches waiting for #unsettled to fall below its bound, in arrival order. */
  readonly #gateQueue: (() => void)[] = [];

  constructor(config: CallConfig, hook: SinkHook<T>, keepAlive: KeepAlive, record: CallRecorder) {
    this.#config = config;
    if (typeof hook === 'function') {
      this.#flush = hook;
      this.#callback = undefined;
    } else {
      this.#flush = promised(hook);
      this.#callback = hook;
    }
    this.#keepAlive = keepAlive;
    this.#recordLatency = record.latency;
    this.#recordTimeout = record.timeout;
  }

  /**
   * Calls the sink with the first `count` unresolved items, under the call bound and the timeout.
   * No async function on the common path (room under the bound, no timeout): each one costs a
   * promise and microtask turns per batch, which a fast sink's batch of 100 items feels, most of all
   * before the JIT has compiled them.
   */
  call(batch: Batch<T>, count: number): Promise<Outcome<T>> {
    // The common case takes its place under the call bound synchronously, so the first call of a
    // batch starts in the same turn as the write that cut it.
    if (this.#roomUnderBound()) {
      this.#unsettled++;
      return this.#start(batch, count);
    }
    return this.#callWhenRoom(batch, count);
  }

  async #callWhenRoom(batch: Batch<T>, count: number): Promise<Outcome<T>> {
    const waited = await this.#acquire(batch);
    if (waited === 'timeout') {
      // No call could start within flushTimeoutMs: a try that timed out, so a black-holed sink
      // that ignores its signal still ends in retries and dead letters, never in a stall.
      batch.tries++;
      return TIMED_OUT;
    }
    if (waited === 'abandoned') return ABANDONED;
    if (batch.abandoned) {
      this.#releaseCall();
      return ABANDONED;
    }
    return this.#start(batch, count);
  }

  /**
   * call(), with the outcome handed to `next` rather than to a promise of call()'s own. On the
   * common path (an untimed flush function, room under the bound) that is one `then` per call on
   * the sink's promise instead of two: a promise and a microtask turn less per batch.
   */
  callThen(batch: Batch<T>, count: number, next: (outcome: Outcome<T>) => void): void {
    if (this.#callback === undefined && this.#config.flushTimeoutMs === Infinity && this.#roomUnderBound()) {
      this.#unsettled++;
      const context = this.#begin(batch, count);
      const started = now();
      void this.#untimed(batch, this.#itemsOfCall(batch, count), context, started, next);
    } else void this.call(batch, count).then(next);
  }

  /** Whether a call may start now: fewer than 2 × maxConcurrentFlushes calls unsettled. */
  #roomUnderBound(): boolean {
    return this.#unsettled < 2 * this.#config.maxConcurrentFlushes;
  }

  /**
   * The sink's array for a call: its own copy, since one that empties it as it goes (`while
   * (items.length) insert(items.shift())`) and then fails must not empty the batch that is retried.
   */
  #itemsOfCall(batch: Batch<T>, count: number): T[] {
    return batch.items.slice(batch.start, batch.start + count);
  }

  /** A call's try and context. */
  #begin(batch: Batch<T>, count: number): CallContext {
    batch.tries++;
    const ids = batch.ids?.slice(batch.start, batch.start + count);
    const context = new CallContext(++batch.attempt, ids);
    batch.context = context;
    return context;
  }

  /** The call itself, holding its place under the bound. */
  #start(batch: Batch<T>, count: number): Promise<Outcome<T>> {
    const context = this.#begin(batch, count);
    const started = now();
    const untimed = this.#config.flushTimeoutMs === Infinity;
    const callback = this.#callback;
    if (untimed && callback !== undefined) return this.#untimedCallback(callback, batch, count, context, started);
    const items = this.#itemsOfCall(batch, count);
    if (untimed) return this.#untimed(batch, items, context, started, same);
    return new Promise<Outcome<T>>((resolve) => {
      let done = false;
      const finish = (outcome: Outcome<T>): void => {
        if (done) return;
        done = true;
        this.#keepAlive.clearTimeout(batch.timer);
        batch.timer = undefined;
        batch.wake = undefined;
        batch.context = undefined;
        resolve(outcome);
      };
      batch.wake = () => finish(ABANDONED);
      const timeoutMs = this.#config.flushTimeoutMs;
      batch.timer = this.#keepAlive.setTimeout(() => {
        batch.timer = undefined;
        // The call is abandoned, not settled: it keeps its place under the call bound until it settles.
        context.abort(BackpressureError.flushTimeout(items, 'retries_exhausted', timeoutMs));
        this.#recordTimeout(items.length, items.length === batch.cut);
        finish(TIMED_OUT);
      }, timeoutMs);
      this.#invoke(items, context).then(
        (result) => {
          this.#releaseCall();
          if (!done) finish(this.#judged(items, 0, items.length, result, started, batch));
        },
        (cause: unknown) => {
          this.#releaseCall();
          if (!done) finish(this.#failed(cause, started, items.length, batch));
        },
      );
    });
  }

  /**
   * A call without a timeout: one `then` on the sink's promise. A destroy() meanwhile only
   * marks the batch abandoned; the outcome is ABANDONED then.
   */
  #untimed<R>(
    batch: Batch<T>,
    items: T[],
    context: CallContext,
    started: number,
    then: (outcome: Outcome<T>) => R,
  ): Promise<R> {
    return this.#invoke(items, context).then(
      (result) =>
        then(this.#settledUntimed(batch, context, this.#judged(items, 0, items.length, result, started, batch))),
      (cause: unknown) => then(this.#settledUntimed(batch, context, this.#failed(cause, started, items.length, batch))),
    );
  }

  /**
   * An untimed call of a sink that calls back: one promise, settled by its callback. The sink
   * copies its items out of the batch itself, and its result is judged on the same range of the
   * batch (`batch.items` is replaced, never changed, so the range still holds them).
   */
  #untimedCallback(
    sink: CallbackSink<T>,
    batch: Batch<T>,
    count: number,
    context: CallContext,
    started: number,
  ): Promise<Outcome<T>> {
    const source = batch.items;
    const from = batch.start;
    return new Promise((resolve) => {
      sink.deliver(source, from, count, context, (failed, cause, result) => {
        const outcome = failed
          ? this.#failed(cause, started, count, batch)
          : this.#judged(source, from, count, result, started, batch);
        resolve(this.#settledUntimed(batch, context, outcome));
      });
    });
  }

  /** An untimed call settled: its place under the bound is freed; after a destroy() its outcome is ABANDONED. */
  #settledUntimed(batch: Batch<T>, context: CallContext, outcome: Outcome<T>): Outcome<T> {
    this.#releaseCall();
    if (batch.context === context) batch.context = undefined;
    return batch.abandoned ? ABANDONED : outcome;
  }

  /** The sink's promise; a synchronous throw is a rejection. */
  #invoke(items: T[], context: CallContext): Promise<unknown> {
    try {
      const flush = this.#flush; // called bare: the sink's `this` is not the engine
      return Promise.resolve(flush(items, context));
    } catch (cause) {
      return Promise.reject(cause);
    }
  }

  /**
   * What a settled call's result means for its items, `source[from, from + count)`, its latency
   * recorded; a result that throws when read failed.
   */
  #judged(
    source: readonly T[],
    from: number,
    count: number,
    result: unknown,
    started: number,
    batch: Batch<T>,
  ): Outcome<T> {
    let outcome: Outcome<T>;
    try {
      outcome = judge(source, from, count, result);
    } catch (cause) {
      return this.#failed(cause, started, count, batch);
    }
    const delivered =
      outcome.kind === 'delivered'
        ? count
        : outcome.kind === 'failed' && outcome.failed !== undefined
          ? count - outcome.failed.length
          : 0;
    // An invalid result is the flush function's bug: it tells the controllers nothing (see CallRecorder).
    this.#recordLatency(now() - started, count, delivered, count === batch.cut && outcome.kind !== 'invalid');
    return outcome;
  }

  /** A call of `count` items of `batch` that threw or rejected. */
  #failed(cause: unknown, started: number, count: number, batch: Batch<T>): Outcome<T> {
    this.#recordLatency(now() - started, count, 0, count === batch.cut);
    return { kind: 'failed', failed: undefined, cause, timedOut: false };
  }

  /**
   * Waits for room under the call bound, at most flushTimeoutMs, in arrival order (a
   * settling call hands its place to the oldest waiter). Resolves 'acquired' (the
   * caller holds a place), 'timeout' or 'abandoned' (it holds none).
   */
  async #acquire(batch: Batch<T>): Promise<'acquired' | 'timeout' | 'abandoned'> {
    const timeoutMs = this.#config.flushTimeoutMs;
    let timedOut = false;
    const granted = await new Promise<boolean>((resolve) => {
      const grant = (): void => resolve(true);
      const leave = (): void => {
        const index = this.#gateQueue.indexOf(grant);
        if (index >= 0) this.#gateQueue.splice(index, 1);
        resolve(false);
      };
      this.#gateQueue.push(grant);
      batch.wake = leave;
      if (timeoutMs !== Infinity) {
        batch.timer = this.#keepAlive.setTimeout(() => {
          batch.timer = undefined;
          timedOut = true;
          leave();
        }, timeoutMs);
      }
    });
    batch.wake = undefined;
    this.#keepAlive.clearTimeout(batch.timer);
    batch.timer = undefined;
    if (granted) return 'acquired';
    return timedOut && !batch.abandoned ? 'timeout' : 'abandoned';
  }

  /** A call settled: its place under the bound goes to the oldest waiting batch, or is freed. */
  #releaseCall(): void {
    const next = this.#gateQueue.shift();
    if (next !== undefined) next();
    else this.#unsettled--;
  }

  backoff(batch: Batch<T>): Promise<void> {
    const { initialDelayMs, maxDelayMs } = this.#config.retry;
    // Full jitter: a random delay up to a doubling bound, so failed writers do not retry in step.
    const bound = Math.min(maxDelayMs, initialDelayMs * 2 ** (batch.tries - 1));
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#keepAlive.clearTimeout(batch.timer);
        batch.timer = undefined;
        batch.wake = undefined;
        resolve();
      };
      batch.wake = wake;
      batch.timer = this.#keepAlive.setTimeout(wake, Math.random() * bound);
    });
  }
}

/** A sink that calls back, as a flush function (for calls with a timeout, which race a promise). */
function promised<T>(sink: CallbackSink<T>): FlushFunction<T> {
  return (items, context) =>
    new Promise((resolve, reject) => {
      sink.deliver(items, 0, items.length, context, (failed, cause, result) => {
        if (failed) reject(cause);
        else resolve(result);
      });
    });
}
