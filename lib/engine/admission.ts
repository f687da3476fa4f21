import { Queue } from './queue';
import { belowCritical, criticalCount } from './thresholds';
import { WaitQueue } from './waiting';
import type { Spool } from './spool';
import type { ResolvedConfig } from '../config';
import { BackpressureStrategy } from '../types';
import type { BackpressureState, DropReason, WriteCallback } from '../types';
import type { EventHost } from './dead-letter';
import type { KeepAlive } from './keep-alive';
import type { Ledger } from './ledger';
import type { Signals } from './signals';
import type { Thresholds } from './thresholds';

/**
 * Admission: what happens to an offered item before any flush. Owns the queue of
 * accepted items and block's wait queue (with its timer), sizes each item once,
 * and gives the strategies their primitives (the {@link Gate}). Counts through the
 * ledger; announces nothing itself but drops; tells its host when an item entered
 * the queue or when a destroy() raced the admission.
 *
 * Re-entrant: every offer carries its own size, and every primitive reads the
 * current counts, so a listener that writes, ends or destroys during a 'drop' or
 * 'state' event cannot skew the bound. The 'drop' events an offer causes (its
 * evictions) are emitted once the offer is admitted, so a listener's writes
 * reach the queue after the item that caused them, in write order.
 */

/** Called once per write: `accepted` is false when the item was dropped. */
export type Settle = WriteCallback;

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
  /**
   * Whether admit(), for an item that fits while no write waits, does nothing but accept it (and
   * then returns true, or for block {@link belowCritical}). Admission skips admit() then: see offer().
   */
  readonly acceptsWhatFits: boolean;
  admit(gate: Gate<T>, item: T, size: number, settle: Settle | undefined): boolean;
}

/** Who cuts batches from the queue: asked after every accept whether a flush could start now. */
export interface Pump {
  mayStart(): boolean;
  pump(): void;
  /** Changes whenever what queueable() says may change. */
  readonly turns: number;
  /** Items that may still be queued without asking mayStart(), within this turn. */
  queueable(): number;
}

export interface AdmissionHost<T> extends EventHost {
  /** The level may have changed (a waiting write arrived or left). */
  refreshLevel(): void;
  /** Waiting writes timed out: room for 'drain' or an idle end(). */
  waitsExpired(): void;
  /** A write reached an accept or a wait after a listener destroyed the stream. */
  takeLate(item: T, size: number, settle: Settle | undefined): void;
}

const now = (): number => performance.now();

export class Admission<T> implements Gate<T> {
  readonly config: ResolvedConfig<T>;
  /** Accepted items not yet cut into a batch, oldest first. */
  readonly queue: Queue<T>;
  /** block: writes waiting at `blocked`; at most the critical count of them. */
  readonly waitQueue: WaitQueue<T>;
  readonly #policy: AdmissionPolicy<T>;
  readonly #ledger: Ledger;
  readonly #thresholds: Thresholds;
  readonly #signals: Signals;
  readonly #keepAlive: KeepAlive;
  readonly #host: AdmissionHost<T>;
  readonly #sized: boolean;
  /** The strategy is block (it waits where the others drop). */
  readonly #blocks: boolean;
  /** No disk log, no byte bound, and a policy that accepts what fits: offer()'s fast lane is open. */
  readonly #plain: boolean;
  /** The bounds, read on every offer. */
  readonly #maxItems: number;
  readonly #maxBytes: number;
  /** Armed for the earliest finite deadline among waiting writes, undefined otherwise. */
  #waitTimer: NodeJS.Timeout | undefined;
  /** Drops with no 'drop' listener; reported once, on destroy. */
  unheardDrops = 0;
  /** Set once by the engine, after the scheduler (which reads this queue) exists. */
  pump: Pump | undefined;
  /** With a disk log: where accepted items go (set once by the engine). */
  spool: Spool<T> | undefined;
  /** disk: the record bytes of the item being admitted (saved and restored around nested offers). */
  #payload: Uint8Array | undefined;
  /** An offer is being admitted: its 'drop' events wait until it is (item, reason pairs). */
  #admitting = false;
  #deferredDrops: unknown[] = [];
  /**
   * The fast lane: an offer made while `held` is in [#laneFrom, #laneTo) and the pump's turn is
   * still #laneTurn is only accepted (see #openLane). Closed while #laneTo <= held.
   */
  #laneFrom = 0;
  #laneTo = 0;
  #laneTurn = -1;

