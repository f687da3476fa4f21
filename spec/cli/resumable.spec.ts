import { appendFileSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { collect, readRejects, runCli, startCli, summaryOf, tempDir, waitForStderr } from './helpers';
import {
  MAX_RECORD_BYTES,
  expectExactlyOnce,
  killUntilDone,
  makeInput,
  resumeSummary,
  runInProcess,
} from './resume-support';
import { execSql, selectAll } from './sqlite-db';
import type { Progress } from './resume-support';

/**
 * `sluice ingest FILE --resumable` into SQLite: real child processes, real SIGKILLs, then the same
 * command again until one run finishes; the table and the rejects file must hold every line of the
 * input exactly once. And what a resumable load refuses, each with its code.
 */
describe('sluice ingest --resumable into SQLite', () => {
  let dir: string;
  let cleanup: () => void;
  let db: string;
  let rejectsPath: string;
  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
    db = join(dir, 'out.db');
    rejectsPath = join(dir, 'rejects.ndjson');
  });
  afterEach(() => cleanup());

  const args = (input: string, ...extra: string[]): string[] => [
    'ingest',
    input,
    '--into',
    `sqlite:${db}`,
    '--table',
    't',
    '--resumable',
    '--rejects',
    rejectsPath,
    '--max-record-bytes',
    String(MAX_RECORD_BYTES),
    '--json',
    '-q',
    ...extra,
  ];
  /**
   * The table, with a trigger that scans `scan` × `scan` rows per insert (100: about 0.13 ms on the 2-core dev
   * machine): a load cannot go faster than that, so a kill aimed at the middle of it lands there.
   */
  const createTable = (table = 't (n INTEGER NOT NULL, k INTEGER UNIQUE, s TEXT)', scan = 100): void =>
    execSql(
      db,
      `PRAGMA journal_mode = WAL; CREATE TABLE ${table};
       CREATE TABLE w (x INTEGER); WITH RECURSIVE c(x) AS (VALUES (1) UNION ALL SELECT x + 1 FROM c WHERE x < ${scan}) INSERT INTO w SELECT x FROM c;
       CREATE TRIGGER slow AFTER INSERT ON t BEGIN SELECT count(*) FROM w a, w b; END;`,
    );
  const stored = (): number[] => selectAll<{ n: number }>(db, 'SELECT n FROM t').map((row) => row.n);
  const progress = (): Progress | undefined => {
    const rows = selectAll<Record<string, number | string | null>>(
      db,
      "SELECT * FROM sqlite_master WHERE name = 'sluice_progress'",
    );
    if (rows.length === 0) return undefined;
    const row = selectAll<Record<string, number | string | null>>(db, 'SELECT * FROM sluice_progress')[0];
    if (row === undefined) return undefined;
    return {
      records: row.records as number,
      inserted: row.inserted as number,
      rejected: row.rejected as number,
      rejectsOffset: row.rejects_offset as number,
      runs: row.runs as number,
      finished: row.finished_at !== null,
    };
  };
  /** Runs the load and kills it once it has committed `records` records (the trigger keeps it from finishing first). */
  const killAfter = async (input: string, records: number, extra: string[] = []): Promise<void> => {
    const child = startCli(args(input, ...extra), dir);
    const done = collect(child);
    while ((progress()?.records ?? 0) < records) await new Promise((resolve) => setTimeout(resolve, 5));
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    expect(progress()).toMatchObject({ finished: false });
  };

  it('under repeated SIGKILLs (after the k-th commit, and at random moments): every line exactly once', async () => {
    const input = makeInput(5000);
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, input.text);
    createTable(undefined, 150);
    const report = await killUntilDone({
      args: args(file, '--batch-size', '40'),
      cwd: dir,
      progress: async () => progress(),
      maxKills: 10,
      records: input.records,
      randomKillMs: 400,
    });
    const summary = resumeSummary(report.last);
    expect(report.kills).toBeGreaterThanOrEqual(5);
    expect(report.midLoad).toBeGreaterThanOrEqual(3);
    expectExactlyOnce(input, stored(), rejectsPath);
    const total = { records: input.records, inserted: input.rows.length, rejected: input.records - input.rows.length };
    expect(summary.resume).toMatchObject({ finished: true, total });
    expect(progress()).toMatchObject({ ...total, finished: true });
    // The last run's own counts add up, and with what it skipped, to the input.
    expect(summary.read).toBe(summary.inserted + summary.rejected);
    expect((summary.resume.skipped as number) + summary.read).toBe(input.records);
  }, 60_000);

  it('a finished load run again does nothing and says so (exit 0); the table and rejects file are untouched', async () => {
    const input = makeInput(500);
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, input.text);
    createTable();
    const first = resumeSummary(await runCli(args(file), dir));
    expect(first).toMatchObject({ status: 'completed', resume: { start: 'new', finished: true, skipped: 0 } });
    const rejectsBefore = readFileSync(rejectsPath, 'utf8');

    const again = await runCli(args(file), dir);
    expect(again.stderr).toMatch(/is loaded into table t already \(.*\): nothing to do; --restart loads it again/);
    expect(resumeSummary(again)).toMatchObject({
      status: 'completed',
      read: 0,
      inserted: 0,
      rejected: 0,
      resume: { start: 'finished', finished: true, skipped: input.records, total: { records: input.records } },
    });
    expect(readFileSync(rejectsPath, 'utf8')).toBe(rejectsBefore);
    expectExactlyOnce(input, stored(), rejectsPath);
  });

  it('resumes after a kill: says where, skips what was committed, cuts the rejects written after the last commit', async () => {
    const input = makeInput(3000);
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, input.text);
    createTable();
    await killAfter(file, 800, ['--batch-size', '50']);
    const committed = progress() as Progress;
    // The killed run may have written rejects past its last commit: the next run cuts them off first.
    const result = await runCli(args(file, '--batch-size', '50', '--status-interval', '100'), dir);
    expect(result.stderr).toMatch(
      /sluice: resuming at line [\d,]+ \(byte [\d,]+\): [\d,]+ record\(s\) committed by earlier runs/,
    );
    const summary = resumeSummary(result);
    expect(summary.resume).toMatchObject({ start: 'resumed', skipped: committed.records, finished: true, runs: 2 });
    expect(summary.read).toBe(input.records - committed.records);
    expectExactlyOnce(input, stored(), rejectsPath);
  });

  it('CSV with a header, quoted line breaks and rejects: resumed past the header, the columns are still the header', async () => {
    const lines = ['id,name,note'];
    const good: number[] = [];
    for (let i = 1; i <= 3000; i++) {
      if (i % 50 === 0)
        lines.push(`${i},short`); // 2 fields: rejected
      else if (i % 7 === 0) lines.push(`${i},"multi\nline ${i}","a ""quote"", é"`);
      else lines.push(`${i},name ${i},`);
      if (i % 50 !== 0) good.push(i);
    }
    const file = join(dir, 'people.csv');
    writeFileSync(file, `${lines.join('\r\n')}\r\n`);
    createTable('t (id TEXT, name TEXT, note TEXT)');
    await killAfter(file, 1200, ['--batch-size', '30']);
    const done = resumeSummary(await runCli(args(file, '--batch-size', '30'), dir));
    expect(done.resume).toMatchObject({ start: 'resumed', finished: true });
    const rows = selectAll<{ id: string; name: string; note: string }>(db, 'SELECT id, name, note FROM t');
    expect(rows.map((r) => Number(r.id)).sort((a, b) => a - b)).toEqual(good);
    expect(rows.find((r) => r.id === '7')).toEqual({ id: '7', name: 'multi\nline 7', note: 'a "quote", é' });
    const columns = selectAll<{ name: string }>(db, "SELECT name FROM pragma_table_info('t')").map((c) => c.name);
    expect(columns).toEqual(['id', 'name', 'note']);
    const rejects = readRejects(rejectsPath);
    expect(rejects.map((r) => Number(r.raw.split(',')[0])).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 60 }, (_, i) => (i + 1) * 50),
    );
    expect(new Set(rejects.map((r) => r.line)).size).toBe(60);
    expect(rows.length + rejects.length).toBe(3000);
  });

  describe('a changed input is refused (ERR_CLI_RESUME_INPUT_CHANGED) unless --restart', () => {
    let file: string;
    beforeEach(async () => {
      file = join(dir, 'events.ndjson');
      writeFileSync(file, makeInput(3000).text);
      createTable();
      await killAfter(file, 300, ['--batch-size', '50']);
    });

    it.each([
      [
        'rewritten in place, same size',
        () => writeFileSync(file, readFileSync(file, 'utf8').replace('"n":1,', '"n":9,')),
        /its first \d+ bytes are not the ones this load read/,
      ],
      [
        'cut short',
        () => writeFileSync(file, readFileSync(file).subarray(0, 10_000)),
        /it is shorter than when this load last ran/,
      ],
      [
        'only touched',
        () => utimesSync(file, new Date(), new Date(Date.now() + 5000)),
        /it was modified since this load last ran \(mtime .*, now .*\)/,
      ],
      [
        'changed at its end, then appended to',
        () => {
          const text = readFileSync(file, 'utf8');
          writeFileSync(file, `${text.slice(0, -2)}9\n{"n":999999}\n`);
        },
        /the end of the file when this load last ran\) are not the ones it read/,
      ],
    ])('%s', async (_what, change, why) => {
      const before = { rows: stored().length, rejects: readFileSync(rejectsPath, 'utf8'), progress: progress() };
      change();
      await expect(runInProcess(args(file))).rejects.toMatchObject({
        code: 'ERR_CLI_RESUME_INPUT_CHANGED',
        exitCode: 2,
        message: expect.stringMatching(why),
      });
      const child = await runCli(args(file), dir);
      expect(child.code).toBe(2);
      expect(child.stderr).toMatch(
        /has changed since this load into table t last ran: .*add --restart to load it again/,
      );
      // Refused before anything was touched.
      expect({ rows: stored().length, rejects: readFileSync(rejectsPath, 'utf8'), progress: progress() }).toEqual(
        before,
      );
    });

    it('--restart refuses while the table holds the rows the load inserted (ERR_CLI_RESTART_TABLE_NOT_EMPTY); emptied, it loads the new file once', async () => {
      const input = makeInput(1500);
      writeFileSync(file, input.text);
      await expect(runInProcess(args(file, '--restart'))).rejects.toMatchObject({
        code: 'ERR_CLI_RESTART_TABLE_NOT_EMPTY',
        exitCode: 2,
        message: expect.stringMatching(
          /inserted [\d,]+ row\(s\) into table t, which still holds rows: empty the table first/,
        ),
      });
      execSql(db, 'DELETE FROM t');
      const result = await runCli(args(file, '--restart'), dir);
      expect(result.stderr).toMatch(
        /--restart: forgot the progress of this load \([\d,]+ record\(s\) committed over 1 run\(s\)\)/,
      );
      expect(resumeSummary(result).resume).toMatchObject({ start: 'restarted', finished: true, runs: 1 });
      // The old rejects are gone with the old load: the file holds the new one's only.
      expectExactlyOnce(input, stored(), rejectsPath);
    });
  });

  it('an input that grew (a log appended to) goes on from where the load was, finished or not', async () => {
    const first = makeInput(1000);
    const file = join(dir, 'app.log');
    writeFileSync(file, first.text);
    createTable();
    resumeSummary(await runCli(args(file), dir));
    const more = makeInput(1500); // lines 1001..1500 appended, numbered as in a 1500-line file
    appendFileSync(file, more.text.slice(first.text.length));
    const result = await runCli(args(file), dir);
    expect(result.stderr).toMatch(/app.log grew since the last run: loading from line 1,001/);
    expect(resumeSummary(result)).toMatchObject({
      read: more.records - first.records,
      resume: { start: 'grown', skipped: first.records, finished: true },
    });
    expectExactlyOnce(more, stored(), rejectsPath);
  });

  it('a last line loaded without a line break is not continued by what is appended: refused', async () => {
    const file = join(dir, 'app.log');
    writeFileSync(file, '{"n":1,"k":1}\n{"n":2,"k":2}');
    createTable();
    resumeSummary(await runCli(args(file), dir));
    appendFileSync(file, ',"more":true}\n');
    await expect(runInProcess(args(file))).rejects.toMatchObject({
      code: 'ERR_CLI_RESUME_INPUT_CHANGED',
      message: expect.stringMatching(/its last line, loaded already, had no line break/),
    });
  });

  it('other options or another rejects file than the load started with: ERR_CLI_RESUME_OPTIONS_CHANGED', async () => {
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, makeInput(3000).text);
    createTable();
    await killAfter(file, 300, ['--batch-size', '50']);
    await expect(runInProcess([...args(file), '--strict-schema'])).rejects.toMatchObject({
      code: 'ERR_CLI_RESUME_OPTIONS_CHANGED',
      exitCode: 2,
      message: expect.stringMatching(
        /was started with --format ndjson --max-record-bytes 256; this run has --format ndjson --strict-schema --max-record-bytes 256/,
      ),
    });
    const other = args(file).map((arg) => (arg === rejectsPath ? join(dir, 'other.ndjson') : arg));
    await expect(runInProcess(other)).rejects.toMatchObject({
      code: 'ERR_CLI_RESUME_OPTIONS_CHANGED',
      message: expect.stringMatching(/writes its rejects to .*rejects\.ndjson; this run has --rejects .*other\.ndjson/),
    });
  });

  it('a rejects file cut short since the last commit: ERR_CLI_RESUME_REJECTS_CHANGED', async () => {
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, makeInput(3000).text);
    createTable();
    await killAfter(file, 600, ['--batch-size', '50']);
    expect((progress() as Progress).rejectsOffset).toBeGreaterThan(0);
    writeFileSync(rejectsPath, '');
    await expect(runInProcess(args(file))).rejects.toMatchObject({
      code: 'ERR_CLI_RESUME_REJECTS_CHANGED',
      exitCode: 2,
      message: expect.stringMatching(/holds 0 bytes, but this load had written [\d,]+ to it when it last committed/),
    });
  });

  it('a table emptied since the last run, although the load had inserted rows: ERR_CLI_RESUME_TABLE_EMPTIED', async () => {
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, makeInput(3000).text);
    createTable();
    await killAfter(file, 300, ['--batch-size', '50']);
    execSql(db, 'DELETE FROM t');
    await expect(runInProcess(args(file))).rejects.toMatchObject({
      code: 'ERR_CLI_RESUME_TABLE_EMPTIED',
      exitCode: 2,
      message: expect.stringMatching(/inserted [\d,]+ row\(s\) into table t, which now holds none .* Add --restart/),
    });
  });

  it('--strict-schema: a resumed run keeps the columns the first record fixed, not those of the first it reads', async () => {
    // Lines 51, 101, 151...: where a batch of 50 ends, the next line has a field the first record lacks, a
    // reject under --strict-schema. A run resumed there and taking its columns from it would stop instead.
    const extra = (n: number): boolean => n > 1 && n % 50 === 1;
    const lines = Array.from({ length: 3000 }, (_, i) =>
      JSON.stringify(extra(i + 1) ? { n: i + 1, k: i + 1, extra: true } : { n: i + 1, k: i + 1 }),
    );
    const file = join(dir, 'strict.ndjson');
    writeFileSync(file, `${lines.join('\n')}\n`);
    createTable('t (n INTEGER NOT NULL, k INTEGER UNIQUE)');
    await killAfter(file, 300, ['--batch-size', '50', '--strict-schema']);
    expect(selectAll<{ strict_columns: string }>(db, 'SELECT strict_columns FROM sluice_progress')).toEqual([
      { strict_columns: '["n","k"]' },
    ]);
    resumeSummary(await runCli(args(file, '--strict-schema'), dir));
    const all = Array.from({ length: 3000 }, (_, i) => i + 1);
    expect(stored().sort((a, b) => a - b)).toEqual(all.filter((n) => !extra(n)));
    const rejects = readRejects(rejectsPath);
    expect(rejects.map((r) => r.line).sort((a, b) => a - b)).toEqual(all.filter(extra));
    expect(rejects.every((r) => r.stage === 'parse' && /field "extra" is not a column/.test(r.error))).toBe(true);
  });

  it.each([
    [['-'], /--resumable needs a FILE: stdin cannot be read again after a crash/],
    [['x.ndjson', '--strategy', 'drop_oldest'], /--resumable needs --strategy block/],
    [['x.ndjson', '--table', 'sluice_progress'], /is the name of the progress table --resumable keeps/],
  ])('usage errors (exit 2, ERR_CLI_USAGE): %j', async (extra, message) => {
    const [input, ...rest] = extra as [string, ...string[]];
    const argv = [...args(input), ...rest];
    await expect(runInProcess(argv)).rejects.toMatchObject({
      code: 'ERR_CLI_USAGE',
      exitCode: 2,
      message: expect.stringMatching(message),
    });
    const child = await runCli(argv, dir, '{"n":1}\n');
    expect({ code: child.code, stderr: child.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(message) });
  });

  it('--restart without --resumable is a usage error', async () => {
    const result = await runCli(['ingest', 'x.ndjson', '--into', `sqlite:${db}`, '--table', 't', '--restart'], dir);
    expect({ code: result.code, stderr: result.stderr }).toEqual({
      code: 2,
      stderr: expect.stringMatching(/The option --restart needs --resumable/),
    });
  });

  it('a device (or a pipe) is not a file a later run can read again: exit 2', async () => {
    const result = await runCli(args('/dev/null'), dir);
    expect({ code: result.code, stderr: result.stderr }).toEqual({
      code: 2,
      stderr: expect.stringMatching(/--resumable needs a regular file/),
    });
  });

  it.each([
    ['what was read is committed before the run exits', '10000'],
    ['--shutdown-timeout 0: what was not committed goes to the rejects file as undelivered', '0'],
  ])('SIGINT, %s; the load is not finished, and the next run goes on', async (_what, timeout) => {
    const input = makeInput(3000);
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, input.text);
    createTable();
    const child = startCli(args(file, '--batch-size', '50', '--shutdown-timeout', timeout), dir);
    const done = collect(child);
    while ((progress()?.records ?? 0) < 300) await new Promise((resolve) => setTimeout(resolve, 5));
    const stopped = waitForStderr(child, /SIGINT: reading stopped/);
    child.kill('SIGINT');
    await stopped;
    const interrupted = await done;
    expect(interrupted.code).toBe(130);
    const summary = summaryOf(interrupted) as ReturnType<typeof summaryOf> & { rejectedBy: Record<string, number> };
    expect(summary).toMatchObject({ status: 'interrupted', resume: { finished: false } });
    expect(summary.read).toBe(summary.inserted + summary.rejected);
    const committed = progress() as Progress;
    expect(committed).toMatchObject({ finished: false, inserted: summary.inserted });
    if (timeout === '0') {
      // Given up at once: rows read and not committed are undelivered, written past the last commit.
      expect(summary.rejectedBy.undelivered).toBeGreaterThan(0);
      expect(statSync(rejectsPath).size).toBeGreaterThan(committed.rejectsOffset);
    } else {
      expect(summary.rejectedBy.undelivered).toBe(0);
      expect(committed.records).toBe(summary.read);
    }
    const next = resumeSummary(await runCli(args(file), dir));
    expect(next).toMatchObject({ read: input.records - committed.records, resume: { skipped: committed.records } });
    // The undelivered lines were cut off the rejects file before the next run read those records again.
    expectExactlyOnce(input, stored(), rejectsPath);
  });
});
