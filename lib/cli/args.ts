import { parseArgs } from 'node:util';
import { criticalCount, fillingBatchSize } from '../engine';
import { BackpressureStrategy, DEFAULT_CONFIG } from '../index';
import { usageError } from './errors';
import { DEFAULT_MAX_RECORD_BYTES } from './parse';
import { isBrokerUrl, parseBrokerUrl, type BrokerUrl } from './brokers/url';
import type { ParseArgsConfig } from 'node:util';

/** Where rows go, as given to `--into`. */
export type Target = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

export type InputFormat = 'ndjson' | 'csv';
export type PgMethod = 'copy' | 'insert';

export interface CommonOptions {
  /** A fixed size, or adaptive batching's bounds (`--batch-size auto`, the default). */
  batchSize: number | { min: number; max: number };
  maxBuffer: number;
  quiet: boolean;
  json: boolean;
  verbose: boolean;
  /** Milliseconds between status lines; undefined: 100 on a TTY, 2000 otherwise. */
  statusIntervalMs: number | undefined;
}

export interface IngestOptions extends CommonOptions {
  /** A file path, or `-` for stdin. */
  input: string;
  target: Target;
  table: string;
  format: InputFormat;
  /** CSV field separator: a tab for `.tsv` files, else a comma. */
  delimiter: string;
  columns: string[] | undefined;
  /** `--strict-schema`: the first record fixes columns and types; no columns added, no types widened. */
  strictSchema: boolean;
  strategy: BackpressureStrategy;
  maxBufferBytes: number | undefined;
  rejects: string;
  /** Append to the rejects file instead of starting it afresh. */
  rejectsAppend: boolean;
  /** A longer record (NDJSON line, CSV record) is rejected and reading resumes at the next line. */
  maxRecordBytes: number;
  shutdownTimeoutMs: number;
  retries: number;
  failOnRejects: boolean;
  pgMethod: PgMethod;
  /** The input is a broker (`nats://`, `redis://`, `amqp://`): messages are acked once stored. */
  broker: BrokerUrl | undefined;
  /** `--dedupe`: each message's broker identity goes into `idColumn`, unique; a redelivery is skipped. */
  dedupe: boolean;
  /** `--id-column`: the column of the broker identity with `--dedupe`. */
  idColumn: string;
  /** `--idle-exit`: a broker run ends (exit 0) once no message arrived for this long and none is held. */
  idleExitMs: number | undefined;
  /** `--reconnect-timeout`: a broker connection down longer than this ends the run (exit 1). */
  reconnectTimeoutMs: number;
  /**
   * `--resumable`: each batch commits with the load's progress in the target database, and a later run of
   * the same command goes on from there (docs/cli.md, "Resumable loads").
   */
  resumable: boolean;
  /** `--restart` (with `--resumable`): forget the load's progress and read the file from its first line. */
  restart: boolean;
  /**
   * `--disk DIR` (stdin, NDJSON): the sluice keeps what it accepted in a write-ahead log in DIR, so that
   * rows read from stdin survive a crash and are inserted by the next run with the same `--disk`.
   */
  disk: string | undefined;
}

/** `sluice publish`: NDJSON lines in, one message each, the broker's acks as the flush result. */
export interface PublishOptions extends CommonOptions {
  /** Fixed: `--batch-size N`, else {@link PUBLISH_BATCH} or what fits the buffer, if less. */
  batchSize: number;
  input: string;
  broker: BrokerUrl;
  /** `--id-field`: the message id (dedupe key for the broker and for `ingest --dedupe`) is this field's value. */
  idField: string | undefined;
  rejects: string;
  rejectsAppend: boolean;
  maxRecordBytes: number;
  shutdownTimeoutMs: number;
  retries: number;
  reconnectTimeoutMs: number;
}

export interface DemoOptions extends CommonOptions {
  events: number;
  db: string;
}

