/**
 * The CLI's side of the broker edges: opens the connection itself (so that a broker that is
 * down at start is one line and exit 2, credentials masked), hands it to the library's
 * sources and sinks (lib/brokers/), and watches it: a connection lost for longer than
 * `--reconnect-timeout` gives the run up. The drivers stay optional peers, loaded here.
 * RabbitMQ is the exception: amqplib does not reconnect, the library's AMQP edges do, so they
 * open their own connections (from the URL, with `--reconnect-timeout`) and report when they
 * gave up; the CLI's own connection only checks the broker and declares the queue.
 *
 * Owns: connection options (reconnect with backoff), the loss watchdog, the CLI's dead-letter
 * route (see {@link DeadLetterRoute}). Does not own batching, acking or the bound (endToEnd's).
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import type { Redis as RedisClient } from 'ioredis';
import { AmqpSource } from '../../brokers/amqp/source';
import { amqpSink } from '../../brokers/amqp/sink';
import { BrokerError } from '../../brokers/errors';
import { JetStreamSource } from '../../brokers/nats/source';
import { loadNats } from '../../brokers/nats/connection';
import { natsSink } from '../../brokers/nats/sink';
import { loadClient } from '../../brokers/peer';
import { abandonRedis, closeRedis } from '../../brokers/redis/connection';
import { RedisStreamSource, type RedisEntryFields } from '../../brokers/redis/source';
import { redisStreamSink } from '../../brokers/redis/sink';
import type { BrokerSource, Sent, SourceMessage } from '../../brokers/source';
import type { BrokerSink } from '../../brokers/sink';
import type { FlushFunction } from '../../types';
import type { Delivery } from '../../brokers/message';
import { CliError, ExitCode, clientMissing, describe, errorCode, type Peer } from '../errors';
import { maskSecrets, type BrokerUrl } from './url';

/**
 * Where the CLI sends a message the sluice gave up on: returns true when it was written to the
 * rejects file (the database refused it: it is then acked), false when it must be delivered
 * again (it was never judged: the database or the run was lost).
 */
export type DeadLetterRoute = (messages: SourceMessage<unknown, unknown>[], reason: unknown) => boolean;

/** What a source needs from the run. */
export interface SourceSettings<P> {
  maxUnacked: number;
  decode: (body: Buffer, delivery: Readonly<Delivery<unknown>>) => P;
  deadLetters: DeadLetterHooks;
}

/** The CLI's dead-letter route, and how it reports what it did (endToEnd counts them all as dead-lettered). */
export interface DeadLetterHooks {
  route: DeadLetterRoute;
  /** `count` dead letters were acked (their reject lines written) or handed back to the broker. */
  settled(how: 'acked' | 'handedBack', count: number): void;
}

/** An open broker connection, for a source or a sink. */
export interface BrokerLink {
  readonly url: BrokerUrl;
  /** Checks that what `ingest` consumes exists (a JetStream stream); a CliError (exit 2) if not. */
  checkSource(): Promise<void>;
  source<P>(settings: SourceSettings<P>): BrokerSource<P>;
  sink<T>(options: { encode: (item: T) => Buffer; messageId: (item: T) => string }): Promise<BrokerSink<T>>;
  /** Called once when the connection has been down longer than the reconnect timeout. */
  onLost(listener: (error: Error) => void): void;
  close(): Promise<void>;
}

/** Each broker's client packages: what a missing one's message says to install (with their ranges). */
const CLIENTS: Record<BrokerUrl['kind'], readonly Peer[]> = {
  nats: ['@nats-io/transport-node', '@nats-io/jetstream'],
  redis: ['ioredis'],
  amqp: ['amqplib'],
};

/** How long one connection attempt at start may take. */
const CONNECT_TIMEOUT_MS = 5_000;

/** Opens a connection to `url`; a broker that cannot be reached is a CliError (exit 2) naming it. */
export async function openBroker(url: BrokerUrl, reconnectTimeoutMs: number, purpose: string): Promise<BrokerLink> {
  const open = { nats: openNats, redis: openRedis, amqp: openAmqp }[url.kind];
  try {
    return await open(url, new Watchdog(reconnectTimeoutMs, url));
  } catch (error) {
    if (error instanceof BrokerError && error.code === 'ERR_BROKER_CLIENT_MISSING')
      throw clientMissing(purpose, CLIENTS[url.kind], error);
    if (error instanceof CliError) throw error;
    throw new CliError(
      ExitCode.USAGE,
      `cannot connect to ${url.display}: ${brokerMessage(error, url)}`,
      error,
      'ERR_CLI_BROKER_UNREACHABLE',
    );
  }
}

