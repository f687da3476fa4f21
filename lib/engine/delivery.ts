import { BackpressureError } from '../errors';
import { warnHandlerFailed } from './dead-letter';
import { SinkCalls } from './call';
import type { ResolvedConfig } from '../config';
import type { SinkHook } from './call';
import type { Batch, CallRecorder } from './call';
import type { DeadLetters } from './dead-letter';
import type { KeepAlive } from './keep-alive';
import type { Ledger } from './ledger';
import type { Outcome } from './judge';

export type { Batch } from './call';

/**
 * One batch through the sink: calls (see ./call), retries with backoff, failure
 * isolation (bisect or one by one), dead letters. Counts through the ledger;
 * knows nothing of admission, states or streams, and tells its host when room
 * was freed.
 *
 * A batch's unresolved items are `items[start..]`: every path resolves them in
 * order (delivered or dead-lettered), so what a destroy() takes is a suffix.
 */

export interface DeliveryHost {
  /** Room was freed (items delivered or dead-lettered). */
  released(): void;
  /** A dead-letter failure the stream must fail with. */
  fail(error: BackpressureError<unknown>): void;
  /** A call settled (see {@link CallRecorder}). */
  recordLatency: CallRecorder['latency'];
  /** A call was given up at its timeout. */
  recordTimeout: CallRecorder['timeout'];
  /**
   * disk: these records are done with (delivered, or taken by the dead-letter path); `ids` is the
   * host's. Resolves once that is recorded.
   */
  settled(ids: number[]): Promise<void> | undefined;
}

type Failed<T> = Outcome<T> & { kind: 'failed' };

/**
 * disk: batches per flush slot that may have left their slot while their deliveries are being
 * recorded in the log's ack file. The redelivery bound of a crash is (1 + this) × slots × batch size.
 */
export const RECORDING_PER_SLOT = 4;

export class Delivery<T> {
  readonly #config: ResolvedConfig<T>;
  readonly #calls: SinkCalls<T>;
  readonly #ledger: Ledger;
  readonly #keepAlive: KeepAlive;
  readonly #deadLetters: DeadLetters<T>;
  readonly #host: DeliveryHost;
  /** disk: batches that left their slot while their deliveries are still being recorded. */
  #recording = 0;

