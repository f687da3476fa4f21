import { BackpressureError, BlockingWritable, DropOldestWritable } from '../lib';
import type { BackpressureOptions, BackpressureWritable } from '../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from './support/test-sink';

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

interface DeadLetter {
  items: number[];
  error: BackpressureError<number>;
}

function setup(sink: TestSink<number>, options: BackpressureOptions<number> = {}) {
  const deadLetters: DeadLetter[] = [];
  const stream = new BlockingWritable(sink.flush, {
    batchSize: 4,
    retry: { maxRetries: 2, initialDelayMs: 10, maxDelayMs: 40 },
    onDeadLetter: (items, error) => {
      deadLetters.push({ items, error });
    },
    ...options,
  });
  return { stream, deadLetters };
}

async function finish(stream: BackpressureWritable<number>): Promise<void> {
  const finished = new Promise((resolve) => stream.on('finish', resolve));
  stream.end();
  await advance(1000, 10);
  await finished;
}

describe('retries', () => {
  test.each([
    ['a rejection', { kind: 'reject' as const }],
    ['a synchronous throw', { kind: 'throw' as const }],
  ])('%s is retried with backoff, then delivered', async (_name, failure) => {
    const sink = new TestSink<number>().script(failure, failure);
    const { stream, deadLetters } = setup(sink);
    for (const id of range(0, 4)) stream.write(id);
    await finish(stream);
    expect(sink.calls).toEqual([range(0, 4), range(0, 4), range(0, 4)]);
    expect(sink.delivered).toEqual(range(0, 4));
    expect(deadLetters).toEqual([]);
    expect(stream.getMetrics()).toMatchObject({ retries: 2, eventsFlushed: 4, deadLettered: 0 });
  });

  test('backoff waits a random delay below a doubling bound (full jitter)', async () => {
    const random = jest.spyOn(Math, 'random').mockReturnValue(0.999);
    try {
      const sink = new TestSink<number>().script({ kind: 'reject' }, { kind: 'reject' }, { kind: 'reject' });
      const { stream } = setup(sink, { retry: { maxRetries: 3, initialDelayMs: 100, maxDelayMs: 300 } });
      for (const id of range(0, 4)) stream.write(id);
      const at: number[] = [];
      for (let t = 0; t <= 800; t += 1) {
        if (sink.calls.length > at.length) at.push(t);
        await jest.advanceTimersByTimeAsync(1);
      }
      // random() ~ 1: each wait is just under its bound, 100, 200, then 300 (capped at maxDelayMs)
      const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
      [100, 200, 300].forEach((bound, i) => {
        expect(gaps[i]).toBeLessThanOrEqual(bound);
        expect(gaps[i]).toBeGreaterThanOrEqual(bound - 2);
      });
    } finally {
      random.mockRestore();
    }
  });

  test('failedItems: only those are retried, in batch order', async () => {
    const sink = new TestSink<number>().script({ kind: 'fail-items', predicate: (id) => id === 1 || id === 3 });
    const { stream } = setup(sink);
    for (const id of range(0, 4)) stream.write(id);
    await finish(stream);
    expect(sink.calls).toEqual([range(0, 4), [1, 3]]);
    expect(sink.delivered).toEqual([0, 2, 1, 3]);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 4, retries: 1 });
  });

  test('failed > 0 without failedItems retries the whole batch (at-least-once)', async () => {
    const sink = new TestSink<number>().script({
      kind: 'result',
      result: { success: 3, failed: 1, errors: [new Error('one row')] },
    });
    const { stream } = setup(sink);
    for (const id of range(0, 4)) stream.write(id);
    await finish(stream);
    expect(sink.calls).toEqual([range(0, 4), range(0, 4)]);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 4 });
  });

  test('retries exhausted: dead-lettered with ERR_FLUSH_FAILED, reason and the sink error as cause', async () => {
    const cause = new Error('connection refused');
    const sink = new TestSink<number>().otherwise({ kind: 'reject', error: cause });
    const { stream, deadLetters } = setup(sink);
    const events: DeadLetter[] = [];
    stream.on('deadletter', (items: number[], error: BackpressureError<number>) => events.push({ items, error }));
    for (const id of range(0, 6)) stream.write(id);
    await finish(stream);
    expect(sink.calls).toHaveLength(6); // two batches x (1 + 2 retries)
    expect(deadLetters.map((d) => d.items)).toEqual([range(0, 4), [4, 5]]);
    expect(events.map((d) => d.items)).toEqual([range(0, 4), [4, 5]]);
    const error = deadLetters[0]?.error;
    expect(error).toBeInstanceOf(BackpressureError);
    expect(error).toMatchObject({ code: 'ERR_FLUSH_FAILED', reason: 'retries_exhausted', cause });
    expect(stream.getMetrics()).toMatchObject({ deadLettered: 6, eventsFlushed: 0, bufferSize: 0, retries: 4 });
  });
});

