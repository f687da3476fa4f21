import { BackpressureState, BlockingWritable, DropOldestWritable } from '../lib';
import { TestSink, settle } from './support/test-sink';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('states', () => {
  test('each transition fires one state event (next, previous), up and back down', async () => {
    const sink = new TestSink<number>().script({ kind: 'manual' });
    const stream = new DropOldestWritable(sink.flush, { maxBufferSize: 10, batchSize: 10 });
    const events: [string, string][] = [];
    stream.on('state', (next: string, previous: string) => events.push([next, previous]));

    const seen: string[] = [];
    for (const id of range(10)) {
      stream.write(id);
      seen.push(stream.state);
    }
    // normal below 5 (0.5), elevated from 5, critical from 8 (0.8), blocked at 10
    expect(seen).toEqual([
      'normal',
      'normal',
      'normal',
      'normal',
      'elevated',
      'elevated',
      'elevated',
      'critical',
      'critical',
      'blocked',
    ]);
    expect(events).toEqual([
      ['elevated', 'normal'],
      ['critical', 'elevated'],
      ['blocked', 'critical'],
    ]);
    await settle();
    sink.resolveNext();
    await settle();
    expect(events.at(-1)).toEqual(['normal', 'blocked']);
    expect(events).toHaveLength(4);
    expect(stream.getMetrics().state).toBe(BackpressureState.NORMAL);
  });

  test('utilization counts queued and in-flight items', async () => {
    const sink = new TestSink<number>().script({ kind: 'manual' });
    const stream = new DropOldestWritable(sink.flush, { maxBufferSize: 10, batchSize: 4 });
    for (const id of range(6)) stream.write(id);
    await settle();
    expect(sink.calls).toEqual([[0, 1, 2, 3]]);
    expect(stream.getMetrics()).toMatchObject({
      bufferSize: 6,
      inFlight: 4,
      bufferUtilization: 0.6,
      state: 'elevated',
    });
    expect(stream.writableLength).toBe(6);
  });

  test('drain() shows draining until empty, then the state utilization gives', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    const stream = new DropOldestWritable(sink.flush, { maxBufferSize: 10, batchSize: 4 });
    const events: string[] = [];
    stream.on('state', (next: string) => events.push(next));
    for (const id of range(6)) stream.write(id);
    const drained = stream.drain();
    expect(stream.state).toBe('draining');
    await settle();
    sink.resolveNext();
    await settle();
    sink.resolveNext();
    await drained;
    expect(sink.delivered).toEqual(range(6));
    expect(events).toEqual(['elevated', 'draining', 'normal']);
  });

  test('bytes count toward utilization when maxBufferBytes is set', () => {
    const sink = new TestSink<string>().script({ kind: 'manual' });
    const stream = new DropOldestWritable(sink.flush, { maxBufferSize: 100, batchSize: 100, maxBufferBytes: 10 });
    stream.write('abcd');
    stream.write('efgh');
    expect(stream.getMetrics()).toMatchObject({
      bufferSize: 2,
      bufferBytes: 8,
      bufferUtilization: 0.8,
      state: 'critical',
    });
  });
});

describe('block: write() and drain', () => {
  test('write() returns false from critical on, and drain fires only below the low watermark', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    const stream = new BlockingWritable(sink.flush, { maxBufferSize: 10, batchSize: 2 });
    const trace: string[] = [];
    stream.on('drain', () => trace.push(`drain at ${stream.getMetrics().bufferSize}`));

    const returned = range(8).map((id) => stream.write(id));
    expect(returned).toEqual([true, true, true, true, true, true, true, false]);
    expect(stream.writableNeedDrain).toBe(true);
    await settle();

    for (const held of [6, 4, 2]) {
      sink.resolveNext();
      await settle();
      trace.push(`held ${held}`);
    }
    // Node's own Writable would wait for empty; sluice resumes below lowWatermark (5).
    expect(trace).toEqual(['held 6', 'drain at 4', 'held 4', 'held 2']);
    expect(stream.writableNeedDrain).toBe(false);
  });

  test('no drain event without a false first', async () => {
    const sink = new TestSink<number>();
    const stream = new BlockingWritable(sink.flush, { maxBufferSize: 10, batchSize: 2 });
    const drains = jest.fn();
    stream.on('drain', drains);
    for (const id of range(6)) expect(stream.write(id)).toBe(true);
    await settle();
    expect(sink.delivered).toEqual(range(6));
    expect(drains).not.toHaveBeenCalled();
  });

  test('a write held at blocked is accepted when room frees, and its callback says so', async () => {
    const sink = new TestSink<number>().script({ kind: 'manual' });
    const stream = new BlockingWritable(sink.flush, { maxBufferSize: 2, batchSize: 2 });
    const outcomes: [number, boolean | undefined][] = [];
    for (const id of range(3)) stream.write(id, (error, accepted) => outcomes.push([id, error ? undefined : accepted]));
    await settle();
    expect(stream.getMetrics()).toMatchObject({ state: 'blocked', bufferSize: 2, waitingWrites: 1 });
    expect(outcomes).toEqual([
      [0, true],
      [1, true],
    ]);
    sink.resolveNext();
    await settle();
    expect(outcomes).toEqual([
      [0, true],
      [1, true],
      [2, true],
    ]);
    expect(stream.getMetrics()).toMatchObject({ bufferSize: 1, waitingWrites: 0 });
  });
});