/** Parts of an AggregateError shown in a message; the rest are counted. */
const SHOWN_PARTS = 3;

/**
 * A driver's error as one line, with the URL's secrets masked. An AggregateError (a connection
 * tried on several addresses; a partial failure's per-message refusals) shows its parts, so that
 * a reject line says what the broker said, not only how many errors there were.
 */
export function brokerMessage(error: unknown, url: BrokerUrl): string {
  let text = describe(error) || errorCode(error) || 'unknown error';
  if (error instanceof AggregateError && error.errors.length > 0) {
    const parts = error.errors.slice(0, SHOWN_PARTS).map((part) => describe(part) || errorCode(part));
    const more = error.errors.length - SHOWN_PARTS;
    const joined = parts.join('; ') + (more > 0 ? `; and ${more} more` : '');
    text = error.message === '' ? joined : `${error.message}: ${joined}`;
  }
  return maskSecrets(text, url);
}

/** Gives the run up when the connection stays down longer than the timeout; a reconnect in time resets it. */
class Watchdog {
  readonly timeoutMs: number;
  readonly #url: BrokerUrl;
  #timer: NodeJS.Timeout | undefined;
  #listener: ((error: Error) => void) | undefined;
  #fired = false;
  /** Cuts the connection for good before the run is told, so that commands waiting for a reconnect fail now. */
  sever: () => void = () => undefined;

  constructor(timeoutMs: number, url: BrokerUrl) {
    this.timeoutMs = timeoutMs;
    this.#url = url;
  }

  listen(listener: (error: Error) => void): void {
    this.#listener = listener;
  }

  down(why: string): void {
    if (this.#timer !== undefined || this.#fired) return;
    this.#timer = setTimeout(() => this.expired(why), this.timeoutMs);
    this.#timer.unref();
  }

  /** The connection stayed down past the timeout (the watchdog's timer, or a client that timed itself out): give up. */
  expired(why: string): void {
    if (this.#fired) return;
    this.#fired = true;
    this.up();
    this.sever();
    this.#listener?.(
      new CliError(
        ExitCode.FAILED,
        `lost ${this.#url.display} for more than ${this.timeoutMs} ms (--reconnect-timeout): ${maskSecrets(why, this.#url)}`,
        undefined,
        'ERR_CLI_BROKER_LOST',
      ),
    );
  }

  up(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  stop(): void {
    this.up();
    this.#listener = undefined;
  }
}

async function openNats(url: BrokerUrl, watchdog: Watchdog): Promise<BrokerLink> {
  const { transport } = loadNats();
  const auth =
    url.password !== ''
      ? { user: url.username, pass: url.password }
      : url.username !== ''
        ? { token: url.username }
        : {};
  const connection = (await transport.connect({
    servers: `${url.host}:${url.port}`,
    ...auth,
    timeout: CONNECT_TIMEOUT_MS,
    // Reconnect for ever with backoff (1 s apart, jittered): the watchdog decides when to give up.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    waitOnFirstConnect: false,
    // No async stack trace captured per request: each ack (ackAck) and publish is a request, and the
    // trace (an Error made up front) cost more CPU than the rest of the consumer together. Errors
    // still say what failed; only the client's "started at" stack is left out.
    noAsyncTraces: true,
  })) as NatsConnection;
  watchdog.sever = () => void connection.close().catch(() => undefined);
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === 'disconnect') watchdog.down('disconnected');
      else if (status.type === 'reconnect') watchdog.up();
    }
  })().catch(() => undefined);
  return {
    url,
    checkSource: async () => {
      const { jetstream } = loadNats();
      try {
        await (await jetstream.jetstreamManager(connection)).streams.info(url.name);
      } catch (error) {
        throw new CliError(
          ExitCode.USAGE,
          `no JetStream stream ${url.name} on ${url.display}: ${brokerMessage(error, url)}`,
          error,
        );
      }
    },
    source: <P>(settings: SourceSettings<P>) =>
      new CliJetStreamSource<P>(
        {
          connection,
          stream: url.name,
          consumer: url.consumer,
          maxUnacked: settings.maxUnacked,
          decode: settings.decode,
          // Each process bounds itself (maxUnacked); the server's default of 1000 pending per durable would
          // cap all consumers sharing it together.
          create: { max_ack_pending: -1, ...(url.ackWaitMs === undefined ? {} : { ack_wait: url.ackWaitMs * 1e6 }) },
        },
        settings.deadLetters,
      ),
    sink: async <T>(options: { encode: (item: T) => Buffer; messageId: (item: T) => string }) => {
      const { jetstream } = loadNats();
      const stream = await jetstream
        .jetstreamManager(connection)
        .then((manager) => manager.streams.find(url.name))
        .catch(() => undefined);
      if (stream === undefined)
        throw new CliError(
          ExitCode.USAGE,
          `no JetStream stream on ${url.display} captures the subject ${url.name}: create one first (e.g. nats stream add --subjects ${url.name})`,
        );
      return natsSink<T>({ connection, subject: url.name, encode: options.encode, msgId: options.messageId });
    },
    onLost: (listener) => watchdog.listen(listener),
    close: async () => {
      watchdog.stop();
      if (!connection.isClosed()) await connection.drain().catch(() => connection.close());
    },
  };
}

