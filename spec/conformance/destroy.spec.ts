import { addAbortSignal } from 'node:stream';
import {
  ALL_KINDS,
  BLOCKING_KINDS,
  FAILING_KINDS,
  HWM,
  WITH_PREFINISH,
  flags,
  item,
  likeNative,
  nativeWritable,
  run,
} from './harness';
import { useStreamFakeTimers } from '../support/test-sink';
import type { Scenario } from './harness';

/**
 * destroy(), AbortSignal and the flags around them, ported from Node's own tests. Native first (trace
 * pinned), then every sluice shape against it. Where a sluice holds items when it is destroyed, a
 * 'deadletter' listener takes them (`quietDeadLetters`), except in the last describe, which is about what
 * happens without one.
 */

beforeEach(() => useStreamFakeTimers());
afterEach(() => jest.useRealTimers());

/** The shapes whose sink can hang on a call that completes later (the Transform's "sink" is its reader). */
const SINK_KINDS = FAILING_KINDS;

describe('test-stream-writable-destroy.js', () => {
  likeNative('destroy(): no "error", no "finish", one "close"; destroyed at once', {
    scenario: ({ stream }, t) => {
      stream.write(item(1));
      stream.destroy();
      t.mark(flags(stream));
    },
    quietDeadLetters: true,
    native: ['!writable !ended !finished destroyed closed !errored', 'close'],
  });

  const expected = new Error('kaboom');
  likeNative('destroy(err): "error" with err itself, then one "close"; no "finish"', {
    scenario: ({ stream }, t) => {
      stream.on('error', (error) => t.mark(`same error: ${error === expected}`));
      stream.write(item(1));
      stream.destroy(expected);
      t.mark(flags(stream));
    },
    quietDeadLetters: true,
    native: ['!writable !ended !finished destroyed closed errored', 'error:Error', 'same error: true', 'close'],
  });

  likeNative('destroy(err) twice: one "error", with the first error, after the current tick; one "close"', {
    scenario: ({ stream }, t) => {
      stream.on('error', (error: Error) => t.mark(`message: ${error.message}`));
      stream.destroy(new Error('kaboom 1'));
      stream.destroy(new Error('kaboom 2'));
      t.mark('ticked');
    },
    native: ['ticked', 'error:Error', 'message: kaboom 1', 'close'],
  });

  likeNative('end(cb) after "finish" and destroy(): the callback gets ERR_STREAM_ALREADY_FINISHED, after the tick', {
    scenario: ({ stream }, t) => {
      stream.on('finish', () => {
        stream.destroy();
        stream.end(t.cb('end'));
        t.mark('ticked');
      });
      stream.write(item(1));
      stream.end();
    },
    native: ['finish', 'ticked', 'close', 'end:ERR_STREAM_ALREADY_FINISHED'],
  });

  likeNative('end(chunk, cb) then destroy(err): the end callback and "error" get err', {
    scenario: ({ stream }, t) => {
      stream.end(item(1), t.cb('end'));
      stream.destroy(new Error('asd'));
    },
    quietDeadLetters: true,
    native: ['end:Error', 'error:Error', 'close'],
  });

  likeNative('end(cb) then destroy() twice: the end callback is called once, with ERR_STREAM_DESTROYED; one "close"', {
    scenario: ({ stream }, t) => {
      stream.write(item(1));
      stream.end(t.cb('end'));
      stream.destroy();
      stream.destroy();
    },
    quietDeadLetters: true,
    native: ['end:ERR_STREAM_DESTROYED', 'close'],
  });

  likeNative(
    'end(cb) from an "error" listener after destroy(): the callback gets ERR_STREAM_DESTROYED, after the tick',
    {
      scenario: ({ stream }, t) => {
        stream.on('error', () => {
          stream.destroy();
          stream.end(t.cb('end'));
          t.mark('ticked');
        });
        stream.write(item(1));
      },
      mode: 'fail',
      kinds: FAILING_KINDS,
      native: ['error:Error', 'ticked', 'close', 'end:ERR_STREAM_DESTROYED'],
      intended: {
        difference: 'a failed flush is a BackpressureError',
        sluice: ['error:ERR_FLUSH_FAILED', 'ticked', 'close', 'end:ERR_STREAM_DESTROYED'],
      },
    },
  );

  test.each(BLOCKING_KINDS)(
    '$name: a write still waiting for room when destroy() comes gets ERR_STREAM_DESTROYED in its callback',
    async (kind) => {
      // Node: a write still in the buffer gets ERR_STREAM_DESTROYED. A sluice accepts writes at once (its
      // callback acknowledges acceptance), so the writes in that place are those held at `blocked`.
      const subject = kind.make('hang');
      subject.stream.on('deadletter', () => undefined);
      const trace = await run(subject, ({ stream }, t) => {
        for (let id = 0; id < 10; id++) stream.write(item(id));
        stream.write(item(10), t.cb('waiting'));
        t.mark(`waiting writes: ${subject.metrics()?.waitingWrites}`);
        stream.destroy();
      });
      expect(trace.slice(0, 1)).toEqual(['waiting writes: 1']);
      expect(trace.slice(1).sort()).toEqual(['close', 'waiting:ERR_STREAM_DESTROYED']);
    },
  );

  const abortScenario: Scenario = ({ stream }, t) => {
    stream.write(item(1));
    t.mark('aborting');
    controllers.get(stream)?.abort();
    stream.on('close', () => t.mark(flags(stream)));
  };
  const controllers = new WeakMap<object, AbortController>();
  likeNative('AbortSignal option: abort() destroys the stream with an AbortError', {
    scenario: abortScenario,
    makeNative: () => {
      const controller = new AbortController();
      const subject = nativeWritable('ok', { signal: controller.signal });
      controllers.set(subject.stream, controller);
      return subject;
    },
    make: (kind) => {
      const controller = new AbortController();
      const subject = kind.make('ok', { signal: controller.signal });
      controllers.set(subject.stream, controller);
      return subject;
    },
    quietDeadLetters: true,
    native: ['aborting', 'error:ABORT_ERR', 'close', '!writable !ended !finished destroyed closed errored'],
  });

  likeNative('AbortSignal option: an already aborted signal destroys the stream with an AbortError', {
    scenario: () => undefined,
    makeNative: () => nativeWritable('ok', { signal: AbortSignal.abort() }),
    make: (kind) => kind.make('ok', { signal: AbortSignal.abort() }),
    native: ['error:ABORT_ERR', 'close'],
  });

  likeNative('addAbortSignal(signal, stream): abort() destroys the stream with an AbortError', {
    scenario: ({ stream }) => {
      const controller = new AbortController();
      addAbortSignal(controller.signal, stream);
      stream.write(item(1));
      controller.abort();
    },
    quietDeadLetters: true,
    native: ['error:ABORT_ERR', 'close'],
  });
});

