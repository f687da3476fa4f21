import { resolveSluiceDisk } from './disk/options';
import { invalidArgType, invalidArgValue, outOfRange } from './errors';
import type { ResolvedSluiceDisk } from './disk/options';
import { BackpressureStrategy } from './types';
import type { BackpressureConfig, BackpressureOptions, BatchSizeRange, ConcurrencyRange, RetryOptions } from './types';

/** Node caps timers at 2^31 - 1 ms; a longer delay would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Size of an item in bytes when no `sizeOf` is given: byte length for Buffers,
 * typed arrays and strings, else the byte length of its JSON text.
 */
export function defaultSizeOf(item: unknown): number {
  if (typeof item === 'string') return Buffer.byteLength(item);
  if (ArrayBuffer.isView(item)) return item.byteLength;
  return Buffer.byteLength(JSON.stringify(item) ?? '');
}

/**
 * The defaults of every option, frozen.
 *
 * @example
 * ```ts
 * new BlockingWritable(flush, { batchSize: DEFAULT_CONFIG.batchSize * 5 });
 * ```
 */
export const DEFAULT_CONFIG: Readonly<BackpressureConfig> = Object.freeze({
  maxBufferSize: 10000,
  highWatermark: 0.8,
  lowWatermark: 0.5,
  strategy: BackpressureStrategy.DROP_OLDEST,
  sampleRate: 10,
  maxBlockTimeMs: 5000,
  batchSize: 100,
  minFlushIntervalMs: 100,
  maxFlushIntervalMs: 30000,
  targetLatencyMs: 500,
  maxBufferBytes: Infinity,
  sizeOf: defaultSizeOf,
  maxConcurrentFlushes: 1,
  flushTimeoutMs: Infinity,
  retry: Object.freeze({ maxRetries: 3, initialDelayMs: 100, maxDelayMs: 5000 }),
  fallbackToSequential: false,
  isolateFailures: undefined,
  onDeadLetter: undefined,
  signal: undefined,
  disk: undefined,
});

/**
 * Names a constructor takes besides the configuration: the delivery hooks of the Writables (checked
 * by lib/sink.ts; the Transform refuses them) and Node's `objectMode`, which must be `true`.
 */
const HOOK_NAMES = ['flush', 'writev'] as const;
const OPTION_NAMES = new Set([...Object.keys(DEFAULT_CONFIG), ...HOOK_NAMES, 'objectMode']);
/** Node's Writable options a migrating subclass may pass, and what to use instead. */
const NODE_HINTS: Readonly<Record<string, string>> = {
  write: 'sluice delivers batches: use "writev" (or a flush function)',
  _writev: 'as an option it is "writev"',
  highWaterMark: 'sluice derives it from "maxBufferSize" × "highWatermark"',
  writableHighWaterMark: 'sluice derives it from "maxBufferSize" × "highWatermark"',
};
const RETRY_NAMES = new Set(Object.keys(DEFAULT_CONFIG.retry));
const STRATEGIES = new Set<string>(Object.values(BackpressureStrategy));

/** A validated configuration with every default filled in; frozen. */
export type ResolvedConfig<T> = Readonly<
  Omit<BackpressureConfig<T>, 'isolateFailures' | 'batchSize' | 'maxConcurrentFlushes' | 'disk'>
> & {
  /** The fixed batch size, or the first one (`min`) with adaptive batching. */
  readonly batchSize: number;
  /** Adaptive batching's bounds; undefined for a fixed size. */
  readonly batchBounds: Readonly<BatchSizeRange> | undefined;
  /** The most flushes that may run at once: the number given, or `max` with adaptive concurrency. */
  readonly maxConcurrentFlushes: number;
  /** Adaptive concurrency's bounds; undefined for a fixed number. */
  readonly concurrencyBounds: Readonly<ConcurrencyRange> | undefined;
  readonly strategy: BackpressureStrategy;
  readonly retry: Readonly<RetryOptions>;
  /** `fallbackToSequential` folded in; `'none'` when unset. */
  readonly isolateFailures: 'bisect' | 'sequential' | 'none';
  /** The disk log's settings; undefined without one. */
  readonly disk: ResolvedSluiceDisk<T> | undefined;
};

