/**
 * Broker → sluice → SQLite: a queue of events loaded into SQLite by `endToEnd()` (each message
 * acked once its batch is committed), against a hand-written consumer loop that fetches a batch,
 * inserts it in one transaction and acks it. Each consumer runs in its own process on a freshly
 * seeded stream/queue; events/s, peak RSS, and the most messages held unacked at once.
 *
 *   npm run bench:brokers                          # 100,000 events on each broker
 *   npm run bench:brokers -- --events 20000 --brokers redis,nats
 *   npm run bench:brokers -- --bound 2000 --batch 500 --rounds 3
 *
 * Needs the local servers (Redis 6379, NATS with JetStream 4222, RabbitMQ 5672). Seeding uses
 * sluice's own broker sinks, and reports their publish rate too.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type BetterSqlite3 from 'better-sqlite3';
import type * as AmqpEdges from '../lib/brokers/amqp';
import type * as NatsEdges from '../lib/brokers/nats';
import type * as RedisEdges from '../lib/brokers/redis';
import { distDir, repoRoot, sluice } from './sluice';

const load = createRequire(__filename);
const redisEdges = (): typeof RedisEdges => load(join(distDir, 'brokers/redis')) as typeof RedisEdges;
const natsEdges = (): typeof NatsEdges => load(join(distDir, 'brokers/nats')) as typeof NatsEdges;
const amqpEdges = (): typeof AmqpEdges => load(join(distDir, 'brokers/amqp')) as typeof AmqpEdges;

const REDIS_URL = 'redis://127.0.0.1:6379';
const NATS_URL = 'nats://127.0.0.1:4222';
const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
type Broker = 'redis' | 'nats' | 'amqp';

interface Event {
  id: number;
  at: string;
  user: string;
  kind: string;
  amount: number;
  message: string;
}

const KINDS = ['click', 'view', 'purchase', 'signup', 'error'];
function event(id: number): Event {
  return {
    id,
    at: new Date(Date.UTC(2024, 0, 1) + id * 937).toISOString(),
    user: `user-${(id * 7919) % 100_000}`,
    kind: KINDS[id % KINDS.length]!,
    amount: Math.round(((id * 31) % 100_000) / 7) / 100,
    message: 'the quick brown fox jumps over the lazy dog '.repeat(1 + (id % 3)),
  };
}

interface Options {
  events: number;
  bound: number;
  batch: number;
}

/** What a consumer child reports. */
interface Report {
  rows: number;
  seconds: number;
  peakRssMiB: number;
  maxUnacked: number;
}

// ---------------------------------------------------------------- the database, the same for both consumers

