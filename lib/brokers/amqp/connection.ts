/**
 * The AMQP connection of a sink or source: the caller's own, or one opened (and closed) by
 * sluice, and the channels on it. `amqplib` is loaded here, the first time an edge is built.
 *
 * amqplib does not re-open a lost connection (recent versions can, but not the whole peer range
 * sluice supports), so a connection sluice opened is re-opened here: with backoff, for up to
 * `reconnectTimeoutMs`, after which every caller gets `ERR_BROKER_CONNECTION_LOST`. Channels are
 * not re-opened here: each edge opens its own again, since what a new channel means (a new
 * consumer, unsettled messages forgotten; confirms lost) is the edge's business.
 */
import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import { invalidArgType } from '../../errors';
import { ANSWER_TIMEOUT_MS, withinAnswerTimeout } from '../answer-timeout';
import { BrokerError } from '../errors';
import { integerOption, stringOption } from '../options';
import { loadClient } from '../peer';

/** Where to reach RabbitMQ: your own `amqplib` connection (left open), or a URL (a connection sluice opens and closes). */
export interface AmqpConnectionOptions {
  /**
   * A connection from `amqplib`'s `connect()`; sluice opens its own channels on it and never
   * closes it. Nor does it re-open it when it is lost: the edge then fails with
   * `ERR_BROKER_CONNECTION_LOST` (`reconnectTimeoutMs` does not apply).
   */
  connection?: ChannelModel;
  /**
   * An `amqp://` URL, used when `connection` is left out.
   * @default 'amqp://guest:guest@127.0.0.1:5672'
   */
  url?: string;
  /**
   * How long a lost connection (one sluice opened from `url`) is re-opened for, in ms: attempts
   * 100 ms apart doubling to 5 s, jittered. Meanwhile a source receives nothing and a sink's
   * flush waits; past it they fail with `ERR_BROKER_CONNECTION_LOST`. `0`: fail at once. The
   * first connection is not retried: a broker down at start fails the first call.
   * @default 30000
   */
  reconnectTimeoutMs?: number;
}

/** Why a channel closed, as {@link AmqpLink.channel} tells its owner. */
export interface ChannelClosed {
  /**
   * The channel's own error (the broker closed it: an unknown queue, an unknown delivery tag), or
   * when the connection was lost, the connection's last error if there was one.
   */
  error: Error | undefined;
  /** The connection under it was lost (not closed by sluice): the edge may open a new channel. */
  connectionLost: boolean;
}

type AmqpModule = typeof import('amqplib');

/** The first wait before re-opening a lost connection, and the most it grows to. */
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;

/** A connection opened on first use (and again when lost), and the channels sluice opened on it. */
export class AmqpLink {
  readonly #amqp: AmqpModule;
  readonly #given: ChannelModel | undefined;
  readonly #url: string;
  readonly #reconnectTimeoutMs: number;
  /** What `connection()` returns: the open connection, an opening or re-opening, or the failure that ended it. */
  #opened: Promise<ChannelModel> | undefined;
  /** The connection in use once open; undefined while (re-)opening. */
  #current: ChannelModel | undefined;
  /** A lost connection is being re-opened (`#opened` is that attempt). */
  #reopening = false;
  /** Bumped by `close()`: a re-opening of an older epoch stops, a channel closing then was closed on purpose. */
  #epoch = 0;
  /** Something was left unanswered past ANSWER_TIMEOUT_MS (see unanswered()). */
  #unanswered = false;
  /** Aborted by `close()`, to cut a backoff wait short. */
  #closing = new AbortController();
  readonly #channels = new Set<Channel>();
  /** Watches the caller's connection, so that losing it fails the edge with a coded error. */
  readonly #givenClosed = (error?: Error): void => this.#lose(this.#given!, error);
  /** The last 'error' of the connection sluice opened: amqplib reports a socket error before it closes the channels. */
  #lastError: Error | undefined;

