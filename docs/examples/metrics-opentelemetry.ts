/**
 * Exporting sluice metrics through the OpenTelemetry metrics API. One batch
 * callback reads `getMetrics()` once per collection and reports every
 * instrument from that snapshot. Without an SDK registered, the API is a
 * no-op, so libraries can call this unconditionally.
 */
import { finished } from 'node:stream/promises';
import { BlockingWritable } from '../../lib';
// #region opentelemetry
import { metrics, type BatchObservableCallback, type Meter } from '@opentelemetry/api';
import type { BackpressureMetrics, DropReason } from '../../lib';

interface MetricsSource {
  getMetrics(): BackpressureMetrics;
}

/** Registers sluice instruments on `meter`; returns a function that unregisters them. */
export function instrumentSluice(meter: Meter, name: string, source: MetricsSource): () => void {
  const held = meter.createObservableUpDownCounter('sluice.buffer.items', {
    description: 'Items held: queued, in flight and awaiting a retry',
  });
  const utilization = meter.createObservableGauge('sluice.buffer.utilization', { unit: '1' });
  const inFlight = meter.createObservableUpDownCounter('sluice.flush.in_flight', { description: 'Items in a flush' });
  const latency = meter.createObservableGauge('sluice.flush.latency', { unit: 'ms' });
  const offered = meter.createObservableCounter('sluice.events.offered');
  const flushed = meter.createObservableCounter('sluice.events.flushed');
  const dropped = meter.createObservableCounter('sluice.events.dropped');
  const deadLettered = meter.createObservableCounter('sluice.events.dead_lettered');
  const state = meter.createObservableGauge('sluice.state', { description: '1 for the current state' });
  const instruments = [held, utilization, inFlight, latency, offered, flushed, dropped, deadLettered, state];

  const attributes = { 'sluice.name': name };
  const callback: BatchObservableCallback = (observer) => {
    const m = source.getMetrics(); // one snapshot for every instrument
    observer.observe(held, m.bufferSize, attributes);
    observer.observe(utilization, m.bufferUtilization, attributes);
    observer.observe(inFlight, m.inFlight, attributes);
    observer.observe(latency, m.lastFlushLatencyMs, attributes);
    observer.observe(offered, m.eventsOffered, attributes); // observable counters report the running total
    observer.observe(flushed, m.eventsFlushed, attributes);
    observer.observe(deadLettered, m.deadLettered, attributes);
    for (const [reason, count] of Object.entries(m.droppedByReason) as [DropReason, number][]) {
      observer.observe(dropped, count, { ...attributes, 'sluice.drop.reason': reason });
    }
    observer.observe(state, 1, { ...attributes, 'sluice.state': m.state });
  };
  meter.addBatchObservableCallback(callback, instruments);
  return () => meter.removeBatchObservableCallback(callback, instruments);
}

// At startup, after your SDK (e.g. @opentelemetry/sdk-metrics' MeterProvider) is registered:
//   const stop = instrumentSluice(metrics.getMeter('my-service'), 'ingest', sink);
// #endregion opentelemetry

/** Runs a sluice instrumented on `meter` (the global one by default: a no-op until an SDK is registered). */
export async function main(meter: Meter = metrics.getMeter('sluice-example')): Promise<void> {
  const sink = new BlockingWritable<number>(async () => {}, { maxBufferSize: 100, batchSize: 10 });
  const stop = instrumentSluice(meter, 'example', sink);
  for (let i = 0; i < 42; i++) sink.write(i);
  sink.end();
  await finished(sink);
  stop();
}

if (require.main === module) main().then(console.log, console.error);
