import fc from 'fast-check';

import {
  BatchSizer,
  CAP_RELAX_CALLS,
  EPOCH_CALLS,
  LATENCY_MARGIN,
  MAX_STEP,
  MIN_STEP,
  NOISE,
} from '../../lib/engine/batch-sizer';

/**
 * The adaptive batch-size controller (lib/engine/batch-sizer.ts) as a unit:
 * scripted sink latencies, one call at a time, and the size it asks for after
 * each. spec/adaptive-batching.spec.ts checks that a sluice converges; these
 * pin the rule itself (epochs, the centre/up/down cycle, the step, the latency
 * cut and its cap), so that a changed constant or comparison shows. Written for
 * the mutants that survived a Stryker run (docs/quality.md).
 */

/** Sink time in ms for a call of n items. */
type Sink = (items: number) => number;

/** Plays `calls` full-size calls against `sink`; the size asked for after each. */
function play(sizer: BatchSizer, sink: Sink, calls: number): number[] {
  const sizes: number[] = [];
  for (let i = 0; i < calls; i++) {
    const items = sizer.size;
    sizer.observe(items, sink(items));
    sizes.push(sizer.size);
  }
  return sizes;
}

/** 1 ms per call + 2 µs per item + 0.001 µs per item²: throughput peaks at 1,000 items. */
const peaked: Sink = (n) => 1 + 0.002 * n + 1e-6 * n * n;
/** A per-call overhead and nothing superlinear: bigger is always better, clearly (more than NOISE per step). */
const overhead: Sink = (n) => 1 + 0.0001 * n;
/** Throughput grows by 1 % per doubling: better, but by less than NOISE per step. */
const barelyBetter: Sink = (n) => n / (1000 * (1 + 0.01 * Math.log2(n)));
/** Faster than the clock can tell. */
const instant: Sink = () => 0;

const noTarget = Number.POSITIVE_INFINITY;

test('the constants documented in docs/design.md', () => {
  expect({ EPOCH_CALLS, NOISE, MAX_STEP, MIN_STEP, LATENCY_MARGIN, CAP_RELAX_CALLS }).toEqual({
    EPOCH_CALLS: 2,
    NOISE: 0.03,
    MAX_STEP: 2,
    MIN_STEP: 1.1,
    LATENCY_MARGIN: 0.8,
    CAP_RELAX_CALLS: 8,
  });
});

describe('epochs', () => {
  test('it starts at min and measures two calls of that size before it probes', () => {
    const sizer = new BatchSizer(10, 5000, noTarget);
    expect(sizer.size).toBe(10);
    sizer.observe(10, peaked(10));
    expect(sizer.size).toBe(10);
    sizer.observe(10, peaked(10));
    expect(sizer.size).toBe(20); // the centre is measured: probe centre × 2
  });

  test('calls of another size (partial batches, retries) do not count towards an epoch', () => {
    const sizer = new BatchSizer(10, 5000, noTarget);
    sizer.observe(10, 1);
    sizer.observe(3, 0.001); // a partial batch: far better items/ms, but not the size being measured
    sizer.observe(11, 1);
    expect(sizer.size).toBe(10);
    sizer.observe(10, 1);
    expect(sizer.size).toBe(20);
  });

  test('the epoch rate is items over sink time: a slower up-probe sends the centre down, not up', () => {
    const sizer = new BatchSizer(10, 5000, noTarget);
    play(sizer, overhead, 4); // 10 measured, 20 measured, 5 is below min: skipped; up was better
    expect(sizer.size).toBe(20);
    // Centre 20, then up 40, then down 10: the down side is made the fastest per item.
    const rates = new Map([
      [20, 10],
      [40, 5],
      [10, 30],
    ]);
    const sizes = play(sizer, (n) => n / (rates.get(n) ?? 1), 6);
    expect(sizes).toEqual([20, 40, 40, 10, 10, 10]);
  });
});

