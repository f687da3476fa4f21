/**
 * Exporting sluice metrics to Prometheus with prom-client. Metrics are read on
 * demand in `collect()` (one `getMetrics()` call per scrape; it allocates one
 * object and walks no buffer). Totals are Prometheus counters, advanced by the
 * difference since the last scrape, so `rate()` works.
 */
import { finished } from 'node:stream/promises';
import { DropNewestWritable } from '../../lib';
// #region prometheus
import { Counter, Gauge, Registry } from 'prom-client';
import { BackpressureState, type BackpressureMetrics, type DropReason } from '../../lib';

/** Anything with getMetrics(): a sluice stream, a BackpressureTransform or a BackpressureController. */
interface MetricsSource {
  getMetrics(): BackpressureMetrics;
}

export function registerSluiceMetrics(registry: Registry, name: string, source: MetricsSource): void {
  const labels = { sluice: name };
  const read = (): BackpressureMetrics => source.getMetrics();

  new Gauge({
    name: 'sluice_state',
    help: 'Current backpressure state (1 for the current state, 0 otherwise)',
    labelNames: ['sluice', 'state'],
    registers: [registry],
    collect() {
      const { state } = read();
      for (const s of Object.values(BackpressureState)) this.set({ ...labels, state: s }, s === state ? 1 : 0);
    },
  });
  const gauge = (metric: string, help: string, pick: (m: BackpressureMetrics) => number): void => {
    new Gauge({
      name: metric,
      help,
      labelNames: ['sluice'],
      registers: [registry],
      collect() {
        this.set(labels, pick(read()));
      },
    });
  };
  gauge('sluice_buffer_items', 'Items held: queued, in flight and awaiting a retry', (m) => m.bufferSize);
  gauge(
    'sluice_buffer_utilization_ratio',
    'Held / maxBufferSize (or bytes / maxBufferBytes)',
    (m) => m.bufferUtilization,
  );
  gauge('sluice_in_flight_items', 'Items in a flush that has not settled', (m) => m.inFlight);
  gauge('sluice_flush_latency_seconds', 'Latency of the last flush', (m) => m.lastFlushLatencyMs / 1000);
  gauge('sluice_flush_interval_seconds', 'Current adaptive flush interval', (m) => m.currentFlushIntervalMs / 1000);

  // Counters only go up: add what changed since the previous scrape.
  const counter = (metric: string, help: string, pick: (m: BackpressureMetrics) => number): void => {
    let last = 0;
    new Counter({
      name: metric,
      help,
      labelNames: ['sluice'],
      registers: [registry],
      collect() {
        const value = pick(read());
        if (value > last) this.inc(labels, value - last);
        last = value;
      },
    });
  };
  counter('sluice_events_offered_total', 'Items given to write()/push()', (m) => m.eventsOffered);
  counter('sluice_events_flushed_total', 'Items confirmed delivered by the sink', (m) => m.eventsFlushed);
  counter('sluice_dead_lettered_total', 'Items handed to the dead-letter path', (m) => m.deadLettered);
  counter('sluice_flush_retries_total', 'Flush attempts after a failure', (m) => m.retries);

  const lastDropped: Partial<Record<DropReason, number>> = {};
  new Counter({
    name: 'sluice_events_dropped_total',
    help: 'Items dropped, by reason',
    labelNames: ['sluice', 'reason'],
    registers: [registry],
    collect() {
      for (const [reason, value] of Object.entries(read().droppedByReason) as [DropReason, number][]) {
        const last = lastDropped[reason] ?? 0;
        this.inc({ ...labels, reason }, value - last); // inc by 0 still exports the series
        lastDropped[reason] = value;
      }
    },
  });
}

// In your HTTP server:  res.setHeader('content-type', registry.contentType); res.end(await registry.metrics());
// #endregion prometheus

export async function main(): Promise<string> {
  const registry = new Registry();
  const sink = new DropNewestWritable<number>(async () => {}, { maxBufferSize: 100, batchSize: 50 });
  registerSluiceMetrics(registry, 'ingest', sink);
  sink.on('drop', () => {}); // counted in the metrics; listening keeps the process warning away
  for (let i = 0; i < 250; i++) sink.write(i); // the sink is idle, yet 250 > 100: some are rejected
  sink.end();
  await finished(sink);
  return registry.metrics();
}

if (require.main === module) main().then(console.log, console.error);
