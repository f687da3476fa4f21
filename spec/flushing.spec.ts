import { BlockingWritable, DropOldestWritable } from '../lib';
import type { DropReason } from '../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from './support/test-sink';

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

describe('when batches flush', () => {
  test('a full batch flushes at once, without waiting for the timer', async () => {
    const sink = new TestSink<number>();
    const stream = new DropOldestWritable(sink.flush, { batchSize: 5, minFlushIntervalMs: 1000 });
    for (const id of range(0, 12)) stream.write(id);
    await settle();
    expect(sink.calls).toEqual([range(0, 5), range(5, 10)]);
  });

  test('a partial batch flushes once the interval has passed since its oldest item', async () => {
    const sink = new TestSink<number>();
    const stream = new DropOldestWritable(sink.flush, { batchSize: 10, minFlushIntervalMs: 100 });
    stream.write(0);
    await advance(60, 60);
    stream.write(1);
    stream.write(2);
    await advance(39, 39);
    expect(sink.calls).toEqual([]);
    await advance(1, 1);
    expect(sink.calls).toEqual([[0, 1, 2]]);
  });

  test('the remainder after a full batch is dated by its own oldest item', async () => {
    const sink = new TestSink<number>();
    const stream = new DropOldestWritable(sink.flush, { batchSize: 4, minFlushIntervalMs: 100 });
    for (const id of range(0, 3)) stream.write(id);
    await advance(50, 50);
    for (const id of range(3, 6)) stream.write(id); // 3 completes the first batch; 4 and 5 arrive at t=50
    await settle();
    expect(sink.calls).toEqual([range(0, 4)]);
    await advance(99, 99);
    expect(sink.calls).toHaveLength(1);
    await advance(1, 1);
    expect(sink.calls).toEqual([range(0, 4), [4, 5]]);
  });

  test('end() flushes everything at once and finish waits for the last flush', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    const stream = new DropOldestWritable(sink.flush, { batchSize: 4, minFlushIntervalMs: 10_000 });
    const finished = jest.fn();
    stream.on('finish', finished);
    for (const id of range(0, 6)) stream.write(id);
    stream.end();
    await settle();
    expect(sink.calls).toEqual([range(0, 4)]);
    sink.resolveNext();
    await settle();
    expect(sink.calls).toEqual([range(0, 4), [4, 5]]); // no interval wait after end()
    expect(finished).not.toHaveBeenCalled();
    sink.resolveNext();
    await settle();
    expect(finished).toHaveBeenCalledTimes(1);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 6, bufferSize: 0 });
  });

  test('maxConcurrentFlushes runs batches side by side, cut in write order', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    const stream = new DropOldestWritable(sink.flush, { batchSize: 2, maxConcurrentFlushes: 3 });
    for (const id of range(0, 10)) stream.write(id);
    await settle();
    expect(sink.calls).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    expect(sink.maxInFlight).toBe(3);
    sink.resolveNext();
    await settle();
    expect(sink.calls.at(-1)).toEqual([6, 7]);
    expect(sink.inFlight).toBe(3);
  });
});

describe('the adaptive interval', () => {
  const options = { batchSize: 1, targetLatencyMs: 100, minFlushIntervalMs: 100, maxFlushIntervalMs: 300 };

  test('grows x1.5 up to the max while latency is above 1.5 x target, and shrinks x0.8 to the min below 0.5 x target', async () => {
    const sink = new TestSink<number>();
    const stream = new DropOldestWritable(sink.flush, options);
    const intervals: number[] = [];
    sink.script(
      { kind: 'delay', ms: 151 },
      { kind: 'delay', ms: 151 },
      { kind: 'delay', ms: 151 },
      { kind: 'delay', ms: 151 },
    );
    for (let i = 0; i < 4; i++) {
      stream.write(i);
      await advance(2000, 50);
      intervals.push(stream.getMetrics().currentFlushIntervalMs);
    }
    expect(intervals).toEqual([150, 225, 300, 300]);

    sink.script({ kind: 'delay', ms: 100 }); // between 0.5x and 1.5x target: unchanged
    stream.write(4);
    await advance(2000, 50);
    expect(stream.getMetrics().currentFlushIntervalMs).toBe(300);

    const shrinking: number[] = [];
    for (let i = 5; i < 12; i++) {
      stream.write(i); // fast sink: latency 0
      await advance(2000, 50);
      shrinking.push(stream.getMetrics().currentFlushIntervalMs);
    }
    [240, 192, 153.6, 122.88, 100, 100, 100].forEach((expected, i) => expect(shrinking[i]).toBeCloseTo(expected, 6));
    expect(sink.delivered).toEqual(range(0, 12));
  });

  test('a full batch goes as soon as a slot is free, however slow the sink; the interval paces partial batches only', async () => {
    const sink = new TestSink<number>().script({ kind: 'delay', ms: 400 }, { kind: 'delay', ms: 400 });
    const startTimes: number[] = [];
    const stream = new DropOldestWritable(
      (items: number[]) => {
        startTimes.push(Date.now());
        return sink.flush(items);
      },
      { ...options, batchSize: 2 },
    );
    const t0 = Date.now();
    for (const id of range(0, 7)) stream.write(id);
    await advance(3000, 10);
    // Two slow flushes (400 ms > target) grow the interval to 150, then 225: the full batches still
    // follow each other at once (0, 400, 800); only the partial batch [6], which arrived at 0, waits
    // for its interval to pass — already long past when the slot frees at 800.
    expect(startTimes.map((t) => t - t0)).toEqual([0, 400, 800, 800]);
    expect(stream.getMetrics().currentFlushIntervalMs).toBeGreaterThan(100);
    expect(sink.delivered).toEqual(range(0, 7));
  });
});