const common = {
  'batch-size': { type: 'string' },
  'max-buffer': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  'status-interval': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const ingestFlags = {
  ...common,
  into: { type: 'string' },
  table: { type: 'string' },
  format: { type: 'string' },
  columns: { type: 'string' },
  'strict-schema': { type: 'boolean' },
  strategy: { type: 'string' },
  'max-buffer-bytes': { type: 'string' },
  rejects: { type: 'string' },
  'rejects-append': { type: 'boolean' },
  'max-record-bytes': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  retries: { type: 'string' },
  'fail-on-rejects': { type: 'boolean' },
  'pg-method': { type: 'string' },
  dedupe: { type: 'boolean' },
  'id-column': { type: 'string' },
  'idle-exit': { type: 'string' },
  'reconnect-timeout': { type: 'string' },
  resumable: { type: 'boolean' },
  restart: { type: 'boolean' },
  disk: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const publishFlags = {
  ...common,
  into: { type: 'string' },
  'id-field': { type: 'string' },
  rejects: { type: 'string' },
  'rejects-append': { type: 'boolean' },
  'max-record-bytes': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  retries: { type: 'string' },
  'reconnect-timeout': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const demoFlags = {
  ...common,
  events: { type: 'string' },
  db: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** SQL identifiers we accept for `--table`: quoted anyway, but kept simple so a typo is caught. PostgreSQL may add one schema. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PG_TABLE_NAME = /^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$/;

/** `undefined` when the user asked for help. */
export function parseIngestArgs(argv: string[]): IngestOptions | undefined {
  const { values, positionals } = parse(argv, ingestFlags);
  if (values.help === true) return undefined;
  if (positionals.length > 1)
    throw usageError(
      `sluice ingest takes one input (a file or -). Received ${positionals.length}: ${positionals.join(' ')}`,
    );
  const input = positionals[0] ?? '-';
  if (values.into === undefined) throw usageError('sluice ingest needs --into sqlite:PATH or --into postgres://URL');
  const target = parseTarget(values.into);
  if (values.table === undefined) throw usageError('sluice ingest needs --table NAME');
  const pattern = target.kind === 'postgres' ? PG_TABLE_NAME : TABLE_NAME;
  if (!pattern.test(values.table)) {
    throw usageError(
      `The option --table must be an identifier (letters, digits, _; not starting with a digit). Received ${JSON.stringify(values.table)}`,
    );
  }
  const format = values.format ?? (/\.(csv|tsv)$/i.test(input) ? 'csv' : 'ndjson');
  if (format !== 'ndjson' && format !== 'csv')
    throw usageError(`The option --format must be ndjson or csv. Received ${JSON.stringify(format)}`);
  const strategy = values.strategy ?? BackpressureStrategy.BLOCK;
  const strategies = Object.values(BackpressureStrategy) as string[];
  if (!strategies.includes(strategy)) {
    throw usageError(
      `The option --strategy must be one of ${strategies.join(', ')}. Received ${JSON.stringify(strategy)}`,
    );
  }
  const broker = isBrokerUrl(input) ? parseBrokerUrl(input, 'ingest') : undefined;
  const dedupe = values.dedupe === true;
  const idColumn = values['id-column'] ?? 'broker_id';
  if (broker === undefined) {
    for (const flag of ['dedupe', 'id-column', 'idle-exit', 'reconnect-timeout'] as const)
      if (values[flag] !== undefined)
        throw usageError(
          `The option --${flag} needs a broker as input (nats://, redis://, amqp://). Received ${JSON.stringify(input)}`,
        );
  } else {
    if (values.format !== undefined && values.format !== 'ndjson')
      throw usageError(
        `A broker's messages are JSON: --format must be ndjson. Received ${JSON.stringify(values.format)}`,
      );
    if (strategy !== (BackpressureStrategy.BLOCK as string))
      throw usageError(
        `From a broker the strategy is block (what waits stays in the broker). Received --strategy ${strategy}`,
      );
    if (values['max-buffer-bytes'] !== undefined)
      throw usageError('--max-buffer-bytes is for files; from a broker --max-buffer bounds the messages held unacked');
    if (!TABLE_NAME.test(idColumn))
      throw usageError(
        `The option --id-column must be an identifier (letters, digits, _). Received ${JSON.stringify(idColumn)}`,
      );
    if (values['id-column'] !== undefined && !dedupe) throw usageError('The option --id-column needs --dedupe');
  }
  if (dedupe && target.kind === 'postgres' && values['pg-method'] === 'copy')
    throw usageError('--dedupe needs --pg-method insert (COPY cannot skip rows already stored)');
  const pgMethod = values['pg-method'] ?? (dedupe ? 'insert' : 'copy');
  if (pgMethod !== 'copy' && pgMethod !== 'insert')
    throw usageError(`The option --pg-method must be copy or insert. Received ${JSON.stringify(pgMethod)}`);
  const resumable = values.resumable === true;
  checkResumable(values, input, broker !== undefined, strategy, values.table);
  checkDisk(values, input, broker !== undefined, format);
  let columns = values.columns === undefined ? undefined : parseColumns(values.columns);
  if (dedupe && columns !== undefined && !columns.includes(idColumn)) columns = [idColumn, ...columns];
  return {
    ...commonOptions(values, strategy === (BackpressureStrategy.BLOCK as string) && values.disk === undefined),
    input,
    target,
    table: values.table,
    format,
    delimiter: /\.tsv$/i.test(input) ? '\t' : ',',
    columns,
    strictSchema: values['strict-schema'] === true,
    strategy: strategy as BackpressureStrategy,
    maxBufferBytes: integer(values, 'max-buffer-bytes', 1, undefined),
    rejects: values.rejects ?? 'sluice-rejects.ndjson',
    rejectsAppend: values['rejects-append'] === true,
    maxRecordBytes: integer(values, 'max-record-bytes', 1, DEFAULT_MAX_RECORD_BYTES),
    shutdownTimeoutMs: integer(values, 'shutdown-timeout', 0, 10_000),
    retries: integer(values, 'retries', 0, 1),
    failOnRejects: values['fail-on-rejects'] === true,
    pgMethod,
    broker,
    dedupe,
    idColumn,
    idleExitMs: integer(values, 'idle-exit', 1, undefined),
    reconnectTimeoutMs: integer(values, 'reconnect-timeout', 0, 30_000),
    resumable,
    restart: values.restart === true,
    disk: values.disk,
  };
}

/** `--disk DIR`: for NDJSON read from stdin, which cannot be read again after a crash. */
function checkDisk(values: Values, input: string, broker: boolean, format: string): void {
  const dir = values.disk;
  if (dir === undefined) return;
  if (dir === '') throw usageError('The option --disk needs a directory');
  if (broker)
    throw usageError(
      '--disk is for stdin: from a broker, a message is acked only once it is stored, so the broker keeps what a crashed run held',
    );
  if (input !== '-')
    throw usageError(
      `--disk is for stdin, which cannot be read again after a crash; a FILE can be resumed instead: use --resumable. Received ${JSON.stringify(input)}`,
    );
  if (values.resumable === true)
    throw usageError('--disk and --resumable exclude each other: --disk is for stdin, --resumable for a FILE');
  if (format !== 'ndjson')
    throw usageError(
      '--disk needs --format ndjson: a CSV record is read with the header of the run that read it, which the next run does not have',
    );
}

/** The progress table's name (resume/progress.ts), which `--table` may not take with `--resumable`. */
const PROGRESS_TABLE = 'sluice_progress';

/** `--resumable` and `--restart`: what they need and what they exclude. */
function checkResumable(values: Values, input: string, broker: boolean, strategy: string, table: string): void {
  if (values.restart === true && values.resumable !== true)
    throw usageError('The option --restart needs --resumable (it starts a resumable load again from its first line)');
  if (values.resumable !== true) return;
  if (broker)
    throw usageError(
      '--resumable is for files: from a broker, a message is acked only once it is stored, so what a crashed run held is delivered again',
    );
  if (input === '-')
    throw usageError(
      '--resumable needs a FILE: stdin cannot be read again after a crash. Save the input to a file first, or use --disk DIR to keep what is read from stdin on disk until it is inserted',
    );
  if (strategy !== (BackpressureStrategy.BLOCK as string))
    throw usageError(
      `--resumable needs --strategy block: a resumable load stores or rejects every line exactly once, and a drop strategy discards rows as they come. Received --strategy ${strategy}`,
    );
  if (table.split('.').pop()?.toLowerCase() === PROGRESS_TABLE)
    throw usageError(`--table ${table} is the name of the progress table --resumable keeps: choose another table`);
}

/** `undefined` when the user asked for help. */
export function parsePublishArgs(argv: string[]): PublishOptions | undefined {
  const { values, positionals } = parse(argv, publishFlags);
  if (values.help === true) return undefined;
  if (positionals.length > 1)
    throw usageError(
      `sluice publish takes one input (a file or -). Received ${positionals.length}: ${positionals.join(' ')}`,
    );
  if (values.into === undefined)
    throw usageError('sluice publish needs --into nats://HOST/SUBJECT, redis://HOST/STREAM or amqp://HOST/QUEUE');
  if (!isBrokerUrl(values.into))
    throw usageError(
      `The option --into of sluice publish must be a nats://, redis:// or amqp:// URL. Received ${JSON.stringify(values.into)}`,
    );
  const idField = values['id-field'];
  if (idField === '') throw usageError('The option --id-field needs a field name');
  const common = commonOptions(values, true);
  return {
    ...common,
    // Not adaptive: 500 messages (or fewer, so that the next batch fills while one is published).
    batchSize: typeof common.batchSize === 'number' ? common.batchSize : Math.min(PUBLISH_BATCH, common.batchSize.max),
    input: positionals[0] ?? '-',
    broker: parseBrokerUrl(values.into, 'publish'),
    idField,
    rejects: values.rejects ?? 'sluice-rejects.ndjson',
    rejectsAppend: values['rejects-append'] === true,
    maxRecordBytes: integer(values, 'max-record-bytes', 1, DEFAULT_MAX_RECORD_BYTES),
    shutdownTimeoutMs: integer(values, 'shutdown-timeout', 0, 10_000),
    retries: integer(values, 'retries', 0, 5),
    reconnectTimeoutMs: integer(values, 'reconnect-timeout', 0, 30_000),
  };
}

/** `undefined` when the user asked for help. */
export function parseDemoArgs(argv: string[]): DemoOptions | undefined {
  const { values, positionals } = parse(argv, demoFlags);
  if (values.help === true) return undefined;
  if (positionals.length > 0) throw usageError(`sluice demo takes no arguments. Received ${positionals.join(' ')}`);
  return {
    ...commonOptions(values, true),
    events: integer(values, 'events', 1, 1_000_000),
    db: values.db ?? 'sluice-demo.db',
  };
}

/**
 * `--into`. SQLite: `sqlite:PATH` or `sqlite://PATH`, where PATH is relative to the
 * working directory unless it starts with `/` (so `sqlite:///abs/x.db` is
 * absolute, as in a file: URL); no host, no query string, no ~ expansion.
 */
export function parseTarget(into: string): Target {
  if (into.startsWith('sqlite:')) {
    const path = into.slice('sqlite:'.length).replace(/^\/\//, '');
    if (path === '') throw usageError('The option --into sqlite: needs a path, e.g. sqlite:data.db');
    if (path.includes('?'))
      throw usageError(
        `The option --into sqlite: takes a file path, without a query string. Received ${JSON.stringify(into)}`,
      );
    return { kind: 'sqlite', path };
  }
  if (/^postgres(ql)?:\/\//.test(into)) return { kind: 'postgres', url: into };
  throw usageError(`The option --into must be sqlite:PATH or postgres://URL. Received ${JSON.stringify(into)}`);
}

function parseColumns(list: string): string[] {
  const columns = list.split(',').map((name) => name.trim());
  if (columns.some((name) => name === ''))
    throw usageError(`The option --columns must be a comma-separated list of names. Received ${JSON.stringify(list)}`);
  if (new Set(columns).size !== columns.length)
    throw usageError(`The option --columns names a column twice. Received ${JSON.stringify(list)}`);
  return columns;
}

function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: negativeValues(argv, options), options, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs' own messages name the flag ("Unknown option '--x'"); keep them, drop its advice about '--'.
    throw usageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/**
 * `--batch-size -1` as `--batch-size=-1`: parseArgs takes a value that starts with a dash for a flag
 * ("argument is ambiguous"), but no flag starts with a dash and a digit, so this is a value, and
 * the flag's own check then names it and echoes it.
 */
function negativeValues(argv: string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') return [...args, ...argv.slice(i)];
    const next = argv[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`);
      i++;
    } else args.push(arg);
  }
  return args;
}

type Values = Record<string, string | boolean | undefined>;

/**
 * `pauses`: block without `--disk`, where the producer waits once the buffer reaches its critical
 * count, so that a batch larger than that could never fill.
 */
function commonOptions(values: Values, pauses: boolean): CommonOptions {
  const maxBuffer = integer(values, 'max-buffer', 1, 10_000);
  return {
    batchSize: batchSize(values, maxBuffer, pauses),
    maxBuffer,
    quiet: values.quiet === true,
    json: values.json === true,
    verbose: values.verbose === true,
    statusIntervalMs: integer(values, 'status-interval', 100, undefined),
  };
}

/** `sluice publish`'s batch size without `--batch-size N`, where the buffer lets it fill. */
export const PUBLISH_BATCH = 500;

/** Adaptive batching's bounds for `--batch-size auto`: 100 to 10,000 rows, within what the buffer lets fill. */
export const AUTO_BATCH = { min: 100, max: 10_000 } as const;

/**
 * The rows held where block pauses the producer (the library's `critical` level: 80 % of
 * `--max-buffer`, as the sluice computes it).
 */
export function criticalRows(maxBuffer: number): number {
  return criticalCount({ highWatermark: DEFAULT_CONFIG.highWatermark, maxBufferSize: maxBuffer });
}

/**
 * The largest batch that fills while another is written (the CLI flushes one batch at a time): half of
 * {@link criticalRows}, 0.4 × `--max-buffer`, by the library's own rule, which keeps adaptive batching at or
 * below it in any case; at least 1.
 */
export function fillingBatch(maxBuffer: number): number {
  const config = { highWatermark: DEFAULT_CONFIG.highWatermark, maxBufferSize: maxBuffer, maxConcurrentFlushes: 1 };
  return Math.max(1, fillingBatchSize(config));
}

/** `--batch-size auto` (the default): adaptive between AUTO_BATCH's bounds, within fillingBatch(); `--batch-size N`: fixed. */
function batchSize(values: Values, maxBuffer: number, pauses: boolean): number | { min: number; max: number } {
  if (values['batch-size'] === undefined || values['batch-size'] === 'auto') {
    const max = Math.min(AUTO_BATCH.max, fillingBatch(maxBuffer));
    return { min: Math.min(AUTO_BATCH.min, max), max };
  }
  const raw = values['batch-size'];
  if (typeof raw !== 'string' || !DIGITS.test(raw) || !(Number(raw.replace(/[_,]/g, '')) >= 1)) {
    throw usageError(`The option --batch-size must be 'auto' or an integer >= 1. Received ${JSON.stringify(raw)}`);
  }
  const fixed = integer(values, 'batch-size', 1, 1000);
  const critical = criticalRows(maxBuffer);
  if (pauses && fixed > critical) {
    throw usageError(
      `The option --batch-size must be at most ${critical} with the block strategy: the input pauses at 80% of --max-buffer (${maxBuffer}), so a larger batch would never fill. Received ${fixed}`,
    );
  }
  if (fixed > maxBuffer) {
    throw usageError(`The option --batch-size must be at most --max-buffer (${maxBuffer}). Received ${fixed}`);
  }
  return fixed;
}

/**
 * A whole number as typed: plain digits, or digits grouped by three with _ or , as thousands separators (10,000 or
 * 10_000; not 1,5, which a typo for 1.5 would read as 15). Number() alone would take '' as 0 and '1e3' as 1000.
 */
const DIGITS = /^(\d+|\d{1,3}([_,]\d{3})+)$/;

function integer(values: Values, flag: string, min: number, fallback: number): number;
function integer(values: Values, flag: string, min: number, fallback: undefined): number | undefined;
function integer(values: Values, flag: string, min: number, fallback: number | undefined): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && DIGITS.test(raw) ? Number(raw.replace(/[_,]/g, '')) : NaN;
  if (!(value >= min)) {
    throw usageError(`The option --${flag} must be an integer >= ${min}. Received ${JSON.stringify(raw)}`);
  }
  if (!Number.isSafeInteger(value)) {
    throw usageError(
      `The option --${flag} must be at most ${Number.MAX_SAFE_INTEGER.toLocaleString('en')}. Received ${JSON.stringify(raw)}`,
    );
  }
  return value;
}
