/**
 * The NATS connection of a sink or source: the caller's own, or one opened (and drained
 * and closed) by sluice. `@nats-io/transport-node` and `@nats-io/jetstream` are loaded here,
 * the first time an edge is built.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { invalidArgType } from '../../errors';
import { withinAnswerTimeout } from '../answer-timeout';
import { loadClient } from '../peer';

/** Where to reach NATS: your own connection (left open), or server URLs (a connection sluice opens and closes). */
export interface NatsConnectionOptions {
  /** A connection from `@nats-io/transport-node`'s `connect()`; sluice never closes it. */
  connection?: NatsConnection;
  /**
   * Server URLs, used when `connection` is left out.
   * @default 'nats://127.0.0.1:4222'
   */
  servers?: string | string[];
}

/**
 * `@nats-io/transport-node` re-exports all of `@nats-io/nats-core` (`headers()`, …) through a
 * subpath export that TypeScript's node10 resolution cannot see; the types come from nats-core.
 */
export type TransportModule = typeof import('@nats-io/transport-node') & typeof import('@nats-io/nats-core');
export type JetStreamModule = typeof import('@nats-io/jetstream');

const INSTALL = ['@nats-io/transport-node', '@nats-io/jetstream'] as const;

/** Both client packages; throws ERR_BROKER_CLIENT_MISSING naming both when either is missing. */
export function loadNats(): { transport: TransportModule; jetstream: JetStreamModule } {
  return {
    transport: loadClient<TransportModule>('nats', '@nats-io/transport-node', INSTALL),
    jetstream: loadClient<JetStreamModule>('nats', '@nats-io/jetstream', INSTALL),
  };
}

/** A connection opened on first use, with its JetStream contexts. */
export class NatsLink {
  readonly modules = loadNats();
  readonly #given: NatsConnection | undefined;
  readonly #servers: string | string[];
  #opened: Promise<NatsConnection> | undefined;

  constructor(options: NatsConnectionOptions) {
    if (options.connection !== undefined && typeof options.connection?.publish !== 'function') {
      throw invalidArgType('The option "connection"', 'a NATS connection', options.connection);
    }
    if (options.servers !== undefined && typeof options.servers !== 'string' && !Array.isArray(options.servers)) {
      throw invalidArgType('The option "servers"', 'a string or an array of strings', options.servers);
    }
    this.#given = options.connection;
    this.#servers = options.servers ?? 'nats://127.0.0.1:4222';
  }

  /** The connection: the caller's, or one opened now (once; a failed attempt is retried on the next call). */
  connection(): Promise<NatsConnection> {
    if (this.#given !== undefined) return Promise.resolve(this.#given);
    // noAsyncTraces: every publish ack and confirmed ack is a request, and by default the client makes an
    // Error up front for each to carry its stack; that cost more CPU than the rest of a consumer together.
    this.#opened ??= this.modules.transport
      .connect({ servers: this.#servers, noAsyncTraces: true })
      .catch((error: unknown) => {
        this.#opened = undefined;
        throw error;
      });
    return this.#opened;
  }

  async jetstream(): Promise<JetStreamClient> {
    return this.modules.jetstream.jetstream(await this.connection());
  }

  async manager(): Promise<JetStreamManager> {
    return this.modules.jetstream.jetstreamManager(await this.connection());
  }

  /**
   * Drains and closes the connection if sluice opened it; a drain the server does not answer within
   * ANSWER_TIMEOUT_MS (a half-open connection) is cut short by closing it.
   */
  async close(): Promise<void> {
    const opened = this.#opened;
    this.#opened = undefined;
    if (opened === undefined) return;
    const connection = await opened.catch(() => undefined);
    if (connection === undefined || connection.isClosed()) return;
    await withinAnswerTimeout(connection.drain(), () => new Error('drain timed out')).catch(() => connection.close());
  }
}
