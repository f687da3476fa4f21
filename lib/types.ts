import type { BackpressureError } from './errors';

/**
 * How full a sluice is. The first four follow utilization; `draining` is shown
 * from `end()`/`drain()` until everything held has been delivered.
 *
 * ```
 * normal (< lowWatermark) → elevated → critical (≥ highWatermark) → blocked (full)
 * ```
 *
 * @example
 * ```ts
 * sink.on('state', (next: BackpressureState, previous: BackpressureState) => {
 *   if (next === BackpressureState.CRITICAL) log.warn(`sink falling behind (was ${previous})`);
 * });
 * ```
 */
export enum BackpressureState {
  /** Utilization below `lowWatermark`. */
  NORMAL = 'normal',
  /** From `lowWatermark`; sample starts sampling. */
  ELEVATED = 'elevated',
  /** From `highWatermark`; block's `write()` returns `false`. */
  CRITICAL = 'critical',
  /** Full: block holds writes, the drop strategies drop. */
  BLOCKED = 'blocked',
  /** `end()` or `drain()` is flushing everything held. */
  DRAINING = 'draining',
}

/**
 * What a sluice does with an item that arrives when it is full.
 *
 * @example
 * ```ts
 * const sink = createBackpressureStream(send, { strategy: BackpressureStrategy.DROP_NEWEST });
 * ```
 */
export enum BackpressureStrategy {
  /** Pause the producer: `write()` returns `false` from `critical` on; nothing is dropped from an honouring producer. */
  BLOCK = 'block',
  /** Never pause: evict the oldest queued item to make room (keeps the newest data). */
  DROP_OLDEST = 'drop_oldest',
  /** Never pause: refuse the incoming item (keeps the oldest data). */
  DROP_NEWEST = 'drop_newest',
  /** Never pause: outside `normal`, keep one of every `sampleRate` items offered. */
  SAMPLE = 'sample',
}

/**
 * Why an item was dropped, as given to the `'drop'` event and counted in
 * `getMetrics().droppedByReason`.
 *
 * - `evicted`: drop_oldest made room for a newer item.
 * - `rejected`: drop_newest (or sample) refused an item because the buffer was full.
 * - `sampled`: sample discarded the item outside `normal`.
 * - `timeout`: block held the write longer than `maxBlockTimeMs`.
 * - `overflow`: block's write queue was full because the producer ignored `write() === false`.
 * - `oversize`: the item alone is larger than `maxBufferBytes`; it could never fit.
 * - `disk_full`: with the `disk` option, a drop strategy could not append the item to its log
 *   (`ENOSPC`, `EDQUOT`); its write callback reports it not accepted.
 *
 * @example
 * ```ts
 * sink.on('drop', (item: Reading, reason: DropReason) => droppedCounter.inc({ reason }));
 * ```
 */
export type DropReason = 'evicted' | 'rejected' | 'sampled' | 'timeout' | 'overflow' | 'oversize' | 'disk_full';

/**
 * Why items were handed to the dead-letter path.
 *
 * - `retries_exhausted`: the sink kept failing (or timing out) after every retry.
 * - `invalid_result`: the flush function resolved a `FlushResult` that does not add up to its batch.
 * - `destroyed`: the stream was destroyed (or its `signal` aborted) while items were held.
 * - `shutdown_timeout`: `shutdown({ timeoutMs })` reached its deadline first.
 *
 * @example
 * ```ts
 * sink.on('deadletter', (rows: Row[], error: BackpressureError<Row>) => {
 *   if (error.reason === 'retries_exhausted') quarantine(rows);
 * });
 * ```
 */
export type DeadLetterReason = 'retries_exhausted' | 'invalid_result' | 'destroyed' | 'shutdown_timeout';

/**
 * What a flush function may report. Resolving nothing means the whole batch
 * was delivered.
 *
 * `success + failed` must equal the batch length. With `failedItems`, only those
 * items are retried; with `failed > 0` and no `failedItems`, the whole batch is
 * retried (the sink could not say which failed, so delivery is at-least-once).
 *
 * @example
 * ```ts
 * const flush: FlushFunction<Row> = async (rows) => {
 *   const rejected = await db.insertReturningRejected(rows);
 *   return { success: rows.length - rejected.length, failed: rejected.length, errors: [], failedItems: rejected };
 * };
 * ```
 */
