/**
 * `AmqpSource`: a consumer of one RabbitMQ queue with manual acks.
 *
 * RabbitMQ pushes; the channel's `prefetch` is set to `maxUnacked`, so the broker itself never
 * sends more than the bound holds unsettled. Acks, nacks and rejects go on the channel the
 * message came on; closing it (or losing the connection) requeues whatever is unsettled.
 *
 * A connection lost (one the source opened) is re-opened by its AmqpLink; the source then opens
 * a new channel and consumer. Delivery tags belong to their channel, so the messages held from
 * the old one are forgotten (RabbitMQ requeued them and delivers them again): never acked on the
 * new channel, where their tags would name other messages.
 */
import type { Channel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { invalidArgValue } from '../../errors';
import { withinAnswerTimeout } from '../answer-timeout';
import { BrokerError } from '../errors';
import { optionsObject, stringOption } from '../options';
import { BrokerSource, type Sent, type SourceMessage, type SourceOptions } from '../source';
import { AmqpLink, type AmqpConnectionOptions, type ChannelClosed } from './connection';

/**
 * Options of {@link AmqpSource}.
 *
 * @example
 * ```ts
 * new AmqpSource<Event>({ url: 'amqp://guest:guest@127.0.0.1:5672', queue: 'events', maxUnacked: 2000 });
 * ```
 */
export interface AmqpSourceOptions<P> extends AmqpConnectionOptions, SourceOptions<P> {
  /** The queue. */
  queue: string;
  /**
   * Declares the queue first (`assertQueue`) with these options; leave out for a queue that exists.
   * @default undefined
   */
  assertQueue?: Options.AssertQueue;
  /**
   * What happens to a dead-lettered message: `'requeue'` (RabbitMQ delivers it again),
   * `'reject'` (nack without requeue: the queue's dead-letter exchange gets it — a queue without
   * one drops it, so use this only with a DLX), or `{ queue }`: it is published there (persistent,
   * confirmed; headers `Sluice-Error` and `Sluice-Queue` added), then acked.
   * @default 'requeue'
   */
  deadLetter?:
    | 'requeue'
    | 'reject'
    | {
        /** The queue dead letters are sent to (through the default exchange). */
        queue: string;
      };
}

/**
 * An object-mode Readable of the messages of a RabbitMQ queue, each a {@link BrokerMessage}
 * whose `ack()` is a `basic.ack` and whose `nack()` requeues it. The `id` is the delivery tag.
 *
 * When the connection it opened is lost, the source re-opens it (for up to `reconnectTimeoutMs`)
 * and consumes again on a new channel. It emits `'disconnect'` `({ forgotten, cause })` when the
 * connection is lost: the `forgotten` messages it held unsettled go back to the queue (their
 * `ack()` and `nack()` now do nothing) and are delivered again, so a consumer stores them twice
 * unless it de-duplicates. It emits `'reconnect'` `({ downMs })` once consuming again, and fails
 * (`'error'`, `ERR_BROKER_CONNECTION_LOST`) when the connection could not be re-opened in time.
 *
 * @example
 * ```ts
 * const source = new AmqpSource<Event>({ url: 'amqp://guest:guest@127.0.0.1:5672', queue: 'events' });
 * const run = endToEnd(source, insertEvents, { batchSize: 500 });
 * await run.done;
 * ```
 */
export class AmqpSource<P = unknown> extends BrokerSource<P, ConsumeMessage> {
  /** The queue. */
  readonly queue: string;
  readonly #link: AmqpLink;
  readonly #assertQueue: Options.AssertQueue | undefined;
  readonly #deadLetter: 'requeue' | 'reject' | { queue: string };
  #channel: Channel | undefined;
  /** The first consuming; `stop()` waits for it so that it can cancel the consumer it sets up. */
  #started: Promise<void> | undefined;
  #consumerTag: string | undefined;
  /** Counts the channels consumed on: a consuming that failed after a newer one began is not the source's failure. */
  #generation = 0;
  #deadLetterChannel: Promise<ConfirmChannel> | undefined;
  /** Delivery tags settled here whose dead letters are not yet confirmed: still unacked on the channel. */
  readonly #limbo = new Set<number>();

  constructor(options: AmqpSourceOptions<P>) {
    options = optionsObject('options', options);
    super('amqp', options);
    this.queue = stringOption('queue', options.queue);
    this.#assertQueue =
      options.assertQueue === undefined ? undefined : optionsObject('assertQueue', options.assertQueue);
    this.#deadLetter = deadLetterOption(options.deadLetter);
    this.#link = new AmqpLink(options);
  }

  /** @internal RabbitMQ pushes: the first read opens the channel and starts consuming. */
  override _read(): void {
    this.#started ??= this.#consume().then(() => undefined);
  }

  // Each settle reports itself `sent` once its frames are written: RabbitMQ refills the prefetch
  // window as soon as they arrive, before the #processed barrier answers (see Sent).

  protected override async acknowledge(messages: SourceMessage<P, ConsumeMessage>[], sent?: Sent): Promise<void> {
    const channel = this.#open();
    this.#ack(channel, messages);
    sent?.();
    await this.#processed(channel);
  }

  protected override async redeliver(messages: SourceMessage<P, ConsumeMessage>[], sent?: Sent): Promise<void> {
    const channel = this.#open();
    for (const message of messages) channel.nack(message.handle, false, true);
    sent?.();
    await this.#processed(channel);
  }

  protected override async reject(
    messages: SourceMessage<P, ConsumeMessage>[],
    reason: unknown,
    sent?: Sent,
  ): Promise<void> {
    const target = this.#deadLetter;
    if (target === 'requeue') return this.redeliver(messages, sent);
    const channel = this.#open();
    if (target === 'reject') {
      for (const message of messages) channel.nack(message.handle, false, false);
      sent?.();
      return this.#processed(channel);
    }
    // Until their dead letters are confirmed these stay unacked on the channel, though settled here.
    for (const message of messages) this.#limbo.add(message.handle.fields.deliveryTag);
    try {
      const deadLetters = await (this.#deadLetterChannel ??= this.#link.channel(
        true,
        () => (this.#deadLetterChannel = undefined),
      ));
      await Promise.all(messages.map((message) => this.#sendDeadLetter(deadLetters, target.queue, message, reason)));
    } catch (error) {
      // Not moved: hand them back to the queue rather than leave them unacked on the channel (a
      // channel that closed meanwhile has requeued them already).
      if (this.#channel === channel) for (const message of messages) channel.nack(message.handle, false, true);
      sent?.();
      throw error;
    } finally {
      for (const message of messages) this.#limbo.delete(message.handle.fields.deliveryTag);
    }
    this.#ack(channel, messages);
    sent?.();
    await this.#processed(channel);
  }

  /** Publishes one dead letter (persistent, confirmed), its cause in the `Sluice-Error` header. */
  #sendDeadLetter(
    channel: ConfirmChannel,
    queue: string,
    message: SourceMessage<P, ConsumeMessage>,
    reason: unknown,
  ): Promise<void> {
    const { headers, contentType, messageId } = message.handle.properties as {
      headers?: Record<string, unknown>;
      contentType?: string;
      messageId?: string;
    };
    const properties = {
      persistent: true,
      contentType,
      messageId,
      headers: {
        ...headers,
        'Sluice-Error': BrokerError.deadLettered('amqp', message.id, reason).message,
        'Sluice-Queue': this.queue,
      },
    };
    return new Promise<void>((resolve, reject) =>
      channel.sendToQueue(queue, message.body, properties, (error: unknown) =>
        error ? reject(BrokerError.refused('amqp', `the dead letter of message ${message.id}`, error)) : resolve(),
      ),
    );
  }

  /**
   * Acks `messages`: with one `multiple` ack (one frame for the batch, not one per message) when
   * every delivery on the channel up to the batch's last tag is in the batch or already settled,
   * which is the usual case (batches are delivered in order); else one ack each.
   */
  #ack(channel: Channel, messages: SourceMessage<P, ConsumeMessage>[]): void {
    let last = messages[0]!.handle;
    for (const message of messages)
      if (message.handle.fields.deliveryTag > last.fields.deliveryTag) last = message.handle;
    const lastTag = last.fields.deliveryTag;
    const oldestHeld = this.unsettledMessages().next().value as SourceMessage<P, ConsumeMessage> | undefined;
    let contiguous = oldestHeld === undefined || oldestHeld.handle.fields.deliveryTag > lastTag;
    for (const tag of this.#limbo) if (tag < lastTag) contiguous = false;
    if (contiguous) channel.ack(last, true);
    else for (const message of messages) channel.ack(message.handle);
  }

  protected override async interrupt(): Promise<void> {
    await this.#started;
    const tag = this.#consumerTag;
    this.#consumerTag = undefined;
    if (tag === undefined || this.#channel === undefined) return;
    // A half-open connection never answers the cancel: the close that follows takes the consumer down anyway.
    await withinAnswerTimeout(this.#channel.cancel(tag), () => new Error('cancel timed out')).catch(() =>
      this.#link.unanswered(),
    );
  }

  protected override async release(): Promise<void> {
    await this.interrupt();
    await this.#link.close();
  }

  /**
   * Opens a channel (waiting for the connection, re-opened if it was lost) and consumes on it;
   * resolves to whether it does. Never rejects: a failure destroys the source, unless a newer
   * channel has taken over (the connection was lost again meanwhile) or the source is stopping.
   */
  async #consume(): Promise<boolean> {
    const generation = ++this.#generation;
    try {
      const channel = await this.#link.channel(false, (why) => this.#closed(generation, why));
      this.#channel = channel;
      if (this.#assertQueue !== undefined) await channel.assertQueue(this.queue, this.#assertQueue);
      await channel.prefetch(this.maxUnacked);
      if (this.stopping) return false;
      const { consumerTag } = await channel.consume(this.queue, (message) => this.#delivered(message), {
        noAck: false,
      });
      this.#consumerTag = consumerTag;
      // stop() ran while the consumer was being set up (a reconnect, which it does not wait for): cancel it here.
      if (this.stopping && generation === this.#generation) {
        this.#consumerTag = undefined;
        await channel.cancel(consumerTag).catch(() => undefined);
      }
      return generation === this.#generation && !this.stopping;
    } catch (error) {
      if (!this.stopping && generation === this.#generation) this.destroy(error as Error);
      return false;
    }
  }

  #delivered(message: ConsumeMessage | null): void {
    // null: RabbitMQ cancelled the consumer (the queue was deleted).
    if (message === null) void this.stop();
    else {
      const delivery = { id: String(message.fields.deliveryTag), body: message.content, handle: message };
      this.receive({ ...delivery, redelivered: message.fields.redelivered });
    }
  }

  /**
   * The consuming channel closed. The broker closed it (an unknown queue): the source fails. Its
   * connection was lost: what it held is forgotten (requeued by RabbitMQ with the channel) and a
   * new channel consumes once the connection is back.
   */
  #closed(generation: number, { error, connectionLost }: ChannelClosed): void {
    if (generation !== this.#generation) return;
    this.#channel = undefined;
    this.#consumerTag = undefined;
    if (this.stopping) return;
    if (!connectionLost) {
      this.destroy(error ?? new Error(`The AMQP channel consuming "${this.queue}" was closed`));
      return;
    }
    const lostAt = performance.now();
    const forgotten = this.forgetUnsettled().length;
    this.emit('disconnect', { forgotten, cause: error });
    void this.#consume().then((consuming) => {
      if (consuming) this.emit('reconnect', { downMs: Math.round(performance.now() - lostAt) });
    });
  }

  /**
   * Resolves once RabbitMQ has processed what was sent on `channel` so far. AMQP 0-9-1 does not
   * confirm acks; a channel handles its methods in order, so the reply to a synchronous method
   * sent after them (`basic.qos` with the same prefetch: no change) says they arrived. Without
   * it an ack still in the client's buffer is lost with the process, and its message delivered
   * again although it was reported acked.
   */
  async #processed(channel: Channel): Promise<void> {
    await channel.prefetch(this.maxUnacked);
  }

  /** The consuming channel; acks must go on the channel the message came on. */
  #open(): Channel {
    if (this.#channel === undefined)
      throw new Error(`The AMQP channel consuming "${this.queue}" is closed; RabbitMQ requeued its unacked messages`);
    return this.#channel;
  }
}

function deadLetterOption(value: unknown): 'requeue' | 'reject' | { queue: string } {
  if (value === undefined || value === 'requeue' || value === 'reject') return value ?? 'requeue';
  if (value !== null && typeof value === 'object' && 'queue' in value)
    return { queue: stringOption('deadLetter.queue', value.queue) };
  throw invalidArgValue('The option "deadLetter"', "must be 'requeue', 'reject' or { queue }", value);
}
