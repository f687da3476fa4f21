import { BoundedBuffer } from '../bounded-buffer';
import type { WriteCallback } from '../types';

/**
 * block: writes held at `blocked` until there is room, oldest first, each with
 * its own `maxBlockTimeMs` deadline. A write without a deadline (Infinity) never
 * shields the ones behind it: the deadlines are kept in a second FIFO, which
 * holds exactly the waiters with a finite deadline, in arrival order, so the
 * earliest deadline is always its head. Knows nothing of counters or states.
 */

export interface Waiter<T> {
  readonly item: T;
  readonly settle: WriteCallback | undefined;
  /** Bytes, sized once when the write arrived. */
  readonly size: number;
  /** When the write is dropped with reason `timeout`; Infinity for never. */
  readonly deadline: number;
  /** Dropped by its deadline while still in the main queue; skipped when reached. */
  expired: boolean;
  /** disk: the item's record bytes, encoded once when it was offered. */
  payload?: Uint8Array;
}

export class WaitQueue<T> {
  /** Every waiter, oldest first, expired ones included until they reach the head. */
  readonly #all: BoundedBuffer<Waiter<T>>;
  /** The waiters with a finite deadline, oldest (= earliest deadline) first. */
  readonly #timed: BoundedBuffer<Waiter<T>>;
  /** Waiters not expired: what counts against the bound and as `waitingWrites` (a field: read per offer). */
  size = 0;
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#all = new BoundedBuffer(capacity);
    this.#timed = new BoundedBuffer(capacity);
  }

  isFull(): boolean {
    return this.size >= this.#capacity;
  }

  push(waiter: Waiter<T>): void {
    // Expired waiters still occupy slots until they reach the head; compact when they crowd the ring.
    if (this.#all.isFull()) this.#compact();
    this.#all.push(waiter);
    if (waiter.deadline !== Infinity) this.#timed.push(waiter);
    this.size++;
  }

  /** The oldest live waiter, without removing it. */
  peek(): Waiter<T> | undefined {
    this.#skipExpired();
    return this.#all.peek();
  }

  /** Removes the oldest live waiter (the one peek() returned). */
  shift(): Waiter<T> | undefined {
    this.#skipExpired();
    const waiter = this.#all.shift();
    if (waiter === undefined) return undefined;
    if (this.#timed.peek() === waiter) this.#timed.shift();
    this.size--;
    return waiter;
  }

  /** The earliest finite deadline, or undefined. */
  nextDeadline(): number | undefined {
    return this.#timed.peek()?.deadline;
  }

  /** Removes and returns every waiter whose deadline is at or before `time`, oldest first. */
  expire(time: number): Waiter<T>[] {
    const expired: Waiter<T>[] = [];
    while (!this.#timed.isEmpty() && (this.#timed.peek() as Waiter<T>).deadline <= time) {
      const waiter = this.#timed.shift() as Waiter<T>;
      waiter.expired = true;
      this.size--;
      expired.push(waiter);
    }
    return expired;
  }

  /** Removes every live waiter, oldest first. */
  clear(): Waiter<T>[] {
    const live = this.#all.clear().filter((waiter) => !waiter.expired);
    this.#timed.clear();
    this.size = 0;
    return live;
  }

  #skipExpired(): void {
    while (this.#all.peek()?.expired === true) this.#all.shift();
  }

  #compact(): void {
    for (const waiter of this.#all.clear()) if (!waiter.expired) this.#all.push(waiter);
  }
}
