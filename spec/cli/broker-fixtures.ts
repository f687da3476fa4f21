/**
 * The three brokers as the CLI broker specs see them: the URLs to give `sluice publish` and
 * `sluice ingest`, a way to put raw payloads in (what `sluice publish` would refuse), and the
 * broker's own view of a consumer (messages delivered and unacked, messages still waiting).
 * Real local servers, never mocks (see spec/brokers/support.ts).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect } from 'amqplib';
import { Redis } from 'ioredis';
import { AMQP_URL, NATS_URL, REDIS_URL } from '../brokers/support';

export interface BrokerView {
  /** Delivered to the consumer and not acked; undefined where the broker does not say (AMQP without the management API). */
  unacked: number | undefined;
  /** Not yet delivered to the consumer. */
  waiting: number;
}

export interface BrokerFixture {
  label: string;
  kind: 'nats' | 'redis' | 'amqp';
  /** The server URL without path, for URLs with other credentials or ports. */
  server: string;
  /** Creates what a test needs (a JetStream stream) under `name`. */
  prepare(name: string): Promise<void>;
  publishUrl(name: string): string;
  /** `group`: Redis only (a second group reads the stream again); NATS: each consumer is a durable of its own. */
  ingestUrl(name: string, consumer: string, group?: string): string;
  /** Puts raw payloads in, each with a message id where the broker has one. */
  sendRaw(name: string, bodies: { body: string; id: string }[]): Promise<void>;
  view(name: string, consumer: string): Promise<BrokerView>;
  /** Deletes the stream, key or queue. */
  remove(name: string): Promise<void>;
}

const host = (url: string): string => {
  const { hostname, port } = new URL(url);
  return `${hostname}:${port}`;
};

export const NATS: BrokerFixture = {
  label: 'NATS JetStream',
  kind: 'nats',
  server: `nats://${host(NATS_URL)}`,
  async prepare(name) {
    await withNats(async (jsm) => {
      await jsm.streams.add({ name, subjects: [`${name}.>`] });
    });
  },
  publishUrl: (name) => `nats://${host(NATS_URL)}/${name}.in`,
  // ack_wait 2 s: a message held by a killed consumer is delivered again within seconds.
  ingestUrl: (name, consumer) => `nats://${host(NATS_URL)}/${name}?consumer=${consumer}&ack-wait-ms=2000`,
  async sendRaw(name, bodies) {
    const { jetstream } = await import('@nats-io/jetstream');
    const nc: NatsConnection = await natsConnect({ servers: host(NATS_URL) });
    try {
      const js = jetstream(nc);
      for (const { body, id } of bodies) await js.publish(`${name}.in`, body, { msgID: id });
    } finally {
      await nc.close();
    }
  },
  async view(name, consumer) {
    return withNats(async (jsm) => {
      const info = await jsm.consumers.info(name, consumer);
      return { unacked: info.num_ack_pending, waiting: info.num_pending };
    });
  },
  async remove(name) {
    await withNats(async (jsm) => {
      await jsm.streams.delete(name).catch(() => undefined);
    });
  },
};

async function withNats<R>(work: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<R>): Promise<R> {
  const nc: NatsConnection = await natsConnect({ servers: host(NATS_URL) });
  try {
    return await work(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

export const REDIS: BrokerFixture = {
  label: 'Redis Streams',
  kind: 'redis',
  server: `redis://${host(REDIS_URL)}`,
  async prepare() {},
  publishUrl: (name) => `redis://${host(REDIS_URL)}/${name}`,
  ingestUrl: (name, consumer, group = 'g') => `redis://${host(REDIS_URL)}/${name}?group=${group}&consumer=${consumer}`,
  async sendRaw(name, bodies) {
    await withRedis(async (redis) => {
      for (const { body } of bodies) await redis.xadd(name, '*', 'payload', body);
    });
  },
  async view(name, consumer) {
    return withRedis(async (redis) => {
      const pending = (await redis.call('XPENDING', name, 'g', '-', '+', 1_000_000, consumer)) as unknown[];
      const groups = (await redis.call('XINFO', 'GROUPS', name)) as unknown[];
      // RESP3 (ioredis 6): each group is a map flattened to [name, value, ...] or an object.
      const group = groups[0] as unknown[] | Record<string, unknown>;
      const fields = Array.isArray(group) ? Object.fromEntries(pairs(group)) : group;
      return { unacked: pending.length, waiting: Number(fields.lag ?? 0) };
    });
  },
  async remove(name) {
    await withRedis(async (redis) => {
      await redis.del(name);
    });
  },
};

function pairs(list: unknown[]): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (let i = 0; i + 1 < list.length; i += 2) out.push([String(list[i]), list[i + 1]]);
  return out;
}

async function withRedis<R>(work: (redis: Redis) => Promise<R>): Promise<R> {
  const redis = new Redis(REDIS_URL);
  try {
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

export const AMQP: BrokerFixture = {
  label: 'RabbitMQ',
  kind: 'amqp',
  server: `amqp://guest:guest@${host(AMQP_URL)}`,
  async prepare() {},
  publishUrl: (name) => `amqp://guest:guest@${host(AMQP_URL)}/${name}`,
  ingestUrl: (name) => `amqp://guest:guest@${host(AMQP_URL)}/${name}`,
  async sendRaw(name, bodies) {
    await withAmqp(async (channel) => {
      await channel.assertQueue(name, { durable: true });
      for (const { body, id } of bodies)
        channel.sendToQueue(name, Buffer.from(body), { messageId: id, persistent: true });
      await channel.waitForConfirms();
    });
  },
  async view(name) {
    return withAmqp(async (channel) => {
      const { messageCount } = await channel.checkQueue(name);
      return { unacked: undefined, waiting: messageCount };
    });
  },
  async remove(name) {
    await withAmqp(async (channel) => {
      await channel.deleteQueue(name);
    }).catch(() => undefined);
  },
};

async function withAmqp<R>(
  work: (channel: Awaited<ReturnType<Awaited<ReturnType<typeof amqpConnect>>['createConfirmChannel']>>) => Promise<R>,
): Promise<R> {
  const connection = await amqpConnect(AMQP_URL);
  try {
    return await work(await connection.createConfirmChannel());
  } finally {
    await connection.close();
  }
}
