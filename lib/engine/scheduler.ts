import { BatchSizer } from './batch-sizer';
import { ConcurrencyLimiter } from './concurrency-limiter';
import { LoopStalls } from './loop-stalls';
import { fillingBatchSize } from './thresholds';
import type { Delivery, Batch } from './delivery';
import type { KeepAlive } from './keep-alive';
import type { Ledger } from './ledger';
import type { Queue } from './queue';
import type { Signals } from './signals';

/**
 * When to cut a batch. A full batch goes as soon as a flush slot is free; a
 * partial batch waits for the adaptive interval of the design doc (latency above
 * 1.5 × target: × 1.5 up to the max; below 0.5 × target: × 0.8 down to the min)
 * since its oldest item arrived; on `end()`/`drain()` everything goes at once.
 * The interval decides only for partial batches: spacing full batches only
 * throttles a slow sink further while the producer waits. Owns the flush slots
 * (how many, with adaptive concurrency), the flush timer, the interval, the
 * batch size and the pause/cork holds; hands each batch to delivery and tells
 * its host when one is done.
 */

export interface SchedulerConfig {
  readonly maxBufferSize: number;
  /** The byte bound the states follow (Infinity for none). */
  readonly maxBufferBytes: number;
  readonly highWatermark: number;
  readonly batchSize: number;
  readonly batchBounds: { readonly min: number; readonly max: number } | undefined;
  readonly maxConcurrentFlushes: number;
  readonly concurrencyBounds: { readonly min: number; readonly max: number } | undefined;
  readonly targetLatencyMs: number;
  readonly minFlushIntervalMs: number;
  readonly maxFlushIntervalMs: number;
}

export interface SchedulerHost {
  /** A batch left its slot (delivered, dead-lettered or abandoned). */
  batchDone(): void;
}

const now = (): number => performance.now();

/**
 * A call whose FlushResult failed more than this share of its items is a failed call for adaptive
 * batching and concurrency: a sink that throttles per item says so that way (Elasticsearch's per-item
 * 429s, DynamoDB's UnprocessedItems, a broker's nacks from a full queue). Fewer is the data's fault: a
 * bad row in most batches must not hold the slots at one (measured before this rule: a pool of 8 held
 * at a limit of 1 by one bad row in 97).
 */
export const OVERLOAD_SHARE = 0.25;

/** How much each batch's bytes per item move the running estimate that sizes fit by (see #fitBytes). */
const ITEM_BYTES_WEIGHT = 0.25;

export class Scheduler<T> {
  readonly #config: SchedulerConfig;
  readonly #queue: Queue<T>;
  readonly #ledger: Ledger;
  readonly #keepAlive: KeepAlive;
  readonly #delivery: Delivery<T>;
  /** destroyed; ending or drainRequested (urgent: flush everything now, holds and timers aside). */
  readonly #signals: Signals;
  readonly #host: SchedulerHost;
  /**
   * Batches in a flush slot, in the order they were cut; at most `slots`. An array, not a Set: the
   * profile of a fast sink put about a microsecond per batch on `Set#delete` of the batch that left,
   * and the array took a fast pipeline of 3,000,000 items from 0.93x to 0.98x native (no change
   * measured at 1,000,000). Batches mostly leave in the order they were cut, so the one leaving is
   * found first.
   */
  readonly #batches: Batch<T>[] = [];

  /** The batches in their flush slots now, in the order they were cut (a copy). */
  inSlots(): Batch<T>[] {
    return this.#batches.slice();
  }
  /** Armed for the oldest partial batch, undefined otherwise. */
  #flushTimer: NodeJS.Timeout | undefined;
  /** Flushing halted by the controller's stop(); drain() and end() still flush. */
  #paused = false;
  /** cork(): partial batches wait for uncork() (no interval flush); full batches still go. */
  #corked = false;
  /** Items queued at the last uncork() not yet cut into a batch: they go without waiting for the interval. */
  #uncorked = 0;
  /**
   * The adaptive interval and the last call's sink time. Numbers that become fractional are kept in
   * a typed array, not in fields: the first fraction stored in a field that held only integers
   * changes this object's shape, and that deoptimized the compiled write path (which reads `turns`).
   */
  readonly #timings = new Float64Array(2);

  /** How long a partial batch may wait now. */
  get interval(): number {
    return this.#timings[0] as number;
  }

  /** How long the last call took to settle (0 before the first). */
  get lastLatencyMs(): number {
    return this.#timings[1] as number;
  }
  /** Adaptive batching; undefined for a fixed batch size. */
  readonly #sizer: BatchSizer | undefined;
  /** Adaptive concurrency; undefined for a fixed number of slots. */
  readonly #limiter: ConcurrencyLimiter | undefined;
  /** With adaptive concurrency: how long the event loop kept each settled call from being seen. */
  readonly #stalls: LoopStalls | undefined;
  /**
   * With adaptive batching and a byte bound: the bytes a batch may hold (the critical share of the
   * bound, per slot plus one, as for items), and the bytes per item seen so far. Infinity and 0 otherwise.
   */
  readonly #batchBytes: number;
  #itemBytes = 0;

