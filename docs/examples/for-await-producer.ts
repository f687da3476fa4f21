/**
 * A hand-written producer loop (`for await` over a cursor, a queue, a paginated
 * API) that respects backpressure: stop on `write() === false`, resume on
 * `'drain'`. With the `block` strategy that is all it takes to lose nothing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
// #region for-await
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { BlockingWritable, type BackpressureWritable } from '../../lib';

/** Writes every item of `source` into `sink`, pausing while the sink says so. Returns how often it paused. */
export async function writeAll<T>(source: AsyncIterable<T>, sink: BackpressureWritable<T>): Promise<number> {
  let pauses = 0;
  for await (const item of source) {
    if (!sink.write(item)) {
      pauses++;
      await once(sink, 'drain'); // fires below lowWatermark; rejects if the stream errors
    }
  }
  sink.end();
  await finished(sink); // after the last flush has resolved
  return pauses;
}
// #endregion for-await

async function* pages(total: number, pageSize: number): AsyncGenerator<{ id: number }> {
  for (let id = 0; id < total; id++) {
    if (id % pageSize === 0) await sleep(0); // fetching the next page
    yield { id };
  }
}

export async function main(): Promise<{ written: number; delivered: number; pauses: number; maxHeld: number }> {
  let delivered = 0;
  let maxHeld = 0;
  const sink = new BlockingWritable<{ id: number }>(
    async (batch) => {
      maxHeld = Math.max(maxHeld, sink.getMetrics().bufferSize);
      await sleep(2); // slower than the producer
      delivered += batch.length;
    },
    { maxBufferSize: 500, batchSize: 100 },
  );
  const pauses = await writeAll(pages(3_000, 200), sink);
  return { written: sink.getMetrics().eventsOffered, delivered, pauses, maxHeld };
}

if (require.main === module) main().then(console.log, console.error);
