import { BackpressureError } from '../errors';
import { BackpressureState } from '../types';
import { DeadLetters, warnDiscarded, warnUnheardDrops } from './dead-letter';
import { Delivery } from './delivery';
import { unwatchHolding, watchHolding } from './exit-watch';
import { KeepAlive } from './keep-alive';
import { Ledger } from './ledger';
import { Queue } from './queue';
import { Scheduler } from './scheduler';
import { Signals } from './signals';
import { Thresholds } from './thresholds';
import { WaitQueue } from './waiting';
import type { ResolvedConfig } from '../config';
import type { BackpressureMetrics, BackpressureStrategy, DropReason, FlushFunction, WriteCallback } from '../types';
import type { Batch } from './delivery';
import type { SignalHost } from './signals';

/**
 * The engine shared by the Writable and the Transform. It composes the parts and
 * owns only their wiring and the lifecycle (end, drain, destroy, shutdown):
 *
 *   write → offer (size taken once) → policy.admit → accept: queue + ledger
 *         → level at a threshold (signals) → pump (scheduler) → delivery
 *
 * It knows nothing of streams; its host does.
 */

/** Called once per write: `accepted` is false when the item was dropped. */
export type Settle = WriteCallback;

/** What the engine needs from the stream that hosts it. */
export interface EngineHost extends SignalHost {
  /** Destroys the host with `error`; the host then calls {@link Engine.destroy}. */
  destroy(error?: Error): unknown;
}

/** The admission primitives a strategy works with; `size` is the offered item's, taken once. */
export interface Gate<T> {
  readonly config: ResolvedConfig<T>;
  /** The state utilization gives (never `draining`). */
  readonly level: BackpressureState;
  /** Writes waiting for room (block). */
  readonly waiting: number;
  fits(size: number): boolean;
  accept(item: T, size: number, settle: Settle | undefined): void;
  drop(item: T, reason: DropReason, settle: Settle | undefined): void;
  /** Drops the oldest queued item (never one in flight); false when none is queued. */
  evictOldest(): boolean;
  /** Accepts the item and evicts it at once: it was the oldest queued item, as everything else is in flight. */
  evictIncoming(item: T, settle: Settle | undefined): void;
  /** Holds the write until there is room; returns false (the value of `write()`). */
  wait(item: T, size: number, settle: Settle | undefined): boolean;
}

/**
 * A strategy: what to do with each offered item. Returns what `write()` returns.
 * @internal
 */
export interface AdmissionPolicy<T> {
  readonly strategy: BackpressureStrategy;
  admit(gate: Gate<T>, item: T, size: number, settle: Settle | undefined): boolean;
}

const now = (): number => performance.now();

export class Engine<T> implements Gate<T> {
  readonly config: ResolvedConfig<T>;
  readonly className: string;
  readonly #host: EngineHost;
  readonly #policy: AdmissionPolicy<T>;
  readonly #thresholds: Thresholds;
  readonly #ledger = new Ledger();
  readonly #keepAlive = new KeepAlive();
  readonly #queue: Queue<T>;
  /** block: writes waiting at `blocked`; at most `highCount` of them. */
  readonly #waiting: WaitQueue<T>;
  readonly #signals: Signals;
  readonly #scheduler: Scheduler;
  readonly #deadLetters: DeadLetters<T>;
  readonly #delivery: Delivery<T>;
  /** Batches in a flush slot, in the order they were cut; at most maxConcurrentFlushes. */
  readonly #batches = new Set<Batch<T>>();
  readonly #sized: boolean;

