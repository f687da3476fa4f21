import { slowSink } from '../common';
import { runHonouring } from './workload';
import type { Workload } from './workload';

const ITEMS = 200_000;

export const slowSinkWorkload: Workload = {
  name: 'slow-sink',
  title: 'Slow sink: batching efficiency',
  description: `${ITEMS.toLocaleString('en')} items (quick: a tenth); each sink call waits 1 ms + 2 µs per item off the CPU (a simulated batch insert; Node's timers round it to whole milliseconds, ~1.1 ms for a batch of 100). batchSize 100 (sluice-adaptive: 100 to 10,000; native-uncapped sends whatever writev got, up to its 10,000-item buffer).`,
  // async-cargoQueue runs in the fast-sink workload only, to keep `npm run bench` short (the disk contenders
  // already add about 5 minutes to it).
  contenders: [
    'native',
    'native-uncapped',
    'for-loop',
    'rxjs',
    'sluice-block',
    'sluice-transform',
    'sluice-adaptive',
    'sluice-disk-interval',
    'sluice-disk-always',
  ],
  run(contender, scale) {
    return runHonouring(contender, scale.quick ? ITEMS / 10 : ITEMS, slowSink, {
      batchSize: 100,
      batchRange: { min: 100, max: 10_000 },
      maxBufferSize: 10_000,
    });
  },
};
