import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { resolve as resolvePath } from 'node:path';
import { DiskError, createBackpressureStream } from '../index';
import { checkDirectorySync } from '../disk/lock';
import { csvStages } from './csv';
import { CliError, ExitCode, describe } from './errors';
import { RowMapper } from './mapper';
import { rowBuffer } from './row-buffer';
import { ndjsonStages } from './parse';
import { checkPaths, openInput, stoppable } from './paths';
import { RejectsFile } from './rejects';
import { ResumableInput } from './resume/identity';
import { ResumableLoad } from './resume/load';
import { resumableSluice, unsettled } from './resume/sluice';
import { Schema, postgresIdentity, sqliteIdentity } from './schema';
import { PostgresSink } from './sinks/postgres';
import { redact } from './sinks/pg-values';
import { SqliteSink } from './sinks/sqlite';
import { StatusLine, peakRssBytes, sayAbove } from './status-line';
import { Stopping } from './stopping';
import { printSummary } from './summary';
import type { BackpressureError, BackpressureWritable, DiskOptions, FlushResult } from '../index';
import type { Column, Value } from './schema';
import type { IngestOptions } from './args';
import type { Row, Stages } from './parse';
import { sleep } from './sinks/sink';
import type { Sink, SinkOptions } from './sinks/sink';
import type { IngestSummary } from './summary';

/** Where the command writes: status and errors to `err`, the summary to `out`. */
export interface Io {
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
}

export type { IngestSummary } from './summary';

/**
 * `sluice ingest`: input → splitter → parser → sluice → database, with
 * `stream.pipeline`. Every record read ends up inserted or in the rejects file;
 * the run checks that sum before it reports success.
 */
export async function ingest(options: IngestOptions, io: Io): Promise<number> {
  checkPaths(options);
  // --resumable: not emptied here; the load empties it, or cuts it back to its last commit, once it knows which.
  const rejects = RejectsFile.open(options.rejects, options.rejectsAppend || options.resumable);
  try {
    return await new IngestRun(options, io, rejects).run();
  } finally {
    rejects.close();
  }
}

/**
 * One run and its phases: open the input and the database, stream, finish, report.
 * Stopping (stopping.ts) says when to stop reading and when to give up; giving up
 * cancels whatever waits on the database (a connection, a lock, a statement) and
 * sends every record read and not inserted to the rejects file as `undelivered`.
 * Each phase honours both, the start-up included.
 */
class IngestRun {
  readonly #options: IngestOptions;
  readonly #io: Io;
  readonly #rejects: RejectsFile;
  readonly #started = performance.now();
  readonly #stopping: Stopping;
  readonly #schema: Schema;
  #sink: Sink | undefined;
  #stages: Stages | undefined;
  #sluice: BackpressureWritable<Row> | undefined;
  #status: StatusLine | undefined;
  #abandoning: Promise<void> | undefined;
  /** `--resumable`: the load this run goes on with. */
  #resume: ResumableLoad | undefined;
  /** NDJSON: the parser's mapper, which `--disk` also maps the rows of an earlier run with. */
  #mapper: RowMapper | undefined;

