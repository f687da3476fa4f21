import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex, Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import {
  BackpressureController as ReferenceController,
  BackpressureStrategy as ReferenceStrategy,
} from './baselines/reference-controller';
import { items } from './common';
import { sluice } from './sluice';
import type { BatchSink, Item } from './common';
import type {
  BackpressureMetrics,
  BackpressureOptions,
  BackpressureStrategy,
  BackpressureTransform,
  BackpressureWritable,
  WritevCallback,
  WritevChunks,
} from '../lib/index';

/**
 * The contenders. Each wires a producer to a batch sink in the way its users would.
 * `run` is the producer that honours backpressure (for streams: `pipeline` from
 * `Readable.from`); `target` exposes the contender to the workloads' own producers
 * (one that ignores `write()`, an on/off burst).
 */

export interface Options {
  batchSize: number;
  /** Adaptive batching's bounds, for the contenders that adapt (sluice-adaptive). */
  batchRange?: { min: number; max: number };
  /** The buffer bound; also the uncapped native contender's highWaterMark. Default 10,000. */
  maxBufferSize?: number;
}

/** The batch size at a moment of a run (ms since it started). */
export interface SizePoint {
  t: number;
  size: number;
}

export interface Target {
  /** Offers one item: `false` asks the producer to wait for `waitDrain()`; a promise, to await it. */
  write(item: Item): boolean | Promise<unknown>;
  waitDrain(): Promise<void>;
  /** No more items: resolves when everything accepted was delivered. */
  end(): Promise<void>;
  /** Utilization (0..1) and state, for the state trace. */
  probe?(): { utilization: number; state: string };
  /** Calls `listener` on every state change, where the contender reports them. */
  onState?(listener: (state: string) => void): void;
  /** Batch-size facts the contender reports itself (sluice's metrics). */
  metrics?(): Partial<BackpressureMetrics>;
}

export interface Contender {
  readonly name: string;
  readonly description: string;
  run?(
    count: number,
    sink: BatchSink,
    options: Options,
  ): Promise<(Partial<BackpressureMetrics> & { sizeTrace?: SizePoint[] }) | void>;
  target?(sink: BatchSink, options: Options): Target;
}

function settle(sink: BatchSink, batch: Item[], callback: (error?: Error | null) => void): void {
  // Promise.resolve: a sink may be synchronous (SQLite).
  Promise.resolve()
    .then(() => sink(batch))
    .then(() => callback(), callback);
}

/** A plain object-mode Writable with writev, buffering up to `batchSize` items (Node's own buffering). */
function nativeWritable(sink: BatchSink, options: Options): Writable {
  return new Writable({
    objectMode: true,
    highWaterMark: 2 * options.batchSize,
    writev(chunks, callback) {
      settle(
        sink,
        chunks.map((c) => c.chunk as Item),
        callback,
      );
    },
  });
}

/**
 * A native Writable whose highWaterMark is the whole buffer (maxBufferSize). `cap` undefined: writev
 * passes everything it got in one sink call (whatever piled up); a number: it sends what it got in
 * sequential calls of at most `cap` items (a fixed batch size on native buffering).
 */
function bufferedNativeWritable(sink: BatchSink, options: Options, cap: number | undefined): Writable {
  return new Writable({
    objectMode: true,
    highWaterMark: options.maxBufferSize ?? 10_000,
    writev(chunks, callback) {
      const batch = chunks.map((c) => c.chunk as Item);
      if (cap === undefined) {
        settle(sink, batch, callback);
        return;
      }
      const sendFrom = (from: number): void => {
        if (from >= batch.length) {
          callback();
          return;
        }
        settle(sink, batch.slice(from, from + cap), (error) => (error ? callback(error) : sendFrom(from + cap)));
      };
      sendFrom(0);
    },
  });
}

function streamTarget(
  stream: Writable,
  done: Promise<void>,
  probe?: () => { utilization: number; state: string },
): Target {
  return {
    write: (item) => stream.write(item),
    waitDrain: async () => {
      await once(stream, 'drain');
    },
    end: async () => {
      stream.end();
      await done;
    },
    ...(probe === undefined ? {} : { probe }),
  };
}

const native: Contender = {
  name: 'native',
  description:
    'object-mode `Writable` with `writev`, `highWaterMark` = batchSize, fed by `pipeline(Readable.from(...))`',
  async run(count, sink, options) {
    await pipeline(Readable.from(items(count)), nativeWritable(sink, options));
  },
  target(sink, options) {
    const stream = nativeWritable(sink, options);
    return streamTarget(stream, finished(stream));
  },
};

