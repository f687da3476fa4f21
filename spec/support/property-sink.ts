import type { FlushFunction } from '../../lib';

/**
 * The scripted faulty sink of the property tests. Each call does what the next
 * step of its script says (then: "poison" items fail on every call), and is
 * recorded with when it started and settled, the `{ signal, attempt }` context
 * the engine gave it (v0.2), what the sink itself stored, and whether it is
 * still open. The run (property-harness.ts) is told when each call settles and
 * decides from the public API whether the engine still listens to it.
 *
 * Settlements are reported from a `.then` attached before the engine sees the
 * promise, so the run's model learns of a result in the same microtask turn as
 * the engine, never during a synchronous `write()`.
 */

/** One scripted sink call. `hang` and `abortable` need a finite flushTimeoutMs (else they are a `reject`). */
export type Step =
  | { kind: 'ok' }
  | { kind: 'delay'; ms: number }
  | { kind: 'reject' }
  | { kind: 'throw' }
  | { kind: 'hang' }
  /** Never settles by itself; rejects with `signal.reason` when the engine aborts the call's signal. */
  | { kind: 'abortable' }
  | { kind: 'fail-some'; mod: number }
  /**
   * 0: resolves 42; 1: `{ success: 0, failed: 0 }` (does not add up); 2: a foreign item in `failedItems`;
   * 3: `{ success: n, failed: 'none' }`. Under the v0.2 rule (engine-api 11) only an object with numeric
   * `success` and `failed` is a FlushResult: 0 and 3 mean "all delivered", 1 and 2 are ERR_INVALID_FLUSH_RESULT.
   */
  | { kind: 'malformed'; variant: 0 | 1 | 2 | 3 }
  /** An ordinary return value of a database client, "all delivered": `true`, `'OK'`, `[]`, `{ changes: 3 }`. */
  | { kind: 'ordinary'; variant: 0 | 1 | 2 | 3 };

export interface SinkConfig {
  flushTimeoutMs: number;
}

/** The flush context of v0.2 (engine-api 1); the v0.1 engine passes none. */
export interface FlushContext {
  signal?: AbortSignal;
  attempt?: number;
}

export interface SinkCall {
  readonly index: number;
  readonly items: readonly number[];
  /** The step this call played ('poison' once the script is used up). */
  readonly step: Step['kind'] | 'poison';
  readonly startedAt: number;
  readonly context: FlushContext | undefined;
  /** None of its items was sent to the sink before: a freshly cut batch. */
  readonly fresh: boolean;
  settled: boolean;
  settledAt: number | undefined;
  /** Items the sink stored (delivered on its side); late results of calls the engine gave up on included. */
  stored: number[];
  /** Settles an open call now, as a late failure (hang, abortable). */
  release: (() => void) | undefined;
  /** May settle after flushTimeoutMs (a hang, an abortable call, or a delay at least that long). */
  readonly mayOutliveTimeout: boolean;
}

type Behaviour =
  | { kind: 'resolve'; afterMs: number; value: unknown; stores: readonly number[] }
  | { kind: 'reject' }
  | { kind: 'throw' }
  | { kind: 'hang'; abortable: boolean };

const ORDINARY_VALUES: readonly unknown[] = [true, 'OK', [], { changes: 3 }];

export class ModelSink {
  readonly calls: SinkCall[] = [];
  /** Every item the sink stored, in the order it stored them. */
  readonly stored: number[] = [];
  /** Calls not settled yet. */
  unsettled = 0;
  maxUnsettled = 0;
  /** Called when a call starts, after it is counted (bound checks). */
  onCall: (call: SinkCall) => void = () => {};
  /** Called when a call settles (in the microtask turn the engine learns of it). */
  onSettle: (call: SinkCall) => void = () => {};
  readonly #script: Step[];
  readonly #poison: number | null;
  readonly #config: SinkConfig;
  /** Whether a late `delay` (>= flushTimeoutMs) settles at all; when false it is a hang. */
  readonly #lateSettle: boolean;
  readonly #sent = new Set<number>();

  constructor(script: readonly Step[], poison: number | null, config: SinkConfig, lateSettle: boolean) {
    this.#script = [...script];
    this.#poison = poison;
    this.#config = config;
    this.#lateSettle = lateSettle;
  }

  /** Calls whose promise has not settled, oldest first. */
  open(): SinkCall[] {
    return this.calls.filter((call) => !call.settled);
  }

  /** The flush function to give to a sluice (typed loosely: it may resolve values that are not FlushResults). */
  get fn(): FlushFunction<number> {
    return this.flush;
  }

