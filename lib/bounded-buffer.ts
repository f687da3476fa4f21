import { invalidArgType, outOfRange } from './errors';

const INITIAL_SLOTS = 16;

/**
 * A FIFO of at most `capacity` items on a power-of-two ring: every operation is
 * O(1) per item moved, with no `Array#shift`/`splice`. Storage grows by doubling
 * up to the capacity, so a large bound costs nothing until it is used. When the
 * buffer empties after at least half its array's length has gone through it, it
 * starts on a fresh array, sized for the most it held meanwhile (see #renewIfDue).
 *
 * @example
 * ```ts
 * const buffer = new BoundedBuffer<number>(3);
 * buffer.push(1); buffer.push(2); buffer.push(3);
 * buffer.pushWithEviction(4); // → 1
 * buffer.take(2);             // → [2, 3]
 * ```
 */
export class BoundedBuffer<T> {
  readonly #capacity: number;
  /** Slots; length is a power of two, so `index & #mask` wraps. */
  #slots: (T | undefined)[];
  #mask: number;
  /** Index of the oldest item. */
  #head = 0;
  /** Items stored, 0..capacity. */
  #size = 0;
  /**
   * The most items stored, and the items removed, since #slots was last renewed (see #renewIfDue).
   * Both are counted where items leave (shift, take), not in push(), the write path's hottest step:
   * a peak always comes right before a removal.
   */
  #peak = 0;
  #removed = 0;

  /** @param capacity items it holds at most; an integer >= 1. */
  constructor(capacity: number) {
    if (typeof capacity !== 'number') throw invalidArgType('The argument "capacity"', 'of type number', capacity);
    if (!Number.isInteger(capacity) || !(capacity >= 1)) {
      throw outOfRange('The argument "capacity"', 'an integer >= 1', capacity);
    }
    this.#capacity = capacity;
    const slots = Math.min(INITIAL_SLOTS, nextPowerOfTwo(capacity));
    this.#slots = new Array<T | undefined>(slots);
    this.#mask = slots - 1;
  }

  /** Items stored. */
  get size(): number {
    return this.#size;
  }

  /** Items it holds at most. */
  get capacity(): number {
    return this.#capacity;
  }

  /** size / capacity, from 0 to 1. */
  get utilization(): number {
    return this.#size / this.#capacity;
  }

  /** True when `push` would refuse. */
  isFull(): boolean {
    return this.#size >= this.#capacity;
  }

  /** True when nothing is stored. */
  isEmpty(): boolean {
    return this.#size === 0;
  }

  /** Appends `item`; returns `false` (and stores nothing) when full. */
  push(item: T): boolean {
    if (this.#size >= this.#capacity) return false;
    if (this.#size === this.#slots.length) this.#grow();
    this.#slots[(this.#head + this.#size) & this.#mask] = item;
    this.#size++;
    return true;
  }

  /** Appends `item`, evicting and returning the oldest item when full; `null` when nothing was evicted. */
  pushWithEviction(item: T): T | null {
    const evicted = this.#size >= this.#capacity ? (this.shift() as T) : null;
    this.push(item);
    return evicted;
  }

  /** Removes and returns the oldest item, or `undefined` when empty. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    if (this.#size > this.#peak) this.#peak = this.#size;
    this.#removed++;
    const item = this.#slots[this.#head];
    if (--this.#size === 0 && this.#renewIfDue()) return item;
    this.#slots[this.#head] = undefined;
    this.#head = (this.#head + 1) & this.#mask;
    return item;
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#slots[this.#head];
  }

  /** Removes and returns up to `count` (>= 0; a fraction counts whole items) of the oldest items, oldest first. */
  take(count: number): T[] {
    // A negative count, NaN or a non-number would otherwise take nothing, or throw V8's "Invalid array length".
    if (!(typeof count === 'number' && count >= 0)) throw outOfRange('The argument "count"', 'a number >= 0', count);
    const n = Math.min(Math.floor(count), this.#size);
    if (this.#size > this.#peak) this.#peak = this.#size;
    this.#removed += n;
    const slots = this.#slots;
    const head = this.#head;
    if (head + n <= slots.length) {
      // Not wrapped (the common case): two builtins, fast before the JIT has compiled the loop below.
      const out = slots.slice(head, head + n) as T[];
      this.#size -= n;
      if (this.#size === 0 && this.#renewIfDue()) return out;
      slots.fill(undefined, head, head + n);
      this.#head = (head + n) & this.#mask;
      return out;
    }
    const out = new Array<T>(n);
    const mask = this.#mask;
    let index = head;
    for (let i = 0; i < n; i++) {
      out[i] = slots[index] as T;
      slots[index] = undefined;
      index = (index + 1) & mask;
    }
    this.#head = index;
    this.#size -= n;
    if (this.#size === 0) this.#renewIfDue();
    return out;
  }

  /** Removes and returns every item, oldest first. */
  clear(): T[] {
    return this.take(this.#size);
  }

  /**
   * On emptying: a fresh slot array (the old one needs no clearing), once at least half the current
   * one's length has been removed since the last renewal. A fresh array is in V8's young generation,
   * where storing an item costs less: an array that has lived through two collections is in the old
   * one, and each store of a new (young) item into it takes the write barrier's slow path, which
   * records the slot for the next collection. A buffer that fills and drains, as a stream's does,
   * thus stores most of its items into a young array (the fast-sink benchmark: 105 barrier
   * instructions per item instead of 157; benchmarks/notes.md).
   *
   * The new array is sized for the most held since the last renewal, so storage also shrinks back
   * after a burst, once half of it has gone through again. The condition bounds what renewing
   * allocates, whatever the pattern: at most two slots per item removed. And a stream's buffer,
   * which often empties twice per fill (after a few items, and after thousands), renews only at the
   * second: renewing at both, each time sized for the last peak, shrank the array at the first and
   * grew it back by doubling at the next fill (4 % more instructions per item on the fast sink).
   * Arrays of INITIAL_SLOTS or fewer are kept: renewing them would allocate every few items.
   *
   * @returns whether it renewed (then the slots need no clearing)
   */
  #renewIfDue(): boolean {
    if (this.#slots.length <= INITIAL_SLOTS) {
      this.#peak = 0;
      this.#removed = 0;
      return false;
    }
    if (this.#removed < this.#slots.length / 2) return false;
    const slots = Math.max(INITIAL_SLOTS, nextPowerOfTwo(this.#peak));
    this.#slots = new Array<T | undefined>(slots);
    this.#mask = slots - 1;
    this.#head = 0;
    this.#peak = 0;
    this.#removed = 0;
    return true;
  }

  #grow(): void {
    const old = this.#slots;
    const next = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.#size; i++) next[i] = old[(this.#head + i) & this.#mask];
    this.#slots = next;
    this.#mask = next.length - 1;
    this.#head = 0;
  }
}

function nextPowerOfTwo(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}
