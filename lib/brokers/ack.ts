/**
 * End-to-end acknowledgement: source → sluice → sink, where a message is acked only
 * when the flush of the batch that carries it resolved as delivered.
 *
 * Owns: the flush wrapper that maps the sink's result back to messages, and the routing
 * of dead letters and drops back to the source. Does not own the broker calls (the
 * source's) nor batching, retries and the bound (the sluice's).
 */
import { pipeline } from 'node:stream/promises';
import { isFlushResult } from '../engine/judge';
import { BlockingWritable } from '../strategies/blocking';
import { invalidArgType, type BackpressureError } from '../errors';
import type { BackpressureOptions, FlushContext, FlushFunction } from '../types';
import { functionOption, optionsObject } from './options';
import { BrokerSource, type BrokerMessage } from './source';

/** The sluice's own default batch size, lowered to half the bound when that is smaller. */
const DEFAULT_BATCH_SIZE = 100;

/**
 * Options of {@link endToEnd}: the sluice's own options (the strategy is always block, and the
 * dead-letter path is the source's), plus where acknowledgement failures are reported.
 *
 * @example
 * ```ts
 * endToEnd(source, insertRows, { batchSize: 500, retry: { maxRetries: 5 }, isolateFailures: 'bisect' });
 * ```
 */
export type EndToEndOptions<P> = Omit<BackpressureOptions<BrokerMessage<P>>, 'strategy' | 'onDeadLetter'> & {
  /**
   * Called when the broker could not be told about stored (or dead-lettered) messages. They are
   * not lost: the broker delivers them again, so they may be stored twice (at-least-once).
   * @default a process warning with code `SLUICE_ACK_FAILED`
   */
  onAckError?: (error: unknown, messages: BrokerMessage<P>[]) => void;
};

/** What an {@link endToEnd} run settled, message by message. */
export interface EndToEndSummary {
  /** Messages whose batch was delivered, then acked. */
  acked: number;
  /** Messages the sluice gave up on (retries exhausted, invalid result), sent to the dead-letter route. */
  deadLettered: number;
  /** Messages handed back for redelivery (the run was destroyed or shut down with them held, or they were dropped). */
  nacked: number;
  /** Messages whose ack, nack or dead-letter call failed (the broker delivers them again). */
  ackFailures: number;
}

/** A running {@link endToEnd} pipeline. */
export interface EndToEndRun<P> {
  /** The sluice between source and sink (for `getMetrics()`, `'state'`, `shutdown()`). */
  readonly sluice: BlockingWritable<BrokerMessage<P>>;
  /** Resolves once the source has ended, every batch is flushed and every message settled; the source is then closed. */
  readonly done: Promise<EndToEndSummary>;
  /** The counts so far. */
  summary(): EndToEndSummary;
  /** Stops fetching, delivers and settles what is held, closes the source; resolves like `done`. */
  stop(): Promise<EndToEndSummary>;
}

/**
 * Wires `source` → a `BlockingWritable` → `sink` with end-to-end acknowledgement: the sink gets
 * the payloads of one batch; the messages it delivered are acked after it resolves, those it
 * names in `failedItems` are retried and acked once delivered; messages the sluice dead-letters
 * go to the source's dead-letter route (never acked as stored); messages still held when the
 * run is destroyed are nacked. The sluice's `maxBufferSize` defaults to `source.maxUnacked`, its
 * `batchSize` to 100 or half the bound, whichever is smaller.
 *
 * @example
 * ```ts
 * const source = redisStreamSource({ url: 'redis://127.0.0.1:6379', stream: 'events', group: 'loader', consumer: 'a' });
 * const run = endToEnd(source, async (rows) => { await db.insertMany(rows); }, { batchSize: 500 });
 * process.once('SIGTERM', () => void run.stop());
 * console.log(await run.done); // { acked, deadLettered, nacked, ackFailures }
 * ```
 */
