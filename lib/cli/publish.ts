/**
 * `sluice publish FILE|- --into nats://…/SUBJECT | redis://…/STREAM | amqp://…/QUEUE`: NDJSON
 * lines in, one message each, through a blocking sluice whose flush function is the library's
 * broker sink: a batch counts as delivered only for the messages the broker acknowledged
 * (JetStream publish acks, Redis XADD replies, publisher confirms). A line that is not a JSON
 * object is a reject; a message the broker still refused after `--retries` is a reject too
 * (`undelivered`), and the run exits 1.
 *
 * Each message gets an id (`--id-field`, else RUN:LINE), sent as JetStream's Nats-Msg-Id (the
 * server drops a retried duplicate) and AMQP's message-id (what `ingest --dedupe` keys on).
 */
import { randomBytes } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createBackpressureStream, BackpressureStrategy, type BackpressureWritable } from '../index';
import type { PublishOptions } from './args';
import { brokerMessage, openBroker, type BrokerLink } from './brokers/connect';
import { CliError, ExitCode, describe } from './errors';
import type { Io } from './ingest';
import { LineSplitter, type Lines } from './parse';
import { openInput, stoppable } from './paths';
import { RejectsFile } from './rejects';
import { StatusLine, fmt, mib, peakRssBytes } from './status-line';
import { Stopping } from './stopping';

/** One line on its way to the broker. */
interface Outgoing {
  line: number;
  raw: string;
  id: string;
}

/** What `sluice publish` prints at the end (`--json`: this object on one line). */
export interface PublishSummary {
  status: 'completed' | 'interrupted' | 'failed';
  input: string;
  target: string;
  read: number;
  published: number;
  rejected: number;
  rejectedBy: Record<string, number>;
  rejectsFile: string | undefined;
  peakRssBytes: number;
  durationMs: number;
  messagesPerSecond: number;
  signal?: NodeJS.Signals;
  error?: string;
}