describe('block: held writes', () => {
  test('a write held at blocked longer than maxBlockTimeMs is dropped with reason timeout', async () => {
    const sink = new TestSink<number>().script({ kind: 'manual' });
    const stream = new BlockingWritable(sink.flush, { maxBufferSize: 2, batchSize: 2, maxBlockTimeMs: 1000 });
    const drops: [number, DropReason][] = [];
    stream.on('drop', (item: number, reason: DropReason) => drops.push([item, reason]));
    const outcomes: [number, boolean | undefined][] = [];
    for (const id of range(0, 3)) stream.write(id, (error, accepted) => outcomes.push([id, accepted]));
    await advance(500, 100);
    stream.write(3, (error, accepted) => outcomes.push([3, accepted]));
    await advance(499, 100);
    expect(drops).toEqual([]);
    await advance(1, 1);
    expect(drops).toEqual([[2, 'timeout']]);
    await advance(500, 100);
    expect(drops).toEqual([
      [2, 'timeout'],
      [3, 'timeout'],
    ]);
    expect(outcomes).toEqual([
      [0, true],
      [1, true],
      [2, false],
      [3, false],
    ]);
    expect(stream.getMetrics()).toMatchObject({
      eventsOffered: 4,
      eventsDropped: 2,
      waitingWrites: 0,
      bufferSize: 2,
      state: 'blocked',
    });
  });

  test('a write that finds the sluice blocked before any false waits as long as the sink needs', async () => {
    // highWatermark 1: write() says false only once full, so the write that fills it is accepted and
    // the next one, made while the producer was still allowed to write, is the first to wait.
    const sink = new TestSink<number>().script({ kind: 'manual' });
    const stream = new BlockingWritable(sink.flush, {
      maxBufferSize: 2,
      batchSize: 2,
      highWatermark: 1,
      maxBlockTimeMs: 100,
    });
    const drops: [number, DropReason][] = [];
    stream.on('drop', (item: number, reason: DropReason) => drops.push([item, reason]));
    expect(stream.write(0)).toBe(true);
    expect(stream.write(1)).toBe(false); // now full and blocked
    expect(stream.write(2)).toBe(false); // the producer was told to wait: this one may time out
    await advance(1000, 50);
    expect(drops).toEqual([[2, 'timeout']]);

    const honouring = new BlockingWritable(new TestSink<number>().script({ kind: 'manual' }).flush, {
      maxBufferSize: 4,
      batchSize: 4,
      highWatermark: 1,
      maxBlockTimeMs: 100,
      maxBufferBytes: 8,
      sizeOf: () => 3,
      onDeadLetter: () => undefined,
    });
    honouring.on('drop', (item: number, reason: DropReason) => drops.push([item, reason]));
    expect(honouring.write(10)).toBe(true);
    expect(honouring.write(11)).toBe(true); // 6 of 8 bytes, 2 of 4 items: elevated
    expect(honouring.write(12)).toBe(false); // 3 more bytes do not fit: it waits, and it is honouring
    await advance(10_000, 500);
    expect(drops).toEqual([[2, 'timeout']]);
    expect(honouring.getMetrics()).toMatchObject({ waitingWrites: 1, state: 'blocked' });
    honouring.destroy();
  });
});