describe('test-stream-destroy-event-order.js', () => {
  likeNative('destroy(err): "error" comes before "close"', {
    scenario: ({ stream }) => {
      stream.destroy(new Error('kaboom'));
    },
    native: ['error:Error', 'close'],
  });
});

describe('test-stream-writable-finish-destroyed.js', () => {
  likeNative(
    'end(chunk) then destroy() while the chunk is being delivered: no "finish", even once the sink completes',
    {
      scenario: (subject) => {
        subject.stream.end(item(1));
        subject.stream.destroy();
        subject.stream.on('close', () => subject.releaseAll());
      },
      mode: 'hang',
      kinds: SINK_KINDS,
      quietDeadLetters: true,
      native: ['close'],
    },
  );

  likeNative('write(), destroy(), then the sink completes and end() is called from "close": no "finish"', {
    scenario: (subject) => {
      subject.stream.write(item(1));
      subject.stream.destroy();
      subject.stream.on('close', () => {
        subject.releaseAll();
        subject.stream.end();
      });
    },
    mode: 'hang',
    kinds: SINK_KINDS,
    quietDeadLetters: true,
    native: ['close'],
  });

  likeNative('end() then destroy() in the same tick, nothing written: no "finish"', {
    scenario: ({ stream }) => {
      stream.end();
      stream.destroy();
    },
    native: ['close'],
  });
});

