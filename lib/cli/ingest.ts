import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createBackpressureStream } from '../index';
import { CliError, ExitCode, describe } from './errors';
import { RowMapper, csvStages, ndjsonStages } from './parse';
import { RejectsFile } from './rejects';
import { PostgresSink } from './sinks/postgres';
import { SqliteSink } from './sinks/sqlite';
import { StatusLine, fmt, mib, peakRssBytes } from './status-line';
import type { BackpressureError, BackpressureWritable } from '../index';
import type { IngestOptions, Target } from './args';
import type { Column, Row } from './parse';
import type { Sink } from './sinks/sink';

/** Where the command writes: status and errors to `err`, the summary to `out`. */
export interface Io {
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
}

export interface IngestSummary {
  status: 'completed' | 'interrupted' | 'failed';
  input: string;
  target: string;
  table: string;
  format: string;
  /** Records read: non-blank lines (NDJSON) or data records (CSV). */
  read: number;
  inserted: number;
  rejected: number;
  rejectedBy: RejectsFile['counts'];
  rejectsFile: string | undefined;
  blankLines: number;
  offered: number;
  dropped: number;
  deadLettered: number;
  peakBuffer: number;
  maxBuffer: number;
  peakRssBytes: number;
  durationMs: number;
  rowsPerSecond: number;
  signal?: NodeJS.Signals;
  error?: string;
}

const STOP = Symbol('stop');

/**
 * `sluice ingest`: input → line splitter → parser → sluice → database, with
 * `stream.pipeline`. Every record read ends up inserted or in the rejects file;
 * the run checks that sum before it reports success.
 */
