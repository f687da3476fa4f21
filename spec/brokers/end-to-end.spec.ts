import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { FlushContext, FlushResult } from '../../lib';
import {
  RedisStreamSource,
  endToEnd,
  type BrokerMessage,
  type RedisStreamSourceOptions,
} from '../../lib/brokers/redis';
import { REDIS_URL, deferred, describeBroker, killAfterReport, uniqueName, waitFor } from './support';

/**
 * endToEnd() against a real Redis: a message is acked only when the flush of its batch
 * resolved as delivered; what the sluice gives up on goes to the dead-letter route and is
 * never acked as stored; a consumer killed with SIGKILL loses nothing.
 */

interface Event {
  n: number;
  bad?: boolean;
}

const events = (count: number): Event[] => Array.from({ length: count }, (_, n) => ({ n }));
const FIXTURE = join(__dirname, 'fixtures', 'redis-consumer.js');

describeBroker('end-to-end acknowledgement (Redis Streams)', REDIS_URL, () => {
  let redis: Redis;
  const keys: string[] = [];
  const key = (prefix: string): string => {
    const name = uniqueName(prefix);
    keys.push(name);
    return name;
  };
  const sources: RedisStreamSource<Event>[] = [];
  const source = (options: Omit<RedisStreamSourceOptions<Event>, 'url'>): RedisStreamSource<Event> => {
    const created = new RedisStreamSource<Event>({ url: REDIS_URL, ...options });
    sources.push(created);
    return created;
  };

  async function seed(stream: string, items: Event[]): Promise<string[]> {
    const pipe = redis.pipeline();
    for (const item of items) pipe.xadd(stream, '*', 'payload', JSON.stringify(item));
    return ((await pipe.exec()) ?? []).map(([, id]) => id as string);
  }

  async function pending(stream: string, group: string, consumer?: string): Promise<string[]> {
    const args = [stream, group, '-', '+', 100_000, ...(consumer === undefined ? [] : [consumer])];
    const rows = (await redis.call('XPENDING', ...args)) as [string, string, number, number][];
    return rows.map(([id]) => id);
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

  it('acks a message only after the flush that carries it resolved as delivered: failed items stay pending until their retry delivers them', async () => {
    const stream = key('partial');
    const ids = await seed(stream, events(20));
    const pendingAtCall: { attempt: number; items: number[]; pending: string[] }[] = [];
    const sink = async (batch: Event[], { attempt }: FlushContext): Promise<FlushResult<Event>> => {
      pendingAtCall.push({ attempt, items: batch.map((e) => e.n), pending: await pending(stream, 'g') });
      const failedItems = attempt === 1 ? batch.filter((event) => event.n % 4 === 0) : [];
      return { success: batch.length - failedItems.length, failed: failedItems.length, errors: [], failedItems };
    };
    const run = endToEnd(source({ stream, group: 'g', consumer: 'c', maxUnacked: 20 }), sink, {
      batchSize: 10,
      retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1 },
    });
    await waitFor('20 acks', () => run.summary().acked === 20);
    expect(await run.stop()).toEqual({ acked: 20, deadLettered: 0, nacked: 0, ackFailures: 0 });

    const idOf = (n: number): string => ids[n]!;
    const retries = pendingAtCall.filter((call) => call.attempt === 2);
    // Where batches were cut depends on timing; which items were retried does not.
    expect(retries.flatMap((call) => call.items).sort((a, b) => a - b)).toEqual([0, 4, 8, 12, 16]);
    for (const retry of retries) {
      const first = pendingAtCall.find((call) => call.attempt === 1 && call.items.includes(retry.items[0]!))!;
      // At the retry, the items that failed are still pending; the rest of their first batch is acked.
      expect(retry.pending).toEqual(expect.arrayContaining(retry.items.map(idOf)));
      const deliveredFirstTime = first.items.filter((n) => !retry.items.includes(n)).map(idOf);
      expect(retry.pending.filter((id) => deliveredFirstTime.includes(id))).toEqual([]);
    }
    expect(await pending(stream, 'g')).toEqual([]);
  });

  it.each([
    ['without a dead-letter stream, they stay pending (never acked)', false],
    ['with a dead-letter stream, they are moved there', true],
  ])('messages the sluice dead-letters are never acked as stored: %s', async (_, withDeadLetterStream) => {
    const stream = key('dead');
    const deadLetters = key('dlq');
    const ids = await seed(
      stream,
      events(12).map((event) => ({ ...event, bad: event.n % 5 === 1 })),
    );
    const stored: Event[] = [];
    const run = endToEnd(
      source({
        stream,
        group: 'g',
        consumer: 'c',
        maxUnacked: 12,
        ...(withDeadLetterStream ? { deadLetterStream: deadLetters } : {}),
      }),
      (batch: Event[]) => {
        const failedItems = batch.filter((event) => event.bad);
        stored.push(...batch.filter((event) => !event.bad));
        return { success: batch.length - failedItems.length, failed: failedItems.length, errors: [], failedItems };
      },
      { batchSize: 6, retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1 } },
    );
    await waitFor('every message settled', () => {
      const { acked, deadLettered } = run.summary();
      return acked + deadLettered === 12;
    });
    expect(await run.stop()).toEqual({ acked: 9, deadLettered: 3, nacked: 0, ackFailures: 0 });
    expect(stored.map((e) => e.n)).toEqual([0, 2, 3, 4, 5, 7, 8, 9, 10]);
    const badIds = [1, 6, 11].map((n) => ids[n]!);
    if (withDeadLetterStream) {
      expect(await pending(stream, 'g')).toEqual([]);
      const moved = await redis.xrange(deadLetters, '-', '+');
      expect(moved.map(([, fields]) => fields[fields.indexOf('id') + 1])).toEqual(badIds);
    } else {
      expect(await pending(stream, 'g')).toEqual(badIds);
    }
  });

  it('a destroyed run acks nothing it did not store and hands back everything it held: claimable at once', async () => {
    const stream = key('destroy');
    const ids = await seed(stream, events(8));
    const held = deferred();
    const reader = source({ stream, group: 'g', consumer: 'c', maxUnacked: 8 });
    const run = endToEnd(reader, () => held.promise, { batchSize: 4 });
    await waitFor('8 messages held', () => reader.unacked === 8);
    run.sluice.destroy(new Error('operator stop'));
    await expect(run.done).rejects.toThrow('operator stop');
    expect(run.summary()).toMatchObject({ acked: 0, deadLettered: 0, ackFailures: 0 });
    held.resolve(); // the abandoned flush "stores" late: its messages are settled already, nothing is acked

    // Handed back (nacked): another consumer claims all 8 at once, without waiting claimIdleMs (an hour).
    const heir = source({ stream, group: 'g', consumer: 'heir', claimIdleMs: 3_600_000, blockMs: 50 });
    const received: string[] = [];
    for await (const message of heir) {
      await (message as BrokerMessage<Event>).ack();
      if (received.push((message as BrokerMessage<Event>).id) === 8) break;
    }
    expect(received.sort()).toEqual([...ids].sort());
    expect(await pending(stream, 'g')).toEqual([]);
  });

  it('an ack the broker never got is reported (SLUICE_ACK_FAILED) and the message stays pending for redelivery', async () => {
    const stream = key('ackfail');
    const ids = await seed(stream, events(5));
    const client = new Redis(REDIS_URL);
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      // Stored, then the connection the acks go through is lost (disconnect() once: see lib/brokers/redis/source.ts).
      const sink = (): void => {
        if (client.status !== 'end') client.disconnect();
      };
      const run = endToEnd(source({ client, stream, group: 'g', consumer: 'c', maxUnacked: 5, blockMs: 50 }), sink);
      await waitFor('the failed acks', () => run.summary().ackFailures === 5);
      expect(await run.stop()).toEqual({ acked: 0, deadLettered: 0, nacked: 0, ackFailures: 5 });
      const reported = emitWarning.mock.calls.map(([message, options]) => {
        const [, count, why] = /could not be told about (\d+) message\(s\) \((.*)\)/.exec(String(message)) ?? [];
        return { count: Number(count), why, options };
      });
      expect(reported.reduce((sum, { count }) => sum + count, 0)).toBe(5);
      for (const warning of reported) {
        expect(warning).toEqual({
          count: expect.any(Number),
          why: 'Connection is closed.',
          options: { code: 'SLUICE_ACK_FAILED' },
        });
      }
      expect(await pending(stream, 'g')).toEqual(ids);
    } finally {
      emitWarning.mockRestore();
    }
  });

  it('a consumer killed with SIGKILL mid-batch loses nothing: a second consumer claims every message it left unacked', async () => {
    const stream = key('kill');
    const store = key('store');
    const total = 100;
    const ids = await seed(stream, events(total));
    await redis.call('XGROUP', 'CREATE', stream, 'g', '0');

    const { hung, acked: ackedByDoomed } = await killAfterReport(FIXTURE, [REDIS_URL, stream, 'g', 'doomed', store]);

    // The hung batch was stored but never acked: it is pending on the dead consumer, with whatever it had prefetched.
    const leftPending = await pending(stream, 'g', 'doomed');
    expect(leftPending).toEqual(expect.arrayContaining(hung.map((n) => ids[n]!)));
    expect(await redis.scard(store)).toBe(ackedByDoomed + hung.length);

    const heir = source({ stream, group: 'g', consumer: 'heir', claimIdleMs: 300, blockMs: 50, maxUnacked: 50 });
    const received: BrokerMessage<Event>[] = [];
    heir.on('data', (message: BrokerMessage<Event>) => received.push(message));
    const run = endToEnd(heir, async (batch: Event[]) => {
      await redis.sadd(store, ...batch.map((event) => String(event.n)));
    });
    await waitFor('every message left to be acked', () => run.summary().acked === total - ackedByDoomed);
    await run.stop();

    const stored = (await redis.smembers(store)).map(Number).sort((a, b) => a - b);
    expect(stored).toEqual(events(total).map((event) => event.n)); // none lost
    expect(await pending(stream, 'g')).toEqual([]); // every message acked, once
    const claimed = received.filter((message) => leftPending.includes(message.id));
    expect(claimed.map((message) => message.id).sort()).toEqual([...leftPending].sort());
    expect(claimed.every((message) => message.redelivered)).toBe(true);
    // The hung batch is stored a second time by the heir: at-least-once, never at-most-once.
    expect(received.map((message) => message.payload.n)).toEqual(expect.arrayContaining(hung));
  });
});
