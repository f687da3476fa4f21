import { Writable } from 'node:stream';
import {
  BackpressureController,
  BackpressureTransform,
  BlockingWritable,
  DropNewestWritable,
  SamplingWritable,
  createBackpressureStream,
} from '../../lib';
import { settle } from '../support/test-sink';
import { STRATEGY_CLASSES } from './helpers';
import type { BackpressureOptions, BackpressureWritableOptions, WritevCallback, WritevChunks } from '../../lib';

/**
 * Node's constructor forms: `(flush, options?)`, `(options)` with `flush` or `writev`, and a class
 * with a `_writev()` method. Exactly one delivery hook: none or two is a coded TypeError naming them.
 */

const flush = async (): Promise<void> => undefined;
const writev = (_chunks: unknown, callback: () => void): void => callback();

class WithWritev extends BlockingWritable<number> {
  override _writev(_chunks: WritevChunks<number>, callback: WritevCallback<number>): void {
    callback();
  }
}

/** What a construction threw: its class, code and message. */
function thrown(construct: () => unknown): { type: string; code: unknown; message: string } | undefined {
  try {
    construct();
  } catch (error) {
    const e = error as Error & { code?: unknown };
    return { type: e.constructor.name, code: e.code, message: e.message };
  }
  return undefined;
}

/** Untyped options, as a JavaScript caller may pass them. */
const loose = (options: object): BackpressureWritableOptions<number> => options;

describe.each(STRATEGY_CLASSES)('$name takes every form', ({ Base }) => {
  test.each([
    ['(flush)', () => new (Base as unknown as new (f: unknown) => Writable)(flush)],
    [
      '(flush, options)',
      () => new (Base as unknown as new (f: unknown, o: unknown) => Writable)(flush, { batchSize: 5 }),
    ],
    ['({ flush, ...options })', () => new Base({ flush, batchSize: 5 })],
    ['({ writev, ...options })', () => new Base({ writev, batchSize: 5 })],
    ['({ objectMode: true, writev })', () => new Base({ objectMode: true, writev })],
  ])('%s', async (_form, construct) => {
    const stream = construct();
    expect(stream).toBeInstanceOf(Base);
    stream.write(1);
    stream.end();
    await settle();
    expect(stream.writableFinished).toBe(true);
  });
});

describe('exactly one delivery hook', () => {
  test.each([
    ['no argument, no _writev()', () => new BlockingWritable<number>(), /No delivery hook was given/],
    ['options without a hook', () => new DropNewestWritable<number>({ batchSize: 10 }), /No delivery hook was given/],
    [
      'a subclass with _write() only',
      () =>
        new (class extends SamplingWritable<number> {
          override _write(_chunk: unknown, _encoding: BufferEncoding, callback: () => void): void {
            callback();
          }
        })(),
      /_write\(\) is never called, use _writev\(\)/,
    ],
  ])('%s: ERR_MISSING_ARGS', (_case, construct, message) => {
    expect(thrown(construct)).toEqual({
      type: 'TypeError',
      code: 'ERR_MISSING_ARGS',
      message: expect.stringMatching(message),
    });
    expect(thrown(construct)?.message).toMatch(
      /"flush" argument, the "flush" option, the "writev" option or a _writev\(\) method/,
    );
  });

  test.each([
    [
      'the flush argument and a _writev() method',
      () => new WithWritev(flush as never),
      /^The "flush" argument and a _writev\(\) method were given together/,
    ],
    [
      'the flush argument and the writev option',
      () => new BlockingWritable(flush, loose({ writev }) as BackpressureOptions<number>),
      /^The "flush" argument and the "writev" option were given together/,
    ],
    [
      'the flush and writev options',
      () => new BlockingWritable(loose({ flush, writev })),
      /^The "flush" option and the "writev" option were given together/,
    ],
    [
      'the writev option and a _writev() method',
      () => new WithWritev({ writev }),
      /^The "writev" option and a _writev\(\) method were given together/,
    ],
    [
      'all three options-form hooks',
      () => new WithWritev(loose({ flush, writev })),
      /^The "flush" option and the "writev" option and a _writev\(\) method were given together/,
    ],
  ])('%s: ERR_INCOMPATIBLE_OPTION_PAIR', (_case, construct, message) => {
    expect(thrown(construct)).toEqual({
      type: 'TypeError',
      code: 'ERR_INCOMPATIBLE_OPTION_PAIR',
      message: expect.stringMatching(message),
    });
    expect(thrown(construct)?.message).toMatch(/a sluice Writable takes exactly one delivery hook/);
  });

  test('a _writev() subclass needs no arguments at all', async () => {
    const stream = new WithWritev();
    stream.write(1);
    stream.end();
    await settle();
    expect(stream.getMetrics().eventsFlushed).toBe(1);
  });
});

