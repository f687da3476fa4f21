import fc from 'fast-check';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { BoundedBuffer } from '../lib';

/** A full garbage collection, synchronous (V8's gc(), exposed for this process). */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

describe('BoundedBuffer', () => {
  test('push refuses when full; pushWithEviction returns the oldest', () => {
    const buffer = new BoundedBuffer<number>(3);
    expect([buffer.push(1), buffer.push(2), buffer.push(3), buffer.push(4)]).toEqual([true, true, true, false]);
    expect(buffer.isFull()).toBe(true);
    expect(buffer.utilization).toBe(1);
    expect(buffer.pushWithEviction(5)).toBe(1);
    expect(buffer.take(10)).toEqual([2, 3, 5]);
    expect(buffer.isEmpty()).toBe(true);
    expect(buffer.pushWithEviction(6)).toBeNull();
  });

  test('take and clear return oldest first and wrap around the ring', () => {
    const buffer = new BoundedBuffer<number>(5);
    for (let i = 0; i < 5; i++) buffer.push(i);
    expect(buffer.take(3)).toEqual([0, 1, 2]);
    for (let i = 5; i < 8; i++) buffer.push(i);
    expect(buffer.size).toBe(5);
    expect(buffer.capacity).toBe(5);
    expect(buffer.peek()).toBe(3);
    expect(buffer.clear()).toEqual([3, 4, 5, 6, 7]);
    expect(buffer.take(1)).toEqual([]);
    expect(buffer.shift()).toBeUndefined();
  });

  test('grows while wrapped around and keeps the order', () => {
    // 16 slots at first: after 10 taken and 10 more pushed the items wrap around the end of the ring,
    // so the next pushes grow it (twice) from a head in the middle.
    const buffer = new BoundedBuffer<number>(100);
    for (let i = 0; i < 16; i++) buffer.push(i);
    expect(buffer.take(10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let i = 16; i < 60; i++) buffer.push(i);
    expect(buffer.size).toBe(50);
    expect(buffer.take(5)).toEqual([10, 11, 12, 13, 14]);
    for (let i = 60; i < 100; i++) buffer.push(i);
    expect(buffer.clear()).toEqual(Array.from({ length: 85 }, (_, i) => 15 + i));
  });

  test('keeps order across a burst, the emptyings after it and the smaller array it starts again on', () => {
    // 1,000 items grow the ring to 1,024 slots, and emptied it starts on a fresh array as large. The
    // small cycles that follow empty it often; once 512 items (half its length) have gone through,
    // it starts on a 16-slot array, and the last round wraps around it and grows it twice.
    const buffer = new BoundedBuffer<number>(2000);
    for (let i = 0; i < 1000; i++) buffer.push(i);
    expect(buffer.take(999)).toEqual(Array.from({ length: 999 }, (_, i) => i));
    expect(buffer.shift()).toBe(999);
    expect(buffer.isEmpty()).toBe(true);
    for (let cycle = 0; cycle < 60; cycle++) {
      for (let i = 0; i < 10; i++) buffer.push(cycle * 10 + i);
      expect(buffer.take(10)).toEqual(Array.from({ length: 10 }, (_, i) => cycle * 10 + i));
    }
    for (let i = 0; i < 16; i++) buffer.push(i);
    expect(buffer.take(10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let i = 16; i < 60; i++) buffer.push(i);
    expect(buffer.peek()).toBe(10);
    expect(buffer.clear()).toEqual(Array.from({ length: 50 }, (_, i) => 10 + i));
  });

  test('starts again at the front of a smaller array when it empties far into a larger one', () => {
    // 40 items grow the ring to 64 slots; emptied, it starts on a fresh 64-slot array. Then a
    // stretch of a few items at a time moves the head past slot 40 before the buffer empties
    // again, with 49 items gone through: the next array has 16 slots, so reading on from the old
    // head would read past its end.
    const buffer = new BoundedBuffer<number>(100);
    for (let i = 0; i < 40; i++) buffer.push(i);
    buffer.take(40);
    let next = 0;
    buffer.push(next++);
    for (let step = 0; step < 12; step++) {
      for (let i = 0; i < 4; i++) buffer.push(next++);
      expect(buffer.take(4)).toEqual([next - 5, next - 4, next - 3, next - 2]);
    }
    expect(buffer.take(1)).toEqual([next - 1]);
    expect(buffer.isEmpty()).toBe(true);
    for (let i = 0; i < 3; i++) buffer.push(100 + i);
    expect(buffer.take(3)).toEqual([100, 101, 102]);
    for (let i = 0; i < 20; i++) buffer.push(200 + i);
    expect(buffer.clear()).toEqual(Array.from({ length: 20 }, (_, i) => 200 + i));
  });

  test('holds no reference to an item it no longer stores', async () => {
    const refs: WeakRef<object>[] = [];
    const fill = (buffer: BoundedBuffer<object>, count: number): void => {
      for (let i = 0; i < count; i++) {
        const item = { i };
        refs.push(new WeakRef(item));
        buffer.push(item);
      }
    };
    // On its first array (16 slots), which it keeps: items leave by take() and shift(), by a
    // take() wrapped around the end of the ring, and by eviction (whose slot takes the new item).
    const leftByTake = new BoundedBuffer<object>(16);
    fill(leftByTake, 8);
    leftByTake.take(3);
    leftByTake.shift();
    const leftWrapped = new BoundedBuffer<object>(16);
    fill(leftWrapped, 16);
    leftWrapped.take(12);
    fill(leftWrapped, 8);
    leftWrapped.take(10);
    const evicting = new BoundedBuffer<object>(4);
    fill(evicting, 4);
    const newest = { i: 4 };
    refs.push(new WeakRef(newest));
    evicting.pushWithEviction(newest);
    // Grown to 64 slots and emptied by take() or by shift(), with enough gone through to start on
    // a fresh array; then emptied again with too few gone through, so it keeps its array.
    const renewedByTake = new BoundedBuffer<object>(100);
    fill(renewedByTake, 60);
    renewedByTake.take(60);
    const renewedByShift = new BoundedBuffer<object>(100);
    fill(renewedByShift, 60);
    renewedByShift.take(59);
    renewedByShift.shift();
    const kept = new BoundedBuffer<object>(100);
    fill(kept, 40);
    kept.take(40);
    fill(kept, 10);
    kept.take(10);
    fill(kept, 3);
    // WeakRefs keep their targets until the current job ends.
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
    const alive = refs.map((ref) => ref.deref()).filter((item) => item !== undefined);
    // Read after the collection, so that the buffers were reachable during it.
    const buffers = [leftByTake, leftWrapped, evicting, renewedByTake, renewedByShift, kept];
    const held = buffers.flatMap((buffer) => buffer.clear());
    expect(held).toHaveLength(4 + 2 + 4 + 0 + 0 + 3);
    expect(alive).toEqual(held);
  });

  test.each([0, -1, 1.5, NaN, Infinity])('rejects capacity %p with a coded RangeError', (capacity) => {
    expect(() => new BoundedBuffer(capacity)).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }),
    );
  });

  test('rejects a capacity that is not a number with a coded TypeError', () => {
    expect(() => new BoundedBuffer('8' as unknown as number)).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_ARG_TYPE',
        name: 'TypeError',
        message: 'The argument "capacity" must be of type number. Received \'8\'',
      }),
    );
  });

  test.each([-1, NaN, 'x'])('take(%p) is a coded RangeError that names the count, and takes nothing', (count) => {
    const buffer = new BoundedBuffer<number>(4);
    buffer.push(1);
    expect(() => buffer.take(count as number)).toThrow(
      expect.objectContaining({
        code: 'ERR_OUT_OF_RANGE',
        message: expect.stringMatching(/^The argument "count" must be a number >= 0\. Received /),
      }),
    );
    expect(buffer.size).toBe(1);
  });

  test('take() of a fraction counts whole items; of Infinity, everything', () => {
    const buffer = new BoundedBuffer<number>(4);
    for (const n of [1, 2, 3]) buffer.push(n);
    expect(buffer.take(1.7)).toEqual([1]);
    expect(buffer.take(Infinity)).toEqual([2, 3]);
  });

  test('behaves like a bounded array queue for any operation sequence', () => {
    type Op = { op: 'push' | 'evict'; value: number } | { op: 'take'; count: number } | { op: 'shift' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constantFrom('push' as const, 'evict' as const), value: fc.integer() }),
      fc.record({ op: fc.constant('take' as const), count: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ op: fc.constant('shift' as const) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(op, { maxLength: 300 }), (capacity, ops) => {
        const buffer = new BoundedBuffer<number>(capacity);
        const model: number[] = [];
        for (const step of ops) {
          if (step.op === 'push') {
            const ok = model.length < capacity;
            if (ok) model.push(step.value);
            expect(buffer.push(step.value)).toBe(ok);
          } else if (step.op === 'evict') {
            const evicted = model.length >= capacity ? (model.shift() as number) : null;
            model.push(step.value);
            expect(buffer.pushWithEviction(step.value)).toBe(evicted);
          } else if (step.op === 'take') {
            expect(buffer.take(step.count)).toEqual(model.splice(0, step.count));
          } else {
            expect(buffer.shift()).toBe(model.shift());
          }
          expect(buffer.size).toBe(model.length);
          expect(buffer.size).toBeLessThanOrEqual(capacity);
        }
        expect(buffer.clear()).toEqual(model);
      }),
      { numRuns: Number(process.env.SLUICE_PROPERTY_RUNS ?? 200) },
    );
  });
});
