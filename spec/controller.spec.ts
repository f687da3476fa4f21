import { BackpressureController, BackpressureStrategy, BlockingWritable } from '../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from './support/test-sink';

interface Event {
  id: number;
}

interface Db {
  batchInsert(table: string, items: unknown[]): Promise<{ inserted: number }>;
}

/** The usage example of backpressure-design.txt, verbatim (prettier-ignore keeps it so). */
// prettier-ignore
async function designDocExample(db: Db, event: unknown): Promise<BackpressureController<unknown>> {
// Create controller
const controller = new BackpressureController(
  async (items) => {
    const result = await db.batchInsert('events', items);
    return { success: result.inserted, failed: 0, errors: [] };
  },
  {
    strategy: BackpressureStrategy.DROP_OLDEST,
    maxBufferSize: 10000,
    batchSize: 100,
  }
);

// Start processing
controller.start();

// Push events
await controller.push(event);

// On shutdown
await controller.drain();
controller.stop();
  return controller;
}

describe('BackpressureController (the design doc facade)', () => {
  test("the design doc's usage example runs unchanged", async () => {
    const inserted: unknown[] = [];
    const db = {
      async batchInsert(_table: string, items: unknown[]): Promise<{ inserted: number }> {
        inserted.push(...items);
        return { inserted: items.length };
      },
    };
    const event = { type: 'click' };

    const controller = await designDocExample(db, event);

    expect(inserted).toEqual([event]);
    expect(controller.getMetrics()).toMatchObject({
      eventsAccepted: 1,
      eventsFlushed: 1,
      eventsDropped: 0,
      bufferSize: 0,
    });
  });

  describe('with fake timers', () => {
    beforeEach(useStreamFakeTimers);
    afterEach(() => jest.useRealTimers());

    test('start() begins interval-driven flushing and stop() halts it without discarding', async () => {
      const sink = new TestSink<Event>();
      const controller = new BackpressureController(sink.flush, { batchSize: 10, minFlushIntervalMs: 100 });
      for (let id = 0; id < 25; id++) await controller.push({ id });
      await advance(1000, 50);
      expect(sink.calls).toEqual([]); // not started
      controller.start();
      await advance(1, 1);
      // full batches at once, and the partial one too: its oldest item has waited longer than the interval
      expect(sink.calls.map((c) => c.length)).toEqual([10, 10, 5]);
      await controller.push({ id: 25 });
      await advance(99, 10);
      expect(sink.calls).toHaveLength(3);
      await advance(1, 1);
      expect(sink.calls.map((c) => c.length)).toEqual([10, 10, 5, 1]);
      controller.stop();
      for (let id = 26; id < 40; id++) await controller.push({ id });
      await advance(1000, 50);
      expect(sink.delivered).toHaveLength(26);
      expect(controller.getMetrics().bufferSize).toBe(14);
      await controller.drain();
      expect(sink.delivered.map((e) => e.id)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    });

    test('push() resolves false for a dropped item, and block waits for room up to maxBlockTimeMs', async () => {
      const sink = new TestSink<Event>().otherwise({ kind: 'manual' });
      const controller = new BackpressureController(sink.flush, {
        strategy: BackpressureStrategy.BLOCK,
        maxBufferSize: 2,
        batchSize: 2,
        maxBlockTimeMs: 1000,
      });
      controller.start();
      controller.stream.on('drop', () => undefined);
      expect(await controller.push({ id: 0 })).toBe(true);
      expect(await controller.push({ id: 1 })).toBe(true);
      const third = controller.push({ id: 2 });
      const fourth = controller.push({ id: 3 });
      await advance(500, 50);
      sink.resolveNext(); // room for 2 and 3
      await expect(third).resolves.toBe(true);
      await expect(fourth).resolves.toBe(true);
      const fifth = controller.push({ id: 4 });
      await advance(1000, 50);
      await expect(fifth).resolves.toBe(false); // timed out
      expect(controller.getMetrics().droppedByReason.timeout).toBe(1);
    });
  });

  test('once the stream fails, push() and drain() reject with its error', async () => {
    const controller = new BackpressureController<Event>(
      async () => {
        throw new Error('sink down');
      },
      { batchSize: 1, retry: { maxRetries: 0 } },
    );
    controller.start();
    await controller.push({ id: 1 });
    await settle();
    await expect(controller.drain()).rejects.toMatchObject({ code: 'ERR_FLUSH_FAILED', items: [{ id: 1 }] });
    await expect(controller.push({ id: 2 })).rejects.toMatchObject({ code: 'ERR_FLUSH_FAILED' });
  });

  test('stream is the strategy stream, usable with pipe()', () => {
    const controller = new BackpressureController(async () => undefined, { strategy: BackpressureStrategy.BLOCK });
    expect(controller.stream).toBeInstanceOf(BlockingWritable);
  });
});
