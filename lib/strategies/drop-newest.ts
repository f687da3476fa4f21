import { BackpressureWritable } from '../backpressure-writable';
import { DropNewestPolicy } from '../policies';
import type { BackpressureOptions, FlushFunction } from '../types';

/**
 * The `drop_newest` strategy: never pauses; when full, refuses the incoming item. Keeps the oldest data.
 *
 * @example
 * ```ts
 * const sink = new DropNewestWritable<Row>(async (rows) => { await insert(rows); }, { maxBufferSize: 5000 });
 * ```
 */
export class DropNewestWritable<T> extends BackpressureWritable<T> {
  /**
   * @param flush delivers one batch; see {@link FlushFunction}.
   * @param config options, validated at once; `strategy` may be left out.
   */
  constructor(flush: FlushFunction<T>, config?: BackpressureOptions<T>) {
    super(flush, config, new DropNewestPolicy<T>());
  }
}
