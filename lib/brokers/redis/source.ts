/**
 * `RedisStreamSource`: a consumer of one Redis stream in a consumer group.
 *
 * Each fetch asks for at most the free space under `maxUnacked` (`COUNT`), from three places
 * in turn: this consumer's own pending entries left by an earlier run under the same name
 * (once, at start), entries idle for `claimIdleMs` on any consumer (`XAUTOCLAIM`: a dead
 * consumer's), then new entries (`XREADGROUP … >`, blocking up to `blockMs`). The blocking
 * read has a connection of its own, so acks never queue behind it.
 */
import type { Redis as RedisClient } from 'ioredis';
import { invalidArgType } from '../../errors';
import { BrokerError } from '../errors';
import { integerOption, optionsObject, stringOption } from '../options';
import { BrokerSource, type Delivery, type SourceMessage, type SourceOptions } from '../source';
import { abandonRedis, closeRedis, connectRedis, type RedisConnectionOptions } from './connection';

/** An entry's fields as Redis hands them back: a flat [name, value, name, value, …] list (`null`: deleted). */
export type RedisEntryFields = Buffer[] | null;
type Fields = RedisEntryFields;
type Entry = [id: Buffer, fields: Fields];

/**
 * Options of {@link RedisStreamSource}.
 *
 * @example
 * ```ts
 * new RedisStreamSource<Event>({ url, stream: 'events', group: 'loader', consumer: hostname(), maxUnacked: 5000 });
 * ```
 */
export interface RedisStreamSourceOptions<P> extends RedisConnectionOptions, SourceOptions<P> {
  /** The stream key. */
  stream: string;
  /** The consumer group; created (with the stream) when missing. */
  group: string;
  /** This consumer's name in the group. A restart under the same name first re-reads its own pending entries. */
  consumer: string;
  /**
   * The entry field that carries the payload.
   * @default 'payload'
   */
  field?: string;
  /**
   * Where a group created here starts: `'0'` = the whole stream, `'$'` = only new entries.
   * @default '0'
   */
  startId?: string;
  /**
   * How long one read waits for new entries before the loop looks again (claims, stop).
   * @default 2000
   */
  blockMs?: number;
  /**
   * An entry pending this long on any consumer is taken over (`XAUTOCLAIM`): its consumer is
   * presumed dead. Keep it above your longest flush. Also how often claims are looked for.
   * @default 60000
   */
  claimIdleMs?: number;
  /**
   * A stream that dead-lettered entries are appended to (fields `payload`, `id`, `stream`,
   * `error`), then acked in the same transaction. Without one they stay pending and are claimed
   * again after `claimIdleMs`: Redis has no way to refuse an entry, and an ack would say stored.
   * @default undefined
   */
  deadLetterStream?: string;
}

/**
 * An object-mode Readable of the entries of a Redis stream, read in a consumer group, each a
 * {@link BrokerMessage} whose `ack()` is an `XACK` and whose `nack()` makes it claimable at once.
 *
 * @example
 * ```ts
 * const source = new RedisStreamSource<Event>({ url: 'redis://127.0.0.1:6379', stream: 'events', group: 'db', consumer: 'a' });
 * const run = endToEnd(source, insertEvents, { batchSize: 500 });
 * await run.done;
 * ```
 */
export class RedisStreamSource<P = unknown> extends BrokerSource<P, Fields> {
  /** The stream key. */
  readonly stream: string;
  /** The consumer group. */
  readonly group: string;
  /** This consumer's name in the group. */
  readonly consumer: string;
  readonly #field: Buffer;
  readonly #blockMs: number;
  readonly #claimIdleMs: number;
  readonly #deadLetterStream: string | undefined;
  /** Commands (XACK, XAUTOCLAIM, dead letters); the caller's client or one owned here. */
  readonly #client: RedisClient;
  readonly #owned: boolean;
  /** The blocking XREADGROUP only; always owned here. */
  readonly #reader: RedisClient;
  #readerOpen = true;
  readonly #ready: Promise<void>;
  /** Where the re-read of this consumer's own pending entries stands; undefined once done. */
  #ownCursor: string | undefined = '0';
  /** Where the XAUTOCLAIM scan stands; '0-0' starts a new pass. */
  #claimCursor = '0-0';
  /** When the next claim pass may start (ms since the epoch). */
  #nextClaimAt = 0;

