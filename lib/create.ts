import { resolveConfig } from './config';
import { BlockingWritable } from './strategies/blocking';
import { DropNewestWritable } from './strategies/drop-newest';
import { DropOldestWritable } from './strategies/drop-oldest';
import { SamplingWritable } from './strategies/sampling';
import { BackpressureStrategy } from './types';
import type { BackpressureWritable } from './backpressure-writable';
import type { BackpressureOptions, FlushFunction } from './types';

/**
 * The strategy stream named by `config.strategy` (default `drop_oldest`).
 *
 * @example
 * ```ts
 * const sink = createBackpressureStream(flushToDb, { strategy: BackpressureStrategy.BLOCK });
 * ```
 */
export function createBackpressureStream<T>(
  flush: FlushFunction<T>,
  config?: BackpressureOptions<T>,
): BackpressureWritable<T> {
  switch (resolveConfig(config).strategy) {
    case BackpressureStrategy.BLOCK:
      return new BlockingWritable(flush, config);
    case BackpressureStrategy.DROP_OLDEST:
      return new DropOldestWritable(flush, config);
    case BackpressureStrategy.DROP_NEWEST:
      return new DropNewestWritable(flush, config);
    case BackpressureStrategy.SAMPLE:
      return new SamplingWritable(flush, config);
  }
}