export interface FlushResult<T = unknown> {
  /** Items delivered. */
  success: number;
  /** Items not delivered. */
  failed: number;
  /** Whatever errors the sink met; any number, for diagnostics. */
  errors: Error[];
  /** The items that failed (a subset of the batch, `failed` of them); only these are retried. */
  failedItems?: T[];
}

/**
 * What a flush function is told about its call, besides the items.
 *
 * @example
 * ```ts
 * const flush: FlushFunction<Row> = async (rows, { signal, attempt }) => {
 *   if (attempt > 1) log.warn(`retrying ${rows.length} rows, attempt ${attempt}`);
 *   await fetch(url, { method: 'POST', body: JSON.stringify(rows), signal });
 * };
 * ```
 */
export interface FlushContext {
  /**
   * Aborted when this call is given up: at `flushTimeoutMs` (reason: an `ERR_FLUSH_TIMEOUT`
   * error), on `destroy()` (`ERR_STREAM_DESTROYED`) and at the `shutdown()` deadline
   * (`ERR_SHUTDOWN_TIMEOUT`). Pass it to the I/O so that an abandoned call stops.
   */
  readonly signal: AbortSignal;
  /** 1 for the batch's first call, 2 for its first retry, and so on (isolation calls go on counting). */
  readonly attempt: number;
  /**
   * With the `disk` option: each item's durable id, in step with the items (`ids[i]` is `items[i]`'s).
   * An id is given once, when the item is appended to the log, and stays the same when the item is
   * replayed after a restart, so a sink can make delivery idempotent (e.g. a unique key). Without
   * `disk`, `undefined`.
   */
  readonly ids?: readonly number[];
}

/**
 * Delivers one batch. May resolve a {@link FlushResult}, resolve anything else (all delivered)
 * or throw (the batch is retried). Only an object with numeric `success` and `failed` is read as a
 * `FlushResult`, so a driver's own return value (`pool.query()`'s result, better-sqlite3's
 * `RunResult`, `true`) means "delivered". The array is a fresh one per call: the sink may keep it or
 * empty it (`items.shift()`, `items.splice()`); a retry gets the batch's items again in a new array.
 *
 * @example
 * ```ts
 * const flush: FlushFunction<Row> = async (rows, { signal }) => {
 *   await db.insertMany('events', rows, { signal });
 * };
 * ```
 */
export type FlushFunction<T> = (items: T[], context: FlushContext) => unknown;

/**
 * Receives items that could not be delivered, with a `BackpressureError` naming the cause.
 * A returned promise is awaited before `'finish'`.
 *
 * @example
 * ```ts
 * const onDeadLetter: DeadLetterHandler<Row> = async (rows, error) => {
 *   await appendFile('rejects.ndjson', rows.map((row) => JSON.stringify({ row, code: error.code })).join('\n') + '\n');
 * };
 * ```
 */
export type DeadLetterHandler<T> = (items: T[], error: BackpressureError<T>) => void | Promise<void>;

/**
 * Retry policy for failed flushes: exponential backoff with full jitter.
 *
 * @example
 * ```ts
 * new BlockingWritable(flush, { retry: { maxRetries: 5, initialDelayMs: 200, maxDelayMs: 10_000 } });
 * ```
 */
export interface RetryOptions {
  /**
   * Attempts after the first one.
   * @default 3
   */
  maxRetries: number;
  /**
   * Upper bound of the first backoff; the bound doubles on every retry.
   * @default 100
   */
  initialDelayMs: number;
  /**
   * Cap on the backoff bound.
   * @default 5000
   */
  maxDelayMs: number;
}