  constructor(options: RedisStreamSourceOptions<P>) {
    options = optionsObject('options', options);
    super('redis', options);
    this.stream = stringOption('stream', options.stream);
    this.group = stringOption('group', options.group);
    this.consumer = stringOption('consumer', options.consumer);
    this.#field = Buffer.from(options.field === undefined ? 'payload' : stringOption('field', options.field));
    const startId = options.startId === undefined ? '0' : stringOption('startId', options.startId);
    this.#blockMs = integerOption('blockMs', options.blockMs, 2000, 1);
    this.#claimIdleMs = integerOption('claimIdleMs', options.claimIdleMs, 60_000, 1);
    this.#deadLetterStream =
      options.deadLetterStream === undefined ? undefined : stringOption('deadLetterStream', options.deadLetterStream);
    if (options.client !== undefined && typeof options.client?.duplicate !== 'function') {
      throw invalidArgType('The option "client"', 'an ioredis client', options.client);
    }
    ({ client: this.#client, owned: this.#owned } = connectRedis(options));
    this.#reader = this.#client.duplicate();
    // Its failures reach the pull loop through the rejected XREADGROUP; without a listener ioredis
    // also prints each one as an "Unhandled error event".
    this.#reader.on('error', () => undefined);
    // A read whose reply was lost with the connection left its entries pending under this consumer,
    // unseen: read this consumer's own pending entries again after a reconnect (held ones are kept once).
    this.#reader.on('reconnecting', () => (this.#ownCursor = '0'));
    this.#ready = this.#createGroup(startId);
    // A failure here surfaces from the first pull; keep it from being an unhandled rejection meanwhile.
    this.#ready.catch(() => undefined);
  }

  protected override async pull(max: number): Promise<Delivery<Fields>[]> {
    await this.#ready;
    if (this.#ownCursor !== undefined) {
      const entries = await this.#read(this.#client, max, this.#ownCursor);
      const last = entries.at(-1);
      this.#ownCursor = last === undefined ? undefined : last[0].toString();
      const deliveries = await this.#deliveries(entries, true);
      if (deliveries.length > 0 || this.#ownCursor !== undefined) return deliveries;
    }
    if (Date.now() >= this.#nextClaimAt) {
      const claimed = await this.#claim(max);
      if (claimed.length > 0) return claimed;
    }
    return this.#deliveries(await this.#read(this.#reader, max, '>', this.#blockMs), false);
  }

  protected override async acknowledge(messages: SourceMessage<P, Fields>[]): Promise<void> {
    await this.#client.call('XACK', this.stream, this.group, ...messages.map((message) => message.id));
  }

  /**
   * Redis cannot refuse an entry: date its last delivery back to the epoch (`TIME 0`), so that the
   * next claim pass of any consumer in the group takes it, whatever its `claimIdleMs`.
   */
  protected override async redeliver(messages: SourceMessage<P, Fields>[]): Promise<void> {
    const ids = messages.map((message) => message.id);
    await this.#client.call('XCLAIM', this.stream, this.group, this.consumer, 0, ...ids, 'TIME', 0, 'JUSTID');
    this.#nextClaimAt = 0;
    this.#claimCursor = '0-0';
  }

  protected override async reject(messages: SourceMessage<P, Fields>[], reason: unknown): Promise<void> {
    if (this.#deadLetterStream === undefined) return;
    const transaction = this.#client.multi();
    for (const message of messages) {
      const error = BrokerError.deadLettered('redis', message.id, reason);
      const fields = ['payload', message.body, 'id', message.id, 'stream', this.stream, 'error', error.message];
      transaction.call('XADD', this.#deadLetterStream, '*', ...fields);
    }
    transaction.call('XACK', this.stream, this.group, ...messages.map((message) => message.id));
    const replies = await transaction.exec();
    const failure = replies?.find(([error]) => error !== null)?.[0];
    if (replies === null || failure) throw failure ?? new Error('The Redis dead-letter transaction was discarded');
  }

  protected override async interrupt(): Promise<void> {
    // Ends a blocking XREADGROUP at once (it rejects, and the pull loop sees the stop), also one
    // stranded by a lost connection. Only once: ioredis arms a 2 s timer per disconnect() that only
    // the socket's (single) 'close' clears.
    if (this.#readerOpen) abandonRedis(this.#reader);
    this.#readerOpen = false;
    // A client opened here that is not connected now is not waited for: what it holds (an XACK in
    // flight when the connection dropped) fails, counted as an ack failure, and Redis delivers those
    // entries again. A client you passed in is yours: its commands wait for its reconnect.
    if (this.#owned && this.#client.status !== 'ready') abandonRedis(this.#client);
  }

  protected override async release(): Promise<void> {
    await this.interrupt();
    if (this.#owned) await closeRedis(this.#client);
  }

  async #createGroup(startId: string): Promise<void> {
    try {
      await this.#client.call('XGROUP', 'CREATE', this.stream, this.group, startId, 'MKSTREAM');
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error;
    }
  }

  async #read(client: RedisClient, max: number, from: string, blockMs?: number): Promise<Entry[]> {
    const block = blockMs === undefined ? [] : ['BLOCK', blockMs];
    const args = ['GROUP', this.group, this.consumer, 'COUNT', max, ...block, 'STREAMS', this.stream, from];
    const reply = (await client.callBuffer('XREADGROUP', ...args)) as [Buffer, Entry[]][] | [Buffer, Entry[]] | null;
    if (reply === null || reply.length === 0) return [];
    // RESP2 answers [[stream, entries]]; RESP3 (ioredis 6's default) a map, which ioredis flattens to [stream, entries].
    return Buffer.isBuffer(reply[0]) ? (reply[1] as Entry[]) : (reply as [Buffer, Entry[]][])[0]![1];
  }

  async #claim(max: number): Promise<Delivery<Fields>[]> {
    const args = [this.stream, this.group, this.consumer, this.#claimIdleMs, this.#claimCursor, 'COUNT', max];
    const [cursor, entries] = (await this.#client.callBuffer('XAUTOCLAIM', ...args)) as [Buffer, Entry[]];
    this.#claimCursor = cursor.toString();
    if (this.#claimCursor === '0-0') this.#nextClaimAt = Date.now() + this.#claimIdleMs;
    return this.#deliveries(entries, true);
  }

  /** Entries as deliveries; an entry deleted from the stream while pending (no fields) is acked and skipped. */
  async #deliveries(entries: Entry[], redelivered: boolean): Promise<Delivery<Fields>[]> {
    const deliveries: Delivery<Fields>[] = [];
    const gone: string[] = [];
    for (const [id, fields] of entries) {
      if (fields === null) gone.push(id.toString());
      else deliveries.push({ id: id.toString(), body: this.#payloadOf(fields), redelivered, handle: fields });
    }
    if (gone.length > 0) await this.#client.call('XACK', this.stream, this.group, ...gone);
    return deliveries;
  }

  #payloadOf(fields: Buffer[]): Buffer {
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.equals(this.#field)) return fields[i + 1]!;
    return Buffer.alloc(0);
  }
}
