import { BoundedBuffer } from '../bounded-buffer';

/**
 * Accepted items not yet cut into a batch, oldest first, with the byte size each
 * was given once at admission, and the arrival time of each batch-sized run (so
 * the scheduler knows when the oldest partial batch is due). Knows nothing of
 * states, counters or the sink.
 */
export class Queue<T> {
  readonly #items: BoundedBuffer<T>;
  /** Size of each item in #items, in step with it; only with a byte bound. */
  readonly #sizes: BoundedBuffer<number> | undefined;
  /** Durable id of each item in #items, in step with it; only with a disk log. */
  readonly #ids: BoundedBuffer<number> | undefined;
  /**
   * Arrival time of the first item of each `runLength` run of #items; [0] dates the oldest item
   * (no later than it arrived). Runs keep their boundaries as items leave from the head.
   */
  readonly #stamps: BoundedBuffer<number>;
  readonly #runLength: number;
  /** Items of the oldest run already gone from the head (0 ≤ it < runLength). */
  #headGone = 0;
  /** Pushes until the next one starts a run (and is stamped); 0 when the next one does. */
  #untilStamp = 0;
  /** Size of the item the last shift() removed. */
  lastSize = 0;
  /** Durable id of the item the last shift() removed (0 without a disk log). */
  lastId = 0;

  constructor(capacity: number, runLength: number, sized: boolean, durable = false) {
    this.#items = new BoundedBuffer(capacity);
    this.#sizes = sized ? new BoundedBuffer(capacity) : undefined;
    this.#ids = durable ? new BoundedBuffer(capacity) : undefined;
    this.#stamps = new BoundedBuffer(Math.ceil(capacity / runLength) + 1);
    this.#runLength = runLength;
  }

  get size(): number {
    return this.#items.size;
  }

  /** When the oldest queued item arrived (undefined when empty). */
  get oldestArrival(): number | undefined {
    return this.#stamps.peek();
  }

  push(item: T, size: number, now: () => number, id = 0): void {
    if (this.#untilStamp === 0) {
      this.#stamps.push(now());
      this.#untilStamp = this.#runLength;
    }
    this.#untilStamp--;
    this.#items.push(item);
    this.#sizes?.push(size);
    this.#ids?.push(id);
  }

  /** Removes the oldest item; its size is in `lastSize`. */
  shift(): T | undefined {
    if (this.#items.isEmpty()) return undefined;
    const item = this.#items.shift() as T;
    this.lastSize = this.#sizes?.shift() ?? 0;
    this.lastId = this.#ids?.shift() ?? 0;
    this.#removed(1);
    return item;
  }

  /** Cuts the `count` oldest items, with their sizes (when sized) and durable ids (with a disk log). */
  take(count: number): { items: T[]; sizes: number[] | undefined; ids: number[] | undefined; bytes: number } {
    const items = this.#items.take(count);
    const ids = this.#ids?.take(count);
    let sizes: number[] | undefined;
    let bytes = 0;
    if (this.#sizes !== undefined) {
      sizes = this.#sizes.take(count);
      for (const size of sizes) bytes += size;
    }
    this.#removed(items.length);
    return { items, sizes, ids, bytes };
  }

  clear(): T[] {
    this.#sizes?.clear();
    this.#ids?.clear();
    this.#stamps.clear();
    this.#headGone = 0;
    this.#untilStamp = 0;
    return this.#items.clear();
  }

  /**
   * `count` items left from the head: drops the stamps of runs no longer queued. (Counting runs
   * from the new head instead would re-cut them: the oldest item could then be dated by a later
   * run's stamp, and its partial batch flushed late.)
   */
  #removed(count: number): void {
    if (this.#items.isEmpty()) {
      this.#stamps.clear();
      this.#headGone = 0;
      this.#untilStamp = 0;
      return;
    }
    this.#headGone += count;
    while (this.#headGone >= this.#runLength) {
      this.#stamps.shift();
      this.#headGone -= this.#runLength;
    }
  }
}
