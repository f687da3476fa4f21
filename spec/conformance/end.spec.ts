import { FAILING_KINDS, SINK_ERROR_MESSAGE, WITH_PREFINISH, flags, item, likeNative, run } from './harness';
import { settle, useStreamFakeTimers } from '../support/test-sink';
import type { Scenario } from './harness';

/**
 * end(): its forms, its callback, 'prefinish'/'finish'/'close' and the ended/finished flags, ported from
 * Node's own tests. Native first (trace pinned), then every sluice shape against it.
 */

beforeEach(() => useStreamFakeTimers());
afterEach(() => jest.useRealTimers());

describe('test-stream-writable-end-multiple.js', () => {
  likeNative('both end callbacks before "finish"; end(cb) after "finish" gets ERR_STREAM_ALREADY_FINISHED, async', {
    scenario: ({ stream }, t) => {
      stream.end(item(1), t.cb('end1'));
      stream.end(t.cb('end2'));
      stream.on('finish', () => {
        stream.end(t.cb('end3'));
        t.mark('ticked');
      });
    },
    native: ['end1:ok', 'end2:ok', 'finish', 'ticked', 'end3:ERR_STREAM_ALREADY_FINISHED', 'close'],
  });
});

describe('test-stream-writable-end-cb-error.js', () => {
  likeNative('a failed write gives its error to every pending end callback, then "error"', {
    scenario: ({ stream }, t) => {
      stream.write(item(1));
      stream.end(t.cb('end1'));
      stream.end(t.cb('end2'));
    },
    mode: 'fail',
    kinds: FAILING_KINDS,
    native: ['end1:Error', 'end2:Error', 'error:Error', 'close'],
    intended: {
      difference: 'a failed flush is a BackpressureError',
      sluice: ['end1:ERR_FLUSH_FAILED', 'end2:ERR_FLUSH_FAILED', 'error:ERR_FLUSH_FAILED', 'close'],
    },
  });

  test.each(FAILING_KINDS)(
    '$name: a failed flush gives every pending end callback the error that "error" carries (a BackpressureError with the items)',
    async (kind) => {
      const { stream } = kind.make('fail');
      const seen: unknown[] = [];
      stream.on('error', (error) => seen.push(error));
      stream.write(item(1));
      stream.end((error?: Error | null) => seen.push(error));
      stream.end((error?: Error | null) => seen.push(error));
      await settle();
      expect(seen).toHaveLength(3);
      expect(seen[0]).toMatchObject({ code: 'ERR_FLUSH_FAILED', items: [item(1)] });
      expect((seen[0] as Error).cause).toMatchObject({ message: SINK_ERROR_MESSAGE });
      expect(seen[1]).toBe(seen[0]);
      expect(seen[2]).toBe(seen[0]);
    },
  );

  likeNative('the end callback is called once, even when "error" follows "finish"', {
    scenario: ({ stream }, t) => {
      stream.end(item(1), t.cb('end'));
      stream.on('finish', () => stream.emit('error', new Error('kaboom')));
    },
    native: ['end:ok', 'finish', 'error:Error', 'close'],
  });

  likeNative(
    'end(chunk) after end(): every end callback and "error" get ERR_STREAM_WRITE_AFTER_END; destroyed; no "finish"',
    {
      scenario: (subject, t) => {
        const { stream } = subject;
        stream.end(item(1), t.cb('end1'));
        t.mark(flags(stream));
        stream.end(t.cb('end2'));
        t.mark(flags(stream));
        stream.end(item(2), t.cb('end3'));
        t.mark(flags(stream));
        // Nothing is lost silently: the chunk is not offered (a sluice counts what it was offered).
        stream.on('close', () => t.mark(`offered: ${subject.metrics()?.eventsOffered ?? 1}`));
      },
      quietDeadLetters: true,
      native: [
        '!writable ended !finished !destroyed !closed !errored',
        '!writable ended !finished !destroyed !closed !errored',
        '!writable ended !finished destroyed closed errored',
        'end1:ERR_STREAM_WRITE_AFTER_END',
        'end2:ERR_STREAM_WRITE_AFTER_END',
        'error:ERR_STREAM_WRITE_AFTER_END',
        'close',
        'offered: 1',
        'end3:ERR_STREAM_WRITE_AFTER_END',
      ],
    },
  );
});

describe('test-stream-writable-ended-state.js, test-stream-writableState-ending.js, test-stream-writable-finished-state.js', () => {
  likeNative('ended from end() on, finished from the end callback and "finish" on', {
    scenario: ({ stream }, t) => {
      t.mark(`start: ${flags(stream)}`);
      stream.on('finish', () => t.mark(`in finish: ${flags(stream)}`));
      const returned = stream.end(item(1), (error?: Error | null) => {
        t.mark(`in end callback (${error ?? 'ok'}): ${flags(stream)}`);
      });
      t.mark(`end() returned the stream: ${returned === stream}`);
      t.mark(`after end(): ${flags(stream)}`);
    },
    native: [
      'start: writable !ended !finished !destroyed !closed !errored',
      'end() returned the stream: true',
      'after end(): !writable ended !finished !destroyed !closed !errored',
      'in end callback (ok): !writable ended finished !destroyed !closed !errored',
      'finish',
      'in finish: !writable ended finished !destroyed !closed !errored',
      'close',
    ],
  });
});

