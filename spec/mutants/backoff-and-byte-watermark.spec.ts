import { BackpressureState, BlockingWritable } from '../../lib';
import { TestSink, settle, useStreamFakeTimers } from '../support/test-sink';

/**
 * Two mutants of the engine that survived the whole suite (issue 9, defect 16):
 * a retry backoff without jitter, and `>` instead of `>=` where utilization by
 * bytes meets `lowWatermark`. Each test below fails against its mutant.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

describe('retry backoff: a random fraction of the doubling bound (full jitter)', () => {
  /** When (fake ms after the first write) each sink call happened, with Math.random fixed at `random`. */
  async function callTimes(random: number): Promise<number[]> {
    const spy = jest.spyOn(Math, 'random').mockReturnValue(random);
    try {
      const start = jest.now();
      const times: number[] = [];
      let calls = 0;
      const stream = new BlockingWritable<number>(
        () => {
          times.push(jest.now() - start);
          // Three failures, then delivered: attempts 1-3 each wait for a backoff.
          return ++calls <= 3 ? Promise.reject(new Error('sink down')) : Promise.resolve();
        },
        { batchSize: 1, retry: { maxRetries: 3, initialDelayMs: 100, maxDelayMs: 300 } },
      );
      stream.on('error', () => {});
      stream.write(1);
      for (let ms = 0; ms < 700; ms++) {
        await settle(1);
        await jest.advanceTimersByTimeAsync(1);
      }
      stream.destroy();
      await settle();
      return times;
    } finally {
      spy.mockRestore();
    }
  }

  test('the retry after attempt n waits random × min(maxDelayMs, initialDelayMs × 2^(n-1))', async () => {
    // bounds 100, 200, then 400 capped at 300
    const quarter = await callTimes(0.25);
    const half = await callTimes(0.5);
    expect(quarter).toEqual([0, 25, 25 + 50, 25 + 50 + 75]);
    expect(half).toEqual([0, 50, 50 + 100, 50 + 100 + 150]);
    // two random values, two different schedules: the delay is not the bound itself
    expect(quarter).not.toEqual(half);
  });
});

describe('byte bound: utilization exactly at lowWatermark', () => {
  interface Item {
    id: string;
    bytes: number;
  }
  const options = {
    maxBufferSize: 100, // by count the buffer stays below 3 %: the bytes decide the level
    maxBufferBytes: 10,
    sizeOf: (item: Item) => item.bytes,
    lowWatermark: 0.5,
    highWatermark: 0.8,
    batchSize: 1,
  };

  test("5 of 10 bytes held reads 'elevated', not 'normal'", async () => {
    const sink = new TestSink<Item>().otherwise({ kind: 'manual' });
    const stream = new BlockingWritable<Item>(sink.flush, options);
    stream.write({ id: 'a', bytes: 4 });
    expect(stream.state).toBe(BackpressureState.NORMAL);
    stream.write({ id: 'b', bytes: 1 });
    expect(stream.getMetrics()).toMatchObject({ bufferBytes: 5, bufferUtilization: 0.5 });
    expect(stream.state).toBe(BackpressureState.ELEVATED);
    stream.on('deadletter', () => {}); // the two held items go there on destroy()
    stream.destroy();
    await settle();
  });

  test("falling back to exactly lowWatermark by bytes is still 'elevated': no 'drain' until below it", async () => {
    const sink = new TestSink<Item>().otherwise({ kind: 'manual' });
    const stream = new BlockingWritable<Item>(sink.flush, options);
    let drains = 0;
    stream.on('drain', () => drains++);
    expect(stream.write({ id: 'a', bytes: 3 })).toBe(true);
    expect(stream.write({ id: 'b', bytes: 5 })).toBe(false); // 8 of 10 bytes: critical
    expect(stream.state).toBe(BackpressureState.CRITICAL);
    await settle();
    expect(sink.calls).toEqual([[{ id: 'a', bytes: 3 }]]);

    sink.resolveNext(); // 'a' delivered: 5 of 10 bytes held, exactly lowWatermark
    await settle();
    expect(stream.getMetrics()).toMatchObject({ bufferBytes: 5, bufferUtilization: 0.5 });
    expect(stream.state).toBe(BackpressureState.ELEVATED);
    expect(drains).toBe(0);

    expect(sink.calls).toHaveLength(2);
    sink.resolveNext(); // 'b' delivered: empty, below lowWatermark
    await settle();
    expect(stream.state).toBe(BackpressureState.NORMAL);
    expect(drains).toBe(1);
    stream.destroy();
    await settle();
  });
});
