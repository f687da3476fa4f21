import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Redis } from 'ioredis';
import { BlockingWritable, type BackpressureError, type FlushResult } from '../../lib';
import {
  BrokerError,
  RedisStreamSource,
  endToEnd,
  redisStreamSink,
  type BrokerMessage,
  type RedisStreamSourceOptions,
} from '../../lib/brokers/redis';
import { REDIS_URL, deferred, describeBroker, uniqueName, waitFor, withProxy, type CuttableProxy } from './support';

interface Event {
  n: number;
  bad?: boolean;
}

/** An entry's flat [name, value, …] list as an object. */
const fieldsOf = (fields: string[]): Record<string, string> =>
  Object.fromEntries(fields.flatMap((value, i) => (i % 2 === 0 ? [[value, fields[i + 1]!]] : [])));

const events = (count: number, from = 0): Event[] => Array.from({ length: count }, (_, i) => ({ n: from + i }));

describeBroker('Redis Streams', REDIS_URL, () => {
  let redis: Redis;
  const keys: string[] = [];
  const key = (prefix: string): string => {
    const name = uniqueName(prefix);
    keys.push(name);
    return name;
  };
  const sources: RedisStreamSource<unknown>[] = [];
  const source = <P = Event>(options: Omit<RedisStreamSourceOptions<P>, 'url'>): RedisStreamSource<P> => {
    const created = new RedisStreamSource<P>({ url: REDIS_URL, ...options });
    sources.push(created);
    return created;
  };

  /** Appends `items` as JSON `payload` entries; returns their ids. */
  async function seed(stream: string, items: unknown[]): Promise<string[]> {
    const pipe = redis.pipeline();
    for (const item of items) pipe.xadd(stream, '*', 'payload', JSON.stringify(item));
    const replies = (await pipe.exec()) ?? [];
    return replies.map(([, id]) => id as string);
  }

  /** The group's pending count (XPENDING summary). */
  async function pendingCount(stream: string, group: string): Promise<number> {
    const [count] = (await redis.xpending(stream, group)) as [number, ...unknown[]];
    return count;
  }

  async function pendingIds(stream: string, group: string): Promise<string[]> {
    const rows = (await redis.xpending(stream, group, '-', '+', 10_000)) as [string, string, number, number][];
    return rows.map(([id]) => id);
  }

  async function payloadsOf(stream: string): Promise<unknown[]> {
    const entries = await redis.xrange(stream, '-', '+');
    return entries.map(([, fields]) => JSON.parse(fields[fields.indexOf('payload') + 1]!) as unknown);
  }

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });
  afterEach(async () => {
    for (const created of sources.splice(0)) await created.close();
    if (keys.length > 0) await redis.del(...keys.splice(0));
  });
  afterAll(async () => {
    await redis.quit();
  });

  describe('redisStreamSink', () => {
    it('appends each batch in one pipeline: every item one entry, in order, as JSON in the payload field', async () => {
      const stream = key('sink');
      const sink = redisStreamSink<Event>({ client: redis, stream });
      await pipeline(Readable.from(events(250)), new BlockingWritable(sink, { batchSize: 100 }));
      await sink.close();
      expect(await payloadsOf(stream)).toEqual(events(250));
      expect(redis.status).toBe('ready'); // a client passed in is left open
    });

    it('names the entries Redis refused: only they are retried, then dead-lettered with ERR_BROKER_REFUSED', async () => {
      const good = key('good');
      const wrongType = key('string');
      await redis.set(wrongType, 'not a stream');
      const sink = redisStreamSink<Event>({ url: REDIS_URL, stream: (event) => (event.bad ? wrongType : good) });
      const items = events(30).map((event) => ({ ...event, bad: event.n % 7 === 3 }));

      const direct = (await sink(items, { signal: new AbortController().signal, attempt: 1 })) as FlushResult<Event>;
      expect(direct).toEqual({
        success: 26,
        failed: 4,
        errors: [expect.any(BrokerError), expect.any(BrokerError), expect.any(BrokerError), expect.any(BrokerError)],
        failedItems: items.filter((event) => event.bad),
      });
      expect(direct.errors[0]).toMatchObject({ code: 'ERR_BROKER_REFUSED', broker: 'redis' });
      expect((direct.errors[0] as Error).message).toMatch(/WRONGTYPE/);
      await redis.del(good);

      const deadLettered: { items: Event[]; error: BackpressureError<Event> }[] = [];
      const sluice = new BlockingWritable(sink, {
        batchSize: 10,
        retry: { maxRetries: 2, initialDelayMs: 1, maxDelayMs: 1 },
        onDeadLetter: (dead, error) => void deadLettered.push({ items: dead, error }),
      });
      await pipeline(Readable.from(items), sluice);
      await sink.close();

      // 3 attempts for the refused items, yet every good item is in the stream exactly once.
      expect(await payloadsOf(good)).toEqual(items.filter((event) => !event.bad));
      expect(deadLettered.flatMap((entry) => entry.items)).toEqual(items.filter((event) => event.bad));
      expect(deadLettered[0]!.error.code).toBe('ERR_FLUSH_FAILED');
      expect(sluice.getMetrics()).toMatchObject({ eventsFlushed: 26, deadLettered: 4, retries: 2 * 3 });
    });

    it('rejects the whole batch when the connection is gone (the sluice retries all of it)', async () => {
      const client = new Redis(REDIS_URL);
      await client.ping();
      client.disconnect();
      const sink = redisStreamSink<Event>({ client, stream: key('gone') });
      await expect(sink(events(3), { signal: new AbortController().signal, attempt: 1 })).rejects.toThrow(/closed/i);
    });

    it('validates its options', () => {
      expect(() => redisStreamSink({ url: REDIS_URL } as never)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"stream"') }),
      );
      expect(() => redisStreamSink({ url: REDIS_URL, stream: 's', maxLen: 0 })).toThrow(
        expect.objectContaining({
          code: 'ERR_OUT_OF_RANGE',
          message: 'The option "maxLen" must be an integer >= 1. Received 0',
        }),
      );
    });
  });

  describe('RedisStreamSource', () => {
    it('reads through a consumer group and acks after store: every entry once, in order, nothing left pending', async () => {
      const stream = key('src');
      await seed(stream, events(25));
      const stored: Event[] = [];
      const run = endToEnd(source({ stream, group: 'g', consumer: 'c', maxUnacked: 10 }), (batch: Event[]) => {
        stored.push(...batch);
      });
      await waitFor('25 acks', () => run.summary().acked === 25);
      expect(await run.stop()).toEqual({ acked: 25, deadLettered: 0, nacked: 0, ackFailures: 0 });
      expect(stored).toEqual(events(25));
      expect(await pendingCount(stream, 'g')).toBe(0);
    });

    it('never pulls more than maxUnacked: with the database held, the pending count stops at the bound and the backlog waits in Redis', async () => {
      const stream = key('bound');
      await seed(stream, events(60));
      const released = deferred();
      const pendingSeen: number[] = [];
      const reader = source({ stream, group: 'g', consumer: 'c', maxUnacked: 8, blockMs: 50 });
      const run = endToEnd(
        reader,
        async (batch: Event[]) => {
          pendingSeen.push(await pendingCount(stream, 'g'));
          if (batch[0]!.n === 0) await released.promise;
        },
        { batchSize: 4 },
      );
      await waitFor('the bound to be reached', () => reader.unacked === 8);
      // Held at the bound: a later fetch would have to show up here, and cannot.
      expect(await pendingCount(stream, 'g')).toBe(8);
      expect(run.sluice.getMetrics().bufferSize).toBeLessThanOrEqual(8);
      released.resolve();
      await waitFor('60 acks', () => run.summary().acked === 60);
      await run.stop();
      expect(Math.max(...pendingSeen)).toBeLessThanOrEqual(8);
      expect(await pendingCount(stream, 'g')).toBe(0);
    });

    /** A source on a fresh stream of 3 entries, reached through a proxy the test can cut. */
    async function throughProxy(
      prefix: string,
      test: (edge: { proxy: CuttableProxy; stream: string; reader: RedisStreamSource<Event> }) => Promise<void>,
    ): Promise<void> {
      return withProxy(REDIS_URL, async (proxy) => {
        const stream = key(prefix);
        await seed(stream, events(3));
        const reader = new RedisStreamSource<Event>({ url: proxy.via(REDIS_URL), stream, group: 'g', consumer: 'c' });
        sources.push(reader);
        await test({ proxy, stream, reader });
      });
    }

    // ioredis keeps a command that was in flight when the connection dropped for a reconnect that may
    // never come, and a disconnect() while it waits to reconnect leaves it unsettled: stop() waited for ever.
    it('stops while Redis is lost: the blocking read in flight at the drop is let go at once', () =>
      throughProxy('lost', async ({ proxy, reader }) => {
        const stored: Event[] = [];
        const run = endToEnd(reader, (batch: Event[]) => void stored.push(...batch));
        run.done.catch(() => undefined);
        await waitFor('3 acks', () => run.summary().acked === 3);
        proxy.cut(); // the next blocking read is in flight: it waits for the connection to come back
        await waitFor('a reconnection attempt', () => proxy.refused > 0);
        expect(await run.stop()).toEqual({ acked: 3, deadLettered: 0, nacked: 0, ackFailures: 0 });
        expect(stored).toEqual(events(3));
      }));

    it('stops while Redis is lost: an XACK in flight at the drop fails (an ack failure) instead of waiting for ever', () =>
      throughProxy('lostack', async ({ proxy, stream, reader }) => {
        let stored = false;
        const run = endToEnd(reader, () => {
          proxy.hold(); // stored: from now on Redis's replies do not reach the source
          stored = true;
        });
        run.done.catch(() => undefined);
        // The XACK reached Redis; its reply never reaches the source, which is cut off before it comes.
        await waitFor('the XACK at Redis', async () => stored && (await pendingCount(stream, 'g')) === 0);
        proxy.cut();
        await waitFor('a reconnection attempt', () => proxy.refused > 0);
        expect(await run.stop()).toEqual({ acked: 0, deadLettered: 0, nacked: 0, ackFailures: 3 });
      }));

    it('a consumer restarted under the same name re-reads its own pending entries first, marked redelivered', async () => {
      const stream = key('restart');
      const ids = await seed(stream, events(5));
      const first = source({ stream, group: 'g', consumer: 'c', maxUnacked: 5 });
      const read: BrokerMessage<Event>[] = [];
      for await (const message of first) if (read.push(message as BrokerMessage<Event>) === 5) break;
      await first.close(); // no ack: the entries stay pending on consumer c
      expect(await pendingIds(stream, 'g')).toEqual(ids);

      const again: BrokerMessage<Event>[] = [];
      for await (const message of source({ stream, group: 'g', consumer: 'c' })) {
        if (again.push(message as BrokerMessage<Event>) === 5) break;
      }
      expect(again.map((m) => [m.id, m.payload, m.redelivered])).toEqual(ids.map((id, i) => [id, { n: i }, true]));
      expect(read.map((m) => m.redelivered)).toEqual([false, false, false, false, false]);
    });

    it("takes over a dead consumer's pending entries with XAUTOCLAIM once they are idle for claimIdleMs", async () => {
      const stream = key('claim');
      const ids = await seed(stream, events(6));
      // A consumer that read 6 entries and died (no process left to ack or nack them).
      await redis.call('XGROUP', 'CREATE', stream, 'g', '0');
      await redis.call('XREADGROUP', 'GROUP', 'g', 'dead', 'COUNT', 6, 'STREAMS', stream, '>');
      expect(await pendingIds(stream, 'g')).toEqual(ids);

      const heir = source({ stream, group: 'g', consumer: 'heir', claimIdleMs: 200, blockMs: 50 });
      const stored: Event[] = [];
      const run = endToEnd(heir, (batch: Event[]) => void stored.push(...batch));
      await waitFor('the claimed entries to be acked', () => run.summary().acked === 6);
      await run.stop();
      expect(stored.sort((a, b) => a.n - b.n)).toEqual(events(6));
      expect(await pendingIds(stream, 'g')).toEqual([]);
    });

    it('nack() makes the entry claimable at once: the next fetch returns it, redelivered, without waiting claimIdleMs', async () => {
      const stream = key('nack');
      const [first] = await seed(stream, events(1));
      const reader = source({ stream, group: 'g', consumer: 'c', claimIdleMs: 3_600_000, blockMs: 50 });
      const seen: [string, boolean][] = [];
      for await (const message of reader) {
        const m = message as BrokerMessage<Event>;
        seen.push([m.id, m.redelivered]);
        if (seen.length === 1) await m.nack();
        else {
          await m.ack();
          break;
        }
      }
      expect(seen).toEqual([
        [first, false],
        [first, true],
      ]);
      expect(await pendingCount(stream, 'g')).toBe(0);
    });

    it('a payload that is not JSON: an ERR_BROKER_DECODE_FAILED "invalid" event, moved to the dead-letter stream, never pushed', async () => {
      const stream = key('decode');
      const deadLetters = key('dlq');
      await redis.xadd(stream, '*', 'payload', '{"n":0}');
      const [badId] = [await redis.xadd(stream, '*', 'payload', 'not json')];
      await redis.xadd(stream, '*', 'payload', '{"n":2}');
      const reader = source({ stream, group: 'g', consumer: 'c', deadLetterStream: deadLetters });
      const invalid: BrokerError[] = [];
      reader.on('invalid', (error: BrokerError) => invalid.push(error));
      const stored: Event[] = [];
      const run = endToEnd(reader, (batch: Event[]) => void stored.push(...batch));
      await waitFor('2 acks', () => run.summary().acked === 2);
      await waitFor('the dead letter', async () => (await redis.xlen(deadLetters)) === 1);
      await run.stop();
      expect(stored).toEqual([{ n: 0 }, { n: 2 }]);
      expect(invalid).toEqual([expect.objectContaining({ code: 'ERR_BROKER_DECODE_FAILED', messageId: badId })]);
      const entries = await redis.xrange(deadLetters, '-', '+');
      expect(entries.map(([, fields]) => fieldsOf(fields))).toEqual([
        {
          payload: 'not json',
          id: badId,
          stream,
          error: expect.stringContaining(`Message ${badId} was dead-lettered`),
        },
      ]);
      expect(await pendingCount(stream, 'g')).toBe(0);
    });

    it('validates its options', () => {
      expect(() => new RedisStreamSource({ url: REDIS_URL, stream: 's', group: 'g' } as never)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"consumer"') }),
      );
      expect(
        () => new RedisStreamSource({ url: REDIS_URL, stream: 's', group: 'g', consumer: 'c', maxUnacked: 0 }),
      ).toThrow(
        expect.objectContaining({
          code: 'ERR_OUT_OF_RANGE',
          message: 'The option "maxUnacked" must be an integer >= 1. Received 0',
        }),
      );
    });
  });
});
