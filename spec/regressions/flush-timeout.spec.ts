import { BackpressureError, BlockingWritable } from '../../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from '../support/test-sink';
import { codeOf, recordCalls } from './helpers';

/**
 * Issue 9, defect 1: a timed-out flush was never cancelled. With flushTimeoutMs 20, one flush slot
 * and a sink that never settles, the engine kept starting fresh calls (72 running at once after 2 s).
 * Now the flush function gets `{ signal, attempt }`; the signal is aborted on the timeout, on
 * destroy() and at the shutdown deadline; at most maxConcurrentFlushes abandoned calls may still be
 * unsettled, so at most 2 x maxConcurrentFlushes calls run at once.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

const TIMEOUT_MS = 20;
const noRetryDelay = { initialDelayMs: 0, maxDelayMs: 0 };

describe('defect 1: a timed-out flush is cancelled, and abandoned calls are bounded', () => {
  test.each([1, 2])(
    'defect 1: a sink that never settles: at most 2 x maxConcurrentFlushes (%i) calls are ever unsettled, each timed-out call is aborted',
    async (slots) => {
      const batchSize = 10;
      const sink = new TestSink<number>().otherwise({ kind: 'hang' }); // ignores the signal, too
      const { flush, calls } = recordCalls(sink.flush);
      const stream = new BlockingWritable(flush, {
        maxBufferSize: 100,
        batchSize,
        flushTimeoutMs: TIMEOUT_MS,
        maxConcurrentFlushes: slots,
        retry: { maxRetries: 3, ...noRetryDelay },
        onDeadLetter: () => undefined,
      });
      for (const id of range(0, 100)) stream.write(id);
      /** Calls past their timeout (none settles) whose signal was not aborted with ERR_FLUSH_TIMEOUT. */
      const notAborted = new Set<number>();
      for (let elapsed = 0; elapsed < 2000; elapsed += 10) {
        await advance(10, 10);
        expect(sink.inFlight).toBeLessThanOrEqual(2 * slots);
        const itemsInOpenCalls = sink.openBatches().reduce((n, batch) => n + batch.length, 0);
        expect(itemsInOpenCalls).toBeLessThanOrEqual(2 * slots * batchSize);
        calls.forEach((call, i) => {
          if (Date.now() - call.at <= TIMEOUT_MS) return;
          const reason: unknown = call.context?.signal.reason;
          const aborted = call.context?.signal.aborted === true;
          if (!aborted || !(reason instanceof BackpressureError) || codeOf(reason) !== 'ERR_FLUSH_TIMEOUT') {
            notAborted.add(i);
          }
        });
      }
      expect([...notAborted]).toEqual([]);
      // Each batch was retried on a fresh call before the bound stopped new calls.
      expect(calls.length).toBeGreaterThanOrEqual(2 * slots);
      stream.destroy();
    },
  );

  test('defect 1: the retry of a timed-out batch gets a fresh, unaborted signal; the timed-out one is aborted with ERR_FLUSH_TIMEOUT', async () => {
    const sink = new TestSink<number>().script({ kind: 'hang' }).otherwise({ kind: 'ok' });
    const { flush, calls } = recordCalls(sink.flush);
    const stream = new BlockingWritable(flush, {
      batchSize: 4,
      flushTimeoutMs: TIMEOUT_MS,
      retry: { maxRetries: 2, ...noRetryDelay },
      onDeadLetter: () => undefined,
    });
    for (const id of range(0, 4)) stream.write(id);
    await settle();
    expect(calls).toHaveLength(1);
    expect(calls[0]?.context?.signal.aborted).toBe(false);
    await advance(TIMEOUT_MS + 10, 5);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.items).toEqual(range(0, 4));
    expect(calls[1]?.abortedAtCall).toBe(false);
    expect(calls[1]?.context?.signal).not.toBe(calls[0]?.context?.signal);
    expect(calls[0]?.context?.signal.aborted).toBe(true);
    expect(calls[0]?.context?.signal.reason).toMatchObject({ code: 'ERR_FLUSH_TIMEOUT' });
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 4, bufferSize: 0 });
    // The retry succeeded: its signal is left alone.
    expect(calls[1]?.context?.signal.aborted).toBe(false);
  });

  test('defect 1: once an abandoned call settles, the next call may start (the bound is not a deadlock)', async () => {
    const sink = new TestSink<number>().script({ kind: 'hang' }, { kind: 'hang' }).otherwise({ kind: 'ok' });
    const { flush, calls } = recordCalls(sink.flush);
    const stream = new BlockingWritable(flush, {
      batchSize: 10,
      flushTimeoutMs: TIMEOUT_MS,
      maxConcurrentFlushes: 1,
      retry: { maxRetries: 5, ...noRetryDelay },
      onDeadLetter: () => undefined,
    });
    for (const id of range(0, 10)) stream.write(id);
    // Two calls time out (t = 20, 40); the third try waits for a call slot (both are held by the
    // abandoned calls) and is still waiting at t = 50.
    await advance(2 * TIMEOUT_MS + TIMEOUT_MS / 2, 5);
    expect(calls).toHaveLength(2);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 0, bufferSize: 10 });
    sink.resolveNext(); // the first call finally answers; its (late) result is ignored
    await advance(5, 5);
    expect(calls).toHaveLength(3);
    expect(calls[2]?.context?.attempt).toBe(3);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 10, bufferSize: 0 });
    sink.resolveNext(); // the second one, later still: ignored as well
    await settle();
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 10, bufferSize: 0, deadLettered: 0 });
  });

  test('defect 1: a sink that never settles and ignores its signal ends in dead letters, never in a stall', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'hang' });
    const { flush, calls } = recordCalls(sink.flush);
    const deadLetters: { items: number[]; code: string }[] = [];
    const stream = new BlockingWritable(flush, {
      batchSize: 10,
      flushTimeoutMs: TIMEOUT_MS,
      maxConcurrentFlushes: 1,
      retry: { maxRetries: 3, ...noRetryDelay },
      onDeadLetter: (items, error) => void deadLetters.push({ items, code: error.code }),
    });
    for (const id of range(0, 10)) stream.write(id);
    const finished = new Promise((resolve) => stream.on('finish', resolve));
    stream.end();
    // Four tries of 20 ms each: two calls, then two tries that found no free call slot in time.
    await advance(10 * TIMEOUT_MS, 5);
    await finished;
    expect(calls).toHaveLength(2);
    expect(sink.maxInFlight).toBe(2);
    expect(deadLetters).toEqual([{ items: range(0, 10), code: 'ERR_FLUSH_TIMEOUT' }]);
    expect(stream.getMetrics()).toMatchObject({ bufferSize: 0, deadLettered: 10, retries: 3 });
  });

  test('defect 1: attempt counts 1, 2, 3 across the retries of a batch and starts at 1 for the next batch', async () => {
    const sink = new TestSink<number>().script({ kind: 'reject' }, { kind: 'throw' }).otherwise({ kind: 'ok' });
    const { flush, calls } = recordCalls(sink.flush);
    const stream = new BlockingWritable(flush, { batchSize: 4, retry: { maxRetries: 3, ...noRetryDelay } });
    for (const id of range(0, 8)) stream.write(id);
    const finished = jest.fn();
    stream.on('finish', finished);
    stream.end();
    await advance(100, 5);
    expect(finished).toHaveBeenCalled();
    expect(calls.map((call) => call.items)).toEqual([range(0, 4), range(0, 4), range(0, 4), range(4, 8)]);
    expect(calls.map((call) => call.context?.attempt)).toEqual([1, 2, 3, 1]);
    expect(calls.map((call) => call.abortedAtCall)).toEqual([false, false, false, false]);
  });

  test('defect 1: the late result of an abandoned call is ignored: the batch counts as delivered once', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    const { flush, calls } = recordCalls(sink.flush);
    const stream = new BlockingWritable(flush, {
      batchSize: 4,
      flushTimeoutMs: TIMEOUT_MS,
      retry: { maxRetries: 2, ...noRetryDelay },
      onDeadLetter: () => undefined,
    });
    for (const id of range(0, 4)) stream.write(id);
    await advance(TIMEOUT_MS + 5, 5);
    expect(calls).toHaveLength(2);
    sink.resolveNext(); // the abandoned first call says "delivered", late: ignored, the retry still runs
    await settle();
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 0, bufferSize: 4, inFlight: 4 });
    sink.resolveNext(); // the retry answers
    await settle();
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 4, bufferSize: 0 });
    const finished = jest.fn();
    stream.on('finish', finished);
    stream.end();
    await advance(50, 5);
    expect(finished).toHaveBeenCalled();
    expect(calls).toHaveLength(2);
    expect(stream.getMetrics()).toMatchObject({ eventsOffered: 4, eventsFlushed: 4, deadLettered: 0, retries: 1 });
  });

  test('defect 1: destroy() aborts the signal of a call in flight with ERR_STREAM_DESTROYED', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'hang' });
    const { flush, calls } = recordCalls(sink.flush);
    const stream = new BlockingWritable(flush, { batchSize: 4, onDeadLetter: () => undefined });
    for (const id of range(0, 4)) stream.write(id);
    await settle();
    expect(calls).toHaveLength(1);
    expect(calls[0]?.context?.signal.aborted).toBe(false);
    stream.destroy();
    await settle();
    expect(calls[0]?.context?.signal.aborted).toBe(true);
    expect(calls[0]?.context?.signal.reason).toBeInstanceOf(BackpressureError);
    expect(calls[0]?.context?.signal.reason).toMatchObject({ code: 'ERR_STREAM_DESTROYED' });
  });

  test('defect 1: the shutdown deadline aborts the signal of a call in flight with ERR_SHUTDOWN_TIMEOUT', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'hang' });
    const { flush, calls } = recordCalls(sink.flush);
    const stream = new BlockingWritable(flush, { batchSize: 4, onDeadLetter: () => undefined });
    for (const id of range(0, 4)) stream.write(id);
    await settle();
    let result: unknown = 'pending';
    void stream.shutdown({ timeoutMs: 50 }).then((value) => (result = value));
    await advance(40, 10);
    expect(calls[0]?.context?.signal.aborted).toBe(false);
    await advance(20, 10);
    expect(result).toEqual({ undelivered: range(0, 4) });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.context?.signal.aborted).toBe(true);
    expect(calls[0]?.context?.signal.reason).toBeInstanceOf(BackpressureError);
    expect(calls[0]?.context?.signal.reason).toMatchObject({ code: 'ERR_SHUTDOWN_TIMEOUT' });
  });
});
