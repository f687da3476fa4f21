import { chmodSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import {
  BackpressureState,
  BackpressureTransform,
  BlockingWritable,
  DiskError,
  DropNewestWritable,
  type FlushContext,
  type WritevCallback,
  type WritevChunks,
} from '../../lib';
import { type DiskFs, nodeFs } from '../../lib/disk/fs';
import { kEngine } from '../../lib/stream-shell';
import { cleanup, osError, tempDir } from './support/helpers';

/**
 * The `disk` option through the strategy classes: the log under the buffer (lib/engine/spool.ts).
 * Crash safety with real SIGKILLs is in sluice-crash.spec.ts.
 */

afterEach(cleanup);

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

/** A sink that records what it got, with the durable ids, and can be held. */
function recorder<T>() {
  const items: T[] = [];
  const ids: number[] = [];
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  return {
    items,
    ids,
    hold(): void {
      gate = new Promise((resolve) => (open = resolve));
    },
    release(): void {
      open?.();
      gate = undefined;
    },
    flush: async (batch: T[], context: FlushContext): Promise<void> => {
      if (gate !== undefined) await gate;
      items.push(...batch);
      ids.push(...(context.ids ?? []));
    },
  };
}

/** Writes `items` and resolves once every write callback ran (accepted or not). */
function writeAll<T>(sink: BlockingWritable<T> | DropNewestWritable<T>, items: T[]): Promise<boolean[]> {
  return Promise.all(
    items.map(
      (item) =>
        new Promise<boolean>((resolve, reject) =>
          sink.write(item, (error, accepted) => (error ? reject(error) : resolve(accepted === true))),
        ),
    ),
  );
}

/** Writes `items` as a producer that honours backpressure; resolves once every write callback ran. */
async function writeHonouring<T>(sink: BlockingWritable<T>, items: T[]): Promise<boolean[]> {
  const results: Promise<boolean>[] = [];
  for (const item of items) {
    let ok = true;
    results.push(
      new Promise<boolean>((resolve, reject) => {
        ok = sink.write(item, (error, accepted) => (error ? reject(error) : resolve(accepted === true)));
      }),
    );
    if (!ok) await once(sink, 'drain');
  }
  return Promise.all(results);
}

/** The real file system, except that writes to segment files fail with ENOSPC while `full`. */
class FullableFs implements DiskFs {
  full = false;
  readonly #names = new Map<number, string>();
  open = async (path: string, flags: string): Promise<number> => {
    const fd = await nodeFs.open(path, flags);
    this.#names.set(fd, basename(path));
    return fd;
  };
  close = (fd: number): Promise<void> => (this.#names.delete(fd), nodeFs.close(fd));
  write = async (fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> => {
    if (this.full && (this.#names.get(fd) ?? '').endsWith('.seg')) throw osError('ENOSPC');
    return nodeFs.write(fd, buffer, offset, length, position);
  };
  read = nodeFs.read;
  fsync = nodeFs.fsync;
  ftruncate = nodeFs.ftruncate;
  size = nodeFs.size;
  readdir = nodeFs.readdir;
  mkdir = nodeFs.mkdir;
  readFile = nodeFs.readFile;
  rename = nodeFs.rename;
  unlink = nodeFs.unlink;
}

describe('disk: delivery through the log', () => {
  test('every item is delivered once, in order, with ascending durable ids, also when memory overflows to disk', async () => {
    const path = tempDir();
    const sink = recorder<number>();
    // 100 items of memory for 3,000: most are read back from the log.
    const stream = new BlockingWritable<number>(sink.flush, { maxBufferSize: 100, batchSize: 10, disk: { path } });
    await pipeline(Readable.from(range(3000)), stream);
    expect(sink.items).toEqual(range(3000));
    expect(sink.ids).toEqual(range(3000, 1));
    const metrics = stream.getMetrics();
    expect(metrics).toMatchObject({ eventsFlushed: 3000, bufferSize: 0, bufferBytes: 0, replayed: 0 });
  });

  test('a finished stream leaves nothing to replay, and its lock is released', async () => {
    const path = tempDir();
    await pipeline(Readable.from(range(500)), new BlockingWritable<number>(async () => {}, { disk: { path } }));
    const again = recorder<number>();
    const replays: number[] = [];
    const second = new BlockingWritable<number>(again.flush, { disk: { path } });
    second.on('replay', (count) => replays.push(count));
    await pipeline(Readable.from([1000]), second);
    expect(again.items).toEqual([1000]);
    expect(replays).toEqual([]);
    expect(second.getMetrics().replayed).toBe(0);
  });

  test('the write callback runs only once the item is in the log (its append resolved)', async () => {
    const path = tempDir();
    let segmentWrites = 0;
    const fs: DiskFs = {
      ...nodeFs,
      write: async (fd, buffer, offset, length, position) => {
        const written = await nodeFs.write(fd, buffer, offset, length, position);
        segmentWrites++;
        return written;
      },
    };
    const stream = new BlockingWritable<string>(async () => {}, { disk: { path, fs } as never });
    const before = segmentWrites;
    await new Promise<void>((resolve, reject) => stream.write('a', (error) => (error ? reject(error) : resolve())));
    expect(segmentWrites).toBeGreaterThan(before);
    stream.end();
    await once(stream, 'finish');
  });

  test('durable ids reach _writev on the chunks, in step with them', async () => {
    const path = tempDir();
    const seen: Array<[string, number]> = [];
    class Sink extends BlockingWritable<string> {
      override _writev(chunks: WritevChunks<string>, callback: WritevCallback<string>): void {
        chunks.forEach((c, i) => seen.push([c.chunk, chunks.ids?.[i] as number]));
        callback();
      }
    }
    await pipeline(Readable.from(['a', 'b', 'c']), new Sink({ batchSize: 2, disk: { path } }));
    expect(seen).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ]);
  });

  test('Buffers survive the round trip through the log (default codec)', async () => {
    const path = tempDir();
    const sink = recorder<{ body: Buffer }>();
    // maxBufferSize 1: the second item is read back from disk.
    const stream = new BlockingWritable<{ body: Buffer }>(sink.flush, {
      maxBufferSize: 1,
      batchSize: 1,
      disk: { path },
    });
    await pipeline(Readable.from([{ body: Buffer.from([1, 2]) }, { body: Buffer.from([3]) }]), stream);
    expect(sink.items.map((item) => Buffer.isBuffer(item.body) && [...item.body])).toEqual([[1, 2], [3]]);
  });

  test("a user's serialize/deserialize are used", async () => {
    const path = tempDir();
    const sink = recorder<number>();
    const stream = new BlockingWritable<number>(sink.flush, {
      maxBufferSize: 2,
      batchSize: 1,
      disk: { path, serialize: (n) => `#${n}`, deserialize: (bytes) => Number(bytes.toString().slice(1)) },
    });
    await pipeline(Readable.from(range(10)), stream);
    expect(sink.items).toEqual(range(10));
  });
});

describe('disk: the Transform', () => {
  test('batches come out in order through the log; what was not read downstream is replayed by the next one', async () => {
    const path = tempDir();
    const options = { strategy: 'block' as const, batchSize: 4, maxBufferSize: 4, disk: { path } };
    const first = new BackpressureTransform<number>(options);
    for (const n of range(10)) await writeAll(first as unknown as BlockingWritable<number>, [n]);
    // Nobody reads: at most the readable side's batches were pushed; the rest stay in the log.
    first.destroy();
    await once(first, 'close');
    const second = new BackpressureTransform<number>(options);
    const batches: number[][] = [];
    const reading = (async () => {
      for await (const batch of second) batches.push(batch);
    })();
    second.end();
    await reading;
    // The first one pushed its first batch, but nobody read it: a push the readable side did not take
    // is not a delivery, so everything was still in the log.
    expect(batches.flat()).toEqual(range(10));
    expect(second.getMetrics().replayed).toBe(10);
  });
});

describe('disk: replay after a restart', () => {
  test('undelivered items are replayed first, in order, with the same ids, before anything new', async () => {
    const path = tempDir();
    const first = recorder<number>();
    first.hold();
    const stream = new BlockingWritable<number>(first.flush, { maxBufferSize: 10, batchSize: 5, disk: { path } });
    await writeHonouring(stream, range(50));
    stream.destroy();
    await once(stream, 'close');
    expect(first.items).toEqual([]);

    const second = recorder<number>();
    const replays: number[] = [];
    const next = new BlockingWritable<number>(second.flush, { maxBufferSize: 10, batchSize: 5, disk: { path } });
    next.on('replay', (count) => replays.push(count));
    await pipeline(Readable.from(range(5, 100)), next);
    expect(replays).toEqual([50]);
    expect(second.items).toEqual([...range(50), ...range(5, 100)]);
    expect(second.ids.slice(0, 50)).toEqual(range(50, 1));
    expect(next.getMetrics()).toMatchObject({ replayed: 50, eventsOffered: 55, eventsFlushed: 55 });
  });

  test('a destroy() keeps what is in the log: no dead letters, no warning of discarded items', async () => {
    const path = tempDir();
    const sink = recorder<number>();
    sink.hold();
    const deadLetters: number[][] = [];
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const stream = new BlockingWritable<number>(sink.flush, {
        disk: { path },
        onDeadLetter: (items) => void deadLetters.push(items),
      });
      await writeAll(stream, range(20));
      stream.destroy();
      await once(stream, 'close');
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(deadLetters).toEqual([]);
    expect(warnings.filter((w) => /discard|neither delivered/.test(w.message))).toEqual([]);
  });

  test('a destroy() while items are still on their way to the log keeps the books balanced', async () => {
    const path = tempDir();
    const stream = new BlockingWritable<number>(async () => {}, { disk: { path } });
    // Accepted, not yet appended (the log is still opening): destroy() takes them as lost.
    for (const n of range(5)) stream.write(n, () => undefined);
    stream.destroy();
    await once(stream, 'close');
    expect(stream.getMetrics()).toMatchObject({ eventsOffered: 5, eventsAccepted: 5, deadLettered: 5 });
    (stream as unknown as { [kEngine]: { assertBalanced(): void } })[kEngine].assertBalanced();
  });

  test('shutdown() at its deadline resolves what memory held, and it stays in the log for the next run', async () => {
    const path = tempDir();
    const sink = recorder<number>();
    sink.hold();
    const stream = new BlockingWritable<number>(sink.flush, { batchSize: 5, disk: { path } });
    await writeAll(stream, range(12));
    const { undelivered } = await stream.shutdown({ timeoutMs: 10 });
    expect([...undelivered].sort((a, b) => a - b)).toEqual(range(12));
    await once(stream, 'close');
    const next = recorder<number>();
    await pipeline(Readable.from([]), new BlockingWritable<number>(next.flush, { disk: { path } }));
    expect(next.items).toEqual(range(12));
  });
});

describe('disk: states follow the log', () => {
  test('utilization is record bytes over maxBytes; block says wait at critical and drains', async () => {
    const path = tempDir();
    const sink = recorder<string>();
    sink.hold();
    // Each record: 16 bytes of header + '"xxxxxxxx"' (10 bytes) = 26 bytes; maxBytes 260 = 10 records.
    // batchSize 5: up to 10 items may wait to be written, so the 8 writes below are not held back by the disk.
    const stream = new BlockingWritable<string>(sink.flush, {
      maxBufferSize: 10,
      batchSize: 5,
      disk: { path, maxBytes: 260 },
    });
    const states: BackpressureState[] = [];
    stream.on('state', (next) => states.push(next));
    const returns: boolean[] = [];
    for (let i = 0; i < 8; i++) returns.push(stream.write('xxxxxxxx'));
    // highWatermark 0.8: the 8th record makes 208 / 260 = 0.8.
    expect(returns).toEqual([true, true, true, true, true, true, true, false]);
    expect(stream.getMetrics().bufferBytes).toBe(8 * 26);
    expect(stream.getMetrics().bufferUtilization).toBeCloseTo(0.8);
    expect(states).toEqual([BackpressureState.ELEVATED, BackpressureState.CRITICAL]);
    const drained = once(stream, 'drain');
    sink.release();
    await drained;
    stream.end();
    await once(stream, 'finish');
    expect(sink.items).toHaveLength(8);
  });
});

describe('disk: a producer that outruns the disk', () => {
  test('block: write() returns false once two batches (at most maxBufferSize) wait to be written; drain when they are; nothing dropped', async () => {
    const path = tempDir();
    const sink = recorder<number>();
    const stream = new BlockingWritable<number>(sink.flush, { maxBufferSize: 5, batchSize: 5, disk: { path } });
    const engine = (stream as unknown as { [kEngine]: { inMemory: number } })[kEngine];
    const returns = range(5).map((n) => stream.write(n));
    expect(returns).toEqual([true, true, true, true, false]);
    // A write after false waits at the door instead of piling up in memory.
    stream.write(5);
    expect(engine.inMemory).toBe(6);
    await once(stream, 'drain');
    stream.end();
    await once(stream, 'finish');
    expect(sink.items).toEqual(range(6));
    expect(stream.getMetrics().eventsDropped).toBe(0);
  });

  test('a stalled sink: memory keeps at most maxBufferSize written items (queued or in flight); the rest waits on disk and comes back in order', async () => {
    const path = tempDir();
    const sink = recorder<number>();
    sink.hold();
    const stream = new BlockingWritable<number>(sink.flush, { maxBufferSize: 10, batchSize: 5, disk: { path } });
    const engine = (stream as unknown as { [kEngine]: { inMemory: number } })[kEngine];
    expect(await writeHonouring(stream, range(40))).toEqual(range(40).map(() => true));
    // Every item is in the log (nothing waits to be written): 5 in the held flush and 5 queued; 30 on disk only.
    expect(engine.inMemory).toBe(10);
    sink.release();
    stream.end();
    await once(stream, 'finish');
    expect(sink.items).toEqual(range(40));
  });

  test("drop_newest: the incoming item is dropped ('rejected') while maxBufferSize items wait to be written", async () => {
    const path = tempDir();
    const sink = recorder<number>();
    const stream = new DropNewestWritable<number>(sink.flush, { maxBufferSize: 3, batchSize: 3, disk: { path } });
    const accepted = writeAll(stream, range(5));
    expect(await accepted).toEqual([true, true, true, false, false]);
    stream.end();
    await once(stream, 'finish');
    expect(sink.items).toEqual(range(3));
    expect(stream.getMetrics().droppedByReason.rejected).toBe(2);
  });
});

describe('disk: a full disk', () => {
  test('block keeps the items, retries in order, says so once, and loses nothing', async () => {
    const path = tempDir();
    const fs = new FullableFs();
    const sink = recorder<number>();
    const stream = new BlockingWritable<number>(sink.flush, { batchSize: 5, disk: { path, fs } as never });
    await writeAll(stream, [0, 1]);
    fs.full = true;
    const fullEvents: Error[] = [];
    stream.on('diskfull', (error) => fullEvents.push(error));
    const accepted = writeAll(stream, range(20, 2));
    await once(stream, 'diskfull');
    expect((fullEvents[0] as DiskError).code).toBe('ERR_DISK_FULL');
    fs.full = false;
    expect(await accepted).toEqual(range(20).map(() => true));
    stream.end();
    await once(stream, 'finish');
    expect(sink.items).toEqual(range(22));
    expect(fullEvents).toHaveLength(1);
    expect(stream.getMetrics().eventsDropped).toBe(0);
  });

  test("drop_newest drops what it cannot append with reason 'disk_full': callback not accepted, counted", async () => {
    const path = tempDir();
    const fs = new FullableFs();
    const sink = recorder<number>();
    const stream = new DropNewestWritable<number>(sink.flush, { batchSize: 5, disk: { path, fs } as never });
    await writeAll(stream, [0]);
    fs.full = true;
    const drops: Array<[number, string]> = [];
    stream.on('drop', (item, reason) => drops.push([item, reason]));
    expect(await writeAll(stream, [1, 2, 3])).toEqual([false, false, false]);
    fs.full = false;
    expect(await writeAll(stream, [4])).toEqual([true]);
    stream.end();
    await once(stream, 'finish');
    expect(drops).toEqual([
      [1, 'disk_full'],
      [2, 'disk_full'],
      [3, 'disk_full'],
    ]);
    expect(sink.items).toEqual([0, 4]);
    expect(stream.getMetrics()).toMatchObject({ eventsOffered: 5, eventsFlushed: 2, eventsDropped: 3 });
    expect(stream.getMetrics().droppedByReason.disk_full).toBe(3);
  });
});

describe('disk: bad input', () => {
  test('an item that cannot be serialized is refused at write() with ERR_DISK_UNSERIALIZABLE; the stream goes on', async () => {
    const path = tempDir();
    const sink = recorder<unknown>();
    const stream = new BlockingWritable<unknown>(sink.flush, { disk: { path } });
    expect(() => stream.write({ n: 1n })).toThrow(expect.objectContaining({ code: 'ERR_DISK_UNSERIALIZABLE' }));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => stream.write(cyclic)).toThrow(/cannot be stored in the disk log/);
    await writeAll(stream, [{ n: 2 }]);
    stream.end();
    await once(stream, 'finish');
    expect(sink.items).toEqual([{ n: 2 }]);
    expect(stream.getMetrics().eventsOffered).toBe(1);
  });

  test('a record that deserialize rejects fails the stream with ERR_DISK_UNDECODABLE, and stays in the log', async () => {
    const path = tempDir();
    const sink = recorder<string>();
    sink.hold();
    const disk = {
      path,
      serialize: (item: string) => item,
      deserialize: (bytes: Buffer) => {
        if (bytes.toString() === 'bad') throw new Error('not a known format');
        return bytes.toString();
      },
    };
    // maxBufferSize 1 and a held sink: memory keeps two ('a' in flight, 'b'); 'bad' and 'c' are read back.
    const stream = new BlockingWritable<string>(sink.flush, { maxBufferSize: 1, batchSize: 1, disk });
    await writeHonouring(stream, ['a', 'b', 'bad', 'c']);
    const failed = once(stream, 'error');
    // 'close' follows 'error' in the same tick: listen before.
    const closed = new Promise((resolve) => stream.on('close', resolve));
    sink.release();
    const [error] = (await failed) as [DiskError];
    expect(error).toMatchObject({ code: 'ERR_DISK_UNDECODABLE', message: expect.stringContaining('Record 3') });
    await closed;
    expect(sink.items).toEqual(['a', 'b']);
    // Still there: a deserialize that reads it delivers it.
    const next = recorder<string>();
    const fixed = { ...disk, deserialize: (bytes: Buffer) => bytes.toString() };
    await pipeline(Readable.from([]), new BlockingWritable<string>(next.flush, { disk: fixed }));
    expect(next.items).toEqual(['bad', 'c']);
  });

  test('a second sluice on the same path gets ERR_DISK_LOCKED at construction, naming the holder', async () => {
    const path = tempDir();
    const first = new BlockingWritable<number>(async () => {}, { disk: { path } });
    // The first one's lock is taken asynchronously: wait until it is on disk.
    await writeAll(first, [1]);
    expect(() => new BlockingWritable<number>(async () => {}, { disk: { path } })).toThrow(
      expect.objectContaining({ code: 'ERR_DISK_LOCKED', message: expect.stringContaining(`process ${process.pid}`) }),
    );
    first.end();
    await once(first, 'finish');
    // Released at 'finish': the path may be opened again.
    const second = new BlockingWritable<number>(async () => {}, { disk: { path } });
    second.end();
    await once(second, 'finish');
  });

  test('a path that cannot be a directory, or a read-only one, is ERR_DISK_UNUSABLE at construction', () => {
    const dir = tempDir();
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    expect(() => new BlockingWritable<number>(async () => {}, { disk: { path: join(file, 'queue') } })).toThrow(
      expect.objectContaining({ code: 'ERR_DISK_UNUSABLE' }),
    );
    if (process.getuid?.() === 0) return; // root writes anywhere
    const readOnly = tempDir();
    chmodSync(readOnly, 0o500);
    expect(() => new BlockingWritable<number>(async () => {}, { disk: { path: readOnly } })).toThrow(
      expect.objectContaining({ code: 'ERR_DISK_UNUSABLE' }),
    );
    chmodSync(readOnly, 0o700);
  });

  test.each([
    [{ disk: 'queue' }, 'ERR_INVALID_ARG_TYPE', /"disk"/],
    [{ disk: {} }, 'ERR_INVALID_ARG_TYPE', /"disk.path"/],
    [{ disk: { path: 'q', maxBytes: 0 } }, 'ERR_OUT_OF_RANGE', /"disk.maxBytes"/],
    [{ disk: { path: 'q', maxBytes: '1GB' } }, 'ERR_INVALID_ARG_TYPE', /"disk.maxBytes"/],
    [{ disk: { path: 'q', fsync: 'sometimes' } }, 'ERR_INVALID_ARG_VALUE', /"disk.fsync"/],
    [{ disk: { path: 'q', serialize: 'json' } }, 'ERR_INVALID_ARG_TYPE', /"disk.serialize"/],
    [{ disk: { path: 'q', maxbytes: 10 } }, 'ERR_INVALID_ARG_VALUE', /"disk.maxbytes" is not a disk option/],
  ])('bad disk option %j: %s', (options, code, message) => {
    const make = (): unknown => new BlockingWritable<number>(async () => {}, options as never);
    expect(make).toThrow(expect.objectContaining({ code }));
    expect(make).toThrow(message);
  });

  test('nothing is left in the directory but the log after a clean finish', async () => {
    const path = tempDir();
    await pipeline(Readable.from(range(10)), new BlockingWritable<number>(async () => {}, { disk: { path } }));
    expect(readdirSync(path).filter((name) => !/\.seg$|^acks$/.test(name))).toEqual([]);
  });
});