const nativeUncapped: Contender = {
  name: 'native-uncapped',
  description:
    'object-mode `Writable`, `highWaterMark` = the buffer (10,000); `writev` passes everything it got in one sink call',
  async run(count, sink, options) {
    await pipeline(Readable.from(items(count)), bufferedNativeWritable(sink, options, undefined));
  },
};

const nativeChopped: Contender = {
  name: 'native-100',
  description:
    'object-mode `Writable`, `highWaterMark` = the buffer (10,000); `writev` sends what it got in calls of 100',
  async run(count, sink, options) {
    await pipeline(Readable.from(items(count)), bufferedNativeWritable(sink, options, 100));
  },
};

const nativeIgnoring: Contender = {
  name: 'native-ignoring',
  description: 'the same `Writable`, written in a loop that ignores `write()` returning `false`',
  target: native.target,
  async run(count, sink, options) {
    const stream = nativeWritable(sink, options);
    for (const item of items(count)) stream.write(item);
    stream.end();
    await finished(stream);
  },
};

const reference: Contender = {
  name: 'reference',
  description:
    "the design doc's sketch controller (benchmarks/baselines/), strategy block, `await push()` per item, then `drain()`",
  async run(count, sink, options) {
    const controller = referenceController(sink, options, ReferenceStrategy.BLOCK);
    controller.start();
    for (const item of items(count)) await controller.push(item);
    await controller.drain();
    controller.stop();
  },
  target(sink, options) {
    // Under a burst the sketch runs with its default strategy, drop_oldest (block would poll per pending push).
    const controller = referenceController(sink, options, ReferenceStrategy.DROP_OLDEST);
    controller.start();
    return {
      write: (item) => controller.push(item),
      waitDrain: () => Promise.resolve(),
      end: async () => {
        await controller.drain();
        controller.stop();
      },
      probe: () => {
        const m = controller.getMetrics();
        return { utilization: m.bufferUtilization, state: m.state };
      },
    };
  },
};

function referenceController(
  sink: BatchSink,
  options: Options,
  strategy: ReferenceStrategy,
): ReferenceController<Item> {
  return new ReferenceController<Item>(
    async (batch) => {
      await sink(batch);
      return { success: batch.length, failed: 0, errors: [] };
    },
    { strategy, batchSize: options.batchSize },
  );
}

