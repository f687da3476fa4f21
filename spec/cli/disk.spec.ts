import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { parseRecord } from '../../lib/disk/record';
import { CLI, collect, runCli, startCli, summaryOf, tempDir } from './helpers';
import { execSql, selectAll } from './sqlite-db';

/**
 * `sluice ingest - --disk DIR`: what the run accepted from stdin is in a write-ahead log until it is
 * inserted, so a run killed with SIGKILL loses none of it: the next run with the same `--disk`
 * inserts it first. Real child processes, real SIGKILLs, a real SQLite database.
 */

let dir: string;
let cleanup: () => void;
beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
});
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

const lines = (from: number, to: number): string =>
  Array.from({ length: to - from + 1 }, (_, i) => `{"n":${from + i},"s":"row ${from + i}"}\n`).join('');

/** Records appended to the log so far (acknowledged ones included), read from the segment files. */
function recordsIn(logDir: string): number {
  if (!existsSync(logDir)) return 0;
  let count = 0;
  for (const name of readdirSync(logDir).filter((file) => file.endsWith('.seg'))) {
    const bytes = readFileSync(join(logDir, name));
    for (let offset = 0; ;) {
      const record = parseRecord(bytes, offset);
      if (typeof record === 'string') break;
      count++;
      offset += record.size;
    }
  }
  return count;
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

const ingest = (db: string, logDir: string, extra: string[] = []): string[] => [
  'ingest',
  '-',
  '--into',
  `sqlite:${db}`,
  '--table',
  'events',
  '--disk',
  logDir,
  '--json',
  '-q',
  ...extra,
];

test('stdin through --disk: every row inserted, and the log has nothing left for the next run', async () => {
  const db = join(dir, 'out.db');
  const logDir = join(dir, 'queue');
  const first = await runCli(ingest(db, logDir), dir, lines(1, 3000));
  expect(first.code).toBe(0);
  expect(summaryOf(first)).toMatchObject({ read: 3000, inserted: 3000, disk: { replayed: 0, kept: 0 } });
  const again = await runCli(ingest(db, logDir), dir, '');
  expect(summaryOf(again)).toMatchObject({ read: 0, inserted: 0, disk: { replayed: 0, kept: 0 } });
  expect(selectAll<{ c: number }>(db, 'SELECT count(*) AS c FROM events')[0]?.c).toBe(3000);
});

test('SIGKILL while the database is locked: the next run with the same --disk inserts every row read, once, first', async () => {
  const db = join(dir, 'out.db');
  const logDir = join(dir, 'queue');
  // The table exists; then the database is locked, so the killed run can insert nothing.
  expect((await runCli(ingest(db, logDir), dir, lines(0, 0))).code).toBe(0);
  const lock = new BetterSqlite3(db);
  lock.exec('BEGIN IMMEDIATE');
  try {
    const child = startCli(ingest(db, logDir), dir);
    const exited = collect(child);
    child.stdin.end(lines(1, 2000));
    await until('2,000 rows in the log', () => recordsIn(logDir) >= 1 + 2000);
    child.kill('SIGKILL');
    expect((await exited).signal).toBe('SIGKILL');
  } finally {
    lock.exec('ROLLBACK');
    lock.close();
  }
  // Another batch of stdin comes after the replayed rows.
  const next = await runCli(ingest(db, logDir), dir, lines(2001, 2100));
  expect(next.code).toBe(0);
  expect(summaryOf(next)).toMatchObject({ read: 100, inserted: 2100, disk: { replayed: 2000, kept: 0 } });
  const rows = selectAll<{ n: number }>(db, 'SELECT n FROM events ORDER BY rowid');
  expect(rows.map((row) => row.n)).toEqual(Array.from({ length: 2101 }, (_, i) => i));
});

test('SIGKILLs at random moments while rows are being inserted: every row read is there at least once; redeliveries within the bound', async () => {
  const db = join(dir, 'out.db');
  const logDir = join(dir, 'queue');
  // A trigger that scans 300 × 300 rows per insert (about 1 ms): a kill aimed at the middle of a load lands there.
  execSql(
    db,
    `PRAGMA journal_mode = WAL; CREATE TABLE events (n INTEGER, s TEXT);
     CREATE TABLE w (x INTEGER); WITH RECURSIVE c(x) AS (VALUES (1) UNION ALL SELECT x + 1 FROM c WHERE x < 300) INSERT INTO w SELECT x FROM c;
     CREATE TRIGGER slow AFTER INSERT ON events BEGIN SELECT count(*) FROM w a, w b; END;`,
  );
  const count = (): number => selectAll<{ c: number }>(db, 'SELECT count(*) AS c FROM events')[0]?.c ?? 0;
  const total = 1500;
  let kills = 0;
  for (let round = 0; round < 3; round++) {
    const from = round * total + 1;
    const before = count();
    const child = startCli(ingest(db, logDir, ['--batch-size', '100']), dir);
    const exited = collect(child);
    child.stdin.end(lines(from, from + total - 1));
    // Everything read is accepted (in the log) before the kill; the kill lands while rows are being inserted,
    // after a random number of them (up to half a round).
    await until('the rows in the log', () => recordsIn(logDir) >= (round + 1) * total);
    const target = before + 1 + Math.floor((Math.random() * total) / 2);
    await until('rows being inserted', () => count() >= target);
    child.kill('SIGKILL');
    if ((await exited).signal === 'SIGKILL') kills++;
  }
  const last = await runCli(ingest(db, logDir), dir, '');
  expect(last.code).toBe(0);
  const rows = selectAll<{ n: number }>(db, 'SELECT n FROM events');
  const seen = new Set(rows.map((row) => row.n));
  expect(seen.size).toBe(3 * total);
  expect(kills).toBeGreaterThan(0);
  // One flush slot: at most (1 + 4) batches of 100 delivered again per kill (docs/disk.md).
  expect(rows.length - seen.size).toBeLessThanOrEqual(kills * 5 * 100);
}, 120_000);

test('a --disk directory another live process holds: exit 2 before reading, naming that process', async () => {
  const logDir = join(dir, 'queue');
  mkdirSync(logDir);
  // This (live) process holds it.
  writeFileSync(join(logDir, 'LOCK'), `${JSON.stringify({ pid: process.pid, token: 'test', startedAt: '' })}\n`);
  const result = await runCli(ingest(join(dir, 'out.db'), logDir), dir, lines(1, 3));
  expect(result.code).toBe(2);
  expect(result.stderr).toContain(`--disk: The disk log at ${logDir} is in use by process ${process.pid}`);
});

test('--disk is refused for a file, with --resumable, for CSV and from a broker', async () => {
  const db = join(dir, 'out.db');
  const cases: Array<[string[], RegExp]> = [
    [['ingest', 'x.ndjson', '--into', `sqlite:${db}`, '--table', 't', '--disk', 'q'], /--disk is for stdin/],
    [['ingest', '-', '--into', `sqlite:${db}`, '--table', 't', '--disk', 'q', '--format', 'csv'], /--format ndjson/],
    [['ingest', 'x.ndjson', '--into', `sqlite:${db}`, '--table', 't', '--disk', 'q', '--resumable'], /--disk/],
    [
      ['ingest', 'nats://127.0.0.1:4222/S?consumer=c', '--into', `sqlite:${db}`, '--table', 't', '--disk', 'q'],
      /broker/,
    ],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(args, dir, '');
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(message) });
  }
});
