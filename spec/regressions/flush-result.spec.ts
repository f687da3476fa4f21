import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlockingWritable } from '../../lib';
import { advance, useStreamFakeTimers } from '../support/test-sink';
import { codeOf } from './helpers';

/**
 * Issue 9, defect 11: a flush function's ordinary return value got stored rows dead-lettered.
 * `rows => pool.query(...)` or returning `true`, `"OK"`, `[]` or better-sqlite3's RunResult gave
 * ERR_INVALID_FLUSH_RESULT: the rows were in the database and in the dead letters, and without a
 * handler the pipeline rejected after the data was written. Only an object with numeric `success`
 * and `failed` is read as a FlushResult; any other value means "all delivered". A FlushResult that
 * does not add up is still an error.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/** Pipes rows 0..9 through a sluice whose sink stores them and resolves `value`; no dead-letter path, so a misread fails the pipeline. */
async function run(value: unknown) {
  const stored: number[] = [];
  const stream = new BlockingWritable<number>(
    async (rows) => {
      stored.push(...rows);
      return value;
    },
    { batchSize: 4 },
  );
  let outcome = 'pending';
  pipeline(Readable.from(range(0, 10)), stream).then(
    () => (outcome = 'resolved'),
    (error: unknown) => (outcome = `rejected: ${codeOf(error) ?? String(error)}`),
  );
  await advance(500, 10);
  return { stored, outcome, metrics: stream.getMetrics() };
}

describe('defect 11: only { success: number, failed: number } is read as a FlushResult', () => {
  test.each([
    ['true', true],
    ['"OK"', 'OK'],
    ['an empty array', []],
    ["better-sqlite3's RunResult", { changes: 4, lastInsertRowid: 10 }],
    ["pg's QueryResult", { command: 'INSERT', rowCount: 4, rows: [], fields: [] }],
    ['a number', 4],
    ['an object with only a numeric success', { success: 4 }],
    ['an object with non-numeric counts', { success: '4', failed: '0' }],
  ])(
    'defect 11: a flush that resolves %s: all delivered, nothing dead-lettered, pipeline() resolves',
    async (_name, value) => {
      const { stored, outcome, metrics } = await run(value);
      expect(outcome).toBe('resolved');
      expect(stored).toEqual(range(0, 10));
      expect(metrics).toMatchObject({ eventsFlushed: 10, deadLettered: 0, bufferSize: 0 });
    },
  );

  test('defect 11 (control): a FlushResult that does not add up is still ERR_INVALID_FLUSH_RESULT, not delivered', async () => {
    const deadLetters: { items: number[]; code: string | undefined }[] = [];
    const stream = new BlockingWritable<number>(async () => ({ success: 1, failed: 0, errors: [] }), {
      batchSize: 4,
      onDeadLetter: (items, error) => void deadLetters.push({ items, code: error.code }),
    });
    for (const id of range(0, 4)) stream.write(id);
    const finished = jest.fn();
    stream.on('finish', finished);
    stream.end();
    await advance(200, 10);
    expect(finished).toHaveBeenCalled();
    expect(deadLetters).toEqual([{ items: range(0, 4), code: 'ERR_INVALID_FLUSH_RESULT' }]);
    expect(stream.getMetrics()).toMatchObject({ eventsFlushed: 0, deadLettered: 4 });
  });
});
