import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackpressureTransform, BlockingWritable, DropOldestWritable } from '../../lib';
import { advance, settle, useStreamFakeTimers } from '../support/test-sink';
import { TestSink, balanced, range } from './helpers';
import type { BackpressureOptions } from '../../lib';

/**
 * cork()/uncork() (issue 10): while corked, partial batches wait (no interval flush) and full
 * batches still go, so the memory bound holds; the last uncork() sends what waited at once, in
 * batches as flush slots allow; end() uncorks. The interval is 100 ms (minFlushIntervalMs).
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

function setup(options: BackpressureOptions<number> = {}, sink = new TestSink<number>()) {
  const stream = new BlockingWritable(sink.flush, { batchSize: 10, maxBufferSize: 100, ...options });
  return { stream, sink };
}

const sizes = (calls: number[][]): number[] => calls.map((batch) => batch.length);

describe('while corked', () => {
  test('a partial batch waits past the flush interval; the last uncork() sends it at once', async () => {
    const { stream, sink } = setup();
    stream.cork();
    for (const id of range(0, 5)) stream.write(id);
    await advance(1_000, 50); // ten intervals
    expect(sink.calls).toEqual([]);
    expect(stream.writableCorked).toBe(1);
    stream.uncork();
    await settle();
    expect(sink.calls).toEqual([range(0, 5)]);
  });

  test('uncorked, the same partial batch goes on the interval (what cork() changes)', async () => {
    const { stream, sink } = setup();
    for (const id of range(0, 5)) stream.write(id);
    await advance(150, 10);
    expect(sink.calls).toEqual([range(0, 5)]);
  });

  test('full batches still go; the rest waits', async () => {
    const { stream, sink } = setup({ maxConcurrentFlushes: 3 });
    stream.cork();
    for (const id of range(0, 25)) stream.write(id);
    await advance(1_000, 50);
    expect(sink.calls).toEqual([range(0, 10), range(10, 20)]);
    stream.uncork();
    await settle();
    expect(sink.calls).toEqual([range(0, 10), range(10, 20), range(20, 25)]);
  });

  test('uncork() with every flush slot busy: what waited goes as slots free, without waiting for the interval', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    const { stream } = setup({}, sink);
    stream.cork();
    for (const id of range(0, 25)) stream.write(id);
    await settle();
    expect(sizes(sink.calls)).toEqual([10]); // one slot: the first full batch
    stream.uncork();
    await settle();
    expect(sizes(sink.calls)).toEqual([10]);
    sink.resolveNext();
    await settle();
    expect(sizes(sink.calls)).toEqual([10, 10]);
    sink.resolveNext();
    await settle(); // no time passes: the 5 items that waited at uncork() go at once
    expect(sizes(sink.calls)).toEqual([10, 10, 5]);
    sink.resolveNext();
    await settle();
    expect(sink.delivered).toEqual(range(0, 25));
  });

  test('after uncork() has sent what waited, partial batches wait for the interval again', async () => {
    const { stream, sink } = setup();
    stream.cork();
    stream.write(0);
    stream.uncork();
    await settle();
    expect(sink.calls).toEqual([[0]]);
    stream.write(1);
    await settle();
    expect(sink.calls).toEqual([[0]]);
    await advance(150, 10);
    expect(sink.calls).toEqual([[0], [1]]);
  });

  test('uncork() as many times as cork(): nothing partial goes before the last', async () => {
    const { stream, sink } = setup();
    stream.cork();
    stream.cork();
    for (const id of range(0, 3)) stream.write(id);
    stream.uncork();
    await advance(1_000, 50);
    expect(sink.calls).toEqual([]);
    expect(stream.writableCorked).toBe(1);
    stream.uncork();
    await settle();
    expect(sink.calls).toEqual([range(0, 3)]);
    expect(stream.writableCorked).toBe(0);
  });

  test('end() uncorks: everything is delivered, then "finish"', async () => {
    const { stream, sink } = setup();
    stream.cork();
    stream.cork();
    for (const id of range(0, 5)) stream.write(id);
    const finished = new Promise((resolve) => stream.once('finish', resolve));
    stream.end();
    await finished;
    expect(sink.delivered).toEqual(range(0, 5));
    expect(stream.writableCorked).toBe(0);
  });

  test('drain() flushes what waits while the stream stays corked', async () => {
    const { stream, sink } = setup();
    stream.cork();
    for (const id of range(0, 5)) stream.write(id);
    await stream.drain();
    expect(sink.delivered).toEqual(range(0, 5));
    expect(stream.writableCorked).toBe(1);
  });

  test('a corked block sluice keeps its bound: a pipeline of 1,000 items completes, held never above maxBufferSize', async () => {
    const { stream, sink } = setup({ maxBufferSize: 50 });
    let maxHeld = 0;
    stream.on('state', () => (maxHeld = Math.max(maxHeld, stream.getMetrics().bufferSize)));
    stream.cork();
    await pipeline(Readable.from(range(0, 1_000)), stream); // end() uncorks for the last partial batch
    expect(sink.delivered).toEqual(range(0, 1_000));
    expect(maxHeld).toBeLessThanOrEqual(50);
    expect(balanced(stream.getMetrics())).toBe(true);
  });

  test('a drop strategy, corked: full batches go, so it drops exactly what it drops uncorked', async () => {
    const runs = await Promise.all(
      [true, false].map(async (corked) => {
        const sink = new TestSink<number>();
        const stream = new DropOldestWritable(sink.flush, { batchSize: 10, maxBufferSize: 20 });
        if (corked) stream.cork();
        for (const id of range(0, 100)) {
          stream.write(id);
          if (id % 5 === 4) await settle(1); // the sink gets a turn every 5 writes
        }
        return { delivered: sink.delivered, dropped: stream.getMetrics().eventsDropped };
      }),
    );
    expect(runs[0]).toEqual(runs[1]);
    expect(runs[0]?.delivered.length).toBeGreaterThanOrEqual(90);
  });

  test('the Transform: partial batches wait while corked, uncork() pushes them', async () => {
    const transform = new BackpressureTransform<number>({ batchSize: 10, strategy: 'block' });
    const batches: number[][] = [];
    transform.on('data', (batch) => batches.push(batch));
    transform.cork();
    for (const id of range(0, 13)) transform.write(id);
    await advance(1_000, 50);
    expect(batches).toEqual([range(0, 10)]);
    transform.uncork();
    await settle();
    expect(batches).toEqual([range(0, 10), range(10, 13)]);
  });
});
