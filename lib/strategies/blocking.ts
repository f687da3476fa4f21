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
  /**
   * @param flush delivers one batch; see {@link FlushFunction}.
   * @param config options, validated at once; `strategy` may be left out.
   */
  constructor(flush: FlushFunction<T>, config?: BackpressureOptions<T>) {
    super(flush, config, new BlockPolicy<T>());
  }
}
