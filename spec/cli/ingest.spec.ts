import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ndjsonLines, readRejects, runCli, summaryOf, tempDir } from './helpers';
import { execSql, selectAll } from './sqlite-db';

describe('sluice ingest into SQLite', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(() => cleanup());

  const ingest = (input: string, table: string, extra: string[] = [], stdin?: string) =>
    runCli(
      [
        'ingest',
        input,
        '--into',
        `sqlite:${join(dir, 'out.db')}`,
        '--table',
        table,
        '--rejects',
        join(dir, 'rejects.ndjson'),
        '--json',
        ...extra,
      ],
      dir,
      stdin,
    );

  it('stores every well-formed record: a later field adds a column, a value of another type stays as it is', async () => {
    const result = await ingest(join(FIXTURES, 'events.ndjson'), 'events');
    expect(result.code).toBe(0);
    const summary = summaryOf(result);
    expect(summary).toMatchObject({ status: 'completed', read: 12, inserted: 9, rejected: 3, blankLines: 1 });
    expect(summary.rejectedBy).toEqual({ parse: 3, database: 0, dropped: 0, undelivered: 0 });
    expect(summary).toMatchObject({ tableCreated: true, columnsAdded: 0 });

    const db = join(dir, 'out.db');
    expect(selectAll(db, "SELECT name, type FROM pragma_table_info('events')")).toEqual([
      { name: 'id', type: 'INTEGER' },
      { name: 'user', type: 'TEXT' },
      { name: 'amount', type: 'REAL' },
      { name: 'ok', type: 'INTEGER' },
      { name: 'tags', type: 'TEXT' },
      { name: 'extra', type: 'INTEGER' },
    ]);
    const rows = selectAll<Record<string, unknown>>(db, 'SELECT * FROM events ORDER BY rowid');
    expect(rows.map((row) => row.id)).toEqual([1, 2, 3, 5, 'six', 7, 8, 9, 10]);
    expect(rows[0]).toEqual({ id: 1, user: 'ada', amount: 12.5, ok: 1, tags: '["a","b"]', extra: null });
    expect(rows[3]).toEqual({ id: 5, user: 'eve', amount: 7.75, ok: 1, tags: null, extra: null });
    expect(rows[5]).toEqual({ id: 7, user: 'gus', amount: 4.5, ok: 0, tags: '["y"]', extra: 1 });
    expect(rows[6]).toEqual({ id: 8, user: 'hal\tq"uote', amount: 0.5, ok: 1, tags: '{"k":"v"}', extra: null });

    const rejects = readRejects(join(dir, 'rejects.ndjson'));
    expect(rejects.map(({ line, stage }) => [line, stage])).toEqual([
      [4, 'parse'],
      [8, 'parse'],
      [11, 'parse'],
    ]);
    expect(rejects[0]?.error).toMatch(/^invalid JSON: /);
    expect(rejects[1]?.error).toBe('expected a JSON object');
  });

  it('--strict-schema: the first record fixes columns and types (a STRICT table); the rest are rejects', async () => {
    const result = await ingest(join(FIXTURES, 'events.ndjson'), 'events', ['--strict-schema']);
    expect(result.code).toBe(0);
    const summary = summaryOf(result);
    expect(summary).toMatchObject({ status: 'completed', read: 12, inserted: 7, rejected: 5, blankLines: 1 });
    expect(summary.rejectedBy).toEqual({ parse: 4, database: 1, dropped: 0, undelivered: 0 });

    const rows = selectAll<Record<string, unknown>>(join(dir, 'out.db'), 'SELECT * FROM events ORDER BY id');
    expect(rows.map((row) => row.id)).toEqual([1, 2, 3, 5, 8, 9, 10]);
    expect(rows[0]).toEqual({ id: 1, user: 'ada', amount: 12.5, ok: 1, tags: '["a","b"]' });
    expect(rows[4]).toEqual({ id: 8, user: 'hal\tq"uote', amount: 0.5, ok: 1, tags: '{"k":"v"}' });

    const rejects = readRejects(join(dir, 'rejects.ndjson'));
    expect(rejects.map(({ line, stage }) => [line, stage])).toEqual([
      [4, 'parse'],
      [8, 'parse'],
      [9, 'parse'],
      [11, 'parse'],
      [7, 'database'],
    ]);
    expect(rejects[2]?.error).toMatch(/field "extra" is not a column/);
    expect(rejects[4]?.error).toMatch(/cannot store TEXT value in INTEGER column/);
    expect(rejects[4]?.raw).toBe('{"id":"six","user":"fay","amount":2.5,"ok":true,"tags":["x"]}');
  });

  it('reads CSV with a header; bad records go to the rejects file with their line number', async () => {
    const result = await ingest(join(FIXTURES, 'people.csv'), 'people');
    expect(result.code).toBe(0);
    expect(summaryOf(result)).toMatchObject({ format: 'csv', read: 7, inserted: 5, rejected: 2, blankLines: 1 });
    expect(selectAll(join(dir, 'out.db'), 'SELECT * FROM people')).toEqual([
      { id: '1', name: 'ada', city: 'Paris' },
      { id: '2', name: 'bob, jr', city: 'Berlin' },
      { id: '3', name: 'multi\nline', city: 'Rome' },
      { id: '5', name: 'eve', city: 'Oslo' },
      { id: '7', name: 'gus', city: 'Lima' },
    ]);
    // Syntax errors are found while splitting, field counts after: sorted by line for the comparison.
    const rejects = readRejects(join(dir, 'rejects.ndjson')).sort((a, b) => a.line - b.line);
    expect(rejects).toEqual([
      { line: 6, stage: 'parse', raw: '4,too,many,fields', error: 'the record has 4 field(s); the header has 3' },
      { line: 9, stage: 'parse', raw: '6,"bad"quote,Nice', error: expect.stringMatching(/text after a closing quote/) },
    ]);
  });

  it('reads stdin with -', async () => {
    const result = await ingest('-', 'piped', [], ndjsonLines(1, 2500, 1000));
    expect(result.code).toBe(0);
    expect(summaryOf(result)).toMatchObject({ read: 2500, inserted: 2498, rejected: 2 });
    expect(selectAll(join(dir, 'out.db'), 'SELECT count(*) AS n FROM piped')).toEqual([{ n: 2498 }]);
  });

  it('an empty input: nothing read, nothing created, no warning', async () => {
    const result = await ingest('-', 'empty', [], '');
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(summaryOf(result)).toMatchObject({ status: 'completed', read: 0, inserted: 0, tableCreated: false });
  });

  it('isolates rows the database refuses (UNIQUE, NOT NULL) and inserts the rest of their batch', async () => {
    execSql(join(dir, 'out.db'), 'CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)');
    const lines = [
      { id: 1, name: 'a' },
      { id: 2, name: 'b' },
      { id: 1, name: 'duplicate' },
      { id: 3, name: null },
      { id: 4, name: 'd' },
    ]
      .map((row) => JSON.stringify(row))
      .join('\n');
    const result = await ingest('-', 'users', ['--batch-size', '10', '--retries', '0'], lines);
    expect(result.code).toBe(0);
    expect(summaryOf(result)).toMatchObject({ read: 5, inserted: 3, rejected: 2 });
    expect(selectAll(join(dir, 'out.db'), 'SELECT id, name FROM users ORDER BY id')).toEqual([
      { id: 1, name: 'a' },
      { id: 2, name: 'b' },
      { id: 4, name: 'd' },
    ]);
    const rejects = readRejects(join(dir, 'rejects.ndjson'));
    expect(rejects.map(({ line, stage }) => [line, stage])).toEqual([
      [3, 'database'],
      [4, 'database'],
    ]);
    expect(rejects[0]?.error).toMatch(/UNIQUE constraint failed/);
    expect(rejects[1]?.error).toMatch(/NOT NULL constraint failed/);
  });

  it('1 % duplicate keys: exactly the duplicates are rejected, found by bisecting the failed batches', async () => {
    execSql(join(dir, 'out.db'), 'CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)');
    let lines = '';
    const duplicates: number[] = [];
    for (let line = 1; line <= 10_000; line++) {
      const id = line % 100 === 0 ? line - 50 : line;
      if (id !== line) duplicates.push(line);
      lines += `${JSON.stringify({ id, name: `user-${line}` })}\n`;
    }
    const result = await ingest('-', 'users', [], lines);
    expect(summaryOf(result)).toMatchObject({ read: 10_000, inserted: 9_900, rejected: 100 });
    const rejects = readRejects(join(dir, 'rejects.ndjson'));
    expect(rejects.map((r) => r.line).sort((a, b) => a - b)).toEqual(duplicates);
    expect(new Set(rejects.map((r) => r.stage))).toEqual(new Set(['database']));
    expect(selectAll(join(dir, 'out.db'), 'SELECT count(*) AS n FROM users')).toEqual([{ n: 9_900 }]);
  });

  it('maps fields by name in any order, a missing one to NULL; a new field anywhere adds a column', async () => {
    const lines = [
      '{"id":1,"name":"a","n":1.5}',
      '{"n":2.5,"id":2,"name":"b"}',
      '{"name":"c","id":3}',
      '{"id":4,"extra":0,"name":"d","n":4.5}',
      '{"n":5.5,"name":"e","id":5,"extra":0}',
      '{"id":6,"name":"f","n":6.5,"extra":0}',
      '{"id":7,"extra":7}', // in the columns' order, two absent between
    ].join('\n');
    const result = await ingest('-', 'shuffled', [], lines);
    expect(summaryOf(result)).toMatchObject({ read: 7, inserted: 7, rejected: 0 });
    expect(selectAll(join(dir, 'out.db'), 'SELECT * FROM shuffled ORDER BY id')).toEqual([
      { id: 1, name: 'a', n: 1.5, extra: null },
      { id: 2, name: 'b', n: 2.5, extra: null },
      { id: 3, name: 'c', n: null, extra: null },
      { id: 4, name: 'd', n: 4.5, extra: 0 },
      { id: 5, name: 'e', n: 5.5, extra: 0 },
      { id: 6, name: 'f', n: 6.5, extra: 0 },
      { id: 7, name: null, n: null, extra: 7 },
    ]);

    const strict = await ingest('-', 'strict', ['--strict-schema'], lines);
    expect(summaryOf(strict)).toMatchObject({ read: 7, inserted: 3, rejected: 4 });
    const rejects = readRejects(join(dir, 'rejects.ndjson'));
    expect(rejects.map(({ line }) => line)).toEqual([4, 5, 6, 7]);
    for (const reject of rejects) expect(reject.error).toMatch(/field "extra" is not a column/);
  });

  it('--columns chooses the columns; other fields are ignored as asked', async () => {
    const result = await ingest(
      '-',
      'picked',
      ['--columns', 'name,id'],
      '{"id":1,"name":"a","noise":true}\n{"id":2,"name":"b","more":[1]}\n',
    );
    expect(summaryOf(result)).toMatchObject({ read: 2, inserted: 2, rejected: 0 });
    expect(selectAll(join(dir, 'out.db'), 'SELECT * FROM picked ORDER BY id')).toEqual([
      { name: 'a', id: 1 },
      { name: 'b', id: 2 },
    ]);
  });

  it('exits 1 on rejects with --fail-on-rejects, 0 without, and leaves no rejects file on a clean run', async () => {
    const clean = await ingest('-', 'clean', [], ndjsonLines(1, 10));
    expect(clean.code).toBe(0);
    expect(existsSync(join(dir, 'rejects.ndjson'))).toBe(false);
    const strict = await ingest('-', 'strict', ['--fail-on-rejects'], ndjsonLines(1, 10, 5));
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/2 record\(s\) rejected \(--fail-on-rejects\)/);
  });

  it('a database that cannot be opened: one line naming it, exit 2; the stack only with --verbose', async () => {
    const target = join(dir, 'no-such-dir', 'x.db');
    const args = ['ingest', '-', '--into', `sqlite:${target}`, '--table', 't'];
    const plain = await runCli(args, dir, '{"id":1}\n');
    expect(plain.code).toBe(2);
    expect(plain.stderr).toBe(
      `sluice: cannot open sqlite:${target}: Cannot open database because the directory does not exist\n`,
    );
    const verbose = await runCli([...args, '--verbose'], dir, '{"id":1}\n');
    expect(verbose.code).toBe(2);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });

  it('an existing table is extended: a missing column is added, its rows and index kept', async () => {
    const db = join(dir, 'out.db');
    execSql(
      db,
      'CREATE TABLE narrow (id INTEGER); CREATE INDEX narrow_id ON narrow (id); INSERT INTO narrow VALUES (0)',
    );
    const result = await ingest('-', 'narrow', [], '{"id":1,"wide":2}\n');
    expect(result.code).toBe(0);
    expect(summaryOf(result)).toMatchObject({ read: 1, inserted: 1, tableCreated: false, columnsAdded: 1 });
    expect(selectAll(db, 'SELECT * FROM narrow ORDER BY id')).toEqual([
      { id: 0, wide: null },
      { id: 1, wide: 2 },
    ]);
    expect(selectAll(db, "SELECT name FROM sqlite_schema WHERE type = 'index'")).toEqual([{ name: 'narrow_id' }]);
  });

  it('--strict-schema and a table without a column of the input: exit 2, and the summary accounts for every record read', async () => {
    execSql(join(dir, 'out.db'), 'CREATE TABLE narrow (id INTEGER)');
    let lines = '';
    for (let i = 1; i <= 3000; i++) lines += `{"id":${i},"wide":${i}}\n`;
    const result = await ingest('-', 'narrow', ['--strict-schema'], lines);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /^sluice: table narrow of sqlite:.* has no column named wide \(--strict-schema adds no columns\)$/m,
    );
    const summary = summaryOf(result);
    expect(summary.status).toBe('failed');
    expect(summary.read).toBeGreaterThan(0);
    expect(summary.inserted).toBe(0);
    expect(summary.rejected).toBe(summary.read);
    expect(summary.rejectedBy).toMatchObject({ undelivered: summary.read });
    expect(readRejects(join(dir, 'rejects.ndjson'))).toHaveLength(summary.read);
  });

  it('a drop strategy writes what it drops to the rejects file, so read = inserted + rejected still holds', async () => {
    const result = await ingest(
      '-',
      'dropping',
      ['--strategy', 'drop_newest', '--max-buffer', '10', '--batch-size', '5'],
      ndjsonLines(1, 3000),
    );
    expect(result.code).toBe(0);
    const summary = summaryOf(result);
    expect(summary.read).toBe(3000);
    expect(summary.inserted + summary.rejected).toBe(3000);
    expect(summary.rejectedBy).toMatchObject({ dropped: summary.dropped });
    expect(selectAll(join(dir, 'out.db'), 'SELECT count(*) AS n FROM dropping')).toEqual([{ n: summary.inserted }]);
  });
});
