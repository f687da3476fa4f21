/**
 * `sluice ingest nats://… | redis://… | amqp://… --into sqlite:… | postgres://…`: a broker
 * source → the library's endToEnd() → the CLI's database sinks. A message is acked only once
 * the batch that carries it is stored (or, for a payload that is not a JSON object, once its
 * reject line is written); whatever the run still holds when it stops early is handed back to
 * the broker, which delivers it again. With `--dedupe` the message's broker identity is a
 * unique column, so a redelivery is stored once.
 *
 * Owns: decoding messages into rows, the run's end conditions (`--idle-exit`, signals, a lost
 * broker or database) and its summary. Does not own batching, the bound or acking (endToEnd's),
 * nor the connections (brokers/connect.ts).
 */
import { endToEnd, type EndToEndRun } from '../brokers/ack';
import type { Delivery } from '../brokers/message';
import type { BrokerSource } from '../brokers/source';
import type { BackpressureError, FlushResult } from '../index';
import type { IngestOptions } from './args';
import { brokerMessage, openBroker, type BrokerLink } from './brokers/connect';
import { CliError, ExitCode, describe } from './errors';
import type { Io } from './ingest';
import { MappingError, RowMapper } from './mapper';
import type { Row } from './parse';
import { checkPaths } from './paths';
import { RejectsFile } from './rejects';
import { Schema, postgresIdentity, sqliteIdentity } from './schema';
import { PostgresSink } from './sinks/postgres';
import { SqliteSink } from './sinks/sqlite';
import { sleep, type Sink, type SinkOptions } from './sinks/sink';
import { StatusLine, peakRssBytes, sayAbove } from './status-line';
import { printSummary, type IngestSummary } from './summary';

/** One message as the run sees it: a row to insert, or nothing (its reject line is written). */
export interface Incoming {
  /** The broker identity shown to users and stored with --dedupe: `STREAM:SEQ`, `KEY:ENTRY-ID`, the AMQP message id. */
  id: string;
  row: Row | undefined;
}

export async function ingestFromBroker(options: IngestOptions, io: Io): Promise<number> {
  checkPaths({ ...options, input: '-' });
  const rejects = RejectsFile.open(options.rejects, options.rejectsAppend);
  try {
    return await new BrokerIngestRun(options, io, rejects).run();
  } finally {
    rejects.close();
  }
}

class BrokerIngestRun {
  readonly #options: IngestOptions;
  readonly #io: Io;
  readonly #rejects: RejectsFile;
  readonly #started = performance.now();
  readonly #schema: Schema;
  readonly #mapper: RowMapper;
  /** Aborted when the run gives up: the database waits end, what is held is handed back. */
  readonly #giveUp = new AbortController();
  #link: BrokerLink | undefined;
  #sink: Sink | undefined;
  #run: EndToEndRun<Incoming> | undefined;
  #source: BrokerSource<Incoming> | undefined;
  #status: StatusLine | undefined;
  /** Messages decoded (each delivery once per run), rows stored, messages rejected. */
  #read = 0;
  #inserted = 0;
  /** Messages the sluice dead-lettered, by what the CLI's route did with them. */
  readonly #deadLettersSettled = { acked: 0, handedBack: 0 };
  #signal: NodeJS.Signals | undefined;
  /** Why the run could not go on (a lost broker or database, a schema error). */
  #fatal: unknown;
  #idleTimer: NodeJS.Timeout | undefined;
  #lastMessageAt = performance.now();
  /** The source lost its connection and is re-opening it (AMQP): not idle, whatever it holds. */
  #reconnecting = false;
  #deadline: NodeJS.Timeout | undefined;

