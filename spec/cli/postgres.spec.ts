import { join } from 'node:path';
import { Client } from 'pg';
import {
  ENDINGS,
  FIXTURES,
  collect,
  interrupt,
  ndjsonLines,
  readRejects,
  runCli,
  startCli,
  summaryOf,
  tempDir,
  waitForStderr,
} from './helpers';
import { PG_REQUIRED, PG_URL, PG_WHY, describePg, uniqueTable as freshName } from './pg-server';

describe('PostgreSQL availability', () => {
  (PG_REQUIRED ? it : it.skip)('is reachable when SLUICE_REQUIRE_POSTGRES=1', () => {
    expect({ reachable: PG_URL !== undefined, why: PG_WHY }).toEqual({ reachable: true, why: '' });
  });
});

describePg('sluice ingest into PostgreSQL', (url) => {
  let admin: Client;
  let dir: string;
  let cleanup: () => void;
  const tables: string[] = [];
  /** A table name no other test (or run) uses; dropped after the test. */
  const uniqueTable = (): string => {
    const name = freshName();
    tables.push(name);
    return name;
  };

  beforeAll(async () => {
    admin = new Client({ connectionString: url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
  });
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(async () => {
    cleanup();
    for (const table of tables.splice(0)) await admin.query(`DROP TABLE IF EXISTS ${table}`);
  });

  it.each(['copy', 'insert'])(
    '--pg-method %s: every well-formed record stored; a later field adds a column, a wider value widens one',
    async (method) => {
      const table = uniqueTable();
      const rejectsPath = join(dir, 'rejects.ndjson');
      const result = await runCli(
        [
          'ingest',
          join(FIXTURES, 'events.ndjson'),
          '--into',
          url,
          '--table',
          table,
          '--pg-method',
          method,
          '--batch-size',
          '2',
          '--rejects',
          rejectsPath,
          '--json',
        ],
        dir,
      );
      expect(result.code).toBe(0);
      expect(summaryOf(result)).toMatchObject({ read: 12, inserted: 9, rejected: 3, tableCreated: true });
      const { rows: columns } = await admin.query(
        'SELECT column_name AS name, data_type AS type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
        [table],
      );
      expect(columns).toEqual([
        { name: 'id', type: 'text' },
        { name: 'user', type: 'text' },
        { name: 'amount', type: 'double precision' },
        { name: 'ok', type: 'boolean' },
        { name: 'tags', type: 'jsonb' },
        { name: 'extra', type: 'bigint' },
      ]);
      const { rows } = await admin.query(`SELECT * FROM ${table} ORDER BY ctid`);
      expect(rows.map((row: { id: string }) => row.id)).toEqual(['1', '2', '3', '5', 'six', '7', '8', '9', '10']);
      expect(rows[0]).toEqual({ id: '1', user: 'ada', amount: 12.5, ok: true, tags: ['a', 'b'], extra: null });
      expect(rows[5]).toEqual({ id: '7', user: 'gus', amount: 4.5, ok: false, tags: ['y'], extra: '1' });
      expect(rows[6]).toEqual({ id: '8', user: 'hal\tq"uote', amount: 0.5, ok: true, tags: { k: 'v' }, extra: null });
      expect(readRejects(rejectsPath).map((r) => [r.line, r.stage])).toEqual([
        [4, 'parse'],
        [8, 'parse'],
        [11, 'parse'],
      ]);
    },
  );

  it.each(['copy', 'insert'])(
    '--pg-method %s --strict-schema: typed columns from the first record, malformed lines and refused rows in the rejects file',
    async (method) => {
      const table = uniqueTable();
      const rejectsPath = join(dir, 'rejects.ndjson');
      const result = await runCli(
        [
          'ingest',
          join(FIXTURES, 'events.ndjson'),
          '--into',
          url,
          '--table',
          table,
          '--strict-schema',
          '--pg-method',
          method,
          '--rejects',
          rejectsPath,
          '--json',
        ],
        dir,
      );
      expect(result.code).toBe(0);
      expect(summaryOf(result)).toMatchObject({ read: 12, inserted: 7, rejected: 5 });
      const { rows } = await admin.query(`SELECT id::int AS id, "user", amount, ok, tags FROM ${table} ORDER BY id`);
      expect(rows.map((row: { id: number }) => row.id)).toEqual([1, 2, 3, 5, 8, 9, 10]);
      expect(rows[0]).toEqual({ id: 1, user: 'ada', amount: 12.5, ok: true, tags: ['a', 'b'] });
      expect(rows[4]).toEqual({ id: 8, user: 'hal\tq"uote', amount: 0.5, ok: true, tags: { k: 'v' } });
      const rejects = readRejects(rejectsPath);
      expect(rejects.filter((r) => r.stage === 'database')).toEqual([
        expect.objectContaining({ line: 7, error: 'invalid input syntax for type bigint: "six"' }),
      ]);
    },
  );

  it('a hung database at shutdown: the deadline sends every row read to the rejects file, none is inserted later', async () => {
    const table = uniqueTable();
    await admin.query(`CREATE TABLE ${table} (id BIGINT, name TEXT)`);
    const locker = new Client({ connectionString: url });
    await locker.connect();
    try {
      // SHARE mode lets the CLI prepare (SELECT) but makes every INSERT wait.
      await locker.query(`BEGIN; LOCK TABLE ${table} IN SHARE MODE`);
      const rejectsPath = join(dir, 'rejects.ndjson');
      const child = startCli(
        [
          'ingest',
          '-',
          '--into',
          url,
          '--table',
          table,
          '--pg-method',
          'insert',
          '--batch-size',
          '50',
          '--shutdown-timeout',
          '300',
          '--rejects',
          rejectsPath,
          '--json',
          '--status-interval',
          '100',
        ],
        dir,
      );
      const result = collect(child);
      child.stdin.write(ndjsonLines(1, 400));
      await waitForStderr(child, /read=400 /);
      child.kill('SIGTERM');
      const done = await result;
      expect(done.code).toBe(143);
      expect(summaryOf(done)).toMatchObject({
        read: 400,
        inserted: 0,
        rejected: 400,
        rejectedBy: { parse: 0, database: 0, dropped: 0, undelivered: 400 },
      });
      const rejected = readRejects(rejectsPath).map((r) => r.line);
      expect(new Set(rejected).size).toBe(400);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    // The cancelled INSERT must not have committed once the lock was released.
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${table}`);
    expect(rows).toEqual([{ n: 0 }]);
  });

  it.each(ENDINGS)(
    'a table locked by another session: the ALTER TABLE that adds a column waits; %s cancels it',
    async (_ending, extra, signals) => {
      const table = uniqueTable();
      await admin.query(`CREATE TABLE ${table} (id BIGINT)`);
      const locker = new Client({ connectionString: url });
      await locker.connect();
      try {
        await locker.query(`BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
        const rejectsPath = join(dir, 'rejects.ndjson');
        const child = startCli(
          [
            'ingest',
            '-',
            '--into',
            url,
            '--table',
            table,
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
        child.stdin.write(ndjsonLines(1, 400)); // {id, name}: "name" is a new column
        await waitForStderr(child, /read=400 /);
        await interrupt(child, signals);
        const done = await result;
        expect(done.code).toBe(130);
        expect(summaryOf(done)).toMatchObject({
          status: 'interrupted',
          read: 400,
          inserted: 0,
          rejected: 400,
          rejectedBy: { undelivered: 400 },
        });
      } finally {
        await locker.query('ROLLBACK');
        await locker.end();
      }
      // The ALTER was cancelled, not left waiting to run once the lock was released.
      const { rows } = await admin.query(
        'SELECT column_name AS name FROM information_schema.columns WHERE table_name = $1',
        [table],
      );
      expect(rows).toEqual([{ name: 'id' }]);
    },
  );

  it.each(['copy', 'insert'])(
    '--pg-method %s, 1 %% duplicate keys: the duplicates, and only they, are rejected; the rest is inserted',
    async (method) => {
      const table = uniqueTable();
      await admin.query(`CREATE TABLE ${table} (id BIGINT PRIMARY KEY, name TEXT)`);
      let lines = '';
      const duplicates: number[] = [];
      for (let line = 1; line <= 10_000; line++) {
        // Every 100th record repeats the id of the record 50 lines before it (same batch or the one before).
        const id = line % 100 === 0 ? line - 50 : line;
        if (id !== line) duplicates.push(line);
        lines += `${JSON.stringify({ id, name: `user-${line}` })}\n`;
      }
      const rejectsPath = join(dir, 'rejects.ndjson');
      const result = await runCli(
        [
          'ingest',
          '-',
          '--into',
          url,
          '--table',
          table,
          '--pg-method',
          method,
          '--rejects',
          rejectsPath,
          '--json',
          '-q',
        ],
        dir,
        lines,
      );
      expect(result.code).toBe(0);
      expect(summaryOf(result)).toMatchObject({
        read: 10_000,
        inserted: 9_900,
        rejected: 100,
        rejectedBy: { parse: 0, database: 100, dropped: 0, undelivered: 0 },
      });
      const rejects = readRejects(rejectsPath);
      expect(rejects.map((r) => r.line).sort((a, b) => a - b)).toEqual(duplicates);
      for (const reject of rejects) expect(reject.error).toMatch(/duplicate key value violates unique constraint/);
      const { rows } = await admin.query(`SELECT count(*)::int AS n, min(name) AS first FROM ${table} WHERE id = 50`);
      expect(rows).toEqual([{ n: 1, first: 'user-50' }]);
      const { rows: all } = await admin.query(`SELECT count(*)::int AS n FROM ${table}`);
      expect(all).toEqual([{ n: 9_900 }]);
    },
  );

  it('several refused rows in one COPY: the first of two equal keys is kept, whatever else the batch refuses', async () => {
    const table = uniqueTable();
    await admin.query(`CREATE TABLE ${table} (id BIGINT PRIMARY KEY, n BIGINT CHECK (n >= 0))`);
    const lines = [
      { id: 1, n: 1 },
      { id: 1, n: 2 }, // duplicate of line 1
      { id: 2, n: -1 }, // check constraint
      { id: 3, n: 3 },
      { id: 3, n: 4 }, // duplicate of line 4
      { id: 2, n: 5 }, // id 2 is free: line 3 was refused
    ];
    const rejectsPath = join(dir, 'rejects.ndjson');
    const result = await runCli(
      ['ingest', '-', '--into', url, '--table', table, '--rejects', rejectsPath, '--json', '-q'],
      dir,
      lines.map((line) => JSON.stringify(line)).join('\n'),
    );
    expect(summaryOf(result)).toMatchObject({ read: 6, inserted: 3, rejected: 3, rejectedBy: { database: 3 } });
    const { rows } = await admin.query(`SELECT id::int AS id, n::int AS n FROM ${table} ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, n: 1 },
      { id: 2, n: 5 },
      { id: 3, n: 3 },
    ]);
    const rejects = readRejects(rejectsPath).sort((a, b) => a.line - b.line);
    expect(rejects.map((r) => [r.line, r.error.split(' ').slice(0, 3).join(' ')])).toEqual([
      [2, 'duplicate key value'],
      [3, 'new row for'],
      [5, 'duplicate key value'],
    ]);
  });

  it('the database lost mid-run: held rows go to the rejects file, exit 1 naming the target', async () => {
    const table = uniqueTable();
    await admin.query(`CREATE TABLE ${table} (id BIGINT, name TEXT)`);
    const app = `sluice_lost_${process.pid}_${Date.now()}`;
    const locker = new Client({ connectionString: url });
    await locker.connect();
    try {
      await locker.query(`BEGIN; LOCK TABLE ${table} IN SHARE MODE`);
      const rejectsPath = join(dir, 'rejects.ndjson');
      const target = `${url}${url.includes('?') ? '&' : '?'}application_name=${app}`;
      const child = startCli(
        [
          'ingest',
          '-',
          '--into',
          target,
          '--table',
          table,
          '--batch-size',
          '50',
          '--rejects',
          rejectsPath,
          '--json',
          '--status-interval',
          '100',
        ],
        dir,
      );
      const result = collect(child);
      child.stdin.write(ndjsonLines(1, 300));
      await waitForStderr(child, /read=300 /);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [app]);
      const done = await result;
      expect(done.code).toBe(1);
      expect(done.stderr).toMatch(/sluice: lost postgres:\/\/.*: terminating connection due to administrator command/);
      expect(summaryOf(done)).toMatchObject({
        status: 'failed',
        read: 300,
        inserted: 0,
        rejected: 300,
        rejectedBy: { parse: 0, database: 0, dropped: 0, undelivered: 300 },
      });
      const rejects = readRejects(rejectsPath);
      expect(rejects).toHaveLength(300);
      expect(new Set(rejects.map((r) => r.stage))).toEqual(new Set(['undelivered']));
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
  });
});

describe('sluice ingest, PostgreSQL unreachable', () => {
  it('one line naming the target, exit 2, no stack', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const result = await runCli(
        ['ingest', '-', '--into', 'postgres://sluice:secret@127.0.0.1:1/nowhere', '--table', 't'],
        dir,
        '{"id":1}\n',
      );
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(
        /^sluice: cannot connect to postgres:\/\/sluice:\*\*\*@127\.0\.0\.1:1\/nowhere: .*ECONNREFUSED.*\n$/,
      );
    } finally {
      cleanup();
    }
  });
});