const forLoop: Contender = {
  name: 'for-loop',
  description: 'a plain `for` loop that builds batches of batchSize and awaits the sink (the lower bound)',
  async run(count, sink, options) {
    let batch: Item[] = [];
    for (const item of items(count)) {
      batch.push(item);
      if (batch.length === options.batchSize) {
        await sink(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await sink(batch);
  },
};

const cargo: Contender = {
  name: 'async-cargoQueue',
  description:
    "`async`'s `cargoQueue(worker, 1, batchSize)`: every item pushed at once (it has no backpressure), then `drain()`",
  async run(count, sink, options) {
    const { cargoQueue } = await import('async'); // loaded only where used: every child pays its imports
    const queue = cargoQueue<Item>(
      async (batch: Item[]) => {
        await sink(batch);
      },
      1,
      options.batchSize,
    );
    for (const item of items(count)) void queue.push(item);
    if (!queue.idle()) await queue.drain();
  },
};

const rx: Contender = {
  name: 'rxjs',
  description: '`from(iterable).pipe(bufferCount(batchSize), concatMap(sink))`',
  async run(count, sink, options) {
    const { bufferCount, concatMap, from, lastValueFrom } = await import('rxjs');
    await lastValueFrom(
      from(items(count)).pipe(
        bufferCount(options.batchSize),
        concatMap((batch) => Promise.resolve(sink(batch))),
      ),
      { defaultValue: undefined },
    );
  },
};

/** The fsync modes the disk-backed contenders run with (issue 13). */
export type DiskFsync = 'interval' | 'always';

/**
 * Log directories made by this process's disk contenders, one per stream: a fresh one per run, since
 * each run is a fresh child process. Removed by `removeTempDirs()` after the run's result is out
 * (child.ts), outside the timed part. SLUICE_BENCH_DISK_DIR picks the parent (default: the OS's temp).
 */
const tempDirs: string[] = [];

function freshTempDir(): string {
  const dir = fs.mkdtempSync(path.join(process.env.SLUICE_BENCH_DISK_DIR ?? os.tmpdir(), 'sluice-bench-disk-'));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** `sluice-<strategy>`, or with `fsync`, `sluice-disk-<fsync>`: sluice-block's settings plus a disk log. */
function sluiceContender(strategy: BackpressureStrategy, fsync?: DiskFsync): Contender {
  const make = (sink: BatchSink, options: Options) => {
    const settings: BackpressureOptions<Item> = {
      strategy,
      batchSize: options.batchSize,
      maxBufferSize: options.maxBufferSize ?? 10_000,
    };
    if (fsync !== undefined) settings.disk = { path: freshTempDir(), fsync };
    return sluice.createBackpressureStream<Item>(sink, settings);
  };
  return {
    name: fsync === undefined ? `sluice-${strategy}` : `sluice-disk-${fsync}`,
    description:
      fsync === undefined
        ? `\`createBackpressureStream(sink, { strategy: '${strategy}' })\` fed by \`pipeline(Readable.from(...))\``
        : `\`sluice-block\` with \`disk: { path: <a fresh temporary directory>, fsync: '${fsync}' }\` (JSON records, other disk options default)`,
    async run(count, sink, options) {
      const stream = make(sink, options);
      await pipeline(Readable.from(items(count)), asWritable(stream));
      return stream.getMetrics();
    },
    target(sink, options) {
      const stream = make(sink, options);
      return {
        ...streamTarget(asWritable(stream), finished(asWritable(stream)), () => ({
          utilization: stream.getMetrics().bufferUtilization,
          state: stream.state,
        })),
        metrics: () => stream.getMetrics(),
        onState: (listener) => stream.on('state', listener),
      };
    },
  };
}

/** Numbers of flush slots the pooled-sink workload sweeps with a fixed number, to show where the best one lies. */
export const SLOTS_SWEEP = [2, 4, 8, 16, 64] as const;

/** sluice block with `slots` fixed flush slots or, without a number, adaptive concurrency between 1 and 64. */
function sluiceSlots(slots: number | undefined): Contender {
  const maxConcurrentFlushes = slots ?? { min: 1, max: 64 };
  return {
    name: slots === undefined ? 'sluice-slots-adaptive' : `sluice-slots-${slots}`,
    description: `\`BlockingWritable(sink, { maxConcurrentFlushes: ${slots ?? '{ min: 1, max: 64 }'} })\``,
    async run(count, sink, options) {
      const stream = new sluice.BlockingWritable<Item>(sink, {
        batchSize: options.batchSize,
        maxBufferSize: options.maxBufferSize ?? 10_000,
        maxConcurrentFlushes,
      });
      await pipeline(Readable.from(items(count)), asWritable(stream));
      return stream.getMetrics();
    },
  };
}

/** Batch sizes the peaked-sink workload sweeps with a fixed size, to show where the best one lies. */
export const SWEEP = [100, 200, 400, 800, 1600, 3200, 6400] as const;

/** sluice block with a fixed batch size of `size` (the sweep) or, without one, adaptive batching. */
function sluiceBatching(size: number | undefined): Contender {
  return {
    name: size === undefined ? 'sluice-adaptive' : `sluice-fixed-${size}`,
    description:
      size === undefined
        ? '`BlockingWritable(sink, { batchSize: { min: 100, max: 10000 } })`: adaptive batching'
        : `\`BlockingWritable(sink, { batchSize: ${size} })\``,
    async run(count, sink, options) {
      const stream = new sluice.BlockingWritable<Item>(sink, {
        batchSize: size ?? options.batchRange ?? { min: 100, max: 10_000 },
        maxBufferSize: options.maxBufferSize ?? 10_000,
      });
      const sizes: { t: number; size: number }[] = [];
      const started = performance.now();
      const sample = setInterval(() => {
        sizes.push({ t: performance.now() - started, size: stream.getMetrics().currentBatchSize });
      }, 20);
      await pipeline(Readable.from(items(count)), asWritable(stream));
      clearInterval(sample);
      return { ...stream.getMetrics(), sizeTrace: sizes };
    },
  };
}

/**
 * The `_writev` form (issue 10): a sink written as for a plain `Writable`, in a subclass of
 * `BlockingWritable`, unwrapping its chunks as a user would. Against `sluice-block` (the flush-function
 * form) it measures the adapter: one `{ chunk, encoding }` per item, the array and the callback per batch.
 */
function writevSink(sink: BatchSink, options: Options): BackpressureWritable<Item> {
  class Sink extends sluice.BlockingWritable<Item> {
    override _writev(chunks: WritevChunks<Item>, callback: WritevCallback<Item>): void {
      // As a user writes it; Promise.resolve() also takes a synchronous sink (SQLite).
      Promise.resolve(sink(chunks.map((c) => c.chunk))).then(() => callback(), callback);
    }
  }
  return new Sink({ batchSize: options.batchSize });
}

const writev: Contender = {
  name: 'sluice-writev',
  description:
    'a `BlockingWritable` subclass with `_writev(chunks, callback)` (strategy block), fed by `pipeline(Readable.from(...))`',
  async run(count, sink, options) {
    const stream = writevSink(sink, options);
    await pipeline(Readable.from(items(count)), asWritable(stream));
    return stream.getMetrics();
  },
};

/**
 * The floor of the `_writev` form: `sluice-block` whose flush function does the work the Node shape
 * itself implies and nothing else: one `{ chunk, encoding }` object per item in a fresh array, and
 * the user's unwrapping `map()`. What `sluice-writev` costs beyond it is the adapter's (the issue
 * allows only the chunk objects).
 */
const writevFloor: Contender = {
  name: 'sluice-chunks-floor',
  description:
    '`sluice-block` whose flush function wraps each item in a `{ chunk, encoding }` object, then unwraps them with `map()` before calling the sink',
  async run(count, sink, options) {
    const stream = new sluice.BlockingWritable<Item>(
      (items) => {
        const chunks = new Array<{ chunk: Item; encoding: BufferEncoding | undefined }>(items.length);
        for (let i = 0; i < items.length; i++) chunks[i] = { chunk: items[i] as Item, encoding: undefined };
        return sink(chunks.map((c) => c.chunk));
      },
      { batchSize: options.batchSize },
    );
    await pipeline(Readable.from(items(count)), asWritable(stream));
    return stream.getMetrics();
  },
};

/**
 * sluice's streams type `write(chunk: T)`, which @types/node's `pipeline()` overloads do not
 * accept for a `T` other than string/Buffer (they want NodeJS.WritableStream); widen them here.
 */
function asWritable(stream: BackpressureWritable<Item>): Writable {
  return stream;
}

function asDuplex(stream: BackpressureTransform<Item>): Duplex {
  return stream;
}

function batchWriter(sink: BatchSink): Writable {
  return new Writable({
    objectMode: true,
    highWaterMark: 1,
    write(batch: Item[], _encoding, callback) {
      settle(sink, batch, callback);
    },
  });
}

const transform: Contender = {
  name: 'sluice-transform',
  description: "`pipeline(Readable.from(...), new BackpressureTransform({ strategy: 'block' }), batchWriter)`",
  async run(count, sink, options) {
    const duplex = new sluice.BackpressureTransform<Item>({
      strategy: sluice.BackpressureStrategy.BLOCK,
      batchSize: options.batchSize,
    });
    await pipeline(Readable.from(items(count)), asDuplex(duplex), batchWriter(sink));
    return duplex.getMetrics();
  },
  target(sink, options) {
    const duplex = new sluice.BackpressureTransform<Item>({
      strategy: sluice.BackpressureStrategy.BLOCK,
      batchSize: options.batchSize,
    });
    const done = pipeline(asDuplex(duplex), batchWriter(sink));
    return {
      ...streamTarget(asDuplex(duplex), done, () => ({
        utilization: duplex.getMetrics().bufferUtilization,
        state: duplex.state,
      })),
      metrics: () => duplex.getMetrics(),
      onState: (listener) => duplex.on('state', listener),
    };
  },
};

export const contenders: readonly Contender[] = [
  native,
  nativeUncapped,
  nativeChopped,
  nativeIgnoring,
  reference,
  forLoop,
  cargo,
  rx,
  sluiceContender(sluice.BackpressureStrategy.BLOCK),
  sluiceContender(sluice.BackpressureStrategy.BLOCK, 'interval'),
  sluiceContender(sluice.BackpressureStrategy.BLOCK, 'always'),
  writev,
  writevFloor,
  sluiceContender(sluice.BackpressureStrategy.DROP_OLDEST),
  sluiceContender(sluice.BackpressureStrategy.DROP_NEWEST),
  sluiceContender(sluice.BackpressureStrategy.SAMPLE),
  transform,
  sluiceBatching(undefined),
  sluiceSlots(undefined),
  ...SLOTS_SWEEP.map((slots) => sluiceSlots(slots)),
  ...SWEEP.map((size) => sluiceBatching(size)),
];

export function contender(name: string): Contender {
  const found = contenders.find((c) => c.name === name);
  if (found === undefined) throw new Error(`unknown contender ${name}`);
  return found;
}
