import { Readable, finished, pipeline as pipelineCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ALL_KINDS, BLOCKING_KINDS, FAILING_KINDS, errorLabel, item, likeNative, run } from './harness';
import { advance, settle, useStreamFakeTimers } from '../support/test-sink';
import type { Trace } from './harness';

/**
 * pipeline() and finished() with a sluice as the destination, ported from Node's own tests. Native first
 * (trace pinned), then every sluice shape against it. A pipeline's outcome shows in the trace as
 * `resolved` or `rejected:<code>`.
 */

beforeEach(() => useStreamFakeTimers());
afterEach(() => jest.useRealTimers());

function source(n: number): Readable {
  return Readable.from(Array.from({ length: n }, (_, id) => item(id)));
}

/** Records how a pipeline (or finished()) settles, without awaiting it (it may not settle). */
function outcome(promise: Promise<unknown>, t: Trace, label = ''): void {
  promise.then(
    () => t.mark(`${label}resolved`),
    (error: unknown) => t.mark(`${label}rejected:${errorLabel(error)}`),
  );
}

/** finished() as a trace entry. */
function watchFinished(stream: NodeJS.WritableStream, t: Trace, label = 'finished'): () => void {
  return finished(stream, (error) => t.mark(`${label}:${errorLabel(error)}`));
}

describe('test-stream-pipeline.js', () => {
  likeNative('a source that ends: every item delivered, "finish" before the pipeline resolves', {
    scenario: async (subject, t) => {
      await pipeline(source(5), subject.stream);
      t.mark(`resolved with ${subject.delivered.length} delivered`);
    },
    native: ['finish', 'close', 'resolved with 5 delivered'],
  });

  likeNative('a generator function as the source', {
    scenario: async (subject, t) => {
      await pipeline(function* () {
        yield item(1);
        yield item(2);
      }, subject.stream);
      t.mark(`resolved with ${subject.delivered.length} delivered`);
    },
    native: ['finish', 'close', 'resolved with 2 delivered'],
  });

  likeNative('pipeline(..., callback) returns the destination', {
    scenario: (subject, t) => {
      const returned = pipelineCallback(source(1), subject.stream, (error) => t.mark(`callback:${errorLabel(error)}`));
      t.mark(`returned the destination: ${returned === subject.stream}`);
    },
    native: ['returned the destination: true', 'finish', 'close', 'callback:ok'],
  });

  likeNative('the source destroyed without an error: ERR_STREAM_PREMATURE_CLOSE, the destination destroyed', {
    scenario: async ({ stream }, t) => {
      const read = new Readable({ objectMode: true, read() {} });
      outcome(pipeline(read, stream), t);
      read.push(item(1));
      await settle();
      read.destroy();
      await settle();
      t.mark(`destination destroyed: ${stream.destroyed}`);
    },
    quietDeadLetters: true,
    native: [
      'error:ERR_STREAM_PREMATURE_CLOSE',
      'close',
      'rejected:ERR_STREAM_PREMATURE_CLOSE',
      'destination destroyed: true',
    ],
  });

  likeNative('the source destroyed with an error: the pipeline rejects with it, the destination is destroyed with it', {
    scenario: async ({ stream }, t) => {
      const read = new Readable({ objectMode: true, read() {} });
      outcome(pipeline(read, stream), t);
      read.push(item(1));
      await settle();
      read.destroy(new Error('kaboom'));
    },
    quietDeadLetters: true,
    native: ['error:Error', 'close', 'rejected:Error'],
  });

  likeNative('the sink fails: the pipeline rejects with the failure', {
    scenario: ({ stream }, t) => {
      outcome(pipeline(source(3), stream), t);
    },
    mode: 'fail',
    kinds: FAILING_KINDS,
    native: ['error:Error', 'close', 'rejected:Error'],
    intended: {
      difference: 'a failed flush is a BackpressureError',
      sluice: ['error:ERR_FLUSH_FAILED', 'close', 'rejected:ERR_FLUSH_FAILED'],
    },
  });

  likeNative('an AbortSignal aborted mid-way: the pipeline rejects with an AbortError', {
    scenario: async ({ stream }, t) => {
      const controller = new AbortController();
      const read = new Readable({ objectMode: true, read() {} });
      outcome(pipeline(read, stream, { signal: controller.signal }), t);
      read.push(item(1));
      await settle();
      controller.abort();
    },
    quietDeadLetters: true,
    native: ['error:ABORT_ERR', 'close', 'rejected:ABORT_ERR'],
  });

  likeNative('an AbortSignal already aborted: the pipeline rejects with an AbortError', {
    scenario: ({ stream }, t) => {
      outcome(pipeline(source(3), stream, { signal: AbortSignal.abort() }), t);
    },
    native: ['error:ABORT_ERR', 'close', 'rejected:ABORT_ERR'],
  });
});

