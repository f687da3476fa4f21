import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackpressureError, BlockingWritable, DropOldestWritable } from '../../lib';
import { advance, settle, useStreamFakeTimers } from '../support/test-sink';
import { TestSink, balanced, outcome, range, writevSubclass } from './helpers';
import type { BackpressureOptions, BackpressureWritable, WritevCallback, WritevChunks } from '../../lib';
import type { SinkBehaviour } from '../support/test-sink';

/**
 * What `_writev`'s callback means, and that the Node-shaped hook is handled exactly as a flush
 * function is: the same script of sink behaviours runs through a `_writev` subclass and through a
 * flush function, and every item must end up in the same place, with the same counters.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

const OPTIONS: BackpressureOptions<number> = {
  batchSize: 4,
  retry: { maxRetries: 2, initialDelayMs: 10, maxDelayMs: 40 },
};

interface Run {
  stream: BackpressureWritable<number>;
  sink: TestSink<number>;
  deadLetters: { items: number[]; code: string; reason: string | undefined; cause: unknown }[];
}

function run(form: 'flush' | '_writev', script: SinkBehaviour<number>[], options: BackpressureOptions<number>): Run {
  const sink = new TestSink<number>().script(...script);
  const deadLetters: Run['deadLetters'] = [];
  const all = { ...OPTIONS, ...options };
  const stream =
    form === 'flush' ? new BlockingWritable(sink.flush, all) : new (writevSubclass(BlockingWritable, sink))(all);
  stream.on('deadletter', (items, error) =>
    deadLetters.push({ items, code: error.code, reason: error.reason, cause: error.cause }),
  );
  return { stream, sink, deadLetters };
}

async function finish(stream: BackpressureWritable<number>): Promise<void> {
  const finished = new Promise((resolve) => stream.once('finish', resolve));
  stream.end();
  await advance(1000, 10);
  await finished;
}

const sinkError = new Error('db down');

describe.each([
  ['callback(err) on every call: retried, then dead-lettered', [], { kind: 'reject', error: sinkError }, {}],
  ['a synchronous throw on every call: retried, then dead-lettered', [], { kind: 'throw', error: sinkError }, {}],
  [
    'callback(err) twice, then callback(): delivered on the third attempt',
    [
      { kind: 'reject', error: sinkError },
      { kind: 'reject', error: sinkError },
    ],
    { kind: 'ok' },
    {},
  ],
  [
    'callback(null, result) with failedItems: only those are retried',
    [{ kind: 'fail-items', predicate: (n: number) => n % 4 === 1 }],
    { kind: 'ok' },
    {},
  ],
  [
    'callback(null, result) naming one item that always fails: it alone is dead-lettered',
    [],
    { kind: 'fail-items', predicate: (n: number) => n === 6 },
    {},
  ],
  [
    'callback(err), then bisection isolates the bad item',
    [],
    { kind: 'result-for', make: (batch: readonly number[]) => (batch.includes(5) ? failAll(batch) : undefined) },
    { isolateFailures: 'bisect' },
  ],
  [
    'callback(null, result) that does not add up: ERR_INVALID_FLUSH_RESULT',
    [{ kind: 'result', result: { success: 1, failed: 1, errors: [] } }],
    { kind: 'ok' },
    {},
  ],
  [
    'callback(null, a result whose counts throw when read): failed, retried, delivered',
    [{ kind: 'result', result: throwingResult() }],
    { kind: 'ok' },
    {},
  ],
  [
    'callback(null, something that is not a FlushResult): delivered',
    [{ kind: 'result', result: { rowCount: 4 } }],
    { kind: 'ok' },
    {},
  ],
] as [string, SinkBehaviour<number>[], SinkBehaviour<number>, BackpressureOptions<number>][])(
  '%s',
  (_title, script, otherwise, options) => {
    test('the _writev form ends exactly as the flush-function form', async () => {
      const runs = await Promise.all(
        (['flush', '_writev'] as const).map(async (form) => {
          const r = run(form, script, options);
          r.sink.otherwise(otherwise);
          for (const id of range(0, 8)) r.stream.write(id);
          await finish(r.stream);
          return r;
        }),
      );
      const [byFlush, byWritev] = runs as [Run, Run];
      expect(byWritev.sink.calls).toEqual(byFlush.sink.calls);
      expect(byWritev.sink.delivered).toEqual(byFlush.sink.delivered);
      expect(byWritev.deadLetters).toEqual(byFlush.deadLetters);
      expect(outcome(byWritev.stream.getMetrics())).toEqual(outcome(byFlush.stream.getMetrics()));
      expect(balanced(byWritev.stream.getMetrics())).toBe(true);
    });
  },
);

/** A result that cannot be read: its `success` getter throws. */
function throwingResult(): unknown {
  return Object.defineProperty({ failed: 0, errors: [] }, 'success', {
    get(): never {
      throw new Error('unreadable result');
    },
    enumerable: true,
  });
}

