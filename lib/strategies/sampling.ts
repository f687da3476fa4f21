import { BackpressureWritable } from '../backpressure-writable';
import { SamplePolicy } from '../policies';
import type { BackpressureOptions, FlushFunction } from '../types';

/**
 * The `sample` strategy: never pauses; outside `normal`, keeps one of every `sampleRate` items offered, and refuses items when full.
 *
 * @example
 * ```ts
 * const sink = new SamplingWritable<Row>(async (rows) => { await insert(rows); }, { maxBufferSize: 5000 });
 * ```
 */
export class SamplingWritable<T> extends BackpressureWritable<T> {
  /**
   * @param flush delivers one batch; see {@link FlushFunction}.
   * @param config options, validated at once; `strategy` may be left out.
   */
  constructor(flush: FlushFunction<T>, config?: BackpressureOptions<T>) {
    super(flush, config, new SamplePolicy<T>());
  }
}
