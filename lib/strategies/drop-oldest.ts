import { BackpressureWritable } from '../backpressure-writable';
import { DropOldestPolicy } from '../policies';
import type { BackpressureOptions, FlushFunction } from '../types';

/**
 * The `drop_oldest` strategy: never pauses; when full, evicts the oldest queued item (never one in flight). Keeps the newest data.
 *
 * @example
 * ```ts
 * const sink = new DropOldestWritable<Row>(async (rows) => { await insert(rows); }, { maxBufferSize: 5000 });
 * ```
 */
export class DropOldestWritable<T> extends BackpressureWritable<T> {
  /**
   * @param flush delivers one batch; see {@link FlushFunction}.
   * @param config options, validated at once; `strategy` may be left out.
   */
  constructor(flush: FlushFunction<T>, config?: BackpressureOptions<T>) {
    super(flush, config, new DropOldestPolicy<T>());
  }
}