async function openRedis(url: BrokerUrl, watchdog: Watchdog): Promise<BrokerLink> {
  const { Redis } = loadClient<typeof import('ioredis')>('redis', 'ioredis', ['ioredis']);
  let lastError: unknown;
  let ready = false;
  const client: RedisClient = new Redis({
    host: url.host,
    port: url.port,
    db: url.db,
    ...(url.username === '' ? {} : { username: url.username }),
    ...(url.password === '' ? {} : { password: url.password }),
    ...(url.server.startsWith('rediss:') ? { tls: {} } : {}),
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // At start: fail at once (exit 2). Later: reconnect with backoff (100 ms doubling to 2 s) while
    // commands wait for it; the watchdog decides when to give up.
    retryStrategy: (times: number) => (ready ? Math.min(2_000, 100 * 2 ** Math.min(times, 5)) : null),
    maxRetriesPerRequest: null,
    // A safety net: giving up fails the commands the client holds (abandonRedis), through ioredis
    // internals; should those change, a flush awaiting its XACK still does not wait for ever. Above the
    // source's blocking read (2 s) and the reconnect timeout, so a healthy run never meets it.
    commandTimeout: watchdog.timeoutMs + 10_000,
  });
  client.on('error', (error: unknown) => (lastError = error));
  // Commands wait for a reconnect (maxRetriesPerRequest: null); giving up must fail them, or a nack would wait for ever.
  watchdog.sever = () => abandonRedis(client);
  client.on('close', () => ready && watchdog.down(lastError === undefined ? 'connection closed' : describe(lastError)));
  client.on('ready', () => watchdog.up());
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw lastError ?? error;
  }
  ready = true;
  return {
    url,
    // The group (and the stream) are created by the source when missing.
    checkSource: async () => undefined,
    source: <P>(settings: SourceSettings<P>) =>
      new CliRedisSource<P>(
        {
          client,
          stream: url.name,
          group: url.group,
          consumer: url.consumer,
          maxUnacked: settings.maxUnacked,
          decode: settings.decode,
          ...(url.claimIdleMs === undefined ? {} : { claimIdleMs: url.claimIdleMs }),
        },
        settings.deadLetters,
      ),
    sink: async <T>(options: { encode: (item: T) => Buffer }) =>
      redisStreamSink<T>({ client, stream: url.name, encode: options.encode }),
    onLost: (listener) => watchdog.listen(listener),
    close: async () => {
      watchdog.stop();
      ready = false;
      await closeRedis(client);
    },
  };
}

async function openAmqp(url: BrokerUrl, watchdog: Watchdog): Promise<BrokerLink> {
  const amqp = loadClient<typeof import('amqplib')>('amqp', 'amqplib', ['amqplib']);
  const server = amqpServerUrl(url);
  // A first connection says at once whether the broker is there (exit 2 if not), and declares the
  // queue durable if missing (both commands), so that publish and ingest agree on it. The source
  // and sink then open their own from the URL: a connection sluice opens is re-opened when lost
  // (amqplib does not), with backoff, for --reconnect-timeout.
  const probe: ChannelModel = await amqp.connect(server, { timeout: CONNECT_TIMEOUT_MS });
  probe.on('error', () => undefined);
  try {
    const channel = await probe.createChannel();
    await channel.assertQueue(url.name, { durable: true });
  } finally {
    await probe.close().catch(() => undefined);
  }
  const edges = { url: server, reconnectTimeoutMs: watchdog.timeoutMs };
  const closers: (() => Promise<void>)[] = [];
  return {
    url,
    // The queue was declared above.
    checkSource: async () => undefined,
    source: <P>(settings: SourceSettings<P>) => {
      const source = new CliAmqpSource<P>(
        { ...edges, queue: url.name, maxUnacked: settings.maxUnacked, decode: settings.decode },
        settings.deadLetters,
      );
      source.on('error', (error: unknown) => giveUpIfLost(error, watchdog));
      // The run closes it once settled; this closes it too if the run never started.
      closers.push(() => source.close().catch(() => undefined));
      return source;
    },
    sink: async <T>(options: { encode: (item: T) => Buffer; messageId: (item: T) => string }) => {
      const sink = amqpSink<T>({
        ...edges,
        routingKey: url.name,
        encode: options.encode,
        messageId: options.messageId,
      });
      closers.push(() => sink.close());
      const flush: FlushFunction<T> = async (items, context) => {
        try {
          return await sink(items, context);
        } catch (error) {
          giveUpIfLost(error, watchdog);
          throw error;
        }
      };
      return Object.assign(flush, { close: () => sink.close() });
    },
    onLost: (listener) => watchdog.listen(listener),
    close: async () => {
      watchdog.stop();
      for (const close of closers) await close();
    },
  };
}

