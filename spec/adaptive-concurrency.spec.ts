/**
 * Adaptive concurrency (`maxConcurrentFlushes: { min, max }`), driven by a simulated
 * sink that serves a given number of calls at once (a connection pool, an API's
 * workers) and queues the rest, on fake timers: a call's measured time is exactly its
 * wait in the sink's queue plus its service time.
 */
import { BlockingWritable } from '../lib';
import {
  CAP_RELAX_EPOCHS,
  CONFIRM_EPOCHS,
  ConcurrencyLimiter,
  EPOCH_CALLS,
  PROBE_EVERY,
  STALLED_PER_CALL,
  STALL_FRACTION,
  queueHigh,
  queueLow,
} from '../lib/engine/concurrency-limiter';
import { LoopStalls } from '../lib/engine/loop-stalls';
import type { LoopTimes } from '../lib/engine/loop-stalls';
import { useStreamFakeTimers } from './support/test-sink';
import type { FlushResult, WritevChunks } from '../lib';

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

interface Call {
  items: number[];
  /** Calls in flight when this one was made, counting it. */
  inFlight: number;
  /** The stream's concurrency limit when this call was made. */
  limit: number;
  latency: number;
  failed: boolean;
}

/**
 * A sink that serves `capacity` calls at once for `serviceMs` each and queues the others in
 * arrival order; `overload: 'fail'` rejects a call that finds every server busy instead (an HTTP
 * 429). `setCapacity` and `setServiceMs` change it while it runs.
 */
function pooledSink(
  initialCapacity: number,
  initialServiceMs: number,
  overload: 'queue' | 'fail' = 'queue',
): {
  flush: (items: number[]) => Promise<void>;
  calls: Call[];
  attach: (stream: BlockingWritable<number>) => void;
  setCapacity: (capacity: number) => void;
  setServiceMs: (ms: number) => void;
  /** A stall of the event loop: a call done at `now` is seen to settle only `stall(now)` ms later. */
  seenAfter: (stall: (now: number) => number) => void;
} {
  let capacity = initialCapacity;
  let serviceMs = initialServiceMs;
  let busy = 0;
  let inFlight = 0;
  let stream: BlockingWritable<number> | undefined;
  let stallLeft = (_now: number): number => 0;
  /** Calls done during a stall: the loop sees them settle together when it ends, in one turn. */
  let seenAtStallEnd: (() => void)[] | undefined;
  const waiting: (() => void)[] = [];
  const calls: Call[] = [];
  const serveNext = (): void => {
    while (busy < capacity && waiting.length > 0) (waiting.shift() as () => void)();
  };
  return {
    calls,
    attach: (s) => {
      stream = s;
    },
    setCapacity: (next) => {
      capacity = next;
      serveNext();
    },
    setServiceMs: (ms) => {
      serviceMs = ms;
    },
    seenAfter: (stall) => {
      stallLeft = stall;
    },
    flush: (items) => {
      inFlight++;
      const call: Call = {
        items,
        inFlight,
        limit: stream?.getMetrics().currentConcurrency ?? 0,
        latency: 0,
        failed: false,
      };
      calls.push(call);
      const started = Date.now();
      return new Promise<void>((resolve, reject) => {
        if (overload === 'fail' && busy >= capacity) {
          inFlight--;
          call.failed = true;
          reject(new Error('429 Too Many Requests'));
          return;
        }
        const serve = (): void => {
          busy++;
          const done = (): void => {
            busy--;
            inFlight--;
            call.latency = Date.now() - started;
            resolve();
            serveNext();
          };
          setTimeout(() => {
            const stall = stallLeft(Date.now());
            if (stall === 0) done();
            else if (seenAtStallEnd !== undefined) seenAtStallEnd.push(done);
            else {
              const seen = (seenAtStallEnd = [done]);
              setTimeout(() => {
                seenAtStallEnd = undefined;
                for (const settle of seen) settle();
              }, stall);
            }
          }, serviceMs);
        };
        if (busy < capacity) serve();
        else waiting.push(serve);
      });
    },
  };
}

/** Writes 0, 1, 2, … as fast as `write()` allows (honouring `false`/'drain') until `calls` reaches `until`. */
async function produce(
  stream: BlockingWritable<number>,
  calls: Call[],
  until: number,
  from = { next: 0 },
): Promise<void> {
  const fill = (): void => {
    while (stream.write(from.next++));
  };
  stream.on('drain', fill);
  fill();
  while (calls.length < until) await jest.advanceTimersByTimeAsync(1);
  stream.off('drain', fill);
}

/** Writes 0 … count − 1 honouring `write()`/'drain', ends the stream and waits for 'finish'. */
async function writeAll(stream: BlockingWritable<number>, count: number): Promise<void> {
  let next = 0;
  const fill = (): void => {
    while (next < count) if (!stream.write(next++)) break;
    if (next === count) stream.end();
  };
  let done = false;
  stream.on('finish', () => (done = true));
  stream.on('drain', fill);
  fill();
  while (!done) await jest.advanceTimersByTimeAsync(5);
}

const limits = (calls: Call[]): number[] => calls.map((call) => call.limit);

/**
 * Checks that the limit stayed within [low, high] for all calls but those of the base probes (one
 * epoch at half the limit in every PROBE_EVERY + 1, with the calls in flight at the change: 5 % of
 * the calls, and a window of 200 may hold two probes), and never went below half of `low` even then.
 */