  constructor(
    config: SchedulerConfig,
    parts: { queue: Queue<T>; ledger: Ledger; keepAlive: KeepAlive; delivery: Delivery<T>; signals: Signals },
    host: SchedulerHost,
  ) {
    this.#config = config;
    this.#queue = parts.queue;
    this.#ledger = parts.ledger;
    this.#keepAlive = parts.keepAlive;
    this.#delivery = parts.delivery;
    this.#signals = parts.signals;
    this.#host = host;
    this.#timings[0] = config.minFlushIntervalMs;
    const bounds = config.batchBounds;
    // A batch larger than the critical count could never fill while a block producer waits at critical:
    // it would go on the interval timer only. And while every slot's batch is in flight, the next one
    // fills in what the critical count leaves: adaptive sizes stay at or below critical / (slots + 1),
    // so that a full batch is ready when a slot frees (measured sink time alone would favour larger).
    // With adaptive concurrency, the most slots there may be.
    const fits = fillingBatchSize(config);
    this.#sizer =
      bounds === undefined
        ? undefined
        : new BatchSizer(bounds.min, Math.max(bounds.min, Math.min(bounds.max, fits)), config.targetLatencyMs);
    // The same with a byte bound, in bytes: how many items that leaves depends on their size, known
    // only as they come (see #fitBytes). Without it, a size could climb to one that never fills.
    this.#batchBytes =
      this.#sizer === undefined || config.maxBufferBytes === Infinity
        ? Infinity
        : (config.highWatermark * config.maxBufferBytes) / (config.maxConcurrentFlushes + 1);
    this.batchSize = config.batchSize;
    const slots = config.concurrencyBounds;
    this.#limiter =
      slots === undefined ? undefined : new ConcurrencyLimiter(slots.min, slots.max, config.targetLatencyMs);
    this.#stalls = slots === undefined ? undefined : new LoopStalls();
    this.slots = this.#limiter?.limit ?? config.maxConcurrentFlushes;
  }

  /** The size batches are cut at now (a field: the hot path reads it per item). */
  batchSize: number;
  /** Flushes that may run at once now (a field: the hot path reads it per item). */
  slots: number;