  readonly flush = (items: number[], context?: FlushContext): Promise<unknown> => {
    const next = this.#script.shift();
    const batch = [...items];
    const behaviour = next === undefined ? this.#poisoned(batch) : this.#behaviour(next, batch);
    const call: SinkCall = {
      index: this.calls.length,
      items: batch,
      step: next?.kind ?? 'poison',
      startedAt: jest.now(),
      context,
      fresh: batch.every((id) => !this.#sent.has(id)),
      settled: false,
      settledAt: undefined,
      stored: [],
      release: undefined,
      mayOutliveTimeout:
        behaviour.kind === 'hang' || (behaviour.kind === 'resolve' && behaviour.afterMs >= this.#config.flushTimeoutMs),
    };
    for (const id of batch) this.#sent.add(id);
    this.calls.push(call);
    if (behaviour.kind === 'throw') {
      call.settled = true;
      call.settledAt = jest.now();
      this.onCall(call);
      this.onSettle(call);
      throw new Error('sink threw');
    }
    this.unsettled++;
    this.maxUnsettled = Math.max(this.maxUnsettled, this.unsettled);
    this.onCall(call);
    const promise = this.#run(behaviour, call);
    const settle = (): void => {
      call.settled = true;
      call.settledAt = jest.now();
      call.release = undefined;
      this.unsettled--;
      this.stored.push(...call.stored);
      this.onSettle(call);
    };
    promise.then(settle, settle);
    return promise;
  };

  #run(behaviour: Behaviour, call: SinkCall): Promise<unknown> {
    switch (behaviour.kind) {
      case 'resolve':
        if (behaviour.afterMs === 0) {
          call.stored = [...behaviour.stores];
          return Promise.resolve(behaviour.value);
        }
        return new Promise((resolve) =>
          setTimeout(() => {
            call.stored = [...behaviour.stores];
            resolve(behaviour.value);
          }, behaviour.afterMs),
        );
      case 'reject':
        return Promise.reject(new Error('sink rejected'));
      case 'hang':
        return new Promise((_resolve, reject) => {
          call.release = () => reject(new Error('sink answered late'));
          const signal = call.context?.signal;
          if (behaviour.abortable && signal !== undefined) {
            signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
          }
        });
      case 'throw':
        throw new Error('unreachable');
    }
  }

  #behaviour(step: Step, batch: number[]): Behaviour {
    const finiteTimeout = this.#config.flushTimeoutMs !== Infinity;
    const all = (value: unknown): Behaviour => ({ kind: 'resolve', afterMs: 0, value, stores: batch });
    const none = (value: unknown): Behaviour => ({ kind: 'resolve', afterMs: 0, value, stores: [] });
    switch (step.kind) {
      case 'ok':
        return all(undefined);
      case 'delay':
        if (!this.#lateSettle && step.ms >= this.#config.flushTimeoutMs) return { kind: 'hang', abortable: false };
        return { kind: 'resolve', afterMs: step.ms, value: undefined, stores: batch };
      case 'reject':
      case 'throw':
        return { kind: step.kind };
      case 'hang':
      case 'abortable':
        return finiteTimeout ? { kind: 'hang', abortable: step.kind === 'abortable' } : { kind: 'reject' };
      case 'fail-some':
        return failSome(batch, (id) => id % step.mod === 0);
      case 'malformed':
        switch (step.variant) {
          case 0:
            return all(42);
          case 1:
            return none({ success: 0, failed: 0, errors: [] });
          case 2:
            return none({ success: batch.length - 1, failed: 1, errors: [], failedItems: [-1] });
          case 3:
            return all({ success: batch.length, failed: 'none', errors: [] });
        }
      // eslint-disable-next-line no-fallthrough -- the inner switch returns for every variant
      case 'ordinary':
        return all(ORDINARY_VALUES[step.variant]);
    }
  }

  #poisoned(batch: number[]): Behaviour {
    const poison = this.#poison;
    return failSome(batch, (id) => poison !== null && id % 5 === poison);
  }
}

function failSome(batch: number[], fails: (id: number) => boolean): Behaviour {
  const failedItems = batch.filter(fails);
  const stores = batch.filter((id) => !fails(id));
  if (failedItems.length === 0) return { kind: 'resolve', afterMs: 0, value: undefined, stores };
  const value = {
    success: stores.length,
    failed: failedItems.length,
    errors: [new Error(`${failedItems.length} item(s) refused`)],
    failedItems,
  };
  return { kind: 'resolve', afterMs: 0, value, stores };
}