  constructor(options: IngestOptions, io: Io, rejects: RejectsFile) {
    this.#options = options;
    this.#io = io;
    this.#rejects = rejects;
    this.#schema = new Schema({
      typed: true,
      strict: options.strictSchema,
      identity: options.target.kind === 'sqlite' ? sqliteIdentity : postgresIdentity,
    });
    this.#mapper = new RowMapper(this.#schema, options.columns);
    rejects.onFailure((error) => this.#fail(error));
  }

  async run(): Promise<number> {
    process.on('SIGINT', this.#onSignal);
    process.on('SIGTERM', this.#onSignal);
    let failure: unknown;
    try {
      failure = await this.#load();
    } finally {
      process.off('SIGINT', this.#onSignal);
      process.off('SIGTERM', this.#onSignal);
      clearTimeout(this.#idleTimer);
      clearTimeout(this.#deadline);
      this.#status?.stop();
      await this.#link?.close();
      await this.#sink?.close();
    }
    return this.#report(failure);
  }

  async #load(): Promise<unknown> {
    const options = this.#options;
    const broker = options.broker!;
    // The database first: a target that cannot be opened must not take messages from the broker.
    this.#sink = await this.#openSink();
    this.#link = await openBroker(broker, options.reconnectTimeoutMs, `sluice ingest from ${broker.kind}://`);
    this.#link.onLost((error) => this.#fail(error));
    await this.#link.checkSource();
    if (this.#signal !== undefined || this.#giveUp.signal.aborted) return undefined;
    const source = this.#link.source<Incoming>({
      maxUnacked: options.maxBuffer,
      decode: (body, delivery) => this.#decode(body, delivery),
      deadLetters: {
        route: (messages, reason) => this.#deadLetter(messages as never, reason),
        settled: (how, count) => (this.#deadLettersSettled[how] += count),
      },
    });
    this.#source = source;
    this.#watchReconnects(source);
    const run = endToEnd(source, this.#flush, {
      maxBufferSize: options.maxBuffer,
      // As for files (args.ts): auto within 0.4 × the bound, so one batch fills while another is stored;
      // N at most the critical count, where the sluice stops taking messages from the source.
      batchSize: options.batchSize,
      retry: { maxRetries: 0 },
      // A batch the database refused is halved until the refused rows stand alone (then: rejects file, ack).
      isolateFailures: 'bisect',
      onAckError: (error, messages) =>
        this.#warn(
          `the broker could not be told that ${messages.length} message(s) were stored (${brokerMessage(error, broker)}); it will deliver them again${options.dedupe ? ' (--dedupe skips them)' : ''}`,
        ),
    });
    this.#run = run;
    this.#status = new StatusLine(
      {
        getMetrics: () => run.sluice.getMetrics(),
        maxBufferSize: options.maxBuffer,
        extra: () => [
          ['read', this.#read],
          ['unacked', source.unacked],
          ['rejected', this.#rejects.total],
        ],
      },
      { stream: this.#io.err, quiet: options.quiet, intervalMs: options.statusIntervalMs },
    );
    this.#status.start();
    this.#armIdle();
    const giveUp = (): void => {
      source.destroy();
      void this.#sink?.abort();
    };
    this.#giveUp.signal.addEventListener('abort', giveUp, { once: true });
    if (this.#giveUp.signal.aborted) giveUp();
    try {
      await run.done;
      return undefined;
    } catch (error) {
      // Given up on purpose: the source was destroyed, what it held handed back; the reason is #fatal or a signal.
      if (this.#giveUp.signal.aborted) return undefined;
      return error;
    }
  }

  #openSink(): Promise<Sink> {
    const { target, table, pgMethod, dedupe, idColumn } = this.#options;
    const sinkOptions: SinkOptions = {
      table,
      schema: this.#schema,
      signal: this.#giveUp.signal,
      warn: (message) => this.#warn(message),
      ...(dedupe ? { uniqueColumn: idColumn } : {}),
    };
    return target.kind === 'sqlite'
      ? SqliteSink.open(target.path, sinkOptions)
      : PostgresSink.open(target.url, pgMethod, sinkOptions);
  }

  /** A delivery's payload as a row (or a reject line: not JSON, not an object, not mappable). Never throws. */
  #decode(body: Buffer, delivery: Readonly<Delivery<unknown>>): Incoming {
    this.#read++;
    this.#lastMessageAt = performance.now();
    const broker = this.#options.broker!;
    const id =
      broker.kind === 'amqp'
        ? ((delivery.handle as { properties?: { messageId?: unknown } }).properties?.messageId as string | undefined)
        : `${broker.name}:${delivery.id}`;
    const shownId = id ?? `delivery-tag:${delivery.id}`;
    const raw = body.toString('utf8');
    const reject = (error: string): Incoming => {
      this.#rejects.write('parse', [{ line: this.#read, raw, id: shownId }], error);
      return { id: shownId, row: undefined };
    };
    let record: unknown;
    try {
      record = JSON.parse(raw);
    } catch (error) {
      return reject(`invalid JSON: ${describe(error)}`);
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) return reject('expected a JSON object');
    if (this.#options.dedupe) {
      const idColumn = this.#options.idColumn;
      if (id === undefined || id === '')
        return reject('the message has no message id, which --dedupe needs (sluice publish sets one)');
      if (Object.hasOwn(record, idColumn))
        return reject(
          `the message has a field "${idColumn}", the --dedupe id column (choose another with --id-column)`,
        );
      record = { [idColumn]: id, ...record };
    }
    try {
      return {
        id: shownId,
        row: { line: this.#read, raw, values: this.#mapper.map(record as Record<string, unknown>) },
      };
    } catch (error) {
      if (!(error instanceof MappingError)) throw error;
      return reject(error.message);
    }
  }

  /** One batch: its rows go to the database; messages already rejected ride along and are acked with it. */
  readonly #flush = async (items: Incoming[]): Promise<FlushResult<Incoming> | undefined> => {
    const rows: Row[] = [];
    for (const item of items) if (item.row !== undefined) rows.push(item.row);
    if (rows.length === 0) return undefined;
    this.#status?.observe(this.#run?.sluice.getMetrics().bufferSize ?? 0);
    const sink = this.#sink!;
    const giveUp = this.#giveUp.signal;
    for (let attempt = 0; ; attempt++) {
      if (giveUp.aborted) throw giveUp.reason;
      try {
        const result = await sink.insert(rows);
        if (result === undefined || result.failed === 0) {
          this.#inserted += rows.length;
          return undefined;
        }
        const refused = new Set(result.failedItems);
        this.#inserted += rows.length - refused.size;
        const failedItems = items.filter((item) => item.row !== undefined && refused.has(item.row));
        return {
          success: items.length - failedItems.length,
          failed: failedItems.length,
          errors: result.errors,
          failedItems,
        };
      } catch (error) {
        if (!giveUp.aborted && (sink.isFatal(error) || error instanceof CliError)) this.#fail(error);
        if (giveUp.aborted || attempt >= this.#options.retries || !sink.isTransient(error)) throw error;
      }
      await sleep(Math.random() * Math.min(1000, 50 * 2 ** attempt), giveUp);
    }
  };

  /**
   * The sluice gave up on these messages. Refused by the database: a reject line each, then acked
   * (true). Never judged (the run gave up, the database was lost): delivered again (false).
   */
  #deadLetter(messages: { payload: Incoming }[], reason: unknown): boolean {
    const cause = (reason as BackpressureError).cause;
    const sink = this.#sink!;
    const unjudged =
      this.#giveUp.signal.aborted ||
      cause instanceof CliError ||
      sink.isFatal(cause) ||
      this.#rejects.failure !== undefined;
    if (unjudged) return false;
    const records = messages
      .filter((message) => message.payload.row !== undefined)
      .map(({ payload }) => ({ line: payload.row!.line, raw: payload.row!.raw, id: payload.id }));
    this.#rejects.write('database', records, describe(cause ?? reason));
    return this.#rejects.failure === undefined;
  }

  /**
   * A source that re-opens its connection itself (AMQP) says so: warn, and keep `--idle-exit` from
   * ending a run that waits for the broker. (The NATS and Redis clients reconnect silently.)
   */
  #watchReconnects(source: BrokerSource<Incoming>): void {
    const { broker, reconnectTimeoutMs, dedupe } = this.#options;
    source.on('disconnect', ({ forgotten, cause }: { forgotten: number; cause: Error | undefined }) => {
      this.#reconnecting = true;
      const why = cause === undefined ? '' : ` (${brokerMessage(cause, broker!)})`;
      const again =
        forgotten === 0
          ? ''
          : `; the ${forgotten} message(s) not yet acked go back to the queue and come again${dedupe ? ' (--dedupe stores them once)' : ' (they may be stored twice: see --dedupe)'}`;
      this.#warn(
        `lost the connection to ${broker!.display}${why}; reconnecting for up to ${reconnectTimeoutMs} ms (--reconnect-timeout)${again}`,
      );
    });
    source.on('reconnect', ({ downMs }: { downMs: number }) => {
      this.#reconnecting = false;
      this.#lastMessageAt = performance.now();
      this.#warn(`reconnected to ${broker!.display} after ${downMs} ms; consuming again`);
    });
  }

  /** `--idle-exit`: stop once no message arrived for that long and nothing is held. */
  #armIdle(): void {
    const idleMs = this.#options.idleExitMs;
    if (idleMs === undefined) return;
    const check = (): void => {
      const quietFor = performance.now() - this.#lastMessageAt;
      const held = this.#source?.unacked ?? 0;
      if (quietFor >= idleMs && held === 0 && !this.#reconnecting) {
        this.#idleTimer = undefined;
        void this.#run?.stop();
        return;
      }
      this.#idleTimer = setTimeout(check, Math.max(10, idleMs - quietFor));
    };
    this.#idleTimer = setTimeout(check, idleMs);
  }

  /** The run cannot go on: remember why (the first reason) and give up. */
  #fail(error: unknown): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = error;
    this.#giveUp.abort(error instanceof Error ? error : new Error(describe(error)));
  }

  readonly #onSignal = (name: NodeJS.Signals): void => {
    if (this.#signal !== undefined) {
      if (this.#giveUp.signal.aborted) return;
      this.#say(`${name} again: giving up; the messages not stored are handed back to the broker`);
      this.#giveUp.abort(new Error(`interrupted by a second ${name}`));
      return;
    }
    this.#signal = name;
    const ms = this.#options.shutdownTimeoutMs;
    this.#say(
      `${name}: no more messages are fetched; storing and acking those held for up to ${ms} ms (--shutdown-timeout); a second signal gives up`,
    );
    void this.#run?.stop();
    this.#deadline = setTimeout(() => {
      if (!this.#giveUp.signal.aborted)
        this.#giveUp.abort(new Error(`not stored within --shutdown-timeout (${ms} ms)`));
    }, ms);
  };

  #warn(message: string): void {
    this.#say(`warning: ${message}`);
  }

  /** One line on stderr, above the status line. */
  #say(message: string): void {
    sayAbove(this.#status, this.#io.err, message);
  }

  #report(failure: unknown): number {
    const options = this.#options;
    const broker = options.broker!;
    const settled = this.#run?.summary() ?? { acked: 0, deadLettered: 0, nacked: 0, ackFailures: 0 };
    const durationMs = performance.now() - this.#started;
    const duplicates = this.#sink?.duplicates ?? 0;
    const inserted = this.#inserted - duplicates;
    const broken = failure !== undefined || this.#fatal !== undefined;
    const changes = this.#sink?.changes ?? { created: false, added: 0, widened: 0 };
    const summary: IngestSummary = {
      status: broken ? 'failed' : this.#signal !== undefined ? 'interrupted' : 'completed',
      input: broker.display,
      target: this.#sink?.target ?? options.table,
      table: options.table,
      format: 'ndjson',
      read: this.#read,
      inserted,
      rejected: this.#rejects.total,
      rejectedBy: this.#rejects.counts,
      rejectsFile: this.#rejects.total > 0 ? this.#rejects.path : undefined,
      rejectsUnwritten: this.#rejects.unwritten,
      blankLines: 0,
      offered: this.#run?.sluice.getMetrics().eventsOffered ?? 0,
      dropped: 0,
      deadLettered: settled.deadLettered,
      tableCreated: changes.created,
      columnsAdded: changes.added,
      columnsWidened: changes.widened,
      peakBuffer: this.#status?.peakBuffer ?? 0,
      maxBuffer: options.maxBuffer,
      peakRssBytes: peakRssBytes(),
      durationMs: Math.round(durationMs),
      rowsPerSecond: Math.round(inserted / (durationMs / 1000)),
      broker: {
        acked: settled.acked + this.#deadLettersSettled.acked,
        handedBack: settled.nacked + this.#deadLettersSettled.handedBack,
        ackFailures: settled.ackFailures,
        duplicates,
      },
    };
    if (this.#signal !== undefined) summary.signal = this.#signal;
    if (this.#fatal !== undefined) summary.error = brokerMessage(this.#fatal, broker);
    if (failure !== undefined) summary.error = brokerMessage(failure, broker);
    // Every message read is stored, skipped as a duplicate, rejected or handed back: checked, not assumed.
    const handedBack = settled.nacked + this.#deadLettersSettled.handedBack;
    const accounted = inserted + duplicates + this.#rejects.total + handedBack + settled.ackFailures;
    if (!broken && this.#signal === undefined && accounted < this.#read) {
      summary.status = 'failed';
      summary.error = `accounting mismatch: read ${this.#read} > stored ${inserted} + duplicates ${duplicates} + rejected ${this.#rejects.total} + handed back ${handedBack + settled.ackFailures} (please report this)`;
    }
    printSummary(summary, options.json, this.#io.out);
    if (failure instanceof CliError) throw failure;
    if (this.#fatal instanceof CliError)
      throw new CliError(this.#fatal.exitCode, `ingest failed: ${summary.error}`, this.#fatal, this.#fatal.code);
    if (summary.error !== undefined) throw new CliError(ExitCode.FAILED, `ingest failed: ${summary.error}`);
    if (this.#signal !== undefined) return this.#signal === 'SIGINT' ? ExitCode.SIGINT : ExitCode.SIGTERM;
    if (options.failOnRejects && summary.rejected > 0)
      throw new CliError(
        ExitCode.FAILED,
        `${summary.rejected} message(s) rejected (--fail-on-rejects); see ${this.#rejects.path}`,
      );
    return ExitCode.OK;
  }
}