describe('bad hooks and misspelt options name the option', () => {
  test.each([
    [
      'writev not a function',
      () => new BlockingWritable(loose({ writev: 'insert' })),
      'TypeError',
      'ERR_INVALID_ARG_TYPE',
      /The option "writev" must be a function\. Received 'insert'/,
    ],
    [
      'flush not a function',
      () => new BlockingWritable(loose({ flush: 42 })),
      'TypeError',
      'ERR_INVALID_ARG_TYPE',
      /The option "flush" must be a function\. Received 42/,
    ],
    [
      'writeV (misspelt)',
      () => new BlockingWritable(loose({ writeV: writev })),
      'RangeError',
      'ERR_INVALID_ARG_VALUE',
      /The option "writeV" is not a sluice option \(did you mean "writev"\?\)/,
    ],
    [
      '_writev as an option',
      () => new BlockingWritable(loose({ _writev: writev })),
      'RangeError',
      'ERR_INVALID_ARG_VALUE',
      /The option "_writev" is not a sluice option \(as an option it is "writev"\)/,
    ],
    [
      "Node's write option",
      () => new BlockingWritable(loose({ write: writev })),
      'RangeError',
      'ERR_INVALID_ARG_VALUE',
      /The option "write" is not a sluice option \(sluice delivers batches: use "writev"/,
    ],
    [
      "Node's highWaterMark",
      () => new BlockingWritable(loose({ writev, highWaterMark: 16 })),
      'RangeError',
      'ERR_INVALID_ARG_VALUE',
      /"highWaterMark" is not a sluice option \(sluice derives it from "maxBufferSize" × "highWatermark"\)/,
    ],
    [
      'objectMode: false',
      () => new BlockingWritable(loose({ writev, objectMode: false })),
      'RangeError',
      'ERR_INVALID_ARG_VALUE',
      /The option "objectMode" must be true or left out \(a sluice is always in object mode\)\. Received false/,
    ],
    [
      'a first argument that is neither',
      () => new BlockingWritable('insert' as never),
      'TypeError',
      'ERR_INVALID_ARG_TYPE',
      /The "flush" argument must be a function or an options object\. Received 'insert'/,
    ],
    [
      'no flush function, then options',
      () => new (BlockingWritable as unknown as new (a: unknown, b: unknown) => Writable)(undefined, { batchSize: 5 }),
      'TypeError',
      'ERR_INVALID_ARG_TYPE',
      /The "flush" argument must be a function or an options object\. Received undefined/,
    ],
    [
      'options first, then a second argument',
      () => new (BlockingWritable as unknown as new (a: unknown, b: unknown) => Writable)({ writev }, { batchSize: 5 }),
      'TypeError',
      'ERR_INVALID_ARG_TYPE',
      /The second argument must be left out when the first is an options object/,
    ],
  ])('%s', (_case, construct, type, code, message) => {
    expect(thrown(construct)).toEqual({ type, code, message: expect.stringMatching(message) });
  });
});

describe('createBackpressureStream and BackpressureController follow the same rules', () => {
  test('createBackpressureStream({ writev, strategy }) picks the class and uses the hook', async () => {
    const batches: number[][] = [];
    const stream = createBackpressureStream<number>({
      writev(chunks, callback) {
        batches.push(chunks.map((c) => c.chunk));
        callback();
      },
      strategy: 'drop_newest',
      batchSize: 2,
    });
    expect(stream).toBeInstanceOf(DropNewestWritable);
    for (const id of [1, 2, 3]) stream.write(id);
    stream.end();
    await settle();
    expect(batches).toEqual([[1, 2], [3]]);
  });

  test('BackpressureController({ flush }) and ({ writev })', async () => {
    const stored: number[] = [];
    const byFlush = new BackpressureController<number>({ flush: async (items) => void stored.push(...items) });
    const byWritev = new BackpressureController<number>({
      writev: (chunks, callback) => (stored.push(...chunks.map((c) => c.chunk)), callback()),
    });
    for (const controller of [byFlush, byWritev]) {
      controller.start();
      await controller.push(stored.length);
      await controller.drain();
      controller.stop();
    }
    expect(stored).toEqual([0, 1]);
  });

  test.each([
    ['createBackpressureStream()', () => createBackpressureStream<number>({ strategy: 'block' }), 'ERR_MISSING_ARGS'],
    [
      'createBackpressureStream(flush, { writev })',
      () => createBackpressureStream(flush, loose({ writev })),
      'ERR_INCOMPATIBLE_OPTION_PAIR',
    ],
    ['new BackpressureController({})', () => new BackpressureController<number>({}), 'ERR_MISSING_ARGS'],
    [
      'new BackpressureController({ flush, writev })',
      () => new BackpressureController(loose({ flush, writev })),
      'ERR_INCOMPATIBLE_OPTION_PAIR',
    ],
  ])('%s', (_case, construct, code) => {
    expect(thrown(construct)).toMatchObject({ type: 'TypeError', code });
  });
});

describe('the Transform has no sink', () => {
  test.each(['flush', 'writev'])('the %s option is refused, naming it', (name) => {
    expect(thrown(() => new BackpressureTransform(loose({ [name]: flush }) as BackpressureOptions<number>))).toEqual({
      type: 'RangeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: expect.stringMatching(
        new RegExp(`The option "${name}" does not apply to BackpressureTransform \\(it has no sink`),
      ),
    });
  });

  test('objectMode: true is accepted', () => {
    expect(() => new BackpressureTransform<number>({ objectMode: true })).not.toThrow();
  });
});
