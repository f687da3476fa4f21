import { BackpressureError, BlockingWritable } from '../../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from '../support/test-sink';
import { captureWarnings, codeOf, expectBalanced, traceEvents } from './helpers';

/**
 * Issue 9, defects 10 and 12.
 * 10: shutdown() under-reported when destroy() came during it: `{ undelivered: [] }` although
 *     every held item was dead-lettered. It resolves with every item it did not deliver.
 * 12: destroy() without an error emitted 'error' when items were held and there was no dead-letter
 *     path (crashing an app with no error listener), and destroy(err) emitted a wrapper instead of
 *     `err`. Node's rule holds now; the held items still go to the dead-letter path, or, without one,
 *     a process warning (SLUICE_ITEMS_DISCARDED) says how many were discarded, and the metrics count them.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

interface DeadLetter {
  items: number[];
  error: BackpressureError<number>;
}

/** A block stream holding 5 items: [0, 1] in a flush that never answers, [2, 3] queued, and 4 as a waiting write. */
function loaded(withDeadLetters: boolean) {
  const sink = new TestSink<number>().otherwise({ kind: 'hang' });
  const deadLetters: DeadLetter[] = [];
  const stream = new BlockingWritable(sink.flush, {
    maxBufferSize: 4,
    batchSize: 2,
    onDeadLetter: withDeadLetters ? (items, error) => void deadLetters.push({ items, error }) : undefined,
  });
  const errors: unknown[] = [];
  stream.on('error', (error) => errors.push(error));
  for (const id of range(0, 5)) stream.write(id);
  return { sink, stream, deadLetters, errors };
}

describe('defect 10: shutdown() reports every item it did not deliver', () => {
  test('defect 10: destroy() during shutdown(): it resolves with every held item, the same ones dead-lettered', async () => {
    const { stream, deadLetters } = loaded(true);
    await settle();
    expect(stream.getMetrics()).toMatchObject({ bufferSize: 4, waitingWrites: 1 });
    let result: unknown = 'pending';
    void stream.shutdown({ timeoutMs: 1000 }).then((value) => (result = value));
    await advance(100, 10);
    stream.destroy();
    await settle();
    expect(result).toEqual({ undelivered: range(0, 5) });
    expect(deadLetters.flatMap((d) => d.items).sort()).toEqual(range(0, 5));
    expectBalanced(stream.getMetrics());
  });

  test('defect 10: destroy() during shutdown() after part was delivered: it resolves with the rest', async () => {
    const sink = new TestSink<number>().script({ kind: 'ok' }).otherwise({ kind: 'hang' });
    const deadLetters: number[] = [];
    const stream = new BlockingWritable(sink.flush, {
      batchSize: 2,
      onDeadLetter: (items) => void deadLetters.push(...items),
    });
    for (const id of range(0, 5)) stream.write(id);
    let result: unknown = 'pending';
    void stream.shutdown({ timeoutMs: 1000 }).then((value) => (result = value));
    await advance(100, 10);
    expect(sink.delivered).toEqual([0, 1]);
    expect(sink.calls).toHaveLength(2); // [2, 3] hangs; 4 is queued
    stream.destroy();
    await settle();
    expect(result).toEqual({ undelivered: [2, 3, 4] });
    expect(deadLetters.sort()).toEqual([2, 3, 4]);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 2, deadLettered: 3, bufferSize: 0 });
  });

  test('defect 10 (control): the deadline itself passes: it resolves with every unconfirmed item', async () => {
    const { stream, deadLetters } = loaded(true);
    let result: unknown = 'pending';
    void stream.shutdown({ timeoutMs: 100 }).then((value) => (result = value));
    await advance(150, 10);
    expect(result).toEqual({ undelivered: range(0, 5) });
    expect(deadLetters.flatMap((d) => d.items).sort()).toEqual(range(0, 5));
  });
});

describe("defect 12: destroy() follows Node's error rules; held items are never lost silently", () => {
  test("defect 12: destroy() with items held and no dead-letter path: no 'error', a SLUICE_ITEMS_DISCARDED warning, counted", async () => {
    const { warnings, restore } = captureWarnings();
    try {
      const { stream, errors } = loaded(false);
      await settle();
      const trace = traceEvents(stream, ['error', 'close']);
      stream.destroy();
      await settle();
      expect(errors).toEqual([]);
      expect(trace).toEqual(['close']);
      const discarded = warnings.filter((w) => w.code === 'SLUICE_ITEMS_DISCARDED');
      expect(discarded).toHaveLength(1);
      expect(discarded[0]?.message).toMatch(/\b5\b/);
      const m = stream.getMetrics();
      expect(m).toMatchObject({ deadLettered: 5, bufferSize: 0, waitingWrites: 0, eventsOffered: 5 });
      expectBalanced(m);
    } finally {
      restore();
    }
  });

  test('defect 12: destroy(err) with items held and no dead-letter path emits exactly err, once', async () => {
    const { warnings, restore } = captureWarnings();
    try {
      const { stream, errors } = loaded(false);
      await settle();
      const cause = new Error('the app is going down');
      stream.destroy(cause);
      await settle();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBe(cause);
      // The items are still not lost silently.
      expect(warnings.filter((w) => w.code === 'SLUICE_ITEMS_DISCARDED')).toHaveLength(1);
      expect(stream.getMetrics()).toMatchObject({ deadLettered: 5, bufferSize: 0 });
      expectBalanced(stream.getMetrics());
    } finally {
      restore();
    }
  });

  test("defect 12 (control): with a dead-letter path: destroy() emits no 'error' and no warning; the items are dead-lettered as destroyed", async () => {
    const { warnings, restore } = captureWarnings();
    try {
      const { stream, errors, deadLetters } = loaded(true);
      await settle();
      stream.destroy();
      await settle();
      expect(errors).toEqual([]);
      expect(warnings.filter((w) => w.code === 'SLUICE_ITEMS_DISCARDED')).toEqual([]);
      expect(deadLetters.flatMap((d) => d.items).sort()).toEqual(range(0, 5));
      for (const { error } of deadLetters) {
        expect(error).toBeInstanceOf(BackpressureError);
        expect(error).toMatchObject({ code: 'ERR_STREAM_DESTROYED', reason: 'destroyed' });
      }
      expectBalanced(stream.getMetrics());
    } finally {
      restore();
    }
  });

  test('defect 12 (control): destroy(err) with a dead-letter path emits exactly err; the dead letters carry it as cause', async () => {
    const { stream, errors, deadLetters } = loaded(true);
    await settle();
    const cause = new Error('bye');
    stream.destroy(cause);
    await settle();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBe(cause);
    expect(deadLetters.flatMap((d) => d.items).sort()).toEqual(range(0, 5));
    expect(codeOf(deadLetters[0]?.error)).toBe('ERR_STREAM_DESTROYED');
    expect(deadLetters[0]?.error.cause).toBe(cause);
  });
});
