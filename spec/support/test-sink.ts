import type { FlushResult } from '../../lib';

/**
 * A programmable sink for tests: records every call, and for each call does
 * what the next scripted behaviour says (default: deliver at once).
 *
 * Behaviours:
 * - `{ kind: 'ok' }` resolve nothing (all delivered)
 * - `{ kind: 'delay', ms }` resolve after `ms` (use fake timers)
 * - `{ kind: 'throw', error? }` throw synchronously
 * - `{ kind: 'reject', error? }` reject
 * - `{ kind: 'hang' }` never settle (until `release()`)
 * - `{ kind: 'result', result }` resolve the given FlushResult (may be malformed)
 * - `{ kind: 'fail-items', predicate }` report the matching items in `failedItems`
 * - `{ kind: 'manual' }` settle later through `resolveNext()` / `rejectNext()`
 * - `{ kind: 'result-for', make }` resolve `make(batch)`: a result that depends on the batch
 *   (e.g. foreign `failedItems`); nothing is recorded as delivered
 */
export type SinkBehaviour<T> =
  | { kind: 'ok' }
  | { kind: 'delay'; ms: number }
  | { kind: 'throw'; error?: Error }
  | { kind: 'reject'; error?: Error }
  | { kind: 'hang' }
  | { kind: 'result'; result: unknown }
  | { kind: 'fail-items'; predicate: (item: T) => boolean }
  | { kind: 'manual' }
  | { kind: 'result-for'; make: (batch: readonly T[]) => unknown };

interface Pending {
  resolve: (value?: unknown) => void;
  reject: (error: unknown) => void;
}

export class TestSink<T> {
  /** Every batch the sink was called with, in call order (copies). */
  readonly calls: T[][] = [];
  /** Items the sink confirmed delivered, in order. */
  readonly delivered: T[] = [];
  readonly #script: SinkBehaviour<T>[] = [];
  #fallback: SinkBehaviour<T>;
  readonly #pending: { batch: T[]; pending: Pending }[] = [];
  /** The behaviour each call got, in call order (parallel to `calls`). */
  readonly behaviours: SinkBehaviour<T>[] = [];
  /** Calls not yet settled. */
  inFlight = 0;
  maxInFlight = 0;
  /** Batches of the calls not yet settled (delays, hangs, manual calls), in call order. */
  readonly #open = new Set<T[]>();

  constructor(fallback: SinkBehaviour<T> = { kind: 'ok' }) {
    this.#fallback = fallback;
  }

  /** Behaviours for the next calls, in order; after them, the fallback. */
  script(...behaviours: SinkBehaviour<T>[]): this {
    this.#script.push(...behaviours);
    return this;
  }

  /** What every call does once the script is used up. */
  otherwise(behaviour: SinkBehaviour<T>): this {
    this.#fallback = behaviour;
    return this;
  }

  /** Settles the oldest manual/hanging call as delivered. */
  resolveNext(): void {
    const next = this.#pending.shift();
    if (next === undefined) throw new Error('TestSink: no pending call');
    this.delivered.push(...next.batch);
    next.pending.resolve(undefined);
  }

  /** Fails the oldest manual/hanging call. */
  rejectNext(error: Error = new Error('sink failed')): void {
    const next = this.#pending.shift();
    if (next === undefined) throw new Error('TestSink: no pending call');
    next.pending.reject(error);
  }

  get pendingCalls(): number {
    return this.#pending.length;
  }

  /** Copies of the batches whose calls have not settled yet (of any behaviour), in call order. */
  openBatches(): T[][] {
    return [...this.#open].map((batch) => [...batch]);
  }

  /** The flush function to give to a sluice. */
  readonly flush = (items: T[]): Promise<FlushResult<T> | void> => {
    const batch = [...items];
    this.calls.push(batch);
    const behaviour = this.#script.shift() ?? this.#fallback;
    this.behaviours.push(behaviour);
    if (behaviour.kind === 'throw') throw behaviour.error ?? new Error('sink threw');
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.#open.add(batch);
    const done = <V>(value: V): V => {
      this.inFlight--;
      this.#open.delete(batch);
      return value;
    };
    return this.#run(behaviour, batch).then(done, (error: unknown) => {
      this.inFlight--;
      this.#open.delete(batch);
      throw error;
    });
  };

  async #run(behaviour: SinkBehaviour<T>, batch: T[]): Promise<FlushResult<T> | void> {
    switch (behaviour.kind) {
      case 'ok':
        this.delivered.push(...batch);
        return undefined;
      case 'delay':
        await new Promise((resolve) => setTimeout(resolve, behaviour.ms));
        this.delivered.push(...batch);
        return undefined;
      case 'reject':
        throw behaviour.error ?? new Error('sink rejected');
      case 'hang':
      case 'manual':
        return new Promise<void>((resolve, reject) => {
          this.#pending.push({ batch, pending: { resolve: () => resolve(), reject } });
        });
      case 'result':
        return behaviour.result as FlushResult<T>;
      case 'result-for':
        return behaviour.make(batch) as FlushResult<T>;
      case 'fail-items': {
        const failedItems = batch.filter(behaviour.predicate);
        this.delivered.push(...batch.filter((item) => !behaviour.predicate(item)));
        if (failedItems.length === 0) return undefined;
        return {
          success: batch.length - failedItems.length,
          failed: failedItems.length,
          errors: [new Error(`${failedItems.length} item(s) refused`)],
          failedItems,
        };
      }
      case 'throw':
        throw new Error('unreachable');
    }
  }
}

/** Fake timers that leave Node's microtask and tick queues real, so streams still run. */
export function useStreamFakeTimers(): void {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate'] });
}

/** Lets pending promise callbacks and nextTicks run (streams need a few turns). */
export async function settle(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Advances fake time in steps, letting promises run between them. */
export async function advance(ms: number, step = Math.max(1, Math.floor(ms / 20))): Promise<void> {
  let left = ms;
  while (left > 0) {
    const dt = Math.min(step, left);
    await jest.advanceTimersByTimeAsync(dt);
    await settle(2);
    left -= dt;
  }
}

/** What a producer saw of a stream's write(): how often it said false, and the most it held (waiting writes included). */
export interface WriteWatch {
  falses: number;
  maxHeld: number;
}

/** Wraps `stream.write` to record what every write returned and how much the stream held after it. */
export function watchWrites(stream: {
  write: (...args: never[]) => boolean;
  getMetrics(): { bufferSize: number; waitingWrites: number };
}): WriteWatch {
  const watch: WriteWatch = { falses: 0, maxHeld: 0 };
  const write = stream.write.bind(stream);
  stream.write = (...args: never[]): boolean => {
    const ok = write(...args);
    if (!ok) watch.falses++;
    const { bufferSize, waitingWrites } = stream.getMetrics();
    watch.maxHeld = Math.max(watch.maxHeld, bufferSize + waitingWrites);
    return ok;
  };
  return watch;
}
