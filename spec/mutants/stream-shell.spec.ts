import { finished } from 'node:stream/promises';
import { BackpressureTransform, BlockingWritable } from '../../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from '../support/test-sink';
import type { Writable } from 'node:stream';

/**
 * lib/stream-shell.ts, for both stream shapes: the call forms of write() and end(),
 * and the parts of Node's Writable state a sluice answers for (writableLength,
 * writableNeedDrain, writableFinished, the length token that keeps finished()
 * waiting). spec/conformance checks the same against a native Writable, but is too
 * slow to run per mutant; these are the cheap, exact versions. Written for mutants
 * that survived a Stryker run (docs/quality.md).
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

interface Shape {
  stream: Writable & { getMetrics(): { eventsFlushed: number } };
  sink: TestSink<string>;
}

const OPTIONS = {
  maxBufferSize: 4,
  batchSize: 2,
  minFlushIntervalMs: 1000,
  maxFlushIntervalMs: 1000,
  highWatermark: 0.75,
  lowWatermark: 0.5,
};

const shapes: [string, (sink: TestSink<string>) => Shape['stream']][] = [
  ['BlockingWritable', (sink) => new BlockingWritable<string>(sink.flush, OPTIONS)],
  [
    'BackpressureTransform',
    (sink) => {
      const transform = new BackpressureTransform<string>(OPTIONS);
      // The Transform pushes its batches; a consumer stands in for the sink.
      transform.on('data', (batch: string[]) => void sink.flush(batch));
      return transform;
    },
  ],
];

describe.each(shapes)('%s', (_name, make) => {
  function shape(fallback: ConstructorParameters<typeof TestSink<string>>[0] = { kind: 'ok' }): Shape {
    const sink = new TestSink<string>(fallback);
    return { sink, stream: make(sink) };
  }

  test('write(chunk, callback) and write(chunk, encoding, callback) both call the callback', async () => {
    const { stream } = shape();
    const calls: string[] = [];
    stream.write('a', () => calls.push('a'));
    stream.write('b', 'utf8', () => calls.push('b'));
    await settle();
    expect(calls).toEqual(['a', 'b']);
  });

  test('end(callback), end(chunk, callback) and end(chunk, encoding, callback)', async () => {
    for (const form of ['cb', 'chunk-cb', 'chunk-encoding-cb'] as const) {
      const { stream, sink } = shape();
      const events: string[] = [];
      stream.on('finish', () => events.push('finish'));
      const callback = (): number => events.push('callback');
      if (form === 'cb') stream.end(callback);
      else if (form === 'chunk-cb') stream.end('last', callback);
      else stream.end('last', 'utf8', callback);
      if (stream instanceof BackpressureTransform) stream.resume();
      await advance(10, 5);
      expect(events).toEqual(['callback', 'finish']); // as Node: end()'s callback runs just before 'finish'
      expect(sink.delivered).toEqual(form === 'cb' ? [] : ['last']);
    }
  });

  test("end() and destroy() in the same tick after the last delivery: no 'finish', writableFinished stays false", async () => {
    const { stream } = shape();
    const events: string[] = [];
    stream.on('finish', () => events.push('finish'));
    stream.on('close', () => events.push('close'));
    stream.write('a');
    stream.end();
    if (stream instanceof BackpressureTransform) stream.resume();
    stream.destroy();
    await advance(10, 5);
    expect(events).toEqual(['close']);
    expect(stream.writableFinished).toBe(false);
  });

  test("destroyed from a 'prefinish' listener: no 'finish', writableFinished stays false", async () => {
    const { stream } = shape();
    const events: string[] = [];
    stream.on('prefinish', () => stream.destroy());
    stream.on('finish', () => events.push('finish'));
    stream.on('close', () => events.push('close'));
    stream.write('a');
    stream.end();
    if (stream instanceof BackpressureTransform) stream.resume();
    await advance(10, 5);
    expect(events).toEqual(['close']);
    expect(stream.writableFinished).toBe(false);
  });

  test('cork() twice needs uncork() twice; writableCorked counts', async () => {
    const { stream, sink } = shape();
    stream.cork();
    stream.cork();
    expect(stream.writableCorked).toBe(2);
    stream.write('a');
    stream.uncork();
    expect(stream.writableCorked).toBe(1);
    await advance(2000, 100);
    expect(sink.delivered).toEqual([]);
    stream.uncork();
    expect(stream.writableCorked).toBe(0);
    await advance(10, 5);
    expect(sink.delivered).toEqual(['a']);
  });
});

// Held items and a sink that hangs: the Writable (the Transform's sink is its reader).
describe('BlockingWritable with a sink that settles late', () => {
  test('writableLength counts held items and waiting writes; writableNeedDrain is false once ending or destroyed', async () => {
    const sink = new TestSink<string>({ kind: 'hang' });
    const stream = new BlockingWritable<string>(sink.flush, OPTIONS);
    for (const item of ['a', 'b', 'c', 'd', 'e']) stream.write(item);
    // 4 held (2 in a hung call, 2 queued) and 1 waiting at 'blocked'.
    expect(stream.writableLength).toBe(5);
    expect(stream.writableNeedDrain).toBe(true);
    stream.end();
    expect(stream.writableNeedDrain).toBe(false);
    expect(stream.writableLength).toBe(5);
    stream.on('error', () => undefined);
    stream.on('deadletter', () => undefined);
    stream.destroy();
    expect(stream.writableNeedDrain).toBe(false);
    expect(stream.writableLength).toBe(0);
    expect(sink.calls).toHaveLength(1);
  });

  test('end(chunk) right after write() said false: writableNeedDrain is false at once', () => {
    const stream = new BlockingWritable<string>(new TestSink<string>({ kind: 'hang' }).flush, OPTIONS);
    stream.on('deadletter', () => undefined);
    for (const item of ['a', 'b']) stream.write(item);
    expect(stream.write('c')).toBe(false);
    expect(stream.writableNeedDrain).toBe(true);
    stream.end('d');
    expect(stream.writableNeedDrain).toBe(false);
    stream.destroy();
  });

  test('writableNeedDrain is false on a destroyed stream that still needed drain', async () => {
    const stream = new BlockingWritable<string>(new TestSink<string>({ kind: 'hang' }).flush, OPTIONS);
    stream.on('deadletter', () => undefined);
    for (const item of ['a', 'b', 'c', 'd']) stream.write(item);
    expect(stream.writableNeedDrain).toBe(true);
    stream.destroy();
    expect(stream.writableNeedDrain).toBe(false);
    await settle();
  });

  test('ended with items held: finished() waits for them, and resolves once they are delivered', async () => {
    const sink = new TestSink<string>({ kind: 'manual' });
    const stream = new BlockingWritable<string>(sink.flush, OPTIONS);
    stream.write('a');
    stream.write('b');
    stream.end();
    let outcome = 'pending';
    finished(stream).then(
      () => (outcome = 'resolved'),
      (error: { code?: string }) => (outcome = `rejected: ${error.code}`),
    );
    await advance(10, 5);
    expect(outcome).toBe('pending');
    expect(stream.writableFinished).toBe(false);
    sink.resolveNext();
    await advance(10, 5);
    expect(stream.writableFinished).toBe(true);
    expect(outcome).toBe('resolved');
  });

  test('ended, then destroyed with items held: finished() rejects with ERR_STREAM_PREMATURE_CLOSE, never "finish"', async () => {
    const stream = new BlockingWritable<string>(new TestSink<string>({ kind: 'manual' }).flush, OPTIONS);
    stream.on('deadletter', () => undefined);
    const events: string[] = [];
    stream.on('finish', () => events.push('finish'));
    stream.write('a');
    stream.write('b');
    stream.end();
    let outcome = 'pending';
    finished(stream).then(
      () => (outcome = 'resolved'),
      (error: { code?: string }) => (outcome = `rejected: ${error.code}`),
    );
    await advance(10, 5);
    stream.destroy();
    await advance(10, 5);
    expect(outcome).toBe('rejected: ERR_STREAM_PREMATURE_CLOSE');
    expect(events).toEqual([]);
    expect(stream.writableFinished).toBe(false);
  });
});
