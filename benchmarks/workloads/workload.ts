import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { Delivery, MemoryWatch, makeItem } from '../common';
import type { BackpressureMetrics } from '../../lib/index';
import type { Contender, Options, SizePoint, Target } from '../contenders';
import type { SinkSpec } from '../common';

/** One point of a state trace. */
export interface TracePoint {
  /** ms since the producer started */
  t: number;
  utilization: number;
  /** the state that lasted longest since the previous point */
  state: string;
}

/** What one run of one (workload, contender) pair reports; the runner takes medians over runs. */
export interface RunResult {
  offered: number;
  delivered: number;
  /** offered - delivered, after the end: dropped, for whatever reason. */
  lost: number;
  elapsedMs: number;
  /** delivered items per second of wall time */
  itemsPerSec: number;
  /**
   * delivered items per second of this process's CPU time (user + system, all threads): on a shared
   * machine it moves much less with the neighbours' load than wall time does
   */
  itemsPerCpuSec: number;
  /** delivered / sink calls */
  avgBatch: number;
  peakHeapGrowthMB: number;
  peakRssGrowthMB: number;
  p50Ms?: number;
  p99Ms?: number;
  /** from the moment the burst schedule asked for the item to its delivery */
  e2eP50Ms?: number;
  e2eP99Ms?: number;
  /**
   * stall: delivered items per second of the time the sink was not stalled (elapsed minus the stall),
   * the sink-bound rate; it compares a contender that delivers everything with one that drops most
   */
  afterStallItemsPerSec?: number;
  /** the stall target's bound: 1.5 x maxBufferSize x item size + 16 MB */
  boundMB?: number;
  itemBytes?: number;
  trace?: TracePoint[];
  /** The batch size over the run, for the contenders that adapt it. */
  sizeTrace?: SizePoint[];
  /** Sink calls in flight on average (their summed durations over the elapsed time); timed sinks only. */
  callsInFlight?: number;
}

export interface Scale {
  quick: boolean;
}

export interface Workload {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly contenders: readonly string[];
  run(contender: Contender, scale: Scale): Promise<RunResult>;
}

/** Runs `body` against a fresh sink, timing it and watching memory. */
export async function measure(
  offered: number,
  sinkSpec: SinkSpec,
  latencyCapacity: number,
  body: (delivery: Delivery) => Promise<(Partial<BackpressureMetrics> & { sizeTrace?: SizePoint[] }) | void>,
): Promise<RunResult & { metrics: (Partial<BackpressureMetrics> & { sizeTrace?: SizePoint[] }) | void }> {
  const delivery = new Delivery(latencyCapacity);
  const watch = new MemoryWatch();
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const metrics = await body(delivery);
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStarted);
  const memory = watch.stop();
  return {
    offered,
    delivered: delivery.delivered,
    lost: offered - delivery.delivered,
    elapsedMs,
    itemsPerSec: delivery.delivered / (elapsedMs / 1000),
    itemsPerCpuSec: delivery.delivered / ((cpu.user + cpu.system) / 1e6),
    avgBatch: delivery.batches === 0 ? 0 : delivery.delivered / delivery.batches,
    ...(delivery.callMs > 0 ? { callsInFlight: delivery.callMs / elapsedMs } : {}),
    ...memory,
    metrics,
  };
}

/** The producer that honours backpressure, as each contender does it (`pipeline` for streams). */
export async function runHonouring(
  contender: Contender,
  count: number,
  sinkSpec: SinkSpec,
  options: Options,
): Promise<RunResult> {
  if (contender.run === undefined) throw new Error(`${contender.name} has no honouring producer`);
  const run = contender.run.bind(contender);
  const { metrics, ...result } = await measure(count, sinkSpec, 0, (delivery) =>
    run(count, sinkSpec.create(delivery), options),
  );
  if (metrics?.sizeTrace !== undefined) result.sizeTrace = metrics.sizeTrace;
  return result;
}