describe('test-stream-writable-finished.js', () => {
  likeNative('with nothing written, "prefinish" comes from inside end() and "finish" after it returned', {
    scenario: ({ stream }, t) => {
      let sync = true;
      stream.on('prefinish', () => t.mark(`prefinish sync: ${sync}`));
      stream.on('finish', () => t.mark(`finish sync: ${sync}`));
      stream.end();
      sync = false;
    },
    events: ['close'],
    native: ['prefinish sync: true', 'finish sync: false', 'close'],
  });

  likeNative('writableFinished is false until the sink took the last item', {
    scenario: async (subject, t) => {
      subject.stream.write(item(1));
      subject.stream.end();
      await settle();
      t.mark(`before the sink completes: ${subject.stream.writableFinished}`);
      subject.releaseAll();
      await settle();
      t.mark(`after: ${subject.stream.writableFinished}`);
    },
    mode: 'hang',
    native: ['before the sink completes: false', 'finish', 'close', 'after: true'],
  });
});

describe('test-stream2-writable.js', () => {
  const forms: [string, Scenario][] = [
    ['end(cb)', ({ stream }, t) => void stream.end(t.cb('end'))],
    ['end(chunk, cb)', ({ stream }, t) => void stream.end(item(1), t.cb('end'))],
    ['end(chunk, encoding, cb)', ({ stream }, t) => void stream.end(item(1), 'utf8', t.cb('end'))],
  ];
  for (const [form, scenario] of forms) {
    likeNative(`${form}: the callback is called once, before "finish"`, {
      scenario,
      native: ['end:ok', 'finish', 'close'],
    });
  }

  likeNative('end(cb) after write(chunk, cb): the write callback, the end callback, then "finish"', {
    scenario: ({ stream }, t) => {
      stream.write(item(1), t.cb('write'));
      stream.end(t.cb('end'));
    },
    native: ['write:ok', 'end:ok', 'finish', 'close'],
  });

  likeNative('end(chunk) twice: "error" with ERR_STREAM_WRITE_AFTER_END; the first chunk delivered, not the second', {
    scenario: (subject, t) => {
      subject.stream.end(item(1));
      subject.stream.end(item(2));
      subject.stream.on('close', () => t.mark(`delivered: ${JSON.stringify(subject.delivered)}`));
    },
    quietDeadLetters: true,
    native: ['error:ERR_STREAM_WRITE_AFTER_END', 'close', 'delivered: [{"id":1}]'],
  });

  likeNative('"finish" does not come before the sink took the last item', {
    scenario: async (subject, t) => {
      subject.stream.write(item(1), t.cb('write'));
      subject.stream.end(t.cb('end'));
      await settle();
      t.mark(`delivered: ${subject.delivered.length}`);
      subject.releaseAll();
    },
    mode: 'hang',
    native: ['delivered: 0', 'write:ok', 'end:ok', 'finish', 'close'],
    intended: {
      difference: 'the write callback acknowledges acceptance',
      sluice: ['write:ok', 'delivered: 0', 'end:ok', 'finish', 'close'],
    },
  });

  likeNative('a falsy last chunk is delivered and "finish" follows', {
    scenario: (subject, t) => {
      subject.stream.write(item(1));
      subject.stream.end(0, () => t.mark(`delivered: ${JSON.stringify(subject.delivered)}`));
    },
    native: ['delivered: [{"id":1},0]', 'finish', 'close'],
  });

  likeNative('write() after end() then destroy(err): "error" only once, with the first error', {
    scenario: ({ stream }) => {
      stream.end();
      stream.write(item(1));
      stream.destroy(new Error('second'));
    },
    native: ['error:ERR_STREAM_WRITE_AFTER_END', 'close'],
  });

  test.each(FAILING_KINDS)(
    '$name: a failed flush then destroy(err) from the "error" listener: "error" only once, no "finish" (as native, but a BackpressureError)',
    async (kind) => {
      // Native: ['error:Error', 'destroyed again', 'close'] (the sink's error; a sluice's is a BackpressureError).
      const trace = await run(kind.make('fail'), ({ stream }, t) => {
        stream.once('error', () => {
          stream.destroy(new Error('second'));
          t.mark('destroyed again');
        });
        stream.write(item(1));
        stream.end();
      });
      expect(trace).toEqual(['error:ERR_FLUSH_FAILED', 'destroyed again', 'close']);
    },
  );
});

describe('test-stream-writable-write-writev-finish.js', () => {
  likeNative('a write() from a "prefinish" listener is a write after end; no "finish"', {
    scenario: ({ stream }) => {
      stream.on('prefinish', () => stream.write(item(2)));
      stream.write(item(1));
      stream.end();
    },
    quietDeadLetters: true,
    native: ['error:ERR_STREAM_WRITE_AFTER_END', 'close'],
  });

  likeNative('a write() from a "finish" listener is a write after end', {
    scenario: ({ stream }) => {
      stream.on('finish', () => stream.write(item(2)));
      stream.write(item(1));
      stream.end();
    },
    native: ['finish', 'error:ERR_STREAM_WRITE_AFTER_END', 'close'],
  });

  test.each(FAILING_KINDS)(
    '$name: a failed flush of the last chunk: "error", no "prefinish", no "finish" (native: the same, with the sink error)',
    async (kind) => {
      const trace = await run(
        kind.make('fail'),
        ({ stream }) => {
          stream.end(item(1));
        },
        WITH_PREFINISH,
      );
      expect(trace).toEqual(['error:ERR_FLUSH_FAILED', 'close']);
    },
  );
});
