import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { collect, startCli, tempDir } from './helpers';
import { MAX_RECORD_BYTES, expectExactlyOnce, killUntilDone, makeInput, resumeSummary } from './resume-support';
import { describePg, uniqueTable } from './pg-server';
import type { CliResult } from './helpers';
import type { Progress } from './resume-support';

/**
 * `sluice ingest FILE --resumable` into PostgreSQL, by COPY and by INSERT: real SIGKILLs, many times,
 * then the table and the rejects file hold every line exactly once. The table has a trigger that sleeps
 * 10 ms per statement, so that a load takes time (kills land mid-load, many inside a transaction) without
 * burning CPU.
 */
describePg('sluice ingest --resumable into PostgreSQL', (url) => {
  let admin: Client;
  let dir: string;
  let cleanup: () => void;
  let rejectsPath: string;
  const dropped: string[] = [];

  beforeAll(async () => {
    admin = new Client({ connectionString: url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
  });
  beforeEach(() => {
    ({ dir, cleanup } = tempDir());
    rejectsPath = join(dir, 'rejects.ndjson');
  });
  afterEach(async () => {
    cleanup();
    for (const sql of dropped.splice(0)) await admin.query(sql);
  });

  /** A fresh table `[schema.]name` with k UNIQUE and a trigger sleeping `ms` per statement; dropped after the test. */
  const slowTable = async (schema?: string, ms = 10): Promise<string> => {
    const name = uniqueTable('sluice_resume');
    const table = schema === undefined ? name : `${schema}.${name}`;
    if (schema !== undefined) {
      await admin.query(`CREATE SCHEMA ${schema}`);
      dropped.push(`DROP SCHEMA ${schema} CASCADE`);
    } else {
      dropped.push(`DROP TABLE IF EXISTS ${table}`, `DROP FUNCTION IF EXISTS ${name}_slow()`);
      dropped.push(`DELETE FROM sluice_progress WHERE target_table = '${table}'`);
    }
    await admin.query(`CREATE TABLE ${table} (n BIGINT NOT NULL, k BIGINT UNIQUE, s TEXT)`);
    await admin.query(
      `CREATE FUNCTION ${schema === undefined ? '' : `${schema}.`}${name}_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(${ms / 1000}); RETURN NULL; END $$`,
    );
    await admin.query(
      `CREATE TRIGGER slow BEFORE INSERT ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${schema === undefined ? '' : `${schema}.`}${name}_slow()`,
    );
    return table;
  };
  const progressOf = async (table: string): Promise<Progress | undefined> => {
    const schema = table.includes('.') ? `${table.split('.')[0]}.` : '';
    const exists = await admin.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [
      `${schema}sluice_progress`,
    ]);
    if (exists.rows[0]?.ok !== true) return undefined;
    const { rows } = await admin.query<Record<string, string | null>>(
      `SELECT * FROM ${schema}sluice_progress WHERE target_table = $1`,
      [table],
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      records: Number(row.records),
      inserted: Number(row.inserted),
      rejected: Number(row.rejected),
      rejectsOffset: Number(row.rejects_offset),
      runs: Number(row.runs),
      finished: row.finished_at !== null,
    };
  };
  const stored = async (table: string): Promise<number[]> =>
    (await admin.query<{ n: string }>(`SELECT n FROM ${table}`)).rows.map((row) => Number(row.n));
  const args = (file: string, table: string, ...extra: string[]): string[] => [
    'ingest',
    file,
    '--into',
    url,
    '--table',
    table,
    '--resumable',
    '--rejects',
    rejectsPath,
    '--max-record-bytes',
    String(MAX_RECORD_BYTES),
    '--batch-size',
    '40',
    '--json',
    '-q',
    ...extra,
  ];

  it.each([
    ['copy', 'the default schema', undefined, 2500, 8],
    ['insert', 'a schema of its own', 'sluice_resume_schema', 1000, 5],
  ] as const)(
    '--pg-method %s (a table in %s) under repeated SIGKILLs: every line exactly once',
    async (method, _where, schema, lines, maxKills) => {
      const input = makeInput(lines);
      const file = join(dir, 'events.ndjson');
      writeFileSync(file, input.text);
      const table = await slowTable(schema === undefined ? undefined : `${schema}_${process.pid}`);
      const report = await killUntilDone({
        args: args(file, table, '--pg-method', method),
        cwd: dir,
        progress: () => progressOf(table),
        maxKills,
        records: input.records,
        randomKillMs: 800,
      });
      const summary = resumeSummary(report.last);
      expect(report.kills).toBeGreaterThanOrEqual(4);
      expect(report.midLoad).toBeGreaterThanOrEqual(3);
      expectExactlyOnce(input, await stored(table), rejectsPath);
      const total = {
        records: input.records,
        inserted: input.rows.length,
        rejected: input.records - input.rows.length,
      };
      expect(summary.resume).toMatchObject({ finished: true, total });
      expect(await progressOf(table)).toMatchObject({ ...total, finished: true });
    },
    60_000,
  );

  it.each([
    ['the server rolls it back (its connection is gone)', true],
    ['the server commits it (it had received COMMIT)', false],
  ] as const)(
    'killed after a batch wrote its rejects, before its commit: %s; the next run stores every line once',
    async (_what, terminate) => {
      const input = makeInput(1500);
      const file = join(dir, 'events.ndjson');
      writeFileSync(file, input.text);
      const schema = `sluice_resume_gate_${process.pid}`;
      const table = await slowTable(schema, 0);
      // The schema's progress table, made by a load of an empty file, with a gate: its UPDATE that moves a load
      // forward (after the batch's rejects are written and synced) waits for an advisory lock the test holds.
      writeFileSync(join(dir, 'empty.ndjson'), '');
      resumeSummary(await collect(startCli(args(join(dir, 'empty.ndjson'), `${schema}.other`), dir)));
      const key = 7_000_000 + (process.pid % 1_000_000);
      await admin.query(
        `CREATE FUNCTION ${schema}.gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock(${key}); RETURN NEW; END $$`,
      );
      await admin.query(
        `CREATE TRIGGER gate BEFORE UPDATE ON ${schema}.sluice_progress FOR EACH ROW WHEN (NEW.committed_offset <> OLD.committed_offset AND NEW.target_table = '${table}') EXECUTE FUNCTION ${schema}.gate()`,
      );
      await admin.query('SELECT pg_advisory_lock($1)', [key]);
      try {
        const child = startCli(args(file, table, '--batch-size', '120'), dir);
        const done = collect(child);
        let waiting: number | undefined;
        while (waiting === undefined) {
          const { rows } = await admin.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE '%sluice_progress%'`,
          );
          waiting = rows[0]?.pid;
          if (waiting === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
        }
        child.kill('SIGKILL');
        expect((await done).signal).toBe('SIGKILL');
        // The first batch (120 lines: parse rejects among them) wrote its rejects; nothing is committed yet.
        expect(await progressOf(table)).toMatchObject({ records: 0, rejectsOffset: 0 });
        expect(statSync(rejectsPath).size).toBeGreaterThan(0);
        if (terminate) await admin.query('SELECT pg_terminate_backend($1)', [waiting]);
      } finally {
        await admin.query('SELECT pg_advisory_unlock($1)', [key]);
      }
      await admin.query(`DROP TRIGGER gate ON ${schema}.sluice_progress`);
      const next = resumeSummary(await collect(startCli(args(file, table), dir)));
      expect(next.resume).toMatchObject(
        terminate ? { start: 'resumed', skipped: 0 } : { start: 'resumed', skipped: expect.any(Number) },
      );
      if (!terminate) expect(next.resume.skipped).toBeGreaterThan(0);
      expectExactlyOnce(input, await stored(table), rejectsPath);
    },
    30_000,
  );

  it('two runs of one load at once: one stops with ERR_CLI_RESUME_CONFLICT and writes nothing more; the load ends exactly once', async () => {
    const input = makeInput(1500);
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, input.text);
    const table = await slowTable(undefined, 30);
    const first = startCli(args(file, table), dir);
    const firstDone = collect(first);
    while (((await progressOf(table))?.records ?? 0) < 40) await new Promise((resolve) => setTimeout(resolve, 5));
    // The first needs at least another 35 statements of 30 ms: the second starts while it runs.
    const second = await collect(startCli(args(file, table), dir));
    const results: CliResult[] = [await firstDone, second];
    const conflicted = results.filter((r) => /another run of sluice/.test(r.stderr));
    expect(conflicted).toHaveLength(1);
    const [loser] = conflicted as [CliResult];
    const winner = results.find((r) => r !== loser) as CliResult;
    if (loser === second) {
      // Refused at its start: the first run committed while it was taking the load over.
      expect({ code: loser.code, stderr: loser.stderr }).toEqual({
        code: 2,
        stderr: expect.stringMatching(/is loading .* into table .* one run at a time/),
      });
    } else {
      // Taken over between two of its commits: it stops, and leaves the rejects file to the other run.
      expect({ code: loser.code, stderr: loser.stderr }).toEqual({
        code: 1,
        stderr: expect.stringMatching(/has taken over the load of .*: this run stopped; what it committed stays/),
      });
    }
    resumeSummary(winner);
    expect(await progressOf(table)).toMatchObject({ finished: true });
    expect(statSync(rejectsPath).size).toBe((await progressOf(table))?.rejectsOffset);
    expectExactlyOnce(input, await stored(table), rejectsPath);
  }, 30_000);

  it('another run taking the load over mid-run: this one stops (exit 1) without touching the rejects file again', async () => {
    const input = makeInput(2000);
    const file = join(dir, 'events.ndjson');
    writeFileSync(file, input.text);
    const table = await slowTable();
    const child = startCli(args(file, table), dir);
    const done = collect(child);
    while (((await progressOf(table))?.records ?? 0) < 200) await new Promise((resolve) => setTimeout(resolve, 5));
    // What a second run's start does (it waits for the first run's transaction in flight, then goes in between).
    await admin.query('UPDATE sluice_progress SET runs = runs + 1 WHERE target_table = $1', [table]);
    const taken = await progressOf(table);
    const result = await done;
    expect({ code: result.code, stderr: result.stderr }).toEqual({
      code: 1,
      stderr: expect.stringMatching(/has taken over the load of .*left to the other run/),
    });
    expect(await progressOf(table)).toEqual(taken);
    expect(statSync(rejectsPath).size).toBe(taken?.rejectsOffset);
    resumeSummary(await collect(startCli(args(file, table), dir)));
    expectExactlyOnce(input, await stored(table), rejectsPath);
  }, 30_000);
});