function expectSettled(calls: Call[], low: number, high: number): void {
  const seen = limits(calls);
  const outside = seen.filter((limit) => limit < low || limit > high);
  expect({ outsideShare: outside.length / seen.length <= 0.1 }).toEqual({ outsideShare: true });
  expect(Math.max(...seen)).toBeLessThanOrEqual(high);
  expect(Math.min(...seen)).toBeGreaterThanOrEqual(Math.floor(low / 2));
}
/**
 * The highest limit the rule holds at for a sink serving `capacity` calls at once: one more and the calls queued
 * inside it (the limit less the capacity) would be over queueHigh. 13 for a capacity of 8, 6 for 4.
 */
function highestHeld(capacity: number): number {
  let limit = capacity;
  while (limit + 1 - capacity <= queueHigh(limit + 1)) limit++;
  return limit;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

/**
 * A pool of `servers()` servers whose calls cost 5 ms + 0.01 ms per item (so bigger batches are better per item),
 * for a sluice with adaptive batching between `batches` and adaptive concurrency from 1 to 64.
 */
function sizedPool(servers: () => number): {
  calls: Call[];
  stream: (batches: { min: number; max: number }) => BlockingWritable<number>;
} {
  let busy = 0;
  const waiting: (() => void)[] = [];
  const calls: Call[] = [];
  let stream: BlockingWritable<number> | undefined;
  const flush = (items: number[]): Promise<void> => {
    calls.push({ items, inFlight: 0, limit: stream?.getMetrics().currentConcurrency ?? 0, latency: 0, failed: false });
    return new Promise<void>((resolve) => {
      const serve = (): void => {
        busy++;
        setTimeout(
          () => {
            busy--;
            resolve();
            while (busy < servers() && waiting.length > 0) (waiting.shift() as () => void)();
          },
          Math.round(5 + 0.01 * items.length),
        );
      };
      if (busy < servers()) serve();
      else waiting.push(serve);
    });
  };
  return {
    calls,
    stream: (batches) =>
      (stream = new BlockingWritable(flush, {
        maxBufferSize: 50_000,
        batchSize: batches,
        maxConcurrentFlushes: { min: 1, max: 64 },
        targetLatencyMs: 10_000,
      })),
  };
}

function adaptiveStream(
  sink: ReturnType<typeof pooledSink>,
  options: { min?: number; max?: number; targetLatencyMs?: number } = {},
): BlockingWritable<number> {
  const stream = new BlockingWritable(sink.flush, {
    maxBufferSize: 20_000,
    batchSize: 100,
    maxConcurrentFlushes: { min: options.min ?? 1, max: options.max ?? 64 },
    targetLatencyMs: options.targetLatencyMs ?? 10_000,
    retry: { maxRetries: 1_000, initialDelayMs: 1, maxDelayMs: 5 },
  });
  sink.attach(stream);
  return stream;
}

describe('adaptive concurrency', () => {
  test('finds the sink capacity: the limit settles just above it, and throughput is the capacity', async () => {
    const sink = pooledSink(8, 10);
    const stream = adaptiveStream(sink);
    await produce(stream, sink.calls, 600);
    const settled = sink.calls.slice(300);
    // Up to queueHigh calls waiting inside the sink, and never fewer slots than the sink serves but in probes.
    expectSettled(settled, 8, highestHeld(8));
    // Slow start: from 1 to the capacity in a few epochs (1, 2, 4, 8, 16, then the cut).
    const reached = sink.calls.findIndex((call) => call.limit >= 8);
    expect(reached).toBeGreaterThan(0);
    expect(reached).toBeLessThan(20);
    stream.destroy();
  });

  test('delivers 8 calls per service time once settled (the capacity), against 1 with a fixed single slot', async () => {
    /** Calls per ms, measured over the calls after the first 200. */
    const run = async (maxConcurrentFlushes: number | { min: number; max: number }): Promise<number> => {
      const sink = pooledSink(8, 10);
      const stream = new BlockingWritable(sink.flush, { maxBufferSize: 20_000, batchSize: 100, maxConcurrentFlushes });
      sink.attach(stream);
      const from = { next: 0 };
      await produce(stream, sink.calls, 200, from);
      const started = Date.now();
      await produce(stream, sink.calls, 1_000, from);
      const rate = (sink.calls.length - 200) / (Date.now() - started);
      stream.destroy();
      return rate;
    };
    const single = await run(1);
    const best = await run(8);
    const adaptive = await run({ min: 1, max: 64 });
    expect(single).toBeCloseTo(0.1, 2);
    expect(best).toBeGreaterThan(0.75);
    expect(adaptive).toBeGreaterThan(0.9 * best);
  });

  /**
   * A pool of 8 servers of 10 ms, 400 calls to settle; then each change in turn, run until the call count it
   * gives, after which the last 200 calls must be settled at `capacity` (to {@link highestHeld} of it).
   */
  async function follows(
    changes: { change: (sink: ReturnType<typeof pooledSink>) => void; until: number; capacity: number }[],
  ): Promise<void> {
    const sink = pooledSink(8, 10);
    const stream = adaptiveStream(sink);
    const from = { next: 0 };
    await produce(stream, sink.calls, 400, from);
    for (const { change, until, capacity } of changes) {
      change(sink);
      await produce(stream, sink.calls, until, from);
      expectSettled(sink.calls.slice(until - 200, until), capacity, highestHeld(capacity));
    }
    stream.destroy();
  }

  test('follows the sink: capacity halves, then doubles', () =>
    follows([
      { change: (sink) => sink.setCapacity(4), until: 1_000, capacity: 4 },
      { change: (sink) => sink.setCapacity(8), until: 1_600, capacity: 8 },
    ]));

  test('follows a sink that gets slower for good and recovers its capacity', () =>
    follows([{ change: (sink) => sink.setServiceMs(20), until: 1_400, capacity: 8 }]));

  test.each([
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
  ])(
    'a sink of %i servers is held at %i at most, and its calls wait no longer than that allows',
    async (capacity, highest) => {
      const sink = pooledSink(capacity, 10);
      const stream = adaptiveStream(sink);
      await produce(stream, sink.calls, 600);
      const settled = sink.calls.slice(300);
      // Cuts start once more than 0.4 of the limit (and more than 2 calls) is queued.
      expect(highestHeld(capacity)).toBe(highest);
      expectSettled(settled, capacity, highest);
      // So a call takes at most `highest / capacity` times its 10 ms. Without the shares of the limit that bound the
      // queue, the rule held 5, 5, 8 and 8 for 1 to 4 servers (47, 24, 25 and 19 ms); with half the limit as the top
      // share, 6 and 8 for 3 and 4 servers (19 ms each).
      const meanLatency = settled.reduce((sum, call) => sum + call.latency, 0) / settled.length;
      expect(meanLatency).toBeLessThanOrEqual((10 * highest) / capacity);
      stream.destroy();
    },
  );

  test('never exceeds max, never goes below min, and never runs more calls than the limit', async () => {
    const sink = pooledSink(8, 10);
    const stream = adaptiveStream(sink, { min: 2, max: 5 });
    expect(stream.getMetrics().currentConcurrency).toBe(2);
    await produce(stream, sink.calls, 300);
    for (const call of sink.calls) {
      expect(call.limit).toBeGreaterThanOrEqual(2);
      expect(call.limit).toBeLessThanOrEqual(5);
      expect(call.inFlight).toBeLessThanOrEqual(5);
    }
    // The capacity (8) lies above max: it settles at max.
    expect(median(limits(sink.calls.slice(200)))).toBe(5);

    const serial = pooledSink(1, 10);
    const floor = adaptiveStream(serial, { min: 3, max: 64 });
    await produce(floor, serial.calls, 200);
    expect(Math.min(...limits(serial.calls))).toBe(3);
    stream.destroy();
    floor.destroy();
  });

  test('a sink that refuses calls past its capacity (HTTP 429): the limit backs off, and nothing is lost', async () => {
    const sink = pooledSink(6, 10, 'fail');
    const stream = adaptiveStream(sink);
    const written = 60_000;
    await writeAll(stream, written);
    const metrics = stream.getMetrics();
    expect(metrics.eventsFlushed).toBe(written);
    expect(metrics.deadLettered).toBe(0);
    // Refusals cut the limit: most calls go through, and the limit stays near the capacity.
    const failed = sink.calls.filter((call) => call.failed).length;
    expect(failed / sink.calls.length).toBeLessThan(0.25);
    expect(median(limits(sink.calls.slice(200)))).toBeLessThanOrEqual(7);
    expect(median(limits(sink.calls.slice(200)))).toBeGreaterThanOrEqual(3);
  });

  test('the latency target: calls that queue past it cut the limit to the capacity', async () => {
    // Capacity 4, 10 ms each: 5 in flight take 12.5 ms, 6 take 15 ms. A target of 11 ms allows no queue.
    const sink = pooledSink(4, 10);
    const stream = adaptiveStream(sink, { targetLatencyMs: 11 });
    await produce(stream, sink.calls, 600);
    const settled = sink.calls.slice(200);
    // Never a second call queued; mostly the capacity or one more (an epoch that caught two waits cuts to 3).
    expect(Math.max(...limits(settled))).toBeLessThanOrEqual(5);
    expect(median(limits(settled))).toBeGreaterThanOrEqual(4);
    // At 5, one call in five waits a service time (12 ms on average, over the target), so it goes back to 4 and
    // only tries 5 again after an epoch within the target: fewer calls over it than a fixed 5 would send (20 %).
    const overTarget = settled.filter((call) => call.latency > 11).length;
    expect(overTarget / settled.length).toBeLessThan(0.2);
    const meanLatency = settled.reduce((sum, call) => sum + call.latency, 0) / settled.length;
    expect(meanLatency).toBeLessThan(12);
    stream.destroy();
  });

  test('a producer that cannot fill the slots does not make them grow', async () => {
    const sink = pooledSink(8, 10);
    const stream = adaptiveStream(sink);
    // One full batch every 50 ms: the sink takes 10 ms, so one slot is always enough.
    for (let i = 0; i < 40; i++) {
      for (let j = 0; j < 100; j++) stream.write(i * 100 + j);
      await jest.advanceTimersByTimeAsync(50);
    }
    expect(Math.max(...limits(sink.calls))).toBeLessThanOrEqual(2);
    expect(stream.getMetrics().eventsFlushed).toBe(4_000);
    stream.destroy();
  });

  test('with adaptive batching too, the limit does not run away while the batch size moves', async () => {
    // 8 servers; a call costs 5 ms + 0.01 ms per item, so bigger batches are better per item.
    const sink = sizedPool(() => 8);
    const stream = sink.stream({ min: 100, max: 2_000 });
    await produce(stream, sink.calls, 1_500);
    const settled = limits(sink.calls.slice(1_000));
    expect(median(settled)).toBeGreaterThanOrEqual(8);
    expect(median(settled)).toBeLessThanOrEqual(highestHeld(8));
    expect(Math.max(...settled)).toBeLessThanOrEqual(16);
    stream.destroy();
  });

  test('with adaptive batching too, a pool that shrinks from 40 servers to 4 is followed', async () => {
    // Found in review: the limit needs max(3, limit) calls of one size per epoch, and the sizer moves to a probe
    // size every 18 calls, so with an epoch that started over at each change of the size, a limit over about 18
    // never decided again.
    let servers = 40;
    const sink = sizedPool(() => servers);
    const stream = sink.stream({ min: 50, max: 500 });
    const from = { next: 0 };
    await produce(stream, sink.calls, 3_000, from);
    expect(median(limits(sink.calls.slice(2_000)))).toBeGreaterThan(20);
    servers = 4;
    await produce(stream, sink.calls, 6_000, from);
    const settled = limits(sink.calls.slice(5_000));
    expect(median(settled)).toBeLessThanOrEqual(highestHeld(4));
    expect(median(settled)).toBeGreaterThanOrEqual(4);
    stream.destroy();
  });

  test('a FlushResult that fails a few rows is not an overload: the slots stay near the capacity', async () => {
    // Found in review: every call with a failed row counted as a failure and halved the limit, so with one bad
    // row in most batches the limit stayed at 1; and the bad row's retry, alone, failed again and halved it again.
    let busy = 0;
    const waiting: (() => void)[] = [];
    const calls: Call[] = [];
    // eslint-disable-next-line prefer-const -- the sink reads the stream it is given to
    let stream: BlockingWritable<number>;
    const flush = (items: number[]): Promise<FlushResult<number>> => {
      calls.push({ items, inFlight: 0, limit: stream.getMetrics().currentConcurrency, latency: 0, failed: false });
      return new Promise((resolve) => {
        const serve = (): void => {
          busy++;
          setTimeout(() => {
            busy--;
            const bad = items.filter((item) => item % 97 === 0);
            resolve({ success: items.length - bad.length, failed: bad.length, errors: [], failedItems: bad });
            while (busy < 8 && waiting.length > 0) (waiting.shift() as () => void)();
          }, 10);
        };
        if (busy < 8) serve();
        else waiting.push(serve);
      });
    };
    const deadLettered: number[] = [];
    stream = new BlockingWritable(flush, {
      maxBufferSize: 20_000,
      batchSize: 100,
      maxConcurrentFlushes: { min: 1, max: 64 },
      targetLatencyMs: 10_000,
      retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 1 },
      onDeadLetter: (items) => {
        deadLettered.push(...items);
      },
    });
    await produce(stream, calls, 1_500);
    const full = calls.slice(500).filter((call) => call.items.length === 100);
    expect(median(limits(full))).toBeGreaterThanOrEqual(8);
    expect(median(limits(full))).toBeLessThanOrEqual(highestHeld(8));
    expect(deadLettered.length).toBeGreaterThan(0);
    expect(deadLettered.every((item) => item % 97 === 0)).toBe(true);
    stream.destroy();
  });

  test('a sink that throttles per item (most of a FlushResult failed) is an overload: the slots back off', async () => {
    // With more than 4 calls in flight, 80 % of a call's items come back failed, at the usual latency (DynamoDB's
    // UnprocessedItems, Elasticsearch's per-item 429s). Found in review: with every FlushResult that delivered
    // some items counted as a delivery, the limit ran to 64 and nearly every call was throttled.
    let inFlight = 0;
    const calls: Call[] = [];
    // eslint-disable-next-line prefer-const -- the sink reads the stream it is given to
    let stream: BlockingWritable<number>;
    const flush = (items: number[]): Promise<FlushResult<number> | undefined> => {
      inFlight++;
      const over = inFlight > 4;
      calls.push({ items, inFlight, limit: stream.getMetrics().currentConcurrency, latency: 0, failed: over });
      return new Promise((resolve) => {
        setTimeout(() => {
          inFlight--;
          const refused = over ? items.filter((_, i) => i % 5 !== 0) : [];
          resolve({ success: items.length - refused.length, failed: refused.length, errors: [], failedItems: refused });
        }, 10);
      });
    };
    stream = new BlockingWritable(flush, {
      maxBufferSize: 20_000,
      batchSize: 100,
      maxConcurrentFlushes: { min: 1, max: 64 },
      targetLatencyMs: 10_000,
      retry: { maxRetries: 1_000, initialDelayMs: 1, maxDelayMs: 5 },
    });
    await produce(stream, calls, 3_000);
    const later = calls.slice(1_500);
    // Near the capacity: about a quarter of the calls find it exceeded (the limit probes one over it), not
    // nearly all of them.
    expect(median(limits(later))).toBeLessThanOrEqual(6);
    expect(later.filter((call) => call.failed).length / later.length).toBeLessThan(0.4);
    stream.destroy();
  });

  test('stalls of the event loop that delay every call in flight at once are not taken for a queue', async () => {
    // From 60 ms on, the first 40 ms of every 60 the loop is busy (a producer writing thousands of items in one
    // go): no call is seen to settle meanwhile, so the calls in flight measure up to 40 ms longer, and epochs
    // that hold them look like a queue. The loop's times say it was busy: those calls are left out.
    const every = 60;
    const forMs = 40;
    const started = Date.now();
    /** ms of the stall left at `t` ms into the run (0 outside one), and the loop's busy time up to `t`. */
    const stallLeft = (t: number): number => (t < every ? 0 : Math.max(0, forMs - (t % every)));
    const busyUpTo = (t: number): number =>
      t < every ? 0 : (Math.floor(t / every) - 1) * forMs + Math.min(t % every, forMs);
    const loop = jest.spyOn(performance, 'eventLoopUtilization').mockImplementation(() => {
      const t = Date.now() - started;
      return { idle: t - busyUpTo(t), active: busyUpTo(t), utilization: 0 };
    });
    const sink = pooledSink(8, 10);
    sink.seenAfter((now) => stallLeft(now - started));
    const stream = adaptiveStream(sink);
    await produce(stream, sink.calls, 900);
    expect(loop).toHaveBeenCalled();
    expect(sink.calls.filter((call) => call.latency >= 20).length).toBeGreaterThan(100);
    // Settled at the capacity to the highest limit held at it, but for the base probes: one short run at half the
    // limit, back to where it was after it. Taking the stalled calls for a queue cut it to 3 or 4, half the capacity.
    const runs: { limit: number; calls: number }[] = [];
    for (const limit of limits(sink.calls.slice(400))) {
      const last = runs[runs.length - 1];
      if (last?.limit === limit) last.calls++;
      else runs.push({ limit, calls: 1 });
    }
    const unexpected = runs.filter(({ limit, calls }, i) => {
      if (limit >= 8 && limit <= highestHeld(8)) return false;
      const before = runs[i - 1]?.limit ?? 0;
      const after = runs[i + 1]?.limit ?? before;
      return !(before >= 8 && limit === Math.floor(before / 2) && after === before && calls <= 2 * before);
    });
    expect(unexpected).toEqual([]);
    stream.destroy();
  });

  test('a _writev sink that fails synchronously: no new batch starts above the limit the failure lowered', async () => {
    // Found in review: pump() read the limit once before cutting, and a callback that fails at once (`if
    // (!conn.ready) return cb(err)`) is judged inside the call, so the limit fell while pump() went on cutting
    // batches up to the one it had read.
    const starts: { inSlots: number; limit: number }[] = [];
    let calls = 0;
    const delivered: number[] = [];
    class Sink extends BlockingWritable<number> {
      override _writev(chunks: WritevChunks<number>, callback: (error?: Error | null) => void): void {
        const metrics = this.getMetrics();
        // Fixed batches of 20: the batches in their slots, this one included.
        if (chunks.attempt === 1)
          starts.push({ inSlots: Math.ceil(metrics.inFlight / 20), limit: metrics.currentConcurrency });
        if (++calls % 7 === 0) {
          callback(new Error('connection not ready'));
          return;
        }
        setTimeout(() => {
          for (const { chunk } of chunks) delivered.push(chunk);
          callback();
        }, 5);
      }
    }
    const stream = new Sink({
      batchSize: 20,
      maxBufferSize: 5_000,
      maxConcurrentFlushes: { min: 1, max: 16 },
      targetLatencyMs: 10_000,
      retry: { maxRetries: 10, initialDelayMs: 1, maxDelayMs: 1 },
    });
    await writeAll(stream, 20_000);
    expect(starts.filter(({ inSlots, limit }) => inSlots > limit)).toEqual([]);
    expect(Math.max(...starts.map(({ limit }) => limit))).toBeGreaterThan(1); // the limit did move, from min
    expect(delivered.length).toBe(20_000);
    expect(new Set(delivered).size).toBe(20_000);
  });

  test('each batch keeps its items in order; every item is delivered once', async () => {
    const sink = pooledSink(8, 10);
    const stream = adaptiveStream(sink);
    const written = 50_000;
    await writeAll(stream, written);
    const seen = new Set<number>();
    for (const { items } of sink.calls) {
      for (let i = 1; i < items.length; i++) expect(items[i]).toBe((items[i - 1] as number) + 1);
      for (const item of items) seen.add(item);
    }
    expect(seen.size).toBe(written);
    expect(sink.calls.reduce((sum, call) => sum + call.items.length, 0)).toBe(written);
  });
});

