import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ndjsonLines, readRejects, runCli, summaryOf, tempDir } from './helpers';
import { execSql, selectAll } from './sqlite-db';

describe('sluice ingest: paths that cannot be clobbered', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(() => cleanup());

  it.each([
    ['sqlite:NAME', (name: string) => `sqlite:${name}`],
    ['sqlite://NAME', (name: string) => `sqlite://${name}`],
    ['sqlite:./NAME', (name: string) => `sqlite:./${name}`],
  ])('%s is relative to the working directory', async (_form, into) => {
    const name = `rel-${process.pid}-${Date.now()}.db`;
    const result = await runCli(['ingest', '-', '--into', into(name), '--table', 't', '-q'], dir, '{"id":1}\n');
    expect(result.code).toBe(0);
    expect(existsSync(join(dir, name))).toBe(true);
    expect(existsSync(join('/', name))).toBe(false);
    expect(selectAll(join(dir, name), 'SELECT id FROM t')).toEqual([{ id: 1 }]);
  });

  it('sqlite:///PATH and sqlite:/PATH are absolute', async () => {
    for (const [into, file] of [
      [`sqlite://${join(dir, 'a.db')}`, join(dir, 'a.db')],
      [`sqlite:${join(dir, 'b.db')}`, join(dir, 'b.db')],
    ] as const) {
      const result = await runCli(['ingest', '-', '--into', into, '--table', 't', '-q'], '/', '{"id":1}\n');
      expect(result.code).toBe(0);
      expect(existsSync(file)).toBe(true);
    }
  });

  it('--rejects naming the input file: exit 2 before anything is read or written', async () => {
    const input = join(dir, 'in.ndjson');
    writeFileSync(input, ndjsonLines(1, 20, 4));
    const before = readFileSync(input, 'utf8');
    for (const rejects of [input, join(dir, '.', 'in.ndjson')]) {
      const result = await runCli(
        ['ingest', input, '--into', `sqlite:${join(dir, 'out.db')}`, '--table', 't', '--rejects', rejects],
        dir,
      );
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `sluice: --rejects ${rejects} is the input file: choose another file for the rejects\n`,
      );
    }
    expect(readFileSync(input, 'utf8')).toBe(before);
    expect(existsSync(join(dir, 'out.db'))).toBe(false);
  });

  it('--rejects naming the database (or its WAL, or a link to it): exit 2, the database untouched', async () => {
    const db = join(dir, 'out.db');
    execSql(db, 'PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (42)');
    symlinkSync(db, join(dir, 'link.db'));
    const before = statSync(db).mtimeMs;
    for (const rejects of [db, `${db}-wal`, join(dir, 'link.db')]) {
      const result = await runCli(
        ['ingest', '-', '--into', `sqlite:${db}`, '--table', 't', '--rejects', rejects],
        dir,
        '{"id":"x"\n',
      );
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^sluice: --rejects .* is (the database file|a file of the database)/);
    }
    expect(statSync(db).mtimeMs).toBe(before);
    expect(selectAll(db, 'SELECT id FROM t')).toEqual([{ id: 42 }]);
  });

  it('an unwritable rejects path: one line, exit 2, before the database is touched', async () => {
    for (const rejects of [join(dir, 'no-such-dir', 'r.ndjson'), dir]) {
      const result = await runCli(
        ['ingest', '-', '--into', `sqlite:${join(dir, 'out.db')}`, '--table', 't', '--rejects', rejects],
        dir,
        '{"id":1}\n',
      );
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`^sluice: cannot write the rejects file ${rejects}: E(NOENT|ISDIR)`));
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(join(dir, 'out.db'))).toBe(false);
    }
  });

  // /dev/full (Linux) fails every write with ENOSPC.
  (existsSync('/dev/full') ? it : it.skip)(
    'a rejects file that fails mid-run (disk full): the run stops, exit 1, saying how many could not be saved',
    async () => {
      const result = await runCli(
        ['ingest', '-', '--into', `sqlite:${join(dir, 'out.db')}`, '--table', 't', '--rejects', '/dev/full', '--json'],
        dir,
        ndjsonLines(1, 3000, 10),
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /^sluice: cannot write the rejects file \/dev\/full: ENOSPC.*could not be saved\)$/m,
      );
      expect(summaryOf(result)).toMatchObject({ status: 'failed' });
    },
  );

  it('each run starts the rejects file afresh, unless --rejects-append', async () => {
    const rejects = join(dir, 'rejects.ndjson');
    const run = (lines: string, extra: string[] = []) =>
      runCli(
        [
          'ingest',
          '-',
          '--into',
          `sqlite:${join(dir, 'out.db')}`,
          '--table',
          't',
          '-q',
          '--rejects',
          rejects,
          ...extra,
        ],
        dir,
        lines,
      );
    await run('{"id":1}\nbad\nworse\n');
    expect(readRejects(rejects).map((r) => r.raw)).toEqual(['bad', 'worse']);
    await run('{"id":2}\nthird\n');
    expect(readRejects(rejects).map((r) => r.raw)).toEqual(['third']);
    await run('fourth\n', ['--rejects-append']);
    expect(readRejects(rejects).map((r) => r.raw)).toEqual(['third', 'fourth']);
    await run('{"id":3}\n');
    expect(readFileSync(rejects, 'utf8')).toBe('');
  });

  it('a directory as input: exit 2, one line', async () => {
    mkdirSync(join(dir, 'logs'));
    const result = await runCli(
      ['ingest', join(dir, 'logs'), '--into', `sqlite:${join(dir, 'out.db')}`, '--table', 't'],
      dir,
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^sluice: cannot read .*logs: it is a directory/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});
