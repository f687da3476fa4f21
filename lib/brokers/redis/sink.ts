/** `redisStreamSink`: one batch, one pipeline of `XADD`s, the refused entries named. */
import type { FlushContext, FlushFunction, FlushResult } from '../../types';
import { BrokerError } from '../errors';
import { encodeJson, functionOption, integerOption, optionsObject, routeOption, stringOption } from '../options';
import type { BrokerSink } from '../sink';
import { closeRedis, connectRedis, type RedisConnectionOptions } from './connection';

/**
 * Options of {@link redisStreamSink}.
 *
 * @example
 * ```ts
 * redisStreamSink<Event>({ url: 'redis://127.0.0.1:6379', stream: (event) => `events:${event.tenant}`, maxLen: 1_000_000 });
 * ```
 */
export interface RedisStreamSinkOptions<T> extends RedisConnectionOptions {
  /** The stream key, or a function of the item that routes it. */
  stream: string | ((item: T) => string);
  /**
   * The entry field that carries the payload.
   * @default 'payload'
   */
  field?: string;
  /**
   * The payload of an item.
   * @default bytes as they are, anything else as JSON text
   */
  encode?: (item: T) => Buffer | string;
  /**
   * Trims each stream to about this many entries (`XADD … MAXLEN ~ n`).
   * @default undefined (no trimming)
   */
  maxLen?: number;
}

/**
 * A flush function that appends one batch to Redis Streams: one `XADD` per item, all in one
 * pipeline (one round trip). Items Redis refused (a key of the wrong type, an out-of-memory
 * error, an item `encode` threw on) come back in `failedItems`, so only they are retried; a
 * lost connection rejects, and the whole batch is retried.
 *
 * @example
 * ```ts
 * const sink = redisStreamSink<Event>({ url: 'redis://127.0.0.1:6379', stream: 'events' });
 * await pipeline(Readable.from(events), new BlockingWritable(sink, { batchSize: 500 }));
 * await sink.close();
 * ```
 */
export function redisStreamSink<T>(options: RedisStreamSinkOptions<T>): BrokerSink<T> {
  options = optionsObject('options', options);
  const streamOf = routeOption<T>('stream', options.stream);
  const field = options.field === undefined ? 'payload' : stringOption('field', options.field);
  const encode = functionOption<(item: T) => Buffer | string>('encode', options.encode, encodeJson);
  const maxLen = options.maxLen === undefined ? undefined : integerOption('maxLen', options.maxLen, 0, 1);
  const { client, owned } = connectRedis(options);

  const flush: FlushFunction<T> = async (items: T[], { signal }: FlushContext) => {
    const pipe = client.pipeline();
    // queued[i] = the batch index of the i-th XADD in the pipeline (items that failed to encode are not sent).
    const queued: number[] = [];
    const failedAt = new Map<number, Error>();
    items.forEach((item, index) => {
      try {
        const trim = maxLen === undefined ? [] : ['MAXLEN', '~', maxLen];
        pipe.call('XADD', streamOf(item), ...trim, '*', field, encode(item));
        queued.push(index);
      } catch (error) {
        failedAt.set(
          index,
          BrokerError.refused('redis', `item ${index} of the batch (it could not be encoded)`, error),
        );
      }
    });
    signal.throwIfAborted();
    const replies = queued.length === 0 ? [] : await pipe.exec();
    if (replies === null) throw new Error('The Redis pipeline was discarded');
    replies.forEach(([error], i) => {
      if (!error) return;
      // A reply error is Redis refusing this entry; anything else (a lost connection) leaves the
      // whole batch in doubt, so it fails whole and is retried whole.
      if (error.name !== 'ReplyError') throw error;
      const index = queued[i]!;
      failedAt.set(index, BrokerError.refused('redis', `XADD of item ${index} of the batch`, error));
    });
    if (failedAt.size === 0) return undefined;
    const result: FlushResult<T> = {
      success: items.length - failedAt.size,
      failed: failedAt.size,
      errors: [...failedAt.values()],
      failedItems: [...failedAt.keys()].sort((a, b) => a - b).map((index) => items[index]!),
    };
    return result;
  };
  return Object.assign(flush, {
    close: async () => {
      if (owned) await closeRedis(client);
    },
  });
}
