/** `amqpSink`: one batch published on a confirm channel, each publisher confirm its verdict. */
import type { ConfirmChannel, Message } from 'amqplib';
import { invalidArgType } from '../../errors';
import type { FlushContext, FlushFunction, FlushResult } from '../../types';
import { BrokerError } from '../errors';
import { encodeJson, functionOption, optionsObject, routeOption } from '../options';
import type { BrokerSink } from '../sink';
import { AmqpLink, type AmqpConnectionOptions } from './connection';

/** The header that tells a returned (unroutable) message's item in its batch. */
const PUBLISH_ID = 'x-sluice-publish-id';

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
  /** The confirm channel, opened on first use and again after the broker closed it. */
  let channel: Promise<ConfirmChannel> | undefined;
  /** Publish ids RabbitMQ returned as unroutable; each is read once, by its own confirm. */
  const returned = new Set<string>();
  let nextId = 0;

  const open = (): Promise<ConfirmChannel> =>
    (channel ??= link
      .channel(true, () => (channel = undefined))
      .then((opened) => {
        opened.on('return', (message: Message) => {
          const id: unknown = message.properties.headers?.[PUBLISH_ID];
          if (typeof id === 'string') returned.add(id);
        });
        return opened;
      })
      .catch((error: unknown) => {
        channel = undefined;
        throw error;
      }));

  const flush: FlushFunction<T> = async (items: T[], { signal }: FlushContext) => {
    const confirmChannel = await open();
    signal.throwIfAborted();
    const verdicts = await Promise.all(
      items.map(
        (item, index) =>
          new Promise<Error | undefined>((resolve) => {
            const publishId = String(nextId++);
            try {
              const content = encode(item);
              confirmChannel.publish(
                exchange,
                routingKeyOf(item),
                Buffer.isBuffer(content) ? content : Buffer.from(content),
                {
                  persistent: true,
                  mandatory: true,
                  contentType: options.encode === undefined ? 'application/json' : undefined,
                  headers: { [PUBLISH_ID]: publishId },
                  ...(messageIdOf === undefined ? {} : { messageId: messageIdOf(item) }),
                },
                (error: unknown) => {
                  const wasReturned = returned.delete(publishId);
                  if (error) resolve(BrokerError.refused('amqp', `the publish of item ${index} of the batch`, error));
                  else if (wasReturned)
                    resolve(BrokerError.refused('amqp', `item ${index} of the batch (unroutable: returned)`));
                  else resolve(undefined);
                },
              );
            } catch (error) {
              resolve(BrokerError.refused('amqp', `item ${index} of the batch (it could not be published)`, error));
            }
          }),
      ),
    );
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
