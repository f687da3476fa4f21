import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackpressureState, BlockingWritable } from '../../lib';
import type { BackpressureOptions, FlushResult } from '../../lib';
import { advance, useStreamFakeTimers, watchWrites } from '../support/test-sink';

/**
 * Issue 9, defect 2: sizeOf was called again after admission (the sequential fallback and the
 * failedItems narrowing re-measured items). A sink that edits its rows then left phantom bytes
 * behind: 0 items held and thousands of bytes counted, the stream stuck at `elevated`, no 'drain',
 * a pipeline that never settled. An item is sized once, at admission, and exactly that is released.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

interface Row {
  id: number;
  payload?: string;
}

const rows = (count: number): Row[] => Array.from({ length: count }, (_, id) => ({ id, payload: 'x'.repeat(90) }));
/** Rows the sink refuses, whatever else is in their batch: one in each batch of 5. */
const isPoison = (row: Row): boolean => row.id % 5 === 2;

/** A sizeOf that counts how often each row was measured. */
function countingSizeOf(): { sizeOf: (row: Row) => number; measured: Map<number, number> } {
  const measured = new Map<number, number>();
  return {
    measured,
    sizeOf: (row) => {
      measured.set(row.id, (measured.get(row.id) ?? 0) + 1);
      return Buffer.byteLength(JSON.stringify(row));
    },
  };
}

/** Edits every row it is given (as an ORM that strips a column might), then fails batches with a poison row. */
async function editingSinkThatThrows(batch: Row[]): Promise<void> {
  for (const row of batch) delete row.payload;
  if (batch.some(isPoison)) throw new Error('violates a constraint');
}

/** Edits every row, then reports the poison rows in failedItems; the retry of those fails again. */
async function editingSinkWithFailedItems(batch: Row[]): Promise<FlushResult<Row> | void> {
  for (const row of batch) delete row.payload;
  const failedItems = batch.filter(isPoison);
  if (failedItems.length === 0) return undefined;
  return { success: batch.length - failedItems.length, failed: failedItems.length, errors: [], failedItems };
}

function options(sizeOf: (row: Row) => number, deadLetters: Row[]): BackpressureOptions<Row> {
  return {
    maxBufferSize: 100,
    maxBufferBytes: 1000, // about 8 rows of 112 bytes: the byte bound is the one that bites
    batchSize: 5,
    retry: { maxRetries: 1, initialDelayMs: 0, maxDelayMs: 0 },
    fallbackToSequential: true,
    sizeOf,
    onDeadLetter: (items) => void deadLetters.push(...items),
  };
}

describe('defect 2: sizeOf is called once per item, at admission', () => {
  test('defect 2: a sink that edits its rows, with the sequential fallback: bufferBytes returns to 0, drain and finish come, pipeline() resolves', async () => {
    const deadLetters: Row[] = [];
    const { sizeOf } = countingSizeOf();
    const stream = new BlockingWritable(editingSinkThatThrows, options(sizeOf, deadLetters));
    const watch = watchWrites(stream);
    const events: string[] = [];
    stream.on('drain', () => events.push('drain'));
    stream.on('finish', () => events.push('finish'));
    let outcome = 'pending';
    pipeline(Readable.from(rows(40)), stream).then(
      () => (outcome = 'resolved'),
      (error: Error) => (outcome = `rejected: ${error.message}`),
    );
    await advance(3000, 10);
    expect(watch.falses).toBeGreaterThan(0); // the scenario did press the producer
    const m = stream.getMetrics();
    expect({ bufferSize: m.bufferSize, bufferBytes: m.bufferBytes, state: m.state }).toEqual({
      bufferSize: 0,
      bufferBytes: 0,
      state: BackpressureState.NORMAL,
    });
    expect(events.filter((event) => event === 'drain').length).toBeGreaterThan(0);
    expect(events).toContain('finish');
    expect(outcome).toBe('resolved');
    expect(deadLetters.map((row) => row.id)).toEqual([2, 7, 12, 17, 22, 27, 32, 37]);
    expect(m).toMatchObject({ eventsOffered: 40, eventsFlushed: 32, deadLettered: 8 });
  });

  test.each([
    ['sequential fallback after a failed batch', editingSinkThatThrows],
    ['failedItems narrowing, then the sequential fallback', editingSinkWithFailedItems],
  ])('defect 2: %s: each offered item is sized exactly once', async (_name, sink) => {
    const deadLetters: Row[] = [];
    const { sizeOf, measured } = countingSizeOf();
    const stream = new BlockingWritable(sink, options(sizeOf, deadLetters));
    let finished = false;
    stream.on('finish', () => (finished = true));
    // 5 rows (560 bytes) at a time, so that none of them has to wait for room.
    for (const chunk of [rows(40).slice(0, 5), rows(40).slice(5, 10)]) {
      for (const row of chunk) stream.write(row);
      await advance(200, 10);
    }
    stream.end();
    await advance(500, 10);
    expect([...measured.entries()]).toEqual(Array.from({ length: 10 }, (_, id) => [id, 1]));
    expect(finished).toBe(true);
    expect(deadLetters.map((row) => row.id)).toEqual([2, 7]);
    expect(stream.getMetrics()).toMatchObject({ bufferBytes: 0, bufferSize: 0, eventsFlushed: 8, deadLettered: 2 });
  });
});
