import { Writable } from 'node:stream';
import { BlockingWritable, DropNewestWritable, DropOldestWritable, SamplingWritable } from '../../lib';
import { ALL_KINDS, FAILING_KINDS, HWM, SLUICE_OPTIONS, flags, item, likeNative, nativeWritable, run } from './harness';
import type { Kind, Subject, Trace } from './harness';
import { settle, useStreamFakeTimers } from '../support/test-sink';

/**
 * write(): return values and errors, ported from Node's own tests. Each scenario runs on a native
 * object-mode Writable (its trace is pinned, so a change in Node shows), then on every sluice shape,
 * which must give the same trace.
 */

beforeEach(() => useStreamFakeTimers());
afterEach(() => jest.useRealTimers());

describe('test-stream-writable-null.js', () => {
  likeNative('write(null) throws ERR_STREAM_NULL_VALUES, emits no "error", the stream stays usable', {
    scenario: ({ stream }, t) => {
      try {
        stream.write(null);
        t.mark('no throw');
      } catch (error) {
        t.mark(`threw ${(error as { code?: string }).code}`);
      }
      t.mark(flags(stream));
      stream.end(item(1), t.cb('end'));
    },
    native: [
      'threw ERR_STREAM_NULL_VALUES',
      'writable !ended !finished !destroyed !closed !errored',
      'end:ok',
      'finish',
      'close',
    ],
  });

  likeNative('write(false, cb) is an ordinary item in object mode', {
    scenario: ({ stream }, t) => {
      stream.write(false, t.cb('write'));
      stream.end(t.cb('end'));
    },
    native: ['write:ok', 'end:ok', 'finish', 'close'],
  });
});

describe('test-stream-writable-invalid-chunk.js', () => {
  // Object mode takes every value but null, and the sink gets them as they were written. Fewer values than
  // the high-water mark, and a sluice with room to spare, so that no strategy engages.
  const values: unknown[] = [[], {}, 0, true, undefined, '', Number.NaN];

  likeNative('every value but null is accepted and delivered in order', {
    scenario: (subject, t) => {
      for (const value of values) subject.stream.write(value);
      subject.stream.end(() => t.mark(`delivered as written: ${Object.is(subject.delivered.length, values.length)}`));
    },
    make: (kind) => kind.make('ok', { maxBufferSize: 100 }),
    native: ['delivered as written: true', 'finish', 'close'],
  });

  test.each(ALL_KINDS)('$name: the sink gets exactly the values written', async (kind) => {
    const subject = kind.make('ok', { maxBufferSize: 100 });
    await run(subject, ({ stream }) => {
      for (const value of values) stream.write(value);
      stream.end();
    });
    expect(subject.delivered).toEqual(values);
  });
});

describe('test-stream-writable-write-error.js', () => {
  likeNative('write() after end() returns false; its callback, then "error", get ERR_STREAM_WRITE_AFTER_END', {
    scenario: ({ stream }, t) => {
      stream.end();
      t.mark(`returned ${stream.write(item(1), t.cb('write'))}`);
      t.mark('ticked');
    },
    native: [
      'returned false',
      'ticked',
      'write:ERR_STREAM_WRITE_AFTER_END',
      'error:ERR_STREAM_WRITE_AFTER_END',
      'close',
    ],
  });

  likeNative('write() after end() with an item still in delivery: the same errors', {
    scenario: ({ stream }, t) => {
      stream.write(item(1));
      stream.end();
      t.mark(`returned ${stream.write(item(2), t.cb('write'))}`);
    },
    mode: 'hang',
    quietDeadLetters: true,
    native: ['returned false', 'write:ERR_STREAM_WRITE_AFTER_END', 'error:ERR_STREAM_WRITE_AFTER_END', 'close'],
  });

  likeNative('write() after destroy() returns false; its callback gets ERR_STREAM_DESTROYED; no "error"', {
    scenario: ({ stream }, t) => {
      stream.destroy();
      t.mark(`returned ${stream.write(item(1), t.cb('write'))}`);
      t.mark('ticked');
    },
    native: ['returned false', 'ticked', 'close', 'write:ERR_STREAM_DESTROYED'],
  });
});

