/**
 * `sluice ingest` of generated NDJSON files into SQLite, each run in its own process:
 *
 * - uniform data (every record the same fields and types), against a hand-written
 *   loop that inserts the same rows in batched transactions of the same size;
 * - heterogeneous data of the same size (late keys, integer → real → text,
 *   nested values, absent and null fields: see generateHeterogeneous), against
 *   `sqlite-utils insert --nl --alter` when it is installed (Debian: apt-get install
 *   sqlite-utils), after which the two databases are compared value by value.
 *
 *   npm run bench:cli                 # 1024 MiB files (the issue's 1 GB)
 *   npm run bench:cli -- --mb 256     # smaller, for a quick look
 *   npm run bench:cli -- --rounds 3   # best of 3 for sluice and the loop (default 2), for a noisy machine
 *   npm run bench:cli -- --no-sqlite-utils   # skip the (slow) sqlite-utils run
 *   npm run bench:cli -- --mb 64 --pg postgres://postgres@127.0.0.1/test
 *                                     # PostgreSQL: --pg-method copy against insert
 *   npm run bench:cli -- --mb 256 --resumable [--pg URL]
 *                                     # what --resumable costs: the uniform file with and without it
 *
 * The data files are generated once under os.tmpdir() (kept out of git) and reused.
 * The CLI and the loop do the same per-line work on uniform data (see handLoop), use
 * WAL, synchronous=NORMAL, one prepared statement and one transaction per batch.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  openSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type BetterSqlite3 from 'better-sqlite3';
import { median } from './common';

const ROOT = process.cwd();
const CLI = resolve(ROOT, 'dist/cli/main.js');
const BATCH = 1000;
const COLUMNS = ['id', 'at', 'user', 'kind', 'amount', 'tags', 'message'];

interface Result {
  name: string;
  /** Which file: uniform unless said. */
  data?: string;
  rows: number;
  seconds: number;
  /** User + system CPU of the child, all its threads: steadier than wall time on a shared machine. */
  cpuSeconds: number;
  peakRssMiB: number;
}

/**
 * Preloaded into each child (CLI and loop alike) to report its CPU time on exit, so
 * neither program measures itself differently. stderr is synchronous for pipes on Linux.
 */
const CPU_REPORT = `data:text/javascript,process.on('exit',()=>{const u=process.resourceUsage();process.stderr.write('\\nsluice-bench-cpu '+(u.userCPUTime+u.systemCPUTime)+'\\n')})`;

function cpuSecondsOf(stderr: string): number {
  const match = /sluice-bench-cpu (\d+)/.exec(stderr);
  return match === null ? NaN : Number(match[1]) / 1e6;
}

