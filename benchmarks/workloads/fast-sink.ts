import { fastSink } from '../common';
import { runHonouring } from './workload';
import type { Workload } from './workload';

const ITEMS = 1_000_000;
/**
 * The sketch flushes one batch per 100 ms timer tick: about 1,000 items/s once its
 * 10,000-item buffer is full, so 1,000,000 items would take ~17 minutes. It gets
 * its buffer plus 1,000 items (quick: plus 200); the instant fill and the final
 * back-to-back drain() flatter its rate, so the ratio against it is conservative.
 */
const REFERENCE_ITEMS = { full: 11_000, quick: 10_200 };

export const fastSinkWorkload: Workload = {
  name: 'fast-sink',
  title: 'Fast sink: pure overhead',
  description: `${ITEMS.toLocaleString('en')} items (quick: a tenth); the sink counts the batch and resolves. batchSize 100. items/s = delivered items per second of wall time.`,
  contenders: [
    'native',
    // The same Writable with sluice's buffer (highWaterMark 10,000, so write() returns false at 10,000): it
    // holds thousands of items, as sluice block does (false at 8,000), where native holds 200 (notes.md).
    'native-100',
    'native-uncapped',
    'native-ignoring',
    'reference',
    'for-loop',
    'async-cargoQueue',
    'rxjs',
    'sluice-block',
    'sluice-writev',
    'sluice-chunks-floor',
    'sluice-drop_oldest',
    'sluice-drop_newest',
    'sluice-sample',
    'sluice-transform',
    'sluice-disk-interval',
    'sluice-disk-always',
  ],
  run(contender, scale) {
    const count =
      contender.name === 'reference'
        ? REFERENCE_ITEMS[scale.quick ? 'quick' : 'full']
        : scale.quick
          ? ITEMS / 10
          : ITEMS;
    return runHonouring(contender, count, fastSink, { batchSize: 100 });
  },
};