describe('test-stream-writable-write-cb-error.js', () => {
  test('native: the write callback gets the sink error before "error" is emitted', async () => {
    const trace = await run(nativeWritable('fail'), ({ stream }, t) => {
      stream.write(item(1), t.cb('write'));
    });
    expect(trace).toEqual(['write:Error', 'error:Error', 'close']);
  });

  // Intended difference: a sluice's write callback acknowledges acceptance. It is called, without an error,
  // before the item is flushed, so it still comes before the 'error' of the failed flush, which is a
  // BackpressureError carrying the items.
  test.each(FAILING_KINDS)(
    '$name: the write callback (accepted) comes before the "error" of the failed flush',
    async (kind) => {
      const trace = await run(kind.make('fail'), ({ stream }, t) => {
        stream.write(item(1), t.cb('write'));
      });
      expect(trace).toEqual(['write:ok', 'error:ERR_FLUSH_FAILED', 'close']);
    },
  );

  test('native: a sink failing synchronously makes the first write() return false (no live lock)', async () => {
    const { stream } = nativeWritable('fail');
    stream.on('error', () => undefined);
    let count = 0;
    while (stream.write(item(count))) count++;
    expect(count).toBe(0);
    await settle();
  });

  test.each(FAILING_KINDS)(
    '$name: a loop writing while write() is true ends (block: at the high-water mark; the others: once destroyed)',
    async (kind) => {
      // A sluice learns of a failure only when the flush settles, after write() returned. A blocking sluice
      // still says false at its high-water mark; a dropping one never says false, so the loop yields.
      const { stream } = kind.make('fail');
      stream.on('error', () => undefined);
      let count = 0;
      for (let turn = 0; turn < 5 && !stream.destroyed; turn++) {
        while (count < 100 && stream.write(item(count))) count++;
        if (kind.blocks) break;
        await settle();
      }
      if (kind.blocks) expect(count).toBe(HWM - 1);
      await settle();
      expect(stream.destroyed).toBe(true);
      expect(stream.write(item(-1), () => undefined)).toBe(false);
    },
  );
});

describe('test-stream2-writable.js (write callbacks)', () => {
  likeNative('write(chunk, cb) and write(chunk, encoding, cb): every callback once, in order, all before "finish"', {
    scenario: ({ stream }, t) => {
      stream.write(item(1), t.cb('write1'));
      stream.write(item(2), 'utf8', t.cb('write2'));
      stream.write(item(3), 'latin1', t.cb('write3'));
      stream.end();
    },
    native: ['write1:ok', 'write2:ok', 'write3:ok', 'finish', 'close'],
  });
});

describe('test-stream-writable-properties.js', () => {
  likeNative('writableCorked counts cork() and uncork(), never below 0', {
    scenario: ({ stream }, t) => {
      const counts = [stream.writableCorked];
      stream.uncork();
      counts.push(stream.writableCorked);
      stream.cork();
      counts.push(stream.writableCorked);
      stream.cork();
      counts.push(stream.writableCorked);
      for (let i = 0; i < 3; i++) {
        stream.uncork();
        counts.push(stream.writableCorked);
      }
      t.mark(counts.join(' '));
    },
    native: ['0 0 1 2 1 0 0'],
  });
});

