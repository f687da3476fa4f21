/**
 * The AMQP edges when RabbitMQ is lost mid-run: they reach the real broker through a TCP proxy
 * in this process (spec/brokers/support.ts), which a test cuts (connections destroyed, new ones
 * refused) and restores. A connection the edge opened is re-opened with backoff for up to
 * `reconnectTimeoutMs`; the caller's own connection never is. Every wait is on something the test
 * can observe (an event, a refused connection, a queue count), never on a guessed delay.
 */
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect, type Channel, type ChannelModel } from 'amqplib';
import { BlockingWritable, type FlushResult } from '../../lib';
import { AmqpSource, amqpSink, endToEnd, type AmqpSourceOptions, type BrokerMessage } from '../../lib/brokers/amqp';
import { AMQP_URL, CuttableProxy, deferred, describeBroker, uniqueName, waitFor } from './support';

interface Event {
  n: number;
}

const events = (count: number, from = 0): Event[] => Array.from({ length: count }, (_, n) => ({ n: from + n }));
const context = () => ({ signal: new AbortController().signal, attempt: 1 });
const LOST = 'ERR_BROKER_CONNECTION_LOST';

describe('AMQP reconnect options (no broker needed)', () => {
  it.each([
    [-1, 'ERR_OUT_OF_RANGE'],
    [1.5, 'ERR_OUT_OF_RANGE'],
    [Number.NaN, 'ERR_OUT_OF_RANGE'],
    [Infinity, 'ERR_OUT_OF_RANGE'],
    ['1000', 'ERR_INVALID_ARG_TYPE'],
    [null, 'ERR_INVALID_ARG_TYPE'],
  ])('reconnectTimeoutMs: %p is %s, naming the option, for the source and the sink', (value, code) => {
    const expected = expect.objectContaining({ code, message: expect.stringContaining('"reconnectTimeoutMs"') });
    expect(() => new AmqpSource({ url: AMQP_URL, queue: 'q', reconnectTimeoutMs: value as number })).toThrow(expected);
    expect(() => amqpSink({ url: AMQP_URL, routingKey: 'q', reconnectTimeoutMs: value as number })).toThrow(expected);
  });

  it('takes 0 (fail at once) and any integer above', () => {
    for (const reconnectTimeoutMs of [0, 1, 30_000, 3_600_000]) {
      expect(() => new AmqpSource({ url: AMQP_URL, queue: 'q', reconnectTimeoutMs })).not.toThrow();
      expect(() => amqpSink({ url: AMQP_URL, routingKey: 'q', reconnectTimeoutMs })).not.toThrow();
    }
  });
});