describe("a sink's ordinary return value means delivered", () => {
  test.each([
    ['true', true],
    ['a string', 'OK'],
    ['a number', 42],
    ['an empty array', []],
    ["a driver's result object", { changes: 4, lastInsertRowid: 7 }],
    ['an object with a non-numeric count', { success: '4', failed: 0 }],
  ])('%s: all delivered, nothing dead-lettered', async (_name, result) => {
    const sink = new TestSink<number>().script({ kind: 'result', result });
    const { stream, deadLetters } = setup(sink);
    for (const id of range(0, 4)) stream.write(id);
    await finish(stream);
    expect(deadLetters).toHaveLength(0);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 4, deadLettered: 0, bufferSize: 0 });
  });
});

describe('malformed results', () => {
  test.each([
    [
      'counts that do not add up',
      { success: 3, failed: 0, errors: [] },
      /"success" \(3\) \+ "failed" \(0\) must equal the batch length \(4\)/,
    ],
    ['negative counts', { success: 5, failed: -1, errors: [] }, /integers >= 0/],
    [
      'failedItems of the wrong length',
      { success: 2, failed: 2, errors: [], failedItems: [1] },
      /"failedItems" must be an array of the 2 failed items/,
    ],
    ['foreign failedItems', { success: 3, failed: 1, errors: [], failedItems: [99] }, /must hold items of the batch/],
  ])(
    '%s: ERR_INVALID_FLUSH_RESULT, dead-lettered without retry, not counted delivered',
    async (_name, result, message) => {
      const sink = new TestSink<number>().script({ kind: 'result', result });
      const { stream, deadLetters } = setup(sink);
      for (const id of range(0, 4)) stream.write(id);
      await finish(stream);
      expect(sink.calls).toHaveLength(1);
      expect(deadLetters).toHaveLength(1);
      expect(deadLetters[0]?.items).toEqual(range(0, 4));
      expect(deadLetters[0]?.error).toMatchObject({ code: 'ERR_INVALID_FLUSH_RESULT', reason: 'invalid_result' });
      expect(deadLetters[0]?.error.message).toMatch(message);
      expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 0, deadLettered: 4 });
    },
  );

  test('resolving nothing, or a result that adds up, counts as delivered', async () => {
    const sink = new TestSink<number>().script(
      { kind: 'result', result: { success: 4, failed: 0, errors: [] } },
      { kind: 'ok' },
    );
    const { stream, deadLetters } = setup(sink);
    for (const id of range(0, 8)) stream.write(id);
    await finish(stream);
    expect(deadLetters).toEqual([]);
    expect(stream.getMetrics().eventsFlushed).toBe(8);
  });
});

describe('timeouts', () => {
  test('a flush past flushTimeoutMs is retried; exhausted, it is dead-lettered with ERR_FLUSH_TIMEOUT', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'hang' });
    const { stream, deadLetters } = setup(sink, {
      flushTimeoutMs: 100,
      retry: { maxRetries: 1, initialDelayMs: 10, maxDelayMs: 10 },
    });
    for (const id of range(0, 4)) stream.write(id);
    await advance(99, 99);
    expect(sink.calls).toHaveLength(1);
    await advance(500, 10);
    expect(sink.calls).toHaveLength(2);
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]?.error).toMatchObject({
      code: 'ERR_FLUSH_TIMEOUT',
      reason: 'retries_exhausted',
      items: range(0, 4),
    });
    // The late call settling afterwards changes nothing.
    sink.resolveNext();
    await settle();
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 0, deadLettered: 4, bufferSize: 0 });
  });
});

