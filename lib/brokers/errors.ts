/**
 * Errors of the broker edges (`sluice/nats`, `sluice/redis`, `sluice/amqp`). They live
 * beside the broker modules rather than in lib/errors.ts so that the package root never
 * names a broker; like every sluice error they carry a stable `code`.
 */

/**
 * Codes a {@link BrokerError} can carry. Branch on these, never on message text.
 *
 * @example
 * ```ts
 * if (error instanceof BrokerError && error.code === 'ERR_BROKER_CLIENT_MISSING') console.error(error.message);
 * ```
 */
export type BrokerErrorCode =
  | 'ERR_BROKER_CLIENT_MISSING'
  | 'ERR_BROKER_REFUSED'
  | 'ERR_BROKER_DECODE_FAILED'
  | 'ERR_BROKER_DEAD_LETTER'
  | 'ERR_BROKER_CONNECTION_LOST';

/** Which broker an error is about. */
export type BrokerName = 'nats' | 'redis' | 'amqp';

/** The broker's own name, for messages. */
const PRODUCT: Record<BrokerName, string> = { nats: 'NATS', redis: 'Redis', amqp: 'RabbitMQ' };

/**
 * An error at a broker edge: a client package that is not installed, a message the broker
 * refused, a payload that could not be decoded, a message sent to the dead-letter route, a
 * connection lost for good.
 *
 * @example
 * ```ts
 * const result = await sink(items, context);
 * for (const error of result.errors) if (error instanceof BrokerError) log.warn(error.code, error.messageId);
 * ```
 */
export class BrokerError extends Error {
  /** Always `'BrokerError'`. */
  override readonly name = 'BrokerError';
  /** What went wrong; stable, unlike the message. */
  readonly code: BrokerErrorCode;
  /** The broker the error is about. */
  readonly broker: BrokerName;
  /** The broker identity of the message concerned (entry id, stream sequence, delivery tag), when there is one. */
  readonly messageId: string | undefined;

  /** Use the static factories. */
  constructor(code: BrokerErrorCode, broker: BrokerName, message: string, messageId?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.broker = broker;
    this.messageId = messageId;
  }

  /** The broker's client package is not installed. */
  static clientMissing(broker: BrokerName, packages: readonly string[], cause: unknown): BrokerError {
    return new BrokerError(
      'ERR_BROKER_CLIENT_MISSING',
      broker,
      `sluice/${broker} needs the ${packages.map((name) => `"${name}"`).join(' and ')} package${packages.length > 1 ? 's' : ''}: npm install ${packages.join(' ')}`,
      undefined,
      cause,
    );
  }

  /** The broker refused (or did not confirm) one published message. */
  static refused(broker: BrokerName, what: string, cause?: unknown): BrokerError {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    return new BrokerError('ERR_BROKER_REFUSED', broker, `The broker refused ${what}${why}`, undefined, cause);
  }

  /** A consumed message's payload could not be decoded. */
  static decodeFailed(broker: BrokerName, messageId: string, cause: unknown): BrokerError {
    const why = cause instanceof Error ? cause.message : String(cause);
    return new BrokerError(
      'ERR_BROKER_DECODE_FAILED',
      broker,
      `The payload of message ${messageId} could not be decoded: ${why}`,
      messageId,
      cause,
    );
  }

  /** Why a message was moved to the dead-letter route (stored with it where the broker has headers). */
  static deadLettered(broker: BrokerName, messageId: string, cause: unknown): BrokerError {
    const why = cause instanceof Error ? cause.message : String(cause);
    return new BrokerError(
      'ERR_BROKER_DEAD_LETTER',
      broker,
      `Message ${messageId} was dead-lettered: ${why}`,
      messageId,
      cause,
    );
  }

  /**
   * A connection was lost and not re-opened: `triedMs` is how long sluice tried (0: it did not try,
   * the reconnect timeout being 0); `given`: the connection was the caller's own, which sluice never
   * re-opens. `cause` is the last error seen (the loss, or the last failed attempt).
   */
  static connectionLost(
    broker: BrokerName,
    how: { given: true } | { given: false; triedMs: number; attempts: number },
    cause: unknown,
  ): BrokerError {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    const what = how.given
      ? `The ${PRODUCT[broker]} connection passed as the "connection" option was lost; sluice re-opens only a connection it opened itself (give "url" instead)`
      : how.triedMs === 0
        ? `The connection to ${PRODUCT[broker]} was lost and not re-opened (the option "reconnectTimeoutMs" is 0)`
        : `The connection to ${PRODUCT[broker]} was lost and could not be re-opened within ${how.triedMs} ms (the option "reconnectTimeoutMs"; ${how.attempts} attempt${how.attempts === 1 ? '' : 's'})`;
    return new BrokerError('ERR_BROKER_CONNECTION_LOST', broker, `${what}${why}`, undefined, cause);
  }
}
