/**
 * How long the event loop kept a settled sink call from being seen: the part of
 * the call's measured time that may be the loop's own, not the sink's. A call's
 * time runs until the loop sees it settle, and a loop busy with synchronous work
 * (a producer writing a few thousand items in one go after a `'drain'`, a long
 * garbage collection) sees nothing settle until it is done: every call in
 * flight then measures that much longer at once. Adaptive concurrency leaves
 * such calls out (see concurrency-limiter.ts).
 *
 * Read from Node's event-loop utilization (the loop's total active time so far)
 * at each settlement: the active time since the previous reading bounds how long
 * the loop was busy before it saw this one. The calls a stall delayed are seen
 * together, in the turn after it, and only the first of them finds the stall
 * since the previous reading; so the longest stall found stands for every
 * reading until the loop reaches its check phase (a one-off `setImmediate`),
 * which it does after that turn's timers and I/O. Readings are only compared
 * with the previous one, never summed: a loop that never waits (busy with I/O,
 * or `setImmediate` chains) but turns quickly is not one long stall.
 */

/** The loop's idle and active time so far, in ms. */
export interface LoopTimes {
  readonly idle: number;
  readonly active: number;
}

/** Reads the loop's times; undefined where the runtime has no such measure. */
export type LoopReader = () => LoopTimes | undefined;

/**
 * Through the global `performance`, as the engine reads its clock: fake timers that fake the clock
 * replace `eventLoopUtilization` with a function that returns nothing, and no call is then found
 * stalled (the loop of a simulation never stalls a call).
 */
const readLoop: LoopReader = () => {
  const read = performance.eventLoopUtilization as (() => LoopTimes | undefined) | undefined;
  return typeof read === 'function' ? read.call(performance) : undefined;
};

export class LoopStalls {
  readonly #read: LoopReader;
  /** The loop's active time at the previous reading (at construction for the first one). */
  #active = 0;
  /** The longest stall found in this turn of the loop; 0 once it reaches its check phase. */
  #turnMs = 0;
  #clearing = false;
  readonly #clear = (): void => {
    this.#turnMs = 0;
    this.#clearing = false;
  };

  constructor(read: LoopReader = readLoop) {
    this.#read = read;
    this.#active = read()?.active ?? 0;
  }

  /**
   * How long (ms) the loop may have been busy before it saw what settled now, at most: its active time
   * since the previous reading, or the longest of those found earlier in this turn. The first reading
   * after a quiet spell counts all the active time since the one before, an overestimate for that one call.
   */
  busyMs(): number {
    const times = this.#read();
    if (times === undefined) return 0;
    const busy = times.active - this.#active;
    this.#active = times.active;
    if (busy > this.#turnMs) {
      this.#turnMs = busy;
      if (!this.#clearing) {
        this.#clearing = true;
        setImmediate(this.#clear).unref();
      }
    }
    return this.#turnMs;
  }
}
