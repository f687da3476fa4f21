/**
 * Telemetry with `drop_oldest`: the producer (a metrics loop, a tracer) must
 * never wait. When the exporter falls behind, the oldest queued points are
 * evicted so the freshest data goes out; every eviction is a `'drop'` event
 * you can count, and the books always balance.
 */
import { setTimeout as sleep } from 'node:timers/promises';
// #region telemetry
import { finished } from 'node:stream/promises';
import { BackpressureState, DropOldestWritable, type DropReason } from '../../lib';

interface Point {
  name: string;
  value: number;
  at: number;
}

export function createExporter(send: (points: Point[]) => Promise<void>): DropOldestWritable<Point> {
  const exporter = new DropOldestWritable<Point>(send, {
    maxBufferSize: 1_000, // at most 1 000 points in memory
    batchSize: 250,
    maxFlushIntervalMs: 5_000, // a partial batch waits at most this long (less while the exporter is fast)
  });
  const dropped: Record<string, number> = {};
  exporter.on('drop', (_point: Point, reason: DropReason) => {
    dropped[reason] = (dropped[reason] ?? 0) + 1; // or: a counter in your metrics system
  });
  exporter.on('state', (next, previous) => {
    if (next === BackpressureState.BLOCKED)
      console.warn(`telemetry exporter is behind (${previous} → ${next}): dropping oldest points`);
  });
  return exporter;
}
// #endregion telemetry

export async function main(): Promise<{
  offered: number;
  sent: number;
  evicted: number;
  newestSent: boolean;
}> {
  const sent: Point[] = [];
  const exporter = createExporter(async (points) => {
    await sleep(5); // a slow collector
    sent.push(...points);
  });
  const warn = console.warn;
  console.warn = () => {}; // keep the test output quiet
  try {
    // A burst of 10 000 points, written without ever waiting: write() always returns true.
    for (let i = 0; i < 10_000; i++) exporter.write({ name: 'cpu', value: i, at: i });
    exporter.end();
    await finished(exporter);
  } finally {
    console.warn = warn;
  }
  const m = exporter.getMetrics();
  return {
    offered: m.eventsOffered,
    sent: m.eventsFlushed,
    evicted: m.droppedByReason.evicted,
    newestSent: sent.some((point) => point.value === 9_999),
  };
}

if (require.main === module) main().then(console.log, console.error);