describe('the cycle: centre, centre × step, centre / step', () => {
  test('on a peaked sink the centre climbs by doubling, then narrows its step around the top (1,000)', () => {
    const sizer = new BatchSizer(10, 5000, noTarget);
    // prettier-ignore
    expect(play(sizer, peaked, 80)).toEqual([
      10, 20, 20, 20, // centre 10, up 20; down 5 is below min, skipped: move up
      20, 40, 40, 10, 10, 40, // centre 20, up 40, down 10: move up
      40, 80, 80, 20, 20, 80,
      80, 160, 160, 40, 40, 160,
      160, 320, 320, 80, 80, 320,
      320, 640, 640, 160, 160, 640,
      640, 1280, 1280, 320, 320, 1280, // 1,280 is past the top but still better than 640
      1280, 2560, 2560, 640, 640, 1280, // the centre is best: the step narrows to √2
      1280, 1810, 1810, 905, 905, 905, // down was best: move down by √2
      905, 1280, 1280, 640, 640, 905, // the centre is best again: step 2^¼
      905, 1076, 1076, 761, 761, 1076, // up was best: move up (the opposite way: no widening)
      1076, 1280, 1280, 905, 905, 1076, // the centre is best: step 2^⅛ < MIN_STEP, so 1.1, and it stays there
      1076, 1184, 1184, 978, 978, 978,
      978, 1076, 1076, 889,
    ]);
  });

  test('a bound that clamps a probe onto the centre skips that probe', () => {
    const sizer = new BatchSizer(100, 150, noTarget);
    // centre 100; up 200 clamps to 150; down 50 clamps to 100 = centre: skipped; up was better: move to 150.
    // At 150, up clamps onto the centre: skipped, straight to down (75 → 100); the centre was best, so the
    // step narrows to √2 and the next down-probe is 106.
    expect(play(sizer, overhead, 10)).toEqual([100, 150, 150, 150, 150, 100, 100, 150, 150, 106]);
  });

  test('moving the same way twice with a clear gain widens the step (squared, up to MAX_STEP)', () => {
    const sizer = new BatchSizer(10, 100_000, noTarget);
    play(sizer, peaked, 120); // converged on 1,000 with the smallest step
    expect(sizer.size).toBe(1076);
    // prettier-ignore
    expect(play(sizer, overhead, 60)).toEqual([
      1076, 889, 889, 1076,
      1076, 1184, 1184, 978, 978, 1302, // × 1.1 (up)
      1302, 1575, 1575, 1076, 1076, 1906, // up again, clear gain: step 1.21, then 1.4641
      1906, 2791, 2791, 1302, 1302, 3812, // step 2.14 > MAX_STEP: 2
      3812, 7624, 7624, 1906, 1906, 7624,
      7624, 15248, 15248, 3812, 3812, 15248,
      15248, 30496, 30496, 7624, 7624, 30496,
      30496, 60992, 60992, 15248, 15248, 60992,
      60992, 100000, 100000, 30496, 30496, 100000, // max
      100000, 50000, 50000, 100000, // up clamps onto the centre: only down is probed
      100000, 70711, 70711, 100000,
    ]);
  });

  test('a gain below NOISE moves the centre but does not widen the step', () => {
    const sizer = new BatchSizer(10, 100_000, noTarget);
    play(sizer, peaked, 120);
    // prettier-ignore
    expect(play(sizer, barelyBetter, 60)).toEqual([
      1076, 889, 889, 1076,
      1076, 1184, 1184, 978, 978, 1184,
      1184, 1302, 1302, 1076, 1076, 1302, // × 1.1 every cycle, never faster
      1302, 1432, 1432, 1184, 1184, 1432,
      1432, 1575, 1575, 1302, 1302, 1575,
      1575, 1733, 1733, 1432, 1432, 1733,
      1733, 1906, 1906, 1575, 1575, 1906,
      1906, 2097, 2097, 1733, 1733, 2097,
      2097, 2307, 2307, 1906, 1906, 2307,
      2307, 2538, 2538, 2097, 2097, 2538,
      2538, 2792,
    ]);
  });

  test('a sink faster than the clock (0 ms) still has a finite rate: the size grows to max', () => {
    const sizer = new BatchSizer(1, 1000, noTarget);
    const sizes = play(sizer, instant, 80);
    // prettier-ignore
    expect(sizes.slice(0, 12)).toEqual([1, 2, 2, 2, 2, 4, 4, 1, 1, 4, 4, 8]);
    expect(Math.max(...sizes)).toBe(1000);
  });
});

