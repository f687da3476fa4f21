import { BackpressureError, BlockingWritable, DropOldestWritable } from '../lib';
import type { BackpressureWritable } from '../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from './support/test-sink';

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

interface DeadLetter {
  items: number[];
  error: BackpressureError<number>;
}

/** A block stream with 2 items in flight (hanging), 2 queued and 1 waiting write. */
function loaded(withDeadLetters: boolean) {
  const sink = new TestSink<number>().otherwise({ kind: 'hang' });
  const deadLetters: DeadLetter[] = [];
  const stream = new BlockingWritable(sink.flush, {
    maxBufferSize: 4,
    batchSize: 2,
    onDeadLetter: withDeadLetters ? (items, error) => void deadLetters.push({ items, error }) : undefined,
  });
  const callbacks: [number, string | undefined][] = [];
  for (const id of range(0, 5))
    stream.write(id, (error) => callbacks.push([id, (error as { code?: string } | null)?.code]));
  return { sink, stream, deadLetters, callbacks };
}

describe('destroy()', () => {
  test('held items (in flight, queued, waiting) go to the dead-letter path with reason destroyed', async () => {
    const { stream, deadLetters, callbacks } = loaded(true);
    await settle();
    const drains = jest.fn();
    stream.on('drain', drains);
    const cause = new Error('shutting down');
    stream.on('error', () => undefined);
    stream.destroy(cause);
    await settle();
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]?.items).toEqual(range(0, 5));
    expect(deadLetters[0]?.error).toMatchObject({ code: 'ERR_STREAM_DESTROYED', reason: 'destroyed', cause });
    // the waiting write's callback hears about it; accepted ones already had theirs
    expect(callbacks).toEqual([
      [0, undefined],
      [1, undefined],
      [2, undefined],
      [3, undefined],
      [4, 'ERR_STREAM_DESTROYED'],
    ]);
    expect(stream.write(5)).toBe(false);
    expect(drains).not.toHaveBeenCalled();
    const m = stream.getMetrics();
    expect(m).toMatchObject({ bufferSize: 0, waitingWrites: 0, deadLettered: 5, eventsOffered: 5 });
  });

  test('destroy(err) without a dead-letter path emits err itself and warns of the discarded items', async () => {
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const { stream } = loaded(false);
      const failed = new Promise<Error>((resolve) => stream.on('error', resolve));
      const cause = new Error('bye');
      stream.destroy(cause);
      expect(await failed).toBe(cause);
      expect(emitWarning).toHaveBeenCalledWith(
        expect.stringMatching(/held 5 item\(s\) and had no dead-letter path/),
        expect.objectContaining({ code: 'SLUICE_ITEMS_DISCARDED' }),
      );
      expect(stream.getMetrics()).toMatchObject({ bufferSize: 0, deadLettered: 5, eventsOffered: 5 });
    } finally {
      emitWarning.mockRestore();
    }
  });

  test('destroy() of an empty stream is quiet', async () => {
    const stream = new DropOldestWritable(new TestSink<number>().flush);
    const errors = jest.fn();
    stream.on('error', errors);
    const closed = new Promise((resolve) => stream.on('close', resolve));
    stream.destroy();
    await closed;
    expect(errors).not.toHaveBeenCalled();
  });

  test('a late result from a flush in flight at destroy is ignored', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    const stream = new BlockingWritable(sink.flush, { batchSize: 2, onDeadLetter: () => undefined });
    stream.write(0);
    stream.write(1);
    await settle();
    stream.destroy();
    sink.resolveNext();
    await settle();
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 0, deadLettered: 2, bufferSize: 0 });
  });
});

describe('signal', () => {
  test('aborting destroys the stream: held items are dead-lettered, the error is an AbortError', async () => {
    const controller = new AbortController();
    const sink = new TestSink<number>().otherwise({ kind: 'hang' });
    const deadLetters: DeadLetter[] = [];
    const stream = new BlockingWritable(sink.flush, {
      batchSize: 2,
      signal: controller.signal,
      onDeadLetter: (items, error) => void deadLetters.push({ items, error }),
    });
    const failed = new Promise<Error & { code?: string }>((resolve) => stream.on('error', resolve));
    stream.write(0);
    stream.write(1);
    stream.write(2);
    controller.abort();
    const error = await failed;
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(deadLetters[0]?.items).toEqual([0, 1, 2]);
    expect(deadLetters[0]?.error).toMatchObject({ code: 'ERR_STREAM_DESTROYED', reason: 'destroyed' });
  });

  test('an already aborted signal destroys the stream at once', async () => {
    const stream = new BlockingWritable(new TestSink<number>().flush, { signal: AbortSignal.abort() });
    const error = await new Promise<Error>((resolve) => stream.on('error', resolve));
    expect(error.name).toBe('AbortError');
    expect(stream.destroyed).toBe(true);
  });
});