export async function ingest(options: IngestOptions, io: Io): Promise<number> {
  const started = performance.now();
  const source = await openInput(options.input, io.stdin);
  let sink: Sink;
  try {
    sink = await openSink(options.target, options);
  } catch (error) {
    source.destroy();
    throw error;
  }
  const rejects = new RejectsFile(options.rejects);
  const mapper = new RowMapper(options.columns);
  const prepare = (columns: Column[]): Promise<void> => sink.prepare(options.table, columns);
  const rejectLine = (line: number, raw: string, error: string): void => rejects.write('parse', [{ line, raw }], error);
  const stages =
    options.format === 'csv' ? csvStages(mapper, prepare, rejectLine) : ndjsonStages(mapper, prepare, rejectLine);

  /** Set when the database is gone for good: the run stops and what is held goes to the rejects file. */
  let lost: unknown;
  // Reads the sluice (declared below) only once started, after the sluice exists.
  const status = new StatusLine(
    {
      getMetrics: () => sluice.getMetrics(),
      maxBufferSize: options.maxBuffer,
      extra: () => [
        ['read', stages.records()],
        ['rejected', rejects.total],
      ],
    },
    { stream: io.err, quiet: options.quiet, intervalMs: options.statusIntervalMs },
  );
  const flush = async (rows: Row[]): Promise<void> => {
    status.observe(sluice.getMetrics().bufferSize);
    try {
      await sink.insert(rows);
    } catch (error) {
      if (lost === undefined && sink.isFatal(error)) {
        lost = error;
        void abandon(`the database was lost: ${describe(error)}`);
      }
      throw error;
    }
  };
  const sluice: BackpressureWritable<Row> = createBackpressureStream<Row>(flush, {
    strategy: options.strategy,
    maxBufferSize: options.maxBuffer,
    batchSize: options.batchSize,
    ...(options.maxBufferBytes === undefined
      ? {}
      : // The input text stands for the row's size: O(1), and close to what the row costs in memory.
        { maxBufferBytes: options.maxBufferBytes, sizeOf: (row: Row) => row.raw.length * 2 + 64 }),
    // This producer honours write() === false, so a held write only waits on a slow database: never drop it for that.
    maxBlockTimeMs: Infinity,
    retry: { maxRetries: options.retries, initialDelayMs: 50, maxDelayMs: 1000 },
    // A constraint or type error fails the whole batch; one-by-one isolates the bad rows and inserts the rest.
    fallbackToSequential: true,
    onDeadLetter: (rows, error) => {
      const stage = error.reason === 'destroyed' || error.reason === 'shutdown_timeout' ? 'undelivered' : 'database';
      rejects.write(stage, rows, causeOf(error));
    },
  });
  sluice.on('drop', (row: Row, reason: string) => {
    rejects.write('dropped', [row], `dropped by the ${options.strategy} strategy (${reason})`);
  });

  const reading = new AbortController();
  const input = Readable.from(stoppable(source, reading.signal), { objectMode: false });
  const done = pipeline(input, stages.splitter, stages.parser, sluice);

  let deadline: NodeJS.Timeout | undefined;
  let abandoning: Promise<void> | undefined;
  let signal: NodeJS.Signals | undefined;

  /** Stop reading; what was read still flows to the database, for `--shutdown-timeout` at most. */
  const stop = (): void => {
    if (reading.signal.aborted) return;
    stages.stop();
    reading.abort();
    deadline = setTimeout(
      () => void abandon(`not inserted within --shutdown-timeout (${options.shutdownTimeoutMs} ms)`),
      options.shutdownTimeoutMs,
    );
  };

  /** Give up on inserting: every record read and not yet inserted goes to the rejects file. */
  const abandon = (why: string): Promise<void> =>
    (abandoning ??= (async () => {
      stop();
      clearTimeout(deadline);
      // Records between the splitter and the sluice are read but not held by it: take them out first.
      stages.parser.unpipe(sluice);
      for await (const row of stages.parser.iterator({ destroyOnReturn: false }) as AsyncIterable<Row>) {
        rejects.write('undelivered', [row], why);
      }
      // Then the sluice hands everything it holds to onDeadLetter, reason shutdown_timeout.
      await sluice.shutdown({ timeoutMs: 0 });
      await sink.abort();
    })());

  const onSignal = (name: NodeJS.Signals): void => {
    if (signal !== undefined) {
      void abandon(`interrupted by a second ${name}`);
      return;
    }
    signal = name;
    stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  status.start();

  let failure: unknown;
  try {
    await done;
  } catch (error) {
    // Once abandoned, the sluice is destroyed on purpose and pipeline reports a premature close.
    if (abandoning === undefined) failure = error;
  }
  try {
    await abandoning;
  } catch (error) {
    failure ??= error;
  }
  clearTimeout(deadline);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  status.stop();
  await sink.close();
  rejects.close();

  const metrics = sluice.getMetrics();
  const durationMs = performance.now() - started;
  const summary: IngestSummary = {
    status: failure !== undefined || lost !== undefined ? 'failed' : signal !== undefined ? 'interrupted' : 'completed',
    input: options.input,
    target: sink.target,
    table: options.table,
    format: options.format,
    read: stages.records(),
    inserted: metrics.eventsFlushed,
    rejected: rejects.total,
    rejectedBy: rejects.counts,
    rejectsFile: rejects.total > 0 ? rejects.path : undefined,
    blankLines: stages.blankLines(),
    offered: metrics.eventsOffered,
    dropped: metrics.eventsDropped,
    deadLettered: metrics.deadLettered,
    peakBuffer: status.peakBuffer,
    maxBuffer: options.maxBuffer,
    peakRssBytes: peakRssBytes(),
    durationMs: Math.round(durationMs),
    rowsPerSecond: Math.round(metrics.eventsFlushed / (durationMs / 1000)),
  };
  if (signal !== undefined) summary.signal = signal;
  if (lost !== undefined) summary.error = `lost ${sink.target}: ${describe(lost)}`;
  if (failure !== undefined) summary.error = describe(failure);
  // The promise of this command, checked rather than assumed.
  if (failure === undefined && summary.read !== summary.inserted + summary.rejected) {
    summary.status = 'failed';
    summary.error = `accounting mismatch: read ${summary.read} != inserted ${summary.inserted} + rejected ${summary.rejected} (please report this)`;
  }

  printSummary(summary, options.json, io.out);
  if (failure instanceof CliError) throw failure;
  if (failure !== undefined) throw new CliError(ExitCode.FAILED, `ingest failed: ${describe(failure)}`, failure);
  if (summary.error !== undefined) throw new CliError(ExitCode.FAILED, summary.error);
  if (signal !== undefined) return signal === 'SIGINT' ? ExitCode.SIGINT : ExitCode.SIGTERM;
  if (options.failOnRejects && summary.rejected > 0) {
    throw new CliError(
      ExitCode.FAILED,
      `${summary.rejected} record(s) rejected (--fail-on-rejects); see ${rejects.path}`,
    );
  }
  return ExitCode.OK;
}

async function openInput(input: string, stdin: NodeJS.ReadStream): Promise<Readable> {
  if (input === '-') {
    if (stdin.isTTY === true)
      throw new CliError(ExitCode.USAGE, 'no input: give a FILE, or pipe data into sluice ingest -');
    return stdin;
  }
  const stream = createReadStream(input, { highWaterMark: 256 * 1024 });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (error) =>
      reject(new CliError(ExitCode.USAGE, `cannot read ${input}: ${describe(error)}`, error)),
    );
  });
  return stream;
}

