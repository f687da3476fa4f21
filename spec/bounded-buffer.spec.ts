import fc from 'fast-check';
import { BoundedBuffer } from '../lib';

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

  test.each([0, -1, 1.5, NaN, Infinity])('rejects capacity %p with a coded RangeError', (capacity) => {
    expect(() => new BoundedBuffer(capacity)).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }),
    );
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
