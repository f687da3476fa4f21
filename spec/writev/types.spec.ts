import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BackpressureController,
  BackpressureState,
  BackpressureTransform,
  BlockingWritable,
  DropOldestWritable,
  createBackpressureStream,
} from '../../lib';
import { settle } from '../support/test-sink';
import type {
  BackpressureError,
  BackpressureEvents,
  BackpressureWritableOptions,
  DropReason,
  FlushResult,
  WritevCallback,
  WritevChunks,
} from '../../lib';

/**
 * Type-level checks of issue 10: ts-jest type-checks this file under --strict, so every
 * `// @ts-expect-error` line must be an error (an unused one fails the compile) and every other line
 * must compile. The runtime parts keep the typed paths honest.
 */

interface Row {
  id: number;
}

const rows = (n: number): Row[] => Array.from({ length: n }, (_, id) => ({ id }));

describe('_writev sinks, typed', () => {
  test("a subclass declares _writev with WritevChunks<T>, or with Node's own signature, unchanged", async () => {
    const seen: number[] = [];
    class Typed extends BlockingWritable<Row> {
      override _writev(chunks: WritevChunks<Row>, callback: WritevCallback<Row>): void {
        const first: Row | undefined = chunks[0]?.chunk;
        const signal: AbortSignal = chunks.signal;
        const attempt: number = chunks.attempt;
        void [first, signal, attempt];
        seen.push(...chunks.map((c) => c.chunk.id));
        callback();
      }
    }
    // A _writev written for a plain Writable compiles as it is after changing the base class.
    class AsInNode extends BlockingWritable<Row> {
      override _writev(
        chunks: Array<{ chunk: any; encoding: BufferEncoding }>, // eslint-disable-line @typescript-eslint/no-explicit-any
        callback: (error?: Error | null) => void,
      ): void {
        seen.push(...chunks.map((c) => (c.chunk as Row).id));
        callback();
      }
    }
    await pipeline(Readable.from(rows(2)), new Typed());
    await pipeline(Readable.from(rows(2)), new AsInNode({ objectMode: true }));
    expect(seen).toEqual([0, 1, 0, 1]);
  });

  test('the writev option: chunks and callback are typed from T', async () => {
    const ids: number[] = [];
    const sink = new BlockingWritable<Row>({
      writev(chunks, callback) {
        ids.push(...chunks.map((c) => c.chunk.id));
        const partial: FlushResult<Row> = { success: chunks.length, failed: 0, errors: [] };
        callback(null, partial);
      },
      batchSize: 500,
    });
    await pipeline(Readable.from(rows(3)), sink);
    expect(ids).toEqual([0, 1, 2]);

    new BlockingWritable<Row>({
      // @ts-expect-error the chunks of a BlockingWritable<Row> hold rows, not strings
      writev(chunks: WritevChunks<string>, callback: WritevCallback<string>) {
        void chunks;
        callback();
      },
    }).destroy();
    new BlockingWritable<Row>({
      writev(_chunks, callback) {
        // @ts-expect-error a FlushResult's counts are numbers
        callback(null, { success: 'all', failed: 0, errors: [] });
      },
    }).destroy();
  });

  test('at most one hook is a compile error too, where the types can see it', () => {
    const flush = async (): Promise<void> => undefined;
    const writev = (_chunks: WritevChunks<Row>, callback: WritevCallback<Row>): void => callback();
    // @ts-expect-error flush and writev together
    const both: BackpressureWritableOptions<Row> = { flush, writev };
    void both;
    // @ts-expect-error the (flush, options) form's options take no hook
    expect(() => new BlockingWritable<Row>(flush, { writev })).toThrow(
      expect.objectContaining({ code: 'ERR_INCOMPATIBLE_OPTION_PAIR' }),
    );
    // @ts-expect-error neither does the Transform
    expect(() => new BackpressureTransform<Row>({ writev })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
    );
    // @ts-expect-error objectMode can only be true
    expect(() => new BlockingWritable<Row>({ flush, objectMode: false })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
    );
    const made = createBackpressureStream<Row>({ writev, strategy: 'block' });
    const controller = new BackpressureController<Row>({
      flush: async (items, { attempt }) => void [items[0]?.id, attempt],
    });
    expect(made).toBeInstanceOf(BlockingWritable);
    made.destroy();
    controller.stream.destroy();
  });
});

