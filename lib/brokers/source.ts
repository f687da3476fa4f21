/**
 * The shape every broker source shares: an object-mode Readable of messages that
 * never holds more than `maxUnacked` of them unsettled, and settles each one once.
 *
 * Owns: the count of messages received and not yet settled (the bound), the map of
 * unsettled messages by broker identity, the pull loop and stop/close. Does not own
 * the broker calls: a subclass pulls, acks, nacks, dead-letters and releases.
 */
import { Readable } from 'node:stream';
import { BrokerError, type BrokerName } from './errors';
import { SourceMessage, type BrokerMessage, type Delivery } from './message';
import { asBuffer, decodeJson, functionOption, integerOption } from './options';

export { SourceMessage, type BrokerMessage, type Delivery } from './message';

/**
 * Given to a settle hook (`acknowledge`, `redeliver`, `reject`): a subclass calls it once the
 * broker call has been sent, before the broker confirmed it, to free the messages' room then. A
 * broker that pushes (RabbitMQ) refills its window as soon as an ack reaches it, ahead of any
 * confirmation; counting the messages until then would let `unacked` exceed `maxUnacked`. Pull
 * sources leave it uncalled: their room is freed when the hook resolves.
 */
export type Sent = () => void;

/** Options every source takes. */
export interface SourceOptions<P> {
  /**
   * Messages held unsettled at most: received (in this stream's queue, in a sluice, in a flush)
   * and not yet acked, nacked or dead-lettered. Each fetch asks the broker for the free space
   * left under it, so the consumer never pulls more than it can hold.
   * @default 1000
   */
  maxUnacked?: number;
  /**
   * Turns a payload's bytes into the message's `payload`. A throw sends the message to the
   * dead-letter route (with `ERR_BROKER_DECODE_FAILED`) and emits `'invalid'`. The second
   * argument is the delivery (its broker `id`, `redelivered`, and the client's own message as
   * `handle`), for a payload that should carry its broker identity.
   * @default JSON.parse of the UTF-8 text
   */
  decode?: (body: Buffer, delivery: Readonly<Delivery<unknown>>) => P;
}

/**
 * An object-mode Readable of {@link BrokerMessage}s with acknowledgement: the base of
 * `RedisStreamSource`, `JetStreamSource` and `AmqpSource`.
 *
 * @example
 * ```ts
 * const run = endToEnd(source, insertRows, { batchSize: 500 });
 * await run.done;
 * ```
 */
export abstract class BrokerSource<P, H = unknown> extends Readable {
  /** The most messages held unsettled at once. */
  readonly maxUnacked: number;
  readonly #decode: (body: Buffer, delivery: Readonly<Delivery<unknown>>) => P;
  readonly #broker: BrokerName;
  /** Received and not yet settled, by broker identity; a message leaves it when its settling starts. */
  readonly #unsettled = new Map<string, SourceMessage<P, H>>();
  /**
   * Received and whose settling has not completed (`#unsettled.size` plus settles in flight), less
   * the settles a subclass reported sent (see {@link Sent}). Never above maxUnacked.
   */
  #outstanding = 0;
  #pumping = false;
  #stopping = false;
  #ended = false;
  /** Wakes a pull loop waiting for room; undefined when nobody waits. */
  #wake: (() => void) | undefined;

  protected constructor(broker: BrokerName, options: SourceOptions<P>) {
    const maxUnacked = integerOption('maxUnacked', options.maxUnacked, 1000, 1);
    // Read-ahead of a quarter of the bound: the next fetch overlaps the sluice's flush.
    super({ objectMode: true, highWaterMark: Math.max(1, Math.ceil(maxUnacked / 4)), autoDestroy: false });
    this.maxUnacked = maxUnacked;
    this.#broker = broker;
    this.#decode = functionOption('decode', options.decode, decodeJson as (body: Buffer) => P);
  }

  /** Messages received and not yet settled (acked, nacked or dead-lettered). */
  get unacked(): number {
    return this.#outstanding;
  }

  /**
   * Whether `message` is held here unsettled: false once its settling started, and for one the
   * source forgot because the broker took it back (an AMQP channel lost with its connection). An
   * `ack()` or `nack()` of a message not held does nothing.
   */
  holds(message: BrokerMessage<P>): boolean {
    return this.#unsettled.get(message.id) === message;
  }

  /** Pull-based sources fetch at most `max` messages; push-based ones (AMQP) leave it out and call `receive()`. */
  protected pull?(max: number): Promise<Iterable<Delivery<H>> | AsyncIterable<Delivery<H>>>;
  /** Tells the broker these messages are stored. */
  protected abstract acknowledge(messages: SourceMessage<P, H>[], sent?: Sent): Promise<void>;
  /** Tells the broker to deliver these messages again. */
  protected abstract redeliver(messages: SourceMessage<P, H>[], sent?: Sent): Promise<void>;
  /** Sends these messages to the dead-letter route (a configured target, else the broker's own reject). */
  protected abstract reject(messages: SourceMessage<P, H>[], reason: unknown, sent?: Sent): Promise<void>;
  /** Stops a pull in progress (or the push consumer) so that `stop()` does not wait for a long poll. */
  protected abstract interrupt(): Promise<void>;
  /** Closes what the source opened; called once, from `destroy()`/`close()`. */
  protected abstract release(): Promise<void>;

