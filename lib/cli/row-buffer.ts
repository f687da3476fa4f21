import type { BackpressureOptions } from '../index';
import type { IngestOptions } from './args';
import type { Row } from './parse';

/** The buffer of `sluice ingest`'s sluice, the same with or without `--resumable`: strategy and bounds. */
export function rowBuffer(options: IngestOptions): BackpressureOptions<Row> {
  return {
    strategy: options.strategy,
    maxBufferSize: options.maxBuffer,
    batchSize: options.batchSize,
    ...(options.maxBufferBytes === undefined
      ? {}
      : // The input text stands for the row's size: O(1), and close to what the row costs in memory.
        { maxBufferBytes: options.maxBufferBytes, sizeOf: (row: Row) => row.raw.length * 2 + 64 }),
    // This producer honours write() === false, so a held write only waits on a slow database: never drop it for that.
    maxBlockTimeMs: Infinity,
  };
}