export async function publish(options: PublishOptions, io: Io): Promise<number> {
  const rejects = RejectsFile.open(options.rejects, options.rejectsAppend);
  const started = performance.now();
  const stopping = new Stopping(
    options.shutdownTimeoutMs,
    (message) => io.err.write(`sluice: ${message}\n`),
    'publish',
  );
  rejects.onFailure((error) => stopping.fail(error, false));
  let link: BrokerLink | undefined;
  let sluice: BackpressureWritable<Outgoing> | undefined;
  let splitter: LineSplitter | undefined;
  let status: StatusLine | undefined;
  let failure: unknown;
  stopping.install();
  try {
    const input = await openInput(options.input, io.stdin);
    try {
      link = await openBroker(
        options.broker,
        options.reconnectTimeoutMs,
        `sluice publish to ${options.broker.kind}://`,
      );
    } catch (error) {
      input.destroy();
      throw error;
    }
    link.onLost((error) => stopping.fail(error, true));
    const runId = randomBytes(6).toString('hex');
    const sink = await link.sink<Outgoing>({ encode: (item) => Buffer.from(item.raw), messageId: (item) => item.id });
    const reject = (line: number, raw: string, error: string): void => rejects.write('parse', [{ line, raw }], error);
    splitter = new LineSplitter(reject, options.maxRecordBytes);
    if (stopping.reading.signal.aborted) splitter.discardTail = true;
    stopping.onStopReading = () => {
      if (splitter !== undefined) splitter.discardTail = true;
    };
    const toMessages = new Transform({
      objectMode: true,
      transform(lines: Lines, _encoding: BufferEncoding, callback: TransformCallback) {
        for (let i = 0; i < lines.texts.length; i++) {
          const line = lines.numbers[i] as number;
          const raw = lines.texts[i] as string;
          let record: unknown;
          try {
            record = JSON.parse(raw);
          } catch (error) {
            reject(line, raw, `invalid JSON: ${describe(error)}`);
            continue;
          }
          if (record === null || typeof record !== 'object' || Array.isArray(record)) {
            reject(line, raw, 'expected a JSON object');
            continue;
          }
          let id = `${runId}:${line}`;
          if (options.idField !== undefined) {
            const value = (record as Record<string, unknown>)[options.idField];
            if (typeof value !== 'string' && typeof value !== 'number') {
              reject(line, raw, `field "${options.idField}" (--id-field) is missing or not a string or number`);
              continue;
            }
            id = String(value);
          }
          this.push({ line, raw, id } satisfies Outgoing);
        }
        callback();
      },
    });
    const giveUp = stopping.giveUp.signal;
    const stream = createBackpressureStream<Outgoing>(sink, {
      strategy: BackpressureStrategy.BLOCK,
      maxBufferSize: options.maxBuffer,
      batchSize: options.batchSize,
      maxBlockTimeMs: Infinity,
      retry: { maxRetries: options.retries, initialDelayMs: 200, maxDelayMs: 5_000 },
      signal: giveUp,
      onDeadLetter: (items, error) => {
        const why = error.cause === undefined ? error.message : brokerMessage(error.cause, options.broker);
        rejects.write('undelivered', items, `not published: ${why}`);
      },
    });
    sluice = stream;
    status = new StatusLine(
      {
        getMetrics: () => stream.getMetrics(),
        maxBufferSize: options.maxBuffer,
        extra: () => [
          ['read', splitter?.records ?? 0],
          ['rejected', rejects.total],
        ],
      },
      { stream: io.err, quiet: options.quiet, intervalMs: options.statusIntervalMs },
    );
    status.start();
    const source = Readable.from(stoppable(input, stopping.reading.signal), { objectMode: false });
    try {
      await pipeline(source, splitter, toMessages, stream);
    } catch (error) {
      if (!giveUp.aborted) failure = error;
    }
    await sink.close();
  } catch (error) {
    failure = error;
  } finally {
    stopping.uninstall();
    status?.stop();
    await link?.close();
    rejects.close();
  }
  if (failure instanceof CliError && sluice === undefined) throw failure;

  const durationMs = performance.now() - started;
  const published = sluice?.getMetrics().eventsFlushed ?? 0;
  const summary: PublishSummary = {
    status:
      failure !== undefined || stopping.fatal !== undefined || rejects.counts.undelivered > 0
        ? 'failed'
        : stopping.signal !== undefined
          ? 'interrupted'
          : 'completed',
    input: options.input,
    target: options.broker.display,
    read: splitter?.records ?? 0,
    published,
    rejected: rejects.total,
    rejectedBy: Object.fromEntries(Object.entries(rejects.counts).filter(([, n]) => n > 0)),
    rejectsFile: rejects.total > 0 ? rejects.path : undefined,
    peakRssBytes: peakRssBytes(),
    durationMs: Math.round(durationMs),
    messagesPerSecond: Math.round(published / (durationMs / 1000)),
  };
  if (stopping.signal !== undefined) summary.signal = stopping.signal;
  const error = failure ?? stopping.fatal;
  if (error !== undefined) summary.error = brokerMessage(error, options.broker);
  else if (rejects.counts.undelivered > 0)
    summary.error = `${rejects.counts.undelivered} message(s) not published; see ${rejects.path}`;
  printPublishSummary(summary, options.json, io.out);
  if (summary.error !== undefined)
    throw new CliError(
      error instanceof CliError ? error.exitCode : ExitCode.FAILED,
      `publish failed: ${summary.error}`,
      error,
      error instanceof CliError ? error.code : undefined,
    );
  if (stopping.signal !== undefined) return stopping.signal === 'SIGINT' ? ExitCode.SIGINT : ExitCode.SIGTERM;
  return ExitCode.OK;
}

function printPublishSummary(s: PublishSummary, json: boolean, out: NodeJS.WritableStream): void {
  if (json) {
    out.write(`${JSON.stringify(s)}\n`);
    return;
  }
  const by = Object.entries(s.rejectedBy)
    .map(([stage, n]) => `${fmt(n)} ${stage}`)
    .join(', ');
  out.write(
    [
      `sluice publish ${s.status}${s.signal === undefined ? '' : ` (${s.signal})`}: ${s.input} → ${s.target}`,
      `  read ${fmt(s.read)}, published ${fmt(s.published)}, rejected ${fmt(s.rejected)}${by === '' ? '' : ` (${by}) → ${s.rejectsFile}`}`,
      `  peak RSS ${mib(s.peakRssBytes)}, ${(s.durationMs / 1000).toFixed(2)} s, ${fmt(s.messagesPerSecond)} messages/s`,
    ].join('\n') + '\n',
  );
}
