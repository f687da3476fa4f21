import { DropOldestWritable } from '../../lib';
import type { DropReason } from '../../lib';
import { TestSink, advance, settle, useStreamFakeTimers } from '../support/test-sink';
import { expectBalanced } from './helpers';

/**
 * Issue 9, defect 4: admission was not re-entrant. A 'drop' listener that writes to the same
 * stream during a drop_oldest eviction overwrote the engine's "size of the item being offered":
 * 5,200 real bytes were held while 822 were counted, against a bound of 1,000. Whatever listeners
 * do synchronously (write, end, destroy), bufferBytes is the sum of the sizes of the held items
 * and stays within maxBufferBytes.
 */

beforeEach(useStreamFakeTimers);
afterEach(() => jest.useRealTimers());

interface Item {
  id: number;
  bytes: number;
  /** Written by the 'drop' listener. */
  echo: boolean;
}

const MAX_BYTES = 1000;
const OUTER_SIZES = [100, 150, 80, 120, 230, 60];
const ECHO_BYTES = 5;

describe('defect 4: admission is re-entrant', () => {
  test("defect 4: drop_oldest with a byte bound and a 'drop' listener that writes: bufferBytes is the true sum, within the bound, after every write", async () => {
    // The sink is never reached while writing (one big partial batch, fake time stands still): every
    // item written stays held until it is dropped, so the items held are known from the outside.
    const sink = new TestSink<Item>();
    const stream = new DropOldestWritable<Item>(sink.flush, {
      maxBufferSize: 1000,
      batchSize: 1000,
      maxBufferBytes: MAX_BYTES,
      sizeOf: (item) => item.bytes,
    });
    const held = new Map<number, Item>();
    let nextId = 0;
    const write = (bytes: number, echo: boolean): boolean => {
      const item = { id: nextId++, bytes, echo };
      held.set(item.id, item);
      return stream.write(item);
    };
    let echoes = 0;
    stream.on('drop', (item: Item, _reason: DropReason) => {
      held.delete(item.id);
      // Every eviction of a producer's item writes a small item back, from inside the eviction.
      if (!item.echo) {
        echoes++;
        write(ECHO_BYTES, true);
      }
    });
    const heldBytes = (): number => [...held.values()].reduce((sum, item) => sum + item.bytes, 0);
    for (let i = 0; i < 60; i++) {
      write(OUTER_SIZES[i % OUTER_SIZES.length] as number, false);
      const now = stream.getMetrics();
      expect(now.bufferBytes).toBeLessThanOrEqual(MAX_BYTES);
      expect(now.bufferSize).toBeLessThanOrEqual(1000);
      await settle(2); // events deferred out of write() (streamx-style) are in by now
      const m = stream.getMetrics();
      expect({ bytes: m.bufferBytes, count: m.bufferSize }).toEqual({ bytes: heldBytes(), count: held.size });
      expect(heldBytes()).toBeLessThanOrEqual(MAX_BYTES);
      expectBalanced(m);
    }
    expect(echoes).toBeGreaterThan(10); // the scenario did re-enter write() many times
    // Everything still held is delivered in the end: exactly the items the books say are held.
    const finished = jest.fn();
    stream.on('finish', finished);
    stream.end();
    await advance(500, 10);
    expect(finished).toHaveBeenCalled();
    expect(sink.delivered.map((item) => item.id).sort((a, b) => a - b)).toEqual([...held.keys()].sort((a, b) => a - b));
    expect(stream.getMetrics()).toMatchObject({ bufferBytes: 0, bufferSize: 0 });
  });

  test("defect 4: a 'drop' listener that destroys the stream mid-eviction: nothing stays held, the books balance", async () => {
    const sink = new TestSink<number>();
    const deadLettered: number[] = [];
    const stream = new DropOldestWritable<number>(sink.flush, {
      maxBufferSize: 100,
      batchSize: 100,
      maxBufferBytes: 40,
      sizeOf: () => 10,
      onDeadLetter: (items) => void deadLettered.push(...items),
    });
    const drops: number[] = [];
    stream.on('drop', (item: number) => {
      drops.push(item);
      stream.destroy();
    });
    const closed = jest.fn();
    stream.on('close', closed);
    for (const id of [0, 1, 2, 3]) expect(stream.write(id)).toBe(true);
    stream.write(4); // 50 bytes: evicts 0, whose 'drop' listener destroys the stream
    await settle();
    expect(closed).toHaveBeenCalled();
    expect(drops[0]).toBe(0);
    const m = stream.getMetrics();
    expect(m).toMatchObject({ bufferSize: 0, bufferBytes: 0, waitingWrites: 0, eventsOffered: 5, eventsFlushed: 0 });
    expectBalanced(m);
    // Every offered item is accounted for exactly once: dropped, or handed to the dead-letter path.
    expect([...drops, ...deadLettered].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(m.deadLettered).toBe(deadLettered.length);
    expect(m.eventsDropped).toBe(drops.length);
  });
});
