/** `natsSink`: one batch published to JetStream, each message's publish ack its verdict. */
import type { FlushContext, FlushFunction, FlushResult } from '../../types';
import { BrokerError } from '../errors';
import { encodeJson, functionOption, integerOption, optionsObject, routeOption, stringOption } from '../options';
import type { BrokerSink } from '../sink';
import { NatsLink, type NatsConnectionOptions } from './connection';

/**
 * Options of {@link natsSink}.
 *
 * @example
 * ```ts
 * natsSink<Order>({ servers: 'nats://127.0.0.1:4222', subject: (order) => `orders.${order.region}`, msgId: (order) => order.id });
 * ```
 */
export interface NatsSinkOptions<T> extends NatsConnectionOptions {
  /** The subject, or a function of the item that routes it. A stream must capture it. */
  subject: string | ((item: T) => string);
  /**
   * A message id per item (`Nats-Msg-Id`): JetStream stores a message whose id it saw within the
   * stream's duplicate window only once, so a retried batch is not stored twice.
   * @default undefined (no id: a batch retried after a lost ack may be stored twice)
   */
  msgId?: (item: T) => string;
  /**
   * The payload of an item.
   * @default bytes as they are, anything else as JSON text
   */
  encode?: (item: T) => Uint8Array | string;
  /**
   * Only this stream may store the messages (`Nats-Expected-Stream`); a message captured by another is refused.
   * @default undefined
   */
  expectStream?: string;
  /**
   * How long to wait for each publish ack.
   * @default 5000
   */
  ackTimeoutMs?: number;
}

/**
 * A flush function that publishes one batch to JetStream and waits for every publish ack: the
 * messages JetStream refused (no stream captures the subject, a limit, a wrong expected stream, a
 * timeout) come back in `failedItems`, so only they are retried. With `msgId`, a message that was
 * stored although its ack was lost is not stored again on retry (the ack says `duplicate`).
 *
 * @example
 * ```ts
 * const sink = natsSink<Event>({ servers: 'nats://127.0.0.1:4222', subject: 'events.in', msgId: (e) => e.id });
 * await pipeline(Readable.from(events), new BlockingWritable(sink, { batchSize: 500 }));
 * await sink.close();
 * ```
 */
export function natsSink<T>(options: NatsSinkOptions<T>): BrokerSink<T> {
  options = optionsObject('options', options);
  const subjectOf = routeOption<T>('subject', options.subject);
  const msgIdOf =
    options.msgId === undefined ? undefined : functionOption<(item: T) => string>('msgId', options.msgId, String);
  const encode = functionOption<(item: T) => Uint8Array | string>('encode', options.encode, encodeJson);
  const expectStream =
    options.expectStream === undefined ? undefined : stringOption('expectStream', options.expectStream);
  const timeout = integerOption('ackTimeoutMs', options.ackTimeoutMs, 5000, 1);
  const link = new NatsLink(options);

  const flush: FlushFunction<T> = async (items: T[], { signal }: FlushContext) => {
    const js = await link.jetstream();
    signal.throwIfAborted();
    const acks = await Promise.allSettled(
      // async: an item that cannot be encoded or routed fails alone, like one JetStream refused.
      items.map(async (item) =>
        js.publish(subjectOf(item), encode(item), {
          timeout,
          ...(msgIdOf === undefined ? {} : { msgID: msgIdOf(item) }),
          ...(expectStream === undefined ? {} : { expect: { streamName: expectStream } }),
        }),
      ),
    );
    const errors: Error[] = [];
    const failedItems: T[] = [];
    acks.forEach((ack, index) => {
      if (ack.status === 'fulfilled') return;
      errors.push(BrokerError.refused('nats', `the publish of item ${index} of the batch`, ack.reason));
      failedItems.push(items[index]!);
    });
    if (failedItems.length === 0) return undefined;
    const result: FlushResult<T> = {
      success: items.length - failedItems.length,
      failed: failedItems.length,
      errors,
      failedItems,
    };
    return result;
  };
  return Object.assign(flush, { close: () => link.close() });
}
