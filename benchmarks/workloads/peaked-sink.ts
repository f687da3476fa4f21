import { peakedSink } from '../common';
import { SWEEP } from '../contenders';
import { runHonouring } from './workload';
import type { Workload } from './workload';

const ITEMS = 400_000;

export const peakedSinkWorkload: Workload = {
  name: 'peaked-sink',
  title: 'Peaked sink: adaptive batching',
  description: `${ITEMS.toLocaleString('en')} items (quick: a tenth); each sink call waits 1 ms + 2 µs·n + 0.0004 µs·n² off the CPU (a bulk API with a per-call overhead and a superlinear cost; best fixed batch ≈ 1,581). Buffer 10,000 items. native-uncapped passes whatever writev got in one call, native-100 chops it into calls of 100; sluice-adaptive steers the size between 100 and 10,000; sluice-fixed-N is the sweep of fixed sizes.`,
  contenders: ['native-100', 'native-uncapped', 'sluice-adaptive', ...SWEEP.map((size) => `sluice-fixed-${size}`)],
  run(contender, scale) {
    return runHonouring(contender, scale.quick ? ITEMS / 10 : ITEMS, peakedSink, {
      batchSize: 100,
      batchRange: { min: 100, max: 10_000 },
      maxBufferSize: 10_000,
    });
  },
};