describe('cork() holds writes (test-stream-writev.js, test-stream-writable-clear-buffer.js, in object mode)', () => {
  const corkedWrites = async (subject: Subject, t: Trace): Promise<void> => {
    subject.stream.cork();
    for (const id of [1, 2, 3]) subject.stream.write(item(id));
    await settle();
    t.mark(`while corked: ${subject.delivered.map((x) => (x as { id: number }).id).join(',')}`);
    subject.stream.uncork();
    await settle();
    t.mark(`after uncork(): ${subject.delivered.map((x) => (x as { id: number }).id).join(',')}`);
  };

  // A corked sluice holds partial batches: with a batch larger than the writes, that is Node's cork().
  likeNative('nothing reaches the sink while corked; uncork() lets everything through, in order', {
    scenario: corkedWrites,
    make: (kind) => kind.make('ok', { batchSize: 10 }),
    native: ['while corked: ', 'after uncork(): 1,2,3'],
  });

  // A full batch goes even while corked: holding it would let a corked stream outgrow its bound.
  likeNative('cork() with full batches (batchSize 1)', {
    scenario: corkedWrites,
    native: ['while corked: ', 'after uncork(): 1,2,3'],
    intended: {
      difference: 'full batches go while corked',
      sluice: ['while corked: 1,2,3', 'after uncork(): 1,2,3'],
    },
  });

  likeNative('uncork() as many times as cork(): partial batches wait for the last one', {
    scenario: async (subject, t) => {
      subject.stream.cork();
      subject.stream.cork();
      subject.stream.write(item(1));
      subject.stream.uncork();
      await settle();
      t.mark(`after one uncork(): ${subject.delivered.length}`);
      subject.stream.uncork();
      await settle();
      t.mark(`after two: ${subject.delivered.length}`);
    },
    make: (kind) => kind.make('ok', { batchSize: 10 }),
    native: ['after one uncork(): 0', 'after two: 1'],
  });

  likeNative('end() uncorks', {
    scenario: async (subject, t) => {
      subject.stream.cork();
      subject.stream.write(item(1));
      subject.stream.end();
      await settle();
      t.mark(`delivered: ${subject.delivered.length}`);
    },
    make: (kind) => kind.make('ok', { batchSize: 10 }),
    native: ['finish', 'close', 'delivered: 1'],
  });
});

describe('test-stream-writable-write-cb-twice.js (with the writev delivery hook)', () => {
  const WRITEV_CLASSES: Record<string, typeof BlockingWritable> = {
    BlockingWritable,
    DropOldestWritable,
    DropNewestWritable,
    SamplingWritable,
  };
  /** A subject whose sink is `writev`, on both sides; nothing is held back, so only the trace matters. */
  const withWritev = (stream: Writable): Subject => ({
    stream,
    delivered: [],
    releaseOne: () => undefined,
    pending: 0,
    releaseAll: () => undefined,
    metrics: () => undefined,
  });
  // Fits both Node's writev option and sluice's.
  const twice = (_chunks: unknown[], callback: (error?: Error | null) => void): void => {
    callback();
    callback();
  };

  likeNative(
    'a writev callback called twice: "error" with ERR_MULTIPLE_CALLBACK, then writes get ERR_STREAM_DESTROYED',
    {
      scenario: ({ stream }, t) => {
        stream.write(item(1), t.cb('write1'));
        stream.write(item(2), t.cb('write2'));
      },
      makeNative: () => withWritev(new Writable({ objectMode: true, highWaterMark: HWM, writev: twice })),
      make: (kind: Kind) =>
        withWritev(new (WRITEV_CLASSES[kind.name] as typeof BlockingWritable)({ ...SLUICE_OPTIONS, writev: twice })),
      kinds: FAILING_KINDS,
      quietDeadLetters: true,
      native: ['write1:ok', 'error:ERR_MULTIPLE_CALLBACK', 'close', 'write2:ERR_STREAM_DESTROYED'],
    },
  );
});

describe('test-stream-error-once.js', () => {
  likeNative('two writes after end(): one "error"; both callbacks get ERR_STREAM_WRITE_AFTER_END', {
    scenario: ({ stream }, t) => {
      stream.write(item(1));
      stream.end();
      stream.write(item(2), t.cb('write2'));
      stream.write(item(3), t.cb('write3'));
    },
    quietDeadLetters: true,
    native: [
      'write2:ERR_STREAM_WRITE_AFTER_END',
      'error:ERR_STREAM_WRITE_AFTER_END',
      'close',
      'write3:ERR_STREAM_WRITE_AFTER_END',
    ],
  });
});
