/**
 * How long the event loop has been busy without a break: the part of a sink
 * call's measured time that may be the loop's own, not the sink's. A call's
 * time runs until the loop sees it settle, and a loop busy with synchronous work
 * (a producer writing a few thousand items in one go after a `'drain'`, a long
 * garbage collection) sees nothing settle until it is done: every call in
 * flight then measures that much longer at once. Adaptive concurrency leaves
 * such calls out (see concurrency-limiter.ts).
 *
 * Read from Node's event-loop utilization, the loop's total idle and active time
 * so far, at each call's settlement. Between two readings with any idle time in
 * between, all the active time is counted as after it, so the figure is an upper
 * bound: the loop may have been idle for a moment later than it assumes.
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
 * replace `eventLoopUtilization` with a function that returns nothing, and the busy time then stays 0
 * (the loop of a simulation never stalls a call).
 */
const readLoop: LoopReader = () => {
  const read = performance.eventLoopUtilization as (() => LoopTimes | undefined) | undefined;
  return typeof read === 'function' ? read.call(performance) : undefined;
};

export class LoopStalls {
  readonly #read: LoopReader;
  #idle = 0;
  #active = 0;
  #busyMs = 0;

  constructor(read: LoopReader = readLoop) {
    this.#read = read;
    const times = read();
    if (times !== undefined) {
      this.#idle = times.idle;
      this.#active = times.active;
    }
  }

  /** How long (ms) the loop has been busy up to now since it last waited for I/O or a timer, at most. */
  busyMs(): number {
    const times = this.#read();
    if (times === undefined) return 0;
    const idle = times.idle - this.#idle;
    const active = times.active - this.#active;
    this.#idle = times.idle;
    this.#active = times.active;
    this.#busyMs = idle > 0 ? active : this.#busyMs + active;
    return this.#busyMs;
  }
}