  /** Flushing halted by the controller's stop(); drain() and end() still flush. */
  #paused = false;
  /** cork(): partial batches wait for uncork() (no interval flush); full batches still go. */
  #corked = false;
  /** Items queued at the last uncork() not yet cut into a batch: they go without waiting for the interval. */
  #uncorked = 0;
  #destroyed = false;
  #flushTimer: NodeJS.Timeout | undefined;
  #waitTimer: NodeJS.Timeout | undefined;
  /** The error this engine destroyed its host with; destroy() adds the remaining items to it. */
  #failure: BackpressureError<T> | undefined;
  #idleCallbacks: ((error?: Error | null) => void)[] = [];
  /** Drops with no 'drop' listener; reported once, on destroy. */
  #unheardDrops = 0;
  /** Items taken by destroy() or a shutdown deadline, undelivered: what a shutdown in progress resolves. */
  #lost: T[] = [];

  constructor(
    config: ResolvedConfig<T>,
    flush: FlushFunction<T>,
    host: EngineHost,
    policy: AdmissionPolicy<T>,
    className: string,
  ) {
    this.config = config;
    this.className = className;
    this.#host = host;
    this.#policy = policy;
    this.#thresholds = new Thresholds(config);
    this.#sized = this.#thresholds.bytesBounded;
    this.#queue = new Queue(config.maxBufferSize, config.batchSize, this.#sized);
    this.#waiting = new WaitQueue(this.#thresholds.highCount);
    this.#signals = new Signals(host, this.#keepAlive, () => this.length);
    this.#scheduler = new Scheduler(config);
    this.#deadLetters = new DeadLetters(host, config.onDeadLetter);
    this.#delivery = new Delivery(config, flush, this.#ledger, this.#keepAlive, this.#deadLetters, {
      released: () => this.#released(),
      fail: (error) => this.#fail(error as BackpressureError<T>),
      recordLatency: (latencyMs) => this.#scheduler.recordLatency(latencyMs),
    });
  }

  // ---- admission ---------------------------------------------------------

  /** Offers one item; returns what `write()` returns. Re-entrant: every call sizes its own item. */
  offer(item: T, settle: Settle | undefined): boolean {
    this.#ledger.offered++;
    let size = 0;
    if (this.#sized) {
      size = this.config.sizeOf(item);
      if (!(size <= this.config.maxBufferBytes)) {
        this.drop(item, 'oversize', settle);
        return true;
      }
    }
    const ok = this.#policy.admit(this, item, size, settle);
    if (!ok && !this.#destroyed) this.#signals.refused();
    return ok;
  }

  get level(): BackpressureState {
    return this.#signals.level;
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  fits(size: number): boolean {
    return this.#thresholds.fits(this.#ledger.held, this.#ledger.heldBytes, size);
  }

  accept(item: T, size: number, settle: Settle | undefined): void {
    if (this.#destroyed) return this.#takeLate(item, size, settle);
    this.#enqueue(item, size);
    if (settle !== undefined) process.nextTick(settle, null, true);
    // The hot path: one more item changes the level only at a threshold...
    if (this.#thresholds.isEdge(this.#ledger.held)) this.#refreshLevel();
    // ...and can start a flush only with a free slot and no timer already due to call back.
    if (
      this.#batches.size < this.config.maxConcurrentFlushes &&
      (this.#flushTimer === undefined ||
        this.#queue.size >= this.config.batchSize ||
        this.#signals.ending ||
        this.#signals.drainRequested)
    ) {
      this.#pump();
    }
  }

  #enqueue(item: T, size: number): void {
    if (this.#ledger.held === 0) watchHolding(this);
    this.#queue.push(item, size, now);
    this.#ledger.accept(size);
  }

  drop(item: T, reason: DropReason, settle: Settle | undefined): void {
    this.#ledger.drop(reason);
    if (settle !== undefined) process.nextTick(settle, null, false);
    if (this.#host.listenerCount('drop') > 0) this.#host.emit('drop', item, reason);
    else this.#unheardDrops++;
  }

  evictOldest(): boolean {
    if (this.#queue.size === 0) return false;
    const item = this.#queue.shift() as T;
    this.#ledger.evict(this.#queue.lastSize);
    this.drop(item, 'evicted', undefined);
    return true;
  }

  evictIncoming(item: T, settle: Settle | undefined): void {
    this.#ledger.acceptEvicted();
    if (settle !== undefined) process.nextTick(settle, null, false);
    if (this.#host.listenerCount('drop') > 0) this.#host.emit('drop', item, 'evicted');
    else this.#unheardDrops++;
  }

  wait(item: T, size: number, settle: Settle | undefined): boolean {
    if (this.#destroyed) {
      this.#takeLate(item, size, settle);
      return false;
    }
    if (this.#waiting.isFull()) {
      this.drop(item, 'overflow', settle);
      return false;
    }
    // maxBlockTimeMs is for producers that write on after a `false`. A write that finds the sluice
    // blocked when the producer had not been told to wait (it can happen with a byte bound, or with
    // highWatermark 1) is honouring backpressure: it waits as long as the sink needs, so that such a
    // producer never loses an item. It does not shield the writes behind it (each keeps its deadline).
    const deadline = this.#signals.needDrain ? now() + this.config.maxBlockTimeMs : Infinity;
    this.#waiting.push({ item, settle, size, deadline, expired: false });
    this.#refreshLevel();
    this.#armWaitTimer();
    return false;
  }

  /**
   * A listener destroyed the stream while this write was being admitted: the item
   * goes where destroy() sent the others (accepted, then taken as destroyed).
   */
  #takeLate(item: T, size: number, settle: Settle | undefined): void {
    this.#ledger.accept(size);
    this.#ledger.takeAll(0);
    this.#lost.push(item);
    const error = BackpressureError.destroyed([item], undefined);
    if (this.#deadLetters.hasPath()) this.#deadLetters.handLate([item], error);
    else warnDiscarded(1, this.className);
    if (settle !== undefined) process.nextTick(settle, error, false);
  }

  /** Moves waiting writes into the buffer while they fit, oldest first. */
  #admitWaiting(): void {
    const waiting = this.#waiting;
    for (let head = waiting.peek(); head !== undefined && this.fits(head.size); head = waiting.peek()) {
      waiting.shift();
      this.#enqueue(head.item, head.size);
      if (head.settle !== undefined) process.nextTick(head.settle, null, true);
    }
    this.#armWaitTimer();
  }

  #armWaitTimer(): void {
    const deadline = this.#waiting.nextDeadline();
    if (deadline === undefined || this.config.maxBlockTimeMs === Infinity) {
      this.#keepAlive.clearTimeout(this.#waitTimer);
      this.#waitTimer = undefined;
      return;
    }
    if (this.#waitTimer !== undefined) return;
    this.#waitTimer = this.#keepAlive.setTimeout(this.#onWaitTimer, Math.max(0, deadline - now()));
  }

  readonly #onWaitTimer = (): void => {
    this.#waitTimer = undefined;
    for (const { item, settle } of this.#waiting.expire(now())) this.drop(item, 'timeout', settle);
    if (this.#destroyed) return;
    this.#refreshLevel();
    this.#signals.maybeDrain();
    this.#armWaitTimer();
    this.#checkIdle();
  };

  // ---- states --------------------------------------------------------------

  get state(): BackpressureState {
    return this.#signals.state;
  }

  get needDrain(): boolean {
    return this.#signals.needDrain;
  }

  /** Items held plus writes waiting: what `writableLength` reports. */
  get length(): number {
    return this.#ledger.held + this.#waiting.size;
  }

  get utilization(): number {
    return this.#thresholds.utilization(this.#ledger.held, this.#ledger.heldBytes);
  }

  #refreshLevel(): void {
    this.#signals.setLevel(this.#thresholds.level(this.#ledger.held, this.#ledger.heldBytes, this.#waiting.size));
  }

  /** Room was freed: let waiting writes in, update the state, maybe resume the producer. */
  #released(): void {
    this.#admitWaiting();
    this.#refreshLevel();
    this.#signals.maybeDrain();
    if (this.length === 0) unwatchHolding(this);
  }

  // ---- flushing --------------------------------------------------------------

  /**
   * Starts every flush that is due and arms the timer for the next partial batch. Urgent (end(),
   * drain(), what waited for uncork()): everything goes now. Corked: full batches only, so that the
   * memory bound still holds.
   */
  #pump(): void {
    if (this.#destroyed) return;
    const ending = this.#signals.ending || this.#signals.drainRequested;
    if (this.#paused && !ending) return;
    const { batchSize, maxConcurrentFlushes } = this.config;
    const queue = this.#queue;
    while (this.#batches.size < maxConcurrentFlushes && queue.size > 0) {
      if (!ending && this.#uncorked === 0 && queue.size < batchSize) {
        // A timer already armed will call back here; reading the clock per item is what it saves.
        if (this.#corked || this.#flushTimer !== undefined) return;
        const due = this.#scheduler.dueAt(queue.oldestArrival as number);
        const time = now();
        if (time < due) {
          this.#flushTimer = this.#keepAlive.setTimeout(this.#onFlushTimer, due - time);
          return;
        }
      }
      const count = Math.min(batchSize, queue.size);
      this.#uncorked = Math.max(0, this.#uncorked - count);
      this.#startBatch(count);
    }
  }

  readonly #onFlushTimer = (): void => {
    this.#flushTimer = undefined;
    this.#pump();
  };

  #startBatch(count: number): void {
    const { items, sizes } = this.#queue.take(count);
    this.#ledger.cut(count);
    const batch: Batch<T> = {
      items,
      sizes,
      start: 0,
      attempt: 0,
      abandoned: false,
      controller: undefined,
      timer: undefined,
      wake: undefined,
    };
    this.#batches.add(batch);
    void this.#delivery.run(batch).finally(() => {
      this.#batches.delete(batch);
      if (this.#destroyed) return;
      this.#pump();
      this.#checkIdle();
    });
  }

  /** Destroys the host with an error that will carry every item still held. */
  #fail(error: BackpressureError<T>): void {
    if (this.#destroyed) return;
    this.#failure = error;
    this.#host.destroy(error);
  }

  // ---- lifecycle -------------------------------------------------------------

  /** end(): flush everything without waiting; `callback` runs once nothing is held. */
  end(callback: () => void): void {
    this.#signals.setEnding();
    this.#pump();
    this.#whenIdle((error) => {
      if (!error) callback();
    });
  }

  /** Flushes everything held now, without waiting for timers; resolves once nothing is held. */
  drain(): Promise<void> {
    if (this.#destroyed) return Promise.reject(BackpressureError.destroyed([], undefined));
    this.#signals.setDrainRequested(true);
    this.#pump();
    return new Promise((resolve, reject) => this.#whenIdle((error) => (error ? reject(error) : resolve())));
  }

  /** Halts (or resumes) flushing on the buffer's own schedule; end() and drain() still flush. */
  setPaused(paused: boolean): void {
    this.#paused = paused;
    if (paused) {
      this.#keepAlive.clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    } else this.#pump();
  }

  /**
   * cork(): partial batches wait (no interval flush) while full ones still go; the last uncork()
   * sends what waited at once.
   */
  setCorked(corked: boolean): void {
    this.#corked = corked;
    if (corked) {
      this.#keepAlive.clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    } else {
      this.#uncorked = this.#queue.size;
      this.#pump();
    }
  }

  #whenIdle(callback: (error?: Error | null) => void): void {
    this.#idleCallbacks.push(callback);
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.length > 0 || this.#idleCallbacks.length === 0 || this.#destroyed) return;
    this.#signals.setDrainRequested(false);
    const callbacks = this.#idleCallbacks;
    this.#idleCallbacks = [];
    for (const callback of callbacks) callback(null);
  }

  /**
   * Stops everything and takes every item still held: batches in a flush slot
   * (their calls are aborted, their late results ignored), the queue, and waiting
   * writes, oldest first. Counts them as dead-lettered: the caller hands them on.
   */
  #takeAll(reason: (items: T[]) => BackpressureError<T>): { items: T[]; waiters: { settle: Settle | undefined }[] } {
    const abort = reason([]);
    this.#keepAlive.clearAll();
    this.#flushTimer = undefined;
    this.#waitTimer = undefined;
    const items: T[] = [];
    for (const batch of this.#batches) for (const item of this.#delivery.abandon(batch, abort)) items.push(item);
    this.#batches.clear();
    for (const item of this.#queue.clear()) items.push(item);
    const waiters = this.#waiting.clear();
    for (const waiter of waiters) items.push(waiter.item);
    this.#ledger.takeAll(waiters.length);
    unwatchHolding(this);
    for (const item of items) this.#lost.push(item);
    return { items, waiters };
  }

  /**
   * The shutdown deadline: takes every item not confirmed delivered, sends it down the
   * dead-letter path (if there is one) and returns it. The host then destroys itself.
   */
  abandon(timeoutMs: number): T[] {
    const { items, waiters } = this.#takeAll((taken) => BackpressureError.shutdownTimeout(taken, timeoutMs));
    const error = BackpressureError.shutdownTimeout(items, timeoutMs);
    failWaiters(waiters, error);
    if (items.length > 0 && this.#deadLetters.hasPath()) this.#deadLetters.handLate(items, error);
    return items;
  }

  /** Every item taken by destroy() or a shutdown deadline so far. */
  get lost(): readonly T[] {
    return this.#lost;
  }

  /**
   * The host is being destroyed (by the user, an aborted signal, or #fail). Items
   * still held go to the dead-letter path; without one, an error of the engine's
   * own carries them, and a plain destroy() only warns (it never emits 'error').
   * Returns the error to destroy the host with.
   */
  destroy(error: Error | null | undefined): Error | null | undefined {
    if (this.#destroyed) return error;
    const { items, waiters } = this.#takeAll((taken) => BackpressureError.destroyed(taken, error));
    this.#destroyed = true;
    this.#signals.destroyed = true;
    let settleError: Error = BackpressureError.destroyed(items, error);
    if (error != null && error === this.#failure) {
      for (const item of items) this.#failure.items.push(item);
      settleError = this.#failure;
    } else if (items.length > 0) {
      if (this.#deadLetters.hasPath()) this.#deadLetters.handLate(items, settleError as BackpressureError<T>);
      else warnDiscarded(items.length, this.className);
    }
    failWaiters(waiters, settleError);
    const callbacks = this.#idleCallbacks;
    this.#idleCallbacks = [];
    for (const callback of callbacks) callback(settleError);
    if (this.#unheardDrops > 0) {
      warnUnheardDrops(this.#unheardDrops, this.#ledger.droppedByReason);
      this.#unheardDrops = 0;
    }
    return error;
  }

  /** Throws unless the accounting identity holds; for tests. */
  assertBalanced(): void {
    this.#ledger.assertBalanced(this.#waiting.size);
  }

  // ---- metrics ----------------------------------------------------------------

  getMetrics(): BackpressureMetrics {
    const ledger = this.#ledger;
    return {
      state: this.#signals.state,
      bufferSize: ledger.held,
      bufferUtilization: this.utilization,
      bufferBytes: ledger.heldBytes,
      eventsOffered: ledger.offered,
      eventsAccepted: ledger.accepted,
      eventsDropped: ledger.dropped,
      droppedByReason: ledger.droppedView(),
      eventsFlushed: ledger.delivered,
      deadLettered: ledger.deadLettered,
      inFlight: ledger.inFlight,
      waitingWrites: this.#waiting.size,
      retries: ledger.retries,
      batches: ledger.batches,
      averageBatchSize: ledger.batches === 0 ? 0 : ledger.itemsCut / ledger.batches,
      lastFlushLatencyMs: this.#scheduler.lastLatencyMs,
      currentFlushIntervalMs: this.#scheduler.interval,
    };
  }
}

function failWaiters(waiters: { settle: Settle | undefined }[], error: Error): void {
  for (const { settle } of waiters) if (settle !== undefined) process.nextTick(settle, error, false);
}