/**
 * Bounds of an adaptive batch size: integers, 1 <= min <= max <= maxBufferSize. The size also stays at or below
 * the critical count (`highWatermark` × `maxBufferSize`) divided by `maxConcurrentFlushes + 1`, so that a batch
 * can fill while the others are in flight (with `maxBufferBytes`, likewise in bytes, by the items' size seen so
 * far); a `min` above that makes the size a fixed `min`. Two calls in a row that fail or time out carrying their
 * whole batch cap the size below theirs (the rule is in docs/design.md, "Adaptive batching").
 *
 * @example
 * ```ts
 * new BlockingWritable(insertRows, { batchSize: { min: 100, max: 10_000 }, targetLatencyMs: 500 });
 * ```
 */
export interface BatchSizeRange {
  min: number;
  max: number;
}

/**
 * Bounds of adaptive concurrency: integers, 1 <= min <= max <= maxBufferSize. The number of flushes running at
 * once starts at `min` and follows the sink: it grows while every slot is busy and the sink's calls take no
 * longer than they do alone, and shrinks when calls start to wait inside the sink, take longer than
 * `targetLatencyMs`, fail or time out carrying their whole batch, or fail more than a quarter of their items in
 * a `FlushResult` (fewer are the data's fault; the rule is in docs/design.md, "Adaptive concurrency").
 *
 * @example
 * ```ts
 * new BlockingWritable(postBulk, { batchSize: 500, maxConcurrentFlushes: { min: 1, max: 32 } });
 * ```
 */
export interface ConcurrencyRange {
  min: number;
  max: number;
}

/**
 * Options of every sluice. All are optional when passed to a constructor;
 * unknown names and bad values throw at once.
 *
 * @example
 * ```ts
 * const sink = new BlockingWritable(insertRows, { maxBufferSize: 5000, batchSize: 500 });
 * ```
 */
export interface BackpressureConfig<T = unknown> {
  /**
   * Items held at most: queued, in flight and awaiting a retry.
   * @default 10000
   */
  maxBufferSize: number;
  /**
   * Utilization from which the state is `critical` (and block's `write()` returns `false`). In (0, 1].
   * @default 0.8
   */
  highWatermark: number;
  /**
   * Utilization from which the state is `elevated`; block's `'drain'` fires when utilization falls below it. In (0, highWatermark).
   * @default 0.5
   */
  lowWatermark: number;
  /**
   * What to do when full: the enum or its string value. Fixed by the class for the strategy subclasses.
   * @default 'drop_oldest'
   */
  strategy: BackpressureStrategy | `${BackpressureStrategy}`;
  /**
   * sample: outside `normal`, keep one of every `sampleRate` items offered.
   * @default 10
   */
  sampleRate: number;
  /**
   * block: how long a write may wait at `blocked` before it is dropped with reason `timeout`. `Infinity` waits forever.
   * @default 5000
   */
  maxBlockTimeMs: number;
  /**
   * Items per flush; a full batch flushes at once. A number fixes it; `{ min, max }` turns on adaptive
   * batching: the size starts at `min` and follows the sink's measured throughput (items per second of
   * sink time) between the bounds, with `targetLatencyMs` as a ceiling (see docs/design.md).
   * @default 100
   */
  batchSize: number | BatchSizeRange;
  /**
   * Lower bound of the adaptive flush interval.
   * @default 100
   */
  minFlushIntervalMs: number;
  /**
   * Upper bound of the adaptive flush interval.
   * @default 30000
   */
  maxFlushIntervalMs: number;
  /**
   * Flush latency the interval adapts to.
   * @default 500
   */
  targetLatencyMs: number;
  /**
   * Bytes held at most, as measured by `sizeOf`. `Infinity` turns the byte bound off.
   * @default Infinity
   */
  maxBufferBytes: number;
  /**
   * Size of one item in bytes, for `maxBufferBytes`. Must return the same size for the same item.
   * @default byteLength of a Buffer/TypedArray/string, else of its JSON text
   */
  sizeOf: (item: T) => number;
  /**
   * Flushes running at once: a number, or `{ min, max }` for adaptive concurrency (see {@link ConcurrencyRange}).
   * Each batch keeps its items in order and its slot through its retries; with more than one slot, batches may
   * complete out of order.
   * @default 1
   */
  maxConcurrentFlushes: number | ConcurrencyRange;
  /**
   * A flush not settled after this long counts as failed and is retried (the late call may still
   * complete, so delivery becomes at-least-once). `Infinity` waits forever.
   * @default Infinity
   */
  flushTimeoutMs: number;
  /**
   * Retry policy for failed flushes.
   * @default { maxRetries: 3, initialDelayMs: 100, maxDelayMs: 5000 }
   */
  retry: RetryOptions;
  /**
   * After a batch exhausts its retries, flush its items one at a time so that one bad item does not
   * take the rest of its batch with it.
   * @default false
   */
  fallbackToSequential: boolean;
  /**
   * After a batch exhausts its retries, find the items that fail it: `'bisect'` splits the batch in
   * halves recursively (k bad items among n cost about k·log2(n) calls), `'sequential'` tries each
   * item alone (n calls). Items that still fail go to the dead-letter path; the rest are delivered.
   * `fallbackToSequential: true` is `'sequential'`.
   * @default undefined (no isolation: the whole batch is dead-lettered)
   */
  isolateFailures: 'bisect' | 'sequential' | undefined;
  /**
   * Receives items that could not be delivered. Without it (and without a `'deadletter'` listener),
   * the stream errors with a `BackpressureError` carrying the items.
   * @default undefined
   */
  onDeadLetter: DeadLetterHandler<T> | undefined;
  /**
   * Aborting it destroys the stream: held items go to the dead-letter path with reason `destroyed`.
   * @default undefined
   */
  signal: AbortSignal | undefined;
  /**
   * A write-ahead log on disk under the buffer: every accepted item is appended (and, with
   * `fsync: 'always'`, synced) before its write callback reports it accepted, and stays in the log
   * until it is delivered, across crashes and restarts. See {@link DiskOptions} and docs/disk.md.
   * @default undefined (items are held in memory only)
   */
  disk: DiskOptions<T> | undefined;
}