describe('test-stream-pipeline-queued-end-in-destroy.js', () => {
  likeNative('the source destroyed while the destination still holds a write: ERR_STREAM_PREMATURE_CLOSE', {
    scenario: async ({ stream }, t) => {
      const read = new Readable({ objectMode: true, read() {} });
      outcome(pipeline(read, stream), t);
      read.push(item(1));
      await settle();
      read.destroy();
    },
    mode: 'hang',
    quietDeadLetters: true,
    native: ['error:ERR_STREAM_PREMATURE_CLOSE', 'close', 'rejected:ERR_STREAM_PREMATURE_CLOSE'],
  });
});

describe('premature close of the destination (test-stream-pipeline.js, test-stream-finished.js)', () => {
  likeNative('ended by the pipeline, then destroyed with items undelivered: ERR_STREAM_PREMATURE_CLOSE', {
    scenario: async ({ stream }, t) => {
      outcome(pipeline(source(3), stream), t);
      await settle();
      t.mark(`ended: ${stream.writableEnded}; held: ${stream.writableLength > 0}`);
      stream.destroy();
    },
    mode: 'hang',
    quietDeadLetters: true,
    native: ['ended: true; held: true', 'close', 'rejected:ERR_STREAM_PREMATURE_CLOSE'],
  });

  likeNative('destroyed before end() with items held: ERR_STREAM_PREMATURE_CLOSE', {
    scenario: async ({ stream }, t) => {
      const read = new Readable({ objectMode: true, read() {} });
      outcome(pipeline(read, stream), t);
      read.push(item(1));
      await settle();
      stream.destroy();
    },
    mode: 'hang',
    quietDeadLetters: true,
    native: ['close', 'rejected:ERR_STREAM_PREMATURE_CLOSE'],
  });

  test.each(ALL_KINDS)(
    '$name: shutdown() that hands items back (undelivered) rejects the pipeline with ERR_STREAM_PREMATURE_CLOSE',
    async (kind) => {
      const subject = kind.make('hang');
      const { stream } = subject;
      const shut = stream as typeof stream & {
        shutdown(o: { timeoutMs: number }): Promise<{ undelivered: unknown[] }>;
      };
      const trace = await run(subject, async (_s, t) => {
        outcome(pipeline(source(3), stream), t, 'pipeline ');
        const finishedPromise = new Promise<void>((resolve, reject) =>
          finished(stream, (error) => (error ? reject(error) : resolve())),
        );
        outcome(finishedPromise, t, 'finished ');
        await settle();
        const result = shut.shutdown({ timeoutMs: 100 });
        await advance(100);
        t.mark(`undelivered: ${(await result).undelivered.length}`);
      });
      expect(trace).toEqual(
        expect.arrayContaining([
          'undelivered: 3',
          'pipeline rejected:ERR_STREAM_PREMATURE_CLOSE',
          'finished rejected:ERR_STREAM_PREMATURE_CLOSE',
        ]),
      );
    },
  );
});

describe('test-stream-pipeline-listeners.js', () => {
  likeNative('a destination that is not readable keeps an "error" listener after the pipeline', {
    scenario: async ({ stream }, t) => {
      const before = stream.listenerCount('error');
      await pipeline(source(1), stream);
      t.mark(`error listeners added: ${stream.listenerCount('error') - before > 0}`);
    },
    kinds: ALL_KINDS.filter((kind) => kind.name !== 'BackpressureTransform'),
    native: ['finish', 'close', 'error listeners added: true'],
  });
});