describe('Node stream contract', () => {
  test('null writes throw ERR_STREAM_NULL_VALUES', () => {
    const stream = new BlockingWritable(new TestSink<number | null>().flush);
    expect(() => stream.write(null)).toThrow(expect.objectContaining({ code: 'ERR_STREAM_NULL_VALUES' }));
  });

  test('a write after end() gets ERR_STREAM_WRITE_AFTER_END', async () => {
    const stream = new BlockingWritable(new TestSink<number>().flush);
    const errors: (Error & { code?: string })[] = [];
    stream.on('error', (error) => errors.push(error));
    stream.end();
    const callbackError = await new Promise<Error | null | undefined>((resolve) => stream.write(1, resolve));
    expect(callbackError).toMatchObject({ code: 'ERR_STREAM_WRITE_AFTER_END' });
    await settle();
    expect(errors[0]).toMatchObject({ code: 'ERR_STREAM_WRITE_AFTER_END' });
  });

  test('end(chunk) routes the last chunk through the strategy', async () => {
    const sink = new TestSink<number>();
    const stream = new BlockingWritable(sink.flush);
    stream.write(1);
    const finished = new Promise((resolve) => stream.on('finish', resolve));
    stream.end(2);
    await finished;
    expect(sink.delivered).toEqual([1, 2]);
  });

  /** Records the timers made from now on, to ask how many pending ones hold the process open. */
  function watchTimers(): { refd: () => number; restore: () => void } {
    const pending = new Set<NodeJS.Timeout>();
    const realSet = global.setTimeout;
    const realClear = global.clearTimeout;
    const set = jest.spyOn(global, 'setTimeout').mockImplementation((callback: () => void, ms?: number) => {
      const timer = realSet(() => {
        pending.delete(timer);
        callback();
      }, ms);
      pending.add(timer);
      return timer;
    });
    const clear = jest.spyOn(global, 'clearTimeout').mockImplementation((timer?: NodeJS.Timeout | string | number) => {
      pending.delete(timer as NodeJS.Timeout);
      realClear(timer);
    });
    return {
      refd: () => [...pending].filter((timer) => timer.hasRef()).length,
      restore: () => {
        set.mockRestore();
        clear.mockRestore();
      },
    };
  }

  test("timers are unref'd while nobody waits on the sluice", () => {
    const { refd, restore } = watchTimers();
    try {
      const stream = new BlockingWritable(new TestSink<number>().otherwise({ kind: 'hang' }).flush, {
        batchSize: 2,
        flushTimeoutMs: 10_000,
        onDeadLetter: () => undefined,
      });
      for (const id of range(0, 3)) expect(stream.write(id)).toBe(true); // a flush timeout and a partial-batch timer
      expect(stream.getMetrics()).toMatchObject({ inFlight: 2, bufferSize: 3 });
      expect(refd()).toBe(0);
      stream.destroy();
    } finally {
      restore();
    }
  });

  test('once a producer waits for drain (or end() for finish), pending timers keep the process alive', async () => {
    const { refd, restore } = watchTimers();
    try {
      const sink = new TestSink<number>().otherwise({ kind: 'manual' });
      // batchSize 1: every item is a full batch, so the only timers are the flush timeouts
      const stream = new BlockingWritable(sink.flush, { maxBufferSize: 4, batchSize: 1, flushTimeoutMs: 10_000 });
      expect([0, 1, 2].map((id) => stream.write(id))).toEqual([true, true, true]);
      expect(refd()).toBe(0); // the timeout of the flush of [0] is unref'd
      expect(stream.write(3)).toBe(false); // the producer now waits on this sluice
      expect(refd()).toBe(1);
      for (const held of [3, 2]) {
        sink.resolveNext();
        await settle();
        expect(stream.getMetrics().bufferSize).toBe(held);
        expect(refd()).toBe(1); // still waiting for drain (below 0.5 x 4)
      }
      sink.resolveNext();
      await settle();
      expect(stream.writableNeedDrain).toBe(false); // drain fired: unref'd again
      expect(refd()).toBe(0);
      const finished = new Promise((resolve) => stream.on('finish', resolve));
      stream.end();
      expect(refd()).toBe(1); // end() awaits the last flush: its timeout holds the process open
      sink.resolveNext();
      await finished;
      expect(refd()).toBe(0);
    } finally {
      restore();
    }
  });
});

