import { BackpressureWritable } from '../backpressure-writable';
import { DropOldestPolicy } from '../policies';
import type { BackpressureWritableOptions } from '../sink';
import type { BackpressureOptions, FlushFunction } from '../types';

/**
 * The `drop_oldest` strategy: never pauses; when full, evicts the oldest queued item (never one in flight). Keeps the newest data.
 *
 * @example
 * ```ts
 * const sink = new DropOldestWritable<Row>(async (rows) => { await insert(rows); }, { maxBufferSize: 5000 });
 * // or Node's way: a subclass with _writev(chunks, callback), or the writev option
 * const other = new DropOldestWritable<Row>({ writev: (chunks, cb) => void insert(chunks.map((c) => c.chunk)).then(() => cb(), cb), maxBufferSize: 5000 });
 * ```
 */
export class DropOldestWritable<T> extends BackpressureWritable<T> {
  /**
   * @param options options, validated at once, with the delivery hook (`flush` or `writev`), or
   *   without one in a subclass that has a `_writev()` method; `strategy` may be left out.
   */
  constructor(options?: BackpressureWritableOptions<T>);
  /**
   * @param flush delivers one batch; see {@link FlushFunction}.
   * @param config options, validated at once; `strategy` may be left out.
   */
  constructor(flush: FlushFunction<T>, config?: BackpressureOptions<T>);
  constructor(hook?: FlushFunction<T> | BackpressureWritableOptions<T>, config?: BackpressureOptions<T>) {
    super(hook, config, new DropOldestPolicy<T>());
  }
}
