import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AckPolicy, StorageType, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { BlockingWritable, type FlushResult } from '../../lib';
import {
  BrokerError,
  JetStreamSource,
  endToEnd,
  natsSink,
  type BrokerMessage,
  type JetStreamSourceOptions,
} from '../../lib/brokers/nats';
import {
  NATS_URL,
  deferred,
  describeBroker,
  killAfterReport,
  uniqueName,
  waitFor,
  withProxy,
  type CuttableProxy,
} from './support';

interface Event {
  n: number;
  bad?: boolean;
}

const events = (count: number): Event[] => Array.from({ length: count }, (_, n) => ({ n }));
const context = () => ({ signal: new AbortController().signal, attempt: 1 });
const decoder = new TextDecoder();
const FIXTURE = join(__dirname, 'fixtures', 'nats-consumer.js');

describeBroker('NATS JetStream', NATS_URL, () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const streams: string[] = [];
  const sources: JetStreamSource<unknown>[] = [];

  /** A memory stream capturing `<name>.>`, deleted after the test. */
  async function stream(prefix: string, duplicateWindowMs = 120_000): Promise<string> {
    const name = uniqueName(prefix);
    await jsm.streams.add({
      name,
      subjects: [`${name}.>`],
      storage: StorageType.Memory,
      duplicate_window: duplicateWindowMs * 1e6,
    });
    streams.push(name);
    return name;
  }
  const source = <P = Event>(options: Omit<JetStreamSourceOptions<P>, 'servers'>): JetStreamSource<P> => {
    const created = new JetStreamSource<P>({ servers: NATS_URL, ...options });
    sources.push(created);
    return created;
  };

  async function publish(name: string, items: unknown[]): Promise<void> {
    const js = jetstream(nc);
    for (const item of items) await js.publish(`${name}.in`, JSON.stringify(item));
  }

  async function storedPayloads(name: string): Promise<unknown[]> {
    const { state } = await jsm.streams.info(name);
    const payloads: unknown[] = [];
    for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
      const message = await jsm.streams.getMessage(name, { seq });
      if (message !== null) payloads.push(JSON.parse(decoder.decode(message.data)));
    }
    return payloads;
  }

  beforeAll(async () => {
    nc = await connect({ servers: NATS_URL });
    jsm = await jetstreamManager(nc);
  });
  afterEach(async () => {
    for (const created of sources.splice(0)) await created.close();
    for (const name of streams.splice(0)) await jsm.streams.delete(name);
  });
  afterAll(async () => {
    await nc.drain();
  });

  describe('natsSink', () => {
    it('publishes each batch and waits for every publish ack: all stored, in order', async () => {
      const name = await stream('sink');
      const sink = natsSink<Event>({ servers: NATS_URL, subject: `${name}.in` });
      await pipeline(Readable.from(events(250)), new BlockingWritable(sink, { batchSize: 100 }));
      await sink.close();
      expect(await storedPayloads(name)).toEqual(events(250));
    });

    it('with msgId, a batch published twice (a retry after a lost ack) is stored once', async () => {
      const name = await stream('dedupe');
      const sink = natsSink<Event>({ connection: nc, subject: `${name}.in`, msgId: (event) => `event-${event.n}` });
      expect(await sink(events(20), context())).toBeUndefined();
      expect(await sink(events(20), context())).toBeUndefined();
      await sink.close();
      expect(nc.isClosed()).toBe(false); // a connection passed in is left open
      expect((await jsm.streams.info(name)).state.messages).toBe(20);
    });

    it('names the messages JetStream refused: only they are retried, then dead-lettered with ERR_BROKER_REFUSED', async () => {
      const name = await stream('refused');
      const sink = natsSink<Event>({
        connection: nc,
        subject: (event) => (event.bad ? `${name}_nowhere.in` : `${name}.in`),
        ackTimeoutMs: 2000,
      });
      const items = events(12).map((event) => ({ ...event, bad: event.n % 5 === 2 }));
      const direct = (await sink(items, context())) as FlushResult<Event>;
      expect(direct).toMatchObject({ success: 10, failed: 2, failedItems: items.filter((event) => event.bad) });
      expect(direct.errors).toEqual([
        expect.objectContaining({ code: 'ERR_BROKER_REFUSED', broker: 'nats' }),
        expect.objectContaining({ code: 'ERR_BROKER_REFUSED', broker: 'nats' }),
      ]);
      await jsm.streams.purge(name);

      const deadLettered: Event[] = [];
      const sluice = new BlockingWritable(sink, {
        batchSize: 6,
        retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1 },
        onDeadLetter: (dead) => void deadLettered.push(...dead),
      });
      await pipeline(Readable.from(items), sluice);
      expect(await storedPayloads(name)).toEqual(items.filter((event) => !event.bad));
      expect(deadLettered).toEqual(items.filter((event) => event.bad));
    });
  });

  describe('JetStreamSource', () => {
    it('reads a durable pull consumer and acks after store: every message once, in order, nothing pending', async () => {
      const name = await stream('src');
      await publish(name, events(25));
      const stored: Event[] = [];
      const run = endToEnd(source({ stream: name, consumer: 'loader', maxUnacked: 10 }), (batch: Event[]) => {
        stored.push(...batch);
      });
      await waitFor('25 acks', () => run.summary().acked === 25);
      expect(await run.stop()).toEqual({ acked: 25, deadLettered: 0, nacked: 0, ackFailures: 0 });
      expect(stored).toEqual(events(25));
      const info = await jsm.consumers.info(name, 'loader');
      expect({ ackPending: info.num_ack_pending, pending: info.num_pending }).toEqual({ ackPending: 0, pending: 0 });
    });

    it('fetches only the free space: with the database held, ack-pending stops at maxUnacked and the rest waits in the stream', async () => {
      const name = await stream('bound');
      await publish(name, events(60));
      const released = deferred();
      const ackPendingSeen: number[] = [];
      const reader = source({ stream: name, consumer: 'loader', maxUnacked: 8 });
      const run = endToEnd(
        reader,
        async (batch: Event[]) => {
          ackPendingSeen.push((await jsm.consumers.info(name, 'loader')).num_ack_pending);
          if (batch[0]!.n === 0) await released.promise;
        },
        { batchSize: 4 },
      );
      await waitFor('the bound to be reached', () => reader.unacked === 8);
      const held = await jsm.consumers.info(name, 'loader');
      expect({ ackPending: held.num_ack_pending, pending: held.num_pending }).toEqual({ ackPending: 8, pending: 52 });
      released.resolve();
      await waitFor('60 acks', () => run.summary().acked === 60);
      await run.stop();
      expect(Math.max(...ackPendingSeen)).toBeLessThanOrEqual(8);
    });

    it.each([
      ['progress acks keep a long flush from being redelivered', undefined, 0],
      ['without progress acks, ack_wait runs out and JetStream redelivers', 0, 10],
    ])('%s', async (_, progressIntervalMs, redelivered) => {
      const name = await stream('progress');
      await publish(name, events(10));
      const reader = source({
        stream: name,
        consumer: 'slow',
        create: { ack_wait: 1000 * 1e6 }, // 1 s
        maxUnacked: 50,
        expiresMs: 1000,
        ...(progressIntervalMs === undefined ? {} : { progressIntervalMs }),
      });
      // The flush takes three times ack_wait while the source keeps fetching (room for 40 more);
      // at its end, how many of its messages has JetStream delivered again?
      let redeliveredDuringFlush: number | undefined;
      const run = endToEnd(
        reader,
        async () => {
          await new Promise<void>((resolve) => setTimeout(resolve, 3000));
          redeliveredDuringFlush ??= (await jsm.consumers.info(name, 'slow')).num_redelivered;
        },
        { batchSize: 10 },
      );
      await waitFor('10 acks', () => run.summary().acked === 10);
      await run.stop();
      expect(redeliveredDuringFlush).toBe(redelivered);
    });

    /**
     * Runs `test` with a source on a fresh stream that reaches NATS through a proxy the test can hold or mute.
     * expiresMs 1000: each pull asks the server for a heartbeat every 500 ms while it waits, and nats.js gives a
     * pull (fetch) up with "heartbeats missed" after two or three such intervals without one.
     */
    async function throughProxy(
      prefix: string,
      test: (edge: { proxy: CuttableProxy; name: string; reader: JetStreamSource<Event> }) => Promise<void>,
    ): Promise<void> {
      return withProxy(NATS_URL, async (proxy) => {
        const name = await stream(prefix);
        const reader = new JetStreamSource<Event>({
          servers: proxy.via(NATS_URL),
          stream: name,
          consumer: 'c',
          expiresMs: 1000,
        });
        sources.push(reader);
        await test({ proxy, name, reader });
      });
    }

    it('a pull that misses the server heartbeats (a network stall) ends, and the source pulls again', () =>
      throughProxy('stall', async ({ proxy, name, reader }) => {
        const stored: number[] = [];
        const run = endToEnd(reader, async (batch) => void stored.push(...batch.map((event) => event.n)), {
          batchSize: 1,
        });
        let failed: unknown;
        run.done.catch((error: unknown) => (failed = error));
        await publish(name, events(2));
        await waitFor('2 acks', () => run.summary().acked === 2);
        // The network stalls for 2.5 s while the source waits on a pull: no heartbeat reaches it.
        proxy.hold();
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        proxy.release();
        await publish(
          name,
          [2, 3, 4].map((n) => ({ n })),
        );
        await waitFor('5 acks', () => failed ?? run.summary().acked === 5);
        expect(failed).toBeUndefined();
        await run.stop();
        expect(stored).toEqual([0, 1, 2, 3, 4]);
      }));

    it(
      'a pull that misses heartbeats on a connection that no longer answers fails the source',
      () =>
        throughProxy('halfopen', async ({ proxy, name, reader }) => {
          const run = endToEnd(reader, async () => {}, { batchSize: 1 });
          let failed: unknown;
          run.done.catch((error: unknown) => (failed = error));
          await publish(name, events(1));
          await waitFor('1 ack', () => run.summary().acked === 1);
          // From now on nothing the server sends reaches the source (a half-open connection): the pull misses
          // its heartbeats, and the question about its consumer gets no answer within JetStream's API timeout.
          // About 1–1.5 s to miss the heartbeats, 5 s for the question to time out, 5 s for the drain that closing
          // starts (a half-open connection never answers it either).
          proxy.mute();
          await waitFor('the source to fail', () => failed !== undefined, 40_000);
          expect(String(failed)).toMatch(/timeout/i);
        }),
      60_000,
    );

    it('nack() has JetStream deliver the message again, marked redelivered', async () => {
      const name = await stream('nack');
      await publish(name, events(1));
      const seen: [string, boolean][] = [];
      for await (const message of source({ stream: name, consumer: 'c' })) {
        const m = message as BrokerMessage<Event>;
        seen.push([m.id, m.redelivered]);
        if (seen.length === 1) await m.nack();
        else {
          await m.ack();
          break;
        }
      }
      expect(seen).toEqual([
        ['1', false],
        ['1', true],
      ]);
    });

    it.each([
      ['a dead-letter subject: published there with its cause, then acked', 'subject'],
      ["'term': JetStream stops delivering it, never acked as stored", 'term'],
    ])('dead-lettered messages, %s', async (_, mode) => {
      const name = await stream('dead');
      const deadLetters = await stream('dlq');
      await publish(
        name,
        events(6).map((event) => ({ ...event, bad: event.n === 4 })),
      );
      const reader = source({
        stream: name,
        consumer: 'c',
        deadLetter: mode === 'term' ? 'term' : { subject: `${deadLetters}.in` },
      });
      const run = endToEnd(
        reader,
        (batch: Event[]) => {
          const failedItems = batch.filter((event) => event.bad);
          return { success: batch.length - failedItems.length, failed: failedItems.length, errors: [], failedItems };
        },
        { retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1 } },
      );
      await waitFor('every message settled', () => run.summary().acked + run.summary().deadLettered === 6);
      expect(await run.stop()).toEqual({ acked: 5, deadLettered: 1, nacked: 0, ackFailures: 0 });
      // The verdict is sent before the run settles, but JetStream applies it on its own schedule.
      const info = await waitFor('the verdict applied', async () => {
        const latest = await jsm.consumers.info(name, 'c');
        return latest.num_ack_pending === 0 && latest;
      });
      expect(info.num_redelivered).toBe(0);
      if (mode === 'subject') {
        const moved = await jsm.streams.getMessage(deadLetters, { seq: 1 });
        expect(JSON.parse(decoder.decode(moved!.data))).toEqual({ n: 4, bad: true });
        expect(moved!.header.get('Sluice-Stream')).toBe(name);
        expect(moved!.header.get('Sluice-Sequence')).toBe('5');
        expect(moved!.header.get('Sluice-Error')).toMatch(/^Message 5 was dead-lettered: Flush failed/);
      } else {
        expect((await jsm.streams.info(deadLetters)).state.messages).toBe(0);
      }
    });

    it('a payload that is not JSON: "invalid" with ERR_BROKER_DECODE_FAILED, dead-lettered, never pushed', async () => {
      const name = await stream('decode');
      const deadLetters = await stream('dlq');
      const js = jetstream(nc);
      await js.publish(`${name}.in`, '{"n":0}');
      await js.publish(`${name}.in`, 'not json');
      const reader = source({ stream: name, consumer: 'c', deadLetter: { subject: `${deadLetters}.in` } });
      const invalid: BrokerError[] = [];
      reader.on('invalid', (error: BrokerError) => invalid.push(error));
      const stored: Event[] = [];
      const run = endToEnd(reader, (batch: Event[]) => void stored.push(...batch));
      await waitFor('the dead letter', async () => (await jsm.streams.info(deadLetters)).state.messages === 1);
      await waitFor('the ack', () => run.summary().acked === 1);
      await run.stop();
      expect(stored).toEqual([{ n: 0 }]);
      expect(invalid).toEqual([
        expect.objectContaining({ code: 'ERR_BROKER_DECODE_FAILED', broker: 'nats', messageId: '2' }),
      ]);
      expect((await jsm.consumers.info(name, 'c')).num_ack_pending).toBe(0);
    });

    it('a consumer killed with SIGKILL mid-batch loses nothing: JetStream redelivers what it left unacked after ack_wait', async () => {
      const name = await stream('kill');
      await publish(name, events(100));
      // The durable consumer both processes share, with a short ack_wait so that a dead one's messages come back soon.
      const jsmConsumer = { durable_name: 'loader', ack_policy: AckPolicy.Explicit, ack_wait: 1000 * 1e6 };
      await jsm.consumers.add(name, jsmConsumer);
      const dir = mkdtempSync(join(tmpdir(), 'sluice-nats-kill-'));
      const storeFile = join(dir, 'stored.txt');
      try {
        const { hung, acked: ackedByDoomed } = await killAfterReport(FIXTURE, [NATS_URL, name, 'loader', storeFile]);

        const storedByDoomed = readFileSync(storeFile, 'utf8').split('\n').filter(Boolean).map(Number);
        expect(storedByDoomed).toHaveLength(ackedByDoomed + hung.length);
        const stored = new Set(storedByDoomed);
        const received: BrokerMessage<Event>[] = [];
        const heir = source({ stream: name, consumer: 'loader', create: false, expiresMs: 1000 });
        heir.on('data', (message: BrokerMessage<Event>) => received.push(message));
        const run = endToEnd(heir, (batch: Event[]) => batch.forEach((event) => stored.add(event.n)));
        await waitFor('every message left to be acked', () => run.summary().acked === 100 - ackedByDoomed);
        await run.stop();

        expect([...stored].sort((a, b) => a - b)).toEqual(events(100).map((event) => event.n)); // none lost
        const info = await jsm.consumers.info(name, 'loader');
        expect({ ackPending: info.num_ack_pending, pending: info.num_pending }).toEqual({ ackPending: 0, pending: 0 });
        // The hung batch, stored but never acked, came back marked redelivered and was stored again.
        const again = received.filter((message) => hung.includes(message.payload.n));
        expect(again.map((message) => message.payload.n).sort((a, b) => a - b)).toEqual(hung);
        expect(again.every((message) => message.redelivered)).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('validates its options', () => {
      expect(() => new JetStreamSource({ servers: NATS_URL, stream: 's' } as never)).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"consumer"') }),
      );
      expect(() => new JetStreamSource({ servers: NATS_URL, stream: 's', consumer: 'c', expiresMs: 10 })).toThrow(
        expect.objectContaining({
          code: 'ERR_OUT_OF_RANGE',
          message: 'The option "expiresMs" must be an integer >= 1000. Received 10',
        }),
      );
      expect(
        () => new JetStreamSource({ servers: NATS_URL, stream: 's', consumer: 'c', deadLetter: 'drop' as never }),
      ).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    });
  });
});
