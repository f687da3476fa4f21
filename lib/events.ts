import type { BackpressureError } from './errors';
import type { BackpressureState, DropReason } from './types';

/**
 * The events of a sluice and their listeners' parameters, for typed `on`/`once`/`off`
 * (the event-map approach of p-queue's `EventEmitter<EventName>`). A listener whose
 * parameters do not fit is a compile error; events not named here keep Node's typing.
 */

/**
 * The events of every sluice Writable, with their listeners' parameters.
 *
 * @example
 * ```ts
 * sink.on('state', (next, previous) => log.info(`${previous} -> ${next}`));
 * sink.on('drop', (item, reason) => dropped.inc({ reason }));
 * sink.on('deadletter', (items, error) => quarantine(items, error.code));
 * ```
 */
export interface BackpressureEvents<T> {
  /** Once per state transition. */
  state: [next: BackpressureState, previous: BackpressureState];
  /** Every dropped item, with the reason. */
  drop: [item: T, reason: DropReason];
  /** Items that could not be delivered, with the error naming the cause. */
  deadletter: [items: T[], error: BackpressureError<T>];
  /** With `disk`: the log held this many undelivered records when it was opened; they are delivered first. */
  replay: [count: number];
  /** With `disk` and block: appending failed for lack of space; writes wait until appends succeed again. */
  diskfull: [error: Error];
  /** After `write()` returned `false`, once utilization fell below `lowWatermark`. */
  drain: [];
  error: [error: Error];
  /** After `end()`, once the last flush settled. */
  finish: [];
  close: [];
}

/**
 * The events of a `BackpressureTransform`: those of the Writables, and its readable side's,
 * whose chunks are `T[]` batches.
 *
 * @example
 * ```ts
 * batcher.on('data', (batch) => console.log(`a batch of ${batch.length}`));
 * ```
 */
export interface BackpressureTransformEvents<T> extends BackpressureEvents<T> {
  /** One batch, downstream. */
  data: [batch: T[]];
  end: [];
  readable: [];
  pause: [];
  resume: [];
}

/**
 * A listener of the event `E` of the map `M`. A listener of an event without arguments may
 * declare one it never gets (`undefined`), so that `resolve` in
 * `new Promise((resolve) => sink.once('finish', resolve))` fits.
 */
export type ListenerOf<M, E extends keyof M> = M[E] extends []
  ? (_?: undefined) => void
  : M[E] extends unknown[]
    ? (...args: M[E]) => void
    : never;

/** Any event name not in the map `M` (so that a known event cannot fall through to the untyped signature). */
export type OtherEvent<M, E extends string | symbol> = E extends keyof M ? never : E;

/** Node's own listener type for events outside the map; `any`, as in @types/node, so every listener fits. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyListener = (...args: any[]) => void;
