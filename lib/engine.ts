import { BoundedBuffer } from './bounded-buffer';
import { BackpressureError } from './errors';
import { BackpressureState } from './types';
import type { ResolvedConfig } from './config';
import type {
  BackpressureMetrics,
  BackpressureStrategy,
  DropReason,
  FlushFunction,
  FlushResult,
  WriteCallback,
} from './types';

/**
 * The flush engine shared by the Writable and the Transform: admission (through
 * a strategy's policy), states, batching, adaptive intervals, retries, timeouts
 * and dead letters. It knows nothing of streams; its host does.
 */

/** Called once per write: `accepted` is false when the item was dropped. */
export type Settle = WriteCallback;

/** What the engine needs from the stream that hosts it. */
export interface EngineHost {
  emit(event: string, ...args: unknown[]): boolean;
  listenerCount(event: string): number;
  /** Destroys the host with `error`; the host then calls {@link Engine.destroy}. */
  destroy(error?: Error): unknown;
}

/** The admission primitives a strategy's policy works with; `fits()` is about the item being offered. */
export interface Gate<T> {
  readonly config: ResolvedConfig<T>;
  /** The state utilization gives (never `draining`). */
  readonly level: BackpressureState;
  /** Writes waiting for room (block). */
  readonly waiting: number;
  fits(): boolean;
  accept(item: T, settle: Settle | undefined): void;
  drop(item: T, reason: DropReason, settle: Settle | undefined): void;
  /** Drops the oldest queued item (never one in flight); false when none is queued. */
  evictOldest(): boolean;
  /** Accepts the item and evicts it at once: it was the oldest queued item, as everything else is in flight. */
  evictIncoming(item: T, settle: Settle | undefined): void;
  /** Holds the write until there is room; returns false (the value of `write()`). */
  wait(item: T, settle: Settle | undefined): boolean;
}

/**
 * A strategy: what to do with each offered item. Returns what `write()` returns.
 * @internal
 */
export interface AdmissionPolicy<T> {
  readonly strategy: BackpressureStrategy;
  admit(gate: Gate<T>, item: T, settle: Settle | undefined): boolean;
}

interface Batch<T> {
  /** Items of this batch not yet delivered or dead-lettered. */
  items: T[];
  /** Bytes of `items` (0 without a byte bound). */
  bytes: number;
  /** Failed attempts so far. */
  attempt: number;
  /** Taken over by destroy() or a shutdown deadline: its outcome no longer counts. */
  abandoned: boolean;
  /** The retry backoff or the flush timeout, whichever the batch is waiting on (never both). */
  timer: NodeJS.Timeout | undefined;
  /** Ends that wait early (on destroy). */
  wake: (() => void) | undefined;
}

interface Waiter<T> {
  item: T;
  settle: Settle | undefined;
  size: number;
  deadline: number;
}

type Outcome<T> =
  | { readonly kind: 'delivered' }
  | { readonly kind: 'failed'; readonly failed: T[]; readonly cause: unknown; readonly timedOut: boolean }
  | { readonly kind: 'invalid'; readonly error: BackpressureError<T> };

const DELIVERED: Outcome<never> = Object.freeze({ kind: 'delivered' });
/** Rejection reason of a timed-out flush; compared by identity. */
const TIMED_OUT = new Error('flush timed out');

const now = (): number => performance.now();

function countAtLeast(fraction: number, capacity: number): number {
  // Smallest n with n / capacity >= fraction, computed the way utilization is, so no float edge disagrees.
  let n = Math.ceil(fraction * capacity);
  while (n > 0 && (n - 1) / capacity >= fraction) n--;
  while (n / capacity < fraction) n++;
  return n;
}

/** The write-queue bound of block and the stream's `highWaterMark`: the held count where `critical` starts. */
export function criticalCount(config: { readonly highWatermark: number; readonly maxBufferSize: number }): number {
  return Math.max(1, countAtLeast(config.highWatermark, config.maxBufferSize));
}