const ISOLATION_MODES = ['bisect', 'sequential'];
const RANGE_NAMES = new Set(['min', 'max']);

/**
 * Validates `options` and merges them over the defaults. Throws a coded
 * `TypeError`/`RangeError` naming the first bad option; never clamps.
 *
 * @param fixedStrategy the strategy a subclass implements; `options.strategy` must agree with it.
 * @param className for the message when it does not.
 */
export function resolveConfig<T>(
  options: BackpressureOptions<T> | undefined,
  fixedStrategy?: BackpressureStrategy,
  className?: string,
): ResolvedConfig<T> {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalidArgType('The "config" argument', 'an object', options);
  checkKnown(options, OPTION_NAMES, 'The option');
  if ((options as { objectMode?: unknown }).objectMode !== undefined) {
    const { objectMode } = options as { objectMode?: unknown };
    if (objectMode !== true) {
      throw invalidArgValue(
        'The option "objectMode"',
        'must be true or left out (a sluice is always in object mode)',
        objectMode,
      );
    }
  }
  if (options.retry !== undefined) {
    if (options.retry === null || typeof options.retry !== 'object') {
      throw invalidArgType('The option "retry"', 'an object', options.retry);
    }
    checkKnown(options.retry, RETRY_NAMES, 'The option "retry.');
  }

  const pick = <K extends keyof BackpressureConfig>(key: K): BackpressureConfig[K] =>
    (options[key] === undefined ? DEFAULT_CONFIG[key] : options[key]) as BackpressureConfig[K];

  const config = {
    maxBufferSize: integer('maxBufferSize', pick('maxBufferSize'), 1),
    highWatermark: fraction('highWatermark', pick('highWatermark'), false, true),
    // 0 would make 'normal' unreachable: utilization is never below 0, so 'drain' could never fire.
    lowWatermark: fraction('lowWatermark', pick('lowWatermark'), false, false),
    strategy: pick('strategy'),
    sampleRate: integer('sampleRate', pick('sampleRate'), 1),
    maxBlockTimeMs: duration('maxBlockTimeMs', pick('maxBlockTimeMs'), true),
    ...batchSize(pick('batchSize')),
    minFlushIntervalMs: duration('minFlushIntervalMs', pick('minFlushIntervalMs'), false),
    maxFlushIntervalMs: duration('maxFlushIntervalMs', pick('maxFlushIntervalMs'), false),
    targetLatencyMs: positive('targetLatencyMs', pick('targetLatencyMs')),
    maxBufferBytes:
      pick('maxBufferBytes') === Infinity ? Infinity : integer('maxBufferBytes', pick('maxBufferBytes'), 1),
    sizeOf: fn('sizeOf', pick('sizeOf')),
    ...concurrency(pick('maxConcurrentFlushes')),
    flushTimeoutMs:
      pick('flushTimeoutMs') === Infinity ? Infinity : positive('flushTimeoutMs', pick('flushTimeoutMs'), MAX_TIMER_MS),
    retry: Object.freeze(resolveRetry(options.retry ?? {})),
    fallbackToSequential: bool('fallbackToSequential', pick('fallbackToSequential')),
    isolateFailures: isolation(options.isolateFailures, options.fallbackToSequential),
    onDeadLetter: pick('onDeadLetter') === undefined ? undefined : fn('onDeadLetter', pick('onDeadLetter')),
    signal: signal(pick('signal')),
    disk: options.disk === undefined ? undefined : resolveSluiceDisk<T>(options.disk),
  };

  if (typeof config.strategy !== 'string' || !STRATEGIES.has(config.strategy)) {
    throw invalidArgValue(
      'The option "strategy"',
      `must be one of ${[...STRATEGIES].map((s) => `'${s}'`).join(', ')}`,
      config.strategy,
    );
  }
  if (fixedStrategy !== undefined && options.strategy !== undefined && options.strategy !== fixedStrategy) {
    throw invalidArgValue(
      'The option "strategy"',
      `must be '${fixedStrategy}' for ${className ?? 'this class'} (or left out)`,
      options.strategy,
    );
  }
  if (fixedStrategy !== undefined) config.strategy = fixedStrategy;
  if (!(config.lowWatermark < config.highWatermark)) {
    throw outOfRange(
      'The option "lowWatermark"',
      `below "highWatermark" (${config.highWatermark})`,
      config.lowWatermark,
    );
  }
  if (!(config.minFlushIntervalMs <= config.maxFlushIntervalMs)) {
    throw outOfRange(
      'The option "minFlushIntervalMs"',
      `<= "maxFlushIntervalMs" (${config.maxFlushIntervalMs})`,
      config.minFlushIntervalMs,
    );
  }
  const atMostBuffer = (name: string, value: number): void => {
    if (!(value <= config.maxBufferSize)) {
      throw outOfRange(label(name), `<= "maxBufferSize" (${config.maxBufferSize})`, value);
    }
  };
  if (config.batchBounds === undefined) atMostBuffer('batchSize', config.batchSize);
  else atMostBuffer('batchSize.max', config.batchBounds.max);
  // A flush holds at least one item: more slots than the buffer holds items could never all be busy.
  if (config.concurrencyBounds !== undefined) atMostBuffer('maxConcurrentFlushes.max', config.concurrencyBounds.max);
  return Object.freeze(config) as ResolvedConfig<T>;
}

