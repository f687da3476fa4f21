import { resolveConfig } from './config';
import { optionsOf } from './sink';
import { BlockingWritable } from './strategies/blocking';
import { DropNewestWritable } from './strategies/drop-newest';
import { DropOldestWritable } from './strategies/drop-oldest';
import { SamplingWritable } from './strategies/sampling';
import { BackpressureStrategy } from './types';
import type { BackpressureWritable } from './backpressure-writable';
import type { BackpressureWritableOptions } from './sink';
import type { BackpressureOptions, FlushFunction } from './types';

/** A strategy class, constructed with either form's arguments (each class checks them). */
type StrategyClass = new <T>(
  hook: FlushFunction<T> | BackpressureWritableOptions<T> | undefined,
  config?: BackpressureOptions<T>,
) => BackpressureWritable<T>;

const CLASSES: Readonly<Record<BackpressureStrategy, StrategyClass>> = {
  [BackpressureStrategy.BLOCK]: BlockingWritable as StrategyClass,
  [BackpressureStrategy.DROP_OLDEST]: DropOldestWritable as StrategyClass,
  [BackpressureStrategy.DROP_NEWEST]: DropNewestWritable as StrategyClass,
  [BackpressureStrategy.SAMPLE]: SamplingWritable as StrategyClass,
};

/**
 * The strategy stream named by `strategy` (default `drop_oldest`), with the same delivery hooks as
 * the classes: a flush function first, or the options with `flush` or `writev` among them.
 *
 * @example
 * ```ts
 * const sink = createBackpressureStream(flushToDb, { strategy: BackpressureStrategy.BLOCK });
 * const other = createBackpressureStream<Row>({ writev: (chunks, callback) => send(chunks, callback), strategy: 'block' });
 * ```
 */
export function createBackpressureStream<T>(options: BackpressureWritableOptions<T>): BackpressureWritable<T>;
export function createBackpressureStream<T>(
  flush: FlushFunction<T>,
  config?: BackpressureOptions<T>,
): BackpressureWritable<T>;
export function createBackpressureStream<T>(
  hook: FlushFunction<T> | BackpressureWritableOptions<T>,
  config?: BackpressureOptions<T>,
): BackpressureWritable<T> {
  const Class = CLASSES[resolveConfig(optionsOf(hook, config)).strategy];
  return new Class(hook, config);
}
