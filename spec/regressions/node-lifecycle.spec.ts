import { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { BlockingWritable } from '../../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from '../support/test-sink';
import { codeOf, traceEvents } from './helpers';

/**
 * Issue 9, defects 5-9: where a sluice parted from Node's Writable lifecycle. Node's own object-mode
 * Writable is the reference: each scenario runs against it and against a BlockingWritable, and the
 * traces must agree (the documented differences, such as 'drain' below the low watermark, do not
 * come into these scenarios).
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/** Node's object-mode Writable whose writes hang until `release()`; from then on they complete at once. */
function nativeWritable(highWaterMark: number): { stream: Writable; release: () => void } {
  let open = false;
  const held: (() => void)[] = [];
  const stream = new Writable({
    objectMode: true,
    highWaterMark,
    write(_chunk, _encoding, callback) {
      if (open) process.nextTick(callback);
      else held.push(callback);
    },
  });
  const release = (): void => {
    open = true;
    held.splice(0).forEach((callback) => callback());
  };
  return { stream, release };
}

describe("defect 5: no 'drain' once end() was called", () => {
  /** Writes until write() says false, ends, then lets everything through. */
  async function endAfterFalse(stream: Writable, release: () => void): Promise<string[]> {
    const trace = traceEvents(stream);
    const returns = range(0, 8).map((id) => stream.write(id));
    trace.push(`write: ${returns.join(',')}`);
    stream.end();
    await settle();
    release();
    await advance(200, 10);
    return trace;
  }

  test("defect 5: write() said false, then end(): the buffer empties without 'drain', as with a native Writable", async () => {
    const native = nativeWritable(8);
    const reference = await endAfterFalse(native.stream, native.release);
    expect(reference).toEqual(['write: true,true,true,true,true,true,true,false', 'finish', 'close']);

    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    // maxBufferSize 10: critical (write() === false) from 8 held, the native stream's highWaterMark.
    const sluice = new BlockingWritable(sink.flush, { maxBufferSize: 10, batchSize: 10 });
    const release = (): void => {
      while (sink.pendingCalls > 0) sink.resolveNext();
    };
    expect(await endAfterFalse(sluice, release)).toEqual(reference);
    expect(sink.delivered).toEqual(range(0, 8));
  });
});

describe('defect 6: end(chunk) after end() is an error, not a silent loss', () => {
  /** end(), then end(chunk, callback) in the same tick; returns the stream's events and what the callback got. */
  async function endTwice(stream: Writable): Promise<{ events: string[]; callback: string[] }> {
    const events = traceEvents(stream);
    const callback: string[] = [];
    stream.end();
    stream.end(99, (error?: Error | null) => callback.push(`callback:${codeOf(error) ?? String(error)}`));
    await advance(100, 10);
    return { events, callback };
  }

  test('defect 6: the callback and an error event get ERR_STREAM_WRITE_AFTER_END, as with a native Writable; the chunk is not offered', async () => {
    const reference = await endTwice(nativeWritable(8).stream);
    expect(reference).toEqual({
      events: ['error:ERR_STREAM_WRITE_AFTER_END', 'close'],
      callback: ['callback:ERR_STREAM_WRITE_AFTER_END'],
    });

    const sink = new TestSink<number>();
    const sluice = new BlockingWritable(sink.flush, { batchSize: 10 });
    expect(await endTwice(sluice)).toEqual(reference);
    expect(sink.calls).toEqual([]);
    expect(sluice.getMetrics()).toMatchObject({ eventsOffered: 0, eventsDropped: 0 });
  });
});

describe('defect 7: unpipe() resumes a source that was waiting for drain', () => {
  /** A source with its own 'data' listener, piped into `dest` until dest says false, then unpiped. */
  async function unpipeWhileWaiting(dest: Writable): Promise<{ before: unknown; after: unknown; read: number }> {
    let next = 0;
    const source = new Readable({
      objectMode: true,
      read() {
        this.push(next < 50 ? next++ : null);
      },
    });
    let read = 0;
    let ended = false;
    source.on('data', () => read++);
    source.on('end', () => (ended = true));
    source.pipe(dest);
    await settle();
    const before = { flowing: source.readableFlowing, needDrain: dest.writableNeedDrain, read };
    source.unpipe(dest);
    await settle();
    return { before, after: { flowing: source.readableFlowing, ended }, read };
  }

  test('defect 7: after unpipe() the source flows on to its end, as with a native Writable', async () => {
    const reference = await unpipeWhileWaiting(nativeWritable(8).stream);
    expect(reference).toEqual({
      before: { flowing: false, needDrain: true, read: 8 },
      after: { flowing: true, ended: true },
      read: 50,
    });

    const sink = new TestSink<number>().otherwise({ kind: 'hang' });
    const sluice = new BlockingWritable(sink.flush, {
      maxBufferSize: 10,
      batchSize: 10,
      onDeadLetter: () => undefined,
    });
    expect(await unpipeWhileWaiting(sluice)).toEqual(reference);
    sluice.destroy();
  });
});

describe('defect 8: finished() and pipeline() reject when an ended sluice closes with items undelivered', () => {
  /** finished(stream) settled to 'resolved' or the error code. */
  function outcomeOf(promise: Promise<unknown>): { value: string } {
    const outcome = { value: 'pending' };
    promise.then(
      () => (outcome.value = 'resolved'),
      (error: unknown) => (outcome.value = codeOf(error) ?? String(error)),
    );
    return outcome;
  }

  test('defect 8: end(), then destroy() with an item in flight: finished() rejects with ERR_STREAM_PREMATURE_CLOSE, as with a native Writable', async () => {
    const native = nativeWritable(8).stream;
    native.write(1);
    native.end();
    const reference = outcomeOf(finished(native));
    await settle();
    native.destroy();
    await settle();
    expect(reference.value).toBe('ERR_STREAM_PREMATURE_CLOSE');

    const sink = new TestSink<number>().otherwise({ kind: 'hang' });
    const sluice = new BlockingWritable(sink.flush, { batchSize: 1, onDeadLetter: () => undefined });
    sluice.write(1);
    sluice.end();
    const outcome = outcomeOf(finished(sluice));
    await settle();
    expect(sink.calls).toEqual([[1]]);
    sluice.destroy();
    await settle();
    expect(outcome.value).toBe(reference.value);
  });

  test('defect 8: pipeline() rejects with ERR_STREAM_PREMATURE_CLOSE when shutdown() gives up on items', async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'hang' });
    const sluice = new BlockingWritable(sink.flush, { batchSize: 2, onDeadLetter: () => undefined });
    const outcome = outcomeOf(pipeline(Readable.from(range(0, 5)), sluice));
    await settle();
    expect(sluice.writableEnded).toBe(true); // the source is done: the sluice was ended by pipeline()
    let result: unknown = 'pending';
    void sluice.shutdown({ timeoutMs: 100 }).then((value) => (result = value));
    await advance(150, 10);
    expect(result).toEqual({ undelivered: range(0, 5) });
    expect(outcome.value).toBe('ERR_STREAM_PREMATURE_CLOSE');
  });

  test('defect 8 (control): everything delivered, then closed: finished() and pipeline() resolve', async () => {
    const sink = new TestSink<number>();
    const sluice = new BlockingWritable(sink.flush, { batchSize: 2 });
    const piped = outcomeOf(pipeline(Readable.from(range(0, 5)), sluice));
    const done = outcomeOf(finished(sluice));
    await advance(500, 10);
    expect(sink.delivered).toEqual(range(0, 5));
    expect({ piped: piped.value, done: done.value }).toEqual({ piped: 'resolved', done: 'resolved' });
  });
});

describe("defect 9: no 'finish' after destroy()", () => {
  test("defect 9: end() then destroy() in the same tick on an empty stream: 'close' only, as with a native Writable", async () => {
    const native = nativeWritable(8).stream;
    const reference = traceEvents(native);
    native.end();
    native.destroy();
    await advance(100, 10);
    expect(reference).toEqual(['close']);

    const sluice = new BlockingWritable(new TestSink<number>().flush);
    const trace = traceEvents(sluice);
    sluice.end();
    sluice.destroy();
    await advance(100, 10);
    expect(trace).toEqual(reference);
  });

  test("defect 9: end() then destroy() after the last flush was sent but before it settled: no 'finish'", async () => {
    const sink = new TestSink<number>().otherwise({ kind: 'manual' });
    const sluice = new BlockingWritable(sink.flush, { batchSize: 1, onDeadLetter: () => undefined });
    const trace = traceEvents(sluice);
    sluice.write(1);
    sluice.end();
    await settle();
    sluice.destroy();
    sink.resolveNext(); // the sink answers after destroy(): too late to finish
    await advance(100, 10);
    expect(trace).toEqual(['close']);
  });
});