function openDatabase(path: string): { insert: (rows: Event[]) => void; count: () => number; close: () => void } {
  const Database = load(join(repoRoot, 'node_modules/better-sqlite3')) as typeof BetterSqlite3;
  for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(
    'CREATE TABLE events (id INTEGER PRIMARY KEY, at TEXT, user TEXT, kind TEXT, amount REAL, message TEXT) STRICT',
  );
  // OR IGNORE: a redelivered message is stored once (none is expected here; the count checks it).
  const statement = db.prepare('INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)');
  const insert = db.transaction((rows: Event[]) => {
    for (const r of rows) statement.run(r.id, r.at, r.user, r.kind, r.amount, r.message);
  });
  return {
    insert,
    count: () => (db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n,
    close: () => db.close(),
  };
}

// ---------------------------------------------------------------- seeding, with sluice's own sinks

async function seed(broker: Broker, name: string, options: Options): Promise<number> {
  const sink =
    broker === 'redis'
      ? redisEdges().redisStreamSink<Event>({ url: REDIS_URL, stream: name })
      : broker === 'nats'
        ? natsEdges().natsSink<Event>({ servers: NATS_URL, subject: `${name}.in`, msgId: (e) => String(e.id) })
        : amqpEdges().amqpSink<Event>({ url: AMQP_URL, routingKey: name });
  if (broker === 'nats')
    await natsAdmin((jsm) => jsm.streams.add({ name, subjects: [`${name}.>`] }).then(() => undefined));
  if (broker === 'amqp')
    await amqpAdmin((channel) => channel.assertQueue(name, { durable: true }).then(() => undefined));
  const started = performance.now();
  const ids = (function* () {
    for (let id = 1; id <= options.events; id++) yield event(id);
  })();
  await pipeline(Readable.from(ids), new sluice.BlockingWritable(sink, { batchSize: 1000, maxBufferSize: 10_000 }));
  const seconds = (performance.now() - started) / 1000;
  await sink.close();
  return options.events / seconds;
}

async function cleanup(broker: Broker, name: string): Promise<void> {
  if (broker === 'redis') {
    const { Redis } = load('ioredis') as typeof import('ioredis');
    const client = new Redis(REDIS_URL);
    await client.del(name);
    await client.quit();
  } else if (broker === 'nats') await natsAdmin((jsm) => jsm.streams.delete(name).then(() => undefined));
  else await amqpAdmin((channel) => channel.deleteQueue(name).then(() => undefined));
}

async function natsAdmin(work: (jsm: import('@nats-io/jetstream').JetStreamManager) => Promise<void>): Promise<void> {
  const { connect } = load('@nats-io/transport-node') as typeof import('@nats-io/transport-node');
  const { jetstreamManager } = load('@nats-io/jetstream') as typeof import('@nats-io/jetstream');
  const nc: import('@nats-io/nats-core').NatsConnection = await connect({ servers: NATS_URL });
  await work(await jetstreamManager(nc));
  await nc.drain();
}

async function amqpAdmin(work: (channel: import('amqplib').Channel) => Promise<void>): Promise<void> {
  const { connect } = load('amqplib') as typeof import('amqplib');
  const connection = await connect(AMQP_URL);
  await work(await connection.createChannel());
  await connection.close();
}

// ---------------------------------------------------------------- consumer children

/** endToEnd(source → BlockingWritable → SQLite), stopped once every event is acked. */
async function sluiceConsumer(broker: Broker, name: string, db: string, options: Options): Promise<Report> {
  const database = openDatabase(db);
  const common = { maxUnacked: options.bound };
  const source =
    broker === 'redis'
      ? new (redisEdges().RedisStreamSource)<Event>({
          url: REDIS_URL,
          stream: name,
          group: 'bench',
          consumer: 'c',
          ...common,
        })
      : broker === 'nats'
        ? new (natsEdges().JetStreamSource)<Event>({ servers: NATS_URL, stream: name, consumer: 'bench', ...common })
        : new (amqpEdges().AmqpSource)<Event>({ url: AMQP_URL, queue: name, ...common });
  let maxUnacked = 0;
  const started = performance.now();
  const run = (broker === 'redis' ? redisEdges() : broker === 'nats' ? natsEdges() : amqpEdges()).endToEnd(
    source,
    (rows: Event[]) => {
      maxUnacked = Math.max(maxUnacked, source.unacked);
      database.insert(rows);
    },
    { batchSize: options.batch },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (run.summary().acked >= options.events) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
    run.done.catch(reject);
  });
  const seconds = (performance.now() - started) / 1000;
  await run.stop();
  const rows = database.count();
  database.close();
  return { rows, seconds, peakRssMiB: process.resourceUsage().maxRSS / 1024, maxUnacked };
}