export class Engine<T> implements Gate<T> {
  readonly config: ResolvedConfig<T>;
  readonly #flush: FlushFunction<T>;
  readonly #host: EngineHost;
  readonly #policy: AdmissionPolicy<T>;
  /** Accepted items not yet cut into a batch, oldest first. */
  readonly #queue: BoundedBuffer<T>;
  /** Byte size of each item in #queue, in step with it; only with a byte bound. */
  readonly #sizes: BoundedBuffer<number> | undefined;
  /** Arrival time of the first item of each batch-sized run of #queue; [0] dates the oldest item. */
  readonly #stamps: BoundedBuffer<number>;
  /** block: writes waiting at `blocked`, oldest first; at most `criticalCount` of them. */
  readonly #waiting: BoundedBuffer<Waiter<T>>;
  /** Batches in a flush slot, in the order they were cut. */
  readonly #batches = new Set<Batch<T>>();
  readonly #lowCount: number;
  readonly #highCount: number;

  /** Items accepted and not yet delivered or dead-lettered: #queue + in flight + awaiting retry. */
  #held = 0;
  #heldBytes = 0;
  #inFlight = 0;
  /** Held items out of their batch, with a dead-letter handler that has not finished. */
  #handingOff = 0;
  /** Size of the item being offered, set by offer() for fits(). */
  #offeredSize = 0;
  #level = BackpressureState.NORMAL;
  #state = BackpressureState.NORMAL;
  #ending = false;
  #drainRequested = false;
  /** Flushing halted by the controller's stop(); drain() and end() still flush. */
  #paused = false;
  #destroyed = false;
  /** write() returned false and 'drain' has not fired since. */
  #needDrain = false;
  /** The error this engine destroyed its host with; destroy() adds the remaining items to it. */
  #failure: BackpressureError<T> | undefined;
  #idleCallbacks: ((error?: Error | null) => void)[] = [];
  /** Waiters taken by #takeAll whose write callbacks still have to hear the outcome. */
  #pendingWaiters: Waiter<T>[] = [];

  #interval: number;
  #lastLatencyMs = 0;
  #lastFlushEnd = -Infinity;
  #flushTimer: NodeJS.Timeout | undefined;
  #waitTimer: NodeJS.Timeout | undefined;