describe('the latency target', () => {
  /** A sizer grown to 128 on an instant sink, with a 100 ms target. */
  function grown(): BatchSizer {
    const sizer = new BatchSizer(1, 1000, 100);
    play(sizer, instant, 36);
    expect(sizer.size).toBe(128);
    return sizer;
  }

  test('a call over the target cuts the size at once to what would have met it, less 20 %', () => {
    const sizer = grown();
    sizer.observe(128, 200); // 128 items × 100 ms / 200 ms × 0.8 = 51.2
    expect(sizer.size).toBe(51);
  });

  test('a call exactly at the target is within it', () => {
    const sizer = grown();
    sizer.observe(128, 100);
    expect(sizer.size).toBe(128);
  });

  test('after a cut, every size stays under the cap; the cap rises by MIN_STEP every 8 calls within the target', () => {
    const sizer = grown();
    sizer.observe(128, 200);
    // Cap 51: the up-probe clamps onto the centre and is skipped. After 8 calls the cap is 57, after 16 63, …
    // prettier-ignore
    expect(play(sizer, instant, 40)).toEqual([
      51, 46, 46, 51, // a fresh start: step MIN_STEP
      51, 46, 46, 51,
      51, 56, 56, 46, 46, 56, // cap 57 (8 calls): 56 can be probed
      56, 62, 62, 51, 51, 63, // cap 63
      63, 52, 52, 63,
      63, 69, 69, 57, 57, 69, // cap 70
      69, 76, 76, 63, 63, 77, // cap 77
      77, 64, 64, 77,
    ]);
  });

  test('the cap comes back to max when the sink stays within the target', () => {
    const sizer = grown();
    sizer.observe(128, 200);
    const sizes = play(sizer, instant, 400);
    expect(Math.max(...sizes)).toBe(1000);
  });

  test('a call over the target resets the count towards the cap rising', () => {
    const sizer = grown();
    sizer.observe(128, 200); // cap 51
    play(sizer, instant, CAP_RELAX_CALLS - 1); // one call short of raising the cap
    sizer.observe(51, 101); // over the target: cap and size 40, and the count starts again
    expect(sizer.size).toBe(40);
    // 44 (40 × 1.1) is first probed after 8 more calls within the target, not after 1.
    // prettier-ignore
    expect(play(sizer, instant, 12)).toEqual([40, 36, 36, 40, 40, 36, 36, 40, 40, 44, 44, 36]);
  });

  test('a partial batch over the target restarts lower but does not cap the size', () => {
    const sizer = grown();
    sizer.observe(64, 200); // 64 items: fitting = 25; fewer items than the size, so no cap
    expect(sizer.size).toBe(25);
    expect(play(sizer, instant, 4)).toEqual([25, 28, 28, 23]); // 28 > 25: not capped
  });

  test('a late call larger than the size, over the target, lowers the cap and the size follows it', () => {
    const sizer = grown();
    sizer.observe(128, 130); // fitting 78: restart at 78, cap 78
    expect(sizer.size).toBe(78);
    sizer.observe(20, 130); // a retry of 20 items: fitting 12 < 78, restart at 12; fewer items than the size: cap 78
    expect(sizer.size).toBe(12);
    // A late call of 100 items in 110 ms: fitting 72 is above the size, but the call was larger than the size and
    // too slow, so the cap falls to 11, below the size: the size restarts at the cap.
    sizer.observe(100, 110);
    expect(sizer.size).toBe(11);
    // prettier-ignore
    expect(play(sizer, instant, 12)).toEqual([11, 10, 10, 11, 11, 10, 10, 11, 11, 12, 12, 10]);
  });

  test('a cut never goes below min', () => {
    const sizer = new BatchSizer(50, 1000, 10);
    sizer.observe(50, 1000);
    expect(sizer.size).toBe(50);
    expect(play(sizer, instant, 4)).toEqual([50, 50, 50, 50]); // capped at min: no probe fits
  });
});

test('property: the size stays within [min, max]; after a call over the target of at least the size, it falls', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 0, max: 500 }),
      fc.integer({ min: 1, max: 200 }),
      // A call of the current size, of half of it (a partial batch, a retry), or of twice it (a late call cut
      // before the size fell), and its sink time as a fraction of the target (0: faster than the clock, which
      // lets the size grow).
      fc.array(
        fc.tuple(
          fc.constantFrom(1, 0.5, 2),
          fc.oneof(fc.constant(0), fc.double({ min: 0, max: 2, noNaN: true, noDefaultInfinity: true })),
        ),
        { maxLength: 200 },
      ),
      (min, extra, target, calls) => {
        const max = min + extra;
        const sizer = new BatchSizer(min, max, target);
        for (const [scale, fraction] of calls) {
          const latency = fraction * target;
          const before = sizer.size;
          sizer.observe(Math.max(1, Math.floor(before * scale)), latency);
          expect(sizer.size).toBeGreaterThanOrEqual(min);
          expect(sizer.size).toBeLessThanOrEqual(max);
          expect(Number.isInteger(sizer.size)).toBe(true);
          if (scale >= 1 && latency > target && before > min) expect(sizer.size).toBeLessThan(before);
        }
      },
    ),
    { numRuns: Number(process.env.SLUICE_PROPERTY_RUNS ?? 200) },
  );
});
