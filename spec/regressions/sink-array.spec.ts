import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlockingWritable } from '../../lib';
import { advance, useStreamFakeTimers } from '../support/test-sink';

/**
 * Found in the v0.2 mutation review (not one of issue 9's sixteen): a full batch's first call passed
 * the engine's own array to the sink. A sink that empties its array as it goes
 * (`while (rows.length) insert(rows.shift())`) and then failed left the retry with nothing to send:
 * the three items were neither delivered nor dead-lettered, `'finish'` never came, and the process
 * exited 0 with a SLUICE_ITEMS_HELD_AT_EXIT warning. Every call now gets a fresh array.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

const RETRY = { maxRetries: 2, initialDelayMs: 1, maxDelayMs: 1 };

/** Pipes 0..5 through a sluice whose sink does `consume(rows)` on each call and fails its first call. */
async function run(consume: (rows: number[]) => void) {
  const calls: number[][] = [];
  const stream = new BlockingWritable<number>(
    (rows) => {
      calls.push([...rows]);
      consume(rows);
      if (calls.length === 1) throw new Error('the first call fails');
    },
    { batchSize: 3, retry: RETRY },
  );
  let outcome = 'pending';
  pipeline(Readable.from([0, 1, 2, 3, 4, 5]), stream).then(
    () => (outcome = 'resolved'),
    (error: unknown) => (outcome = `rejected: ${String(error)}`),
  );
  await advance(200, 10);
  return { calls, outcome, metrics: stream.getMetrics() };
}

function emptyWithShift(rows: number[]): void {
  while (rows.length > 0) rows.shift();
}

describe('the sink owns the array it is given', () => {
  test.each<[string, (rows: number[]) => void]>([
    ['empties it with shift()', emptyWithShift],
    ['empties it with splice(0)', (rows) => void rows.splice(0)],
    ['sets its length to 0', (rows) => void (rows.length = 0)],
    ['reverses it in place', (rows) => void rows.reverse()],
    ['pushes into it', (rows) => void rows.push(99)],
  ])('a sink that %s and fails: the retry gets the same items, in order; all six delivered', async (_name, consume) => {
    const { calls, outcome, metrics } = await run(consume);
    expect(calls).toEqual([
      [0, 1, 2],
      [0, 1, 2],
      [3, 4, 5],
    ]);
    expect(outcome).toBe('resolved');
    expect(metrics).toMatchObject({ eventsFlushed: 6, deadLettered: 0, bufferSize: 0, retries: 1 });
  });

  test('each call gets a fresh array, which the sink may keep', async () => {
    const kept: number[][] = [];
    const stream = new BlockingWritable<number>((rows) => void kept.push(rows), { batchSize: 2 });
    for (let i = 0; i < 4; i++) stream.write(i);
    await advance(50, 10);
    expect(kept).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(kept[0]).not.toBe(kept[1]);
  });
});
