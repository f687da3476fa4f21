import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackpressureStrategy, BlockingWritable, createBackpressureStream } from '../lib';
import { watchWrites } from './support/test-sink';

/** A sink slower than the producer: each batch takes a few event-loop turns. */
function slowSink<T>(turns: number) {
  const delivered: T[] = [];
  const flush = async (items: T[]): Promise<void> => {
    for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const item of items) delivered.push(item);
  };
  return { delivered, flush };
}

function* ids(n: number): Generator<{ id: number }> {
  for (let id = 0; id < n; id++) yield { id };
}

describe('pipeline(Readable.from(...), block sluice)', () => {
  test('100k items through a slow sink: all delivered in order, held bounded, drain only below the low watermark', async () => {
    const N = 100_000;
    const maxBufferSize = 1000;
    const { delivered, flush } = slowSink<{ id: number }>(3);
    const stream = new BlockingWritable(flush, { maxBufferSize, batchSize: 100 });

    const writes = watchWrites(stream);
    const drainUtilization: number[] = [];
    stream.on('drain', () => drainUtilization.push(stream.getMetrics().bufferUtilization));

    await pipeline(Readable.from(ids(N)), stream);

    expect(delivered).toHaveLength(N);
    expect(delivered.every((item, i) => item.id === i)).toBe(true);
    expect(writes.falses).toBeGreaterThan(0);
    expect(drainUtilization.length).toBeGreaterThan(0);
    expect(drainUtilization.every((u) => u < 0.5)).toBe(true);
    expect(writes.maxHeld).toBeLessThanOrEqual(maxBufferSize);
    expect(stream.getMetrics()).toMatchObject({ eventsOffered: N, eventsFlushed: N, eventsDropped: 0, bufferSize: 0 });
  });

  test.each([BackpressureStrategy.DROP_OLDEST, BackpressureStrategy.DROP_NEWEST, BackpressureStrategy.SAMPLE])(
    '%s never pauses the producer and accounts for every item',
    async (strategy) => {
      const N = 20_000;
      const { delivered, flush } = slowSink<{ id: number }>(5);
      const stream = createBackpressureStream(flush, { strategy, maxBufferSize: 500, batchSize: 50 });
      const writes = watchWrites(stream);
      let dropped = 0;
      stream.on('drop', () => dropped++);
      await pipeline(Readable.from(ids(N)), stream);
      expect(writes.falses).toBe(0);
      expect(writes.maxHeld).toBeLessThanOrEqual(500);
      const m = stream.getMetrics();
      expect(delivered).toHaveLength(m.eventsFlushed);
      expect(m.eventsOffered).toBe(N);
      expect(m.eventsDropped).toBe(dropped);
      expect(m.eventsFlushed + m.eventsDropped + m.deadLettered).toBe(N);
      // delivered items keep their write order
      expect(delivered.every((item, i) => i === 0 || item.id > (delivered[i - 1] as { id: number }).id)).toBe(true);
    },
  );

  test('a failing sink rejects the pipeline with a BackpressureError carrying the undelivered items', async () => {
    const stream = new BlockingWritable<{ id: number }>(
      async (items) => {
        if (items[0]?.id === 200) throw new Error('table dropped');
      },
      { batchSize: 100, retry: { maxRetries: 0 } },
    );
    const error = await pipeline(Readable.from(ids(1000)), stream).then(
      () => undefined,
      (e: unknown) => e as { code: string; items: { id: number }[] },
    );
    expect(error).toMatchObject({ code: 'ERR_FLUSH_FAILED' });
    expect(error?.items[0]).toEqual({ id: 200 });
    const m = stream.getMetrics();
    expect(m.eventsFlushed).toBe(200);
    expect(m.eventsOffered).toBe(m.eventsFlushed + m.deadLettered + m.eventsDropped + m.bufferSize + m.waitingWrites);
  });
});