/** What one would write without sluice: fetch a batch, insert it in one transaction, ack it, repeat. */
async function handConsumer(broker: Broker, name: string, db: string, options: Options): Promise<Report> {
  const database = openDatabase(db);
  const decode = (bytes: Uint8Array): Event => JSON.parse(Buffer.from(bytes).toString('utf8')) as Event;
  let stored = 0;
  let maxUnacked = 0;
  const started = performance.now();
  if (broker === 'redis') {
    const { Redis } = load('ioredis') as typeof import('ioredis');
    const client = new Redis(REDIS_URL);
    await client.call('XGROUP', 'CREATE', name, 'bench', '0', 'MKSTREAM');
    while (stored < options.events) {
      const reply = (await client.callBuffer(
        'XREADGROUP',
        'GROUP',
        'bench',
        'c',
        'COUNT',
        options.batch,
        'BLOCK',
        1000,
        'STREAMS',
        name,
        '>',
      )) as [Buffer, [Buffer, Buffer[]][]] | null;
      const entries = reply === null ? [] : reply[1];
      if (entries.length === 0) continue;
      maxUnacked = Math.max(maxUnacked, entries.length);
      database.insert(entries.map(([, fields]) => decode(fields[1]!)));
      await client.call('XACK', name, 'bench', ...entries.map(([id]) => id.toString()));
      stored += entries.length;
    }
    await client.quit();
  } else if (broker === 'nats') {
    const { connect } = load('@nats-io/transport-node') as typeof import('@nats-io/transport-node');
    const { jetstream, jetstreamManager, AckPolicy } = load(
      '@nats-io/jetstream',
    ) as typeof import('@nats-io/jetstream');
    const nc: import('@nats-io/nats-core').NatsConnection = await connect({ servers: NATS_URL });
    await (await jetstreamManager(nc)).consumers.add(name, { durable_name: 'bench', ack_policy: AckPolicy.Explicit });
    const consumer = await jetstream(nc).consumers.get(name, 'bench');
    while (stored < options.events) {
      const batch: import('@nats-io/jetstream').JsMsg[] = [];
      for await (const message of await consumer.fetch({ max_messages: options.batch, expires: 1000 }))
        batch.push(message);
      if (batch.length === 0) continue;
      maxUnacked = Math.max(maxUnacked, batch.length);
      database.insert(batch.map((message) => decode(message.data)));
      await Promise.all(batch.map((message) => message.ackAck()));
      stored += batch.length;
    }
    await nc.drain();
  } else {
    const { connect } = load('amqplib') as typeof import('amqplib');
    const connection = await connect(AMQP_URL);
    const channel = await connection.createChannel();
    await channel.prefetch(options.batch);
    await new Promise<void>((resolve) => {
      let batch: import('amqplib').ConsumeMessage[] = [];
      let idle: NodeJS.Timeout | undefined;
      const flush = (): void => {
        clearTimeout(idle);
        if (batch.length === 0) return;
        maxUnacked = Math.max(maxUnacked, batch.length);
        database.insert(batch.map((message) => decode(message.content)));
        channel.ack(batch.at(-1)!, true);
        stored += batch.length;
        batch = [];
        if (stored >= options.events) resolve();
      };
      void channel.consume(name, (message) => {
        if (message === null) return;
        batch.push(message);
        if (batch.length === options.batch) flush();
        else {
          clearTimeout(idle);
          idle = setTimeout(flush, 50);
        }
      });
    });
    await connection.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const rows = database.count();
  database.close();
  return { rows, seconds, peakRssMiB: process.resourceUsage().maxRSS / 1024, maxUnacked };
}

// ---------------------------------------------------------------- the parent

function consume(kind: 'sluice' | 'hand', broker: Broker, name: string, options: Options): Report {
  const db = join(tmpdir(), `sluice-bench-${broker}-${kind}.db`);
  const child = spawnSync(
    process.execPath,
    [__filename, '--consume', kind, broker, name, db, JSON.stringify(options)],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  for (const suffix of ['', '-wal', '-shm']) rmSync(db + suffix, { force: true });
  if (child.status !== 0) throw new Error(`${kind} consumer on ${broker} failed (${child.status}): ${child.stderr}`);
  const report = JSON.parse(child.stdout.trim().split('\n').pop()!) as Report;
  if (report.rows !== options.events)
    throw new Error(`${kind} consumer on ${broker} stored ${report.rows} of ${options.events}`);
  return report;
}

function flag(args: string[], name: string, fallback: string): string {
  const at = args.indexOf(name);
  return at === -1 ? fallback : args[at + 1]!;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--consume') {
    const [, kind, broker, name, db, json] = args as [string, 'sluice' | 'hand', Broker, string, string, string];
    const options = JSON.parse(json) as Options;
    const report = await (kind === 'sluice' ? sluiceConsumer : handConsumer)(broker, name, db, options);
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return;
  }
  const options: Options = {
    events: Number(flag(args, '--events', '100000')),
    bound: Number(flag(args, '--bound', '2000')),
    batch: Number(flag(args, '--batch', '500')),
  };
  const rounds = Number(flag(args, '--rounds', '1'));
  const brokers = flag(args, '--brokers', 'redis,nats,amqp').split(',') as Broker[];
  console.log(
    `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}; ${options.events} events of ~${Buffer.byteLength(JSON.stringify(event(2)))} bytes; ` +
      `sluice: maxUnacked ${options.bound}, batchSize ${options.batch}; hand loop: batches of ${options.batch}; best of ${rounds}\n`,
  );
  console.log(
    '| broker | publish (sluice sink) | sluice consumer | hand-written loop | ratio | peak RSS sluice / loop | max unacked sluice / loop |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const broker of brokers) {
    let publish = 0;
    const best: Record<'sluice' | 'hand', Report | undefined> = { sluice: undefined, hand: undefined };
    for (let round = 0; round < rounds; round++) {
      for (const kind of ['sluice', 'hand'] as const) {
        const name = `sluice_bench_${broker}_${kind}_${process.pid}_${round}`;
        publish = Math.max(publish, await seed(broker, name, options));
        try {
          const report = consume(kind, broker, name, options);
          if (best[kind] === undefined || report.seconds < best[kind].seconds) best[kind] = report;
        } finally {
          await cleanup(broker, name);
        }
      }
    }
    const s = best.sluice!;
    const h = best.hand!;
    const rate = (r: Report): number => r.rows / r.seconds;
    console.log(
      `| ${broker} | ${fmt(publish)}/s | ${fmt(rate(s))}/s | ${fmt(rate(h))}/s | ${(rate(s) / rate(h)).toFixed(2)}× | ` +
        `${s.peakRssMiB.toFixed(0)} / ${h.peakRssMiB.toFixed(0)} MiB | ${s.maxUnacked} / ${h.maxUnacked} |`,
    );
  }
}

function fmt(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