describe('ConcurrencyLimiter', () => {
  /**
   * A limiter that has measured one epoch of 10 ms calls of 100 items without every slot busy, so it has a base
   * time and has not grown: the first epoch at a batch size only measures above a limit of 1 (with no earlier time
   * to compare it with, it would show no queue however long the calls waited), and at 1 it grows at once.
   */
  function calibrated(min: number, max: number, targetLatencyMs: number): ConcurrencyLimiter {
    const limiter = new ConcurrencyLimiter(min, max, targetLatencyMs);
    epoch(limiter, 10, false);
    expect(limiter.limit).toBe(min);
    return limiter;
  }

  /** Feeds one epoch of `limit` (at least EPOCH_CALLS) full calls of `latency` ms, all slots busy. */
  function epoch(limiter: ConcurrencyLimiter, latency: number, saturated = true): void {
    const calls = Math.max(EPOCH_CALLS, limiter.limit);
    if (saturated) limiter.started(limiter.limit);
    for (let i = 0; i < calls; i++) limiter.delivered(100, latency, true, 1);
  }

  test('slow start doubles while calls take their base time and every slot is busy', () => {
    const limiter = calibrated(1, 64, 10_000);
    const seen = [limiter.limit];
    for (let i = 0; i < 5; i++) {
      epoch(limiter, 10);
      seen.push(limiter.limit);
    }
    expect(seen).toEqual([1, 2, 4, 8, 16, 32]);
  });

  test('the slow start ends at the first queued call: growth is then by one while under queueLow', () => {
    const limiter = calibrated(1, 64, 10_000);
    for (let i = 0; i < 3; i++) epoch(limiter, 10); // 2, 4, 8
    // 8 in flight take 12 ms: a queue of 1.33, under queueLow(8) = 2. The sink has a queue: 9, not 16.
    epoch(limiter, 12);
    expect(limiter.limit).toBe(9);
    epoch(limiter, 10);
    expect(limiter.limit).toBe(10);
  });

  test('no growth without saturation', () => {
    const limiter = calibrated(1, 64, 10_000);
    epoch(limiter, 10, false);
    epoch(limiter, 10, false);
    expect(limiter.limit).toBe(1);
  });

  test('a queue over queueHigh cuts to the estimated capacity plus its queueLow, at most to 3/4; then growth is by one', () => {
    const limiter = calibrated(1, 64, 10_000);
    for (let i = 0; i < 5; i++) epoch(limiter, 10); // base 10 ms: 2, 4, 8, 16, 32
    expect(limiter.limit).toBe(32);
    // 32 in flight take 160/11 ms: capacity 22, queue 10, over queueHigh(32) = 9.03. Two such epochs may be a stall
    // of the event loop; the third in a row cuts, to 22 + queueLow(22) = 26.03.
    epoch(limiter, 160 / 11);
    epoch(limiter, 160 / 11);
    expect(limiter.limit).toBe(32);
    epoch(limiter, 160 / 11);
    expect(limiter.limit).toBe(26);
    // At 26, 130/11 ms: capacity 22, queue 4, under queueLow(26) = 4.24: growth, by one (the slow start is over).
    epoch(limiter, 130 / 11);
    expect(limiter.limit).toBe(27);
    // Capacity 16 (27 take 16.875 ms, queue 11): three epochs, then 3/4 of 27 at most: 20, not 16 + 3.61.
    for (let i = 0; i < CONFIRM_EPOCHS; i++) epoch(limiter, 16.875);
    expect(limiter.limit).toBe(20);
    // At 20, 12.5 ms: queue 4, between queueLow(20) = 3.90 and queueHigh(20) = 7.81: held.
    for (let i = 0; i < CONFIRM_EPOCHS + 1; i++) epoch(limiter, 12.5);
    expect(limiter.limit).toBe(20);
  });

  test('queueLow and queueHigh: 3 and 6 times log10 of the limit, at most a quarter and 0.4 of it, at least 1 and 2', () => {
    expect([1, 2, 4, 8, 12].map(queueLow)).toEqual([1, 1, 1, 2, 3]);
    expect([1, 2, 4, 10, 15].map(queueHigh)).toEqual([2, 2, 2, 4, 6]);
    expect(queueLow(64)).toBeCloseTo(5.419, 3);
    expect(queueHigh(64)).toBeCloseTo(10.837, 3);
    expect(queueLow(10_000)).toBe(12);
    expect(queueHigh(10_000)).toBe(24);
  });

  test("a cut aims at the capacity plus the capacity's own queueLow", () => {
    const limiter = calibrated(1, 64, 10_000);
    for (let i = 0; i < 5; i++) epoch(limiter, 10); // 2, 4, 8, 16, 32
    // 32 in flight take 320/21 ms: capacity 21, queue 11. 21 + queueLow(21) = 24.97 gives 24 (also 3/4 of 32);
    // the limit's queueLow (4.52) would give 25.
    for (let i = 0; i < CONFIRM_EPOCHS; i++) epoch(limiter, 320 / 21);
    expect(limiter.limit).toBe(24);
  });

  test('at a limit of 1 the first epoch decides: no call waits for another, and it grows at once', () => {
    const limiter = new ConcurrencyLimiter(1, 64, 10_000);
    epoch(limiter, 10);
    expect(limiter.limit).toBe(2);
    // Above 1, the first epoch at a batch size only measures (see below).
    const fromTwo = new ConcurrencyLimiter(2, 64, 10_000);
    epoch(fromTwo, 10);
    expect(fromTwo.limit).toBe(2);
    epoch(fromTwo, 10);
    expect(fromTwo.limit).toBe(4);
  });

  test('a failure halves the limit once: the calls in flight then cannot cut it again', () => {
    const limiter = calibrated(1, 64, 10_000);
    for (let i = 0; i < 4; i++) epoch(limiter, 10);
    expect(limiter.limit).toBe(16);
    limiter.failed(16);
    expect(limiter.limit).toBe(8);
    // The other 15 calls in flight were made under 16: their failures do not count.
    for (let i = 0; i < 15; i++) limiter.failed(15 - i);
    expect(limiter.limit).toBe(8);
    limiter.failed(1);
    expect(limiter.limit).toBe(4);
  });

  test('every PROBE_EVERY epochs, one epoch at half the limit measures the base time; then the limit is back', () => {
    const limiter = calibrated(1, 8, 10_000);
    const seen: number[] = [];
    for (let i = 0; i < PROBE_EVERY + 2; i++) {
      epoch(limiter, 10);
      seen.push(limiter.limit);
    }
    // 2, 4, 8 (max), then held at 8 until the probe at 4, then 8 again. The calibrating epoch, which decided
    // (not to grow: its slots were not all busy), is the first of the PROBE_EVERY.
    expect(seen.slice(0, 3)).toEqual([2, 4, 8]);
    expect(seen.slice(3, PROBE_EVERY - 2)).toEqual(Array(PROBE_EVERY - 5).fill(8));
    expect(seen.slice(PROBE_EVERY - 2)).toEqual([4, 8, 8, 8]);
  });

  test('a failure during a probe cuts from the limit before it', () => {
    const limiter = calibrated(1, 8, 10_000);
    for (let i = 0; i < PROBE_EVERY - 1; i++) epoch(limiter, 10);
    expect(limiter.limit).toBe(4); // probing
    limiter.failed(1);
    expect(limiter.limit).toBe(4); // half of 8, and no going back to 8 after the probe epoch
    epoch(limiter, 10);
    expect(limiter.limit).toBe(5);
  });

  test('the times of calls in flight at a change are left out of the next epoch', () => {
    const limiter = calibrated(1, 64, 10_000);
    epoch(limiter, 10); // → 2
    limiter.started(2);
    // Both calls of the old epoch still in flight settle (one skipped), then the new epoch's calls.
    limiter.delivered(100, 10, true, 2); // in flight at the change: skipped
    expect(limiter.limit).toBe(2);
    for (let i = 0; i < EPOCH_CALLS; i++) limiter.delivered(100, 10, true, 2);
    expect(limiter.limit).toBe(4);
  });

  test("an epoch's calls of one size add up on either side of calls of another", () => {
    // Found in review: with adaptive batching the size changes for a probe every 18 calls, and an epoch that
    // started over at each change never ended once the limit needed more calls than that.
    const limiter = calibrated(1, 64, 10_000);
    for (const expected of [2, 4, 8]) {
      epoch(limiter, 10);
      expect(limiter.limit).toBe(expected);
    }
    limiter.started(8);
    for (let i = 0; i < 5; i++) limiter.delivered(100, 10, true, 8);
    for (let i = 0; i < 3; i++) limiter.delivered(115, 11, true, 8); // another size's own epoch, short of 8
    expect(limiter.limit).toBe(8);
    for (let i = 0; i < 3; i++) limiter.delivered(100, 10, true, 8); // 8 calls of 100: no queue, doubling
    expect(limiter.limit).toBe(16);
  });

  test('partial batches do not count; each batch size has its own base time, measured before it decides', () => {
    const limiter = calibrated(1, 64, 10_000);
    epoch(limiter, 10); // → 2
    limiter.started(2);
    for (let i = 0; i < 10; i++) limiter.delivered(37, 50, false, 1); // partial batches: ignored
    expect(limiter.limit).toBe(2);
    // Batches of 200 take 20 ms alone, 30 ms at a limit of 2 (a queue the limiter cannot see without a base).
    // The first epoch at 200 only measures, and the next measures at half the limit, as a probe does.
    for (let i = 0; i < EPOCH_CALLS; i++) limiter.delivered(200, 30, true, 1);
    expect(limiter.limit).toBe(1);
    for (let i = 0; i < EPOCH_CALLS; i++) limiter.delivered(200, 20, true, 1);
    expect(limiter.limit).toBe(2);
    // Against that base, the next epoch at 2 shows no queue.
    limiter.started(2);
    for (let i = 0; i < EPOCH_CALLS; i++) limiter.delivered(200, 20, true, 1);
    expect(limiter.limit).toBe(4);
    // Back at 100, whose base (10 ms) is remembered: 40 ms there is a queue of 3, and three such epochs cut (to 3/4).
    for (let c = 0; c < 3; c++) for (let i = 0; i < 4; i++) limiter.delivered(100, 40, true, 1);
    expect(limiter.limit).toBe(3);
  });

  /** A limiter with a 15 ms target, at 4 after its slow start, then cut to 3 by calls of 16 ms. */
  function cutForLatency(): ConcurrencyLimiter {
    const limiter = calibrated(1, 64, 15);
    epoch(limiter, 10); // → 2
    epoch(limiter, 10); // → 4
    // 4 in flight take 16 ms (capacity 2.5, queue 1.5): over the target, cut to the capacity (3/4 of 4 at most).
    for (let i = 0; i < CONFIRM_EPOCHS; i++) epoch(limiter, 16);
    expect(limiter.limit).toBe(3);
    return limiter;
  }

  test('latency over the target with a queue cuts to the capacity', () => {
    const limiter = cutForLatency();
    // At 3, 16 ms: queue 1.1, capacity 1.9: cut to 2 (3/4 of 3, floored).
    for (let i = 0; i < CONFIRM_EPOCHS; i++) epoch(limiter, 16);
    expect(limiter.limit).toBe(2);
  });

  test('a limit that was over the target is tried again only after CAP_RELAX_EPOCHS epochs within it', () => {
    const limiter = cutForLatency();
    const seen: number[] = [];
    for (let i = 0; i < CAP_RELAX_EPOCHS; i++) {
      epoch(limiter, 10);
      seen.push(limiter.limit);
    }
    expect(seen).toEqual([...Array<number>(CAP_RELAX_EPOCHS - 1).fill(3), 4]);
  });

  test('calls seen after the event loop was busy for more than STALL_FRACTION of their time are left out', () => {
    // At 16 (the max), CONFIRM_EPOCHS epochs' worth of calls of which every other one measured 40 ms, not 10,
    // because the loop was busy for `stalledMs` before it saw it settle. Counted, each epoch's mean (25 ms)
    // shows a queue of 9.6 and the third cuts to 12 (3/4 of 16); left out, the calls of 10 ms show none.
    const run = (stalledMs: number): number[] => {
      const limiter = calibrated(1, 16, 10_000);
      for (let i = 0; i < 4; i++) epoch(limiter, 10);
      const seen = [limiter.limit];
      for (let e = 0; e < CONFIRM_EPOCHS; e++) {
        limiter.started(16);
        for (let i = 0; i < 8; i++) {
          limiter.delivered(100, 40, true, 16, stalledMs);
          limiter.delivered(100, 10, true, 16, 0);
        }
        seen.push(limiter.limit);
      }
      return seen;
    };
    expect(run(40 * STALL_FRACTION + 2)).toEqual([16, 16, 16, 16]);
    expect(run(0)).toEqual([16, 16, 16, 12]);
    // Busy for exactly STALL_FRACTION of the call's time: it counts.
    expect(run(40 * STALL_FRACTION)).toEqual([16, 16, 16, 12]);
  });

  test('stalled calls count once an epoch has left out STALLED_PER_CALL times the calls it needs', () => {
    // A loop that is always busy: every call is seen after a stall as long as the call. The limit still moves,
    // an epoch later: the first EPOCH_CALLS × STALLED_PER_CALL calls are left out, the next EPOCH_CALLS decide.
    const limiter = calibrated(1, 64, 10_000);
    limiter.started(1);
    const leftOut = EPOCH_CALLS * STALLED_PER_CALL;
    for (let i = 0; i < leftOut + EPOCH_CALLS - 1; i++) limiter.delivered(100, 10, true, 1, 10);
    expect(limiter.limit).toBe(1);
    limiter.delivered(100, 10, true, 1, 10);
    expect(limiter.limit).toBe(2);
  });

  test('an epoch that does not call for a cut starts the count again', () => {
    const limiter = calibrated(1, 64, 10_000);
    for (let i = 0; i < 4; i++) epoch(limiter, 10); // → 16
    epoch(limiter, 20);
    epoch(limiter, 20);
    epoch(limiter, 13); // queue 3.69, between queueLow(16) and queueHigh(16): no cut wanted, no growth
    epoch(limiter, 20);
    epoch(limiter, 20);
    expect(limiter.limit).toBe(16);
    // The cut takes the fastest of the three: 20, 40, 20 ms gives capacity 8, not 4.
    epoch(limiter, 40);
    expect(limiter.limit).toBe(12);
  });
});

