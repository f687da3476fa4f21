import { rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlockingWritable } from '../index';
import { CliError, ExitCode } from './errors';
import { SqliteSink } from './sinks/sqlite';
import { StatusLine, fmt, mib, peakRssBytes } from './status-line';
import type { DemoOptions } from './args';
import type { Io } from './ingest';
import type { Column, Row } from './parse';

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

const COLUMNS: Column[] = [
  { name: 'id', type: 'integer' },
  { name: 'at_ms', type: 'integer' },
  { name: 'kind', type: 'text' },
  { name: 'user_id', type: 'integer' },
  { name: 'value', type: 'real' },
];
const KINDS = ['click', 'view', 'purchase', 'signup', 'error'];

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
      values: [i, epoch + i * 7, KINDS[i % KINDS.length] as string, (i * 7919) % 10_000, (i % 1000) / 10],
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
  for (const suffix of ['', '-wal', '-shm']) rmSync(options.db + suffix, { force: true });
  const sink = SqliteSink.open(options.db);
  await sink.prepare('events', COLUMNS);
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
      sink.insert(rows);
    },
    {
      maxBufferSize: options.maxBuffer,
      batchSize: options.batchSize,
      maxBlockTimeMs: Infinity,
      fallbackToSequential: true,
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
  const rowsInDatabase = await sink.count('events');
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
