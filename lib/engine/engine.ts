import { BackpressureError } from '../errors';
import { BackpressureState } from '../types';
import { DeadLetters, warnDiscarded, warnUnheardDrops } from './dead-letter';
import { Delivery } from './delivery';
import { watchForExit } from './exit-watch';
import { KeepAlive } from './keep-alive';
import { Ledger } from './ledger';
import { Admission } from './admission';
import { Scheduler } from './scheduler';
import { Signals } from './signals';
import { Thresholds } from './thresholds';
import { BackpressureStrategy } from '../types';
import type { DiskError } from '../disk/errors';
import type { Spool, Staged } from './spool';
import type { ResolvedConfig } from '../config';
import type { BackpressureMetrics } from '../types';
import type { SinkHook } from './call';
import type { AdmissionPolicy, Settle } from './admission';
import type { Queue } from './queue';
import type { SignalHost } from './signals';
import type { WaitQueue } from './waiting';

/**
 * The engine shared by the Writable and the Transform. It composes the parts and
 * owns only their wiring and the lifecycle (end, drain, destroy, shutdown):
 *
 *   write → offer (size taken once) → policy.admit → accept: queue + ledger
 *         → level at a threshold (signals) → pump (scheduler) → delivery
 *
 * It knows nothing of streams; its host does.
 */

/** What the engine needs from the stream that hosts it. */
export interface EngineHost extends SignalHost {
  /** Destroys the host with `error`; the host then calls {@link Engine.destroy}. */
  destroy(error?: Error): unknown;
}

export class Engine<T> {
  readonly config: ResolvedConfig<T>;
  readonly className: string;
  readonly #host: EngineHost;
  readonly #thresholds: Thresholds;
  readonly #ledger = new Ledger();
  readonly #keepAlive = new KeepAlive();
  readonly #admission: Admission<T>;
  readonly #queue: Queue<T>;
  readonly #waiting: WaitQueue<T>;
  readonly #signals: Signals;
  readonly #scheduler: Scheduler<T>;
  readonly #deadLetters: DeadLetters<T>;
  readonly #delivery: Delivery<T>;
  /** With the `disk` option: the write-ahead log under the queue. */
  readonly #spool: Spool<T> | undefined;

  /** The error this engine destroyed its host with; destroy() adds the remaining items to it. */
  #failure: BackpressureError<T> | undefined;
  #idleCallbacks: ((error?: Error | null) => void)[] = [];
  /** shutdown() is in progress: it will resolve what a destroy() takes. */
  #shuttingDown = false;
  /** Items taken by destroy() or a shutdown deadline, undelivered: what a shutdown in progress resolves. */
  #lost: T[] = [];

