import { BlockingWritable, DropNewestWritable, DropOldestWritable, SamplingWritable } from '../../lib';
import type { BackpressureWritable, DropReason, FlushFunction } from '../../lib';
import { TestSink, settle } from '../support/test-sink';

/**
 * A producer that ignores write() === false, against a sink that stalls on its
 * first batch: every strategy must keep memory bounded and count every drop.
 * maxBufferSize 10, batchSize 5: items 0-4 go in flight and stall, 5-9 fill the queue.
 */
const config = { maxBufferSize: 10, batchSize: 5, sampleRate: 2 };
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

interface Expectation {
  make: (flush: FlushFunction<number>) => BackpressureWritable<number>;
  falseFrom: number | undefined;
  dropped: Partial<Record<DropReason, number[]>>;
  delivered: number[];
}

const cases: [string, Expectation][] = [
  [
    'drop_oldest keeps the newest',
    {
      make: (flush) => new DropOldestWritable(flush, config),
      falseFrom: undefined,
      dropped: { evicted: range(5, 25) },
      delivered: [...range(0, 5), ...range(25, 30)],
    },
  ],
  [
    'drop_newest keeps the oldest',
    {
      make: (flush) => new DropNewestWritable(flush, config),
      falseFrom: undefined,
      dropped: { rejected: range(10, 30) },
      delivered: range(0, 10),
    },
  ],
  [
    'sample keeps one in sampleRate outside normal and refuses when full',
    {
      make: (flush) => new SamplingWritable(flush, config),
      falseFrom: undefined,
      dropped: {
        sampled: range(6, 30).filter((id) => id % 2 === 0),
        rejected: range(15, 30).filter((id) => id % 2 === 1),
      },
      delivered: [...range(0, 5), 5, 7, 9, 11, 13],
    },
  ],
  [
    'block holds a write queue of highWaterMark writes and drops the overflow',
    {
      make: (flush) => new BlockingWritable(flush, config),
      // held reaches 8 (critical) with item 7
      falseFrom: 7,
      dropped: { overflow: range(18, 30) },
      delivered: range(0, 18),
    },
  ],
];

describe.each(cases)('%s', (_name, { make, falseFrom, dropped, delivered }) => {
  test('held stays bounded, drops are exact, survivors are delivered in order', async () => {
    const sink = new TestSink<number>().script({ kind: 'manual' });
    const stream = make(sink.flush);
    const drops: Partial<Record<DropReason, number[]>> = {};
    stream.on('drop', (item: number, reason: DropReason) => (drops[reason] ??= []).push(item));

    const returned = range(0, 30).map((id) => stream.write(id));
    const metrics = stream.getMetrics();
    expect(metrics.bufferSize).toBe(10);
    expect(metrics.waitingWrites).toBeLessThanOrEqual(stream.writableHighWaterMark);
    expect(returned.indexOf(false)).toBe(falseFrom ?? -1);
    if (falseFrom !== undefined) expect(returned.slice(falseFrom).every((value) => value === false)).toBe(true);

    await settle();
    expect(sink.calls).toEqual([range(0, 5)]);
    expect(drops).toEqual(dropped);

    sink.resolveNext();
    const finished = new Promise((resolve) => stream.on('finish', resolve));
    stream.end();
    await finished;

    expect(sink.delivered).toEqual(delivered);
    const final = stream.getMetrics();
    const droppedCount = Object.values(dropped).reduce((n, ids) => n + ids.length, 0);
    expect(final).toMatchObject({
      eventsOffered: 30,
      eventsFlushed: delivered.length,
      eventsDropped: droppedCount,
      bufferSize: 0,
      waitingWrites: 0,
    });
    expect(final.eventsOffered).toBe(final.eventsFlushed + final.eventsDropped + final.deadLettered + final.bufferSize);
  });
});

test('drop_oldest never evicts an item in flight: with nothing queued, the newcomer is the one evicted', async () => {
  const sink = new TestSink<number>().script({ kind: 'manual' });
  const stream = new DropOldestWritable(sink.flush, { maxBufferSize: 4, batchSize: 4 });
  const drops: [number, DropReason][] = [];
  stream.on('drop', (item: number, reason: DropReason) => drops.push([item, reason]));
  for (const id of range(0, 6)) stream.write(id);
  await settle();
  expect(sink.calls).toEqual([[0, 1, 2, 3]]);
  expect(drops).toEqual([
    [4, 'evicted'],
    [5, 'evicted'],
  ]);
  expect(stream.getMetrics()).toMatchObject({ eventsAccepted: 6, eventsDropped: 2, bufferSize: 4, inFlight: 4 });
  sink.resolveNext();
  stream.end();
  await new Promise((resolve) => stream.on('finish', resolve));
});

test('sample counts offered items, so a sampleRate that divides nothing accepted still samples', async () => {
  // The design doc counted accepted items: once the count sat on a non-multiple, every item dropped.
  const sink = new TestSink<number>().script({ kind: 'manual' });
  const stream = new SamplingWritable(sink.flush, { maxBufferSize: 1000, batchSize: 1000, sampleRate: 3 });
  stream.on('drop', () => undefined);
  for (const id of range(0, 500)) stream.write(id); // reaches elevated
  const before = stream.getMetrics().eventsAccepted;
  for (const id of range(500, 800)) stream.write(id);
  expect(stream.getMetrics().eventsAccepted - before).toBe(100);
  expect(stream.getMetrics().droppedByReason.sampled).toBe(200);
  const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  try {
    stream.destroy();
    // No dead-letter path: a plain destroy() never emits 'error'; a warning counts the discarded items.
    expect(emitWarning).toHaveBeenCalledWith(
      expect.stringMatching(/held 600 item\(s\)/),
      expect.objectContaining({ code: 'SLUICE_ITEMS_DISCARDED' }),
    );
    expect(stream.getMetrics().deadLettered).toBe(600);
  } finally {
    emitWarning.mockRestore();
  }
});

test('with no drop listener, one aggregated process warning is emitted by close', async () => {
  const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  try {
    const sink = new TestSink<number>().script({ kind: 'manual' });
    const stream = new DropNewestWritable(sink.flush, {
      maxBufferSize: 2,
      batchSize: 2,
      onDeadLetter: () => undefined,
    });
    for (const id of range(0, 7)) stream.write(id);
    expect(emitWarning).not.toHaveBeenCalled();
    const closed = new Promise((resolve) => stream.on('close', resolve));
    stream.destroy();
    await closed;
    expect(emitWarning).toHaveBeenCalledTimes(1);
    expect(emitWarning).toHaveBeenCalledWith(
      expect.stringMatching(/dropped 5 item\(s\) with no 'drop' listener \(rejected: 5\)/),
      expect.objectContaining({ code: 'SLUICE_ITEMS_DROPPED' }),
    );
  } finally {
    emitWarning.mockRestore();
  }
});