describe('no handle is left open', () => {
  beforeEach(useStreamFakeTimers);
  afterEach(() => jest.useRealTimers());

  test('after finish: partial-batch, retry and block timers are all cleared', async () => {
    const sink = new TestSink<number>().script({ kind: 'reject' });
    const stream = new BlockingWritable(sink.flush, {
      batchSize: 10,
      maxBufferSize: 10,
      flushTimeoutMs: 10_000,
      retry: { maxRetries: 1, initialDelayMs: 5, maxDelayMs: 5 },
    });
    for (const id of range(0, 15)) stream.write(id);
    expect(jest.getTimerCount()).toBeGreaterThan(0);
    const closed = new Promise((resolve) => stream.on('close', resolve));
    stream.end();
    await advance(100, 5);
    await closed;
    expect(sink.delivered).toEqual(range(0, 15));
    expect(jest.getTimerCount()).toBe(0);
  });

  test('after close by destroy()', async () => {
    const stream = new DropOldestWritable(new TestSink<number>().otherwise({ kind: 'hang' }).flush, {
      batchSize: 5,
      flushTimeoutMs: 10_000,
      onDeadLetter: () => undefined,
    });
    for (const id of range(0, 7)) stream.write(id);
    expect(jest.getTimerCount()).toBeGreaterThan(0);
    stream.destroy();
    await new Promise((resolve) => stream.on('close', resolve));
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('shutdown({ timeoutMs })', () => {
  beforeEach(useStreamFakeTimers);
  afterEach(() => jest.useRealTimers());

  test('everything delivered in time: resolves with nothing undelivered', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'delay', ms: 100 });
    const stream = new BlockingWritable(sink.flush, { batchSize: 2 });
    for (const id of range(0, 5)) stream.write(id);
    const result = stream.shutdown({ timeoutMs: 1000 });
    await advance(400, 10);
    await expect(result).resolves.toEqual({ undelivered: [] });
    expect(sink.delivered).toEqual(range(0, 5));
  });

  test('at the deadline, every unconfirmed item is dead-lettered with shutdown_timeout and returned', async () => {
    const sink = new TestSink<number>().script({ kind: 'ok' }, { kind: 'reject' }).otherwise({ kind: 'hang' });
    const deadLetters: DeadLetter[] = [];
    const stream: BackpressureWritable<number> = new BlockingWritable(sink.flush, {
      batchSize: 2,
      maxBufferSize: 4,
      retry: { maxRetries: 5, initialDelayMs: 50, maxDelayMs: 50 },
      onDeadLetter: (items, error) => void deadLetters.push({ items, error }),
    });
    const errors = jest.fn();
    stream.on('error', errors);
    for (const id of range(0, 7)) stream.write(id); // 0-1 delivered, 2-3 fail then hang, 4.. queued or waiting
    const result = stream.shutdown({ timeoutMs: 1000 });
    expect(stream.shutdown({ timeoutMs: 5 })).toBe(result);
    await advance(999, 50);
    expect(deadLetters).toEqual([]);
    await advance(1, 1);
    const { undelivered } = await result;
    expect(undelivered).toEqual(range(2, 7));
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]?.items).toEqual(range(2, 7));
    expect(deadLetters[0]?.error).toMatchObject({ code: 'ERR_SHUTDOWN_TIMEOUT', reason: 'shutdown_timeout' });
    expect(stream.destroyed).toBe(true);
    await settle();
    expect(errors).not.toHaveBeenCalled();
    const m = stream.getMetrics();
    expect(m.eventsOffered).toBe(m.eventsFlushed + m.deadLettered + m.eventsDropped + m.bufferSize + m.waitingWrites);
    expect(m).toMatchObject({ eventsFlushed: 2, deadLettered: 5, bufferSize: 0 });
  });

  test.each([
    [{ timeoutMs: -1 }, 'ERR_OUT_OF_RANGE'],
    [{ timeoutMs: '5' }, 'ERR_INVALID_ARG_TYPE'],
    [undefined, 'ERR_INVALID_ARG_TYPE'],
  ])('bad options %p throw %s', (options, code) => {
    const stream = new BlockingWritable(new TestSink<number>().flush);
    expect(() => stream.shutdown(options as never)).toThrow(expect.objectContaining({ code }));
  });
});
