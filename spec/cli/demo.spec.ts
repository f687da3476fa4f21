import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, summaryOf, tempDir } from './helpers';
import { execSql, selectAll } from './sqlite-db';

describe('sluice demo', () => {
  let dir: string;
  let cleanup: () => void;
  beforeAll(() => ({ dir, cleanup } = tempDir()));
  afterAll(() => cleanup());

  it('sends N events through a block sluice into SQLite; the row count equals delivered', async () => {
    const db = join(dir, 'demo.db');
    const result = await runCli(['demo', '--events', '30000', '--db', db, '--json', '--quiet'], dir);
    expect(result.code).toBe(0);
    const summary = summaryOf(result) as unknown as Record<string, number>;
    expect(summary).toMatchObject({
      offered: 30000,
      delivered: 30000,
      dropped: 0,
      deadLettered: 0,
      rowsInDatabase: 30000,
    });
    expect(summary.peakBuffer).toBeGreaterThan(0);
    expect(summary.peakBuffer).toBeLessThanOrEqual(10000);
    expect(selectAll(db, 'SELECT count(*) AS n, count(DISTINCT id) AS d FROM events')).toEqual([
      { n: 30000, d: 30000 },
    ]);
  });

  it('prints the human summary with the count check', async () => {
    const result = await runCli(['demo', '--events', '5000', '--db', join(dir, 'small.db'), '--quiet'], dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/offered 5,000, delivered 5,000, dropped 0, dead-lettered 0/);
    expect(result.stdout).toMatch(/peak buffer [\d,]+\/10,000, peak RSS [\d.]+ MiB/);
    expect(result.stdout).toMatch(/rows in the database: 5,000 = delivered/);
  });

  it('replaces its own database from an earlier run', async () => {
    const db = join(dir, 'again.db');
    expect((await runCli(['demo', '--events', '100', '--db', db, '--quiet'], dir)).code).toBe(0);
    expect((await runCli(['demo', '--events', '200', '--db', db, '--quiet'], dir)).code).toBe(0);
    expect(selectAll(db, 'SELECT count(*) AS n FROM events')).toEqual([{ n: 200 }]);
  });

  it('replaces a demo database from before the mark (exactly the events table)', async () => {
    const db = join(dir, 'legacy.db');
    execSql(db, 'CREATE TABLE events (id INTEGER, at_ms INTEGER, kind TEXT, user_id INTEGER, value REAL) STRICT');
    expect((await runCli(['demo', '--events', '100', '--db', db, '--quiet'], dir)).code).toBe(0);
    expect(selectAll(db, 'SELECT count(*) AS n FROM events')).toEqual([{ n: 100 }]);
  });

  it.each([
    [
      'a database of the user',
      (path: string) => execSql(path, 'CREATE TABLE users (id INTEGER); INSERT INTO users VALUES (1)'),
    ],
    [
      'an events table with other columns',
      (path: string) => execSql(path, 'CREATE TABLE events (id INTEGER, secret TEXT)'),
    ],
    ['a file that is not SQLite', (path: string) => writeFileSync(path, 'my thesis, chapter 1\n')],
  ])('refuses to replace %s: exit 2, the file untouched', async (_what, make) => {
    const path = join(dir, `foreign-${Date.now()}.db`);
    make(path);
    const before = readFileSync(path);
    const result = await runCli(['demo', '--events', '100', '--db', path, '--quiet'], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^sluice: refusing to replace .*: .*it is not a sluice demo database/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('refuses a directory', async () => {
    const result = await runCli(['demo', '--events', '100', '--db', dir, '--quiet'], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/refusing to replace .*: not a regular file/);
  });
});