describe('sequential fallback', () => {
  test('one poison item in a batch of 100: 99 delivered, 1 dead-lettered', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'ok' });
    const poison = 42;
    const flush = (items: number[]) => {
      if (items.includes(poison)) return Promise.reject(new Error(`row ${poison} violates a constraint`));
      return sink.flush(items);
    };
    const deadLetters: DeadLetter[] = [];
    const stream = new BlockingWritable(flush, {
      batchSize: 100,
      fallbackToSequential: true,
      retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1 },
      onDeadLetter: (items, error) => void deadLetters.push({ items, error }),
    });
    for (const id of range(0, 100)) stream.write(id);
    await finish(stream);
    expect(sink.delivered).toEqual(range(0, 100).filter((id) => id !== poison));
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]?.items).toEqual([poison]);
    expect(deadLetters[0]?.error).toMatchObject({ code: 'ERR_FLUSH_FAILED', reason: 'retries_exhausted' });
    expect(deadLetters[0]?.error.cause).toEqual(new Error('row 42 violates a constraint'));
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 99, deadLettered: 1, bufferSize: 0 });
  });
});

test('equal items in a batch are each accounted for in the one-by-one pass', async () => {
  // No dead-letter path: the first failing 1 fails the stream, which must carry the second 1 too.
  const sink = new TestSink<number>().otherwise({ kind: 'fail-items', predicate: (value) => value === 1 });
  const stream = new BlockingWritable(sink.flush, {
    batchSize: 5,
    retry: { maxRetries: 0 },
    fallbackToSequential: true,
  });
  const failed = new Promise<BackpressureError<number>>((resolve) =>
    stream.on('error', (error) => resolve(error as BackpressureError<number>)),
  );
  for (const value of [0, 1, 2, 0, 1]) stream.write(value);
  const error = await failed;
  expect(sink.delivered).toEqual([0, 2, 0]);
  expect(error.items).toEqual([1, 1]);
  const m = stream.getMetrics();
  expect(m).toMatchObject({ eventsOffered: 5, eventsFlushed: 3, deadLettered: 2, bufferSize: 0 });
});

describe('with no dead-letter path', () => {
  test('the stream errors with a BackpressureError carrying every undelivered item', async () => {
    const sink = new TestSink<number>()
      .script({ kind: 'reject', error: new Error('disk full') })
      .otherwise({ kind: 'manual' });
    const stream = new DropOldestWritable(sink.flush, { batchSize: 2, retry: { maxRetries: 0 } });
    const errors: BackpressureError<number>[] = [];
    stream.on('error', (error) => errors.push(error as BackpressureError<number>));
    for (const id of range(0, 5)) stream.write(id);
    await settle();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'ERR_FLUSH_FAILED', reason: 'retries_exhausted' });
    expect((errors[0]?.cause as Error).message).toBe('disk full');
    // the failed batch first, then everything else still held (the in-flight batch and the queue)
    expect(errors[0]?.items).toEqual([0, 1, 2, 3, 4]);
    expect(stream.destroyed).toBe(true);
    const m = stream.getMetrics();
    expect(m.eventsOffered).toBe(m.eventsFlushed + m.deadLettered + m.eventsDropped + m.bufferSize);
    expect(m).toMatchObject({ deadLettered: 5, bufferSize: 0 });
  });

  test('a dead-letter handler that throws fails the stream with the items', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'reject' });
    const stream = new BlockingWritable(sink.flush, {
      batchSize: 2,
      retry: { maxRetries: 0 },
      onDeadLetter: () => {
        throw new Error('dead-letter file not writable');
      },
    });
    const failed = new Promise<BackpressureError<number>>((resolve) =>
      stream.on('error', (error) => resolve(error as BackpressureError<number>)),
    );
    stream.write(0);
    stream.write(1);
    const error = await failed;
    expect(error.items).toEqual([0, 1]);
    expect(error.message).toMatch(/dead-letter handler failed for 2 item\(s\).*dead-letter file not writable/);
  });

  test('an async dead-letter handler is awaited before finish', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'reject' });
    let written: number[] = [];
    const stream = new BlockingWritable(sink.flush, {
      batchSize: 2,
      retry: { maxRetries: 0 },
      onDeadLetter: async (items) => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        written = items;
      },
    });
    const finished = jest.fn();
    stream.on('finish', finished);
    stream.write(0);
    stream.write(1);
    stream.end();
    await advance(499, 50);
    expect(finished).not.toHaveBeenCalled();
    await advance(10, 5);
    expect(written).toEqual([0, 1]);
    expect(finished).toHaveBeenCalled();
  });
});
