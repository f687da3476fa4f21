import { pooledSink } from '../common';
import { SLOTS_SWEEP } from '../contenders';
import { runHonouring } from './workload';
import type { Workload } from './workload';

const ITEMS = 200_000;
const SERVERS = 8;

export const pooledSinkWorkload: Workload = {
  name: 'pooled-sink',
  title: 'Pooled sink: adaptive concurrency',
  description: `${ITEMS.toLocaleString('en')} items (quick: a tenth) in batches of 100; the sink serves ${SERVERS} calls at once (a connection pool, an API's workers), each for 1 ms + 2 µs per item off the CPU, and queues the others. \`native\` and \`sluice-block\` make one call at a time; \`sluice-slots-N\` is the sweep of fixed numbers of flush slots; \`sluice-slots-adaptive\` steers the number between 1 and 64. "calls in flight" is the sink calls' summed time over the elapsed time (waiting in the pool included).`,
  contenders: [
    'native',
    'sluice-block',
    'sluice-slots-adaptive',
    ...SLOTS_SWEEP.map((slots) => `sluice-slots-${slots}`),
  ],
  run(contender, scale) {
    return runHonouring(contender, scale.quick ? ITEMS / 10 : ITEMS, pooledSink(SERVERS), {
      batchSize: 100,
      maxBufferSize: 10_000,
    });
  },
};
