import fc from 'fast-check';
import { Queue } from '../../lib/engine/queue';
import { WaitQueue } from '../../lib/engine/waiting';
import type { Waiter } from '../../lib/engine/waiting';

/**
 * The engine's two queues as units (lib/engine/queue.ts, lib/engine/waiting.ts):
 * the arrival stamps that date the oldest partial batch, the sizes kept in step
 * with the items, and the wait queue's deadlines, expiry and compaction. Written
 * for mutants that survived a Stryker run (docs/quality.md).
 */

describe('Queue', () => {
  /** A clock the test moves by hand. */
  function clock(): { now: () => number; set: (t: number) => void } {
    let time = 0;
    return { now: () => time, set: (t) => (time = t) };
  }

  test('one arrival stamp per run of runLength items: the oldest queued item dates the queue', () => {
    const c = clock();
    const queue = new Queue<string>(10, 3, false);
    expect(queue.oldestArrival).toBeUndefined();
    for (const [item, at] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 4],
      ['e', 5],
    ] as const) {
      c.set(at);
      queue.push(item, 0, c.now);
    }
    expect(queue.size).toBe(5);
    expect(queue.oldestArrival).toBe(1); // run a-c, stamped when a arrived
    expect(queue.take(3).items).toEqual(['a', 'b', 'c']);
    expect(queue.oldestArrival).toBe(4); // run d-e, stamped when d arrived
    expect(queue.shift()).toBe('d');
    expect(queue.oldestArrival).toBe(4); // e is still part of the run stamped at 4
    expect(queue.shift()).toBe('e');
    expect(queue.oldestArrival).toBeUndefined();
    expect(queue.shift()).toBeUndefined();
  });

  test('sizes stay in step with the items: take() sums them, shift() leaves the last one in lastSize', () => {
    const c = clock();
    const queue = new Queue<string>(10, 2, true);
    queue.push('a', 5, c.now);
    queue.push('b', 7, c.now);
    queue.push('c', 11, c.now);
    expect(queue.shift()).toBe('a');
    expect(queue.lastSize).toBe(5);
    expect(queue.take(2)).toEqual({ items: ['b', 'c'], sizes: [7, 11], bytes: 18 });
    expect(queue.shift()).toBeUndefined();
    expect(queue.lastSize).toBe(5); // unchanged by a shift from an empty queue
  });

  test('without a byte bound: no sizes, 0 bytes, lastSize 0', () => {
    const c = clock();
    const queue = new Queue<string>(4, 2, false);
    queue.push('a', 9, c.now);
    queue.push('b', 9, c.now);
    expect(queue.shift()).toBe('a');
    expect(queue.lastSize).toBe(0);
    expect(queue.take(1)).toEqual({ items: ['b'], sizes: undefined, bytes: 0 });
  });

  test('clear() returns the items oldest first and forgets the stamps; a full queue holds its capacity', () => {
    const c = clock();
    const queue = new Queue<number>(4, 1, true);
    for (let i = 0; i < 4; i++) {
      c.set(i * 10);
      queue.push(i, i, c.now);
    }
    expect(queue.oldestArrival).toBe(0);
    expect(queue.clear()).toEqual([0, 1, 2, 3]);
    expect(queue.size).toBe(0);
    expect(queue.oldestArrival).toBeUndefined();
    c.set(99);
    queue.push(7, 1, c.now);
    expect(queue.oldestArrival).toBe(99);
    expect(queue.take(1)).toEqual({ items: [7], sizes: [1], bytes: 1 });
  });

  test('cutting a full batch leaves the next run dated by its own first item', () => {
    const c = clock();
    const queue = new Queue<string>(8, 4, false);
    for (const [item, at] of [
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 4],
      ['e', 5],
    ] as const) {
      c.set(at);
      queue.push(item, 0, c.now);
    }
    expect(queue.oldestArrival).toBe(1);
    queue.take(4); // a full batch is cut: e is left, dated by its own run
    expect(queue.oldestArrival).toBe(5);
  });

  test('items leaving from the head keep the run boundaries: the oldest item is never dated by a later run', () => {
    const c = clock();
    const queue = new Queue<string>(8, 3, false);
    const push = (item: string, at: number): void => {
      c.set(at);
      queue.push(item, 0, c.now);
    };
    push('a', 1);
    push('b', 2);
    push('c', 3);
    expect(queue.shift()).toBe('a'); // a drop_oldest eviction: the run a-c keeps its stamp for b and c
    push('d', 4); // d starts the next run (a's place still counts in the first)
    push('e', 5);
    expect(queue.shift()).toBe('b');
    expect(queue.oldestArrival).toBe(1); // c is dated by its run's stamp, 1 (≤ 3), never by d's 4
    expect(queue.shift()).toBe('c');
    expect(queue.oldestArrival).toBe(4); // d, by its own run
  });

  test('property: the oldest item is dated by the first item of its run, counted since the queue was last empty', () => {
    type Op = { kind: 'push' } | { kind: 'shift' } | { kind: 'take'; count: number } | { kind: 'clear' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.constant({ kind: 'push' as const }) },
      { weight: 2, arbitrary: fc.constant({ kind: 'shift' as const }) },
      { weight: 2, arbitrary: fc.integer({ min: 1, max: 6 }).map((count) => ({ kind: 'take' as const, count })) },
      { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(op),
        (capacity, runLength, ops) => {
          const queue = new Queue<number>(capacity, runLength, false);
          let time = 0;
          const now = (): number => time;
          // The model: arrival times since the queue was last empty, and how many have left from the head.
          let arrivals: number[] = [];
          let gone = 0;
          for (const step of ops) {
            time++;
            if (step.kind === 'push') {
              if (queue.size === capacity) continue;
              queue.push(time, 0, now);
              arrivals.push(time);
            } else {
              const count =
                step.kind === 'shift' ? 1 : step.kind === 'take' ? Math.min(step.count, queue.size) : queue.size;
              if (step.kind === 'shift') queue.shift();
              else if (step.kind === 'take') queue.take(count);
              else queue.clear();
              gone += count;
              if (queue.size === 0) {
                arrivals = [];
                gone = 0;
              }
            }
            const expected = queue.size === 0 ? undefined : arrivals[Math.floor(gone / runLength) * runLength];
            expect(queue.oldestArrival).toBe(expected);
          }
        },
      ),
      { numRuns: Number(process.env.SLUICE_PROPERTY_RUNS ?? 300) },
    );
  });
});