  constructor(options: IngestOptions, io: Io, rejects: RejectsFile) {
    this.#options = options;
    this.#io = io;
    this.#rejects = rejects;
    this.#schema = new Schema({
      typed: options.format === 'ndjson',
      strict: options.strictSchema,
      identity: options.target.kind === 'sqlite' ? sqliteIdentity : postgresIdentity,
    });
    this.#stopping = new Stopping(options.shutdownTimeoutMs, (message) => this.#say(message));
    this.#stopping.onStopReading = () => this.#stages?.stop();
    rejects.onFailure((error) => this.#stopping.fail(error, false));
  }

  async run(): Promise<number> {
    this.#stopping.install();
    let failure: unknown;
    try {
      failure = await this.#load();
    } finally {
      this.#stopping.uninstall();
      this.#status?.stop();
      await this.#sink?.close();
    }
    return this.#report(failure);
  }

  /** The run up to its summary; resolves to the error that broke it, if one did. */
  async #load(): Promise<unknown> {
    const options = this.#options;
    let source: Readable | undefined;
    try {
      source = options.resumable ? await this.#openResumable() : await this.#open();
    } catch (error) {
      // Interrupted while opening: a summary (nothing read), not an error.
      if (this.#stopping.giveUp.signal.aborted && this.#stopping.signal !== undefined) return undefined;
      throw error;
    }
    if (source === undefined) return undefined; // a resumable load finished already: nothing to do
    const sink = this.#sink as Sink;
    const resume = this.#resume;

    const rejectLine = (line: number, raw: string, error: string): void =>
      this.#rejects.write('parse', [{ line, raw }], error);
    const stages =
      options.format === 'csv'
        ? csvStages(this.#schema, {
            columns: options.columns,
            delimiter: options.delimiter,
            maxRecordBytes: options.maxRecordBytes,
            reject: rejectLine,
            notice: (message) => this.#warn(message),
            resume: resume?.from,
          })
        : ndjsonStages(
            (this.#mapper = new RowMapper(this.#schema, options.columns, resume?.strictColumns)),
            rejectLine,
            options.maxRecordBytes,
            resume?.from,
          );
    this.#stages = stages;
    resume?.attach({
      csvHeader: () => stages.header?.(),
      strictColumns: () =>
        options.strictSchema && options.columns === undefined ? this.#schema.columns.map((c) => c.name) : undefined,
    });
    if (this.#stopping.reading.signal.aborted) stages.stop();
    const sluice = this.#createSluice(sink);
    this.#sluice = sluice;
    const status = new StatusLine(
      {
        getMetrics: () => sluice.getMetrics(),
        maxBufferSize: options.maxBuffer,
        extra: () => [
          ...(resume === undefined ? [] : [['skipped', resume.skipped] as [string, number]]),
          ['read', stages.records()],
          ['rejected', this.#rejects.total],
        ],
      },
      { stream: this.#io.err, quiet: options.quiet, intervalMs: options.statusIntervalMs },
    );
    this.#status = status;

    const { reading, giveUp } = this.#stopping;
    const input = Readable.from(stoppable(source, reading.signal), { objectMode: false });
    const done = pipeline(input, stages.splitter, stages.parser, sluice);
    const abandon = (): void => void this.#abandon(describe(giveUp.signal.reason));
    giveUp.signal.addEventListener('abort', abandon, { once: true });
    if (giveUp.signal.aborted) abandon();
    status.start();

    let failure: unknown;
    try {
      await done;
    } catch (error) {
      // Once abandoned, the sluice is destroyed on purpose and pipeline reports a premature close.
      if (this.#abandoning === undefined) failure = error;
    }
    try {
      await this.#abandoning;
    } catch (error) {
      failure ??= error;
    }
    if (failure === undefined && this.#abandoning === undefined && this.#stopping.fatal === undefined) {
      try {
        await sink.finish();
      } catch (error) {
        this.#warn(`the columns that only held null were not created: ${describe(error)}`);
      }
      // Read to the end (not stopped by a signal) and all committed: the load is finished.
      if (resume !== undefined && this.#stopping.signal === undefined) {
        try {
          await resume.finish((stages.position as () => { offset: number; line: number })());
        } catch (error) {
          failure = error;
        }
      }
    }
    return failure;
  }

  /** The input and the database. */
  async #open(): Promise<Readable> {
    const source = await openInput(this.#options.input, this.#io.stdin);
    try {
      this.#sink = await this.#openSink();
    } catch (error) {
      source.destroy();
      throw error;
    }
    return source;
  }

  /**
   * `--resumable`: the input file (its identity), the database, the load's progress; then the input
   * from where the load goes on, or undefined when it is finished already.
   */
  async #openResumable(): Promise<Readable | undefined> {
    const input = await ResumableInput.open(this.#options.input);
    let load: ResumableLoad;
    try {
      this.#sink = await this.#openSink();
      load = await ResumableLoad.start({
        options: this.#options,
        input,
        sink: this.#sink,
        rejects: this.#rejects,
        giveUp: this.#stopping.giveUp.signal,
        say: (message) => this.#say(message),
      });
    } catch (error) {
      await input.close();
      throw error;
    }
    this.#resume = load;
    const said = load.describeStart();
    if (said !== undefined) this.#say(said);
    if (load.start === 'finished') {
      await input.close();
      return undefined;
    }
    return input.stream(load.from.offset);
  }

  #openSink(): Promise<Sink> {
    const { target, table, pgMethod } = this.#options;
    const sinkOptions: SinkOptions = {
      table,
      schema: this.#schema,
      signal: this.#stopping.giveUp.signal,
      warn: (message) => this.#warn(message),
    };
    return target.kind === 'sqlite'
      ? SqliteSink.open(target.path, sinkOptions)
      : PostgresSink.open(target.url, pgMethod, sinkOptions);
  }

  #createSluice(sink: Sink): BackpressureWritable<Row> {
    if (this.#resume !== undefined)
      return resumableSluice({
        options: this.#options,
        sink,
        load: this.#resume,
        stopping: this.#stopping,
        rejects: this.#rejects,
        observe: (bufferSize) => this.#status?.observe(bufferSize),
      });
    const options = this.#options;
    const giveUp = this.#stopping.giveUp.signal;
    // Retried here, not by the sluice, and only when the failure may pass (a deadlock, a lock timeout):
    // a batch the database refused (a constraint, a type) is isolated at once, and so is every probe of it.
    const flush = async (rows: Row[]): Promise<FlushResult<Row> | undefined> => {
      this.#status?.observe(sluice.getMetrics().bufferSize);
      for (let attempt = 0; ; attempt++) {
        if (giveUp.aborted) throw giveUp.reason;
        try {
          return await sink.insert(rows);
        } catch (error) {
          if (!giveUp.aborted && (sink.isFatal(error) || error instanceof CliError))
            this.#stopping.fail(error, sink.isFatal(error));
          if (giveUp.aborted || attempt >= options.retries || !sink.isTransient(error)) throw error;
        }
        // Full jitter under a doubling bound (50 ms, 100 ms, ... 1 s), as the sluice's own retries.
        await sleep(Math.random() * Math.min(1000, 50 * 2 ** attempt), giveUp);
      }
    };
    const sluice: BackpressureWritable<Row> = createBackpressureStream<Row>(flush, {
      ...rowBuffer(options),
      retry: { maxRetries: 0 },
      // A constraint or type error fails the whole batch; halving it (recursively) isolates the bad rows in
      // O(k log n) statements and inserts the rest. One by one took 64 s for 1 % duplicates in 100,000 rows.
      isolateFailures: 'bisect',
      ...(options.disk === undefined ? {} : { disk: this.#diskOptions(options.disk) }),
      onDeadLetter: (rows, error) => {
        const cause = error.cause;
        // Rows the database never judged (the run gave up, the connection died) are undelivered, not refused.
        const undelivered =
          error.reason === 'destroyed' ||
          error.reason === 'shutdown_timeout' ||
          cause === giveUp.reason ||
          cause instanceof CliError ||
          sink.isFatal(cause);
        this.#rejects.write(undelivered ? 'undelivered' : 'database', rows, causeOf(error));
      },
    });
    sluice.on('drop', (row: Row, reason: string) => {
      this.#rejects.write('dropped', [row], `dropped by the ${options.strategy} strategy (${reason})`);
    });
    return sluice;
  }

  /**
   * `--disk DIR`: rows are kept in a write-ahead log until inserted. A row is stored with its column
   * names, and one from an earlier run goes through this run's mapper again when it is read back, so
   * that its values land in this run's columns (which the earlier run's may not match in order).
   */
  #diskOptions(path: string): DiskOptions<Row> {
    checkDiskDirectory(path);
    const schema = this.#schema;
    const mapper = this.#mapper as RowMapper;
    return {
      path,
      fsync: 'interval',
      serialize: (row) => {
        const fields: Record<string, Value> = {};
        row.values.forEach((value, i) => {
          if (value !== undefined) fields[(schema.columns[i] as Column).name] = value;
        });
        return JSON.stringify({ l: row.line, r: row.raw, f: fields });
      },
      deserialize: (bytes) => {
        const { l, r, f } = JSON.parse(bytes.toString('utf8')) as { l: number; r: string; f: Record<string, Value> };
        return { line: l, raw: r, values: mapper.map(f) };
      },
    };
  }

  /** Give up on inserting: every record read and not yet inserted goes to the rejects file. */
  #abandon(why: string): Promise<void> {
    return (this.#abandoning ??= (async () => {
      this.#stopping.stopReading();
      this.#stopping.clearDeadline();
      const stages = this.#stages as Stages;
      const sluice = this.#sluice as BackpressureWritable<Row>;
      if (this.#resume !== undefined) {
        // A commit in flight settles first (cancelled, or committed), so that its rejects are written once.
        await this.#sink?.abort();
        await this.#resume.settled(2000);
      }
      // Records between the splitter and the sluice are read but not held by it: take them out first.
      stages.parser.unpipe(sluice);
      for await (const row of stages.parser.iterator({ destroyOnReturn: false }) as AsyncIterable<Row>) {
        if (this.#resume === undefined) this.#rejects.write('undelivered', [row], why);
        else this.#rejects.writeEach([unsettled(row, why)]);
      }
      // Then the sluice hands everything it holds to onDeadLetter, reason shutdown_timeout.
      await sluice.shutdown({ timeoutMs: 0 });
      await this.#sink?.abort();
    })());
  }

  #warn(message: string): void {
    this.#say(`warning: ${message}`);
  }

  /** One line on stderr, above the status line. */
  #say(message: string): void {
    sayAbove(this.#status, this.#io.err, message);
  }

  /** Prints the summary; returns the exit code or throws the error to report. */
  #report(failure: unknown): number {
    const options = this.#options;
    const rejects = this.#rejects;
    const metrics = this.#sluice?.getMetrics();
    const durationMs = performance.now() - this.#started;
    // --resumable: the sluice also carries the parse rejects; the commits count the rows.
    const inserted = this.#resume !== undefined ? this.#resume.inserted : (metrics?.eventsFlushed ?? 0);
    const { signal, fatal } = this.#stopping;
    const broken = failure !== undefined || fatal !== undefined;
    const changes = this.#sink?.changes ?? { created: false, added: 0, widened: 0 };
    const summary: IngestSummary = {
      status: broken ? 'failed' : signal !== undefined ? 'interrupted' : 'completed',
      input: options.input,
      target: this.#sink?.target ?? targetName(options),
      table: options.table,
      format: options.format,
      read: this.#stages?.records() ?? 0,
      inserted,
      rejected: rejects.total,
      rejectedBy: rejects.counts,
      rejectsFile: rejects.total > 0 ? rejects.path : undefined,
      rejectsUnwritten: rejects.unwritten,
      blankLines: this.#stages?.blankLines() ?? 0,
      offered: metrics?.eventsOffered ?? 0,
      dropped: metrics?.eventsDropped ?? 0,
      deadLettered: metrics?.deadLettered ?? 0,
      tableCreated: changes.created,
      columnsAdded: changes.added,
      columnsWidened: changes.widened,
      peakBuffer: this.#status?.peakBuffer ?? 0,
      maxBuffer: options.maxBuffer,
      peakRssBytes: peakRssBytes(),
      durationMs: Math.round(durationMs),
      rowsPerSecond: Math.round(inserted / (durationMs / 1000)),
    };
    if (signal !== undefined) summary.signal = signal;
    if (this.#resume !== undefined) summary.resume = this.#resume.summary();
    // --disk: rows an earlier run left in the log were inserted (or rejected) by this one; what this one
    // leaves there (interrupted, or the database gone) is the next run's.
    const disk =
      options.disk === undefined
        ? undefined
        : { path: options.disk, replayed: metrics?.replayed ?? 0, kept: metrics?.bufferSize ?? 0 };
    if (disk !== undefined) summary.disk = disk;
    if (fatal !== undefined) {
      summary.error = fatal instanceof CliError ? describe(fatal) : `lost ${summary.target}: ${describe(fatal)}`;
      if (rejects.unwritten > 0) summary.error += ` (${rejects.unwritten} rejected record(s) could not be saved)`;
      if (rejects.withheld > 0)
        summary.error += ` (${rejects.withheld} record(s) read after this run's last commit are left to the other run)`;
    }
    if (failure !== undefined) summary.error = describe(failure);
    // The promise of this command, checked rather than assumed.
    const came = summary.read + (disk?.replayed ?? 0);
    const went = summary.inserted + summary.rejected + (disk?.kept ?? 0);
    if (failure === undefined && fatal === undefined && came !== went) {
      summary.status = 'failed';
      summary.error =
        disk === undefined
          ? `accounting mismatch: read ${summary.read} != inserted ${summary.inserted} + rejected ${summary.rejected} (please report this)`
          : `accounting mismatch: read ${summary.read} + replayed ${disk.replayed} != inserted ${summary.inserted} + rejected ${summary.rejected} + kept ${disk.kept} (please report this)`;
    }

    printSummary(summary, options.json, this.#io.out);
    if (failure instanceof CliError) throw failure;
    if (failure !== undefined) throw new CliError(ExitCode.FAILED, `ingest failed: ${describe(failure)}`, failure);
    if (fatal instanceof CliError) throw new CliError(fatal.exitCode, summary.error as string, fatal);
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
}

/**
 * `--disk DIR` held by another run, or not a usable directory: a usage error (exit 2) with the log's
 * own code, before anything is read.
 */
function checkDiskDirectory(path: string): void {
  try {
    checkDirectorySync(resolvePath(path));
  } catch (error) {
    if (error instanceof DiskError) throw new CliError(ExitCode.USAGE, `--disk: ${error.message}`, error, error.code);
    throw error;
  }
}

function targetName(options: IngestOptions): string {
  return options.target.kind === 'sqlite' ? `sqlite:${options.target.path}` : redact(options.target.url);
}

/** The database's own words when there are some. */
function causeOf(error: BackpressureError): string {
  return error.cause === undefined ? error.message : describe(error.cause);
}