  #offered = 0;
  #accepted = 0;
  #dropped = 0;
  readonly #droppedByReason: Record<DropReason, number> = {
    evicted: 0,
    rejected: 0,
    sampled: 0,
    timeout: 0,
    overflow: 0,
    oversize: 0,
  };
  /** A frozen copy of #droppedByReason for getMetrics(), rebuilt only after a drop. */
  #droppedView: Readonly<Record<DropReason, number>> | undefined;
  /** Drops that happened with no 'drop' listener; reported once, on destroy. */
  #unheardDrops = 0;
  #delivered = 0;
  #deadLettered = 0;
  #retries = 0;
  #batchesCut = 0;
  #itemsCut = 0;

  constructor(config: ResolvedConfig<T>, flush: FlushFunction<T>, host: EngineHost, policy: AdmissionPolicy<T>) {
    this.config = config;
    this.#flush = flush;
    this.#host = host;
    this.#policy = policy;
    this.#queue = new BoundedBuffer(config.maxBufferSize);
    this.#sizes = config.maxBufferBytes === Infinity ? undefined : new BoundedBuffer(config.maxBufferSize);
    this.#stamps = new BoundedBuffer(Math.ceil(config.maxBufferSize / config.batchSize) + 1);
    this.#highCount = criticalCount(config);
    this.#lowCount = countAtLeast(config.lowWatermark, config.maxBufferSize);
    this.#waiting = new BoundedBuffer(this.#highCount);
    this.#interval = config.minFlushIntervalMs;
  }

  // ---- admission ---------------------------------------------------------

  /** Offers one item; returns what `write()` returns. */
  offer(item: T, settle: Settle | undefined): boolean {
    this.#offered++;
    if (this.#sizes !== undefined) {
      this.#offeredSize = this.config.sizeOf(item);
      if (!(this.#offeredSize <= this.config.maxBufferBytes)) {
        this.drop(item, 'oversize', settle);
        return true;
      }
    }
    const ok = this.#policy.admit(this, item, settle);
    if (!ok && !this.#needDrain) {
      this.#needDrain = true;
      this.#refreshKeepAlive();
    }
    return ok;
  }

  get level(): BackpressureState {
    return this.#level;
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  fits(): boolean {
    return this.#fits(this.#offeredSize);
  }

  #fits(size: number): boolean {
    return this.#held < this.config.maxBufferSize && this.#heldBytes + size <= this.config.maxBufferBytes;
  }

  accept(item: T, settle: Settle | undefined): void {
    this.#enqueue(item, this.#offeredSize);
    if (settle !== undefined) process.nextTick(settle, null, true);
    // The hot path: without a byte bound, one more item changes the level only at a threshold.
    const held = this.#held;
    if (
      this.#sizes !== undefined ||
      held === this.#lowCount ||
      held === this.#highCount ||
      held === this.config.maxBufferSize
    ) {
      this.#refreshLevel();
    }
    // ...and it can start a flush only with a free slot and no timer already due to call back.
    if (
      this.#batches.size < this.config.maxConcurrentFlushes &&
      (this.#flushTimer === undefined ||
        this.#queue.size >= this.config.batchSize ||
        this.#ending ||
        this.#drainRequested)
    ) {
      this.#pump();
    }
  }

  #enqueue(item: T, size: number): void {
    const queue = this.#queue;
    if (queue.size % this.config.batchSize === 0) this.#stamps.push(now());
    queue.push(item);
    if (this.#sizes !== undefined) {
      this.#sizes.push(size);
      this.#heldBytes += size;
    }
    this.#held++;
    this.#accepted++;
  }

  drop(item: T, reason: DropReason, settle: Settle | undefined): void {
    this.#dropped++;
    this.#droppedByReason[reason]++;
    this.#droppedView = undefined;
    if (this.#host.listenerCount('drop') > 0) this.#host.emit('drop', item, reason);
    else this.#unheardDrops++;
    if (settle !== undefined) process.nextTick(settle, null, false);
  }

  evictOldest(): boolean {
    if (this.#queue.isEmpty()) return false;
    const item = this.#queue.shift() as T;
    const size = this.#sizes?.shift() ?? 0;
    this.#restamp();
    this.#held--;
    this.#heldBytes -= size;
    this.drop(item, 'evicted', undefined);
    return true;
  }

  evictIncoming(item: T, settle: Settle | undefined): void {
    this.#accepted++;
    this.drop(item, 'evicted', settle);
  }

  wait(item: T, settle: Settle | undefined): boolean {
    if (this.#waiting.isFull()) {
      this.drop(item, 'overflow', settle);
      return false;
    }
    // maxBlockTimeMs is for producers that write on after a `false`. A write that finds the sluice
    // blocked when the producer had not been told to wait (it can happen with a byte bound, or with
    // highWatermark 1) is honouring backpressure: it waits as long as the sink needs, so that such a
    // producer never loses an item.
    const deadline = this.#needDrain ? now() + this.config.maxBlockTimeMs : Infinity;
    this.#waiting.push({ item, settle, size: this.#offeredSize, deadline });
    this.#refreshLevel();
    this.#armWaitTimer();
    return false;
  }

  /** Moves waiting writes into the buffer while they fit, oldest first. */
  #admitWaiting(): void {
    const waiting = this.#waiting;
    let admitted = false;
    while (!waiting.isEmpty()) {
      const head = waiting.peek() as Waiter<T>;
      if (!this.#fits(head.size)) break;
      waiting.shift();
      this.#enqueue(head.item, head.size);
      if (head.settle !== undefined) process.nextTick(head.settle, null, true);
      admitted = true;
    }
    if (!admitted) return;
    this.#clearWaitTimer();
    this.#armWaitTimer();
  }

  #armWaitTimer(): void {
    if (this.#waitTimer !== undefined || this.config.maxBlockTimeMs === Infinity) return;
    const head = this.#waiting.peek();
    if (head === undefined || head.deadline === Infinity) return;
    this.#waitTimer = setTimeout(this.#onWaitTimer, Math.max(0, head.deadline - now()));
    this.#holdOpen(this.#waitTimer);
  }

  #clearWaitTimer(): void {
    if (this.#waitTimer === undefined) return;
    clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
  }

  readonly #onWaitTimer = (): void => {
    this.#waitTimer = undefined;
    const time = now();
    const waiting = this.#waiting;
    while (!waiting.isEmpty() && (waiting.peek() as Waiter<T>).deadline <= time) {
      const { item, settle } = waiting.shift() as Waiter<T>;
      this.drop(item, 'timeout', settle);
    }
    this.#refreshLevel();
    this.#maybeEmitDrain();
    this.#armWaitTimer();
  };

  // ---- keeping the process alive ---------------------------------------------

  /**
   * Whether someone is waiting on this sluice: a producer told to wait for 'drain', an end()
   * awaiting 'finish', or a drain(). Then its timers must keep the process alive, or it could
   * exit with items held and a pipeline() never settled. Otherwise they are unref'd: a sluice
   * alone never keeps a process alive.
   */
  #awaited(): boolean {
    return this.#needDrain || this.#ending || this.#drainRequested;
  }

  #holdOpen(timer: NodeJS.Timeout): void {
    if (!this.#awaited()) timer.unref();
  }

  /** Re-applies #awaited() to every pending timer after it changed. */
  #refreshKeepAlive(): void {
    const awaited = this.#awaited();
    const apply = (timer: NodeJS.Timeout | undefined): void => {
      if (timer === undefined) return;
      if (awaited) timer.ref();
      else timer.unref();
    };
    apply(this.#flushTimer);
    apply(this.#waitTimer);
    for (const batch of this.#batches) apply(batch.timer);
  }

  // ---- states --------------------------------------------------------------

  get state(): BackpressureState {
    return this.#state;
  }

  get needDrain(): boolean {
    return this.#needDrain;
  }

  /** Items held plus writes waiting: what `writableLength` reports. */
  get length(): number {
    return this.#held + this.#waiting.size;
  }

  get utilization(): number {
    const items = this.#held / this.config.maxBufferSize;
    return this.#sizes === undefined ? items : Math.max(items, this.#heldBytes / this.config.maxBufferBytes);
  }

  #computeLevel(): BackpressureState {
    if (this.#sizes === undefined) {
      const held = this.#held;
      if (held >= this.config.maxBufferSize || this.#waiting.size > 0) return BackpressureState.BLOCKED;
      if (held >= this.#highCount) return BackpressureState.CRITICAL;
      return held >= this.#lowCount ? BackpressureState.ELEVATED : BackpressureState.NORMAL;
    }
    const utilization = this.utilization;
    if (utilization >= 1 || this.#waiting.size > 0) return BackpressureState.BLOCKED;
    if (utilization >= this.config.highWatermark) return BackpressureState.CRITICAL;
    return utilization >= this.config.lowWatermark ? BackpressureState.ELEVATED : BackpressureState.NORMAL;
  }

  #refreshLevel(): void {
    const level = this.#computeLevel();
    if (level === this.#level) return;
    this.#level = level;
    this.#showState();
  }

  #showState(): void {
    const draining = (this.#ending || this.#drainRequested) && this.length > 0;
    const next = draining ? BackpressureState.DRAINING : this.#level;
    if (next === this.#state) return;
    const previous = this.#state;
    this.#state = next;
    this.#host.emit('state', next, previous);
  }

  #maybeEmitDrain(): void {
    // Hysteresis: producers resume below the low watermark, not at every freed slot.
    if (!this.#needDrain || this.#destroyed || this.#level !== BackpressureState.NORMAL) return;
    this.#needDrain = false;
    this.#refreshKeepAlive();
    this.#host.emit('drain');
  }

  // ---- flushing --------------------------------------------------------------

  /** Starts every flush that is due and arms the timer for the next one. */
  #pump(): void {
    if (this.#destroyed) return;
    const urgent = this.#ending || this.#drainRequested;
    if (this.#paused && !urgent) return;
    const { batchSize, maxConcurrentFlushes } = this.config;
    const queue = this.#queue;
    while (this.#batches.size < maxConcurrentFlushes && !queue.isEmpty()) {
      const partial = queue.size < batchSize;
      // A slow sink gets the interval between flushes too; a healthy one gets full batches back to back.
      const spaced = this.#lastLatencyMs > this.config.targetLatencyMs;
      if (!urgent && (partial || spaced)) {
        // A timer already armed will call back here; reading the clock per item is what it saves.
        if (this.#flushTimer !== undefined) return;
        let due = -Infinity;
        if (partial) due = (this.#stamps.peek() as number) + this.#interval;
        if (spaced) due = Math.max(due, this.#lastFlushEnd + this.#interval);
        const time = now();
        if (time < due) {
          this.#flushTimer = setTimeout(this.#onFlushTimer, due - time);
          this.#holdOpen(this.#flushTimer);
          return;
        }
      }
      this.#startBatch(Math.min(batchSize, queue.size));
    }
  }

  readonly #onFlushTimer = (): void => {
    this.#flushTimer = undefined;
    this.#pump();
  };

  #clearFlushTimer(): void {
    if (this.#flushTimer === undefined) return;
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
  }

  /** Drops stamps of runs that are no longer in the queue. */
  #restamp(): void {
    const runs = Math.ceil(this.#queue.size / this.config.batchSize);
    while (this.#stamps.size > runs) this.#stamps.shift();
  }

  #startBatch(count: number): void {
    const items = this.#queue.take(count);
    let bytes = 0;
    if (this.#sizes !== undefined) for (const size of this.#sizes.take(count)) bytes += size;
    this.#restamp();
    this.#inFlight += count;
    this.#batchesCut++;
    this.#itemsCut += count;
    const batch: Batch<T> = { items, bytes, attempt: 0, abandoned: false, timer: undefined, wake: undefined };
    this.#batches.add(batch);
    void this.#deliver(batch);
  }

  async #deliver(batch: Batch<T>): Promise<void> {
    try {
      for (;;) {
        const outcome = await this.#attempt(batch, batch.items);
        if (batch.abandoned) return;
        if (outcome.kind === 'delivered') {
          this.#settleDelivered(batch, batch.items, batch.bytes);
          return;
        }
        if (outcome.kind === 'invalid') {
          await this.#deadLetter(batch, batch.items, batch.bytes, outcome.error);
          return;
        }
        if (outcome.failed !== batch.items) this.#keepOnly(batch, outcome.failed);
        if (batch.attempt < this.config.retry.maxRetries) {
          batch.attempt++;
          this.#retries++;
          await this.#backoff(batch);
          if (batch.abandoned) return;
          continue;
        }
        if (this.config.fallbackToSequential && batch.items.length > 1) await this.#oneByOne(batch);
        else await this.#deadLetter(batch, batch.items, batch.bytes, this.#exhausted(batch.items, outcome));
        return;
      }
    } finally {
      this.#batches.delete(batch);
      if (!this.#destroyed) {
        this.#pump();
        this.#checkIdle();
      }
    }
  }

  /** Calls the sink once, with a timeout if configured, and judges what it returned. */
  async #attempt(batch: Batch<T>, items: T[]): Promise<Outcome<T>> {
    const started = now();
    let result: unknown;
    try {
      const flush = this.#flush; // called bare: the sink's `this` is not the engine
      const call = flush(items);
      result = this.config.flushTimeoutMs === Infinity ? await call : await this.#withTimeout(batch, call);
    } catch (cause) {
      if (cause === TIMED_OUT) return { kind: 'failed', failed: items, cause: undefined, timedOut: true };
      this.#recordLatency(started);
      return { kind: 'failed', failed: items, cause, timedOut: false };
    }
    this.#recordLatency(started);
    return judge(items, result);
  }

  #withTimeout(batch: Batch<T>, call: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const wake = (): void => reject(TIMED_OUT);
      const timer = setTimeout(wake, this.config.flushTimeoutMs);
      this.#holdOpen(timer);
      batch.timer = timer;
      batch.wake = wake;
      const done = (): void => {
        clearTimeout(timer);
        // A call settling after its timeout must not touch the wait the batch has moved on to.
        if (batch.timer !== timer) return;
        batch.timer = undefined;
        batch.wake = undefined;
      };
      Promise.resolve(call).then(
        (value) => {
          done();
          resolve(value);
        },
        (error: unknown) => {
          done();
          reject(error);
        },
      );
    });
  }

  #recordLatency(started: number): void {
    const { targetLatencyMs, minFlushIntervalMs, maxFlushIntervalMs } = this.config;
    this.#lastFlushEnd = now();
    const latencyMs = this.#lastFlushEnd - started;
    this.#lastLatencyMs = latencyMs;
    if (latencyMs > targetLatencyMs * 1.5) this.#interval = Math.min(this.#interval * 1.5, maxFlushIntervalMs);
    else if (latencyMs < targetLatencyMs * 0.5) this.#interval = Math.max(this.#interval * 0.8, minFlushIntervalMs);
  }

  #backoff(batch: Batch<T>): Promise<void> {
    const { initialDelayMs, maxDelayMs } = this.config.retry;
    // Full jitter: a random delay up to a doubling bound, so failed writers do not retry in step.
    const bound = Math.min(maxDelayMs, initialDelayMs * 2 ** (batch.attempt - 1));
    return new Promise((resolve) => {
      batch.wake = resolve;
      batch.timer = setTimeout(() => {
        batch.timer = undefined;
        batch.wake = undefined;
        resolve();
      }, Math.random() * bound);
      this.#holdOpen(batch.timer);
    });
  }

  /** After retries are exhausted: one attempt per item, so one bad item fails alone. */
  async #oneByOne(batch: Batch<T>): Promise<void> {
    for (const item of [...batch.items]) {
      const outcome = await this.#attempt(batch, [item]);
      if (batch.abandoned) return;
      const size = this.#sizes === undefined ? 0 : this.config.sizeOf(item);
      if (outcome.kind === 'delivered') this.#settleDelivered(batch, [item], size);
      else {
        const error = outcome.kind === 'invalid' ? outcome.error : this.#exhausted([item], outcome);
        await this.#deadLetter(batch, [item], size, error);
        if (batch.abandoned) return;
      }
    }
  }

  #exhausted(items: T[], outcome: Outcome<T> & { kind: 'failed' }): BackpressureError<T> {
    return outcome.timedOut
      ? BackpressureError.flushTimeout(items, 'retries_exhausted', this.config.flushTimeoutMs)
      : BackpressureError.flushFailed(items, 'retries_exhausted', outcome.cause);
  }

  /** Narrows a batch to its failed items: the rest was delivered. */
  #keepOnly(batch: Batch<T>, failed: T[]): void {
    let failedBytes = 0;
    if (this.#sizes !== undefined) for (const item of failed) failedBytes += this.config.sizeOf(item);
    const deliveredCount = batch.items.length - failed.length;
    const deliveredBytes = batch.bytes - failedBytes;
    batch.items = failed;
    batch.bytes = failedBytes;
    this.#delivered += deliveredCount;
    this.#releaseHeld(deliveredCount, deliveredBytes);
    this.#afterRelease();
  }

  #settleDelivered(batch: Batch<T>, items: T[], bytes: number): void {
    this.#delivered += items.length;
    this.#removeFromBatch(batch, items, bytes);
    this.#releaseHeld(items.length, bytes);
    this.#afterRelease();
  }

  /**
   * Takes `items` out of their batch. They are always its first items (the whole batch, or the
   * head in the one-by-one pass), so this drops a prefix: by position, never by value, as equal
   * items may stand in a batch more than once.
   */
  #removeFromBatch(batch: Batch<T>, items: T[], bytes: number): void {
    batch.items = items.length === batch.items.length ? [] : batch.items.slice(items.length);
    batch.bytes -= bytes;
  }

  #releaseHeld(count: number, bytes: number): void {
    this.#held -= count;
    this.#heldBytes -= bytes;
    this.#inFlight -= count;
  }

  /** Room was freed: let waiting writes in, update the state, and maybe resume the producer. */
  #afterRelease(): void {
    this.#admitWaiting();
    this.#refreshLevel();
    this.#maybeEmitDrain();
  }

  // ---- dead letters --------------------------------------------------------

  #hasDeadLetterPath(): boolean {
    return this.config.onDeadLetter !== undefined || this.#host.listenerCount('deadletter') > 0;
  }

  /**
   * Hands failed items of a batch to the dead-letter path (awaiting the handler, so
   * 'finish' waits for it too), or fails the stream with them when there is none.
   */
  async #deadLetter(batch: Batch<T>, items: T[], bytes: number, error: BackpressureError<T>): Promise<void> {
    // Out of the batch at once, so a destroy() during the handler cannot hand them on a second
    // time; still held (and counted in #handingOff) until the handler is done.
    this.#removeFromBatch(batch, items, bytes);
    this.#handingOff += items.length;
    let failure = this.#hasDeadLetterPath() ? undefined : error;
    if (failure === undefined) {
      try {
        this.#host.emit('deadletter', items, error);
        await this.config.onDeadLetter?.(items, error);
      } catch (handlerError) {
        failure = deadLetterHandlerFailed(error, handlerError);
      }
      if (batch.abandoned) {
        // destroy() counted these as dead-lettered; nothing is left to fail but a warning.
        if (failure !== undefined) warnDeadLetterFailed(failure);
        return;
      }
    }
    this.#handingOff -= items.length;
    this.#deadLettered += items.length;
    this.#releaseHeld(items.length, bytes);
    if (failure !== undefined) this.#fail(failure);
    else this.#afterRelease();
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
    this.#ending = true;
    this.#refreshKeepAlive();
    this.#showState();
    this.#pump();
    this.#whenIdle((error) => {
      if (!error) callback();
    });
  }

  /** Flushes everything held now, without waiting for timers; resolves once nothing is held. */
  drain(): Promise<void> {
    if (this.#destroyed) return Promise.reject(BackpressureError.destroyed([], undefined));
    this.#drainRequested = true;
    this.#refreshKeepAlive();
    this.#showState();
    this.#pump();
    return new Promise((resolve, reject) => this.#whenIdle((error) => (error ? reject(error) : resolve())));
  }

  /** Halts (or resumes) flushing on the buffer's own schedule; end() and drain() still flush. */
  setPaused(paused: boolean): void {
    this.#paused = paused;
    if (paused) this.#clearFlushTimer();
    else this.#pump();
  }

  #whenIdle(callback: (error?: Error | null) => void): void {
    this.#idleCallbacks.push(callback);
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.length > 0 || this.#idleCallbacks.length === 0) return;
    this.#drainRequested = false;
    this.#refreshKeepAlive();
    // Empty again: the state utilization gives (a finished stream does not read 'draining').
    this.#showState();
    const callbacks = this.#idleCallbacks;
    this.#idleCallbacks = [];
    for (const callback of callbacks) callback(null);
  }

  /**
   * Stops everything and takes every item still held: in-flight batches (their late
   * results are ignored), the queue, and waiting writes, oldest first. Counts them as
   * dead-lettered: the caller hands them on.
   */
  #takeAll(): T[] {
    const taken: T[] = [];
    this.#clearFlushTimer();
    this.#clearWaitTimer();
    for (const batch of this.#batches) {
      batch.abandoned = true;
      clearTimeout(batch.timer);
      batch.timer = undefined;
      batch.wake?.();
      for (const item of batch.items) taken.push(item);
    }
    this.#batches.clear();
    for (const item of this.#queue.clear()) taken.push(item);
    this.#sizes?.clear();
    this.#stamps.clear();
    const waiters = this.#waiting.clear();
    this.#accepted += waiters.length;
    for (const waiter of waiters) taken.push(waiter.item);
    this.#deadLettered += taken.length + this.#handingOff;
    this.#handingOff = 0;
    this.#held = 0;
    this.#heldBytes = 0;
    this.#inFlight = 0;
    this.#pendingWaiters = waiters;
    return taken;
  }

  #failWaiters(error: Error): void {
    for (const waiter of this.#pendingWaiters)
      if (waiter.settle !== undefined) process.nextTick(waiter.settle, error, false);
    this.#pendingWaiters = [];
  }

  /**
   * The shutdown deadline: takes every item not confirmed delivered, sends it down the
   * dead-letter path (if there is one) and returns it. The host then destroys itself.
   */
  abandon(timeoutMs: number): T[] {
    const items = this.#takeAll();
    const error = BackpressureError.shutdownTimeout(items, timeoutMs);
    this.#failWaiters(error);
    if (items.length > 0 && this.#hasDeadLetterPath()) this.#notifyDeadLetterLate(items, error);
    return items;
  }

  /**
   * The host is being destroyed (by the user, an aborted signal, or #fail). Items
   * still held go to the dead-letter path; without one, they travel in the error the
   * host is destroyed with. Returns that error.
   */
  destroy(error: Error | null | undefined): Error | null | undefined {
    if (this.#destroyed) return error;
    this.#destroyed = true;
    const items = this.#takeAll();
    let result = error;
    let settleError: Error = BackpressureError.destroyed(items, error);
    if (error != null && error === this.#failure) {
      for (const item of items) this.#failure.items.push(item);
      settleError = this.#failure;
    } else if (items.length > 0) {
      const destroyed = settleError as BackpressureError<T>;
      if (this.#hasDeadLetterPath()) this.#notifyDeadLetterLate(items, destroyed);
      else result = destroyed;
    }
    this.#failWaiters(settleError);
    const callbacks = this.#idleCallbacks;
    this.#idleCallbacks = [];
    for (const callback of callbacks) callback(settleError);
    this.#warnUnheardDrops();
    return result;
  }

  /** Dead letters on the way out: nothing is left to wait for the handler, so a failure becomes a warning. */
  #notifyDeadLetterLate(items: T[], error: BackpressureError<T>): void {
    const report = (handlerError: unknown): void => warnDeadLetterFailed(deadLetterHandlerFailed(error, handlerError));
    try {
      this.#host.emit('deadletter', items, error);
      const pending = this.config.onDeadLetter?.(items, error);
      if (pending !== undefined) Promise.resolve(pending).catch(report);
    } catch (handlerError) {
      report(handlerError);
    }
  }

  #warnUnheardDrops(): void {
    if (this.#unheardDrops === 0) return;
    const reasons = Object.entries(this.#droppedByReason)
      .filter(([, n]) => n > 0)
      .map(([reason, n]) => `${reason}: ${n}`)
      .join(', ');
    const message = `sluice dropped ${this.#unheardDrops} item(s) with no 'drop' listener (${reasons}). Listen to 'drop' or read getMetrics().droppedByReason to see them.`;
    this.#unheardDrops = 0;
    process.emitWarning(message, { type: 'SluiceDropWarning', code: 'SLUICE_ITEMS_DROPPED' });
  }

  // ---- metrics ----------------------------------------------------------------

  getMetrics(): BackpressureMetrics {
    return {
      state: this.#state,
      bufferSize: this.#held,
      bufferUtilization: this.utilization,
      bufferBytes: this.#heldBytes,
      eventsOffered: this.#offered,
      eventsAccepted: this.#accepted,
      eventsDropped: this.#dropped,
      droppedByReason: (this.#droppedView ??= Object.freeze({ ...this.#droppedByReason })),
      eventsFlushed: this.#delivered,
      deadLettered: this.#deadLettered,
      inFlight: this.#inFlight,
      waitingWrites: this.#waiting.size,
      retries: this.#retries,
      batches: this.#batchesCut,
      averageBatchSize: this.#batchesCut === 0 ? 0 : this.#itemsCut / this.#batchesCut,
      lastFlushLatencyMs: this.#lastLatencyMs,
      currentFlushIntervalMs: this.#interval,
    };
  }
}

/** Judges what a flush function resolved against the batch it was given. */
function judge<T>(items: T[], result: unknown): Outcome<T> {
  if (result === undefined || result === null) return DELIVERED;
  const invalid = (problem: string): Outcome<T> => ({
    kind: 'invalid',
    error: BackpressureError.invalidResult(items, problem, result),
  });
  if (typeof result !== 'object') return invalid('it must be a FlushResult object or nothing');
  const { success, failed, failedItems, errors } = result as Partial<Record<keyof FlushResult<T>, unknown>>;
  if (!isCount(success) || !isCount(failed)) return invalid('"success" and "failed" must be integers >= 0');
  if (success + failed !== items.length) {
    return invalid(`"success" (${success}) + "failed" (${failed}) must equal the batch length (${items.length})`);
  }
  if (failed === 0) return DELIVERED;
  const cause = sinkErrors(errors, failed);
  if (failedItems === undefined) return { kind: 'failed', failed: items, cause, timedOut: false };
  if (!Array.isArray(failedItems) || failedItems.length !== failed) {
    return invalid(`"failedItems" must be an array of the ${failed} failed items`);
  }
  const retry = pickInBatchOrder(items, failedItems as T[]);
  if (retry === undefined) return invalid('"failedItems" must hold items of the batch');
  return { kind: 'failed', failed: retry, cause, timedOut: false };
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** The failed items in batch order (a multiset match, so repeated primitives count right); undefined if one is foreign. */
function pickInBatchOrder<T>(items: T[], failedItems: T[]): T[] | undefined {
  const wanted = new Map<T, number>();
  for (const item of failedItems) wanted.set(item, (wanted.get(item) ?? 0) + 1);
  const picked: T[] = [];
  for (const item of items) {
    const n = wanted.get(item);
    if (n === undefined || n === 0) continue;
    wanted.set(item, n - 1);
    picked.push(item);
  }
  return picked.length === failedItems.length ? picked : undefined;
}

function sinkErrors(errors: unknown, failed: number): unknown {
  if (Array.isArray(errors) && errors.length === 1) return errors[0];
  if (Array.isArray(errors) && errors.length > 1)
    return new AggregateError(errors, `the sink reported ${errors.length} errors`);
  return new Error(`the sink reported ${failed} failed item(s)`);
}

/** A dead-letter handler failed after its stream was destroyed: the last place left to report it. */
function warnDeadLetterFailed(error: Error): void {
  process.emitWarning(error, { code: 'SLUICE_DEAD_LETTER_FAILED' } as NodeJS.EmitWarningOptions);
}

function deadLetterHandlerFailed<T>(error: BackpressureError<T>, handlerError: unknown): BackpressureError<T> {
  const why = handlerError instanceof Error ? handlerError.message : String(handlerError);
  return new BackpressureError(
    error.code,
    `The dead-letter handler failed for ${error.items.length} item(s) (${error.message}): ${why}`,
    error.items,
    error.reason,
    handlerError,
  );
}