describe('test-stream-finished.js', () => {
  likeNative('end(): finished() calls back without an error', {
    scenario: ({ stream }, t) => {
      watchFinished(stream, t);
      stream.end(item(1));
    },
    native: ['finish', 'close', 'finished:ok'],
  });

  likeNative('end(chunk) then destroy() while the chunk is in delivery: ERR_STREAM_PREMATURE_CLOSE', {
    scenario: ({ stream }, t) => {
      watchFinished(stream, t);
      stream.end(item(1));
      stream.destroy();
    },
    mode: 'hang',
    quietDeadLetters: true,
    native: ['close', 'finished:ERR_STREAM_PREMATURE_CLOSE'],
  });

  likeNative('end() then destroy() with nothing written: finished (an ended, empty Writable counts as finished)', {
    scenario: ({ stream }, t) => {
      watchFinished(stream, t);
      stream.end();
      stream.destroy();
    },
    events: ['close', 'error'],
    native: ['close', 'finished:ok'],
  });

  likeNative('already destroyed: ERR_STREAM_PREMATURE_CLOSE, again from inside the callback', {
    scenario: ({ stream }, t) => {
      stream.destroy();
      finished(stream, (error) => {
        t.mark(`first:${errorLabel(error)}; closed: ${stream.closed}`);
        watchFinished(stream, t, 'second');
      });
    },
    native: ['close', 'first:ERR_STREAM_PREMATURE_CLOSE; closed: true', 'second:ERR_STREAM_PREMATURE_CLOSE'],
  });

  const kaboom = new Error('kaboom');
  likeNative('destroyed with an error: finished() gets that error, again from inside the callback', {
    scenario: ({ stream }, t) => {
      stream.on('error', () => undefined);
      stream.destroy(kaboom);
      finished(stream, (error) => {
        t.mark(`first is the error: ${error === kaboom}`);
        finished(stream, (again) => t.mark(`second is the error: ${again === kaboom}`));
      });
    },
    native: ['error:Error', 'first is the error: true', 'close', 'second is the error: true'],
  });

  likeNative('the function finished() returns removes its listeners: no callback', {
    scenario: ({ stream }, t) => {
      const cleanup = watchFinished(stream, t);
      cleanup();
      stream.end();
    },
    native: ['finish', 'close'],
  });

  likeNative('finished() after "finish", on the next tick: calls back without an error', {
    scenario: ({ stream }, t) => {
      stream.end(item(1));
      stream.on('finish', () => process.nextTick(() => watchFinished(stream, t)));
    },
    native: ['finish', 'close', 'finished:ok'],
  });

  likeNative('a failed delivery: finished() from the "error" listener calls back with the error', {
    scenario: ({ stream }, t) => {
      stream.on('error', () => watchFinished(stream, t));
      stream.write(item(1));
    },
    mode: 'fail',
    kinds: FAILING_KINDS,
    native: ['error:Error', 'close', 'finished:Error'],
    intended: {
      difference: 'a failed flush is a BackpressureError',
      sluice: ['error:ERR_FLUSH_FAILED', 'close', 'finished:ERR_FLUSH_FAILED'],
    },
  });

  likeNative('finished(stream, { signal }) aborted: calls back with an AbortError', {
    scenario: ({ stream }, t) => {
      const controller = new AbortController();
      finished(stream, { signal: controller.signal }, (error) => t.mark(`finished:${errorLabel(error)}`));
      stream.write(item(1));
      controller.abort();
    },
    mode: 'hang',
    native: ['finished:ABORT_ERR'],
  });

  likeNative('finished() after write() returned false and end(): called once the last item is delivered', {
    scenario: async (subject, t) => {
      watchFinished(subject.stream, t);
      let writes = 0;
      while (subject.stream.write(item(writes++)));
      subject.stream.end();
      await settle();
      t.mark('ended, not yet finished');
      subject.releaseAll();
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    events: ['finish', 'close', 'error'], // 'drain' after end() is test-stream-write-drain.js's
    native: ['ended, not yet finished', 'finish', 'close', 'finished:ok'],
  });
});
