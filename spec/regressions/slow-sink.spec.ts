import { BlockingWritable } from '../../lib';
import { TestSink, advance, useStreamFakeTimers } from '../support/test-sink';
import { recordCalls } from './helpers';

/**
 * Issue 9, defect 14: a slow sink was throttled further. While the sink's latency stayed above
 * targetLatencyMs, consecutive flushes were spaced by the growing interval even with the buffer
 * full and the producer blocked (150 items/s delivered against a sink capacity of 1,250). The
 * interval decides only when a partial batch goes; a full batch goes as soon as a flush slot is free.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

const SINK_MS = 20; // above 1.5 x targetLatencyMs: the interval grows after every flush
const options = { maxBufferSize: 100, batchSize: 10, targetLatencyMs: 10, minFlushIntervalMs: 100 };

describe('defect 14: a full batch goes as soon as a flush slot is free, whatever the latency', () => {
  test('defect 14: a full buffer behind a sink slower than targetLatencyMs: full batches back to back', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'delay', ms: SINK_MS });
    const { flush, calls } = recordCalls(sink.flush);
    const stream = new BlockingWritable(flush, options);
    const start = Date.now();
    for (const id of range(0, 100)) stream.write(id); // full: the producer is told to wait
    await advance(10 * SINK_MS + 50, 5);
    // Each call starts when the one before it settles: no spacing between full batches.
    expect(calls.map((call) => call.at - start)).toEqual(range(0, 10).map((i) => i * SINK_MS));
    expect(calls.map((call) => call.items.length)).toEqual(Array(10).fill(10));
    expect(sink.delivered).toEqual(range(0, 100));
    // The latency was above target all along: the interval did grow (for partial batches).
    expect(stream.getMetrics().currentFlushIntervalMs).toBeGreaterThan(options.minFlushIntervalMs);
  });

  test('defect 14 (control): a partial batch still waits for the current flush interval', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'delay', ms: SINK_MS });
    const { flush, calls } = recordCalls(sink.flush);
    const stream = new BlockingWritable(flush, options);
    const start = Date.now();
    for (const id of range(0, 13)) stream.write(id); // one full batch, then 3 items
    await advance(60, 5);
    expect(calls.map((call) => call.at - start)).toEqual([0]); // the partial batch is not due yet
    const interval = stream.getMetrics().currentFlushIntervalMs; // grown from 100 after a slow flush
    expect(interval).toBeGreaterThan(options.minFlushIntervalMs);
    await advance(400, 5);
    expect(calls.map((call) => call.items)).toEqual([range(0, 10), range(10, 13)]);
    // It went no earlier than the interval after its oldest item arrived (at 0).
    expect(calls[1]?.at).toBeGreaterThanOrEqual(start + interval);
  });
});