/**
 * The `disk` option: where the log lives and how it is written.
 *
 * With it, *held* means "in the log and not yet delivered", and the strategies and states follow
 * the log's bytes: utilization is the held records' bytes (payload + 16 bytes of header each) over
 * `maxBytes`. Memory holds at most `maxBufferSize` items (queued or in flight); the rest wait on
 * disk and are read back in order. A sluice opened on a log with undelivered records delivers
 * them first (`'replay'` event, `replayed` metric).
 *
 * @example
 * ```ts
 * const sink = new BlockingWritable(insertRows, {
 *   disk: { path: '/var/lib/ingest/queue', fsync: 'always', maxBytes: 10 * 2 ** 30 },
 * });
 * ```
 */
export interface DiskOptions<T = unknown> {
  /** The log's directory, created if missing. One sluice at a time owns it (a lock file). */
  path: string;
  /**
   * Bytes of undelivered records the log may hold: the capacity the states and strategies apply to.
   * A finite `maxBufferBytes` larger than it is used instead.
   * @default 1073741824 (1 GiB)
   */
  maxBytes?: number;
  /**
   * When appends are forced to stable storage. Every mode survives the process being killed (an
   * append is handed to the OS before the write callback runs); they differ on a power loss:
   * `'always'`: nothing acknowledged is lost (appends of one turn share one fsync);
   * `'interval'`: up to `fsyncIntervalMs` of writes can be lost; `'never'`: the OS decides.
   * @default 'interval'
   */
  fsync?: 'always' | 'interval' | 'never';
  /**
   * The period of the `'interval'` mode's fsync.
   * @default 100
   */
  fsyncIntervalMs?: number;
  /**
   * Size at which a segment file is closed and a new one started; fully delivered segments are deleted.
   * @default 67108864 (64 MiB)
   */
  segmentBytes?: number;
  /**
   * Encodes an item; may return a string (stored as UTF-8) or bytes.
   * @default JSON, with Buffers preserved
   */
  serialize?: (item: T) => Uint8Array | string;
  /** Decodes what `serialize` returned. @default JSON, with Buffers preserved */
  deserialize?: (bytes: Buffer) => T;
}

/**
 * Options as a constructor takes them: every field optional, `retry` partial too.
 *
 * @example
 * ```ts
 * const options: BackpressureOptions<Row> = { maxBufferSize: 5000, batchSize: 250, retry: { maxRetries: 5 } };
 * ```
 */
