import * as path from 'node:path';
import { createRequire } from 'node:module';
import type * as SizerModule from '../lib/engine/batch-sizer';
import { distDir } from './sluice';

/**
 * The adaptive batch sizer's latency ceiling on simulated sinks (`npm run bench:sizer`): no clock, no
 * event loop, the same numbers on every machine. Each run plays 600 calls, one at a time, against a sink
 * drawn at random (a fixed cost per call of 0 or up to 80 ms, 0.01-0.31 ms per item, and half the time a
 * squared term), which is drawn again with a chance of 1 % per call; a share of the calls (the stall
 * rate) are partial batches of a random size, half of which take 1-2 times the target (a stall of the
 * sink), the other half their modelled time. The target is 100 ms, sizes 10-5,000.
 *
 * For each stall rate, over RUNS runs: the share of calls over the target; the whole batches over it
 * right after a whole batch over it while the smallest size met it (what the rule promises not to do),
 * and of those, the ones within three calls of the sink changing, which no rule can foresee; and the
 * median over runs of items per ms of sink time. SLUICE_DIST measures another build.
 */

const RUNS = 3000;
const CALLS = 600;
const TARGET_MS = 100;
const STALL_RATES = [0, 0.01, 0.05];

const { BatchSizer } = createRequire(__filename)(path.join(distDir, 'engine', 'batch-sizer.js')) as typeof SizerModule;

/** A seeded generator in [0, 1) (a linear congruential one: runs replay exactly). */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

type Sink = (items: number) => number;

function drawSink(next: () => number): Sink {
  const fixed = next() < 0.5 ? 0 : next() * 80;
  const perItem = 0.01 + next() * 0.3;
  const squared = next() < 0.5 ? 0 : next() * 1e-4;
  return (n) => fixed + perItem * n + squared * n * n;
}

interface Run {
  over: number;
  twice: number;
  twiceAfterChange: number;
  rate: number;
}

function play(seed: number, stallRate: number): Run {
  const next = random(seed);
  const sizer = new BatchSizer(10, 5000, TARGET_MS);
  let sink = drawSink(next);
  let changedAt = Number.NEGATIVE_INFINITY;
  let items = 0;
  let ms = 0;
  const run: Run = { over: 0, twice: 0, twiceAfterChange: 0, rate: 0 };
  let previousOver = false;
  let previousWhole = false;
  for (let call = 0; call < CALLS; call++) {
    if (next() < 0.01) {
      sink = drawSink(next);
      changedAt = call;
    }
    let n = sizer.size;
    const size = n;
    let latency: number;
    if (next() < stallRate && n > 1) {
      n = 1 + Math.floor(next() * (n - 1));
      latency = next() < 0.5 ? TARGET_MS * (1 + next()) : sink(n);
    } else latency = sink(n);
    items += n;
    ms += latency;
    const over = latency > TARGET_MS;
    if (over) run.over++;
    const whole = n === size;
    if (over && whole && previousOver && previousWhole && sink(10) <= TARGET_MS) {
      run.twice++;
      if (call - changedAt <= 3) run.twiceAfterChange++;
    }
    previousOver = over;
    previousWhole = whole;
    sizer.observe(n, latency);
  }
  run.over /= CALLS;
  run.rate = items / ms;
  return run;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

console.log(`sluice from ${distDir}; ${RUNS} runs of ${CALLS} calls per stall rate, target ${TARGET_MS} ms\n`);
console.log(
  '| stall rate | calls over the target | whole batches over it twice in a row (within 3 calls of a sink change) | items per ms, median |',
);
console.log(
  '| ---------- | --------------------- | ---------------------------------------------------------------------- | -------------------- |',
);
for (const stallRate of STALL_RATES) {
  const runs = Array.from({ length: RUNS }, (_, i) => play(i + 1, stallRate));
  const over = runs.reduce((sum, r) => sum + r.over, 0) / RUNS;
  const twice = runs.reduce((sum, r) => sum + r.twice, 0);
  const afterChange = runs.reduce((sum, r) => sum + r.twiceAfterChange, 0);
  const rate = median(runs.map((r) => r.rate));
  console.log(
    `| ${(stallRate * 100).toFixed(0)} % | ${(over * 100).toFixed(2)} % | ${twice} (${afterChange}) | ${rate.toFixed(3)} |`,
  );
}
