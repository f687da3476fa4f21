import { measureItemBytes, stallingSink } from '../common';
import { measure, produceIgnoring } from './workload';
import type { Workload } from './workload';

const ITEMS = 1_000_000;
const STALL_MS = 1500;
const MAX_BUFFER_SIZE = 10_000;

export const stallWorkload: Workload = {
  name: 'stall',
  title: 'Stall: memory when the producer ignores write()',
  description: `${ITEMS.toLocaleString('en')} items (quick: a tenth, 300 ms stall) written as fast as possible, ignoring \`write()\` (the loop yields every 1,000 items); the sink hangs for ${STALL_MS} ms, then behaves like the slow sink. maxBufferSize ${MAX_BUFFER_SIZE.toLocaleString('en')}, batchSize 100. Heap and RSS growth are peaks over a baseline taken after a full GC; the bound is 1.5 x maxBufferSize x (measured item size) + 16 MB.`,
  contenders: [
    'native-ignoring',
    'sluice-block',
    'sluice-drop_oldest',
    'sluice-drop_newest',
    'sluice-sample',
    'sluice-disk-interval',
    'sluice-disk-always',
  ],
  async run(contender, scale) {
    if (contender.target === undefined) throw new Error(`${contender.name} has no target`);
    const target = contender.target.bind(contender);
    const itemBytes = measureItemBytes();
    const count = scale.quick ? ITEMS / 10 : ITEMS;
    const stallMs = scale.quick ? 300 : STALL_MS;
    const sink = stallingSink(stallMs);
    const { metrics: _metrics, ...result } = await measure(count, sink, 0, async (delivery) => {
      await produceIgnoring(target(sink.create(delivery), { batchSize: 100 }), count);
    });
    return {
      ...result,
      afterStallItemsPerSec: result.delivered / ((result.elapsedMs - stallMs) / 1000),
      itemBytes,
      boundMB: (1.5 * MAX_BUFFER_SIZE * itemBytes) / 2 ** 20 + 16,
    };
  },
};
