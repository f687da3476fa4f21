/** The message a broker source emits, and its settling through the source that read it. */
import type { BrokerSource } from './source';
import { asBuffer } from './options';

/**
 * A message read from a broker. Settle it once: `ack()` after it is stored, `nack()` to have
 * it delivered again. Later calls on a settled message do nothing.
 *
 * @example
 * ```ts
 * for await (const message of source) {
 *   await db.insert(message.payload);
 *   await message.ack();
 * }
 * ```
 */
export interface BrokerMessage<P = unknown> {
  /** The decoded payload (JSON by default; see the source's `decode` option). */
  readonly payload: P;
  /** The broker identity: Redis entry id, JetStream stream sequence, AMQP delivery tag. */
  readonly id: string;
  /** Whether the broker delivered it before (to this consumer or to one that died). */
  readonly redelivered: boolean;
  /** The payload's bytes as the broker delivered them. */
  readonly body: Buffer;
  /** Stored: the broker forgets the message. Resolves once the broker was told. */
  ack(): Promise<void>;
  /** Not stored: the broker delivers it again (Redis: left pending for a claim; NATS: nak; AMQP: requeue). */
  nack(): Promise<void>;
}

/**
 * One message as a {@link BrokerSource} subclass hands it to the base (from `pull()` or to
 * `receive()`), for those who write an edge of their own.
 *
 * @example
 * ```ts
 * const delivery: Delivery<KafkaMessage> = { id: `${partition}:${offset}`, body: value, redelivered: false, handle: message };
 * ```
 */
export interface Delivery<H> {
  /** The broker identity, unique among the messages the source holds. */
  id: string;
  /** The payload's bytes, decoded by the source's `decode`. */
  body: Buffer | Uint8Array;
  /** Whether the broker delivered it before. */
  redelivered: boolean;
  /** The client's own message object, kept as the message's `raw`. */
  handle: H;
}

/** A message of a {@link BrokerSource}; the broker client's own object is `raw`. */
export class SourceMessage<P, H> implements BrokerMessage<P> {
  readonly payload: P;
  readonly id: string;
  readonly redelivered: boolean;
  readonly body: Buffer;
  /** @internal The newest delivery's handle (a redelivery of a held message replaces it). */
  handle: H;
  readonly #source: BrokerSource<P, H>;

  /** @internal */
  constructor(source: BrokerSource<P, H>, delivery: Delivery<H>, payload: P) {
    this.#source = source;
    this.id = delivery.id;
    this.body = asBuffer(delivery.body);
    this.redelivered = delivery.redelivered;
    this.handle = delivery.handle;
    this.payload = payload;
  }

  /** The broker client's own message object (a JetStream `JsMsg`, an amqplib message; Redis: the entry's fields). */
  get raw(): H {
    return this.handle;
  }

  ack(): Promise<void> {
    return this.#source.ack([this]);
  }

  nack(): Promise<void> {
    return this.#source.nack([this]);
  }
}