function openSink(target: Target, options: IngestOptions): Promise<Sink> | Sink {
  return target.kind === 'sqlite' ? SqliteSink.open(target.path) : PostgresSink.open(target.url, options.pgMethod);
}

/**
 * The input's chunks until it ends or `signal` aborts: stopping must not wait for
 * a producer on stdin that has nothing more to say.
 */
async function* stoppable(source: Readable, signal: AbortSignal): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    while (!signal.aborted) {
      const next = await nextOrStop(iterator, signal);
      if (next === STOP || next.done === true) return;
      yield next.value;
    }
  } finally {
    // Close the file or release stdin so it keeps nothing alive; return() alone waits for a pending read.
    iterator.return?.().catch(() => undefined);
    source.destroy();
  }
}

/**
 * The next chunk, or STOP if `signal` aborts first. Not Promise.race against one
 * long-lived "stopped" promise: every race leaves a reaction on it that holds its
 * chunk, which leaked the whole input (1.1 GB RSS for a 1 GB file).
 */
function nextOrStop(
  iterator: AsyncIterator<Buffer>,
  signal: AbortSignal,
): Promise<IteratorResult<Buffer> | typeof STOP> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(STOP);
    signal.addEventListener('abort', onAbort, { once: true });
    iterator.next().then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** The database's own words when there are some. */
function causeOf(error: BackpressureError): string {
  return error.cause === undefined ? error.message : describe(error.cause);
}

function printSummary(s: IngestSummary, json: boolean, out: NodeJS.WriteStream): void {
  if (json) {
    out.write(`${JSON.stringify(s)}\n`);
    return;
  }
  const by = Object.entries(s.rejectedBy)
    .filter(([, n]) => n > 0)
    .map(([stage, n]) => `${fmt(n)} ${stage}`)
    .join(', ');
  const lines = [
    `sluice ingest ${s.status}${s.signal === undefined ? '' : ` (${s.signal})`}: ${s.input} → ${s.target} table ${s.table}`,
    `  read ${fmt(s.read)}, inserted ${fmt(s.inserted)}, rejected ${fmt(s.rejected)}${by === '' ? '' : ` (${by}) → ${s.rejectsFile}`}`,
    `  peak buffer ${fmt(s.peakBuffer)}/${fmt(s.maxBuffer)}, peak RSS ${mib(s.peakRssBytes)}, ${(s.durationMs / 1000).toFixed(2)} s, ${fmt(s.rowsPerSecond)} rows/s`,
  ];
  out.write(`${lines.join('\n')}\n`);
}