function failAll(batch: readonly number[]): unknown {
  return { success: 0, failed: batch.length, errors: [sinkError] };
}

describe('callback(err): retried with backoff, then dead-lettered', () => {
  test('attempts 1, 2, 3 on fresh chunk arrays, then the items go to the dead-letter path with the error as cause', async () => {
    const { stream, sink, deadLetters } = run('_writev', [], {});
    sink.otherwise({ kind: 'reject', error: sinkError });
    for (const id of range(0, 4)) stream.write(id);
    await finish(stream);
    const arrays = (stream as unknown as { chunkArrays: WritevChunks<number>[] }).chunkArrays;
    expect(arrays.map((chunks) => chunks.attempt)).toEqual([1, 2, 3]);
    expect(new Set(arrays).size).toBe(3);
    expect(deadLetters).toEqual([
      { items: range(0, 4), code: 'ERR_FLUSH_FAILED', reason: 'retries_exhausted', cause: sinkError },
    ]);
    expect(stream.getMetrics()).toMatchObject({ retries: 2, deadLettered: 4, eventsFlushed: 0 });
  });

  test('without a dead-letter path, the stream errors with a BackpressureError carrying the items', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'reject', error: sinkError });
    const stream = new (writevSubclass(BlockingWritable, sink))({ ...OPTIONS, retry: { maxRetries: 0 } });
    const failed = new Promise<unknown>((resolve) => stream.once('error', resolve));
    for (const id of range(0, 4)) stream.write(id);
    await settle();
    await expect(failed).resolves.toMatchObject({ code: 'ERR_FLUSH_FAILED', items: range(0, 4), cause: sinkError });
  });
});

describe('what _writev receives', () => {
  test('one batch of { chunk, encoding } in write order, signal and attempt on the array, this = the stream', async () => {
    const seen: { chunks: WritevChunks<number>; self: unknown }[] = [];
    class Sink extends DropOldestWritable<number> {
      override _writev(chunks: WritevChunks<number>, callback: WritevCallback<number>): void {
        seen.push({ chunks, self: this });
        callback();
      }
    }
    const stream = new Sink({ batchSize: 3 });
    stream.write(1);
    stream.write(2, 'latin1');
    stream.write(3);
    await settle();
    expect(seen).toHaveLength(1);
    const [{ chunks, self }] = seen as [{ chunks: WritevChunks<number>; self: unknown }];
    expect(self).toBe(stream);
    expect([...chunks]).toEqual([
      { chunk: 1, encoding: undefined },
      { chunk: 2, encoding: undefined },
      { chunk: 3, encoding: undefined },
    ]);
    expect(chunks.signal).toBeInstanceOf(AbortSignal);
    expect(chunks.signal.aborted).toBe(false);
    expect(chunks.attempt).toBe(1);
  });

  test('a call past flushTimeoutMs has its signal aborted (ERR_FLUSH_TIMEOUT); the retry gets a fresh array and signal', async () => {
    const calls: WritevChunks<number>[] = [];
    const stream = new BlockingWritable<number>({
      writev(chunks, callback) {
        calls.push(chunks);
        if (chunks.attempt === 2) callback();
      },
      batchSize: 2,
      flushTimeoutMs: 50,
      retry: { maxRetries: 1, initialDelayMs: 0, maxDelayMs: 0 },
    });
    stream.write(1);
    stream.write(2);
    await advance(100, 10);
    expect(calls.map((chunks) => chunks.attempt)).toEqual([1, 2]);
    const [first, second] = calls as [WritevChunks<number>, WritevChunks<number>];
    expect(first.signal.aborted).toBe(true);
    expect(first.signal.reason).toMatchObject({ code: 'ERR_FLUSH_TIMEOUT' });
    expect(second).not.toBe(first);
    expect(second.signal.aborted).toBe(false);
    expect([...first].map((c) => c.chunk)).toEqual([1, 2]); // kept by the sink, untouched by the retry
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 2, retries: 1 });
  });

  test('the AbortController behind `signal` is made only for a sink that reads it', async () => {
    const RealAbortController = globalThis.AbortController;
    let made = 0;
    globalThis.AbortController = class extends RealAbortController {
      constructor() {
        super();
        made++;
      }
    };
    try {
      const reads: boolean[] = [];
      const stream = new BlockingWritable<number>({
        writev(chunks, callback) {
          if (chunks.attempt === 1 && chunks[0]?.chunk === 0) reads.push(chunks.signal.aborted);
          callback();
        },
        batchSize: 2,
      });
      for (let i = 0; i < 8; i++) stream.write(i);
      await settle();
      expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 8, batches: 4 });
      expect(reads).toEqual([false]);
      expect(made).toBe(1); // the first call's, read by the sink; the other three calls made none
    } finally {
      globalThis.AbortController = RealAbortController;
    }
  });

  test('destroy() aborts the signal of the call in flight', async () => {
    const calls: WritevChunks<number>[] = [];
    const stream = new BlockingWritable<number>({ writev: (chunks) => void calls.push(chunks), batchSize: 1 });
    stream.on('deadletter', () => undefined);
    stream.write(1);
    await settle();
    stream.destroy();
    expect(calls[0]?.signal.aborted).toBe(true);
    expect(calls[0]?.signal.reason).toMatchObject({ code: 'ERR_STREAM_DESTROYED' });
  });
});

