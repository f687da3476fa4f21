import { BackpressureError, BackpressureState, BlockingWritable, DropNewestWritable } from '../../lib';
import type { BackpressureWritable } from '../../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from '../support/test-sink';

/**
 * Tests written for mutants that survived a Stryker run (docs/quality.md):
 * exact thresholds, exact metrics and the error each failure is reported with.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

function deadLetters<T>(stream: BackpressureWritable<T>): { items: T[]; error: BackpressureError<T> }[] {
  const seen: { items: T[]; error: BackpressureError<T> }[] = [];
  stream.on('deadletter', (items: T[], error: BackpressureError<T>) => seen.push({ items: [...items], error }));
  return seen;
}

describe('state thresholds are the smallest held count whose utilization reaches the watermark', () => {
  test.each([
    // maxBufferSize, lowWatermark, highWatermark, first elevated count, first critical count
    [10, 0.5, 0.8, 5, 8],
    [3, 0.25, 0.7, 1, 3],
    [7, 0.3, 0.5, 3, 4],
    [1, 0.1, 1, 1, 1],
    [100, 0.29, 0.57, 29, 57], // 0.29 * 100 and 0.57 * 100 come out just below 29 and 57
    [100, 0.07, 0.14, 7, 14], // 0.07 * 100 and 0.14 * 100 come out just above 7 and 14
  ])(
    'maxBufferSize %i, watermarks %f/%f: elevated from %i, critical from %i',
    async (maxBufferSize, lowWatermark, highWatermark, elevatedAt, criticalAt) => {
      const sink = new TestSink<number>({ kind: 'hang' });
      const stream = new DropNewestWritable(sink.flush, {
        maxBufferSize,
        batchSize: maxBufferSize,
        lowWatermark,
        highWatermark,
        minFlushIntervalMs: 60_000,
        maxFlushIntervalMs: 60_000,
      });
      expect(stream.writableHighWaterMark).toBe(criticalAt);
      const states: BackpressureState[] = [];
      for (let held = 1; held <= maxBufferSize; held++) {
        stream.write(held);
        states.push(stream.state);
      }
      const expected = states.map((_, i) => {
        const held = i + 1;
        if (held >= maxBufferSize) return BackpressureState.BLOCKED;
        if (held >= criticalAt) return BackpressureState.CRITICAL;
        return held >= elevatedAt ? BackpressureState.ELEVATED : BackpressureState.NORMAL;
      });
      expect(states).toEqual(expected);
      stream.destroy();
      stream.on('error', () => {});
      await settle();
    },
  );
});

describe('flush latency and the adaptive interval', () => {
  async function intervalAfter(
    latencyMs: number,
    targetLatencyMs: number,
  ): Promise<{ interval: number; latency: number }> {
    const sink = new TestSink<number>({ kind: 'delay', ms: latencyMs });
    const stream = new BlockingWritable(sink.flush, {
      batchSize: 1,
      targetLatencyMs,
      minFlushIntervalMs: 100,
      maxFlushIntervalMs: 10_000,
    });
    stream.write(1);
    await advance(latencyMs + 10, 1);
    const m = stream.getMetrics();
    stream.destroy();
    await settle();
    return { interval: m.currentFlushIntervalMs, latency: m.lastFlushLatencyMs };
  }

  test('the latency is measured from the call to its settlement', async () => {
    expect((await intervalAfter(30, 500)).latency).toBe(30);
  });

  test('exactly 1.5 x target does not grow the interval; above it does', async () => {
    expect((await intervalAfter(150, 100)).interval).toBe(100);
    expect((await intervalAfter(151, 100)).interval).toBe(150);
    expect((await intervalAfter(100, 100)).interval).toBe(100);
  });

  test('exactly 0.5 x target does not shrink the interval; below it does', async () => {
    async function after(latencies: number[]): Promise<number> {
      const sink = new TestSink<number>();
      sink.script(...latencies.map((ms) => ({ kind: 'delay' as const, ms })));
      const stream = new BlockingWritable(sink.flush, {
        batchSize: 1,
        targetLatencyMs: 100,
        minFlushIntervalMs: 10,
        maxFlushIntervalMs: 10_000,
      });
      for (let i = 0; i < latencies.length; i++) stream.write(i);
      await advance(2_000, 5);
      const interval = stream.getMetrics().currentFlushIntervalMs;
      stream.destroy();
      await settle();
      return interval;
    }
    // 200 ms (> 150) grows 10 to 15; then 50 ms (= 0.5 x target) keeps it, 49 ms shrinks it to 12.
    expect(await after([200])).toBe(15);
    expect(await after([200, 50])).toBe(15);
    expect(await after([200, 49])).toBe(12);
  });
});

describe('batches and averageBatchSize', () => {
  test('count the batches cut and their mean size', async () => {
    const sink = new TestSink<number>();
    const stream = new BlockingWritable(sink.flush, { batchSize: 3, minFlushIntervalMs: 10, maxFlushIntervalMs: 10 });
    expect(stream.getMetrics().averageBatchSize).toBe(0);
    for (let i = 0; i < 7; i++) stream.write(i);
    await advance(50, 5);
    expect(sink.calls).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    expect(stream.getMetrics()).toMatchObject({ batches: 3, averageBatchSize: 7 / 3 });
    stream.destroy();
    await settle();
  });
});

describe('what a failed flush is reported with', () => {
  async function deadLetterOf(result: unknown): Promise<{ items: number[]; error: BackpressureError<number> }[]> {
    const sink = new TestSink<number>({ kind: 'result', result });
    const stream = new BlockingWritable(sink.flush, { batchSize: 3, retry: { maxRetries: 0 } });
    const seen = deadLetters(stream);
    for (const item of [1, 1, 2]) stream.write(item);
    await advance(10, 1);
    stream.destroy();
    await settle();
    return seen;
  }

  test('null means delivered', async () => {
    expect(await deadLetterOf(null)).toEqual([]);
  });

  test('one sink error is the cause itself', async () => {
    const boom = new Error('row 2 refused');
    const [dead] = await deadLetterOf({ success: 2, failed: 1, errors: [boom], failedItems: [2] });
    expect(dead?.items).toEqual([2]);
    expect(dead?.error.code).toBe('ERR_FLUSH_FAILED');
    expect(dead?.error.reason).toBe('retries_exhausted');
    expect(dead?.error.cause).toBe(boom);
  });

  test('several sink errors become an AggregateError', async () => {
    const errors = [new Error('a'), new Error('b')];
    const [dead] = await deadLetterOf({ success: 1, failed: 2, errors, failedItems: [1, 2] });
    expect(dead?.error.cause).toBeInstanceOf(AggregateError);
    expect((dead?.error.cause as AggregateError).errors).toEqual(errors);
    expect((dead?.error.cause as AggregateError).message).toBe('the sink reported 2 errors');
  });

  test('no sink error: a plain Error that counts the failed items', async () => {
    const [dead] = await deadLetterOf({ success: 2, failed: 1, errors: [] });
    expect(dead?.items).toEqual([1, 1, 2]); // without failedItems the whole batch failed
    expect(dead?.error.cause).toEqual(new Error('the sink reported 1 failed item(s)'));
  });

  test('failedItems match equal items one for one', async () => {
    const [dead] = await deadLetterOf({ success: 2, failed: 1, errors: [], failedItems: [1] });
    expect(dead?.items).toEqual([1]);
    expect(dead?.error.code).toBe('ERR_FLUSH_FAILED');
  });

  test('a timed-out flush is reported as a timeout, not a failure', async () => {
    const sink = new TestSink<number>({ kind: 'hang' });
    const stream = new BlockingWritable(sink.flush, { batchSize: 1, flushTimeoutMs: 20, retry: { maxRetries: 0 } });
    const seen = deadLetters(stream);
    stream.write(1);
    await advance(40, 5);
    expect(seen.map((d) => [d.items, d.error.code, d.error.reason])).toEqual([
      [[1], 'ERR_FLUSH_TIMEOUT', 'retries_exhausted'],
    ]);
    stream.destroy();
    await settle();
  });
});

describe('dead letters on the way out', () => {
  test('a shutdown with nothing left calls no dead-letter handler', async () => {
    const onDeadLetter = jest.fn();
    const sink = new TestSink<number>();
    const stream = new BlockingWritable(sink.flush, { batchSize: 1, onDeadLetter });
    stream.write(1);
    await settle();
    await expect(stream.shutdown({ timeoutMs: 0 })).resolves.toEqual({ undelivered: [] });
    expect(onDeadLetter).not.toHaveBeenCalled();
  });

  test('an async handler that rejects on destroy() becomes a coded warning', async () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const sink = new TestSink<number>({ kind: 'hang' });
      const stream = new BlockingWritable(sink.flush, {
        batchSize: 1,
        onDeadLetter: () => Promise.reject(new Error('disk full')),
      });
      stream.write(1);
      await settle();
      stream.destroy();
      await settle();
      const codes = warn.mock.calls.map(([, options]) => options?.code);
      expect(codes).toContain('SLUICE_DEAD_LETTER_FAILED');
    } finally {
      warn.mockRestore();
    }
  });

  test('the unheard-drops warning says how many and why', async () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const sink = new TestSink<number>({ kind: 'hang' });
      const stream = new DropNewestWritable(sink.flush, { maxBufferSize: 2, batchSize: 2 });
      for (let i = 0; i < 5; i++) stream.write(i);
      stream.on('error', () => {});
      stream.destroy();
      await settle();
      const drops = warn.mock.calls.filter(([, options]) => options?.code === 'SLUICE_ITEMS_DROPPED');
      expect(drops).toHaveLength(1);
      expect(drops[0]?.[0]).toMatch(/^sluice dropped 3 item\(s\) .*\(rejected: 3\)/);
      expect(drops[0]?.[1]).toMatchObject({ type: 'SluiceDropWarning' });
    } finally {
      warn.mockRestore();
    }
  });
});