function resolveRetry(retry: Partial<RetryOptions>): RetryOptions {
  const defaults = DEFAULT_CONFIG.retry;
  const resolved = {
    maxRetries: integer('retry.maxRetries', retry.maxRetries ?? defaults.maxRetries, 0),
    initialDelayMs: duration('retry.initialDelayMs', retry.initialDelayMs ?? defaults.initialDelayMs, false),
    maxDelayMs: duration('retry.maxDelayMs', retry.maxDelayMs ?? defaults.maxDelayMs, false),
  };
  if (!(resolved.initialDelayMs <= resolved.maxDelayMs)) {
    throw outOfRange(
      'The option "retry.initialDelayMs"',
      `<= "retry.maxDelayMs" (${resolved.maxDelayMs})`,
      resolved.initialDelayMs,
    );
  }
  return resolved;
}

function checkKnown(options: object, known: Set<string>, prefix: string): void {
  for (const key of Object.keys(options)) {
    if (known.has(key)) continue;
    const close = [...known].find((name) => name.toLowerCase() === key.toLowerCase());
    const nodeHint = known === OPTION_NAMES && Object.hasOwn(NODE_HINTS, key) ? NODE_HINTS[key] : undefined;
    // Node's own option names first: "highWaterMark" is not a misspelt "highWatermark".
    const hint = nodeHint !== undefined ? ` (${nodeHint})` : close === undefined ? '' : ` (did you mean "${close}"?)`;
    const label = prefix.endsWith('.') ? `${prefix}${key}"` : `${prefix} "${key}"`;
    throw invalidArgValue(label, `is not a sluice option${hint}`, (options as Record<string, unknown>)[key]);
  }
}

function label(name: string): string {
  return `The option "${name}"`;
}

function number(name: string, value: unknown): number {
  if (typeof value !== 'number') throw invalidArgType(label(name), 'of type number', value);
  return value;
}

function integer(name: string, value: unknown, min: number): number {
  const n = number(name, value);
  if (!Number.isSafeInteger(n) || !(n >= min)) throw outOfRange(label(name), `an integer >= ${min}`, n);
  return n;
}

