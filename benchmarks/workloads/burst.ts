import { percentile, slowSink } from '../common';
import { burstTotal, measure, produceBursts, scheduledAt } from './workload';
import type { Delivery } from '../common';
import type { BurstSchedule, TracePoint, Workload } from './workload';

/** 200,000 items/s for 150 ms, then 250 ms of silence, 3 times: over twice what the slow sink takes at batches of 100. */
export const BURST: BurstSchedule = { onMs: 150, offMs: 250, cycles: 3, rate: 200_000 };
export const QUICK_BURST: BurstSchedule = { ...BURST, cycles: 1 };

export const burstWorkload: Workload = {
  name: 'burst',
  title: 'Burst: write-to-delivery latency and states',
  description: `An on/off producer (${BURST.rate.toLocaleString('en')} items/s for ${BURST.onMs} ms, then ${BURST.offMs} ms off, ${BURST.cycles} times: ${burstTotal(BURST).toLocaleString('en')} items; quick: one cycle) into the slow sink, honouring \`write()\`/\`'drain'\` (the reference: awaiting \`push()\`, default strategy drop_oldest). Latency over delivered items: *write* = from \`write()\` to the sink receiving the item (time in the buffer); *end-to-end* = from the moment the schedule produced the item (a paused producer makes it wait before \`write()\`). maxBufferSize 10,000, batchSize 100. The same runs record utilization and state every 2 ms (the state trace).`,
  contenders: [
    'native',
    'reference',
    'sluice-block',
    'sluice-drop_oldest',
    'sluice-drop_newest',
    'sluice-sample',
    'sluice-transform',
  ],
  async run(contender, scale) {
    if (contender.target === undefined) throw new Error(`${contender.name} has no target`);
    const target = contender.target.bind(contender);
    const schedule = scale.quick ? QUICK_BURST : BURST;
    const total = burstTotal(schedule);
    const trace: TracePoint[] = [];
    let delivery: Delivery | undefined;
    let started = 0;
    const { metrics: _metrics, ...result } = await measure(total, slowSink, total, async (d) => {
      delivery = d;
      started = performance.now();
      await produceBursts(target(slowSink.create(d), { batchSize: 100 }), schedule, started, trace);
    });
    const fromWrite: number[] = [];
    const fromSchedule: number[] = [];
    if (delivery !== undefined) {
      const { writtenAt, deliveredAt } = delivery;
      for (let id = 0; id < total; id++) {
        const at = deliveredAt[id] as number;
        if (Number.isNaN(at)) continue;
        fromWrite.push(at - (writtenAt[id] as number));
        fromSchedule.push(at - started - scheduledAt(schedule, id));
      }
    }
    return {
      ...result,
      p50Ms: percentile(fromWrite, 50),
      p99Ms: percentile(fromWrite, 99),
      e2eP50Ms: percentile(fromSchedule, 50),
      e2eP99Ms: percentile(fromSchedule, 99),
      ...(trace.length > 0 ? { trace } : {}),
    };
  },
};
