import { BlockingWritable } from '../../lib';
import { advance, useStreamFakeTimers } from '../support/test-sink';
import type { BackpressureOptions, FlushResult } from '../../lib';

/**
 * Failure isolation and partial failures (lib/engine/delivery.ts), call by call:
 * which items each call gets when the retries are spent and the failing items
 * are searched for, and how many bytes stay held after a partial failure.
 * Written for mutants that survived a Stryker run (docs/quality.md).
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

/** What every call reports, given its items: nothing (all delivered) or the items that failed. */
type Verdict = (items: number[], call?: number) => number[];

async function isolate(
  isolateFailures: 'bisect' | 'sequential' | undefined,
  verdict: Verdict,
  items: number[],
  options: BackpressureOptions<number> = {},
) {
  const calls: number[][] = [];
  const deadLetters: { items: number[]; reason: string | undefined }[] = [];
  const stream = new BlockingWritable<number>(
    (batch): FlushResult<number> | undefined => {
      calls.push([...batch]);
      const failedItems = verdict(batch, calls.length);
      if (failedItems.length === 0) return undefined;
      return { success: batch.length - failedItems.length, failed: failedItems.length, errors: [], failedItems };
    },
    {
      batchSize: items.length,
      isolateFailures,
      retry: { maxRetries: 0, initialDelayMs: 0, maxDelayMs: 0 },
      ...options,
    },
  );
  stream.on('deadletter', (dead: number[], error: { reason?: string }) =>
    deadLetters.push({ items: dead, reason: error.reason }),
  );
  for (const item of items) stream.write(item);
  await advance(100, 10);
  return { calls, deadLetters, metrics: stream.getMetrics() };
}

/** Item 3 fails in every call that carries it. */
const poison3: Verdict = (batch) => batch.filter((item) => item === 3);

describe('bisection: halves, left first, the larger half on the left', () => {
  test('one bad item among 5', async () => {
    const { calls, deadLetters, metrics } = await isolate('bisect', poison3, [0, 1, 2, 3, 4]);
    // The first call reports item 3 alone: with failedItems the failing part is already narrowed to 1 item.
    expect(calls).toEqual([[0, 1, 2, 3, 4]]);
    expect(deadLetters).toEqual([{ items: [3], reason: 'retries_exhausted' }]);
    expect(metrics).toMatchObject({ eventsFlushed: 4, deadLettered: 1, bufferSize: 0, inFlight: 0 });
  });

  test('a sink that cannot say which items failed: 5 items, item 3 bad', async () => {
    const { calls, deadLetters, metrics } = await isolate('bisect', wholeBatch(poison3), [0, 1, 2, 3, 4]);
    expect(calls).toEqual([[0, 1, 2, 3, 4], [0, 1, 2], [3, 4], [3], [4]]);
    expect(deadLetters).toEqual([{ items: [3], reason: 'retries_exhausted' }]);
    expect(metrics).toMatchObject({ eventsFlushed: 4, deadLettered: 1, bufferSize: 0 });
  });

  test('a sink that cannot say which failed: 6 items, items 1 and 4 bad', async () => {
    const bad = (batch: number[]) => batch.filter((item) => item === 1 || item === 4);
    const { calls, deadLetters } = await isolate('bisect', wholeBatch(bad), [0, 1, 2, 3, 4, 5]);
    expect(calls).toEqual([[0, 1, 2, 3, 4, 5], [0, 1, 2], [0, 1], [0], [1], [2], [3, 4, 5], [3, 4], [3], [4], [5]]);
    expect(deadLetters.map((d) => d.items)).toEqual([[1], [4]]);
  });

  test('a narrowed part of several items is bisected further; the delivered ones are not called again', async () => {
    // The first call reports 1, 3 and 4; later, only item 3 fails, and it is named.
    const verdict: Verdict = (batch, call) => (call === 1 ? [1, 3, 4] : poison3(batch));
    const { calls, deadLetters, metrics } = await isolate('bisect', verdict, [0, 1, 2, 3, 4, 5]);
    expect(calls).toEqual([[0, 1, 2, 3, 4, 5], [1, 3], [4]]);
    expect(deadLetters.map((d) => d.items)).toEqual([[3]]);
    expect(metrics).toMatchObject({ eventsFlushed: 5, deadLettered: 1, batches: 1 });
  });
});

describe('sequential: one item at a time', () => {
  test('a sink that cannot say which failed: every item on its own', async () => {
    const { calls, deadLetters, metrics } = await isolate('sequential', wholeBatch(poison3), [0, 1, 2, 3, 4]);
    expect(calls).toEqual([[0, 1, 2, 3, 4], [0], [1], [2], [3], [4]]);
    expect(deadLetters).toEqual([{ items: [3], reason: 'retries_exhausted' }]);
    expect(metrics).toMatchObject({ eventsFlushed: 4, deadLettered: 1 });
  });

  test('a narrowed part of several items: each of them on its own', async () => {
    const verdict: Verdict = (batch, call) => (call === 1 ? [1, 3, 4] : poison3(batch));
    const { calls, deadLetters } = await isolate('sequential', verdict, [0, 1, 2, 3, 4, 5]);
    expect(calls).toEqual([[0, 1, 2, 3, 4, 5], [1], [3], [4]]);
    expect(deadLetters.map((d) => d.items)).toEqual([[3]]);
  });

  test('a probe of one item that reports it failed is dead-lettered without further calls', async () => {
    const { calls, deadLetters } = await isolate('sequential', (batch) => batch.filter((i) => i > 0), [0, 1, 2]);
    expect(calls).toEqual([[0, 1, 2], [1], [2]]);
    expect(deadLetters.map((d) => d.items)).toEqual([[1], [2]]);
  });
});

