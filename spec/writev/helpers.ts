import { BlockingWritable, DropNewestWritable, DropOldestWritable, SamplingWritable } from '../../lib';
import { TestSink } from '../support/test-sink';
import type {
  BackpressureMetrics,
  BackpressureWritable,
  BackpressureWritableOptions,
  WritevCallback,
  WritevChunks,
} from '../../lib';

/**
 * Shared pieces of the `_writev` specs: a subclass of each strategy class whose `_writev` hands
 * the batch to a {@link TestSink} (so every scripted behaviour of the flush-function specs works
 * through the Node-shaped hook too), and that keeps every `chunks` array it was given.
 */

/** A strategy class as a `_writev` subclass extends it: constructed from options alone. */
export type StrategyClass = new (options?: BackpressureWritableOptions<number>) => BackpressureWritable<number>;

export const STRATEGY_CLASSES: readonly { name: string; Base: StrategyClass }[] = [
  { name: 'BlockingWritable', Base: BlockingWritable },
  { name: 'DropOldestWritable', Base: DropOldestWritable },
  { name: 'DropNewestWritable', Base: DropNewestWritable },
  { name: 'SamplingWritable', Base: SamplingWritable },
];

/** A `_writev` sink over `sink`: every call's `chunks` array is kept as it was given. */
export interface WritevSink extends BackpressureWritable<number> {
  readonly chunkArrays: WritevChunks<number>[];
}

/** Extends `Base` with a `_writev` that passes its batch to `sink.flush` and calls back with its outcome. */
export function writevSubclass(
  Base: StrategyClass,
  sink: TestSink<number>,
): new (options?: BackpressureWritableOptions<number>) => WritevSink {
  return class extends Base {
    readonly chunkArrays: WritevChunks<number>[] = [];

    override _writev(chunks: WritevChunks<number>, callback: WritevCallback<number>): void {
      this.chunkArrays.push(chunks);
      // A synchronous throw of the sink (the 'throw' behaviour) is a synchronous throw of _writev.
      sink.flush(chunks.map((c) => c.chunk)).then((result) => callback(null, result ?? undefined), callback);
    }
  };
}

/** The counters that tell what happened to every item; equal for two streams that did the same. */
export function outcome(metrics: BackpressureMetrics): Partial<BackpressureMetrics> {
  const { eventsOffered, eventsFlushed, deadLettered, eventsDropped, bufferSize, retries, batches, inFlight } = metrics;
  return { eventsOffered, eventsFlushed, deadLettered, eventsDropped, bufferSize, retries, batches, inFlight };
}

/** offered = delivered + dead-lettered + dropped + held + waiting: nothing counted twice or lost. */
export function balanced(metrics: BackpressureMetrics): boolean {
  const { eventsOffered, eventsFlushed, deadLettered, eventsDropped, bufferSize, waitingWrites } = metrics;
  return eventsOffered === eventsFlushed + deadLettered + eventsDropped + bufferSize + waitingWrites;
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

export { TestSink };
