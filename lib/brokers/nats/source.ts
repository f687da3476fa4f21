/**
 * `JetStreamSource`: a durable pull consumer of one JetStream stream.
 *
 * Each fetch asks for at most the free space under `maxUnacked` (`max_messages`); messages
 * are pushed as they arrive. Messages held longer than a flush may take get progress acks
 * (`working()`) so that `ack_wait` does not run out while their batch is being stored.
 */
import type { Consumer, ConsumerConfig, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { invalidArgValue } from '../../errors';
import { BrokerError } from '../errors';
import { integerOption, optionsObject, stringOption } from '../options';
import { BrokerSource, type Delivery, type SourceMessage, type SourceOptions } from '../source';
import { ANSWER_TIMEOUT_MS, withinAnswerTimeout } from '../answer-timeout';
import { NatsLink, type NatsConnectionOptions } from './connection';

/** JetStream's API error code for a consumer that does not exist. */
const CONSUMER_NOT_FOUND = 10014;
/** How nats.js ends a fetch that saw none of the server's idle heartbeats for two or three of their intervals. */
const HEARTBEATS_MISSED = 'heartbeats missed';

/**
 * Options of {@link JetStreamSource}.
 *
 * @example
 * ```ts
 * new JetStreamSource<Event>({ servers: 'nats://127.0.0.1:4222', stream: 'EVENTS', consumer: 'loader', maxUnacked: 5000 });
 * ```
 */
export interface JetStreamSourceOptions<P> extends NatsConnectionOptions, SourceOptions<P> {
  /** The stream. */
  stream: string;
  /** The durable consumer's name. Several processes using the same name share its messages. */
  consumer: string;
  /**
   * Creates the durable consumer when it does not exist (explicit acks), with these settings
   * added; `false` requires it to exist.
   * @default {} (create it with the server's defaults: ack_wait 30 s)
   */
  create?: false | Partial<ConsumerConfig>;
  /**
   * How long one fetch waits for messages before the loop asks again (JetStream's minimum is 1000).
   * @default 5000
   */
  expiresMs?: number;
  /**
   * How often the messages held here get a progress ack (`working()`), which restarts their
   * `ack_wait`. `0` turns progress acks off.
   * @default a third of the consumer's ack_wait
   */
  progressIntervalMs?: number;
  /**
   * What happens to a dead-lettered message: `'nak'` (JetStream delivers it again, up to the
   * consumer's `max_deliver`), `'term'` (JetStream stops delivering it; it stays in the stream),
   * or `{ subject }`: it is published there (headers `Sluice-Error`, `Sluice-Stream`,
   * `Sluice-Sequence`, message id `stream:sequence`), then acked.
   * @default 'nak'
   */
  deadLetter?:
    | 'nak'
    | 'term'
    | {
        /** The subject dead letters are published to; a stream must capture it. */
        subject: string;
      };
  /**
   * How long JetStream waits before delivering a nacked message again.
   * @default 0
   */
  nakDelayMs?: number;
}

/**
 * An object-mode Readable of the messages of a JetStream durable pull consumer, each a
 * {@link BrokerMessage} whose `ack()` is a confirmed ack (`ackAck`) and whose `nack()` is a nak.
 *
 * @example
 * ```ts
 * const source = new JetStreamSource<Event>({ servers: 'nats://127.0.0.1:4222', stream: 'EVENTS', consumer: 'db' });
 * const run = endToEnd(source, insertEvents, { batchSize: 500 });
 * await run.done;
 * ```
 */
export class JetStreamSource<P = unknown> extends BrokerSource<P, JsMsg> {
  /** The stream. */
  readonly stream: string;
  /** The durable consumer's name. */
  readonly consumer: string;
  readonly #link: NatsLink;
  readonly #create: false | Partial<ConsumerConfig>;
  readonly #expiresMs: number;
  readonly #progressIntervalMs: number | undefined;
  readonly #deadLetter: 'nak' | 'term' | { subject: string };
  readonly #nakDelayMs: number;
  #consumer: Promise<Consumer> | undefined;
  /** The fetch in progress, stopped by `interrupt()`; undefined between fetches. */
  #fetch: ConsumerMessages | undefined;
  /** The progress-ack timer; undefined until the first fetch, and after release. */
  #progress: NodeJS.Timeout | undefined;

  constructor(options: JetStreamSourceOptions<P>) {
    options = optionsObject('options', options);
    super('nats', options);
    this.stream = stringOption('stream', options.stream);
    this.consumer = stringOption('consumer', options.consumer);
    this.#create = options.create === false ? false : optionsObject('create', options.create);
    this.#expiresMs = integerOption('expiresMs', options.expiresMs, 5000, 1000);
    this.#progressIntervalMs =
      options.progressIntervalMs === undefined
        ? undefined
        : integerOption('progressIntervalMs', options.progressIntervalMs, 0, 0);
    this.#deadLetter = deadLetterOption(options.deadLetter);
    this.#nakDelayMs = integerOption('nakDelayMs', options.nakDelayMs, 0, 0);
    this.#link = new NatsLink(options);
  }

  protected override async pull(max: number): Promise<AsyncIterable<Delivery<JsMsg>>> {
    const consumer = await (this.#consumer ??= this.#bind());
    if (this.stopping) return [][Symbol.iterator]() as never;
    const fetch = await consumer.fetch({ max_messages: max, expires: this.#expiresMs });
    this.#fetch = fetch;
    return this.#deliveries(fetch);
  }

  protected override async acknowledge(messages: SourceMessage<P, JsMsg>[]): Promise<void> {
    await Promise.all(messages.map((message) => message.handle.ackAck()));
  }

  protected override async redeliver(messages: SourceMessage<P, JsMsg>[]): Promise<void> {
    for (const message of messages) message.handle.nak(this.#nakDelayMs);
    await this.#flush();
  }

  protected override async reject(messages: SourceMessage<P, JsMsg>[], reason: unknown): Promise<void> {
    const target = this.#deadLetter;
    if (target === 'nak') return this.redeliver(messages);
    if (target === 'term') {
      // No reason text: servers before 2.10.4 ignore a `+TERM` that carries one.
      for (const message of messages) message.handle.term();
      await this.#flush();
      return;
    }
    const js = await this.#link.jetstream();
    await Promise.all(
      messages.map(async (message) => {
        const headers = this.#link.modules.transport.headers();
        headers.set(
          'Sluice-Error',
          BrokerError.deadLettered('nats', message.id, reason).message.replace(/[\r\n]+/g, ' '),
        );
        headers.set('Sluice-Stream', this.stream);
        headers.set('Sluice-Sequence', message.id);
        await js.publish(target.subject, message.body, { headers, msgID: `${this.stream}:${message.id}` });
        await message.handle.ackAck();
      }),
    );
  }

  protected override async interrupt(): Promise<void> {
    this.#fetch?.stop();
  }

  protected override async release(): Promise<void> {
    clearInterval(this.#progress);
    this.#progress = undefined;
    await this.interrupt();
    await this.#link.close();
  }

  /**
   * Waits until the server has what was sent. A connection that is (or gets) closed fails it, and so
   * does one that does not answer within ANSWER_TIMEOUT_MS (half-open): nats.js's flush() would
   * never settle then, and a destroy() handing messages back would hang. The server delivers those
   * messages again after ack_wait anyway.
   */
  async #flush(): Promise<void> {
    const connection = await this.#link.connection();
    const closed = (): Error => new Error(`The NATS connection of consumer ${this.consumer} is closed`);
    if (connection.isClosed()) throw closed();
    const flushed = Promise.race([
      connection.flush(),
      connection.closed().then(() => {
        throw closed();
      }),
    ]);
    await withinAnswerTimeout(
      flushed,
      () =>
        new Error(
          `The NATS server did not answer a flush for consumer ${this.consumer} within ${ANSWER_TIMEOUT_MS} ms`,
        ),
    );
  }

  /**
   * One pull's messages. nats.js gives up a fetch that saw none of the idle heartbeats it asked the
   * server for (every expiresMs / 2 while it waits, at most 30 s) for two or three of those intervals,
   * with "heartbeats missed", where its consume() would go on. A network that stalled or a loaded
   * machine is not the end of the source: if the server still answers for the consumer, the pull ends
   * as an expired one would and the next goes out. If it does not (the consumer was deleted, the
   * connection is half-open, a permission is missing), that answer's error fails the source.
   */
  async *#deliveries(fetch: ConsumerMessages): AsyncGenerator<Delivery<JsMsg>> {
    try {
      for await (const message of fetch) {
        yield { id: String(message.seq), body: message.data, redelivered: message.redelivered, handle: message };
      }
    } catch (error) {
      if (!(error instanceof this.#link.modules.jetstream.JetStreamError && error.message === HEARTBEATS_MISSED)) {
        throw error;
      }
      await (await (this.#consumer as Promise<Consumer>)).info();
    } finally {
      this.#fetch = undefined;
    }
  }

  /** The durable consumer, created if asked; starts the progress acks at the consumer's ack_wait. */
  async #bind(): Promise<Consumer> {
    const manager = await this.#link.manager();
    const info = await manager.consumers.info(this.stream, this.consumer).catch(async (error: unknown) => {
      const notFound =
        error instanceof this.#link.modules.jetstream.JetStreamApiError && error.code === CONSUMER_NOT_FOUND;
      if (this.#create === false || !notFound) throw error;
      const ackExplicit = this.#link.modules.jetstream.AckPolicy.Explicit;
      return manager.consumers.add(this.stream, {
        ack_policy: ackExplicit,
        ...this.#create,
        durable_name: this.consumer,
      });
    });
    const ackWaitMs = Math.floor((info.config.ack_wait ?? 30e9) / 1e6);
    const everyMs = this.#progressIntervalMs ?? Math.max(1, Math.floor(ackWaitMs / 3));
    if (everyMs > 0 && !this.stopping) {
      this.#progress = setInterval(() => {
        for (const message of this.unsettledMessages()) message.handle.working();
      }, everyMs).unref();
    }
    return (await this.#link.jetstream()).consumers.get(this.stream, this.consumer);
  }
}

function deadLetterOption(value: unknown): 'nak' | 'term' | { subject: string } {
  if (value === undefined || value === 'nak' || value === 'term') return value ?? 'nak';
  if (value !== null && typeof value === 'object' && 'subject' in value) {
    return { subject: stringOption('deadLetter.subject', value.subject) };
  }
  throw invalidArgValue('The option "deadLetter"', "must be 'nak', 'term' or { subject }", value);
}
