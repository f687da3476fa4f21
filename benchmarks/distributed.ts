/**
 * What a deployment runs on many machines, on one: 3 `sluice publish` processes publish
 * 300,000 events to a broker while 2 `sluice ingest` processes load them into PostgreSQL
 * (--dedupe); halfway, one consumer is killed with SIGKILL and restarted under the same name.
 * Checked: exactly one row per event (by event id and by broker id). Reported: end-to-end
 * events/s, each consumer's peak RSS, the broker's backlog over time (a chart in docs/img/).
 *
 * Then the consumers alone, on the stream as it is now (300,000 messages, read again by a new
 * durable / group into a new table): 2 `sluice ingest` processes against 2 hand-written loops
 * (fetch a batch, one multi-row INSERT … ON CONFLICT DO NOTHING, ack the batch) of the same
 * batch size, alternated for --rounds rounds; medians and their ratio (goal ≥ 0.9×).
 *
 *   npm run bench:distributed                              # NATS JetStream and Redis Streams, 300,000 events
 *   npm run bench:distributed -- --events 30000 --brokers nats --rounds 1
 *
 * Needs the local servers: NATS with JetStream 4222, Redis 6379, PostgreSQL 5432 (db test;
 * SLUICE_PG_URL to change it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Pg from 'pg';
import { sizeTraceSvg } from './charts';
import { median } from './common';
import { repoRoot } from './sluice';

const load = createRequire(join(repoRoot, 'package.json'));
const CLI = join(repoRoot, 'dist/cli/main.js');
const NATS_HOST = '127.0.0.1:4222';
const REDIS_HOST = '127.0.0.1:6379';
const PG_URL = process.env.SLUICE_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
type Broker = 'nats' | 'redis';

interface Options {
  events: number;
  batch: number;
  bound: number;
}

const KINDS = ['click', 'view', 'purchase', 'signup', 'error'];
function event(id: number): string {
  return JSON.stringify({
    id,
    at: new Date(Date.UTC(2024, 0, 1) + id * 937).toISOString(),
    user: `user-${(id * 7919) % 100_000}`,
    kind: KINDS[id % KINDS.length]!,
    amount: Math.round(((id * 31) % 100_000) / 7) / 100 + 0.5,
    message: 'the quick brown fox jumps over the lazy dog '.repeat(1 + (id % 3)),
  });
}

// ---------------------------------------------------------------- the database

async function pg(): Promise<Pg.Client> {
  const { Client } = load('pg') as typeof Pg;
  const client = new Client({ connectionString: PG_URL });
  await client.connect();
  return client;
}

/** The table both kinds of consumer load, made beforehand so that two consumers do not race to create it. */
async function createTable(db: Pg.Client, table: string): Promise<void> {
  await db.query(`DROP TABLE IF EXISTS ${table}`);
  await db.query(
    `CREATE TABLE ${table} (broker_id TEXT, id BIGINT, at TEXT, "user" TEXT, kind TEXT, amount DOUBLE PRECISION, message TEXT)`,
  );
  // The name `sluice ingest --dedupe` gives its index, so that it finds this one.
  await db.query(`CREATE UNIQUE INDEX ${table}_broker_id_sluice_key ON ${table} (broker_id)`);
}

