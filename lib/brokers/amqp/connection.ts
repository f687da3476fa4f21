/**
 * The AMQP connection of a sink or source: the caller's own, or one opened (and closed) by
 * sluice, and the channels on it. `amqplib` is loaded here, the first time an edge is built.
 */
import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import { invalidArgType } from '../../errors';
import { stringOption } from '../options';
import { loadClient } from '../peer';

/** Where to reach RabbitMQ: your own `amqplib` connection (left open), or a URL (a connection sluice opens and closes). */
export interface AmqpConnectionOptions {
  /** A connection from `amqplib`'s `connect()`; sluice opens its own channels on it and never closes it. */
  connection?: ChannelModel;
  /**
   * An `amqp://` URL, used when `connection` is left out.
   * @default 'amqp://guest:guest@127.0.0.1:5672'
   */
  url?: string;
}

type AmqpModule = typeof import('amqplib');

/** A connection opened on first use, and the channels sluice opened on it. */
export class AmqpLink {
  readonly #amqp: AmqpModule;
  readonly #given: ChannelModel | undefined;
  readonly #url: string;
  #opened: Promise<ChannelModel> | undefined;
  readonly #channels = new Set<Channel>();

  constructor(options: AmqpConnectionOptions) {
    this.#amqp = loadClient<AmqpModule>('amqp', 'amqplib', ['amqplib']);
    if (options.connection !== undefined && typeof options.connection?.createChannel !== 'function') {
      throw invalidArgType('The option "connection"', 'an amqplib connection', options.connection);
    }
    this.#given = options.connection;
    this.#url = options.url === undefined ? 'amqp://guest:guest@127.0.0.1:5672' : stringOption('url', options.url);
  }

  /** The connection: the caller's, or one opened now (once; a failed attempt is retried on the next call). */
  connection(): Promise<ChannelModel> {
    if (this.#given !== undefined) return Promise.resolve(this.#given);
    this.#opened ??= this.#amqp.connect(this.#url).then(
      (connection) => {
        // An owned connection's 'error' is reported through its channels' failures; never let it crash the process.
        connection.on('error', () => undefined);
        return connection;
      },
      (error: unknown) => {
        this.#opened = undefined;
        throw error;
      },
    );
    return this.#opened;
  }

  /** A new channel (a confirm channel if asked); `onClose` is told when it closes, with the error if it failed. */
  async channel(confirm: true, onClose: (error?: Error) => void): Promise<ConfirmChannel>;
  async channel(confirm: false, onClose: (error?: Error) => void): Promise<Channel>;
  async channel(confirm: boolean, onClose: (error?: Error) => void): Promise<Channel> {
    const connection = await this.connection();
    const channel = confirm ? await connection.createConfirmChannel() : await connection.createChannel();
    this.#channels.add(channel);
    let failure: Error | undefined;
    channel.on('error', (error: Error) => (failure = error));
    channel.on('close', () => {
      this.#channels.delete(channel);
      onClose(failure);
    });
    return channel;
  }

  /** Closes the channels sluice opened, and the connection if sluice opened it. */
  async close(): Promise<void> {
    for (const channel of [...this.#channels]) await channel.close().catch(() => undefined);
    const opened = this.#opened;
    this.#opened = undefined;
    const connection = await opened?.catch(() => undefined);
    await connection?.close().catch(() => undefined);
  }
}
