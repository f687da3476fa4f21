/**
 * Brokers into PostgreSQL: `sluice ingest nats://…` and `redis://…` into the local server
 * (db `test`), with --dedupe (INSERT … ON CONFLICT DO NOTHING) and without (COPY), and a
 * consumer killed with SIGKILL while its batch waits on a table lock, restarted: every
 * message stored exactly once. Skipped with a message when a server is absent.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { describeBroker, uniqueName, waitFor } from '../brokers/support';
import { NATS, REDIS } from './broker-fixtures';
import { collect, runCli, startCli, summaryOf, tempDir } from './helpers';
import { describePg, uniqueTable } from './pg-server';

jest.setTimeout(120_000);

function events(count: number): string {
  let text = '';
  for (let n = 1; n <= count; n++) text += `${JSON.stringify({ n, name: `event-${n}` })}\n`;
  return text;
}

describePg('sluice ingest from a broker into PostgreSQL', (pgUrl) => {
  let admin: Client;
  let dir: string;
  let cleanup: () => void;
  let table: string;
  beforeAll(async () => {
    admin = new Client({ connectionString: pgUrl });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
  });
  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
    table = uniqueTable('sluice_broker');
  });
  afterEach(async () => {
    cleanup();
    await admin.query(`DROP TABLE IF EXISTS ${table}`);
  });

  const count = async (): Promise<{ rows: number; distinct: number }> => {
    const exists = await admin.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [table]);
    if (exists.rows[0]!.t === null) return { rows: 0, distinct: 0 };
    const { rows } = await admin.query<{ rows: number; distinct: number }>(
      `SELECT count(*)::int AS rows, count(DISTINCT n)::int AS distinct FROM ${table}`,
    );
    return rows[0]!;
  };

  const publish = async (url: string, total: number): Promise<void> => {
    const input = join(dir, 'events.ndjson');
    writeFileSync(input, events(total));
    const result = await runCli(['publish', input, '--into', url, '-q'], dir);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  };

  describeBroker('NATS JetStream → PostgreSQL', NATS.server, () => {
    let stream: string;
    beforeEach(async () => {
      stream = uniqueName('pg').toUpperCase();
      await NATS.prepare(stream);
    });
    afterEach(() => NATS.remove(stream));

    it('--dedupe: a round trip stores each message once, and a second durable reading them all again adds nothing', async () => {
      await publish(NATS.publishUrl(stream), 1000);
      const ingest = (consumer: string) =>
        runCli(
          [
            'ingest',
            NATS.ingestUrl(stream, consumer),
            '--into',
            pgUrl,
            '--table',
            table,
            '--dedupe',
            '--idle-exit',
            '1500',
            '--json',
            '-q',
          ],
          dir,
        );
      const first = await ingest('first');
      expect(first.code).toBe(0);
      expect(summaryOf(first)).toMatchObject({ read: 1000, inserted: 1000, broker: { duplicates: 0 } });
      const second = await ingest('second');
      expect(summaryOf(second)).toMatchObject({ read: 1000, inserted: 0, broker: { duplicates: 1000 } });
      expect(await count()).toEqual({ rows: 1000, distinct: 1000 });
    });

    it('SIGKILL while a batch waits on a table lock, restart with --dedupe: exactly once', async () => {
      const total = 2000;
      await publish(NATS.publishUrl(stream), total);
      const args = (extra: string[]) => [
        'ingest',
        NATS.ingestUrl(stream, 'loader'),
        '--into',
        pgUrl,
        '--table',
        table,
        '--dedupe',
        '--batch-size',
        '50',
        '--max-buffer',
        '200',
        '-q',
        '--json',
        ...extra,
      ];
      const child = startCli(args([]), dir);
      const exited = collect(child);
      await waitFor('the first rows', async () => (await count()).rows > 0, 60_000);
      const locker = new Client({ connectionString: pgUrl });
      await locker.connect();
      try {
        await locker.query(`BEGIN; LOCK TABLE ${table} IN SHARE MODE`);
        await waitFor(
          'the consumer to fill its bound',
          async () => (await NATS.view(stream, 'loader')).unacked === 200,
        );
        expect((await count()).rows).toBeLessThan(total);
        child.kill('SIGKILL');
        expect((await exited).signal).toBe('SIGKILL');
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
      const restart = await runCli(args(['--idle-exit', '4000']), dir);
      expect(restart.code).toBe(0);
      expect(await count()).toEqual({ rows: total, distinct: total });
    });
  });

  describeBroker('Redis Streams → PostgreSQL', REDIS.server, () => {
    let key: string;
    beforeEach(() => (key = uniqueName('pg')));
    afterEach(() => REDIS.remove(key));

    it('without --dedupe (COPY): a round trip stores each message once', async () => {
      await publish(REDIS.publishUrl(key), 1000);
      const result = await runCli(
        ['ingest', REDIS.ingestUrl(key, 'a'), '--into', pgUrl, '--table', table, '--idle-exit', '1500', '--json', '-q'],
        dir,
      );
      expect(result.code).toBe(0);
      expect(summaryOf(result)).toMatchObject({ read: 1000, inserted: 1000, rejected: 0 });
      expect(await count()).toEqual({ rows: 1000, distinct: 1000 });
    });
  });
});
