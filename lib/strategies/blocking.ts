import { BackpressureWritable } from '../backpressure-writable';
import { BlockPolicy } from '../policies';
import type { BackpressureOptions, FlushFunction } from '../types';

/**
 * The `block` strategy: pauses the producer (`write()` returns `false` from `critical` on, writes wait at `blocked`); nothing is dropped from a producer that honours `'drain'`.
 *
 * @example
 * ```ts
 * const sink = new BlockingWritable<Row>(async (rows) => { await insert(rows); }, { maxBufferSize: 5000 });
 * ```
 */
export class BlockingWritable<T> extends BackpressureWritable<T> {
  constructor(flush: FlushFunction<T>, config?: BackpressureOptions<T>) {
    super(flush, config, new BlockPolicy<T>());
  }
}
