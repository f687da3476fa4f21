import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import {
  ENDINGS as endings,
  collect,
  interrupt,
  ndjsonLines,
  readRejects,
  startCli,
  summaryOf,
  tempDir,
  waitForStderr,
} from './helpers';
import { selectAll } from './sqlite-db';
import type { Socket } from 'node:net';

describe('sluice ingest stopped by a signal: nothing read is lost', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(() => cleanup());

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    '%s mid-run: stops reading, flushes, exits %i with inserted + rejected = lines read',
    async (signal, exitCode) => {
      const db = join(dir, 'out.db');
      const rejectsPath = join(dir, 'rejects.ndjson');
      const child = startCli(
        [
          'ingest',
          '-',
          '--into',
          `sqlite:${db}`,
          '--table',
          't',
          '--rejects',
          rejectsPath,
          '--json',
          '--status-interval',
          '100',
          '--batch-size',
          '64',
        ],
        dir,
      );
      const result = collect(child);
      // stdin stays open: the CLI has read everything written and waits for more when it is signalled.
      child.stdin.write(ndjsonLines(1, 3000, 250));
      await waitForStderr(child, /read=3000 /);
      child.kill(signal);
      const done = await result;

      expect(done.code).toBe(exitCode);
      const summary = summaryOf(done);
      expect(summary).toMatchObject({ status: 'interrupted', signal, read: 3000 });
      const inserted = selectAll<{ id: number }>(db, 'SELECT id FROM t ORDER BY id').map((row) => row.id);
      const rejected = existsSync(rejectsPath) ? readRejects(rejectsPath) : [];
      expect(inserted.length).toBe(summary.inserted);
      expect(rejected.length).toBe(summary.rejected);
      expect(inserted.length + rejected.length).toBe(3000);
      // Every line accounted for exactly once: ids inserted plus line numbers rejected cover 1..3000.
      const seen = new Set([...inserted, ...rejected.map((r) => r.line)]);
      expect(seen.size).toBe(3000);
      expect(rejected.every((r) => r.stage === 'parse' && r.line % 250 === 0)).toBe(true);
    },
  );

  it.each(endings)(
    'start-up blocked by a lock another connection holds: %s ends it, every row read goes to the rejects file',
    async (_ending, extra, signals) => {
      const db = join(dir, 'out.db');
      const rejectsPath = join(dir, 'rejects.ndjson');
      const locker = new BetterSqlite3(db);
      locker.pragma('journal_mode = WAL');
      locker.exec('CREATE TABLE other (x INTEGER); BEGIN IMMEDIATE; INSERT INTO other VALUES (1)');
      try {
        const child = startCli(
          [
            'ingest',
            '-',
            '--into',
            `sqlite:${db}`,
            '--table',
            't',
            '--rejects',
            rejectsPath,
            '--json',
            '--status-interval',
            '100',
            ...extra,
          ],
          dir,
        );
        const result = collect(child);
        child.stdin.write(ndjsonLines(1, 400));
        // Read, and waiting for the lock to create the table.
        await waitForStderr(child, /read=400 /);
        await interrupt(child, signals);
        const done = await result;
        expect(done.code).toBe(130);
        expect(summaryOf(done)).toMatchObject({
          status: 'interrupted',
          read: 400,
          inserted: 0,
          rejected: 400,
          rejectedBy: { parse: 0, database: 0, dropped: 0, undelivered: 400 },
        });
        expect(new Set(readRejects(rejectsPath).map((r) => r.line)).size).toBe(400);
      } finally {
        locker.exec('ROLLBACK');
        locker.close();
      }
      expect(selectAll(db, "SELECT name FROM sqlite_schema WHERE name = 't'")).toEqual([]);
    },
  );

  it.each(endings)(
    'connecting to a PostgreSQL server that never answers: %s ends it with a summary',
    async (_ending, extra, signals) => {
      const sockets: Socket[] = [];
      const server = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      const connected = new Promise<void>((resolve) => server.once('connection', () => resolve()));
      try {
        const child = startCli(
          ['ingest', '-', '--into', `postgres://nobody@127.0.0.1:${port}/db`, '--table', 't', '--json', ...extra],
          dir,
        );
        const result = collect(child);
        await connected;
        await interrupt(child, signals);
        const done = await result;
        expect(done.code).toBe(130);
        expect(summaryOf(done)).toMatchObject({ status: 'interrupted', read: 0, inserted: 0, rejected: 0 });
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      }
    },
  );
});
