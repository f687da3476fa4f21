/** `amqpSink`: one batch published on a confirm channel, each publisher confirm its verdict. */
import type { ConfirmChannel, Message } from 'amqplib';
import { invalidArgType } from '../../errors';
import { untilAborted } from '../../abortable';
import type { FlushContext, FlushFunction, FlushResult } from '../../types';
import { BrokerError } from '../errors';
import { encodeJson, functionOption, optionsObject, routeOption } from '../options';
import type { BrokerSink } from '../sink';
import { AmqpLink, type AmqpConnectionOptions, type ChannelClosed } from './connection';

/** The header that tells a returned (unroutable) message's item in its batch. */
const PUBLISH_ID = 'x-sluice-publish-id';

/** When, and why, a confirm channel closed. */
class ChannelEnd {
  /** Set when the channel closes. */
  why: ChannelClosed | undefined;
  readonly #waiting = new Set<() => void>();

  /**
   * A promise that resolves when the channel closes, and `cancel()` to stop waiting: a batch waits
   * only while its confirms are due, so that a channel open for a long run collects no waiters.
   */
  wait(): { closed: Promise<void>; cancel: () => void } {
    if (this.why !== undefined) return { closed: Promise.resolve(), cancel: () => undefined };
    let wake!: () => void;
    const closed = new Promise<void>((resolve) => (wake = resolve));
    this.#waiting.add(wake);
    return { closed, cancel: () => this.#waiting.delete(wake) };
  }

  close(why: ChannelClosed): void {
    this.why = why;
    for (const wake of this.#waiting) wake();
    this.#waiting.clear();
  }
}

/** The sink's confirm channel, and its end. */
interface Publisher {
  channel: ConfirmChannel;
  end: ChannelEnd;
}

/**
 * Options of {@link amqpSink}.
 *
 * @example
 * ```ts
 * amqpSink<Order>({ url: 'amqp://guest:guest@127.0.0.1:5672', exchange: 'orders', routingKey: (order) => order.region });
 * ```
 */
export interface AmqpSinkOptions<T> extends AmqpConnectionOptions {
  /**
   * The exchange; `''` is the default exchange, which routes by queue name.
   * @default ''
   */
  exchange?: string;
  /** The routing key (with the default exchange: the queue), or a function of the item that routes it. */
  routingKey: string | ((item: T) => string);
  /**
   * The payload of an item.
   * @default bytes as they are, anything else as JSON text (content type application/json)
   */
  encode?: (item: T) => Buffer | string;
  /**
   * A `messageId` property per item, for consumers that de-duplicate.
   * @default undefined
   */
  messageId?: (item: T) => string;
}

/**
 * A flush function that publishes one batch on a confirm channel (persistent, mandatory) and
 * waits for every publisher confirm: the messages RabbitMQ nacked (a full queue with
 * `x-overflow: reject-publish`, an internal error) or returned (no queue bound for the routing
 * key) come back in `failedItems`, so only they are retried. A channel the broker closed (an
 * exchange that does not exist) fails the whole batch; the next call opens a new one.
 *
 * A connection lost (one the sink opened from `url`) is re-opened for up to `reconnectTimeoutMs`:
 * the items whose confirms were lost with it come back in `failedItems` (they may have reached the
 * queue: a retry can publish them twice, with the same `messageId`), and a flush meanwhile waits
 * for the new channel. Past the timeout every flush rejects with `ERR_BROKER_CONNECTION_LOST`.
 *
 * @example
 * ```ts
 * const sink = amqpSink<Event>({ url: 'amqp://guest:guest@127.0.0.1:5672', routingKey: 'events' });
 * await pipeline(Readable.from(events), new BlockingWritable(sink, { batchSize: 500 }));
 * await sink.close();
 * ```
 */
export function amqpSink<T>(options: AmqpSinkOptions<T>): BrokerSink<T> {
  options = optionsObject('options', options);
  const exchange = options.exchange === undefined ? '' : options.exchange;
  if (typeof exchange !== 'string') throw invalidArgType('The option "exchange"', 'a string', exchange);
  const routingKeyOf = routeOption<T>('routingKey', options.routingKey);
  const encode = functionOption<(item: T) => Buffer | string>('encode', options.encode, encodeJson);
  const messageIdOf =
    options.messageId === undefined ? undefined : functionOption('messageId', options.messageId, String);
  const link = new AmqpLink(options);
  /** The confirm channel, opened on first use and again after it closed. */
  let publisher: Promise<Publisher> | undefined;
  /** Publish ids RabbitMQ returned as unroutable; each is read once, by its own confirm. */
  const returned = new Set<string>();
  let nextId = 0;

  const open = (): Promise<Publisher> => {
    if (publisher !== undefined) return publisher;
    const end = new ChannelEnd();
    const opening: Promise<Publisher> = link
      .channel(true, (why) => {
        if (publisher === opening) publisher = undefined;
        end.close(why);
      })
      .then((channel) => {
        channel.on('return', (message: Message) => {
          const id: unknown = message.properties.headers?.[PUBLISH_ID];
          if (typeof id === 'string') returned.add(id);
        });
        return { channel, end };
      })
      .catch((error: unknown) => {
        if (publisher === opening) publisher = undefined;
        throw error;
      });
    publisher = opening;
    return opening;
  };

  /**
   * Publishes one item; resolves with the broker's verdict (an error, or undefined once confirmed
   * and not returned). `closed`: the channel closed, with the item's confirm perhaps still due.
   */
  const publishOne = (target: Publisher, closed: Promise<void>, item: T, index: number): Promise<Error | undefined> => {
    const publishId = String(nextId++);
    let content: Buffer | string;
    let routingKey: string;
    let messageId: string | undefined;
    try {
      content = encode(item);
      routingKey = routingKeyOf(item);
      messageId = messageIdOf?.(item);
    } catch (error) {
      return Promise.resolve(
        BrokerError.refused('amqp', `item ${index} of the batch (it could not be published)`, error),
      );
    }
    const confirmed = new Promise<unknown>((resolve) => {
      try {
        target.channel.publish(
          exchange,
          routingKey,
          Buffer.isBuffer(content) ? content : Buffer.from(content),
          {
            persistent: true,
            mandatory: true,
            contentType: options.encode === undefined ? 'application/json' : undefined,
            headers: { [PUBLISH_ID]: publishId },
            ...(messageId === undefined ? {} : { messageId }),
          },
          (error: unknown) => resolve(error ?? undefined),
        );
      } catch (error) {
        // The channel closed under the batch (amqplib refuses a publish on it).
        resolve(error);
      }
    });
    // amqplib fails the confirms a closing channel still owes; older versions may not: the close decides then.
    const lost = closed.then(() => new Error('channel closed'));
    return Promise.race([confirmed, lost]).then((error) => {
      const wasReturned = returned.delete(publishId);
      if (error && target.end.why?.connectionLost)
        return BrokerError.refused(
          'amqp',
          `item ${index} of the batch (its confirm was lost with the connection; it is published again, and may be stored twice)`,
          error,
        );
      if (error) return BrokerError.refused('amqp', `the publish of item ${index} of the batch`, error);
      if (wasReturned) return BrokerError.refused('amqp', `item ${index} of the batch (unroutable: returned)`);
      return undefined;
    });
  };

  const flush: FlushFunction<T> = async (items: T[], { signal }: FlushContext) => {
    // While the connection is being re-opened this waits (up to reconnectTimeoutMs), unless the flush is aborted.
    const target = await untilAborted(open(), signal);
    const { closed, cancel } = target.end.wait();
    let verdicts: (Error | undefined)[];
    try {
      verdicts = await Promise.all(items.map((item, index) => publishOne(target, closed, item, index)));
    } finally {
      cancel();
    }
    const errors = verdicts.filter((verdict): verdict is Error => verdict !== undefined);
    if (errors.length === 0) return undefined;
    const result: FlushResult<T> = {
      success: items.length - errors.length,
      failed: errors.length,
      errors,
      failedItems: items.filter((_, index) => verdicts[index] !== undefined),
    };
    return result;
  };
  return Object.assign(flush, { close: () => link.close() });
}