describe('adaptive concurrency options', () => {
  const flush = async (): Promise<void> => undefined;
  test.each([
    [{ min: 0, max: 10 }, RangeError, /"maxConcurrentFlushes.min" must be an integer >= 1. Received 0/],
    [{ min: 10, max: 5 }, RangeError, /"maxConcurrentFlushes.min" must be <= "maxConcurrentFlushes.max" \(5\)/],
    [{ min: 1, max: 20_000 }, RangeError, /"maxConcurrentFlushes.max" must be <= "maxBufferSize" \(10000\)/],
    [{ min: 1 }, TypeError, /"maxConcurrentFlushes.max" must be of type number. Received undefined/],
    [{ min: 1, max: 8, initial: 2 }, RangeError, /"maxConcurrentFlushes.initial" is not a sluice option/],
    ['auto', TypeError, /"maxConcurrentFlushes" must be a number or an object \{ min, max \}. Received 'auto'/],
    [0, RangeError, /"maxConcurrentFlushes" must be an integer >= 1. Received 0/],
  ])('maxConcurrentFlushes %p is refused', (maxConcurrentFlushes, type, message) => {
    const attempt = (): unknown => new BlockingWritable(flush, { maxConcurrentFlushes: maxConcurrentFlushes as never });
    expect(attempt).toThrow(type);
    expect(attempt).toThrow(message);
    try {
      attempt();
    } catch (error) {
      expect((error as { code: string }).code).toMatch(/^ERR_(OUT_OF_RANGE|INVALID_ARG_TYPE|INVALID_ARG_VALUE)$/);
    }
  });

  test('a valid range is accepted and starts at min; a number is reported as it is', () => {
    const adaptive = new BlockingWritable(flush, { maxConcurrentFlushes: { min: 3, max: 30 } });
    expect(adaptive.getMetrics().currentConcurrency).toBe(3);
    const fixed = new BlockingWritable(flush, { maxConcurrentFlushes: 4 });
    expect(fixed.getMetrics().currentConcurrency).toBe(4);
    adaptive.destroy();
    fixed.destroy();
  });
});

