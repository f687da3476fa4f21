import type { FlushFunction } from '../types';

/**
 * A flush function that publishes to a broker, with `close()` for the connection it opened
 * (a client you passed in is left open).
 *
 * @example
 * ```ts
 * const sink = natsSink<Event>({ servers: 'nats://127.0.0.1:4222', subject: 'events' });
 * await pipeline(Readable.from(events), new BlockingWritable(sink));
 * await sink.close();
 * ```
 */
export type BrokerSink<T> = FlushFunction<T> & {
  /** Closes the connection the sink opened; a no-op for a client you passed in. */
  close(): Promise<void>;
};
