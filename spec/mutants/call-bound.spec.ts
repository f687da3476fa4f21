import { BlockingWritable } from '../../lib';
import { CallContext } from '../../lib/engine/call';
import { advance, useStreamFakeTimers } from '../support/test-sink';
import type { BackpressureOptions, FlushContext } from '../../lib';

/**
 * The bound on unsettled sink calls (lib/engine/call.ts), at the level of single
 * calls: at most 2 × maxConcurrentFlushes unsettled, the place of a settling call
 * handed to the oldest waiting batch, and a batch taken by destroy() between being
 * handed a place and using it never calls the sink. Written for mutants that
 * survived a Stryker run (docs/quality.md).
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

interface Call {
  items: string[];
  attempt: number;
  /** The promise the sink returned: settles only when the test says so (the sink ignores its signal). */
  promise: Promise<void>;
  resolve: () => void;
}

/** A sink whose calls never settle by themselves and ignore their signal (a black hole). */
function blackHole(): { calls: Call[]; flush: (items: string[], context: FlushContext) => Promise<void> } {
  const calls: Call[] = [];
  return {
    calls,
    flush: (items, { attempt }) => {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      calls.push({ items: [...items], attempt, promise, resolve });
      return promise;
    },
  };
}

const OPTIONS: BackpressureOptions<string> = {
  batchSize: 1,
  flushTimeoutMs: 50,
  retry: { maxRetries: 10, initialDelayMs: 0, maxDelayMs: 0 },
};

const summary = (calls: Call[]): string[] => calls.map((call) => `${call.items.join('')}${call.attempt}`);

test('with 2 flush slots, at most 4 calls are unsettled; a settling call hands its place to the oldest waiting batch', async () => {
  const sink = blackHole();
  const stream = new BlockingWritable<string>(sink.flush, { ...OPTIONS, maxConcurrentFlushes: 2 });
  stream.on('deadletter', () => undefined);
  stream.write('A');
  stream.write('B');
  await advance(1, 1);
  expect(summary(sink.calls)).toEqual(['A1', 'B1']);
  await advance(50, 1); // both time out and are retried at once: 4 unsettled calls
  expect(summary(sink.calls)).toEqual(['A1', 'B1', 'A2', 'B2']);
  await advance(50, 1); // both time out again: no room, A waits first, then B
  await advance(20, 1);
  expect(sink.calls).toHaveLength(4);

  (sink.calls[1] as Call).resolve(); // B's first call settles late (ignored): its place goes to A, the oldest waiter
  await advance(1, 1);
  expect(summary(sink.calls)).toEqual(['A1', 'B1', 'A2', 'B2', 'A3']);
  (sink.calls[0] as Call).resolve();
  await advance(1, 1);
  expect(summary(sink.calls)).toEqual(['A1', 'B1', 'A2', 'B2', 'A3', 'B3']);
  expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 0, inFlight: 2 });

  (sink.calls[4] as Call).resolve(); // A3 settles in time: A delivered
  (sink.calls[5] as Call).resolve();
  await advance(1, 1);
  expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 2, inFlight: 0, bufferSize: 0 });
  stream.destroy();
});

test('with 1 flush slot: 2 unsettled calls, a wait for a place that outlasts flushTimeoutMs is a timed-out try', async () => {
  const sink = blackHole();
  const deadLetters: { items: string[]; code: string }[] = [];
  const stream = new BlockingWritable<string>(sink.flush, {
    ...OPTIONS,
    maxConcurrentFlushes: 1,
    retry: { maxRetries: 3, initialDelayMs: 0, maxDelayMs: 0 },
  });
  stream.on('deadletter', (items: string[], error: { code: string }) => deadLetters.push({ items, code: error.code }));
  stream.write('A'); // t=0: call 1; t=50 it times out, t=51 call 2 (backoff 0 is a 1 ms timer)
  await advance(52, 1);
  expect(summary(sink.calls)).toEqual(['A1', 'A2']);
  // t=101 call 2 times out; two waits for a place follow (t=102..152, t=153..203), each a timed-out try:
  // 4 tries = 1 + maxRetries, so A is dead-lettered at t=203, with no third call.
  await advance(150, 1); // t=202
  expect(deadLetters).toEqual([]);
  expect(stream.getMetrics()).toMatchObject({ retries: 3, deadLettered: 0, inFlight: 1 });
  await advance(2, 1);
  expect(deadLetters).toEqual([{ items: ['A'], code: 'ERR_FLUSH_TIMEOUT' }]);
  expect(stream.getMetrics()).toMatchObject({ retries: 3, deadLettered: 1, bufferSize: 0 });
  expect(sink.calls).toHaveLength(2);
  stream.destroy();
});

test('a batch handed a place and destroyed before it uses it never calls the sink again', async () => {
  const sink = blackHole();
  const stream = new BlockingWritable<string>(sink.flush, { ...OPTIONS, maxConcurrentFlushes: 1 });
  stream.on('deadletter', () => undefined);
  stream.write('A');
  await advance(1, 1);
  await advance(50, 1);
  await advance(55, 1); // A's third try waits for a place
  expect(summary(sink.calls)).toEqual(['A1', 'A2']);

  const first = sink.calls[0] as Call;
  // The engine's reaction to the first call settling runs before this one: it hands the place to A;
  // then, before A can use it, the stream is destroyed.
  void first.promise.then(() => stream.destroy());
  first.resolve();
  await advance(200, 10);
  expect(sink.calls).toHaveLength(2);
  expect(stream.destroyed).toBe(true);
  expect(stream.getMetrics()).toMatchObject({ deadLettered: 1, bufferSize: 0, inFlight: 0 });
});

describe('CallContext: the AbortController is made when the sink reads signal', () => {
  test('an abort before the first read is applied when signal is read, with its reason', () => {
    const context = new CallContext(3);
    expect(context.attempt).toBe(3);
    const reason = new Error('given up');
    context.abort(reason);
    const { signal } = context;
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
  });

  test('signal is not aborted until abort(), and the same signal is returned on every read', () => {
    const context = new CallContext(1);
    const signal = context.signal;
    expect(signal.aborted).toBe(false);
    expect(context.signal).toBe(signal);
    const reason = new Error('timeout');
    context.abort(reason);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
    expect(context.signal).toBe(signal);
  });

  test('only the first abort counts, read before or after', () => {
    const first = new Error('first');
    const early = new CallContext(1);
    early.abort(first);
    early.abort(new Error('second'));
    expect(early.signal.reason).toBe(first);

    const late = new CallContext(1);
    const signal = late.signal;
    const heard: unknown[] = [];
    signal.addEventListener('abort', () => heard.push(signal.reason));
    late.abort(first);
    late.abort(new Error('second'));
    expect(heard).toEqual([first]);
    expect(signal.reason).toBe(first);
  });
});
