import { rmSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlockingWritable } from '../index';
import { CliError, ExitCode, describe, loadPeer } from './errors';
import { Schema } from './schema';
import { SqliteSink } from './sinks/sqlite';
import { StatusLine, fmt, mib, peakRssBytes } from './status-line';
import type { DemoOptions } from './args';
import type { Io } from './ingest';
import type { Row } from './parse';
import type { Column } from './schema';
import type BetterSqlite3 from 'better-sqlite3';

export interface DemoSummary {
  db: string;
  offered: number;
  delivered: number;
  dropped: number;
  deadLettered: number;
  rowsInDatabase: number;
  peakBuffer: number;
  maxBuffer: number;
  peakRssBytes: number;
  durationMs: number;
  itemsPerSecond: number;
}

const COLUMNS: Pick<Column, 'name' | 'type'>[] = [
  { name: 'id', type: 'integer' },
  { name: 'at_ms', type: 'integer' },
  { name: 'kind', type: 'text' },
  { name: 'user_id', type: 'integer' },
  { name: 'value', type: 'real' },
];
const KINDS = ['click', 'view', 'purchase', 'signup', 'error'];
/** `PRAGMA application_id` of a demo database ("slcd"): the mark that lets a later demo replace it. */
const DEMO_APPLICATION_ID = 0x736c6364;

/** Events between two turns of the event loop. */
const TURN = 1024;

/**
 * Synthetic events, as fast as a generator can make them: the producer outruns
 * the database, so the sluice blocks it. Everything here settles in microtasks,
 * so the producer yields to the event loop now and then, or timers (the status
 * line) and signals would wait for the end.
 */
async function* events(count: number): AsyncGenerator<Row> {
  const epoch = Date.UTC(2024, 0, 1);
  for (let i = 1; i <= count; i++) {
    if (i % TURN === 0) await new Promise(setImmediate);
    yield {
      line: i,
      raw: '',
      values: [i, epoch + i * 7, KINDS[i % KINDS.length], (i * 7919) % 10_000, (i % 1000) / 10],
    };
  }
}

/**
 * `sluice demo`: N synthetic events through a block sluice into a fresh SQLite
 * file, with the live status line and a closing summary; then it checks that
 * the table holds exactly the rows the sluice reports delivered.
 */
export async function demo(options: DemoOptions, io: Io): Promise<number> {
  const started = performance.now();
  const Database = loadPeer<typeof BetterSqlite3>('better-sqlite3', 'The demo');
  refuseForeign(options.db, Database);
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(options.db + suffix, { force: true });
  try {
    const marked = new Database(options.db);
    marked.pragma(`application_id = ${DEMO_APPLICATION_ID}`);
    marked.close();
  } catch (error) {
    throw new CliError(ExitCode.USAGE, `cannot create ${options.db}: ${describe(error)}`, error);
  }
  const schema = new Schema({ typed: true, strict: true });
  for (const column of COLUMNS) schema.add(column.name, column.type);
  const sink = await SqliteSink.open(options.db, {
    table: 'events',
    schema,
    signal: new AbortController().signal,
    warn: (message) => io.err.write(`sluice: warning: ${message}\n`),
  });
  let deadLettered = 0;
  const status = new StatusLine(
    {
      getMetrics: () => sluice.getMetrics(),
      maxBufferSize: options.maxBuffer,
      extra: () => [['offered', sluice.getMetrics().eventsOffered]],
    },
    { stream: io.err, quiet: options.quiet, intervalMs: options.statusIntervalMs },
  );
  const sluice = new BlockingWritable<Row>(
    (rows) => {
      status.observe(sluice.getMetrics().bufferSize);
      return sink.insert(rows);
    },
    {
      maxBufferSize: options.maxBuffer,
      batchSize: options.batchSize,
      maxBlockTimeMs: Infinity,
      isolateFailures: 'bisect',
      onDeadLetter: (rows) => {
        deadLettered += rows.length;
      },
    },
  );
  status.start();
  try {
    await pipeline(Readable.from(events(options.events)), sluice);
  } finally {
    status.stop();
  }
  const metrics = sluice.getMetrics();
  const rowsInDatabase = await sink.count();
  await sink.close();
  const durationMs = performance.now() - started;
  const summary: DemoSummary = {
    db: options.db,
    offered: metrics.eventsOffered,
    delivered: metrics.eventsFlushed,
    dropped: metrics.eventsDropped,
    deadLettered,
    rowsInDatabase,
    peakBuffer: status.peakBuffer,
    maxBuffer: options.maxBuffer,
    peakRssBytes: peakRssBytes(),
    durationMs: Math.round(durationMs),
    itemsPerSecond: Math.round(metrics.eventsFlushed / (durationMs / 1000)),
  };
  if (options.json) io.out.write(`${JSON.stringify(summary)}\n`);
  else {
    io.out.write(
      [
        `sluice demo: ${fmt(summary.offered)} events → ${summary.db} (table events) through a block sluice`,
        `  offered ${fmt(summary.offered)}, delivered ${fmt(summary.delivered)}, dropped ${fmt(summary.dropped)}, dead-lettered ${fmt(summary.deadLettered)}`,
        `  peak buffer ${fmt(summary.peakBuffer)}/${fmt(summary.maxBuffer)}, peak RSS ${mib(summary.peakRssBytes)}, ${(durationMs / 1000).toFixed(2)} s, ${fmt(summary.itemsPerSecond)} items/s`,
        `  rows in the database: ${fmt(rowsInDatabase)} ${rowsInDatabase === summary.delivered ? '= delivered ✓' : '!= delivered ✗'}`,
        '',
      ].join('\n'),
    );
  }
  if (rowsInDatabase !== summary.delivered) {
    throw new CliError(
      ExitCode.FAILED,
      `the database holds ${rowsInDatabase} rows but the sluice delivered ${summary.delivered}`,
    );
  }
  return ExitCode.OK;
}

/**
 * The demo replaces its database: refuse a file that is not one (`--db` pointed
 * at the user's data), before anything is deleted. A demo database carries
 * DEMO_APPLICATION_ID; one from before that mark has exactly the demo's table.
 */
function refuseForeign(path: string, Database: typeof BetterSqlite3): void {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat === undefined || (stat.isFile() && stat.size === 0)) return;
  const refuse = (why: string): CliError =>
    new CliError(
      ExitCode.USAGE,
      `refusing to replace ${path}: ${why}; it is not a sluice demo database (remove it yourself, or give another --db)`,
    );
  if (!stat.isFile()) throw refuse('not a regular file');
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    if (db.pragma('application_id', { simple: true }) === DEMO_APPLICATION_ID) return;
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')").all() as {
      name: string;
    }[];
    const columns = (db.prepare("SELECT name FROM pragma_table_info('events')").all() as { name: string }[]).map(
      (c) => c.name,
    );
    const legacy =
      tables.length === 1 && tables[0]?.name === 'events' && columns.join() === COLUMNS.map((c) => c.name).join();
    if (!legacy) throw refuse("its tables are not the demo's");
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw refuse(`it cannot be read as SQLite (${describe(error)})`);
  } finally {
    db?.close();
  }
}
