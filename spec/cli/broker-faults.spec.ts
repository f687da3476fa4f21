/**
 * A broker lost in the middle of `sluice ingest`: the CLI reaches the real broker through a TCP
 * proxy in this process, which the test cuts (every connection destroyed, new ones refused) and
 * restores. A short outage: the clients reconnect (RabbitMQ: sluice re-opens the connection) and
 * the run goes on. A long one (past --reconnect-timeout): exit 1 with the summary, and nothing acked
 * that was not stored, which a second run checks: with --dedupe, every message ends up stored
 * exactly once.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CuttableProxy, describeBroker, uniqueName, waitFor } from '../brokers/support';
import { AMQP, NATS, REDIS } from './broker-fixtures';
import { collect, runCli, startCli, summaryOf, tempDir } from './helpers';
import { selectAll } from './sqlite-db';

jest.setTimeout(120_000);

function events(count: number): string {
  let text = '';
  for (let n = 1; n <= count; n++) text += `${JSON.stringify({ n })}\n`;
  return text;
}

function rowCount(db: string): number {
  try {
    return selectAll<{ c: number }>(db, 'SELECT count(*) AS c FROM events')[0]!.c;
  } catch {
    return 0;
  }
}

for (const broker of [NATS, REDIS, AMQP]) {
  describeBroker(`sluice ingest when ${broker.label} is lost mid-run`, broker.server, () => {
    let dir: string;
    let cleanup: () => void;
    let name: string;
    let proxy: CuttableProxy;
    let viaProxy: (url: string) => string;
    beforeEach(async () => {
      ({ dir, cleanup } = tempDir());
      name = uniqueName(`lost_${broker.kind}`).toUpperCase();
      await broker.prepare(name);
      const real = new URL(broker.server);
      proxy = new CuttableProxy({ host: real.hostname, port: Number(real.port) });
      const port = await proxy.listen();
      viaProxy = (url) => url.replace(`:${real.port}/`, `:${port}/`);
      const input = join(dir, 'events.ndjson');
      writeFileSync(input, events(1000));
      const published = await runCli(['publish', input, '--into', broker.publishUrl(name), '-q'], dir);
      expect(published.code).toBe(0);
    });
    afterEach(async () => {
      await proxy.close();
      cleanup();
      await broker.remove(name);
    });

    const args = (url: string, db: string, extra: string[]): string[] => [
      'ingest',
      url,
      '--into',
      `sqlite:${db}`,
      '--table',
      'events',
      '--dedupe',
      '--batch-size',
      '20',
      '--max-buffer',
      '100',
      '--json',
      '-q',
      '--rejects',
      join(dir, 'rejects.ndjson'),
      '--rejects-append',
      ...extra,
    ];

    it('lost for good: exit 1 with the summary; a second run stores every message exactly once', async () => {
      const db = join(dir, 'out.db');
      const child = startCli(args(viaProxy(broker.ingestUrl(name, 'loader')), db, ['--reconnect-timeout', '300']), dir);
      const exited = collect(child);
      await waitFor('the first rows', () => rowCount(db) > 0, 60_000);
      proxy.cut();
      const result = await exited;
      expect(result.code).toBe(1);
      const summary = summaryOf(result) as ReturnType<typeof summaryOf> & { broker: { acked: number } };
      expect(summary.status).toBe('failed');
      expect(result.stderr).toMatch(/^sluice: ingest failed: /m);
      // Nothing acked that is not stored: acked ≤ rows in the table (a row may be stored and not acked).
      expect(summary.broker.acked).toBeLessThanOrEqual(rowCount(db));
      const second = await runCli(args(broker.ingestUrl(name, 'loader'), db, ['--idle-exit', '4000']), dir);
      expect(second.code).toBe(0);
      const rows = selectAll<{ n: number }>(db, 'SELECT n FROM events');
      expect(rows).toHaveLength(1000);
      expect(new Set(rows.map((row) => row.n)).size).toBe(1000);
    });

    it('lost briefly: the client reconnects and the run goes on, every message stored once', async () => {
      const db = join(dir, 'out.db');
      const child = startCli(args(viaProxy(broker.ingestUrl(name, 'loader')), db, ['--idle-exit', '5000']), dir);
      const exited = collect(child);
      await waitFor('the first rows', () => rowCount(db) > 0, 60_000);
      proxy.cut();
      await waitFor('a reconnection attempt', () => proxy.refused > 0, 30_000);
      proxy.restore();
      const result = await exited;
      expect({ code: result.code, stderr: result.stderr.replace(/^sluice: warning: .*\n/gm, '') }).toEqual({
        code: 0,
        stderr: '',
      });
      const rows = selectAll<{ n: number }>(db, 'SELECT n FROM events');
      expect(rows).toHaveLength(1000);
      expect(new Set(rows.map((row) => row.n)).size).toBe(1000);
    });
  });
}
