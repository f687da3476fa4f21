import { BlockingWritable } from '../../lib';
import type { DropReason } from '../../lib';
import { TestSink, advance, useStreamFakeTimers } from '../support/test-sink';

/**
 * Issue 9, defect 3: the wait timer of block was armed only for the first waiting write. A first
 * write without a deadline (it found the stream blocked before the producer was ever told `false`,
 * which a byte bound makes possible) shielded every write behind it from maxBlockTimeMs. Each
 * waiting write has its own deadline, counted from when it reached the stream.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

const MAX_BLOCK_MS = 100;

/** A block stream whose items are their own size in bytes, 100 bytes at most, and a sink that never answers. */
function setup() {
  const sink = new TestSink<number>().otherwise({ kind: 'hang' });
  const stream = new BlockingWritable(sink.flush, {
    maxBufferSize: 100,
    batchSize: 100,
    maxBufferBytes: 100,
    sizeOf: (bytes) => bytes,
    maxBlockTimeMs: MAX_BLOCK_MS,
    onDeadLetter: () => undefined,
  });
  const drops: [number, DropReason][] = [];
  stream.on('drop', (item: number, reason: DropReason) => drops.push([item, reason]));
  const accepted = new Map<number, boolean | undefined>();
  const write = (bytes: number): boolean =>
    stream.write(bytes, (_error, ok) => {
      accepted.set(bytes, ok);
    });
  return { stream, drops, accepted, write };
}

describe('defect 3: every waiting write keeps its own maxBlockTimeMs deadline', () => {
  test('defect 3: a first waiting write without a deadline does not shield the writes behind it', async () => {
    const { stream, drops, accepted, write } = setup();
    expect(write(10)).toBe(true); // 10 of 100 bytes: the producer is not told to wait
    expect(write(95)).toBe(false); // does not fit: it waits, without a deadline (it honoured backpressure)
    await advance(50, 10); // t = 50
    expect(write(5)).toBe(false); // waits behind it; its deadline: t = 150
    await advance(30, 10); // t = 80
    expect(write(6)).toBe(false); // deadline: t = 180
    await advance(60, 10); // t = 140
    expect(drops).toEqual([]);
    await advance(20, 10); // t = 160
    expect(drops).toEqual([[5, 'timeout']]);
    await advance(40, 10); // t = 200
    expect(drops).toEqual([
      [5, 'timeout'],
      [6, 'timeout'],
    ]);
    expect(accepted.get(5)).toBe(false);
    expect(accepted.get(6)).toBe(false);
    // The write without a deadline still waits for room, as long as the sink needs.
    await advance(1000, 100);
    expect(drops).toHaveLength(2);
    expect(stream.getMetrics()).toMatchObject({ waitingWrites: 1, bufferSize: 1, eventsDropped: 2 });
    expect(stream.getMetrics().droppedByReason.timeout).toBe(2);
  });

  test('defect 3: writes after a false each time out on their own deadline, oldest first', async () => {
    const { stream, drops, write } = setup();
    expect(write(50)).toBe(true);
    expect(write(40)).toBe(false); // 90 bytes: critical, the producer is told to wait
    expect(write(30)).toBe(false); // t = 0, does not fit: deadline t = 100
    await advance(50, 10);
    expect(write(20)).toBe(false); // t = 50: deadline t = 150
    await advance(40, 10); // t = 90
    expect(drops).toEqual([]);
    await advance(20, 10); // t = 110
    expect(drops).toEqual([[30, 'timeout']]);
    await advance(20, 10); // t = 130
    expect(drops).toEqual([[30, 'timeout']]);
    await advance(30, 10); // t = 160
    expect(drops).toEqual([
      [30, 'timeout'],
      [20, 'timeout'],
    ]);
    expect(stream.getMetrics()).toMatchObject({ waitingWrites: 0, bufferSize: 2 });
  });
});