export function endToEnd<P>(
  source: BrokerSource<P>,
  sink: FlushFunction<P>,
  options?: EndToEndOptions<P>,
): EndToEndRun<P> {
  const { onAckError: onAckErrorOption, ...sluiceOptions } = optionsObject('options', options);
  if (!(source instanceof BrokerSource)) throw invalidArgType('The "source" argument', 'a broker source', source);
  if (typeof sink !== 'function') throw invalidArgType('The "sink" argument', 'a function', sink);
  const onAckError = functionOption('onAckError', onAckErrorOption, warnAckFailed);
  const counts: EndToEndSummary = { acked: 0, deadLettered: 0, nacked: 0, ackFailures: 0 };

  const settle = async (
    messages: BrokerMessage<P>[],
    how: (messages: BrokerMessage<P>[]) => Promise<void>,
    counter: 'acked' | 'deadLettered' | 'nacked',
  ): Promise<boolean> => {
    // Settled already, or forgotten by the source (the broker took it back on a reconnect and delivers
    // it again): settling it would do nothing, so it is not counted either.
    const held = messages.filter((message) => source.holds(message));
    if (held.length === 0) return true;
    try {
      await how(held);
      counts[counter] += held.length;
      return true;
    } catch (error) {
      counts.ackFailures += held.length;
      onAckError(error, held);
      return false;
    }
  };
  const ack = (messages: BrokerMessage<P>[]) => settle(messages, (m) => source.ack(m), 'acked');
  const nack = (messages: BrokerMessage<P>[]) => settle(messages, (m) => source.nack(m), 'nacked');

  const flush = async (messages: BrokerMessage<P>[], context: FlushContext): Promise<unknown> => {
    const payloads = messages.map((message) => message.payload);
    const result = await sink(payloads, context);
    if (!isFlushResult(result)) {
      await ack(messages);
      return result;
    }
    // A result that does not add up is the sluice's to reject (ERR_INVALID_FLUSH_RESULT): ack nothing.
    if (result.success + result.failed !== messages.length) return result;
    if (result.failed === 0) {
      await ack(messages);
      return result;
    }
    const failed = result.failedItems === undefined ? undefined : messagesOf(result.failedItems, payloads, messages);
    // The sink could not say which failed (or named items not in the batch): the whole batch is retried.
    if (failed === undefined) return { success: result.success, failed: result.failed, errors: result.errors };
    const failedSet = new Set(failed);
    await ack(messages.filter((message) => !failedSet.has(message)));
    return { success: result.success, failed: result.failed, errors: result.errors, failedItems: failed };
  };

  const bound = typeof sluiceOptions.maxBufferSize === 'number' ? sluiceOptions.maxBufferSize : source.maxUnacked;
  const sluice = new BlockingWritable<BrokerMessage<P>>(flush, {
    maxBufferSize: source.maxUnacked,
    // Two batches fit under the bound by default, so one can fill while the other is flushed.
    batchSize: Math.min(DEFAULT_BATCH_SIZE, Math.max(1, Math.ceil(bound / 2))),
    // The source never holds more than the bound unsettled, so a write never has to wait for
    // room; no wait may end in a 'timeout' drop either.
    maxBlockTimeMs: Infinity,
    ...sluiceOptions,
    onDeadLetter: async (messages: BrokerMessage<P>[], error: BackpressureError<BrokerMessage<P>>) => {
      if (error.reason === 'destroyed' || error.reason === 'shutdown_timeout') {
        await nack(messages);
        return;
      }
      if (!(await settle(messages, (m) => source.deadLetter(m, error), 'deadLettered'))) await nack(messages);
    },
  });
  // Only a producer that ignores write() === false sees drops with block; hand them back all the same.
  sluice.on('drop', (message: BrokerMessage<P>) => void nack([message]));

  const done = pipeline(source, sluice).then(
    async () => {
      await source.close();
      return { ...counts };
    },
    async (error: unknown) => {
      await source.close().catch(() => undefined);
      throw error;
    },
  );
  // `done` is the caller's to await; keep an unobserved failure from becoming an unhandled rejection twice.
  done.catch(() => undefined);

  return {
    sluice,
    done,
    summary: () => ({ ...counts }),
    stop: async () => {
      await source.stop();
      return done;
    },
  };
}

/**
 * The messages whose payloads are `failedItems`, matched by identity (each payload once, in
 * batch order, so equal primitives map to distinct messages); undefined if one is not in the batch.
 */
function messagesOf<P>(
  failedItems: readonly unknown[],
  payloads: readonly P[],
  messages: readonly BrokerMessage<P>[],
): BrokerMessage<P>[] | undefined {
  const positions = new Map<unknown, number[]>();
  for (let i = payloads.length - 1; i >= 0; i--) {
    const list = positions.get(payloads[i]);
    if (list === undefined) positions.set(payloads[i], [i]);
    else list.push(i);
  }
  const failed: BrokerMessage<P>[] = [];
  for (const item of failedItems) {
    const index = positions.get(item)?.pop();
    if (index === undefined) return undefined;
    failed.push(messages[index]!);
  }
  return failed;
}

function warnAckFailed(error: unknown, messages: BrokerMessage<unknown>[]): void {
  const why = error instanceof Error ? error.message : String(error);
  process.emitWarning(
    `The broker could not be told about ${messages.length} message(s) (${why}); it will deliver them again`,
    { code: 'SLUICE_ACK_FAILED' },
  );
}