describe('WaitQueue', () => {
  const waiter = (item: string, deadline = Infinity): Waiter<string> => ({
    item,
    settle: undefined,
    size: 1,
    deadline,
    expired: false,
  });

  test('FIFO; size and isFull() count live waiters against the capacity', () => {
    const queue = new WaitQueue<string>(2);
    expect(queue.isFull()).toBe(false);
    queue.push(waiter('a'));
    expect(queue.isFull()).toBe(false);
    queue.push(waiter('b'));
    expect(queue.isFull()).toBe(true);
    expect(queue.size).toBe(2);
    expect(queue.peek()?.item).toBe('a');
    expect(queue.shift()?.item).toBe('a');
    expect(queue.size).toBe(1);
    expect(queue.shift()?.item).toBe('b');
    expect(queue.shift()).toBeUndefined();
    expect(queue.size).toBe(0);
  });

  test('deadlines: only finite ones are kept, the earliest first; expire() takes those due, oldest first', () => {
    const queue = new WaitQueue<string>(5);
    queue.push(waiter('a', 30));
    queue.push(waiter('b')); // never expires, and does not shield c
    queue.push(waiter('c', 40));
    queue.push(waiter('d', 50));
    expect(queue.nextDeadline()).toBe(30);
    expect(queue.expire(29)).toEqual([]);
    expect(queue.expire(40).map((w) => w.item)).toEqual(['a', 'c']); // at the deadline counts
    expect(queue.size).toBe(2);
    expect(queue.nextDeadline()).toBe(50);
    // Expired waiters are skipped: the oldest live one is b.
    expect(queue.peek()?.item).toBe('b');
    expect(queue.shift()?.item).toBe('b');
    expect(queue.nextDeadline()).toBe(50);
    expect(queue.shift()?.item).toBe('d');
    expect(queue.nextDeadline()).toBeUndefined();
    expect(queue.size).toBe(0);
  });

  test('shift() of a timed waiter removes its deadline too', () => {
    const queue = new WaitQueue<string>(3);
    queue.push(waiter('a', 10));
    queue.push(waiter('b', 20));
    expect(queue.shift()?.item).toBe('a');
    expect(queue.nextDeadline()).toBe(20);
    expect(queue.expire(15)).toEqual([]);
  });

  test('expired waiters crowding the ring are compacted away when a new one arrives', () => {
    const queue = new WaitQueue<string>(3);
    queue.push(waiter('a'));
    queue.push(waiter('b', 10));
    queue.push(waiter('c', 10));
    expect(queue.expire(10).map((w) => w.item)).toEqual(['b', 'c']);
    expect(queue.isFull()).toBe(false);
    queue.push(waiter('d'));
    queue.push(waiter('e'));
    expect(queue.isFull()).toBe(true);
    expect([queue.shift(), queue.shift(), queue.shift()].map((w) => w?.item)).toEqual(['a', 'd', 'e']);
  });

  test('clear() returns the live waiters oldest first, not the expired ones', () => {
    const queue = new WaitQueue<string>(4);
    queue.push(waiter('a', 10));
    queue.push(waiter('b'));
    queue.push(waiter('c', 20));
    queue.expire(10);
    expect(queue.clear().map((w) => w.item)).toEqual(['b', 'c']);
    expect(queue.size).toBe(0);
    expect(queue.nextDeadline()).toBeUndefined();
    expect(queue.peek()).toBeUndefined();
  });
});
