import {
  BackpressureController,
  BackpressureStrategy,
  BackpressureTransform,
  BlockingWritable,
  DEFAULT_CONFIG,
  DropOldestWritable,
  createBackpressureStream,
} from '../lib';
import type { BackpressureOptions } from '../lib';

const flush = async (): Promise<void> => undefined;

describe('defaults', () => {
  test('DEFAULT_CONFIG has the design doc values and is frozen', () => {
    expect(DEFAULT_CONFIG).toMatchObject({
      maxBufferSize: 10000,
      highWatermark: 0.8,
      lowWatermark: 0.5,
      strategy: 'drop_oldest',
      sampleRate: 10,
      maxBlockTimeMs: 5000,
      batchSize: 100,
      minFlushIntervalMs: 100,
      maxFlushIntervalMs: 30000,
      targetLatencyMs: 500,
      maxConcurrentFlushes: 1,
      fallbackToSequential: false,
    });
    expect(Object.isFrozen(DEFAULT_CONFIG)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.retry)).toBe(true);
  });

  test('the enums have exactly the contract values', () => {
    expect(Object.values(BackpressureStrategy)).toEqual(['block', 'drop_oldest', 'drop_newest', 'sample']);
  });

  test('createBackpressureStream picks the subclass named by strategy (drop_oldest by default)', () => {
    expect(createBackpressureStream(flush)).toBeInstanceOf(DropOldestWritable);
    expect(createBackpressureStream(flush, { strategy: BackpressureStrategy.BLOCK })).toBeInstanceOf(BlockingWritable);
  });
});

type Case = [string, Record<string, unknown>, string, RegExp];

const invalid: Case[] = [
  [
    'maxBufferSize 0',
    { maxBufferSize: 0 },
    'ERR_OUT_OF_RANGE',
    /"maxBufferSize" must be an integer >= 1\. Received 0$/,
  ],
  ['maxBufferSize 1.5', { maxBufferSize: 1.5 }, 'ERR_OUT_OF_RANGE', /"maxBufferSize".*Received 1\.5/],
  ['maxBufferSize NaN', { maxBufferSize: NaN }, 'ERR_OUT_OF_RANGE', /"maxBufferSize".*Received NaN/],
  [
    'maxBufferSize "10"',
    { maxBufferSize: '10' },
    'ERR_INVALID_ARG_TYPE',
    /"maxBufferSize" must be of type number\. Received '10'/,
  ],
  ['highWatermark 0', { highWatermark: 0 }, 'ERR_OUT_OF_RANGE', /"highWatermark" must be > 0 and <= 1\. Received 0/],
  ['highWatermark 1.2', { highWatermark: 1.2 }, 'ERR_OUT_OF_RANGE', /"highWatermark".*Received 1\.2/],
  ['lowWatermark -0.1', { lowWatermark: -0.1 }, 'ERR_OUT_OF_RANGE', /"lowWatermark".*Received -0\.1/],
  [
    'lowWatermark 0 (normal unreachable)',
    { lowWatermark: 0 },
    'ERR_OUT_OF_RANGE',
    /"lowWatermark" must be > 0 and < 1\. Received 0/,
  ],
  ['lowWatermark NaN', { lowWatermark: NaN }, 'ERR_OUT_OF_RANGE', /"lowWatermark".*Received NaN/],
  [
    'lowWatermark >= highWatermark',
    { lowWatermark: 0.9 },
    'ERR_OUT_OF_RANGE',
    /The option "lowWatermark" must be below "highWatermark" \(0\.8\)\. Received 0\.9/,
  ],
  [
    'lowWatermark == highWatermark',
    { lowWatermark: 0.6, highWatermark: 0.6 },
    'ERR_OUT_OF_RANGE',
    /below "highWatermark" \(0\.6\)/,
  ],
  [
    'strategy unknown',
    { strategy: 'drop_random' },
    'ERR_INVALID_ARG_VALUE',
    /"strategy" must be one of 'block', 'drop_oldest', 'drop_newest', 'sample'\. Received 'drop_random'/,
  ],
  ['sampleRate 0', { sampleRate: 0 }, 'ERR_OUT_OF_RANGE', /"sampleRate".*Received 0/],
  ['maxBlockTimeMs -1', { maxBlockTimeMs: -1 }, 'ERR_OUT_OF_RANGE', /"maxBlockTimeMs".*Received -1/],
  ['batchSize 0', { batchSize: 0 }, 'ERR_OUT_OF_RANGE', /The option "batchSize" must be an integer >= 1\. Received 0/],
  [
    'batchSize > maxBufferSize',
    { batchSize: 200, maxBufferSize: 100 },
    'ERR_OUT_OF_RANGE',
    /"batchSize" must be <= "maxBufferSize" \(100\)\. Received 200/,
  ],
  [
    'min > max interval',
    { minFlushIntervalMs: 500, maxFlushIntervalMs: 100 },
    'ERR_OUT_OF_RANGE',
    /"minFlushIntervalMs" must be <= "maxFlushIntervalMs" \(100\)\. Received 500/,
  ],
  [
    'maxFlushIntervalMs Infinity',
    { maxFlushIntervalMs: Infinity },
    'ERR_OUT_OF_RANGE',
    /"maxFlushIntervalMs".*Received Infinity/,
  ],
  [
    'targetLatencyMs 0',
    { targetLatencyMs: 0 },
    'ERR_OUT_OF_RANGE',
    /"targetLatencyMs" must be a number > 0\. Received 0/,
  ],
  ['maxBufferBytes 0', { maxBufferBytes: 0 }, 'ERR_OUT_OF_RANGE', /"maxBufferBytes".*Received 0/],
  ['sizeOf not a function', { sizeOf: 3 }, 'ERR_INVALID_ARG_TYPE', /"sizeOf" must be a function\. Received 3/],
  ['maxConcurrentFlushes 0', { maxConcurrentFlushes: 0 }, 'ERR_OUT_OF_RANGE', /"maxConcurrentFlushes".*Received 0/],
  ['flushTimeoutMs 0', { flushTimeoutMs: 0 }, 'ERR_OUT_OF_RANGE', /"flushTimeoutMs".*Received 0/],
  ['retry not an object', { retry: 3 }, 'ERR_INVALID_ARG_TYPE', /"retry" must be an object\. Received 3/],
  [
    'retry.maxRetries -1',
    { retry: { maxRetries: -1 } },
    'ERR_OUT_OF_RANGE',
    /"retry\.maxRetries" must be an integer >= 0\. Received -1/,
  ],
  [
    'retry initial > max',
    { retry: { initialDelayMs: 10, maxDelayMs: 5 } },
    'ERR_OUT_OF_RANGE',
    /"retry\.initialDelayMs" must be <= "retry\.maxDelayMs" \(5\)\. Received 10/,
  ],
  [
    'retry unknown key',
    { retry: { attempts: 3 } },
    'ERR_INVALID_ARG_VALUE',
    /The option "retry\.attempts" is not a sluice option/,
  ],
  [
    'fallbackToSequential "yes"',
    { fallbackToSequential: 'yes' },
    'ERR_INVALID_ARG_TYPE',
    /"fallbackToSequential" must be of type boolean\. Received 'yes'/,
  ],
  [
    'onDeadLetter not a function',
    { onDeadLetter: 'log' },
    'ERR_INVALID_ARG_TYPE',
    /"onDeadLetter" must be a function\. Received 'log'/,
  ],
  [
    'signal not an AbortSignal',
    { signal: {} },
    'ERR_INVALID_ARG_TYPE',
    /"signal" must be an AbortSignal\. Received \{\}/,
  ],
  [
    'unknown option with a hint',
    { batchsize: 10 },
    'ERR_INVALID_ARG_VALUE',
    /The option "batchsize" is not a sluice option \(did you mean "batchSize"\?\)\. Received 10/,
  ],
];

