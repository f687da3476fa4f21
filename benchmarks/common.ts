import { setTimeout as sleep } from 'node:timers/promises';

/** The median of `values` (not empty): the mean of the middle two for an even count. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** A benchmark item: a small fresh object with a ~100-character payload. `t` is set when it is written. */
export interface Item {
  id: number;
  t: number;
  payload: string;
}

const FILLER = 'sluice-benchmark-payload-'.repeat(4).slice(0, 92);

export function makeItem(id: number): Item {
  // A fresh string per item (the id makes it unique), as parsed input would be.
  return { id, t: 0, payload: `${FILLER}${String(id).padStart(8, '0')}` };
}

export function* items(count: number): Generator<Item> {
  for (let i = 0; i < count; i++) yield makeItem(i);
}

/** Counts what a sink received and, with a capacity, when each item (by id) was written and delivered. */
export class Delivery {
  delivered = 0;
  batches = 0;
  /** Sum of the sink calls' durations, for the sinks that time their calls (the pooled sink). */
  callMs = 0;
  /** `item.t` of each delivered item, by id; NaN for items never delivered. */
  readonly writtenAt: Float64Array;
  /** performance.now() when the sink received each item, by id; NaN for items never delivered. */
  readonly deliveredAt: Float64Array;

  constructor(capacity = 0) {
    this.writtenAt = new Float64Array(capacity).fill(NaN);
    this.deliveredAt = new Float64Array(capacity).fill(NaN);
  }

  record(batch: readonly Item[]): void {
    if (this.deliveredAt.length > 0) {
      const now = performance.now();
      for (const item of batch) {
        if (item.id >= this.deliveredAt.length) continue;
        this.writtenAt[item.id] = item.t;
        this.deliveredAt[item.id] = now;
      }
    }
    this.delivered += batch.length;
    this.batches++;
  }
}

export type BatchSink = (batch: Item[]) => Promise<void> | void;

export interface SinkSpec {
  /** Sink name for the table. */
  readonly name: string;
  create(delivery: Delivery): BatchSink;
}

/** Trivial work, resolves at once: what is measured is the pipe's own overhead. */
export const fastSink: SinkSpec = {
  name: 'fast',
  create: (delivery) => async (batch) => {
    delivery.record(batch);
  },
};

/** A simulated batch insert: 1 ms + 2 µs per item, off the CPU (timer resolution is 1 ms). */
export function slowCostMs(batchLength: number): number {
  return 1 + 0.002 * batchLength;
}

/**
 * A sink with a per-call overhead and a superlinear cost (locks, parse time, request limits):
 * 1 ms + 2 µs per item + 0.0004 µs per item², off the CPU. Its best fixed batch is
 * sqrt(1 ms / 0.0004 µs) ≈ 1,581 items.
 */
export function peakedCostMs(batchLength: number): number {
  return 1 + 0.002 * batchLength + 0.0000004 * batchLength * batchLength;
}

export const peakedSink: SinkSpec = {
  name: 'peaked',
  create: (delivery) => async (batch) => {
    await sleep(peakedCostMs(batch.length));
    delivery.record(batch);
  },
};

/**
 * A sink that serves `servers` calls at once (a connection pool, an API's workers), each for the slow sink's
 * time (1 ms + 2 µs per item, off the CPU); a call that finds every server busy waits for one, in arrival order.
 * More calls than servers bring no more throughput, only waiting.
 */
export function pooledSink(servers: number): SinkSpec {
  return {
    name: `pool of ${servers}`,
    create: (delivery) => {
      let busy = 0;
      const waiting: (() => void)[] = [];
      return async (batch) => {
        const called = performance.now();
        if (busy >= servers) await new Promise<void>((resolve) => waiting.push(resolve));
        else busy++;
        await sleep(slowCostMs(batch.length));
        const next = waiting.shift();
        // The server goes straight to the next waiting call (busy stays), or is freed.
        if (next !== undefined) next();
        else busy--;
        delivery.callMs += performance.now() - called;
        delivery.record(batch);
      };
    },
  };
}

export const slowSink: SinkSpec = {
  name: 'slow',
  create: (delivery) => async (batch) => {
    await sleep(slowCostMs(batch.length));
    delivery.record(batch);
  },
};

/** Hangs every call until `stallMs` after the sink is created, then behaves like the slow sink. */
export function stallingSink(stallMs: number): SinkSpec {
  return {
    name: `stall ${stallMs} ms, then slow`,
    create: (delivery) => {
      const until = performance.now() + stallMs;
      return async (batch) => {
        const wait = until - performance.now();
        if (wait > 0) await sleep(wait);
        await sleep(slowCostMs(batch.length));
        delivery.record(batch);
      };
    },
  };
}

/** Samples heap and RSS; growth is measured from a baseline taken after a full GC. */
export class MemoryWatch {
  readonly baseHeap: number;
  readonly baseRss: number;
  peakHeap: number;
  peakRss: number;
  readonly #timer: NodeJS.Timeout;

  constructor(everyMs = 5) {
    (globalThis as { gc?: () => void }).gc?.();
    const { heapUsed, rss } = process.memoryUsage();
    this.baseHeap = this.peakHeap = heapUsed;
    this.baseRss = this.peakRss = rss;
    this.#timer = setInterval(() => this.sample(), everyMs);
    this.#timer.unref();
  }

  sample(): void {
    const { heapUsed, rss } = process.memoryUsage();
    if (heapUsed > this.peakHeap) this.peakHeap = heapUsed;
    if (rss > this.peakRss) this.peakRss = rss;
  }

  stop(): { peakHeapGrowthMB: number; peakRssGrowthMB: number } {
    this.sample();
    clearInterval(this.#timer);
    return {
      peakHeapGrowthMB: (this.peakHeap - this.baseHeap) / 2 ** 20,
      peakRssGrowthMB: (this.peakRss - this.baseRss) / 2 ** 20,
    };
  }
}

/** Bytes retained per benchmark item, measured: the unit of the stall target's memory bound. */
export function measureItemBytes(sample = 50_000): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return NaN;
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = new Array<Item>(sample);
  for (let i = 0; i < sample; i++) kept[i] = makeItem(i);
  gc();
  const bytes = (process.memoryUsage().heapUsed - before) / sample;
  kept.length = 0;
  return bytes;
}

export function percentile(values: Float64Array | number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}
