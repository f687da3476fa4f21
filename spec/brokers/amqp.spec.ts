import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect, type Channel, type ChannelModel, type GetMessage } from 'amqplib';
import { BlockingWritable, type FlushResult } from '../../lib';
import {
  AmqpSource,
  BrokerError,
  amqpSink,
  endToEnd,
  type AmqpSourceOptions,
  type BrokerMessage,
} from '../../lib/brokers/amqp';
import { AMQP_URL, deferred, describeBroker, killAfterReport, uniqueName, waitFor } from './support';

interface Event {
  n: number;
  bad?: boolean;
}

const events = (count: number): Event[] => Array.from({ length: count }, (_, n) => ({ n }));
const context = () => ({ signal: new AbortController().signal, attempt: 1 });
const FIXTURE = join(__dirname, 'fixtures', 'amqp-consumer.js');

describeBroker('RabbitMQ', AMQP_URL, () => {
  let connection: ChannelModel;
  let admin: Channel;
  const queues: string[] = [];
  const sources: AmqpSource<unknown>[] = [];

  /** A queue no other test uses, deleted after the test. */
  async function queue(prefix: string, args: Record<string, unknown> = {}): Promise<string> {
    const name = uniqueName(prefix);
    await admin.assertQueue(name, { durable: false, arguments: args });
    queues.push(name);
    return name;
  }
  const source = <P = Event>(options: Omit<AmqpSourceOptions<P>, 'url'>): AmqpSource<P> => {
    const created = new AmqpSource<P>({ url: AMQP_URL, ...options });
    sources.push(created);
    return created;
  };

  async function publish(name: string, items: unknown[]): Promise<void> {
    for (const item of items) admin.sendToQueue(name, Buffer.from(JSON.stringify(item)));
    await waitFor('the messages queued', async () => (await admin.checkQueue(name)).messageCount === items.length);
  }

  /** Takes every message off `name` (acking it) and returns the payloads, in order. */
  async function drain(name: string): Promise<unknown[]> {
    const payloads: unknown[] = [];
    for (let message = await admin.get(name); message !== false; message = await admin.get(name)) {
      payloads.push(JSON.parse(message.content.toString()));
      admin.ack(message);
    }
    return payloads;
  }

  const ready = async (name: string): Promise<number> => (await admin.checkQueue(name)).messageCount;

  beforeAll(async () => {
    // noDelay: each basic.get in drain() is one small round trip; Nagle's algorithm would add ~40 ms to each.
    connection = await connect(AMQP_URL, { noDelay: true });
    admin = await connection.createChannel();
  });
  afterEach(async () => {
    for (const created of sources.splice(0)) await created.close();
    for (const name of queues.splice(0)) await admin.deleteQueue(name);
  });
  afterAll(async () => {
    await connection.close();
  });

  describe('amqpSink', () => {
    it('publishes each batch on a confirm channel and waits for every confirm: all queued, in order', async () => {
      const name = await queue('sink');
      const sink = amqpSink<Event>({ url: AMQP_URL, routingKey: name });
      await pipeline(Readable.from(events(250)), new BlockingWritable(sink, { batchSize: 100 }));
      await sink.close();
      expect(await drain(name)).toEqual(events(250));
    });

    it('names the messages RabbitMQ nacked (a full queue) or returned (no route): only they are retried', async () => {
      const full = await queue('full', { 'x-max-length': 4, 'x-overflow': 'reject-publish' });
      const sink = amqpSink<Event>({ connection, routingKey: (event) => (event.bad ? `${full}_nowhere` : full) });
      const items = events(7).map((event) => ({ ...event, bad: event.n === 1 }));
      const direct = (await sink(items, context())) as FlushResult<Event>;
      // n=1 is unroutable; the queue takes 4 of the other 6 and rejects the last 2.
      expect(direct).toMatchObject({ success: 4, failed: 3, failedItems: [items[1], items[5], items[6]] });
      expect(direct.errors).toEqual([
        expect.objectContaining({
          code: 'ERR_BROKER_REFUSED',
          broker: 'amqp',
          message: expect.stringContaining('unroutable'),
        }),
        expect.objectContaining({ code: 'ERR_BROKER_REFUSED', broker: 'amqp' }),
        expect.objectContaining({ code: 'ERR_BROKER_REFUSED', broker: 'amqp' }),
      ]);
      expect(await drain(full)).toEqual([items[0], items[2], items[3], items[4]]);
      await sink.close();
    });

    it('a channel the broker closed (no such exchange) fails the batch; the next call opens a new channel', async () => {
      const name = await queue('reopen');
      const exchange = uniqueName('missing_exchange');
      const broken = amqpSink<Event>({ connection, exchange, routingKey: name });
      const result = (await broken(events(3), context())) as FlushResult<Event>;
      expect(result).toMatchObject({ success: 0, failed: 3, failedItems: events(3) });
      await broken.close();

      const sink = amqpSink<Event>({ connection, routingKey: name });
      expect(await sink(events(2), context())).toBeUndefined();
      expect(await drain(name)).toEqual(events(2));
      await sink.close();
    });
  });

  describe('AmqpSource', () => {
    it('consumes with manual acks, acked after store: every message once, in order, the queue empty', async () => {
      const name = await queue('src');
      await publish(name, events(25));
      const stored: Event[] = [];
      const run = endToEnd(source({ queue: name, maxUnacked: 10 }), (batch: Event[]) => void stored.push(...batch));
      await waitFor('25 acks', () => run.summary().acked === 25);
      expect(await run.stop()).toEqual({ acked: 25, deadLettered: 0, nacked: 0, ackFailures: 0 });
      expect(stored).toEqual(events(25));
      expect(await ready(name)).toBe(0);
    });

    it('prefetch is the bound: with the database held, 8 messages are out and the rest stay ready in the queue', async () => {
      const name = await queue('bound');
      await publish(name, events(60));
      const released = deferred();
      const unackedSeen: number[] = [];
      const reader = source({ queue: name, maxUnacked: 8 });
      const run = endToEnd(
        reader,
        async (batch: Event[]) => {
          // Out of the queue and not acked = total - acked so far - still ready.
          unackedSeen.push(60 - run.summary().acked - (await ready(name)));
          if (batch[0]!.n === 0) await released.promise;
        },
        { batchSize: 4 },
      );
      await waitFor('the bound to be reached', () => reader.unacked === 8);
      expect(await ready(name)).toBe(52);
      released.resolve();
      await waitFor('60 acks', () => run.summary().acked === 60);
      await run.stop();
      expect(Math.max(...unackedSeen)).toBeLessThanOrEqual(8);
    });

    it('unacked never exceeds maxUnacked, even with acks whose confirmation is still on its way', async () => {
      const name = await queue('acks_in_flight');
      await publish(name, events(200));
      const reader = source({ queue: name, maxUnacked: 5 });
      const unackedSeen: number[] = [];
      let received = 0;
      reader.on('data', (message: BrokerMessage<Event>) => {
        unackedSeen.push(reader.unacked);
        received++;
        // Not awaited: RabbitMQ refills its window as soon as the ack arrives, before the ack's
        // barrier (see AmqpSource) answers. Counting the message until then overshot the bound (162 of 5).
        void message.ack();
      });
      await waitFor('every message', () => received === 200);
      await waitFor('every ack', () => reader.unacked === 0);
      expect(Math.max(...unackedSeen)).toBeLessThanOrEqual(5);
      expect(await ready(name)).toBe(0);
    });

    it('nack() requeues the message: it comes back, marked redelivered', async () => {
      const name = await queue('nack');
      await publish(name, events(1));
      const seen: [Event, boolean][] = [];
      for await (const message of source({ queue: name })) {
        const m = message as BrokerMessage<Event>;
        seen.push([m.payload, m.redelivered]);
        if (seen.length === 1) await m.nack();
        else {
          await m.ack();
          break;
        }
      }
      expect(seen).toEqual([
        [{ n: 0 }, false],
        [{ n: 0 }, true],
      ]);
    });

    it.each([
      ['{ queue }: moved to that queue with its cause, then acked', 'queue'],
      ["'reject': to the queue's dead-letter exchange", 'reject'],
    ])('dead-lettered messages, %s', async (_, mode) => {
      const deadLetters = await queue('dlq');
      const name = await queue(
        'dead',
        mode === 'reject' ? { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': deadLetters } : {},
      );
      await publish(
        name,
        events(6).map((event) => ({ ...event, bad: event.n === 4 })),
      );
      const run = endToEnd(
        source({ queue: name, deadLetter: mode === 'reject' ? 'reject' : { queue: deadLetters } }),
        (batch: Event[]) => {
          const failedItems = batch.filter((event) => event.bad);
          return { success: batch.length - failedItems.length, failed: failedItems.length, errors: [], failedItems };
        },
        { retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1 } },
      );
      await waitFor('every message settled', () => run.summary().acked + run.summary().deadLettered === 6);
      expect(await run.stop()).toEqual({ acked: 5, deadLettered: 1, nacked: 0, ackFailures: 0 });
      expect(await ready(name)).toBe(0);
      await waitFor('the dead letter', async () => (await ready(deadLetters)) === 1);
      const moved = (await admin.get(deadLetters)) as GetMessage;
      admin.ack(moved);
      expect(JSON.parse(moved.content.toString())).toEqual({ n: 4, bad: true });
      if (mode === 'queue') {
        expect(moved.properties.headers).toMatchObject({
          'Sluice-Queue': name,
          'Sluice-Error': expect.stringMatching(/was dead-lettered: Flush failed/),
        });
      } else {
        expect(moved.properties.headers?.['x-death']).toEqual([
          expect.objectContaining({ queue: name, reason: 'rejected' }),
        ]);
      }
    });

    it('concurrent flushes, retries and dead letters: acks one frame per batch only where that acks nothing else', async () => {
      const name = await queue('concurrent');
      const deadLetters = await queue('dlq');
      const items = events(60).map((event) => ({ ...event, bad: event.n % 7 === 3 }));
      await publish(name, items);
      const stored: number[] = [];
      const run = endToEnd(
        source({ queue: name, maxUnacked: 30, deadLetter: { queue: deadLetters } }),
        async (batch: Event[], { attempt }) => {
          // Uneven latencies so that batches finish out of order; good items fail their first try.
          await new Promise((resolve) => setTimeout(resolve, (batch[0]!.n * 7) % 20));
          const failedItems = batch.filter((event) => event.bad || (attempt === 1 && event.n % 5 === 0));
          stored.push(...batch.filter((event) => !failedItems.includes(event)).map((event) => event.n));
          return { success: batch.length - failedItems.length, failed: failedItems.length, errors: [], failedItems };
        },
        { batchSize: 5, maxConcurrentFlushes: 3, retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 5 } },
      );
      await waitFor('every message settled', () => run.summary().acked + run.summary().deadLettered === 60);
      expect(await run.stop()).toEqual({ acked: 51, deadLettered: 9, nacked: 0, ackFailures: 0 });
      expect(stored.sort((a, b) => a - b)).toEqual(items.filter((e) => !e.bad).map((e) => e.n));
      expect(await ready(name)).toBe(0); // after the channel closed: nothing was left unacked to requeue
      expect((await drain(deadLetters)).map((event) => (event as Event).n).sort((a, b) => a - b)).toEqual(
        items.filter((e) => e.bad).map((e) => e.n),
      );
    });

    it('a payload that is not JSON: "invalid" with ERR_BROKER_DECODE_FAILED, dead-lettered, never pushed', async () => {
      const name = await queue('decode');
      const deadLetters = await queue('dlq');
      admin.sendToQueue(name, Buffer.from('{"n":0}'));
      admin.sendToQueue(name, Buffer.from('not json'));
      const reader = source({ queue: name, deadLetter: { queue: deadLetters } });
      const invalid: BrokerError[] = [];
      reader.on('invalid', (error: BrokerError) => invalid.push(error));
      const stored: Event[] = [];
      const run = endToEnd(reader, (batch: Event[]) => void stored.push(...batch));
      await waitFor('the dead letter', async () => (await ready(deadLetters)) === 1);
      await waitFor('the ack', () => run.summary().acked === 1);
      await run.stop();
      expect(stored).toEqual([{ n: 0 }]);
      expect(invalid).toEqual([expect.objectContaining({ code: 'ERR_BROKER_DECODE_FAILED', broker: 'amqp' })]);
      expect(await ready(name)).toBe(0);
    });

    it('a consumer killed with SIGKILL mid-batch loses nothing: RabbitMQ requeues what it left unacked', async () => {
      const name = await queue('kill');
      await publish(name, events(100));
      const dir = mkdtempSync(join(tmpdir(), 'sluice-amqp-kill-'));
      const storeFile = join(dir, 'stored.txt');
      try {
        const { hung, acked: ackedByDoomed } = await killAfterReport(FIXTURE, [AMQP_URL, name, storeFile]);

        const storedByDoomed = readFileSync(storeFile, 'utf8').split('\n').filter(Boolean).map(Number);
        expect(storedByDoomed).toHaveLength(ackedByDoomed + hung.length);
        const stored = new Set(storedByDoomed);
        const received: BrokerMessage<Event>[] = [];
        const heir = source({ queue: name });
        heir.on('data', (message: BrokerMessage<Event>) => received.push(message));
        const run = endToEnd(heir, (batch: Event[]) => batch.forEach((event) => stored.add(event.n)));
        // Every message it did not ack, none it acked: acks are confirmed before they count (see AmqpSource).
        await waitFor('every message left to be acked', () => run.summary().acked === 100 - ackedByDoomed);
        await run.stop();

        expect([...stored].sort((a, b) => a - b)).toEqual(events(100).map((event) => event.n)); // none lost
        expect(await ready(name)).toBe(0);
        expect(received).toHaveLength(100 - ackedByDoomed);
        const again = received.filter((message) => hung.includes(message.payload.n));
        expect(again.map((message) => message.payload.n).sort((a, b) => a - b)).toEqual(hung);
        expect(again.every((message) => message.redelivered)).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('validates its options', () => {
      expect(() => new AmqpSource({ url: AMQP_URL } as never)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"queue"') }),
      );
      expect(() => new AmqpSource({ url: AMQP_URL, queue: 'q', deadLetter: 'drop' as never })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
      );
    });
  });
});