describe('a callback called twice: ERR_MULTIPLE_CALLBACK, as Node', () => {
  /** A stream whose _writev does `behave(callback)`; every item is accounted for through 'deadletter'. */
  function twice(behave: (callback: WritevCallback<number>) => void) {
    const deadLettered: number[] = [];
    const errors: unknown[] = [];
    class Sink extends BlockingWritable<number> {
      override _writev(_chunks: WritevChunks<number>, callback: WritevCallback<number>): void {
        behave(callback);
      }
    }
    const stream = new Sink({ batchSize: 2, retry: { maxRetries: 1, initialDelayMs: 10, maxDelayMs: 10 } });
    stream.on('deadletter', (items) => deadLettered.push(...items));
    stream.on('error', (error) => errors.push(error));
    return { stream, deadLettered, errors };
  }

  test.each([
    ['callback(); callback() in one go', (cb: WritevCallback<number>) => (cb(), cb())],
    ['callback(); callback(err) in one go', (cb: WritevCallback<number>) => (cb(), cb(new Error('late')))],
    ['callback(err); callback() in one go', (cb: WritevCallback<number>) => (cb(new Error('first')), cb())],
    ['callback() now and again later', (cb: WritevCallback<number>) => (cb(), setTimeout(cb, 5))],
    [
      'callback(null, partial result) now, callback() later',
      (cb: WritevCallback<number>) => {
        cb(null, { success: 1, failed: 1, errors: [], failedItems: [] as number[] });
        setTimeout(cb, 5);
      },
    ],
    [
      'a throw after callback()',
      (cb: WritevCallback<number>) => {
        cb();
        throw new Error('after the callback');
      },
    ],
  ])('%s: one "error" with code ERR_MULTIPLE_CALLBACK; every item counted once', async (_title, behave) => {
    const { stream, deadLettered, errors } = twice(behave);
    for (const id of range(0, 6)) stream.write(id);
    await advance(100, 5);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(Error);
    expect(errors[0]).toMatchObject({ code: 'ERR_MULTIPLE_CALLBACK' });
    expect(stream.destroyed).toBe(true);
    const m = stream.getMetrics();
    // Delivered or dead-lettered (as destroyed, or as failed), never both and never neither. A double
    // call in the first batch destroys the stream inside the write that cut it: later writes are refused.
    expect(m.eventsOffered).toBeGreaterThanOrEqual(2);
    expect(m.eventsFlushed + m.deadLettered).toBe(m.eventsOffered);
    expect(m.deadLettered).toBe(deadLettered.length);
    expect(new Set(deadLettered).size).toBe(deadLettered.length);
    expect(balanced(m)).toBe(true);
    expect(m.bufferSize).toBe(0);
  });

  test('a second call that comes after the stream finished changes nothing', async () => {
    let later: WritevCallback<number> | undefined;
    const { stream, errors } = twice((cb) => {
      cb();
      later = cb;
    });
    stream.write(1);
    stream.end();
    await settle();
    expect(stream.writableFinished).toBe(true);
    later?.();
    await settle();
    expect(errors).toEqual([]);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 1, deadLettered: 0 });
  });

  test('the error carries what the second call passed as its cause', async () => {
    const late = new Error('late');
    const { stream, errors } = twice((cb) => (cb(), cb(late)));
    stream.write(1);
    stream.write(2);
    await settle();
    expect((errors[0] as Error).cause).toBe(late);
  });
});

describe('a synchronous throw counts as callback(err)', () => {
  test('thrown on the first attempt, delivered on the retry', async () => {
    let attempts = 0;
    const stream = new BlockingWritable<number>({
      writev(chunks, callback) {
        attempts = chunks.attempt;
        if (chunks.attempt === 1) throw new Error('connection reset');
        callback();
      },
      batchSize: 2,
      retry: { maxRetries: 1, initialDelayMs: 10, maxDelayMs: 10 },
    });
    stream.write(1);
    stream.write(2);
    await finish(stream);
    expect(attempts).toBe(2);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 2, retries: 1, deadLettered: 0 });
  });

  test('a thrown non-Error (even undefined) is a failure, not a success', async () => {
    const codes: string[] = [];
    const stream = new BlockingWritable<number>({
      writev() {
        throw undefined; // eslint-disable-line @typescript-eslint/only-throw-error -- what a careless sink may do
      },
      batchSize: 1,
      retry: { maxRetries: 0 },
      onDeadLetter: (_items, error) => void codes.push(error.code),
    });
    stream.write(1);
    await finish(stream);
    expect(codes).toEqual(['ERR_FLUSH_FAILED']);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 0, deadLettered: 1 });
  });
});