  /** Acks `messages` (those of this source not yet settled) in one broker call where the broker allows. */
  ack(messages: readonly BrokerMessage<P>[]): Promise<void> {
    return this.#settle(messages, (batch, sent) => this.acknowledge(batch, sent));
  }

  /** Nacks `messages`: the broker delivers them again. */
  nack(messages: readonly BrokerMessage<P>[]): Promise<void> {
    return this.#settle(messages, (batch, sent) => this.redeliver(batch, sent));
  }

  /** Gives up on `messages`: sends them to the dead-letter route, never acks them as stored. */
  deadLetter(messages: readonly BrokerMessage<P>[], reason: unknown): Promise<void> {
    return this.#settle(messages, (batch, sent) => this.reject(batch, reason, sent));
  }

  /**
   * Stops fetching; the stream ends once a fetch in progress has been pushed. Messages
   * already received can still be acked: close the source after they are settled.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#wake?.();
    await this.interrupt();
    if (!this.#pumping) this.#end();
  }

  /**
   * Stops, nacks the messages still unsettled (the broker delivers them again) and closes the
   * connections the source opened. `destroy()` does the same.
   */
  async close(): Promise<void> {
    await this.stop();
    if (this.destroyed) return;
    await new Promise<void>((resolve) => this.once('close', () => resolve()).destroy());
  }

  /** For push-based subclasses: one message arrived. Returns what `push()` returned. */
  protected receive(delivery: Delivery<H>): boolean {
    const held = this.#unsettled.get(delivery.id);
    if (held !== undefined) {
      // Delivered again while still held here (a claim, a redelivery): keep one message, newest handle.
      held.handle = delivery.handle;
      return true;
    }
    this.#outstanding++;
    let payload: P;
    try {
      payload = this.#decode(asBuffer(delivery.body), delivery);
    } catch (cause) {
      const message = new SourceMessage<P, H>(this, delivery, undefined as P);
      this.#unsettled.set(delivery.id, message);
      const error = BrokerError.decodeFailed(this.#broker, delivery.id, cause);
      this.emit('invalid', error, message);
      this.deadLetter([message], error).catch((failure: unknown) => this.destroy(failure as Error));
      return true;
    }
    const message = new SourceMessage(this, delivery, payload);
    this.#unsettled.set(delivery.id, message);
    return this.push(message);
  }

  /**
   * For a subclass whose broker has already taken back every unsettled message (an AMQP channel
   * that closed requeued them, and its delivery tags mean nothing on the next one): drops them
   * without a broker call and frees their room. A later `ack()`/`nack()` of one is a no-op; the
   * broker delivers it again. Settles in flight are left to finish (their broker call fails).
   * Returns the messages forgotten.
   */
  protected forgetUnsettled(): SourceMessage<P, H>[] {
    const forgotten = [...this.#unsettled.values()];
    this.#unsettled.clear();
    this.#outstanding -= forgotten.length;
    this.#wake?.();
    return forgotten;
  }

  /** Messages received and not settled, oldest first (for progress acks and claim refreshes). */
  protected unsettledMessages(): IterableIterator<SourceMessage<P, H>> {
    return this.#unsettled.values();
  }

  /** Whether `stop()`, `close()` or `destroy()` was called. */
  protected get stopping(): boolean {
    return this.#stopping;
  }

  /** @internal */
  override _read(): void {
    if (this.#pumping || this.#stopping || this.pull === undefined) return;
    this.#pumping = true;
    this.#pump().then(
      () => {
        this.#pumping = false;
        if (this.#stopping) this.#end();
      },
      (error: unknown) => {
        this.#pumping = false;
        if (this.#stopping) this.#end();
        else this.destroy(error as Error);
      },
    );
  }

  /** @internal */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#stopping = true;
    this.#wake?.();
    // Hand back what is still unsettled (queued here, or read and never acked) so that the broker
    // redelivers it now rather than after a timeout; best effort, the broker redelivers it anyway.
    const left = [...this.#unsettled.values()];
    const handedBack = left.length === 0 ? Promise.resolve() : this.nack(left).catch(() => undefined);
    handedBack
      .then(() => this.release())
      .then(
        () => callback(error),
        (failure: unknown) => callback(error ?? (failure as Error)),
      );
  }

  /** Fetches while there is room and the stream wants more; returns when `push()` says stop. */
  async #pump(): Promise<void> {
    while (!this.#stopping) {
      const room = this.maxUnacked - this.#outstanding;
      if (room <= 0) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      let more = true;
      for await (const delivery of await this.pull!(room)) more = this.receive(delivery) && more;
      if (!more) return;
    }
  }

  async #settle(
    messages: readonly BrokerMessage<P>[],
    hook: (batch: SourceMessage<P, H>[], sent: Sent) => Promise<void>,
  ): Promise<void> {
    const batch: SourceMessage<P, H>[] = [];
    for (const message of messages) {
      const held = this.#unsettled.get(message.id);
      if (held !== message) continue;
      this.#unsettled.delete(message.id);
      batch.push(held);
    }
    if (batch.length === 0) return;
    let counted = true;
    const sent = (): void => {
      if (!counted) return;
      counted = false;
      this.#outstanding -= batch.length;
      this.#wake?.();
    };
    try {
      await hook(batch, sent);
    } finally {
      sent();
    }
  }

  #end(): void {
    if (this.#ended || this.destroyed) return;
    this.#ended = true;
    this.push(null);
  }
}