describeBroker('RabbitMQ lost mid-run', AMQP_URL, () => {
  let connection: ChannelModel;
  let admin: Channel;
  let proxy: CuttableProxy;
  let viaProxy: string;
  const queues: string[] = [];
  const closers: (() => Promise<unknown>)[] = [];

  async function queue(prefix: string): Promise<string> {
    const name = uniqueName(prefix);
    await admin.assertQueue(name, { durable: false });
    queues.push(name);
    return name;
  }

  const source = <P = Event>(options: Omit<AmqpSourceOptions<P>, 'url'> & { url?: string }): AmqpSource<P> => {
    const created = new AmqpSource<P>({ url: viaProxy, ...options });
    closers.push(() => created.close().catch(() => undefined));
    return created;
  };

  async function publish(name: string, items: unknown[]): Promise<void> {
    for (const item of items) admin.sendToQueue(name, Buffer.from(JSON.stringify(item)));
    await waitFor('the messages queued', async () => (await ready(name)) === items.length);
  }

  const ready = async (name: string): Promise<number> => (await admin.checkQueue(name)).messageCount;

  /** Takes every message off `name` (acking it): payload and message id, in order. */
  async function drain(name: string): Promise<{ n: number; id: unknown }[]> {
    const taken: { n: number; id: unknown }[] = [];
    for (let message = await admin.get(name); message !== false; message = await admin.get(name)) {
      taken.push({ n: (JSON.parse(message.content.toString()) as Event).n, id: message.properties.messageId });
      admin.ack(message);
    }
    return taken;
  }

  /** Cuts the proxy and waits until the client has tried (and failed) to connect again. */
  async function cutUntilRetried(): Promise<void> {
    proxy.cut();
    await waitFor('a reconnection attempt', () => proxy.refused > 0);
  }

  beforeAll(async () => {
    connection = await connect(AMQP_URL, { noDelay: true });
    admin = await connection.createChannel();
  });
  beforeEach(async () => {
    const { hostname, port } = new URL(AMQP_URL);
    proxy = new CuttableProxy({ host: hostname, port: Number(port) });
    await proxy.listen();
    viaProxy = proxy.via(AMQP_URL);
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
    await proxy.close();
    for (const name of queues.splice(0)) await admin.deleteQueue(name);
  });
  afterAll(async () => {
    await connection.close();
  });

  describe('AmqpSource', () => {
    it('stop() on a half-open connection settles: no close waits more than 5 s for an answer that never comes', async () => {
      const name = await queue('src_halfopen');
      await publish(name, events(2));
      const run = endToEnd(source({ queue: name }), async () => {}, { batchSize: 1 });
      await waitFor('2 acks', () => run.summary().acked === 2);
      // Nothing the server sends reaches the client any more: the consumer's cancel, the channel's and the
      // connection's close are never answered. The first unanswered one (5 s) lets the rest go at once.
      proxy.mute();
      await expect(run.stop()).resolves.toEqual(expect.objectContaining({ acked: 2 }));
    }, 30_000);

    it('consumes again after a reconnect; the old channel’s messages are forgotten: their ack is a no-op, they come again', async () => {
      const name = await queue('src_reconnect');
      await publish(name, events(8));
      const reader = source({ queue: name, maxUnacked: 5 });
      const received: BrokerMessage<Event>[] = [];
      const unackedSeen: number[] = [];
      const errors: unknown[] = [];
      let reconnected = false;
      reader.on('error', (error) => errors.push(error));
      reader.on('data', (message: BrokerMessage<Event>) => {
        received.push(message);
        unackedSeen.push(reader.unacked);
        // After the reconnect, whatever comes is acked at once.
        if (reconnected) void message.ack();
      });

      await waitFor('the bound', () => received.length === 5 && reader.unacked === 5);
      await received[0]!.ack();
      await received[1]!.ack();
      // RabbitMQ fills the prefetch window again: n=5 and n=6 arrive; n=7 waits in the queue.
      await waitFor('two more', () => received.length === 7 && reader.unacked === 5);
      const old = received.slice(2);

      const disconnected = once(reader, 'disconnect');
      await cutUntilRetried();
      expect(await disconnected).toEqual([{ forgotten: 5, cause: expect.any(Error) }]);
      expect(reader.unacked).toBe(0);
      expect(old.some((message) => reader.holds(message))).toBe(false);

      const back = once(reader, 'reconnect');
      reconnected = true;
      proxy.restore();
      expect(await back).toEqual([{ downMs: expect.any(Number) }]);
      // Acked now, on the new channel, these tags would name other messages: they must do nothing.
      await Promise.all(old.map((message) => message.ack()));

      const again = await waitFor('the forgotten messages and n=7 delivered again', () => {
        const later = received.slice(7);
        return later.length === 6 ? later : undefined;
      });
      expect(again.map((message) => message.payload.n).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7]);
      expect(again.filter((message) => message.redelivered).map((message) => message.payload.n)).toEqual(
        expect.arrayContaining([2, 3, 4, 5, 6]),
      );
      await waitFor('every message acked', () => reader.unacked === 0);
      await reader.close();
      // Closing requeues what is still unacked: nothing, so every message was acked once, on its own channel.
      expect(await ready(name)).toBe(0);
      expect(errors).toEqual([]);
      expect(Math.max(...unackedSeen)).toBeLessThanOrEqual(5);
      expect(Math.min(...unackedSeen)).toBeGreaterThanOrEqual(0);
    });

    it('under endToEnd: a batch stored after the loss is not counted as acked; its messages come again and are acked then', async () => {
      const name = await queue('src_e2e');
      await publish(name, events(40));
      const reader = source({ queue: name, maxUnacked: 10 });
      const unackedSeen: number[] = [];
      reader.on('data', () => unackedSeen.push(reader.unacked));
      const held = deferred();
      const stored: number[] = [];
      const run = endToEnd(
        reader,
        async (batch: Event[]) => {
          if (stored.length === 0) await held.promise;
          stored.push(...batch.map((event) => event.n));
        },
        { batchSize: 5 },
      );
      // The first flush waits: 10 messages held (5 in it, 5 buffered), none acked.
      await waitFor('the bound', () => reader.unacked === 10);
      const disconnected = once(reader, 'disconnect');
      await cutUntilRetried();
      expect(await disconnected).toEqual([{ forgotten: 10, cause: expect.any(Error) }]);
      const back = once(reader, 'reconnect');
      proxy.restore();
      await back;
      held.resolve();

      await waitFor('every message stored and acked', () => run.summary().acked === 40);
      expect(await run.stop()).toEqual({ acked: 40, deadLettered: 0, nacked: 0, ackFailures: 0 });
      // The 10 held at the loss were stored twice (at-least-once); every other message once.
      expect(stored).toHaveLength(50);
      expect(new Set(stored).size).toBe(40);
      expect(await ready(name)).toBe(0);
      expect(Math.max(...unackedSeen)).toBeLessThanOrEqual(10);
    });

    it('past reconnectTimeoutMs: fails with ERR_BROKER_CONNECTION_LOST, naming RabbitMQ and how long it tried', async () => {
      const name = await queue('src_timeout');
      await publish(name, events(3));
      const reader = source({ queue: name, reconnectTimeoutMs: 200 });
      const failed = once(reader, 'error');
      reader.on('data', () => undefined);
      await waitFor('the messages', () => reader.unacked === 3);
      proxy.cut();
      const [error] = (await failed) as [Error & { code: string; broker: string }];
      expect(error).toMatchObject({
        code: LOST,
        broker: 'amqp',
        message: expect.stringMatching(/^The connection to RabbitMQ was lost and could not be re-opened within 200 ms/),
      });
      expect(proxy.refused).toBeGreaterThan(0);
      // What it held went back to the queue with the connection.
      await waitFor('the messages requeued', async () => (await ready(name)) === 3);
    });

    it('reconnectTimeoutMs: 0 fails at once, without trying to reconnect', async () => {
      const name = await queue('src_zero');
      await publish(name, events(1));
      const reader = source({ queue: name, reconnectTimeoutMs: 0 });
      const failed = once(reader, 'error');
      reader.on('data', () => undefined);
      await waitFor('the message', () => reader.unacked === 1);
      proxy.cut();
      const [error] = (await failed) as [Error & { code: string }];
      expect(error).toMatchObject({ code: LOST, message: expect.stringContaining('"reconnectTimeoutMs" is 0') });
      expect(proxy.refused).toBe(0);
    });

    it('a connection of the caller’s own is never re-opened: ERR_BROKER_CONNECTION_LOST at once', async () => {
      const name = await queue('src_given');
      await publish(name, events(1));
      const own = await connect(viaProxy);
      own.on('error', () => undefined);
      const reader = source({ queue: name, connection: own, reconnectTimeoutMs: 60_000 });
      const failed = once(reader, 'error');
      reader.on('data', () => undefined);
      await waitFor('the message', () => reader.unacked === 1);
      proxy.cut();
      const [error] = (await failed) as [Error & { code: string }];
      expect(error).toMatchObject({ code: LOST, message: expect.stringContaining('"connection" option') });
      expect({ accepted: proxy.accepted, refused: proxy.refused }).toEqual({ accepted: 1, refused: 0 });
    });
  });

  describe('amqpSink', () => {
    it('a batch whose confirms were lost with the connection fails; retried after the reconnect, it is published again', async () => {
      const name = await queue('sink_lost');
      const sink = amqpSink<Event>({ url: viaProxy, routingKey: name, messageId: (event) => `id-${event.n}` });
      closers.push(() => sink.close());
      expect(await sink(events(1, 100), context())).toBeUndefined();

      // The broker gets the batch, the confirms never come back, then the connection goes.
      proxy.mute();
      const batch = events(5);
      const pending = sink(batch, context());
      await waitFor('the batch in the queue', async () => (await ready(name)) === 6);
      await cutUntilRetried();
      const result = (await pending) as FlushResult<Event>;
      expect(result).toMatchObject({ success: 0, failed: 5, failedItems: batch });
      for (const error of result.errors)
        expect(error).toMatchObject({
          code: 'ERR_BROKER_REFUSED',
          broker: 'amqp',
          message: expect.stringContaining('lost with the connection'),
        });

      // A flush while the connection is being re-opened waits for it.
      let settled = false;
      const retried = Promise.resolve(sink(batch, context())).finally(() => (settled = true));
      await waitFor('a second reconnection attempt', () => proxy.refused >= 2);
      expect(settled).toBe(false);
      proxy.restore();
      expect(await retried).toBeUndefined();

      // At-least-once: the batch is there twice, each copy with its message id (what --dedupe keys on).
      const taken = await drain(name);
      expect(taken.map((message) => message.n)).toEqual([100, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
      expect(taken.slice(1).map((message) => message.id)).toEqual([...batch, ...batch].map((e) => `id-${e.n}`));
    });

    it('under a BlockingWritable with retries: the failed items are retried on the new channel, nothing lost', async () => {
      const name = await queue('sink_engine');
      const sink = amqpSink<Event>({ url: viaProxy, routingKey: name });
      closers.push(() => sink.close());
      expect(await sink(events(1, 100), context())).toBeUndefined();
      proxy.mute();
      const writable = new BlockingWritable(sink, {
        batchSize: 10,
        retry: { maxRetries: 3, initialDelayMs: 1, maxDelayMs: 1 },
      });
      const done = pipeline(Readable.from(events(10)), writable);
      await waitFor('the batch in the queue', async () => (await ready(name)) === 11);
      await cutUntilRetried();
      proxy.restore();
      await done;
      expect(writable.getMetrics()).toMatchObject({ eventsFlushed: 10 });
      const taken = (await drain(name)).map((message) => message.n);
      expect(taken).toEqual([100, ...events(10).map((e) => e.n), ...events(10).map((e) => e.n)]);
    });

    it('past reconnectTimeoutMs: every flush rejects with ERR_BROKER_CONNECTION_LOST, without trying again', async () => {
      const name = await queue('sink_timeout');
      const sink = amqpSink<Event>({ url: viaProxy, routingKey: name, reconnectTimeoutMs: 200 });
      closers.push(() => sink.close());
      expect(await sink(events(1), context())).toBeUndefined();
      await cutUntilRetried();
      const expected = {
        code: LOST,
        broker: 'amqp',
        message: expect.stringMatching(/^The connection to RabbitMQ was lost and could not be re-opened within 200 ms/),
      };
      await expect(sink(events(1), context())).rejects.toMatchObject(expected);
      const attempts = proxy.refused;
      await expect(sink(events(1), context())).rejects.toMatchObject(expected);
      expect(proxy.refused).toBe(attempts);
    });

    it('a connection of the caller’s own is never re-opened: its flushes reject with ERR_BROKER_CONNECTION_LOST', async () => {
      const name = await queue('sink_given');
      const own = await connect(viaProxy);
      own.on('error', () => undefined);
      const sink = amqpSink<Event>({ connection: own, routingKey: name });
      expect(await sink(events(1), context())).toBeUndefined();
      // Not once(): the connection reports an 'error' first, which once() would reject with.
      const closed = new Promise((resolve) => own.once('close', resolve));
      proxy.cut();
      await closed;
      await expect(sink(events(1), context())).rejects.toMatchObject({
        code: LOST,
        message: expect.stringContaining('"connection" option'),
      });
      expect({ accepted: proxy.accepted, refused: proxy.refused }).toEqual({ accepted: 1, refused: 0 });
      await sink.close();
    });
  });
});