/** A `writev` that records the items it was given and how deeply its calls nested; `reply` handles each callback. */
function nestingWatch(reply: (callback: WritevCallback<number>, seen: readonly number[]) => void) {
  const watch = { deepest: 0, seen: [] as number[] };
  let depth = 0;
  const writev = (chunks: WritevChunks<number>, callback: WritevCallback<number>): void => {
    depth++;
    watch.deepest = Math.max(watch.deepest, depth);
    for (const { chunk } of chunks) watch.seen.push(chunk);
    reply(callback, watch.seen);
    depth--;
  };
  return { watch, writev };
}

describe('when the callback comes', () => {
  test('called before _writev returns, 20,000 times in a row: no call runs inside another, none lost, in order', async () => {
    let first: WritevCallback<number> | undefined;
    // The first call is held while the rest are written; once it calls back, each of the other
    // 19,999 calls back before it returns.
    const { watch, writev } = nestingWatch((callback, seen) => {
      if (seen.length === 1) first = callback;
      else callback();
    });
    const stream = new BlockingWritable<number>({ writev, batchSize: 1, maxBufferSize: 20_000 });
    for (let i = 0; i < 20_000; i++) stream.write(i);
    first?.();
    await finish(stream);
    expect(watch.deepest).toBe(1);
    expect(watch.seen).toEqual(range(0, 20_000));
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 20_000, batches: 20_000 });
  });

  test('two slots, and a _writev that calls back the batch before it: _writev is never re-entered, nothing lost', async () => {
    const pending: WritevCallback<number>[] = [];
    let replying = false;
    // A pipelined client: a call's reply comes in while the next call is being sent.
    const { watch, writev } = nestingWatch((callback) => {
      if (replying) pending.shift()?.();
      pending.push(callback);
    });
    const stream = new BlockingWritable<number>({
      writev,
      batchSize: 10,
      maxConcurrentFlushes: 2,
      maxBufferSize: 10_000,
    });
    // Both slots are taken and the rest is queued before the first reply.
    for (let i = 0; i < 10_000; i++) stream.write(i);
    expect(pending).toHaveLength(2);
    replying = true;
    const finished = finish(stream);
    while (pending.length > 0) {
      pending.shift()?.();
      await settle(1);
    }
    await finished;
    expect(watch.deepest).toBe(1);
    expect(watch.seen).toEqual(range(0, 10_000));
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 10_000, deadLettered: 0 });
  });
});

describe('the writev and flush options', () => {
  test('writev: the batches through pipeline(), this = the stream', async () => {
    const batches: number[][] = [];
    let self: unknown;
    const stream = new BlockingWritable<number>({
      writev(chunks, callback) {
        self = this; // eslint-disable-line @typescript-eslint/no-this-alias
        batches.push(chunks.map((c) => c.chunk));
        setImmediate(callback);
      },
      batchSize: 3,
      maxBufferSize: 6,
    });
    await pipeline(Readable.from(range(0, 10)), stream);
    expect(batches).toEqual([range(0, 3), range(3, 6), range(6, 9), [9]]);
    expect(self).toBe(stream);
  });

  test('flush: the flush function gets (items, { signal, attempt })', async () => {
    const contexts: { items: number[]; attempt: number; signal: boolean }[] = [];
    const stream = new BlockingWritable<number>({
      flush: async (items, { signal, attempt }) => {
        contexts.push({ items: [...items], attempt, signal: signal instanceof AbortSignal });
        if (attempt === 1) throw new Error('once');
      },
      batchSize: 2,
      retry: { maxRetries: 1, initialDelayMs: 0, maxDelayMs: 0 },
    });
    stream.write(1);
    stream.write(2);
    await finish(stream);
    expect(contexts).toEqual([
      { items: [1, 2], attempt: 1, signal: true },
      { items: [1, 2], attempt: 2, signal: true },
    ]);
  });

  test('BackpressureError is what a dead-lettered _writev batch carries', async () => {
    const errors: unknown[] = [];
    const stream = new BlockingWritable<number>({
      writev: (_chunks, callback) => callback(new Error('no')),
      batchSize: 1,
      retry: { maxRetries: 0 },
      onDeadLetter: (_items, error) => void errors.push(error),
    });
    stream.write(1);
    await finish(stream);
    expect(errors[0]).toBeInstanceOf(BackpressureError);
  });
});