  constructor(
    config: ResolvedConfig<T>,
    policy: AdmissionPolicy<T>,
    parts: { ledger: Ledger; thresholds: Thresholds; signals: Signals; keepAlive: KeepAlive },
    host: AdmissionHost<T>,
  ) {
    this.config = config;
    this.#policy = policy;
    this.#ledger = parts.ledger;
    this.#thresholds = parts.thresholds;
    this.#signals = parts.signals;
    this.#keepAlive = parts.keepAlive;
    this.#host = host;
    this.#sized = parts.thresholds.bytesBounded;
    this.#blocks = policy.strategy === BackpressureStrategy.BLOCK;
    this.#maxItems = parts.thresholds.maxItems;
    this.#maxBytes = parts.thresholds.maxBytes;
    this.#plain = policy.acceptsWhatFits && config.disk === undefined && !this.#sized;
    // With a disk log the queue holds what memory keeps of the log (up to maxBufferSize: see spool.ts).
    this.queue = new Queue(config.maxBufferSize, config.batchSize, this.#sized, config.disk !== undefined);
    this.waitQueue = new WaitQueue(criticalCount(config));
  }

  /** Offers one item; returns what `write()` returns. */
  offer(item: T, settle: Settle | undefined): boolean {
    const ledger = this.#ledger;
    const held = ledger.held;
    if (held < this.#laneTo && held >= this.#laneFrom && (this.pump as Pump).turns === this.#laneTurn) {
      ledger.offered++;
      this.#enqueue(item, 0);
      if (settle !== undefined) process.nextTick(settle, null, true);
      return true;
    }
    this.#laneTo = 0; // closed to the offers this one's listeners make
    const ok = this.#decide(item, settle);
    if (!this.#admitting) this.#openLane();
    return ok;
  }

  /**
   * Opens the fast lane for the offers that would only be accepted, with nothing else to do: with
   * no disk log, no byte bound and a policy that accepts what fits (so the item fits and is
   * accepted), while no write waits and the stream is not destroyed, up to the next threshold (so
   * the level and what write() returns stay as they are) and up to the item that could start a
   * flush. It holds while `held` stays at or above where it opened (a delivery or eviction may have
   * lowered the level) and the pump's turn is the same (no batch started or ended, no timer fired).
   * Most writes take it: per item it costs a count, a queue slot and three comparisons.
   */
  #openLane(): void {
    const signals = this.#signals;
    if (!this.#plain || this.waitQueue.size > 0 || signals.destroyed) return;
    if (this.#blocks && !belowCritical(signals.level)) return;
    const pump = this.pump as Pump;
    const held = this.#ledger.held;
    this.#laneFrom = held;
    this.#laneTo = held + Math.min(this.#thresholds.steadyRoom(held), pump.queueable());
    this.#laneTurn = pump.turns;
  }

  /** An offer off the fast lane: sized, encoded for the disk log, and admitted by the policy. */
  #decide(item: T, settle: Settle | undefined): boolean {
    // Most writes the fast lane does not take are accepted all the same: an item that fits, with
    // nothing waiting and no offer under way (whose 'drop' events would have to wait for this one).
    const ledger = this.#ledger;
    if (
      this.#plain &&
      ledger.held < this.#maxItems &&
      this.waitQueue.size === 0 &&
      !this.#admitting &&
      !this.#signals.destroyed
    ) {
      ledger.offered++;
      this.accept(item, 0, settle);
      if (!this.#blocks) return true;
      if (belowCritical(this.#signals.level)) return true;
      if (!this.#signals.destroyed) this.#signals.refused();
      return false;
    }
    // disk: an item that cannot be encoded is refused here, before it counts (write() throws).
    const payload = this.spool?.encode(item);
    this.#ledger.offered++;
    let size = 0;
    if (this.#sized) {
      size = payload === undefined ? this.config.sizeOf(item) : (this.spool as Spool<T>).sizeOf(payload);
      if (!(size <= this.#maxBytes)) {
        this.drop(item, 'oversize', settle);
        return true;
      }
    }
    // disk: the drop strategies never wait, so a producer that outruns the disk loses the incoming item.
    if (payload !== undefined && !this.#blocks && (this.spool as Spool<T>).congested) {
      if (this.#policy.strategy === BackpressureStrategy.DROP_OLDEST) this.evictIncoming(item, settle);
      else this.drop(item, 'rejected', settle);
      return true;
    }
    const outerPayload = this.#payload;
    this.#payload = payload;
    let ok: boolean;
    if (this.#admitting) ok = this.#policy.admit(this, item, size, settle);
    else {
      // A 'drop' listener that writes must see this item queued first: its writes come after it.
      this.#admitting = true;
      try {
        ok = this.#policy.admit(this, item, size, settle);
      } finally {
        this.#admitting = false;
      }
      if (this.#deferredDrops.length > 0) this.#emitDeferredDrops();
    }
    this.#payload = outerPayload;
    // disk: block tells an outrunning producer to wait for the disk too.
    if (ok && payload !== undefined && this.#blocks && (this.spool as Spool<T>).pressing) ok = false;
    if (!ok && !this.#signals.destroyed) this.#signals.refused();
    return ok;
  }

  get level(): BackpressureState {
    return this.#signals.level;
  }

  get waiting(): number {
    return this.waitQueue.size;
  }

  fits(size: number): boolean {
    const ledger = this.#ledger;
    const spool = this.spool;
    return (
      ledger.held < this.#maxItems &&
      ledger.heldBytes + size <= this.#maxBytes &&
      // disk: a full disk, or (block) as many items waiting to be written as memory may hold.
      (spool === undefined || !(spool.full || (spool.congested && this.#blocks)))
    );
  }

  accept(item: T, size: number, settle: Settle | undefined): void {
    if (this.#signals.destroyed) return this.#host.takeLate(item, size, settle);
    if (this.spool !== undefined) this.#spool(item, size, this.#payload as Uint8Array, settle);
    else {
      this.#enqueue(item, size);
      if (settle !== undefined) process.nextTick(settle, null, true);
    }
    // The hot path: one more item changes the level only at a threshold; a flush starts only if it can.
    if (this.#thresholds.isEdge(this.#ledger.held)) this.#host.refreshLevel();
    const pump = this.pump as Pump;
    if (pump.mayStart()) pump.pump();
  }

  #enqueue(item: T, size: number): void {
    this.queue.push(item, size, now);
    this.#ledger.accept(size);
  }

  /** disk: counted as held now; queued (or left on disk) and called back once appended. */
  #spool(item: T, size: number, payload: Uint8Array, settle: Settle | undefined): void {
    this.#ledger.accept(size);
    (this.spool as Spool<T>).accept(item, size, payload, settle);
  }

  drop(item: T, reason: DropReason, settle: Settle | undefined): void {
    this.#ledger.drop(reason);
    if (settle !== undefined) process.nextTick(settle, null, false);
    this.#announceDrop(item, reason);
  }

  evictOldest(): boolean {
    if (this.queue.size === 0) return false;
    const item = this.queue.shift() as T;
    this.#ledger.evict(this.queue.lastSize);
    void this.spool?.settled([this.queue.lastId]);
    this.drop(item, 'evicted', undefined);
    return true;
  }

  evictIncoming(item: T, settle: Settle | undefined): void {
    this.#ledger.acceptEvicted();
    if (settle !== undefined) process.nextTick(settle, null, false);
    this.#announceDrop(item, 'evicted');
  }

  #announceDrop(item: T, reason: DropReason): void {
    if (this.#host.listenerCount('drop') === 0) this.unheardDrops++;
    else if (this.#admitting) this.#deferredDrops.push(item, reason);
    else this.#host.emit('drop', item, reason);
  }

  #emitDeferredDrops(): void {
    const drops = this.#deferredDrops;
    this.#deferredDrops = [];
    for (let i = 0; i < drops.length; i += 2) this.#host.emit('drop', drops[i], drops[i + 1]);
  }

  wait(item: T, size: number, settle: Settle | undefined): boolean {
    if (this.#signals.destroyed) {
      this.#host.takeLate(item, size, settle);
      return false;
    }
    if (this.waitQueue.isFull()) {
      this.drop(item, 'overflow', settle);
      return false;
    }
    // maxBlockTimeMs is for producers that write on after a `false`. A write that finds the sluice
    // blocked when the producer had not been told to wait (it can happen with a byte bound, or with
    // highWatermark 1) is honouring backpressure: it waits as long as the sink needs, so that such a
    // producer never loses an item. It does not shield the writes behind it (each keeps its deadline).
    const deadline = this.#signals.needDrain ? now() + this.config.maxBlockTimeMs : Infinity;
    this.waitQueue.push({ item, settle, size, deadline, expired: false, payload: this.#payload });
    this.#host.refreshLevel();
    this.#armWaitTimer();
    return false;
  }

  /** Room was freed: moves waiting writes into the queue while they fit, oldest first. */
  admitWaiting(): void {
    const waiting = this.waitQueue;
    for (let head = waiting.peek(); head !== undefined && this.fits(head.size); head = waiting.peek()) {
      waiting.shift();
      if (this.spool !== undefined) this.#spool(head.item, head.size, head.payload as Uint8Array, head.settle);
      else {
        this.#enqueue(head.item, head.size);
        if (head.settle !== undefined) process.nextTick(head.settle, null, true);
      }
    }
    this.#armWaitTimer();
  }

  #armWaitTimer(): void {
    const deadline = this.waitQueue.nextDeadline();
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
    for (const { item, settle } of this.waitQueue.expire(now())) this.drop(item, 'timeout', settle);
    if (this.#signals.destroyed) return;
    this.#host.waitsExpired();
    this.#armWaitTimer();
  };

  /** destroy() and the shutdown deadline: the queue and the waiting writes, oldest first (timers are the caller's). */
  takeAll(): { items: T[]; waiters: { item: T; settle: Settle | undefined }[] } {
    this.#waitTimer = undefined;
    const items = this.queue.clear();
    const waiters = this.waitQueue.clear();
    return { items, waiters };
  }
}