describe('typed events', () => {
  test('listeners get the documented parameters; wrong ones do not compile', async () => {
    const sink = new DropOldestWritable<Row>(async () => undefined, { maxBufferSize: 2, batchSize: 2 });
    const states: [BackpressureState, BackpressureState][] = [];
    const drops: [number, DropReason][] = [];
    sink.on('state', (next, previous) => states.push([next, previous]));
    sink.on('drop', (item, reason) => drops.push([item.id, reason]));
    sink.on('deadletter', (items, error) => void [items[0]?.id, error.code, error.items[0]?.id]);
    sink.on('error', (error) => void error.message);
    sink.once('finish', () => undefined);
    sink.on('close', () => undefined);
    sink.on('drain', () => undefined);
    // Events Node types keep Node's typing; any other name takes any listener.
    sink.on('pipe', (source: Readable) => void source);
    sink.on('custom', (a: number, b: string) => void [a, b]);

    // @ts-expect-error 'state' gives BackpressureState values, not numbers
    sink.on('state', (next: number) => void next);
    // @ts-expect-error a DropOldestWritable<Row> drops rows
    sink.on('drop', (item: string) => void item);
    // @ts-expect-error the reason is a DropReason
    sink.on('drop', (_item: Row, reason: 'lost') => void reason);
    // @ts-expect-error dead letters are rows
    sink.once('deadletter', (items: string[]) => void items);
    // @ts-expect-error the error is a BackpressureError<Row>
    sink.on('deadletter', (_items: Row[], error: BackpressureError<string>) => void error);
    // @ts-expect-error 'error' gives an Error (not always a BackpressureError: an abort, ERR_MULTIPLE_CALLBACK)
    sink.on('error', (error: BackpressureError<Row>) => void error);
    // @ts-expect-error 'finish' has no argument to give
    sink.on('finish', (count: number) => void count);
    const listener = (next: BackpressureState): void => void next;
    sink.on('state', listener);
    sink.off('state', listener);
    // @ts-expect-error off() is typed as on() is
    sink.off('drop', (item: number) => void item);

    // The common idiom: resolve of a Promise<unknown> fits an event without arguments.
    const finished = new Promise((resolve) => sink.once('finish', resolve));
    for (const row of rows(5)) sink.write(row);
    sink.end();
    await finished;
    expect(states.map(([next]) => next)).toContain(BackpressureState.BLOCKED);
    expect(drops.every(([, reason]) => reason === 'evicted')).toBe(true);
  });

  test('the event map is exported for listeners declared apart', () => {
    const onDeadLetter = (...[items, error]: BackpressureEvents<Row>['deadletter']): void => void [items, error];
    const sink = new BlockingWritable<Row>(async () => undefined);
    sink.on('deadletter', onDeadLetter);
    sink.destroy();
  });

  test("the Transform's readable side is typed T[]: 'data' and read()", async () => {
    const listened = new BackpressureTransform<Row>();
    listened.on('data', (batch) => void batch[0]?.id);
    // @ts-expect-error the batches are Row[], not strings
    listened.on('data', (batch: string) => void batch);
    listened.on('state', (next) => void (next satisfies BackpressureState));
    listened.destroy();

    const transform = new BackpressureTransform<Row>({ batchSize: 2, strategy: 'block' });
    for (const row of rows(3)) transform.write(row);
    transform.end();
    await settle();
    const first: Row[] | null = transform.read();
    const ids: number[] = first?.map((row) => row.id) ?? [];
    // for await stays Node's iterator of any (see read()'s TSDoc): the batches are Row[] at run time.
    for await (const batch of transform as AsyncIterable<Row[]>) ids.push(...batch.map((row) => row.id));
    expect(ids).toEqual([0, 1, 2]);
    // @ts-expect-error read() gives Row[] | null, not a string
    const wrong: string = new BackpressureTransform<Row>().read();
    void wrong;
  });

  test('pipeline() still takes the typed streams', async () => {
    const delivered: Row[][] = [];
    const sink = new Writable({
      objectMode: true,
      write(batch: Row[], _encoding, callback) {
        delivered.push(batch);
        callback();
      },
    });
    await pipeline(Readable.from(rows(3)), new BackpressureTransform<Row>({ batchSize: 2 }), sink);
    await pipeline(
      Readable.from(rows(3)),
      new BackpressureTransform<Row>({ batchSize: 3 }),
      async (batches: AsyncIterable<Row[]>) => {
        for await (const batch of batches) delivered.push(batch);
      },
    );
    expect(delivered.map((batch) => batch.length)).toEqual([2, 1, 3]);
  });
});