async function rowCount(db: Pg.Client, table: string): Promise<number> {
  return (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
}

// ---------------------------------------------------------------- the brokers

async function natsAdmin<R>(work: (jsm: import('@nats-io/jetstream').JetStreamManager) => Promise<R>): Promise<R> {
  const { connect } = load('@nats-io/transport-node') as typeof import('@nats-io/transport-node');
  const { jetstreamManager } = load('@nats-io/jetstream') as typeof import('@nats-io/jetstream');
  const nc: import('@nats-io/nats-core').NatsConnection = await connect({ servers: NATS_HOST });
  try {
    return await work(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

async function withRedis<R>(work: (redis: import('ioredis').Redis) => Promise<R>): Promise<R> {
  const { Redis } = load('ioredis') as typeof import('ioredis');
  const redis = new Redis(`redis://${REDIS_HOST}`);
  try {
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

async function resetBroker(broker: Broker, name: string): Promise<void> {
  if (broker === 'nats')
    await natsAdmin(async (jsm) => {
      await jsm.streams.delete(name).catch(() => undefined);
      await jsm.streams.add({ name, subjects: [`${name}.>`], duplicate_window: 10 * 60 * 1e9 });
    });
  else await withRedis((redis) => redis.del(name));
}

/** Messages not yet acked by the consumer group: waiting plus delivered-unacked. */
async function backlog(broker: Broker, name: string, consumer: string): Promise<number> {
  if (broker === 'nats') {
    return natsAdmin(async (jsm) => {
      const info = await jsm.consumers.info(name, consumer).catch(() => undefined);
      if (info === undefined) return (await jsm.streams.info(name)).state.messages;
      return info.num_pending + info.num_ack_pending;
    });
  }
  return withRedis(async (redis) => {
    const length = await redis.xlen(name);
    const groups = (await redis.call('XINFO', 'GROUPS', name).catch(() => [])) as unknown[];
    const group = groups.map(fields).find((g) => g.name === consumer);
    if (group === undefined) return length;
    return Number(group.lag ?? 0) + Number(group.pending ?? 0);
  });
}

function fields(entry: unknown): Record<string, unknown> {
  if (!Array.isArray(entry)) return entry as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < entry.length; i += 2) out[String(entry[i])] = entry[i + 1];
  return out;
}

function ingestUrl(broker: Broker, name: string, group: string, consumer: string): string {
  return broker === 'nats'
    ? `nats://${NATS_HOST}/${name}?consumer=${group}&ack-wait-ms=3000`
    : `redis://${REDIS_HOST}/${name}?group=${group}&consumer=${consumer}&claim-idle-ms=5000`;
}

// ---------------------------------------------------------------- processes

interface Running {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** Peak RSS seen in /proc (VmHWM), in bytes. */
  peakRss: number;
}

function run(args: string[]): Running {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const running: Running = {
    child,
    peakRss: 0,
    exited: new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))),
  };
  return running;
}

function samplePeakRss(running: Running): void {
  try {
    const status = readFileSync(`/proc/${running.child.pid}/status`, 'utf8');
    const match = /VmHWM:\s+(\d+) kB/.exec(status);
    if (match !== null) running.peakRss = Math.max(running.peakRss, Number(match[1]) * 1024);
  } catch {
    // exited
  }
}

function sluiceConsumer(broker: Broker, name: string, group: string, consumer: string, table: string, o: Options) {
  const args = [CLI, 'ingest', ingestUrl(broker, name, group, consumer), '--into', PG_URL, '--table', table];
  args.push('--dedupe', '--batch-size', String(o.batch), '--max-buffer', String(o.bound), '--idle-exit', '8000', '-q');
  return run(args);
}

/**
 * The consumers compared: `hand` acks as sluice does (NATS: ackAck, confirmed; Redis: XACK awaited), with the
 * client's default options, as a user writes it; NATS only: `hand-notraces`, the same with `noAsyncTraces`
 * (the option sluice's own connections use), and `hand-unconfirmed`, ack() and one flush per batch.
 */
type Kind = 'sluice' | 'hand' | 'hand-notraces' | 'hand-unconfirmed';

function handConsumer(kind: Kind) {
  return (broker: Broker, name: string, group: string, consumer: string, table: string, o: Options) =>
    run([__filename, '--hand', kind, broker, name, group, consumer, table, JSON.stringify(o)]);
}

const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 600_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

// ---------------------------------------------------------------- the hand-written consumer loop

/** Fetch a batch, insert it in one statement (ON CONFLICT DO NOTHING), ack it; until 3 s without a message. */
async function handLoop(
  variant: Kind,
  broker: Broker,
  name: string,
  group: string,
  consumer: string,
  table: string,
  o: Options,
) {
  const db = await pg();
  const insert = async (rows: { brokerId: string; body: string }[]): Promise<void> => {
    const params: unknown[] = [];
    const tuples: string[] = [];
    for (const { brokerId, body } of rows) {
      const e = JSON.parse(body) as Record<string, unknown>;
      const at = params.length;
      params.push(brokerId, e.id, e.at, e.user, e.kind, e.amount, e.message);
      tuples.push(`($${at + 1}, $${at + 2}, $${at + 3}, $${at + 4}, $${at + 5}, $${at + 6}, $${at + 7})`);
    }
    await db.query(
      `INSERT INTO ${table} (broker_id, id, at, "user", kind, amount, message) VALUES ${tuples.join(', ')} ON CONFLICT (broker_id) DO NOTHING`,
      params,
    );
  };
  let idleSince = Date.now();
  if (broker === 'nats') {
    const { connect } = load('@nats-io/transport-node') as typeof import('@nats-io/transport-node');
    const js = load('@nats-io/jetstream') as typeof import('@nats-io/jetstream');
    const nc: import('@nats-io/nats-core').NatsConnection = await connect({
      servers: NATS_HOST,
      ...(variant === 'hand-notraces' ? { noAsyncTraces: true } : {}),
    });
    const jsm = await js.jetstreamManager(nc);
    await jsm.consumers
      .add(name, { durable_name: group, ack_policy: js.AckPolicy.Explicit, max_ack_pending: -1 })
      .catch(() => undefined);
    const source = await js.jetstream(nc).consumers.get(name, group);
    while (Date.now() - idleSince < 3000) {
      const batch: import('@nats-io/jetstream').JsMsg[] = [];
      for await (const m of await source.fetch({ max_messages: o.batch, expires: 1000 })) batch.push(m);
      if (batch.length === 0) continue;
      await insert(batch.map((m) => ({ brokerId: `${name}:${m.seq}`, body: m.string() })));
      // 'hand': confirmed acks, the guarantee sluice's JetStream source gives; 'hand-unconfirmed': ack() and one flush.
      if (variant !== 'hand-unconfirmed') await Promise.all(batch.map((m) => m.ackAck()));
      else {
        for (const m of batch) m.ack();
        await nc.flush();
      }
      idleSince = Date.now();
    }
    await nc.close();
  } else {
    await withRedis(async (redis) => {
      await redis.call('XGROUP', 'CREATE', name, group, '0', 'MKSTREAM').catch(() => undefined);
      while (Date.now() - idleSince < 3000) {
        const reply = await redis.callBuffer(
          'XREADGROUP',
          ...['GROUP', group, consumer, 'COUNT', o.batch, 'BLOCK', 1000, 'STREAMS', name, '>'],
        );
        const entries = redisEntries(reply);
        if (entries.length === 0) continue;
        await insert(entries.map(([id, body]) => ({ brokerId: `${name}:${id}`, body })));
        await redis.call('XACK', name, group, ...entries.map(([id]) => id));
        idleSince = Date.now();
      }
    });
  }
  await db.end();
}

/** XREADGROUP's reply (RESP2 or RESP3 as ioredis gives it) as [entry id, payload] pairs. */
function redisEntries(reply: unknown): [string, string][] {
  if (reply === null || !Array.isArray(reply) || reply.length === 0) return [];
  const entries = (Buffer.isBuffer(reply[0]) ? reply[1] : (reply[0] as unknown[])[1]) as [Buffer, Buffer[]][];
  return entries.map(([id, f]) => [id.toString(), f[1]!.toString()]);
}

// ---------------------------------------------------------------- the scenarios

interface Scenario {
  seconds: number;
  rows: number;
  distinctIds: number;
  distinctBrokerIds: number;
  peakRss: { label: string; bytes: number }[];
  trace: { t: number; size: number }[];
  killedAt: number;
}

/** 3 publishers, 2 consumers, one SIGKILLed halfway and restarted. */
async function scenario(broker: Broker, o: Options, dir: string): Promise<Scenario> {
  const name = `SLUICE_DIST_${broker.toUpperCase()}`;
  const table = `sluice_dist_${broker}`;
  const db = await pg();
  await resetBroker(broker, name);
  await createTable(db, table);
  const per = Math.ceil(o.events / 3);
  const files = [0, 1, 2].map((p) => {
    const file = join(dir, `producer-${p}.ndjson`);
    let text = '';
    for (let id = p * per + 1; id <= Math.min(o.events, (p + 1) * per); id++) text += `${event(id)}\n`;
    writeFileSync(file, text);
    return file;
  });
  const into = broker === 'nats' ? `nats://${NATS_HOST}/${name}.in` : `redis://${REDIS_HOST}/${name}`;
  const started = performance.now();
  const producers = files.map((file) => run([CLI, 'publish', file, '--into', into, '--id-field', 'id', '-q']));
  const consumers: { label: string; running: Running }[] = [
    { label: 'consumer A (killed)', running: sluiceConsumer(broker, name, 'loader', 'a', table, o) },
    { label: 'consumer B', running: sluiceConsumer(broker, name, 'loader', 'b', table, o) },
  ];
  const trace: { t: number; size: number }[] = [];
  let killedAt = -1;
  let rows = 0;
  while (rows < o.events) {
    const t = performance.now() - started;
    for (const { running } of consumers) samplePeakRss(running);
    trace.push({ t, size: await backlog(broker, name, 'loader') });
    rows = await rowCount(db, table);
    if (killedAt < 0 && rows >= o.events / 2) {
      killedAt = t;
      consumers[0]!.running.child.kill('SIGKILL');
      await consumers[0]!.running.exited;
      consumers.push({
        label: 'consumer A (restarted)',
        running: sluiceConsumer(broker, name, 'loader', 'a', table, o),
      });
    }
    if (t > 900_000) throw new Error(`${broker}: ${rows} rows after 15 minutes`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const seconds = (performance.now() - started) / 1000;
  trace.push({ t: seconds * 1000, size: await backlog(broker, name, 'loader') });
  for (const p of producers) {
    const result = await p.exited;
    if (result.code !== 0) throw new Error(`a producer failed (${result.code}): ${result.stderr}`);
  }
  for (const { running } of consumers.slice(1)) {
    const result = await running.exited;
    if (result.code !== 0) throw new Error(`a consumer failed (${result.code}): ${result.stderr}`);
  }
  const { rows: counts } = await db.query<{ rows: number; ids: number; bids: number }>(
    `SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids, count(DISTINCT broker_id)::int AS bids FROM ${table}`,
  );
  await db.query(`DROP TABLE ${table}`);
  await db.end();
  return {
    seconds,
    rows: counts[0]!.rows,
    distinctIds: counts[0]!.ids,
    distinctBrokerIds: counts[0]!.bids,
    peakRss: consumers.map(({ label, running }) => ({ label, bytes: running.peakRss })),
    trace,
    killedAt,
  };
}

/** Two consumers of one kind drain the stream as it is (a new durable / group, a new table); rows/s. */
async function drain(broker: Broker, kind: Kind, round: number, o: Options): Promise<number> {
  const name = `SLUICE_DIST_${broker.toUpperCase()}`;
  const table = `sluice_dist_${broker}_${kind.replace('-', '_')}`;
  const group = `drain_${kind.replace('-', '_')}_${round}`;
  const db = await pg();
  await createTable(db, table);
  const start = kind === 'sluice' ? sluiceConsumer : handConsumer(kind);
  const started = performance.now();
  const consumers = ['a', 'b'].map((c) => start(broker, name, group, c, table, o));
  await until(`${kind} consumers on ${broker}`, async () => (await rowCount(db, table)) >= o.events);
  const seconds = (performance.now() - started) / 1000;
  for (const c of consumers) {
    const result = await c.exited;
    if (result.code !== 0) throw new Error(`${kind} consumer failed (${result.code}): ${result.stderr}`);
  }
  const rows = await rowCount(db, table);
  if (rows !== o.events) throw new Error(`${kind} consumers on ${broker} stored ${rows} of ${o.events}`);
  await db.query(`DROP TABLE ${table}`);
  await db.end();
  return o.events / seconds;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

function flag(args: string[], name: string, fallback: string): string {
  const at = args.indexOf(name);
  return at === -1 ? fallback : args[at + 1]!;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--hand') {
    const [, kind, broker, name, group, consumer, table, json] = args as [
      string,
      Kind,
      Broker,
      string,
      string,
      string,
      string,
      string,
    ];
    await handLoop(kind, broker, name, group, consumer, table, JSON.parse(json) as Options);
    return;
  }
  const o: Options = {
    events: Number(flag(args, '--events', '300000')),
    batch: Number(flag(args, '--batch', '500')),
    bound: Number(flag(args, '--bound', '2000')),
  };
  const rounds = Number(flag(args, '--rounds', '3'));
  const brokers = flag(args, '--brokers', 'nats,redis').split(',') as Broker[];
  const dir = mkdtempSync(join(tmpdir(), 'sluice-dist-'));
  console.log(
    `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}; ${fmt(o.events)} events; 3 producers, 2 consumers; ` +
      `batch ${o.batch}, --max-buffer ${o.bound}; consumer comparison: median of ${rounds} alternated round(s)\n`,
  );
  const table: string[] = [
    '| broker | end to end (publish → stored, kill + restart included) | rows / distinct event ids / distinct broker ids | peak RSS per consumer | sluice consumers | hand-written loops, same acks | ratio | same, with `noAsyncTraces` | ratio | hand-written, unconfirmed acks | ratio |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  try {
    for (const broker of brokers) {
      const s = await scenario(broker, o, dir);
      const exact = s.rows === o.events && s.distinctIds === o.events && s.distinctBrokerIds === o.events;
      if (!exact)
        console.error(
          `${broker}: NOT exactly once: ${s.rows} rows, ${s.distinctIds} ids, ${s.distinctBrokerIds} broker ids`,
        );
      const chart = join(repoRoot, 'docs/img', `distributed-${broker}.svg`);
      writeFileSync(
        chart,
        sizeTraceSvg(
          `${broker === 'nats' ? 'NATS JetStream' : 'Redis Streams'}: messages not yet acked (consumer A killed at ${(s.killedAt / 1000).toFixed(1)} s)`,
          s.trace,
          [{ label: `${fmt(o.events)} events`, size: o.events }],
        ),
      );
      const rates: Record<Kind, number[]> = { sluice: [], hand: [], 'hand-notraces': [], 'hand-unconfirmed': [] };
      const kinds: Kind[] =
        broker === 'nats' ? ['sluice', 'hand', 'hand-notraces', 'hand-unconfirmed'] : ['sluice', 'hand'];
      for (let round = 0; round < rounds; round++) {
        // Rotated each round, so that no kind always runs first (or last) on a machine whose load drifts.
        for (let k = 0; k < kinds.length; k++) {
          const kind = kinds[(k + round) % kinds.length]!;
          rates[kind].push(await drain(broker, kind, round, o));
        }
      }
      const sluiceRate = median(rates.sluice);
      const handRate = median(rates.hand);
      const optional = (kind: Kind): number | undefined => (rates[kind].length === 0 ? undefined : median(rates[kind]));
      const ratioCells = (rate: number | undefined): string =>
        rate === undefined ? '– | – |' : `${fmt(rate)} rows/s | ${(sluiceRate / rate).toFixed(2)}× |`;
      console.log(
        `${broker}: end to end ${s.seconds.toFixed(1)} s; drains (rows/s) ${kinds.map((k) => `${k} ${rates[k].map(fmt).join(', ')}`).join('; ')}`,
      );
      table.push(
        `| ${broker === 'nats' ? 'NATS JetStream' : 'Redis Streams'} | ${fmt(o.events / s.seconds)} events/s (${s.seconds.toFixed(1)} s) | ` +
          `${fmt(s.rows)} / ${fmt(s.distinctIds)} / ${fmt(s.distinctBrokerIds)}${exact ? ' ✓' : ' ✗'} | ` +
          `${s.peakRss.map((r) => `${r.label.replace('consumer ', '')} ${mib(r.bytes)}`).join(', ')} | ` +
          `${fmt(sluiceRate)} rows/s | ${fmt(handRate)} rows/s | ${(sluiceRate / handRate).toFixed(2)}× | ` +
          `${ratioCells(optional('hand-notraces'))} ${ratioCells(optional('hand-unconfirmed'))}`,
      );
      await resetBroker(broker, `SLUICE_DIST_${broker.toUpperCase()}`);
      if (broker === 'nats') await natsAdmin((jsm) => jsm.streams.delete(`SLUICE_DIST_NATS`));
      else await withRedis((redis) => redis.del('SLUICE_DIST_REDIS'));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${table.join('\n')}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
