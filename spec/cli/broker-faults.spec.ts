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
      // Given up, the connection's commands fail at once. ioredis kept those in flight at the drop for a
      // reconnect until its commandTimeout ("Command timed out" in an ack warning): 22 s to exit.
      if (broker === REDIS) expect(result.stderr).not.toMatch(/Command timed out/);
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

/*
 * `sluice publish` into RabbitMQ, lost mid-run: the library's amqpSink re-opens the connection
 * (the NATS and Redis clients do it themselves). The input comes on stdin, written by the test,
 * so that the cut falls between two known parts of it.
 */
describeBroker('sluice publish when RabbitMQ is lost mid-run', AMQP.server, () => {
  let dir: string;
  let cleanup: () => void;
  let name: string;
  let proxy: CuttableProxy;
  let url: string;
  beforeEach(async () => {
    ({ dir, cleanup } = tempDir());
    name = uniqueName('lost_publish').toUpperCase();
    const real = new URL(AMQP.server);
    proxy = new CuttableProxy({ host: real.hostname, port: Number(real.port) });
    await proxy.listen();
    url = `${proxy.via(AMQP.server)}/${name}`;
    await AMQP.sendRaw(name, []); // declares the queue, so that it can be watched before the CLI starts
  });
  afterEach(async () => {
    await proxy.close();
    cleanup();
    await AMQP.remove(name);
  });

  const queued = async (): Promise<number> => (await AMQP.view(name, '')).waiting;

  /** Starts `sluice publish -` and feeds it 50 lines, waiting until RabbitMQ holds them; then cuts the proxy. */
  async function publishThenCut(extra: string[]): Promise<ReturnType<typeof startCli>> {
    const args = ['publish', '-', '--into', url, '--batch-size', '10', '--json', '-q', '--rejects'];
    const child = startCli([...args, join(dir, 'rejects.ndjson'), ...extra], dir);
    child.stdin.write(events(50));
    await waitFor('the first 50 messages', async () => (await queued()) === 50, 30_000);
    proxy.cut();
    await waitFor('a reconnection attempt', () => proxy.refused > 0, 30_000);
    return child;
  }

  it('lost briefly: the connection is re-opened and the rest is published', async () => {
    const child = await publishThenCut([]);
    const exited = collect(child);
    proxy.restore();
    child.stdin.end(events(100).split('\n').slice(50).join('\n'));
    const result = await exited;
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(summaryOf(result)).toMatchObject({ status: 'completed', read: 100, published: 100 });
    expect(await queued()).toBe(100);
  });

  it('lost for good: exit 1 once --reconnect-timeout has passed, naming the broker', async () => {
    const child = await publishThenCut(['--reconnect-timeout', '300']);
    const exited = collect(child);
    child.stdin.end(events(60).split('\n').slice(50).join('\n'));
    const result = await exited;
    expect(result.code).toBe(1);
    expect(summaryOf(result)).toMatchObject({ status: 'failed', published: 50 });
    expect(result.stderr).toMatch(
      /^sluice: publish failed: lost amqp:\/\/.* for more than 300 ms \(--reconnect-timeout\)/m,
    );
  });
});