  constructor(options: AmqpConnectionOptions) {
    this.#amqp = loadClient<AmqpModule>('amqp', 'amqplib', ['amqplib']);
    if (options.connection !== undefined && typeof options.connection?.createChannel !== 'function') {
      throw invalidArgType('The option "connection"', 'an amqplib connection', options.connection);
    }
    this.#given = options.connection;
    this.#url = options.url === undefined ? 'amqp://guest:guest@127.0.0.1:5672' : stringOption('url', options.url);
    this.#reconnectTimeoutMs = integerOption('reconnectTimeoutMs', options.reconnectTimeoutMs, 30_000, 0);
    this.#given?.on('close', this.#givenClosed);
  }

  /**
   * The connection: the caller's, or one opened now (once; a failed first attempt is retried on
   * the next call), or the one being re-opened after a loss (it waits for it).
   */
  connection(): Promise<ChannelModel> {
    if (this.#given !== undefined) {
      this.#opened ??= Promise.resolve(this.#given);
      return this.#opened;
    }
    this.#opened ??= this.#amqp.connect(this.#url).then(
      (connection) => this.#adopt(connection),
      (error: unknown) => {
        this.#opened = undefined;
        throw error;
      },
    );
    return this.#opened;
  }

  /**
   * A new channel (a confirm channel if asked) on the connection, once it is open. `onClose` is
   * told when the channel closes, and why; it is called synchronously, when the connection under
   * the channel is already known to be lost, so that a `connection()` call from it waits for the
   * re-opened one.
   */
  async channel(confirm: true, onClose: (why: ChannelClosed) => void): Promise<ConfirmChannel>;
  async channel(confirm: false, onClose: (why: ChannelClosed) => void): Promise<Channel>;
  async channel(confirm: boolean, onClose: (why: ChannelClosed) => void): Promise<Channel> {
    const connection = await this.connection();
    const epoch = this.#epoch;
    const channel = confirm ? await connection.createConfirmChannel() : await connection.createChannel();
    this.#channels.add(channel);
    let failure: Error | undefined;
    channel.on('error', (error: Error) => (failure = error));
    channel.on('close', () => {
      this.#channels.delete(channel);
      // amqplib closes every channel before it reports the connection closed. A channel that closes
      // without an error of its own, and not because sluice closed the link, went with its connection.
      const connectionLost = failure === undefined && epoch === this.#epoch;
      if (connectionLost) this.#lose(connection, undefined);
      onClose({ error: connectionLost ? this.#lastError : failure, connectionLost });
    });
    return channel;
  }

  /**
   * Closes the channels sluice opened, and the connection if sluice opened it; stops a re-opening.
   * Each close waits for the server's close-ok at most ANSWER_TIMEOUT_MS: on a half-open connection
   * it never comes, so the channel is left to its connection, and a connection sluice opened has its
   * socket destroyed.
   */
  async close(): Promise<void> {
    this.#epoch++;
    this.#closing.abort();
    this.#closing = new AbortController();
    for (const channel of [...this.#channels]) {
      if (this.#unanswered) break;
      await withinAnswerTimeout(channel.close(), () => new Error('channel close timed out')).catch(() =>
        this.unanswered(),
      );
    }
    if (this.#given !== undefined) {
      this.#given.off('close', this.#givenClosed);
      return;
    }
    // A re-opening is not waited for (an attempt can take long): it closes what it opens, seeing the new epoch.
    const opened = this.#reopening ? undefined : this.#opened;
    this.#reopening = false;
    this.#opened = undefined;
    this.#current = undefined;
    const connection = await opened?.catch(() => undefined);
    if (connection === undefined) return;
    if (this.#unanswered) destroySocket(connection);
    else {
      await withinAnswerTimeout(connection.close(), () => new Error('connection close timed out')).catch(() =>
        destroySocket(connection),
      );
    }
  }

  /** The server left something unanswered past ANSWER_TIMEOUT_MS: close() then waits for nothing more. */
  unanswered(): void {
    this.#unanswered = true;
  }

  /** A connection sluice opened, now open: watched for its loss. */
  #adopt(connection: ChannelModel): ChannelModel {
    this.#current = connection;
    this.#reopening = false;
    this.#lastError = undefined;
    // A loss is reported through the 'close' that follows; never let an 'error' crash the process.
    connection.on('error', (error: Error) => (this.#lastError = error));
    connection.on('close', (error?: Error) => this.#lose(connection, error));
    return connection;
  }

  /** `connection` is gone: unless sluice closed it, or already knew, start re-opening (or fail for good). */
  #lose(connection: ChannelModel, cause: Error | undefined): void {
    if (this.#given !== undefined) {
      this.#opened = settledFailure(BrokerError.connectionLost('amqp', { given: true }, cause));
      return;
    }
    if (connection !== this.#current) return;
    this.#current = undefined;
    this.#reopening = true;
    this.#opened = this.#reopen(this.#epoch, cause ?? this.#lastError);
    // Nobody may be waiting (an idle sink): a failure then is reported to the next caller, not as unhandled.
    this.#opened.catch(() => undefined);
  }

  /** Re-opens the connection with backoff until it opens, `close()` is called or the timeout passes. */
  async #reopen(epoch: number, cause: Error | undefined): Promise<ChannelModel> {
    const timeoutMs = this.#reconnectTimeoutMs;
    const deadline = performance.now() + timeoutMs;
    let last: unknown = cause ?? new Error('connection closed');
    let delay = FIRST_DELAY_MS;
    let attempts = 0;
    while (timeoutMs > 0) {
      const left = deadline - performance.now();
      // One last attempt at the deadline rather than none after the last wait.
      await backoff(Math.min(jittered(delay), Math.max(0, left)), this.#closing.signal);
      if (epoch !== this.#epoch) throw new Error('The AMQP connection was closed while it was being re-opened');
      attempts++;
      try {
        const connection = await this.#amqp.connect(this.#url, {
          timeout: Math.max(FIRST_DELAY_MS, Math.ceil(deadline - performance.now())),
        });
        if (epoch !== this.#epoch) {
          await connection.close().catch(() => undefined);
          throw new Error('The AMQP connection was closed while it was being re-opened');
        }
        return this.#adopt(connection);
      } catch (error) {
        if (epoch !== this.#epoch) throw error;
        last = error;
      }
      if (performance.now() >= deadline) break;
      delay = Math.min(MAX_DELAY_MS, delay * 2);
    }
    throw BrokerError.connectionLost('amqp', { given: false, triedMs: timeoutMs, attempts }, last);
  }
}

/** Between half and all of `ms` ("equal jitter"): consumers cut off together do not all come back at once. */
function jittered(ms: number): number {
  return ms / 2 + (Math.random() * ms) / 2;
}

/** Waits `ms`, or less if `signal` aborts (the caller then checks why). */
function backoff(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A rejected promise already marked as handled: the failure is for whoever asks next. */
function settledFailure(error: Error): Promise<never> {
  const failed = Promise.reject(error);
  failed.catch(() => undefined);
  return failed;
}

/**
 * Destroys the socket under an amqplib connection whose close was not answered (amqplib has no call
 * for it: `ChannelModel.connection.stream` is its own, undocumented). Without it the socket of a
 * half-open connection would stay open, and keep the process alive. With an error: amqplib learns
 * of a socket's end from its 'error' or 'end', not from 'close', and only then stops its heartbeat
 * timers (which kept the process alive for two heartbeat intervals, two minutes with RabbitMQ's
 * default) and closes the connection ('close' comes after sluice has let it go: nothing re-opens it).
 */
function destroySocket(connection: ChannelModel): void {
  const internal = connection as unknown as { connection?: { stream?: { destroy?: (error?: Error) => void } } };
  internal.connection?.stream?.destroy?.(
    new Error(`RabbitMQ did not answer within ${ANSWER_TIMEOUT_MS} ms; sluice destroyed the socket`),
  );
}