describe.each([
  ['BlockingWritable', (config: Record<string, unknown>) => new BlockingWritable(flush, config as BackpressureOptions)],
  [
    'createBackpressureStream',
    (config: Record<string, unknown>) => createBackpressureStream(flush, config as BackpressureOptions),
  ],
  [
    'BackpressureTransform',
    (config: Record<string, unknown>) => new BackpressureTransform(config as BackpressureOptions),
  ],
  [
    'BackpressureController',
    (config: Record<string, unknown>) => new BackpressureController(flush, config as BackpressureOptions),
  ],
])('%s rejects bad options at construction', (_name, construct) => {
  test.each(invalid)('%s', (_case, config, code, message) => {
    let thrown: unknown;
    try {
      construct(config);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(code === 'ERR_INVALID_ARG_TYPE' ? TypeError : RangeError);
    expect(thrown).toMatchObject({ code });
    expect((thrown as Error).message).toMatch(message);
  });
});

describe('other bad arguments', () => {
  test('a flush that is not a function is a coded TypeError', () => {
    expect(() => new BlockingWritable('insert' as never)).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARG_TYPE',
        message: expect.stringMatching(/"flush" argument must be a function or an options object\. Received 'insert'/),
      }),
    );
  });

  test('config that is not an object is a coded TypeError', () => {
    expect(() => new BlockingWritable(flush, 42 as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
  });

  test('a strategy subclass refuses a different strategy instead of ignoring it', () => {
    expect(() => new BlockingWritable(flush, { strategy: BackpressureStrategy.SAMPLE })).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARG_VALUE',
        message: expect.stringMatching(
          /"strategy" must be 'block' for BlockingWritable \(or left out\)\. Received 'sample'/,
        ),
      }),
    );
    expect(new BlockingWritable(flush, { strategy: BackpressureStrategy.BLOCK }).getMetrics().state).toBe('normal');
  });

  test('the Transform refuses sink-failure options that cannot apply to it', () => {
    expect(() => new BackpressureTransform({ flushTimeoutMs: 100 })).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARG_VALUE',
        message: expect.stringMatching(/"flushTimeoutMs" does not apply/),
      }),
    );
  });

  test('Infinity is accepted where documented', () => {
    expect(
      () =>
        new BlockingWritable(flush, { maxBlockTimeMs: Infinity, flushTimeoutMs: Infinity, maxBufferBytes: Infinity }),
    ).not.toThrow();
  });
});
