import fc from 'fast-check';
import { IdRanges } from '../../lib/disk/ranges';
import { toPairs } from '../../lib/disk/acks';

describe('IdRanges', () => {
  test('merges adjacent and overlapping ranges', () => {
    const ranges = new IdRanges();
    ranges.addRange(5, 7);
    ranges.addRange(10, 12);
    expect(ranges.add(8)).toBe(true);
    expect(ranges.add(8)).toBe(false);
    expect(ranges.toPairs()).toEqual([
      [5, 8],
      [10, 12],
    ]);
    ranges.add(9);
    expect(ranges.toPairs()).toEqual([[5, 12]]);
    expect(ranges.covers(6, 12)).toBe(true);
    expect(ranges.covers(4, 6)).toBe(false);
    ranges.pruneBelow(7);
    expect(ranges.toPairs()).toEqual([[7, 12]]);
  });

  test('behaves as a set of ids (property)', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('add' as const),
        from: fc.integer({ min: 1, max: 60 }),
        span: fc.integer({ min: 0, max: 5 }),
      }),
      fc.record({ kind: fc.constant('prune' as const), from: fc.integer({ min: 1, max: 60 }), span: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const ranges = new IdRanges();
        const model = new Set<number>();
        for (const { kind, from, span } of ops) {
          if (kind === 'add') {
            ranges.addRange(from, from + span);
            for (let id = from; id <= from + span; id++) model.add(id);
          } else {
            ranges.pruneBelow(from);
            for (const id of model) if (id < from) model.delete(id);
          }
        }
        for (let id = 0; id <= 70; id++) expect(ranges.has(id)).toBe(model.has(id));
        const pairs = ranges.toPairs();
        // Disjoint, sorted, not adjacent: the representation is canonical.
        pairs.forEach(([start, end], i) => {
          expect(start).toBeLessThanOrEqual(end);
          if (i > 0) expect(start).toBeGreaterThan((pairs[i - 1] as [number, number])[1] + 1);
        });
        expect(pairs).toEqual(toPairs([...model]));
      }),
    );
  });
});