export type BackpressureOptions<T = unknown> = Partial<Omit<BackpressureConfig<T>, 'retry'>> & {
  /** Retry policy; fields left out keep their defaults. */
  retry?: Partial<RetryOptions>;
  /**
   * Accepted for Node compatibility (a `Writable` subclass that passes `{ objectMode: true }` to
   * `super()` keeps working); a sluice is always in object mode, so only `true` is allowed.
   */
  objectMode?: true;
};

/**
 * A snapshot of a sluice's counters, read on demand.
 *
 * @example
 * ```ts
 * setInterval(() => {
 *   const m = sink.getMetrics();
 *   gauge.set(m.bufferUtilization);
 *   console.log(`${m.state} held=${m.bufferSize} delivered=${m.eventsFlushed} dropped=${m.eventsDropped}`);
 * }, 1000).unref();
 * ```
 */
export interface BackpressureMetrics {
  /** The current state. */
  state: BackpressureState;
  /** Items held: queued + in flight + awaiting a retry. */
  bufferSize: number;
  /** max(held / maxBufferSize, bytes / maxBufferBytes). */
  bufferUtilization: number;
  /** Bytes held, as measured by `sizeOf` (0 when `maxBufferBytes` is off). */
  bufferBytes: number;
  /** Every item given to `write()`/`push()`. */
  eventsOffered: number;
  /** Items taken into the buffer (an evicted item was accepted, then dropped). */
  eventsAccepted: number;
  /** Items dropped, for any reason. */
  eventsDropped: number;
  /** Drops by reason; a frozen object, shared between reads until the next drop. */
  droppedByReason: Readonly<Record<DropReason, number>>;
  /** Items confirmed delivered by the sink. */
  eventsFlushed: number;
  /** Items handed to the dead-letter path (or carried by a stream error). */
  deadLettered: number;
  /** Items in a flush that has not settled, or awaiting its retry. */
  inFlight: number;
  /** block: writes waiting at `blocked` for room (not yet accepted). */
  waitingWrites: number;
  /** Flush attempts after a failure. */
  retries: number;
  /** Batches cut from the buffer. */
  batches: number;
  /** Items per batch cut, on average. */
  averageBatchSize: number;
  /** How long the last flush call took to settle. */
  lastFlushLatencyMs: number;
  /** The adaptive interval now: how long a partial batch may wait (a full batch never waits). */
  currentFlushIntervalMs: number;
  /** The batch size batches are cut at now: `batchSize`, or where adaptive batching has steered it. */
  currentBatchSize: number;
  /** Flushes allowed to run at once now: `maxConcurrentFlushes`, or where adaptive concurrency has steered it. */
  currentConcurrency: number;
  /** With `disk`: undelivered records found in the log when it was opened (delivered first). 0 without. */
  replayed: number;
  /** With `disk`: corrupt stretches of the log found at open and moved to its quarantine file. 0 without. */
  corruptRecords: number;
}

/**
 * A write callback. Besides Node's `error`, sluice passes `accepted`: `false`
 * when the strategy dropped the item.
 *
 * @example
 * ```ts
 * sink.write(row, (error, accepted) => {
 *   if (error) console.error('stream failed', error);
 *   else if (!accepted) metrics.rowsShed.inc();
 * });
 * ```
 */
export type WriteCallback = (error: Error | null | undefined, accepted?: boolean) => void;

/**
 * Options of `shutdown()`.
 *
 * @example
 * ```ts
 * const { undelivered } = await sink.shutdown({ timeoutMs: 10_000 });
 * ```
 */
export interface ShutdownOptions {
  /** How long to keep flushing before giving up on what is left. */
  timeoutMs: number;
}

/**
 * What `shutdown()` resolves with.
 *
 * @example
 * ```ts
 * const { undelivered } = await sink.shutdown({ timeoutMs: 5000 });
 * if (undelivered.length > 0) await saveForReplay(undelivered);
 * ```
 */
export interface ShutdownResult<T> {
  /** Items not confirmed delivered by the deadline; they also went down the dead-letter path. */
  undelivered: T[];
}