describe('test-stream-writable-final-destroy.js', () => {
  likeNative('end() then destroy() while items are still being delivered: no "prefinish", no "finish", one "close"', {
    scenario: ({ stream }) => {
      stream.write(item(1));
      stream.end();
      stream.destroy();
    },
    mode: 'hang',
    quietDeadLetters: true,
    events: WITH_PREFINISH,
    native: ['close'],
  });
});

describe('test-stream-writable-aborted.js', () => {
  // Node's Duplex (so the Transform) has no writableAborted in Node 20: the Writables only.
  const writables = ALL_KINDS.filter((kind) => kind.name !== 'BackpressureTransform');
  for (const withEnd of [false, true]) {
    likeNative(`writableAborted: false at first, true after ${withEnd ? 'end() then ' : ''}destroy()`, {
      scenario: ({ stream }, t) => {
        t.mark(`before: ${stream.writableAborted}`);
        if (withEnd) stream.end();
        stream.destroy();
        t.mark(`after destroy(): ${stream.writableAborted}`);
        stream.on('close', () => t.mark(`at close: ${stream.writableAborted}`));
      },
      kinds: writables,
      native: ['before: false', 'after destroy(): true', 'close', 'at close: true'],
    });
  }
});

describe('test-stream-writable-writable.js', () => {
  likeNative('writable: true at first, false after end()', {
    scenario: ({ stream }, t) => {
      t.mark(`start: ${stream.writable}`);
      stream.end();
      t.mark(`after end(): ${stream.writable}`);
    },
    native: ['start: true', 'after end(): false', 'finish', 'close'],
  });

  likeNative('writable: false after destroy()', {
    scenario: ({ stream }, t) => {
      stream.destroy();
      t.mark(`after destroy(): ${stream.writable}`);
    },
    native: ['after destroy(): false', 'close'],
  });

  likeNative('writable: false once a failed delivery errored the stream', {
    scenario: ({ stream }, t) => {
      stream.on('error', () => t.mark(`at error: ${stream.writable}`));
      stream.write(item(1));
    },
    mode: 'fail',
    kinds: FAILING_KINDS,
    native: ['error:Error', 'at error: false', 'close'],
    intended: {
      difference: 'a failed flush is a BackpressureError',
      sluice: ['error:ERR_FLUSH_FAILED', 'at error: false', 'close'],
    },
  });
});

describe('test-stream-write-destroy.js', () => {
  likeNative('no "drain" after destroy(), even when the writes that made write() return false complete later', {
    scenario: (subject, t) => {
      let writes = 0;
      while (subject.stream.write(item(writes++)));
      t.mark(`false after ${writes}`);
      subject.stream.destroy();
      subject.stream.on('close', () => subject.releaseAll());
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS.filter((kind) => kind.canFail),
    quietDeadLetters: true,
    native: [`false after ${HWM}`, 'close'],
  });
});

describe('destroy() of a sluice holding items without a dead-letter path (test-stream-writable-destroy.js)', () => {
  likeNative('destroy() with items held emits no "error"', {
    scenario: ({ stream }) => {
      stream.write(item(1));
      stream.destroy();
    },
    mode: 'hang',
    native: ['close'],
  });

  const expected = new Error('kaboom');
  likeNative('destroy(err) with items held emits err itself', {
    scenario: ({ stream }, t) => {
      stream.on('error', (error) => t.mark(`same error: ${error === expected}`));
      stream.write(item(1));
      stream.destroy(expected);
    },
    mode: 'hang',
    native: ['error:Error', 'same error: true', 'close'],
  });
});
