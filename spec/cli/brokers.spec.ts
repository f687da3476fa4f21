/**
 * `sluice publish` and `sluice ingest` with a broker at one end, run as child processes
 * against the real local NATS JetStream, Redis and RabbitMQ (skipped with a message when one
 * is absent; a failure with SLUICE_REQUIRE_BROKERS=1). Waits on the servers are bounded polls
 * of their state, never sleeps; the assertions are on rows, reject lines, exit codes and the
 * broker's own counts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describeBroker, uniqueName, waitFor } from '../brokers/support';
import { AMQP, NATS, REDIS } from './broker-fixtures';
import { collect, readRejects, runCli, startCli, summaryOf, tempDir } from './helpers';
import { selectAll } from './sqlite-db';

jest.setTimeout(120_000);

/** NDJSON `{ n, name }` for n in 1..count. */
function events(count: number): string {
  let text = '';
  for (let n = 1; n <= count; n++) text += `${JSON.stringify({ n, name: `event-${n}` })}\n`;
  return text;
}

function rowCount(db: string, table: string): number {
  try {
    return selectAll<{ c: number }>(db, `SELECT count(*) AS c FROM "${table}"`)[0]!.c;
  } catch {
    return 0; // not created yet
  }
}

for (const broker of [NATS, REDIS, AMQP]) {
  const url = { nats: NATS.server, redis: REDIS.server, amqp: AMQP.server }[broker.kind];
  describeBroker(`sluice publish | ingest with ${broker.label}`, url, () => {
    let dir: string;
    let cleanup: () => void;
    let name: string;
    beforeEach(async () => {
      ({ dir, cleanup } = tempDir());
      name = uniqueName(`cli_${broker.kind}`).toUpperCase();
      await broker.prepare(name);
    });
    afterEach(async () => {
      cleanup();
      await broker.remove(name);
    });

    const publishFile = async (count: number, extraArgs: string[] = []): Promise<void> => {
      const input = join(dir, 'events.ndjson');
      writeFileSync(input, events(count));
      const result = await runCli(
        ['publish', input, '--into', broker.publishUrl(name), '--json', '-q', ...extraArgs],
        dir,
      );
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
      expect(summaryOf(result)).toMatchObject({ read: count, published: count, rejected: 0 });
    };

    const ingestArgs = (db: string, consumer = 'loader', extra: string[] = [], group?: string): string[] => [
      'ingest',
      broker.ingestUrl(name, consumer, group),
      '--into',
      `sqlite:${db}`,
      '--table',
      'events',
      '--json',
      '-q',
      '--rejects',
      join(dir, 'rejects.ndjson'),
      ...extra,
    ];

    it('round trip: every published line becomes one row, and the broker holds nothing afterwards', async () => {
      await publishFile(500);
      const db = join(dir, 'out.db');
      const result = await runCli(ingestArgs(db, 'loader', ['--idle-exit', '1500', '--batch-size', '64']), dir);
      expect(result.code).toBe(0);
      expect(summaryOf(result)).toMatchObject({
        status: 'completed',
        read: 500,
        inserted: 500,
        rejected: 0,
        broker: { acked: 500, handedBack: 0, ackFailures: 0 },
      });
      const rows = selectAll<{ n: number; name: string }>(db, 'SELECT n, name FROM events ORDER BY n');
      expect(rows).toHaveLength(500);
      expect(rows[0]).toEqual({ n: 1, name: 'event-1' });
      expect(new Set(rows.map((row) => row.n)).size).toBe(500);
      expect(await broker.view(name, 'loader')).toMatchObject({
        waiting: 0,
        ...(broker.kind === 'amqp' ? {} : { unacked: 0 }),
      });
    });

    it('a payload that is not a JSON object: a reject line with its broker identity, then acked', async () => {
      await broker.sendRaw(name, [
        { body: '{"n":1}', id: 'm-1' },
        { body: '{"n":2,', id: 'm-2' },
        { body: '[1,2]', id: 'm-3' },
        { body: '{"n":4}', id: 'm-4' },
      ]);
      const db = join(dir, 'out.db');
      const first = await runCli(ingestArgs(db, 'loader', ['--idle-exit', '1500', '--dedupe']), dir);
      expect(first.code).toBe(0);
      expect(summaryOf(first)).toMatchObject({ read: 4, inserted: 2, rejected: 2, broker: { acked: 4 } });
      const rejects = readRejects(join(dir, 'rejects.ndjson')) as unknown as {
        id: string;
        stage: string;
        raw: string;
        error: string;
      }[];
      expect(rejects.map(({ stage, raw }) => ({ stage, raw }))).toEqual([
        { stage: 'parse', raw: '{"n":2,' },
        { stage: 'parse', raw: '[1,2]' },
      ]);
      expect(rejects[0]!.error).toMatch(/^invalid JSON/);
      // The broker identity: NATS stream:sequence, Redis key:entry-id, AMQP the message id.
      const idPattern = { nats: new RegExp(`^${name}:2$`), redis: new RegExp(`^${name}:\\d+-\\d+$`), amqp: /^m-2$/ }[
        broker.kind
      ];
      expect(rejects[0]!.id).toMatch(idPattern);
      // Acked: a second run gets nothing.
      const second = await runCli(
        ingestArgs(db, 'loader', ['--idle-exit', '1000', '--dedupe', '--rejects-append']),
        dir,
      );
      expect(summaryOf(second)).toMatchObject({ read: 0, inserted: 0 });
    });

    it('a consumer killed with SIGKILL mid-batch, restarted with --dedupe: every message stored exactly once; the unacked count stays within --max-buffer', async () => {
      const total = 3000;
      await publishFile(total);
      const db = join(dir, 'out.db');
      const args = ingestArgs(db, 'loader', ['--dedupe', '--batch-size', '50', '--max-buffer', '200']);
      const child = startCli(args, dir);
      const exited = collect(child);
      await waitFor('the first rows', () => rowCount(db, 'events') > 0, 60_000);
      // Slow the target to a halt: hold SQLite's write lock. The consumer keeps what it fetched unacked.
      const lock = new BetterSqlite3(db);
      lock.exec('BEGIN IMMEDIATE');
      try {
        const storedBefore = rowCount(db, 'events');
        expect(storedBefore).toBeLessThan(total);
        if (broker.kind !== 'amqp') {
          // Backpressure reaches the broker: the consumer holds the bound, never more, and the rest waits there.
          const view = await waitFor('the consumer to fill its bound', async () => {
            const seen = await broker.view(name, 'loader');
            return seen.unacked === 200 ? seen : undefined;
          });
          expect(view.waiting).toBeGreaterThan(0);
          for (let i = 0; i < 10; i++) expect((await broker.view(name, 'loader')).unacked).toBeLessThanOrEqual(200);
        }
        child.kill('SIGKILL');
        expect((await exited).signal).toBe('SIGKILL');
      } finally {
        lock.exec('ROLLBACK');
        lock.close();
      }
      const restart = await runCli(
        ingestArgs(db, 'loader', ['--dedupe', '--idle-exit', '4000', '--rejects-append']),
        dir,
      );
      expect(restart.code).toBe(0);
      const rows = selectAll<{ n: number; broker_id: string }>(db, 'SELECT n, broker_id FROM events');
      expect(rows).toHaveLength(total);
      expect(new Set(rows.map((row) => row.n)).size).toBe(total);
      expect(new Set(rows.map((row) => row.broker_id)).size).toBe(total);
    });

    it('--dedupe: messages delivered again (the same ids) are skipped, not stored twice', async () => {
      const db = join(dir, 'out.db');
      const bodies = Array.from({ length: 20 }, (_, i) => ({ body: JSON.stringify({ n: i + 1 }), id: `id-${i + 1}` }));
      await broker.sendRaw(name, bodies);
      const first = await runCli(ingestArgs(db, 'first', ['--dedupe', '--idle-exit', '1500']), dir);
      expect(summaryOf(first)).toMatchObject({ inserted: 20, broker: { duplicates: 0 } });
      // A second reader of the same messages: a new durable / group; AMQP: the same ids published again.
      if (broker.kind === 'amqp') await broker.sendRaw(name, bodies);
      const second = await runCli(
        ingestArgs(db, 'second', ['--dedupe', '--idle-exit', '1500', '--rejects-append'], 'second'),
        dir,
      );
      expect(summaryOf(second)).toMatchObject({ read: 20, inserted: 0, broker: { duplicates: 20 } });
      expect(rowCount(db, 'events')).toBe(20);
    });

    it('SIGTERM: stops fetching, stores and acks what it holds, exits 143', async () => {
      await publishFile(200);
      const db = join(dir, 'out.db');
      const child = startCli(ingestArgs(db, 'loader', ['--batch-size', '20']), dir);
      const exited = collect(child);
      await waitFor('all rows', () => rowCount(db, 'events') === 200, 60_000);
      child.kill('SIGTERM');
      const result = await exited;
      expect(result.code).toBe(143);
      expect(summaryOf(result)).toMatchObject({
        status: 'interrupted',
        read: 200,
        inserted: 200,
        broker: { acked: 200 },
      });
      expect(await broker.view(name, 'loader')).toMatchObject({
        waiting: 0,
        ...(broker.kind === 'amqp' ? {} : { unacked: 0 }),
      });
    });

    it('a broker that is down: one line naming it, the password masked, exit 2', async () => {
      const down = {
        nats: 'nats://alice:s3cret-pw@127.0.0.1:1/S?consumer=c',
        redis: 'redis://alice:s3cret-pw@127.0.0.1:1/S',
        amqp: 'amqp://alice:s3cret-pw@127.0.0.1:1/S',
      }[broker.kind];
      const publishDown = down.replace('?consumer=c', '');
      for (const args of [
        ['ingest', down, '--into', `sqlite:${join(dir, 'x.db')}`, '--table', 't', '-q'],
        ['publish', '-', '--into', publishDown, '-q'],
      ]) {
        const result = await runCli(args, dir, '{"n":1}\n');
        expect(result.code).toBe(2);
        expect(result.stderr).not.toContain('s3cret-pw');
        expect(result.stderr.trim().split('\n')).toEqual([
          expect.stringMatching(
            new RegExp(`^sluice: cannot connect to ${broker.kind}://alice:\\*\\*\\*@127\\.0\\.0\\.1:1/S`),
          ),
        ]);
      }
    });
  });
}