describe('no isolateFailures (the default)', () => {
  test('the failing items are dead-lettered together, with no isolation calls', async () => {
    const verdict: Verdict = (batch) => batch.filter((item) => item === 1 || item === 3);
    const { calls, deadLetters, metrics } = await isolate(undefined, verdict, [0, 1, 2, 3]);
    expect(calls).toEqual([[0, 1, 2, 3]]);
    expect(deadLetters).toEqual([{ items: [1, 3], reason: 'retries_exhausted' }]);
    expect(metrics).toMatchObject({ eventsFlushed: 2, deadLettered: 2 });
  });

  test('a whole batch failing with retries left is retried whole, then dead-lettered whole', async () => {
    const { calls, deadLetters } = await isolate(undefined, wholeBatch(poison3), [2, 3], {
      retry: { maxRetries: 2, initialDelayMs: 0, maxDelayMs: 0 },
    });
    expect(calls).toEqual([
      [2, 3],
      [2, 3],
      [2, 3],
    ]);
    expect(deadLetters.map((d) => d.items)).toEqual([[2, 3]]);
  });
});

describe('bytes held after a partial failure', () => {
  test('the delivered items release their own sizes; the failed ones stay held with theirs', async () => {
    const calls: number[][] = [];
    let release!: () => void;
    const stream = new BlockingWritable<number>(
      async (batch): Promise<FlushResult<number> | undefined> => {
        calls.push([...batch]);
        if (calls.length === 1) return { success: 2, failed: 2, errors: [], failedItems: [20, 40] };
        await new Promise<void>((resolve) => (release = resolve));
        return undefined;
      },
      {
        batchSize: 4,
        maxBufferBytes: 1000,
        sizeOf: (item) => item,
        retry: { maxRetries: 1, initialDelayMs: 0, maxDelayMs: 0 },
      },
    );
    for (const item of [10, 20, 30, 40]) stream.write(item);
    expect(stream.getMetrics()).toMatchObject({ bufferBytes: 100, bufferSize: 4 });
    await advance(5, 1);
    expect(calls).toEqual([
      [10, 20, 30, 40],
      [20, 40],
    ]);
    expect(stream.getMetrics()).toMatchObject({ bufferBytes: 60, bufferSize: 2, eventsFlushed: 2, inFlight: 2 });
    release();
    await advance(5, 1);
    expect(stream.getMetrics()).toMatchObject({ bufferBytes: 0, bufferSize: 0, eventsFlushed: 4, inFlight: 0 });
  });

  test('items dead-lettered after isolation release their own sizes', async () => {
    const stream = new BlockingWritable<number>(
      (batch): FlushResult<number> | undefined => {
        const failedItems = batch.filter((item) => item === 30);
        return failedItems.length === 0 ? undefined : { success: batch.length - 1, failed: 1, errors: [], failedItems };
      },
      {
        batchSize: 3,
        maxBufferBytes: 1000,
        sizeOf: (item) => item,
        retry: { maxRetries: 0, initialDelayMs: 0, maxDelayMs: 0 },
      },
    );
    stream.on('deadletter', () => undefined);
    for (const item of [10, 30, 50, 70]) stream.write(item);
    await advance(1, 1);
    // 10, 30, 50 were cut and resolved (30 dead-lettered); 70 waits for the interval.
    expect(stream.getMetrics()).toMatchObject({ bufferBytes: 70, bufferSize: 1, eventsFlushed: 2, deadLettered: 1 });
  });
});

test('a bisecting probe that fails in part keeps the sizes of the items after it', async () => {
  const calls: number[][] = [];
  const stream = new BlockingWritable<number>(
    (batch): FlushResult<number> | undefined => {
      calls.push([...batch]);
      if (calls.length === 1) throw new Error('the whole batch failed');
      if (batch.includes(20)) return { success: batch.length - 1, failed: 1, errors: [], failedItems: [20] };
      return undefined;
    },
    {
      batchSize: 6,
      maxBufferBytes: 1000,
      sizeOf: (item) => item,
      isolateFailures: 'bisect',
      retry: { maxRetries: 0, initialDelayMs: 0, maxDelayMs: 0 },
    },
  );
  const dead: number[][] = [];
  stream.on('deadletter', (items: number[]) => dead.push(items));
  for (const item of [10, 20, 30, 40, 50, 60]) stream.write(item);
  await advance(5, 1);
  expect(calls).toEqual([
    [10, 20, 30, 40, 50, 60],
    [10, 20, 30],
    [40, 50, 60],
  ]);
  expect(dead).toEqual([[20]]);
  expect(stream.getMetrics()).toMatchObject({ bufferBytes: 0, bufferSize: 0, eventsFlushed: 5, deadLettered: 1 });
});

/** The same verdict, but the sink reports only that the whole call failed (it cannot say which items). */
function wholeBatch(verdict: Verdict): Verdict {
  return (batch, call) => (verdict(batch, call).length > 0 ? batch : []);
}