/** A producer that writes everything as fast as it can, yielding to the event loop every 1,000 items. */
export async function produceIgnoring(target: Target, count: number): Promise<void> {
  for (let i = 0; i < count;) {
    const end = Math.min(count, i + 1000);
    for (; i < end; i++) void target.write(makeItem(i));
    await yieldToLoop();
  }
  await target.end();
}

/** An on/off producer: `rate` items/s for `onMs`, then silence for `offMs`, `cycles` times. */
export interface BurstSchedule {
  onMs: number;
  offMs: number;
  cycles: number;
  rate: number;
}

export function burstTotal(s: BurstSchedule): number {
  return Math.round((s.rate * s.onMs * s.cycles) / 1000);
}

/** When (ms after the start) the schedule asks for item `index`. */
export function scheduledAt(s: BurstSchedule, index: number): number {
  const perCycle = (s.rate * s.onMs) / 1000;
  const cycle = Math.floor(index / perCycle);
  return cycle * (s.onMs + s.offMs) + ((index - cycle * perCycle) / s.rate) * 1000;
}

/** Items the schedule has asked for by `elapsedMs`. */
function dueBy(s: BurstSchedule, elapsedMs: number): number {
  const period = s.onMs + s.offMs;
  const full = Math.min(s.cycles, Math.floor(elapsedMs / period));
  const within = full >= s.cycles ? 0 : Math.min(s.onMs, elapsedMs - full * period);
  return Math.min(burstTotal(s), Math.round((s.rate * (full * s.onMs + within)) / 1000));
}

/**
 * Writes on the schedule, about once a millisecond; honours `false`/'drain' and awaits
 * returned promises (so a paused producer falls behind and catches up later). Each item's
 * `t` is stamped as it is written, for write-to-delivery latency.
 */
export async function produceBursts(
  target: Target,
  schedule: BurstSchedule,
  started: number,
  trace?: TracePoint[],
): Promise<void> {
  const total = burstTotal(schedule);
  let sampler: NodeJS.Timeout | undefined;
  if (trace !== undefined && target.probe !== undefined) {
    const probe = target.probe.bind(target);
    // Each point carries the state that lasted longest since the previous one (from 'state' events where the
    // contender has them): a sample alone lands in the timers phase, just after a flush freed room, and
    // would show a full drop_oldest buffer as critical although it is blocked all but microseconds.
    const transitions: { t: number; state: string }[] = [];
    target.onState?.((state) => transitions.push({ t: performance.now() - started, state }));
    let current = probe().state;
    let last = 0;
    const sample = (): void => {
      const t = performance.now() - started;
      const { utilization, state } = probe();
      const time = new Map<string, number>();
      let from = last;
      for (const change of transitions) {
        time.set(current, (time.get(current) ?? 0) + change.t - from);
        current = change.state;
        from = change.t;
      }
      time.set(current, (time.get(current) ?? 0) + t - from);
      transitions.length = 0;
      current = state;
      last = t;
      let dominant = state;
      for (const [name, ms] of time) if (ms > (time.get(dominant) ?? 0)) dominant = name;
      trace.push({ t, utilization, state: dominant });
    };
    sample();
    sampler = setInterval(sample, 2);
  }
  let i = 0;
  while (i < total) {
    const due = dueBy(schedule, performance.now() - started);
    while (i < due) {
      const item = makeItem(i++);
      item.t = performance.now();
      const accepted = target.write(item);
      if (accepted === false) await target.waitDrain();
      else if (accepted !== true) await accepted;
    }
    if (i < total) await sleep(1);
  }
  await target.end();
  if (sampler !== undefined) {
    // Keep sampling to the end of the schedule, so every trace covers the same window.
    const window = schedule.cycles * (schedule.onMs + schedule.offMs);
    const left = window - (performance.now() - started);
    if (left > 0) await sleep(left);
    clearInterval(sampler);
  }
}