  /**
   * A call of `items` items settled after `latencyMs` of sink time, delivering `delivered` of them;
   * `counts`: the controllers may learn from it (see CallRecorder). One that failed more than
   * OVERLOAD_SHARE of its items is a failed call for both controllers; one that failed fewer counts
   * as a call of its size: those items are the data's fault (a bad row), not the sink's load or the
   * size. The calls that retry or isolate the items a FlushResult failed tell them nothing: a bad
   * row's retry, alone, must not halve the slots or the size.
   */
  recordLatency(latencyMs: number, items: number, delivered: number, counts: boolean): void {
    this.turns++; // the batch size and the slots may change
    const { targetLatencyMs, minFlushIntervalMs, maxFlushIntervalMs } = this.#config;
    this.#timings[1] = latencyMs;
    if (counts) {
      if (items - delivered > items * OVERLOAD_SHARE) this.#callFailed(items);
      else {
        const limiter = this.#limiter;
        if (limiter !== undefined) {
          // With adaptive batching, the calls of the size it holds between its probes.
          const full = items === (this.#sizer === undefined ? this.batchSize : this.#sizer.settledSize);
          const stalledMs = (this.#stalls as LoopStalls).busyMs();
          limiter.delivered(items, latencyMs, full, this.#batches.length, stalledMs);
          this.slots = limiter.limit;
        }
        if (this.#sizer !== undefined) {
          this.#sizer.observe(items, latencyMs);
          this.batchSize = this.#sizer.size;
        }
      }
    }
    const interval = this.interval;
    if (latencyMs > targetLatencyMs * 1.5) this.#timings[0] = Math.min(interval * 1.5, maxFlushIntervalMs);
    else if (latencyMs < targetLatencyMs * 0.5) this.#timings[0] = Math.max(interval * 0.8, minFlushIntervalMs);
  }

  /** A call of `items` items timed out (it counts as failed); its batch is still in its slot. */
  recordTimeout(items: number, counts: boolean): void {
    this.turns++;
    if (counts) this.#callFailed(items);
  }

  /**
   * A call of a whole batch, `items` items, failed, timed out or failed more than OVERLOAD_SHARE of its
   * items, while the batch is in its slot.
   */
  #callFailed(items: number): void {
    const limiter = this.#limiter;
    if (limiter !== undefined) {
      limiter.failed(this.#batches.length);
      this.slots = limiter.limit;
    }
    if (this.#sizer !== undefined) {
      this.#sizer.failed(items);
      this.batchSize = this.#sizer.size;
    }
  }

  /** Whether one more queued item could start a flush now (the hot path's cheap test before pump()). */
  mayStart(): boolean {
    return (
      this.#batches.length < this.slots &&
      (this.#flushTimer === undefined || this.#queue.size >= this.batchSize || this.#signals.urgent)
    );
  }

  /**
   * Bumped by every call that may change what {@link queueable} says: a pump (which starts batches
   * and arms the timer; a batch's end and the timer call it too), a settled or timed-out call (the batch
   * size and the slots may change), cork, pause and stop. What queueable() said holds within one turn.
   */
  turns = 0;

  /**
   * How many more items may be queued, while nothing else happens, before one of them could start a
   * flush (mayStart() true once it is queued): none while the timer is not armed or everything is
   * urgent, the rest of the partial batch while it is, and any number while every slot is busy (the
   * end of a batch pumps).
   */
  queueable(): number {
    if (this.#batches.length >= this.slots) return Infinity;
    if (this.#flushTimer === undefined || this.#signals.urgent) return 0;
    return Math.max(0, this.batchSize - 1 - this.#queue.size);
  }

  /**
   * Starts every flush that is due and arms the timer for the next partial batch. Urgent (end(),
   * drain(), what waited for uncork()): everything goes now. Corked: full batches only, so that
   * nothing corked waits on a full buffer (a drop strategy would drop it).
   */
  pump(): void {
    this.turns++;
    if (this.#signals.destroyed) return;
    const urgent = this.#signals.urgent;
    if (this.#paused && !urgent) return;
    const queue = this.#queue;
    // Both read per batch: starting one may lower the slots (a `_writev` callback that fails at once is judged
    // inside the call) and cutting one the batch size (#fitBytes).
    while (this.#batches.length < this.slots && queue.size > 0) {
      const batchSize = this.batchSize;
      if (!urgent && this.#uncorked === 0 && queue.size < batchSize) {
        // A timer already armed will call back here; reading the clock per item is what it saves.
        if (this.#corked || this.#flushTimer !== undefined) return;
        const due = (queue.oldestArrival as number) + this.interval;
        const time = now();
        if (time < due) {
          this.#flushTimer = this.#keepAlive.setTimeout(this.#onFlushTimer, due - time);
          return;
        }
      }
      const count = Math.min(batchSize, queue.size);
      if (this.#uncorked > 0) this.#uncorked = Math.max(0, this.#uncorked - count);
      this.#startBatch(count);
    }
  }

  readonly #onFlushTimer = (): void => {
    this.#flushTimer = undefined;
    this.pump();
  };

  setPaused(paused: boolean): void {
    this.turns++;
    this.#paused = paused;
    if (paused) this.#clearFlushTimer();
    else this.pump();
  }

  setCorked(corked: boolean): void {
    this.turns++;
    this.#corked = corked;
    if (corked) this.#clearFlushTimer();
    else {
      this.#uncorked = this.#queue.size;
      this.pump();
    }
  }

  /** destroy() and the shutdown deadline: no batch is cut any more (timers are the caller's). */
  stop(): void {
    this.turns++;
    this.#flushTimer = undefined;
    this.#batches.length = 0;
  }

  #clearFlushTimer(): void {
    this.#keepAlive.clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
  }

  #startBatch(count: number): void {
    const { items, sizes, ids, bytes } = this.#queue.take(count);
    this.#ledger.cut(count);
    if (this.#batchBytes !== Infinity) this.#fitBytes(bytes, count);
    const batch: Batch<T> = {
      items,
      sizes,
      ids,
      start: 0,
      cut: count,
      attempt: 0,
      tries: 0,
      abandoned: false,
      context: undefined,
      timer: undefined,
      wake: undefined,
      acking: undefined,
    };
    this.#batches.push(batch);
    this.#limiter?.started(this.#batches.length);
    this.#delivery.run(batch, this.#batchDone);
  }

  /**
   * Adaptive batching under a byte bound: keeps sizes to what the bound leaves room for, by a running
   * mean of the bytes per item of the batches cut. A batch size the bound cannot hold never fills, so
   * every batch would wait for the flush timer, and the sizer, which measures full batches only, would
   * never see one to come back down by.
   */
  #fitBytes(bytes: number, count: number): void {
    const perItem = bytes / count;
    const mean = this.#itemBytes === 0 ? perItem : this.#itemBytes + (perItem - this.#itemBytes) * ITEM_BYTES_WEIGHT;
    this.#itemBytes = mean;
    const sizer = this.#sizer as BatchSizer;
    sizer.fit(mean > 0 ? Math.floor(this.#batchBytes / mean) : Infinity);
    if (sizer.size !== this.batchSize) {
      this.turns++;
      this.batchSize = sizer.size;
    }
  }

  readonly #batchDone = (batch: Batch<T>): void => {
    const slots = this.#batches;
    // Batches mostly leave in the order they were cut: shift() then, which allocates nothing.
    if (slots[0] === batch) slots.shift();
    else {
      const index = slots.indexOf(batch);
      if (index >= 0) slots.splice(index, 1);
    }
    if (this.#signals.destroyed) return;
    this.pump();
    this.#host.batchDone();
  };
}
