import type { BackpressureMetrics, DropReason } from '../types';

/**
 * Every counter of a sluice, and the transitions that move items between them.
 * Owns the accounting identity
 *   offered = delivered + deadLettered + dropped + held + waiting
 * (waiting writes are offered, not yet accepted). Nothing outside changes a
 * counter except through these methods; `assertBalanced()` checks the identity.
 */
export class Ledger {
  offered = 0;
  accepted = 0;
  dropped = 0;
  readonly droppedByReason: Record<DropReason, number> = {
    evicted: 0,
    rejected: 0,
    sampled: 0,
    timeout: 0,
    overflow: 0,
    oversize: 0,
    disk_full: 0,
  };
  /** A frozen copy of droppedByReason for metrics, rebuilt only after a drop. */
  #droppedView: Readonly<Record<DropReason, number>> | undefined;
  delivered = 0;
  deadLettered = 0;
  retries = 0;
  batches = 0;
  itemsCut = 0;
  /** Accepted and not yet delivered or dead-lettered: queued + in a batch + with a dead-letter handler. */
  held = 0;
  /** Bytes of the held items, as sized once at admission (0 without a byte bound). */
  heldBytes = 0;
  /** Held items cut into a batch (in a call, awaiting a retry, or with a dead-letter handler). */
  inFlight = 0;
  /** disk: undelivered records found in the log at open; they count as offered and accepted. */
  replayed = 0;
  /** disk: corrupt stretches found in the log at open. */
  corruptRecords = 0;

  /** disk: the log held `count` undelivered records (`bytes` in all) when it was opened. */
  replay(count: number, bytes: number, corrupt: number): void {
    this.offered += count;
    this.accepted += count;
    this.held += count;
    this.heldBytes += bytes;
    this.replayed += count;
    this.corruptRecords += corrupt;
  }

  accept(bytes: number): void {
    this.accepted++;
    this.held++;
    this.heldBytes += bytes;
  }

  drop(reason: DropReason): void {
    this.dropped++;
    this.droppedByReason[reason]++;
    this.#droppedView = undefined;
  }

  /** An incoming item that was the oldest queued one at once (all else in flight): accepted, then evicted. */
  acceptEvicted(): void {
    this.accepted++;
    this.drop('evicted');
  }

  /** A queued item leaves the buffer to be dropped (drop() counts the drop). */
  evict(bytes: number): void {
    this.held--;
    this.heldBytes -= bytes;
  }

  cut(count: number): void {
    this.inFlight += count;
    this.batches++;
    this.itemsCut += count;
  }

  deliver(count: number, bytes: number): void {
    this.delivered += count;
    this.#release(count, bytes);
  }

  deadLetter(count: number, bytes: number): void {
    this.deadLettered += count;
    this.#release(count, bytes);
  }

  #release(count: number, bytes: number): void {
    this.held -= count;
    this.heldBytes -= bytes;
    this.inFlight -= count;
  }

  /**
   * destroy() or a shutdown deadline took everything: `held` items and `waiting`
   * writes (which count as accepted, then dead-lettered).
   */
  takeAll(waiting: number): void {
    this.accepted += waiting;
    this.deadLettered += this.held + waiting;
    this.held = 0;
    this.heldBytes = 0;
    this.inFlight = 0;
  }

  /**
   * disk: destroy() or a shutdown deadline took what is not in the log: `waiting` writes (accepted,
   * then dead-lettered) and `unwritten` accepted items whose append had not resolved. Everything
   * in the log stays held: the next run delivers it.
   */
  takeUnlogged(waiting: number, unwritten: number, unwrittenBytes: number): void {
    this.accepted += waiting;
    this.deadLettered += waiting + unwritten;
    this.held -= unwritten;
    this.heldBytes -= unwrittenBytes;
    this.inFlight = 0;
  }

  droppedView(): Readonly<Record<DropReason, number>> {
    return (this.#droppedView ??= Object.freeze({ ...this.droppedByReason }));
  }

  /** The metrics snapshot: the counters, plus what the other parts know. Walks nothing. */
  snapshot(
    rest: Pick<
      BackpressureMetrics,
      | 'state'
      | 'bufferUtilization'
      | 'waitingWrites'
      | 'lastFlushLatencyMs'
      | 'currentFlushIntervalMs'
      | 'currentBatchSize'
      | 'currentConcurrency'
    >,
  ): BackpressureMetrics {
    return {
      state: rest.state,
      bufferSize: this.held,
      bufferUtilization: rest.bufferUtilization,
      bufferBytes: this.heldBytes,
      eventsOffered: this.offered,
      eventsAccepted: this.accepted,
      eventsDropped: this.dropped,
      droppedByReason: this.droppedView(),
      eventsFlushed: this.delivered,
      deadLettered: this.deadLettered,
      inFlight: this.inFlight,
      waitingWrites: rest.waitingWrites,
      retries: this.retries,
      batches: this.batches,
      averageBatchSize: this.batches === 0 ? 0 : this.itemsCut / this.batches,
      lastFlushLatencyMs: rest.lastFlushLatencyMs,
      currentFlushIntervalMs: rest.currentFlushIntervalMs,
      currentBatchSize: rest.currentBatchSize,
      currentConcurrency: rest.currentConcurrency,
      replayed: this.replayed,
      corruptRecords: this.corruptRecords,
    };
  }

  /** Throws if the identity does not hold; for tests and assertions. */
  assertBalanced(waiting: number): void {
    const accounted = this.delivered + this.deadLettered + this.dropped + this.held + waiting;
    if (accounted !== this.offered || this.held < 0 || this.heldBytes < 0 || this.inFlight < 0) {
      throw new Error(
        `sluice ledger out of balance: offered ${this.offered}, delivered ${this.delivered}, dead-lettered ${this.deadLettered}, dropped ${this.dropped}, held ${this.held}, waiting ${waiting}, bytes ${this.heldBytes}, in flight ${this.inFlight}`,
      );
    }
  }
}
