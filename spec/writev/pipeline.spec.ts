import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlockingWritable } from '../../lib';
import { settle, useStreamFakeTimers, watchWrites } from '../support/test-sink';
import { STRATEGY_CLASSES, TestSink, balanced, range, writevSubclass } from './helpers';
import type { WritevCallback, WritevChunks } from '../../lib';

/**
 * A sink written Node's way, `_writev(chunks, callback)`, in a subclass of a strategy class, through
 * `pipeline()`: order, exact batch sizes and the concurrency limit. Fake timers never advance here,
 * so no partial batch is cut by the interval: every batch but the one end() sends is full.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

interface Row {
  id: number;
}

function* rows(count: number): Generator<Row> {
  for (let id = 0; id < count; id++) yield { id };
}

/** The user's shape: a Node-style sink, whose base class is a sluice. Each batch takes a few event-loop turns. */
class RowSink extends BlockingWritable<Row> {
  readonly batches: Row[][] = [];
  readonly stored: Row[] = [];
  inFlight = 0;
  maxInFlight = 0;

  override _writev(chunks: WritevChunks<Row>, callback: WritevCallback<Row>): void {
    const batch = chunks.map((c) => c.chunk);
    this.batches.push(batch);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    const turns = 3;
    const step = (left: number): void => {
      if (left > 0) return void setImmediate(step, left - 1);
      this.inFlight--;
      this.stored.push(...batch);
      callback();
    };
    step(turns);
  }
}

describe('a _writev subclass through pipeline()', () => {
  test('every item reaches _writev once, in write order, in batches of exactly batchSize (the last: the rest), two at a time', async () => {
    const sink = new RowSink({ batchSize: 100, maxBufferSize: 1000, maxConcurrentFlushes: 2 });
    const writes = watchWrites(sink);
    await pipeline(Readable.from(rows(2_050)), sink);

    expect(sink.batches.map((batch) => batch.length)).toEqual([...Array<number>(20).fill(100), 50]);
    expect(sink.batches.flat().map((row) => row.id)).toEqual(range(0, 2_050));
    expect(sink.stored).toHaveLength(2_050);
    expect(sink.maxInFlight).toBe(2);
    expect(writes.falses).toBeGreaterThan(0); // the producer was paused: the sink is the slower side
    expect(writes.maxHeld).toBeLessThanOrEqual(1000);
    expect(sink.getMetrics()).toMatchObject({ eventsOffered: 2_050, eventsFlushed: 2_050, bufferSize: 0, batches: 21 });
  });

  test('with maxConcurrentFlushes 1, one call at a time', async () => {
    const sink = new RowSink({ batchSize: 50, maxBufferSize: 200 });
    await pipeline(Readable.from(rows(500)), sink);
    expect(sink.maxInFlight).toBe(1);
    expect(sink.batches.map((batch) => batch.length)).toEqual(Array<number>(10).fill(50));
  });

  test.each(STRATEGY_CLASSES)('$name: a subclass with _writev delivers through it', async ({ Base }) => {
    const sink = new TestSink<number>();
    const Sink = writevSubclass(Base, sink);
    const stream = new Sink({ batchSize: 10, maxBufferSize: 1000 });
    for (const id of range(0, 25)) stream.write(id);
    stream.end();
    await settle();
    expect(sink.calls).toEqual([range(0, 10), range(10, 20), range(20, 25)]);
    expect(stream.chunkArrays.map((chunks) => chunks.map((c) => c.chunk))).toEqual(sink.calls);
    expect(stream.writableFinished).toBe(true);
    expect(balanced(stream.getMetrics())).toBe(true);
  });
});