  constructor(
    config: ResolvedConfig<T>,
    flush: SinkHook<T>,
    ledger: Ledger,
    keepAlive: KeepAlive,
    deadLetters: DeadLetters<T>,
    host: DeliveryHost,
  ) {
    this.#config = config;
    this.#calls = new SinkCalls(config, flush, keepAlive, {
      latency: (latencyMs, items, delivered, counts) => host.recordLatency(latencyMs, items, delivered, counts),
      timeout: (items, counts) => host.recordTimeout(items, counts),
    });
    this.#ledger = ledger;
    this.#keepAlive = keepAlive;
    this.#deadLetters = deadLetters;
    this.#host = host;
  }

  /**
   * Resolves every item of the batch (delivered, retried, isolated or dead-lettered), then calls
   * `left` once the batch may leave its slot. With a disk log, a batch whose deliveries are still
   * being recorded leaves its slot only while fewer than {@link RECORDING_PER_SLOT} ×
   * `maxConcurrentFlushes` batches are in that state; otherwise it waits for its own record. So a
   * crash delivers again at most (1 + RECORDING_PER_SLOT) × `maxConcurrentFlushes` batches, and a
   * fast sink does not wait for one ack-file write per batch.
   *
   * A batch that its first call delivers (the common case) takes one `then` and no async function:
   * each of those cost a promise and microtask turns per batch, which a fast sink felt.
   */
  run(batch: Batch<T>, left: (batch: Batch<T>) => void): void {
    const count = batch.items.length - batch.start;
    this.#calls.callThen(batch, count, (outcome) => {
      if (!batch.abandoned && outcome.kind === 'delivered') {
        this.#deliver(batch, count);
        this.#leave(batch, left);
      } else void this.#resolve(batch, count, outcome).then(() => this.#leave(batch, left));
    });
  }

  #leave(batch: Batch<T>, left: (batch: Batch<T>) => void): void {
    const recording = batch.ids === undefined ? undefined : this.#leaveSlot(batch);
    if (recording === undefined) left(batch);
    else void recording.then(() => left(batch));
  }

  #leaveSlot(batch: Batch<T>): Promise<void> | undefined {
    const acking = batch.acking;
    if (acking === undefined) return undefined;
    if (this.#recording >= RECORDING_PER_SLOT * this.#config.maxConcurrentFlushes) return acking;
    this.#recording++;
    // Never rejects: a failure to record is a warning (the items are delivered again after a restart).
    void acking.then(() => this.#recording--);
    return undefined;
  }

  #settled(batch: Batch<T>, ids: number[]): void {
    const recorded = this.#host.settled(ids);
    if (recorded === undefined) return;
    const before = batch.acking;
    batch.acking = before === undefined ? recorded : Promise.all([before, recorded]).then(() => undefined);
  }

  /** What the outcome of a call of the first `count` unresolved items means for them; retries until resolved. */
  async #resolve(batch: Batch<T>, count: number, outcome: Outcome<T>): Promise<void> {
    for (;;) {
      if (batch.abandoned) return;
      if (outcome.kind === 'delivered') return this.#deliver(batch, count);
      if (outcome.kind === 'invalid') return this.#deadLetter(batch, count, outcome.error);
      const failing = outcome.failed === undefined ? count : this.#narrow(batch, count, outcome.failed);
      // The release in #narrow runs listeners: one may have destroyed the stream and taken the rest.
      if (batch.abandoned) return;
      if (batch.tries <= this.#config.retry.maxRetries) {
        this.#ledger.retries++;
        await this.#calls.backoff(batch);
        if (batch.abandoned) return;
        count = batch.items.length - batch.start;
        outcome = await this.#calls.call(batch, count);
        continue;
      }
      if (failing === 1 || this.#config.isolateFailures === 'none') {
        return this.#deadLetter(batch, failing, this.#exhausted(batch, failing, outcome));
      }
      return this.#isolate(batch, failing);
    }
  }

  /**
   * Takes the batch from delivery: aborts its call, stops its wait, and returns its
   * unresolved items (the caller accounts for them).
   */
  abandon(batch: Batch<T>, reason: BackpressureError<T>): T[] {
    batch.abandoned = true;
    batch.context?.abort(reason);
    this.#keepAlive.clearTimeout(batch.timer);
    batch.timer = undefined;
    batch.wake?.();
    return batch.items.slice(batch.start);
  }

  // ---- isolation: the first `count` unresolved items failed together, retries spent

  async #isolate(batch: Batch<T>, count: number): Promise<void> {
    if (this.#config.isolateFailures === 'sequential') {
      for (let i = 0; i < count && !batch.abandoned; i++) await this.#probe(batch, 1);
      return;
    }
    // Bisect: halves, left first, so items still resolve in order; k bad items cost O(k log n) calls.
    const left = Math.ceil(count / 2);
    await this.#probe(batch, left);
    if (!batch.abandoned) await this.#probe(batch, count - left);
  }

  /** One call with the first `count` unresolved items; what fails is isolated further or dead-lettered. */
  async #probe(batch: Batch<T>, count: number): Promise<void> {
    const outcome = await this.#calls.call(batch, count);
    if (batch.abandoned) return;
    if (outcome.kind === 'delivered') return this.#deliver(batch, count);
    if (outcome.kind === 'invalid') return this.#deadLetter(batch, count, outcome.error);
    const failing = outcome.failed === undefined ? count : this.#narrow(batch, count, outcome.failed);
    if (batch.abandoned) return;
    // A sequential probe holds one item, so only a bisecting one can leave several failing.
    if (failing === 1) return this.#deadLetter(batch, 1, this.#exhausted(batch, 1, outcome));
    return this.#isolate(batch, failing);
  }

  // ---- resolving items (always the first unresolved ones)

  #deliver(batch: Batch<T>, count: number): void {
    const bytes = this.#bytes(batch, count);
    if (batch.ids !== undefined) this.#settled(batch, batch.ids.slice(batch.start, batch.start + count));
    batch.start += count;
    this.#ledger.deliver(count, bytes);
    this.#host.released();
  }

  /**
   * Of the first `count` unresolved items, only those at `failed` (ascending indices
   * into them) failed: the rest were delivered. Keeps the failed ones first.
   */
  #narrow(batch: Batch<T>, count: number, failed: number[]): number {
    const { items, sizes, ids, start } = batch;
    const keptItems: T[] = [];
    const keptSizes: number[] | undefined = sizes === undefined ? undefined : [];
    const keptIds: number[] | undefined = ids === undefined ? undefined : [];
    const deliveredIds: number[] = [];
    let deliveredBytes = 0;
    let next = 0;
    for (let i = 0; i < count; i++) {
      if (failed[next] === i) {
        next++;
        keptItems.push(items[start + i] as T);
        keptSizes?.push((sizes as number[])[start + i] as number);
        keptIds?.push((ids as number[])[start + i] as number);
      } else {
        if (sizes !== undefined) deliveredBytes += sizes[start + i] as number;
        if (ids !== undefined) deliveredIds.push(ids[start + i] as number);
      }
    }
    batch.items = keptItems.concat(items.slice(start + count));
    batch.sizes = keptSizes?.concat((sizes as number[]).slice(start + count));
    batch.ids = keptIds?.concat((ids as number[]).slice(start + count));
    batch.start = 0;
    if (deliveredIds.length > 0) this.#settled(batch, deliveredIds);
    this.#ledger.deliver(count - failed.length, deliveredBytes);
    this.#host.released();
    return failed.length;
  }

  /**
   * Hands the first `count` unresolved items to the dead-letter path, awaiting the
   * handler (so 'finish' waits for it too). They leave the batch at once, so a
   * destroy() during the handler cannot hand them on twice; they stay held until
   * the handler is done.
   */
  async #deadLetter(batch: Batch<T>, count: number, error: BackpressureError<T>): Promise<void> {
    const bytes = this.#bytes(batch, count);
    const ids = batch.ids?.slice(batch.start, batch.start + count);
    batch.start += count;
    // Without a dead-letter path the stream fails at once, so that a destroy() it causes finds the
    // rest of what is held and adds it to this same error.
    const failure = this.#deadLetters.hasPath() ? await this.#deadLetters.hand(error.items, error) : error;
    // disk: a handler that took them is their owner now; without one (or if it failed) they stay in the log.
    if (ids !== undefined && failure === undefined) this.#settled(batch, ids);
    if (batch.abandoned) {
      // destroy() already counted these as dead-lettered; a failing handler can only be reported.
      if (failure !== undefined && failure !== error) warnHandlerFailed(failure);
      return;
    }
    this.#ledger.deadLetter(count, bytes);
    if (failure !== undefined) this.#host.fail(failure);
    else this.#host.released();
  }

  #exhausted(batch: Batch<T>, count: number, outcome: Failed<T>): BackpressureError<T> {
    const items = batch.items.slice(batch.start, batch.start + count);
    return outcome.timedOut
      ? BackpressureError.flushTimeout(items, 'retries_exhausted', this.#config.flushTimeoutMs)
      : BackpressureError.flushFailed(items, 'retries_exhausted', outcome.cause);
  }

  #bytes(batch: Batch<T>, count: number): number {
    const sizes = batch.sizes;
    if (sizes === undefined) return 0;
    let bytes = 0;
    for (let i = batch.start; i < batch.start + count; i++) bytes += sizes[i] as number;
    return bytes;
  }
}
