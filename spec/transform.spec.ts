import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackpressureStrategy, BackpressureTransform } from '../lib';
import { watchWrites } from './support/test-sink';

function collector<T>(perBatchTurns = 0) {
  const batches: T[][] = [];
  const writable = new Writable({
    objectMode: true,
    highWaterMark: 1,
    write(batch: T[], _encoding, callback) {
      batches.push(batch);
      let turns = perBatchTurns;
      const next = (): void => (turns-- > 0 ? void setImmediate(next) : callback());
      next();
    },
  });
  return { batches, writable };
}

describe('BackpressureTransform', () => {
  test('items in, batches of batchSize out, remainder on end', async () => {
    const { batches, writable } = collector<number>();
    await pipeline(Readable.from([1, 2, 3, 4, 5, 6, 7]), new BackpressureTransform<number>({ batchSize: 3 }), writable);
    expect(batches).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  test('a slow reader is a slow sink: block pauses the producer and loses nothing', async () => {
    const { batches, writable } = collector<number>(5);
    const transform = new BackpressureTransform<number>({
      strategy: BackpressureStrategy.BLOCK,
      maxBufferSize: 50,
      batchSize: 10,
    });
    const writes = watchWrites(transform);
    const N = 5000;
    await pipeline(Readable.from(Array.from({ length: N }, (_, i) => i)), transform, writable);
    expect(writes.falses).toBeGreaterThan(0);
    expect(writes.maxHeld).toBeLessThanOrEqual(50);
    expect(batches.flat()).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(transform.getMetrics()).toMatchObject({ eventsFlushed: N, eventsDropped: 0 });
  });

  test('drop_oldest under a slow reader keeps memory bounded and counts drops', async () => {
    const { batches, writable } = collector<number>(20);
    const transform = new BackpressureTransform<number>({
      strategy: BackpressureStrategy.DROP_OLDEST,
      maxBufferSize: 50,
      batchSize: 10,
    });
    let drops = 0;
    transform.on('drop', () => drops++);
    const N = 5000;
    await pipeline(Readable.from(Array.from({ length: N }, (_, i) => i)), transform, writable);
    const delivered = batches.flat();
    expect(drops).toBeGreaterThan(0);
    expect(delivered.length + drops).toBe(N);
    expect(delivered.at(-1)).toBe(N - 1); // the newest survives
  });

  test('with several flush slots, every batch waiting on a full readable side resumes', async () => {
    const transform = new BackpressureTransform<number>({
      maxBufferSize: 2,
      batchSize: 1,
      maxConcurrentFlushes: 2,
      strategy: 'block',
    });
    const out: number[] = [];
    transform.on('data', (batch: number[]) => out.push(...batch));
    transform.write(0);
    transform.write(1);
    transform.end();
    await new Promise((resolve) => transform.on('close', resolve));
    expect(out).toEqual([0, 1]);
    expect(transform.getMetrics()).toMatchObject({ bufferSize: 0, eventsFlushed: 2 });
  });
});