async function generate(path: string, bytes: number): Promise<number> {
  if (existsSync(path) && statSync(path).size >= bytes) return statSync(path).size;
  const out = createWriteStream(path);
  const kinds = ['click', 'view', 'purchase', 'signup', 'error'];
  let written = 0;
  for (let id = 1; written < bytes; id++) {
    const line = `${JSON.stringify({
      id,
      at: new Date(Date.UTC(2024, 0, 1) + id * 937).toISOString(),
      user: `user-${(id * 7919) % 100_000}`,
      kind: kinds[id % kinds.length],
      amount: Math.round(((id * 31) % 100_000) / 7) / 100,
      tags: id % 3 === 0 ? ['a', 'b'] : [],
      message: 'the quick brown fox jumps over the lazy dog '.repeat(1 + (id % 3)),
    })}\n`;
    written += Buffer.byteLength(line);
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
  return written;
}

/**
 * As much data as generate() writes, but shaped like real logs: keys that appear
 * late in the file (at 10 %, 50 % and 90 % of it), values that change type
 * (amount: integer, then fractional; status: integer, then also "timeout"; code:
 * integer, then also text), nested objects and arrays, fields absent from some
 * records and null in others. About as many values per record as the uniform file
 * (7.2 fields, 6.9 of them not null, against 7) and bytes per record (about 200
 * against 211), so rows/s compare like for like.
 *
 * With `numericText`, code's later strings are ones SQLite would read as numbers
 * ("00042"): sluice then rebuilds that column as TEXT once, at 45 % of the file,
 * rather than let SQLite store 42 (docs/cli.md, "Schema evolution").
 */
async function generateHeterogeneous(path: string, bytes: number, numericText: boolean): Promise<number> {
  if (existsSync(path) && statSync(path).size >= bytes) return statSync(path).size;
  const out = createWriteStream(path);
  const kinds = ['click', 'view', 'purchase', 'signup', 'error'];
  let written = 0;
  for (let id = 1; written < bytes; id++) {
    const phase = written / bytes;
    const record: Record<string, unknown> = {
      id,
      at: new Date(Date.UTC(2024, 0, 1) + id * 937).toISOString(),
      user: `user-${(id * 7919) % 100_000}`,
      kind: kinds[id % kinds.length],
      amount: phase < 0.3 ? (id * 31) % 100_000 : Math.round(((id * 31) % 100_000) / 7) / 100,
    };
    if (id % 3 !== 0)
      record.tags = id % 4 === 0 ? { source: 'api', retries: id % 3 } : id % 5 === 0 ? null : ['a', 'b'];
    if (id % 2 === 0) record.message = 'the quick brown fox jumps over the lazy dog '.repeat(2 + (id % 3));
    if (id % 2 === 1) record.status = phase >= 0.6 && id % 10 === 1 ? 'timeout' : 200 + (id % 3) * 100;
    if (id % 4 === 1) {
      const text = numericText ? String(id % 1000).padStart(5, '0') : `E${id % 1000}`;
      record.code = phase >= 0.45 && id % 8 === 1 ? text : id % 1000;
    }
    if (phase >= 0.1 && id % 4 === 2) record.session = `s-${id % 10_000}`;
    if (phase >= 0.5 && id % 4 === 3) record.latency_ms = (id % 1000) / 10;
    if (phase >= 0.9 && id % 5 === 0) record.trace = { span: id, parent: id - 1 };
    const line = `${JSON.stringify(record)}\n`;
    written += Buffer.byteLength(line);
    if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
  return written;
}

function cliRun(file: string, db: string, name = 'sluice ingest (CLI)', extra: readonly string[] = []): Result {
  rmDb(db);
  const started = performance.now();
  const child = spawnSync(
    process.execPath,
    [
      '--import',
      CPU_REPORT,
      CLI,
      'ingest',
      file,
      '--into',
      `sqlite:${db}`,
      '--table',
      'events',
      '--batch-size',
      String(BATCH),
      '--json',
      '--quiet',
      '--rejects',
      `${db}.rejects`,
      ...extra,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  const seconds = (performance.now() - started) / 1000;
  if (child.status !== 0) throw new Error(`sluice ingest failed (${child.status}): ${child.stderr}`);
  const summary = JSON.parse(child.stdout.trim().split('\n').pop() as string) as {
    inserted: number;
    rejected: number;
    peakRssBytes: number;
  };
  if (summary.rejected !== 0) throw new Error(`sluice ingest rejected ${summary.rejected} rows`);
  return {
    name,
    rows: summary.inserted,
    seconds,
    cpuSeconds: cpuSecondsOf(child.stderr),
    peakRssMiB: summary.peakRssBytes / 1048576,
  };
}

/** One CLI run into PostgreSQL with `--pg-method method`, into a fresh table dropped afterwards. */
function pgRun(file: string, url: string, method: string, extra: readonly string[] = []): Result {
  const table = `sluice_bench_${process.pid}_${method}`;
  const drop = (): void => {
    spawnSync(
      process.execPath,
      [
        '-e',
        // The table, and a --resumable run's progress row (kept by sluice in sluice_progress).
        `const {Client}=require('pg');const c=new Client(process.argv[1]);c.connect().then(()=>c.query('DROP TABLE IF EXISTS ${table}')).then(()=>c.query("SELECT to_regclass('sluice_progress') IS NOT NULL AS p")).then((r)=>r.rows[0].p&&c.query('DELETE FROM sluice_progress WHERE target_table = $1',['${table}'])).then(()=>c.end())`,
        url,
      ],
      { cwd: ROOT },
    );
  };
  drop();
  const started = performance.now();
  const child = spawnSync(
    process.execPath,
    [
      CLI,
      'ingest',
      file,
      '--into',
      url,
      '--table',
      table,
      '--pg-method',
      method,
      '--batch-size',
      String(BATCH),
      '--json',
      '--quiet',
      '--rejects',
      join(tmpdir(), `${table}.rejects`),
      ...extra,
    ],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  const seconds = (performance.now() - started) / 1000;
  drop();
  if (child.status !== 0) throw new Error(`sluice ingest (${method}) failed (${child.status}): ${child.stderr}`);
  const summary = JSON.parse(child.stdout.trim().split('\n').pop() as string) as {
    inserted: number;
    peakRssBytes: number;
  };
  return {
    name: [`--pg-method ${method}`, ...extra].join(' '),
    rows: summary.inserted,
    seconds,
    cpuSeconds: NaN,
    peakRssMiB: summary.peakRssBytes / 1048576,
  };
}

/** Whether `sqlite-utils` is on the PATH. */
function hasSqliteUtils(): boolean {
  return spawnSync('sqlite-utils', ['--version'], { encoding: 'utf8' }).status === 0;
}

/** `sqlite-utils insert DB events FILE --nl --alter`, as a user would run it; GNU time reports its CPU and RSS. */
function sqliteUtilsRun(file: string, db: string): Result & { version: string } {
  rmDb(db);
  const version = spawnSync('sqlite-utils', ['--version'], { encoding: 'utf8' }).stdout.trim();
  const timed = existsSync('/usr/bin/time');
  const command = ['sqlite-utils', 'insert', db, 'events', file, '--nl', '--alter'];
  const started = performance.now();
  const child = timed
    ? spawnSync('/usr/bin/time', ['-f', 'sluice-bench-time %U %S %M', ...command], { encoding: 'utf8' })
    : spawnSync(command[0] as string, command.slice(1), { encoding: 'utf8' });
  const seconds = (performance.now() - started) / 1000;
  if (child.status !== 0) throw new Error(`sqlite-utils failed (${child.status}): ${child.stderr}`);
  const [user, system, rssKiB] = (/sluice-bench-time (\S+) (\S+) (\d+)/.exec(child.stderr) ?? []).slice(1).map(Number);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require(resolve(ROOT, 'node_modules/better-sqlite3')) as typeof BetterSqlite3;
  const handle = new Database(db, { readonly: true });
  const rows = (handle.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
  handle.close();
  return {
    name: 'sqlite-utils insert --nl --alter',
    version,
    rows,
    seconds,
    cpuSeconds: user === undefined ? NaN : user + (system as number),
    peakRssMiB: rssKiB === undefined ? NaN : rssKiB / 1024,
  };
}

/**
 * Compares two `events` tables row by row (in insertion order) and value by value,
 * numbers as numbers and JSON as parsed JSON (sqlite-utils writes `["a", "b"]`,
 * sluice `["a","b"]`). Returns one line per difference found, empty if none.
 */
function compareTables(sluiceDb: string, otherDb: string, otherName: string): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require(resolve(ROOT, 'node_modules/better-sqlite3')) as typeof BetterSqlite3;
  const a = new Database(sluiceDb, { readonly: true });
  const b = new Database(otherDb, { readonly: true });
  try {
    const columnsOf = (db: BetterSqlite3.Database): string[] =>
      (db.prepare("SELECT name FROM pragma_table_info('events')").all() as { name: string }[]).map((c) => c.name);
    const columns = columnsOf(a);
    const theirs = new Set(columnsOf(b));
    const report: string[] = [];
    const missing = columns.filter((c) => !theirs.has(c));
    if (missing.length > 0 || theirs.size !== columns.length)
      report.push(`columns differ: sluice ${columns.join(', ')}; ${otherName} ${[...theirs].join(', ')}`);
    const norm = (value: unknown): string => {
      if (value === null || value === undefined) return 'null';
      if (typeof value === 'number' || typeof value === 'bigint') return String(Number(value));
      // SQLite gives strings (and buffers, which neither side writes).
      const text = typeof value === 'string' ? value : JSON.stringify(value);
      if (text.startsWith('[') || text.startsWith('{')) {
        try {
          return JSON.stringify(JSON.parse(text));
        } catch {
          return text;
        }
      }
      return text;
    };
    const shared = columns.filter((c) => theirs.has(c));
    const list = shared.map((c) => `"${c}"`).join(', ');
    const left = a.prepare(`SELECT ${list} FROM events ORDER BY rowid`).raw().iterate() as Iterator<unknown[]>;
    const right = b.prepare(`SELECT ${list} FROM events ORDER BY rowid`).raw().iterate() as Iterator<unknown[]>;
    const differing = new Map<string, { count: number; example: string }>();
    for (let row = 1; ; row++) {
      const x = left.next();
      const y = right.next();
      if (x.done === true || y.done === true) {
        if (x.done !== y.done) report.push(`row counts differ (one table ends at row ${row})`);
        break;
      }
      shared.forEach((column, i) => {
        const ours = norm(x.value[i]);
        const other = norm(y.value[i]);
        if (ours === other) return;
        const seen = differing.get(column);
        if (seen !== undefined) seen.count++;
        else differing.set(column, { count: 1, example: `row ${row}: sluice ${ours}, ${otherName} ${other}` });
      });
    }
    for (const [column, { count, example }] of differing)
      report.push(`column ${column}: ${count} value(s) differ (first: ${example})`);
    return report;
  } finally {
    a.close();
    b.close();
  }
}

function loopRun(file: string, db: string): Result {
  rmDb(db);
  const started = performance.now();
  const child = spawnSync(process.execPath, ['--import', CPU_REPORT, __filename, '--hand-loop', file, db], {
    encoding: 'utf8',
  });
  const seconds = (performance.now() - started) / 1000;
  if (child.status !== 0) throw new Error(`hand-written loop failed (${child.status}): ${child.stderr}`);
  const { rows, rejected, peakRssBytes } = JSON.parse(child.stdout) as {
    rows: number;
    rejected: number;
    peakRssBytes: number;
  };
  if (rejected !== 0) throw new Error(`hand-written loop rejected ${rejected} rows`);
  return {
    name: `hand-written loop (batches of ${BATCH})`,
    rows,
    seconds,
    cpuSeconds: cpuSecondsOf(child.stderr),
    peakRssMiB: peakRssBytes / 1048576,
  };
}

/** A row of the hand-written loop: like the CLI's, it keeps its line number and text for the rejects file. */
interface LoopRow {
  line: number;
  raw: string;
  values: unknown[];
}

/**
 * The baseline: what one would write without sluice, doing the per-line work the
 * CLI must do to lose nothing (and no more): number the lines, skip blank ones,
 * reject a line that is not JSON, not an object or has a field that is not a
 * column, convert values (booleans to 1/0, objects to JSON), keep each row's
 * line and text until its batch commits, and isolate the rows of a failed batch
 * one by one. Inserts are synchronous, so each chunk is processed fully before
 * the next is read: that is its backpressure.
 */
async function handLoop(file: string, dbPath: string): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require(resolve(ROOT, 'node_modules/better-sqlite3')) as typeof BetterSqlite3;
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(
    'CREATE TABLE events ("id" INTEGER, "at" TEXT, "user" TEXT, "kind" TEXT, "amount" REAL, "tags" TEXT, "message" TEXT) STRICT',
  );
  const statement = db.prepare(
    `INSERT INTO events (${COLUMNS.map((c) => `"${c}"`).join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`,
  );
  const insertMany = db.transaction((batch: LoopRow[]) => {
    for (const row of batch) statement.run(row.values);
  });
  let rejectsFd: number | undefined;
  let read = 0;
  let rows = 0;
  let rejected = 0;
  const reject = (line: number, raw: string, error: string): void => {
    rejectsFd ??= openSync(`${dbPath}.rejects`, 'a');
    writeSync(rejectsFd, `${JSON.stringify({ line, error, raw })}\n`);
    rejected++;
  };
  const toValue = (v: unknown): unknown =>
    typeof v === 'boolean' ? (v ? 1 : 0) : typeof v === 'object' && v !== null ? JSON.stringify(v) : (v ?? null);
  /** The record's values in column order, or undefined if it has a field that is not a column. */
  const toValues = (record: Record<string, unknown>): unknown[] | undefined => {
    const values = new Array<unknown>(COLUMNS.length);
    let i = 0;
    for (const key in record) {
      if (key !== COLUMNS[i]) {
        // Fields in another order: the same check the CLI makes, by lookup.
        for (const field in record) if (!COLUMNS.includes(field)) return undefined;
        break;
      }
      values[i++] = toValue(record[key]);
    }
    if (i === COLUMNS.length) return values;
    for (let c = 0; c < COLUMNS.length; c++) values[c] = toValue(record[COLUMNS[c] as string]);
    return values;
  };
  let batch: LoopRow[] = [];
  const flush = (): void => {
    try {
      insertMany(batch);
      rows += batch.length;
    } catch {
      for (const row of batch) {
        try {
          statement.run(row.values);
          rows++;
        } catch (error) {
          reject(row.line, row.raw, String(error));
        }
      }
    }
    batch = [];
  };
  let lineNo = 0;
  const take = (text: string): void => {
    lineNo++;
    const raw = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (raw.length === 0 || (raw.charCodeAt(0) <= 32 && raw.trim() === '')) return;
    read++;
    let record: unknown;
    try {
      record = JSON.parse(raw);
    } catch (error) {
      reject(lineNo, raw, `invalid JSON: ${String(error)}`);
      return;
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      reject(lineNo, raw, 'expected a JSON object');
      return;
    }
    const values = toValues(record as Record<string, unknown>);
    if (values === undefined) {
      reject(lineNo, raw, 'a field is not a column');
      return;
    }
    batch.push({ line: lineNo, raw, values });
    if (batch.length === BATCH) flush();
  };
  const decoder = new StringDecoder('utf8');
  let tail = '';
  for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
    const text = tail + decoder.write(chunk as Buffer);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      take(text.slice(start, nl));
      start = nl + 1;
    }
    tail = text.slice(start);
  }
  const rest = tail + decoder.end();
  if (rest !== '') take(rest);
  if (batch.length > 0) flush();
  db.close();
  if (rejectsFd !== undefined) closeSync(rejectsFd);
  if (read !== rows + rejected) throw new Error(`hand-written loop lost rows: read ${read} != ${rows} + ${rejected}`);
  process.stdout.write(JSON.stringify({ rows, rejected, peakRssBytes: process.resourceUsage().maxRSS * 1024 }));
}

function rmDb(db: string): void {
  for (const suffix of ['', '-wal', '-shm', '.rejects']) rmSync(db + suffix, { force: true });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--hand-loop') return handLoop(args[1] as string, args[2] as string);
  const mbFlag = args.indexOf('--mb');
  const mb = mbFlag === -1 ? 1024 : Number(args[mbFlag + 1]);
  if (!(mb > 0)) throw new Error(`--mb must be a positive number. Received ${args[mbFlag + 1]}`);
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm run bench:cli does)`);

  const file = join(tmpdir(), `sluice-bench-${mb}mb.ndjson`);
  const mixedFile = join(tmpdir(), `sluice-bench-${mb}mb-heterogeneous.ndjson`);
  const db = join(tmpdir(), 'sluice-bench-cli.db');
  const mixedDb = join(tmpdir(), 'sluice-bench-cli-heterogeneous.db');
  const theirDb = join(tmpdir(), 'sluice-bench-sqlite-utils.db');
  process.stderr.write(`generating ${file} (${mb} MiB, reused if present)...\n`);
  const bytes = await generate(file, mb * 1024 * 1024);

  const pgFlag = args.indexOf('--pg');
  const pgUrl = pgFlag === -1 ? undefined : (args[pgFlag + 1] as string);
  if (args.includes('--resumable')) return compareResumable(file, bytes, db, pgUrl, roundsOf(args, 3));
  if (pgUrl !== undefined) return comparePg(file, bytes, pgUrl);

  process.stderr.write(`generating ${mixedFile} (${mb} MiB, reused if present)...\n`);
  const mixedBytes = await generateHeterogeneous(mixedFile, mb * 1024 * 1024, false);
  const rounds = roundsOf(args, 2);
  const runs: (() => Result)[] = [
    () => loopRun(file, db),
    () => cliRun(file, db),
    () => ({ ...cliRun(mixedFile, mixedDb), data: 'heterogeneous' }),
  ];
  const report = (result: Result): void => {
    process.stderr.write(
      `  ${result.data ?? 'uniform'}, ${result.name}: ${result.rows} rows in ${result.seconds.toFixed(1)} s (CPU ${result.cpuSeconds.toFixed(1)} s), peak RSS ${result.peakRssMiB.toFixed(0)} MiB\n`,
    );
  };
  const results: Result[] = [];
  // Alternated, so a warm page cache or a noisy neighbour does not favour one side.
  for (let round = 0; round < rounds; round++) {
    for (const run of round % 2 === 0 ? runs : [...runs].reverse()) {
      const result = run();
      report(result);
      results.push(result);
    }
  }
  rmDb(db);

  // Once: the same heterogeneous data, but with strings SQLite would read as numbers (one column rebuild).
  const numericFile = join(tmpdir(), `sluice-bench-${mb}mb-heterogeneous-numeric-text.ndjson`);
  process.stderr.write(`generating ${numericFile} (${mb} MiB, reused if present)...\n`);
  await generateHeterogeneous(numericFile, mb * 1024 * 1024, true);
  const numeric = { ...cliRun(numericFile, db), data: 'heterogeneous, "00042" strings' };
  report(numeric);
  rmDb(db);

  let theirs: (Result & { version: string }) | undefined;
  let differences: string[] = [];
  if (!args.includes('--no-sqlite-utils') && hasSqliteUtils()) {
    theirs = { ...sqliteUtilsRun(mixedFile, theirDb), data: 'heterogeneous' };
    report(theirs);
    process.stderr.write('  comparing the two heterogeneous tables value by value...\n');
    differences = compareTables(mixedDb, theirDb, 'sqlite-utils');
    rmDb(theirDb);
  }
  rmDb(mixedDb);

  const best = (name: string): Result =>
    results.filter((r) => r.name === name).reduce((a, b) => (a.seconds <= b.seconds ? a : b));
  const loop = best(`hand-written loop (batches of ${BATCH})`);
  const cli = results
    .filter((r) => r.name === 'sluice ingest (CLI)' && r.data === undefined)
    .reduce((a, b) => (a.seconds <= b.seconds ? a : b));
  const mixed = results.filter((r) => r.data === 'heterogeneous').reduce((a, b) => (a.seconds <= b.seconds ? a : b));
  if (cli.rows !== loop.rows) throw new Error(`row counts differ: CLI ${cli.rows}, loop ${loop.rows}`);
  const rate = (r: Result): number => r.rows / r.seconds;
  const row = (r: Result): string =>
    `| ${r.data ?? 'uniform'} | ${r.name} | ${r.rows.toLocaleString('en-US')} | ${r.seconds.toFixed(1)} | ${Math.round(rate(r)).toLocaleString('en-US')} | ${r.cpuSeconds.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} MiB |`;
  const lines = [
    `Node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; ${(bytes / 1048576).toFixed(0)} MiB uniform and ${(mixedBytes / 1048576).toFixed(0)} MiB heterogeneous NDJSON, batch ${BATCH}; best of ${rounds} for sluice and the loop${theirs === undefined ? '' : `, one run of ${theirs.version}`} (wall time incl. process start)`,
    '',
    '| data | contender | rows | seconds | rows/s | CPU s | peak RSS |',
    '|---|---|---:|---:|---:|---:|---:|',
    row(loop),
    row(cli),
    row(mixed),
    ...(theirs === undefined ? [] : [row(theirs)]),
    row(numeric),
    '',
    `uniform: sluice / loop rows/s: ${((rate(cli) / rate(loop)) * 100).toFixed(1)} % (goal >= 90 %); CLI peak RSS ${cli.peakRssMiB.toFixed(0)} MiB (goal < 250 MiB)`,
    `uniform: loop / sluice CPU seconds (same runs): ${((loop.cpuSeconds / cli.cpuSeconds) * 100).toFixed(1)} %`,
    `heterogeneous / uniform sluice rows/s: ${((rate(mixed) / rate(cli)) * 100).toFixed(1)} % (goal >= 90 %); peak RSS ${mixed.peakRssMiB.toFixed(0)} MiB (goal < 250 MiB)`,
    `with "00042" strings (one column rebuilt as TEXT, one run): ${((rate(numeric) / rate(cli)) * 100).toFixed(1)} % of uniform rows/s; peak RSS ${numeric.peakRssMiB.toFixed(0)} MiB`,
    ...(theirs === undefined
      ? ['sqlite-utils: not installed (apt-get install sqlite-utils), or skipped with --no-sqlite-utils']
      : [
          `heterogeneous: sluice / sqlite-utils rows/s: ${(rate(mixed) / rate(theirs)).toFixed(1)}x (goal >= 5x); rows stored: sluice ${mixed.rows.toLocaleString('en-US')}, sqlite-utils ${theirs.rows.toLocaleString('en-US')}`,
          differences.length === 0
            ? 'stored values: identical, row by row and value by value'
            : `stored values: ${differences.join('; ')}`,
        ]),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** `--rounds N`, else `fallback`. */
function roundsOf(args: readonly string[], fallback: number): number {
  const flag = args.indexOf('--rounds');
  const rounds = flag === -1 ? fallback : Number(args[flag + 1]);
  if (!(Number.isInteger(rounds) && rounds >= 1))
    throw new Error(`--rounds must be an integer >= 1. Received ${args[flag + 1]}`);
  return rounds;
}

/**
 * What `--resumable` costs (docs/cli.md, "Resumable loads"): the uniform file loaded with and without
 * it, into SQLite or, with `url`, PostgreSQL (COPY), alternated round by round; medians of the rounds.
 * Every run starts on an empty table: SQLite's database file is deleted before each run, PostgreSQL's
 * table and progress row are dropped after it (and `--restart` covers a progress row left by a run that
 * was killed).
 */
function compareResumable(file: string, bytes: number, db: string, url: string | undefined, rounds: number): void {
  const resumable = ['--resumable', '--restart'];
  const plain = (): Result => (url === undefined ? cliRun(file, db) : pgRun(file, url, 'copy'));
  const withProgress = (): Result =>
    url === undefined ? cliRun(file, db, 'sluice ingest --resumable', resumable) : pgRun(file, url, 'copy', resumable);
  const pairs: [Result, Result][] = [];
  for (let round = 0; round < rounds; round++) {
    // Alternated, so a warm page cache or a noisy neighbour does not favour one side.
    let a: Result;
    let b: Result;
    if (round % 2 === 0) {
      a = plain();
      b = withProgress();
    } else {
      b = withProgress();
      a = plain();
    }
    process.stderr.write(
      `  round ${round + 1}: ${a.seconds.toFixed(2)} s / ${a.peakRssMiB.toFixed(0)} MiB without, ${b.seconds.toFixed(2)} s / ${b.peakRssMiB.toFixed(0)} MiB with --resumable (${b.rows} rows)\n`,
    );
    if (a.rows !== b.rows) throw new Error(`row counts differ: ${a.rows} without --resumable, ${b.rows} with it`);
    pairs.push([a, b]);
  }
  if (url === undefined) rmDb(db);
  const rows = pairs[0]?.[0].rows ?? 0;
  const without = median(pairs.map(([a]) => a.seconds));
  const withIt = median(pairs.map(([, b]) => b.seconds));
  const ratio = median(pairs.map(([a, b]) => a.seconds / b.seconds));
  process.stdout.write(
    [
      `Node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; ${(bytes / 1048576).toFixed(0)} MiB uniform NDJSON, batch ${BATCH}, ${url === undefined ? 'SQLite' : 'local PostgreSQL, COPY'}; ${rounds} alternated rounds, medians (wall time incl. process start)`,
      '',
      '| load | seconds | rows/s | peak RSS (median) |',
      '|---|---:|---:|---:|',
      `| without \`--resumable\` | ${without.toFixed(2)} | ${Math.round(rows / without).toLocaleString('en-US')} | ${median(pairs.map(([a]) => a.peakRssMiB)).toFixed(0)} MiB |`,
      `| \`--resumable\` | ${withIt.toFixed(2)} | ${Math.round(rows / withIt).toLocaleString('en-US')} | ${median(pairs.map(([, b]) => b.peakRssMiB)).toFixed(0)} MiB |`,
      '',
      `with / without --resumable, rows/s, median of the per-round ratios: ${ratio.toFixed(3)}x`,
      '',
    ].join('\n'),
  );
}

function comparePg(file: string, bytes: number, url: string): void {
  const results: Result[] = [];
  for (const method of ['copy', 'insert', 'insert', 'copy']) {
    const result = pgRun(file, url, method);
    process.stderr.write(`  ${result.name}: ${result.rows} rows in ${result.seconds.toFixed(1)} s\n`);
    results.push(result);
  }
  const best = (name: string): Result =>
    results.filter((r) => r.name === name).reduce((a, b) => (a.seconds <= b.seconds ? a : b));
  const rows = [best('--pg-method copy'), best('--pg-method insert')];
  process.stdout.write(
    [
      `Node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}; ${(bytes / 1048576).toFixed(0)} MiB NDJSON, batch ${BATCH}, local PostgreSQL; best of 2 each`,
      '',
      '| method | seconds | rows/s | peak RSS |',
      '|---|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.name} | ${r.seconds.toFixed(1)} | ${Math.round(r.rows / r.seconds).toLocaleString('en-US')} | ${r.peakRssMiB.toFixed(0)} MiB |`,
      ),
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