describe('LoopStalls', () => {
  /** A reader that returns `readings` in turn. */
  const scripted = (...readings: (LoopTimes | undefined)[]): (() => LoopTimes | undefined) => {
    let next = 0;
    return () => readings[next++];
  };
  const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  test('finds the active time since the previous reading; the longest stands for the rest of the turn', async () => {
    const stalls = new LoopStalls(
      scripted(
        { idle: 100, active: 50 },
        { idle: 100, active: 65 },
        { idle: 100, active: 65.2 },
        { idle: 101, active: 70 },
        { idle: 102, active: 70.5 },
        { idle: 103, active: 71 },
      ),
    );
    // A 15 ms stall, then a call seen in the same turn right after it: delayed as much, though the loop's
    // active time barely moved since the reading before.
    expect(stalls.busyMs()).toBe(15);
    expect(stalls.busyMs()).toBe(15);
    await nextTurn();
    // A new turn: only what the loop did since the previous reading.
    expect(stalls.busyMs()).toBeCloseTo(4.8);
    await nextTurn();
    expect(stalls.busyMs()).toBe(0.5);
    await nextTurn();
    expect(stalls.busyMs()).toBe(0.5);
  });

  test('a loop that never waits but turns quickly is not one long stall', async () => {
    // Never idle (busy with I/O), 0.2 ms of work between two settlements, one per turn.
    const readings = Array.from({ length: 50 }, (_, i) => ({ idle: 0, active: 0.2 * i }));
    const stalls = new LoopStalls(scripted(...readings));
    const seen: number[] = [];
    for (let i = 1; i < readings.length; i++) {
      seen.push(stalls.busyMs());
      await nextTurn();
    }
    expect(Math.max(...seen)).toBeCloseTo(0.2);
  });

  test('a runtime without the measure never reports a stall', () => {
    expect(new LoopStalls(() => undefined).busyMs()).toBe(0);
    const stalls = new LoopStalls(scripted({ idle: 0, active: 0 }, undefined));
    expect(stalls.busyMs()).toBe(0);
  });

  test("by default it reads Node's event-loop utilization: synchronous work is a stall", () => {
    jest.useRealTimers();
    const stalls = new LoopStalls();
    // The loop cannot idle during synchronous code, so at least this long counts (a loaded machine only adds).
    const until = performance.now() + 20;
    while (performance.now() < until);
    expect(stalls.busyMs()).toBeGreaterThanOrEqual(19);
  });
});