  constructor(
    config: ResolvedConfig<T>,
    flush: SinkHook<T>,
    host: EngineHost,
    policy: AdmissionPolicy<T>,
    className: string,
  ) {
    this.config = config;
    this.className = className;
    this.#host = host;
    this.#thresholds = new Thresholds(boundsOf(config));
    const signals = (this.#signals = new Signals(host, this.#keepAlive, () => this.length));
    const parts = {
      ledger: this.#ledger,
      thresholds: this.#thresholds,
      signals: this.#signals,
      keepAlive: this.#keepAlive,
    };
    this.#admission = new Admission(config, policy, parts, {
      emit: host.emit,
      listenerCount: host.listenerCount,
      refreshLevel: () => this.#refreshLevel(),
      waitsExpired: () => {
        this.#refreshLevel();
        this.#signals.maybeDrain();
        this.#checkIdle();
      },
      takeLate: (item, size, settle) => this.#takeLate(item, size, settle),
    });
    this.#queue = this.#admission.queue;
    this.#waiting = this.#admission.waitQueue;
    this.#deadLetters = new DeadLetters(host, config.onDeadLetter);
    this.#delivery = new Delivery(config, flush, this.#ledger, this.#keepAlive, this.#deadLetters, {
      released: () => this.#released(),
      fail: (error) => this.#fail(error as BackpressureError<T>),
      recordLatency: (latencyMs, items, delivered, counts) =>
        this.#scheduler.recordLatency(latencyMs, items, delivered, counts),
      recordTimeout: (items, counts) => this.#scheduler.recordTimeout(items, counts),
      settled: (ids) => this.#spool?.settled(ids),
    });
    this.#scheduler = new Scheduler(
      { ...config, maxBufferBytes: this.#thresholds.maxBytes },
      {
        queue: this.#queue,
        ledger: this.#ledger,
        keepAlive: this.#keepAlive,
        delivery: this.#delivery,
        signals,
      },
      {
        batchDone: () => this.#checkIdle(),
      },
    );
    this.#admission.pump = this.#scheduler;
    this.offer = this.#admission.offer.bind(this.#admission);
    if (config.disk === undefined) watchForExit(this);
    else {
      // What the log holds survives the process: nothing to warn about at exit.
      this.#spool = new (loadSpool())(
        config.disk,
        {
          queue: this.#queue,
          ledger: this.#ledger,
          maxItems: config.maxBufferSize,
          pauseLimit: 2 * (config.batchBounds?.max ?? config.batchSize),
        },
        {
          queued: () => this.#scheduler.pump(),
          opened: (replayed, bytes, corrupt) => {
            this.#ledger.replay(replayed, bytes, corrupt);
            this.#refreshLevel();
            if (replayed > 0) host.emit('replay', replayed);
            this.#checkIdle();
          },
          appendFailed: (entries, error) => this.#appendFailed(entries, error),
          fail: (error) => this.#host.destroy(error),
          spaceAgain: () => {
            this.#released();
            this.#signals.maybeDrain(true);
          },
        },
      );
      this.#admission.spool = this.#spool;
    }
  }

  // ---- admission ---------------------------------------------------------

  /** Offers one item; returns what `write()` returns. Re-entrant: every call sizes its own item. */
  readonly offer: (item: T, settle: Settle | undefined) => boolean;

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

  /** Something is held or waiting, or (disk) the log is still opening and may hold a previous run's items. */
  get busy(): boolean {
    return this.length > 0 || this.#spool?.opening === true;
  }

  get utilization(): number {
    return this.#thresholds.utilization(this.#ledger.held, this.#ledger.heldBytes);
  }

  #refreshLevel(): void {
    this.#signals.setLevel(this.#thresholds.level(this.#ledger.held, this.#ledger.heldBytes, this.#waiting.size));
  }

  /** Room was freed: let waiting writes in, update the state, maybe resume the producer. */
  #released(): void {
    this.#spool?.refill();
    this.#admission.admitWaiting();
    this.#refreshLevel();
    this.#signals.maybeDrain();
  }

  /**
   * disk: accepted items could not be appended. A full disk is the strategy's "full": block keeps
   * them (in order, before anything later) and retries while new writes wait at the door; the
   * drop strategies drop them with reason `disk_full`. Any other I/O error fails the stream.
   */
  #appendFailed(entries: Staged<T>[], error: DiskError): void {
    const spool = this.#spool as Spool<T>;
    if (error.code !== 'ERR_DISK_FULL') {
      spool.restage(entries);
      this.#host.destroy(error);
      return;
    }
    if (this.config.strategy === BackpressureStrategy.BLOCK) {
      const wasFull = spool.full;
      spool.retryLater(entries);
      if (!wasFull) this.#host.emit('diskfull', error);
      this.#refreshLevel();
      return;
    }
    for (const entry of entries) {
      this.#ledger.evict(entry.size);
      this.#admission.drop(entry.item, 'disk_full', entry.settle);
    }
    this.#released();
    this.#checkIdle();
  }

  /** Destroys the host with an error that will carry every item still held. */
  #fail(error: BackpressureError<T>): void {
    if (this.#signals.destroyed) return;
    this.#failure = error;
    this.#host.destroy(error);
  }

  // ---- lifecycle -------------------------------------------------------------

  /** end(): flush everything without waiting; `callback` runs once nothing is held. */
  end(callback: () => void): void {
    this.#signals.setEnding();
    this.#scheduler.pump();
    this.#whenIdle((error) => {
      if (!error) callback();
    });
  }

  /** Flushes everything held now, without waiting for timers; resolves once nothing is held. */
  drain(): Promise<void> {
    if (this.#signals.destroyed) return Promise.reject(BackpressureError.destroyed([], undefined));
    this.#signals.setDrainRequested(true);
    this.#scheduler.pump();
    return new Promise((resolve, reject) => this.#whenIdle((error) => (error ? reject(error) : resolve())));
  }

  /** Halts (or resumes) flushing on the buffer's own schedule; end() and drain() still flush. */
  setPaused(paused: boolean): void {
    this.#scheduler.setPaused(paused);
  }

  /** cork(): partial batches wait until the last uncork(); full batches still go. */
  setCorked(corked: boolean): void {
    this.#scheduler.setCorked(corked);
  }

  #whenIdle(callback: (error?: Error | null) => void): void {
    // A listener may have destroyed the stream while end() or drain() announced 'draining'.
    if (this.#signals.destroyed) {
      callback(BackpressureError.destroyed([], undefined));
      return;
    }
    this.#idleCallbacks.push(callback);
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#idleCallbacks.length === 0 || this.busy || this.#signals.destroyed) return;
    this.#signals.setDrainRequested(false);
    // Leaving 'draining' emits 'state', and its listeners may write or destroy: look again. Idle callbacks that
    // ran with items held let end() emit 'finish' before they were delivered (found by spec/properties/faults).
    if (this.#signals.destroyed) return;
    if (this.busy) {
      this.#signals.setDrainRequested(true);
      this.#scheduler.pump();
      return;
    }
    const callbacks = this.#idleCallbacks;
    this.#idleCallbacks = [];
    for (const callback of callbacks) callback(null);
  }

  /**
   * Stops everything and takes every item still held: batches in a flush slot
   * (their calls are aborted, their late results ignored), the queue, and waiting
   * writes, oldest first. Counts them as dead-lettered: the caller hands them on.
   */
  #takeAll(reason: (items: T[]) => BackpressureError<T>): {
    items: T[];
    unlogged: T[];
    waiters: { settle: Settle | undefined }[];
  } {
    const abort = reason([]);
    this.#keepAlive.clearAll();
    const items: T[] = [];
    for (const batch of this.#scheduler.inSlots())
      for (const item of this.#delivery.abandon(batch, abort)) items.push(item);
    this.#scheduler.stop();
    const queued = this.#admission.takeAll();
    for (const item of queued.items) items.push(item);
    // disk: what is in the log stays there for the next run; only what is not yet in it is lost.
    const unlogged: T[] = this.#spool === undefined ? items : [];
    const waiters: { item: T; settle: Settle | undefined }[] = queued.waiters;
    // Counted before the unwritten items join them: those were accepted already, the waiting writes were not.
    const waiting = waiters.length;
    if (this.#spool !== undefined) {
      const unwritten = this.#spool.takeUnwritten();
      let bytes = 0;
      for (const entry of unwritten) {
        bytes += entry.size;
        waiters.push(entry);
      }
      this.#ledger.takeUnlogged(waiting, unwritten.length, bytes);
    } else this.#ledger.takeAll(waiting);
    for (const waiter of waiters) {
      items.push(waiter.item);
      if (unlogged !== items) unlogged.push(waiter.item);
    }
    for (const item of items) this.#lost.push(item);
    return { items, unlogged, waiters };
  }

  /**
   * The shutdown deadline: takes every item not confirmed delivered, sends it down the
   * dead-letter path (if there is one) and returns it. The host then destroys itself.
   */
  abandon(timeoutMs: number): T[] {
    const { items, unlogged, waiters } = this.#takeAll((taken) => BackpressureError.shutdownTimeout(taken, timeoutMs));
    const error = BackpressureError.shutdownTimeout(unlogged, timeoutMs);
    failWaiters(waiters, error);
    if (unlogged.length > 0 && this.#deadLetters.hasPath()) this.#deadLetters.handLate(unlogged, error);
    return items;
  }

  /** shutdown() began: items a destroy() takes from now on are resolved by it. */
  beginShutdown(): void {
    this.#shuttingDown = true;
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
    if (this.#signals.destroyed) return error;
    const { unlogged: items, waiters } = this.#takeAll((taken) => BackpressureError.destroyed(taken, error));
    this.#signals.destroyed = true;
    let settleError: Error = BackpressureError.destroyed(items, error);
    if (error != null && error === this.#failure) {
      for (const item of items) this.#failure.items.push(item);
      settleError = this.#failure;
    } else if (items.length > 0) {
      if (this.#deadLetters.hasPath()) this.#deadLetters.handLate(items, settleError as BackpressureError<T>);
      // A shutdown() in progress resolves them in `undelivered` (it rejects on destroy(err)): reported.
      else if (!(this.#shuttingDown && error == null)) warnDiscarded(items.length, this.className);
    }
    failWaiters(waiters, settleError);
    const callbacks = this.#idleCallbacks;
    this.#idleCallbacks = [];
    for (const callback of callbacks) callback(settleError);
    if (this.#admission.unheardDrops > 0) {
      warnUnheardDrops(this.#admission.unheardDrops, this.#ledger.droppedByReason);
      this.#admission.unheardDrops = 0;
    }
    return error;
  }

  /**
   * disk: waits for the log's open, appends and acknowledgements, then closes it and releases its
   * lock. Undefined without a log.
   */
  closeDisk(): Promise<void> | undefined {
    return this.#spool?.close();
  }

  /** Items in memory (with a disk log, what the spool holds; else everything held) plus waiting writes. For tests. */
  get inMemory(): number {
    return (this.#spool?.inMemory ?? this.#ledger.held) + this.#waiting.size;
  }

  /** Throws unless the accounting identity holds; for tests. */
  assertBalanced(): void {
    this.#ledger.assertBalanced(this.#waiting.size);
  }

  // ---- metrics ----------------------------------------------------------------

  getMetrics(): BackpressureMetrics {
    return this.#ledger.snapshot({
      state: this.#signals.state,
      bufferUtilization: this.utilization,
      waitingWrites: this.#waiting.size,
      lastFlushLatencyMs: this.#scheduler.lastLatencyMs,
      currentFlushIntervalMs: this.#scheduler.interval,
      currentBatchSize: this.#scheduler.batchSize,
      currentConcurrency: this.#scheduler.slots,
    });
  }
}

/** The bounds the states follow: with a disk log, the log's bytes (see DiskOptions.maxBytes). */
function boundsOf<T>(config: ResolvedConfig<T>): ConstructorParameters<typeof Thresholds>[0] {
  const disk = config.disk;
  if (disk === undefined) return config;
  const userBytes = config.maxBufferBytes === Infinity ? 0 : config.maxBufferBytes;
  return {
    maxBufferSize: Infinity,
    maxBufferBytes: Math.max(disk.maxBytes, userBytes),
    lowWatermark: config.lowWatermark,
    highWatermark: config.highWatermark,
  };
}

function failWaiters(waiters: { settle: Settle | undefined }[], error: Error): void {
  for (const { settle } of waiters) if (settle !== undefined) process.nextTick(settle, error, false);
}

/**
 * The disk log's code, loaded by the first sluice that has a `disk` option: it is a third of what
 * requiring sluice costs (its modules and `node:crypto`, about 10 of 30 ms), and most sluices hold
 * their items in memory only.
 */
function loadSpool(): typeof Spool {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, see above
  return (require('./spool') as typeof import('./spool')).Spool;
}