function fraction(name: string, value: unknown, includeZero: boolean, includeOne: boolean): number {
  const n = number(name, value);
  const low = includeZero ? n >= 0 : n > 0;
  const high = includeOne ? n <= 1 : n < 1;
  if (!(low && high))
    throw outOfRange(label(name), `${includeZero ? '>= 0' : '> 0'} and ${includeOne ? '<= 1' : '< 1'}`, n);
  return n;
}

function duration(name: string, value: unknown, allowInfinity: boolean): number {
  const n = number(name, value);
  if (allowInfinity && n === Infinity) return n;
  if (!(n >= 0 && n <= MAX_TIMER_MS)) {
    throw outOfRange(
      label(name),
      `a number of milliseconds from 0 to ${MAX_TIMER_MS}${allowInfinity ? ', or Infinity' : ''}`,
      n,
    );
  }
  return n;
}

function positive(name: string, value: unknown, max = Number.MAX_VALUE): number {
  const n = number(name, value);
  if (!(n > 0 && n <= max))
    throw outOfRange(label(name), `a number > 0${max === Number.MAX_VALUE ? '' : ` and <= ${max}`}`, n);
  return n;
}

function bool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidArgType(label(name), 'of type boolean', value);
  return value;
}

/** A count: a number fixes it; `{ min, max }` (integers >= 1, min <= max) lets it adapt between the two. */
function countOrRange(name: string, value: unknown): number | { readonly min: number; readonly max: number } {
  if (typeof value === 'number') return integer(name, value, 1);
  // An array is an object too, and would be refused for its keys ("batchSize.0"): say what is wanted instead.
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgType(label(name), 'a number or an object { min, max }', value);
  }
  checkKnown(value, RANGE_NAMES, `The option "${name}.`);
  const { min, max } = value as Partial<BatchSizeRange>;
  const bounds = { min: integer(`${name}.min`, min, 1), max: integer(`${name}.max`, max, 1) };
  if (!(bounds.min <= bounds.max)) {
    throw outOfRange(label(`${name}.min`), `<= "${name}.max" (${bounds.max})`, bounds.min);
  }
  return Object.freeze(bounds);
}

/** A number fixes the batch size; `{ min, max }` makes it adaptive, starting at `min`. */
function batchSize(value: unknown): { batchSize: number; batchBounds: Readonly<BatchSizeRange> | undefined } {
  const size = countOrRange('batchSize', value);
  return typeof size === 'number'
    ? { batchSize: size, batchBounds: undefined }
    : { batchSize: size.min, batchBounds: size };
}

/** A number fixes the flushes that run at once; `{ min, max }` makes it adaptive, starting at `min`. */
function concurrency(value: unknown): {
  maxConcurrentFlushes: number;
  concurrencyBounds: Readonly<ConcurrencyRange> | undefined;
} {
  const slots = countOrRange('maxConcurrentFlushes', value);
  return typeof slots === 'number'
    ? { maxConcurrentFlushes: slots, concurrencyBounds: undefined }
    : { maxConcurrentFlushes: slots.max, concurrencyBounds: slots };
}

function isolation(mode: unknown, fallbackToSequential: unknown): 'bisect' | 'sequential' | 'none' {
  if (mode === undefined) return fallbackToSequential === true ? 'sequential' : 'none';
  if (typeof mode !== 'string' || !ISOLATION_MODES.includes(mode)) {
    throw invalidArgValue('The option "isolateFailures"', "must be 'bisect' or 'sequential'", mode);
  }
  if (fallbackToSequential === true && mode !== 'sequential') {
    throw invalidArgValue(
      'The option "isolateFailures"',
      `conflicts with "fallbackToSequential: true" (an alias of 'sequential'); give one of them`,
      mode,
    );
  }
  return mode as 'bisect' | 'sequential';
}

function fn<F>(name: string, value: F): F {
  if (typeof value !== 'function') throw invalidArgType(label(name), 'a function', value);
  return value;
}

function signal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw invalidArgType(label('signal'), 'an AbortSignal', value);
  return value;
}