/** The URL the AMQP edges connect to: credentials (guest by default), host, port and vhost. */
function amqpServerUrl(url: BrokerUrl): string {
  const credentials = `${encodeURIComponent(url.username || 'guest')}:${encodeURIComponent(url.password || 'guest')}`;
  const host = url.host.includes(':') ? `[${url.host}]` : url.host;
  const protocol = url.server.startsWith('amqps:') ? 'amqps' : 'amqp';
  return `${protocol}://${credentials}@${host}:${url.port}/${encodeURIComponent(url.vhost)}`;
}

/** An AMQP edge that could not re-open its connection within --reconnect-timeout gives the run up, like the other brokers' watchdog. */
function giveUpIfLost(error: unknown, watchdog: Watchdog): void {
  if (error instanceof BrokerError && error.code === 'ERR_BROKER_CONNECTION_LOST')
    watchdog.expired(describe(error.cause ?? error));
}

/*
 * The library's sources with the CLI's dead-letter route: a message the database refused is
 * written to the rejects file and then acked; one never judged is delivered again. (The
 * library's own routes would nak it for ever, or leave it pending.)
 */

class CliJetStreamSource<P> extends JetStreamSource<P> {
  readonly #hooks: DeadLetterHooks;
  constructor(options: ConstructorParameters<typeof JetStreamSource<P>>[0], hooks: DeadLetterHooks) {
    super(options);
    this.#hooks = hooks;
  }
  protected override async reject(messages: SourceMessage<P, JsMsg>[], reason: unknown): Promise<void> {
    await routeDeadLetters(this.#hooks, messages, reason, this.acknowledge.bind(this), this.redeliver.bind(this));
  }
}

class CliRedisSource<P> extends RedisStreamSource<P> {
  readonly #hooks: DeadLetterHooks;
  constructor(options: ConstructorParameters<typeof RedisStreamSource<P>>[0], hooks: DeadLetterHooks) {
    super(options);
    this.#hooks = hooks;
  }
  protected override async reject(messages: SourceMessage<P, RedisEntryFields>[], reason: unknown): Promise<void> {
    await routeDeadLetters(this.#hooks, messages, reason, this.acknowledge.bind(this), this.redeliver.bind(this));
  }
}

class CliAmqpSource<P> extends AmqpSource<P> {
  readonly #hooks: DeadLetterHooks;
  constructor(options: ConstructorParameters<typeof AmqpSource<P>>[0], hooks: DeadLetterHooks) {
    super(options);
    this.#hooks = hooks;
  }
  protected override async reject(
    messages: SourceMessage<P, ConsumeMessage>[],
    reason: unknown,
    sent?: Sent,
  ): Promise<void> {
    await routeDeadLetters(
      this.#hooks,
      messages,
      reason,
      (batch) => this.acknowledge(batch, sent),
      (batch) => this.redeliver(batch, sent),
    );
  }
}

/** Writes the rejects and acks, or hands back; reports which once the broker call succeeded. */
async function routeDeadLetters<M extends SourceMessage<unknown, unknown>>(
  hooks: DeadLetterHooks,
  messages: M[],
  reason: unknown,
  acknowledge: (messages: M[]) => Promise<void>,
  redeliver: (messages: M[]) => Promise<void>,
): Promise<void> {
  if (hooks.route(messages, reason)) {
    await acknowledge(messages);
    hooks.settled('acked', messages.length);
  } else {
    await redeliver(messages);
    hooks.settled('handedBack', messages.length);
  }
}
