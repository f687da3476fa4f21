import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { BlockingWritable, type FlushContext } from '../../lib';
import { criticalCount } from '../../lib/engine';
import { RECORDING_PER_SLOT } from '../../lib/engine/delivery';
import { kEngine } from '../../lib/stream-shell';
import { PROPERTY_RUNS, checkProperty, propertyTimeout } from '../support/property-runner';

/**
 * The disk option's invariants, on the real file system (so fewer cases than the in-memory
 * properties: each one opens a log). A block sluice with a disk log, random bounds, a sink that
 * answers at once, a tick later or fails (retried, then dead-lettered), and a producer that honours
 * backpressure; in half the cases the stream is destroyed part way (a restart in the same process)
 * and a second one opened on the same directory:
 * - what the write callbacks accepted is a prefix of what was written (order), and the restart
 *   goes on from there;
 * - every item is delivered or dead-lettered; a durable id always comes with the same item; without a
 *   restart each id exactly once (and, with one flush slot, in order); with one, redeliveries stay
 *   within the documented bound, (1 + RECORDING_PER_SLOT) × slots × batch size;
 * - memory holds at most maxBufferSize kept or read ahead, maxBufferSize on the way to the log,
 *   and the writes waiting at the door, however small `disk.maxBytes` makes the log;
 * - the accounting identity holds at the end.
 */

const RUNS = Math.max(10, Math.round(PROPERTY_RUNS / 40));

interface Scenario {
  count: number;
  maxBufferSize: number;
  batchSize: number;
  slots: number;
  maxBytes: number;
  sink: Array<'now' | 'tick' | 'fail'>;
  restartAfter: number | null;
}

const scenarios: fc.Arbitrary<Scenario> = fc
  .record({
    count: fc.integer({ min: 0, max: 250 }),
    maxBufferSize: fc.integer({ min: 1, max: 30 }),
    batchFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    slots: fc.integer({ min: 1, max: 3 }),
    maxBytes: fc.integer({ min: 40, max: 6000 }),
    sink: fc.array(fc.constantFrom('now' as const, 'tick' as const, 'fail' as const), { minLength: 1, maxLength: 8 }),
    restartAfter: fc.option(fc.integer({ min: 0, max: 250 }), { nil: null }),
  })
  .map(({ batchFraction, ...rest }) => ({
    ...rest,
    batchSize: 1 + Math.floor(batchFraction * (rest.maxBufferSize - 1)),
  }));

interface Delivered {
  value: number;
  id: number;
}

/** Resolves on 'drain' (or 'close'), leaving no listener behind. */
function drainOf(stream: BlockingWritable<number>): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

async function scenarioHolds(scenario: Scenario): Promise<void> {
  const path = mkdtempSync(join(tmpdir(), 'sluice-disk-property-'));
  const violations: string[] = [];
  const delivered: Delivered[] = [];
  const deadLettered: number[] = [];
  let call = 0;
  // Kept or read ahead (maxBufferSize), not yet written (at most maxBufferSize), block's waiting writes.
  const memoryBound = 2 * scenario.maxBufferSize + criticalCount({ highWatermark: 0.8, ...scenario }) + 1;
  let stream: BlockingWritable<number>;
  const memory = (): number => (stream as unknown as { [kEngine]: { inMemory: number } })[kEngine].inMemory;
  const check = (where: string): void => {
    const held = memory();
    if (held > memoryBound) violations.push(`${held} items in memory ${where} (bound ${memoryBound})`);
  };
  const open = (): BlockingWritable<number> =>
    new BlockingWritable<number>(
      async (items: number[], { ids }: FlushContext) => {
        check('at a sink call');
        const step = scenario.sink[call++ % scenario.sink.length];
        if (step === 'tick') await new Promise((resolve) => setImmediate(resolve));
        if (step === 'fail') throw new Error('sink failed');
        items.forEach((value, i) => delivered.push({ value, id: (ids as readonly number[])[i] as number }));
      },
      {
        maxBufferSize: scenario.maxBufferSize,
        batchSize: scenario.batchSize,
        maxConcurrentFlushes: scenario.slots,
        retry: { maxRetries: 2, initialDelayMs: 0, maxDelayMs: 1 },
        onDeadLetter: (items) => void deadLettered.push(...items),
        disk: { path, maxBytes: scenario.maxBytes, fsync: 'never', segmentBytes: 256 },
      },
    );
  try {
    stream = open();
    let accepted = 0;
    let next = 0;
    let restarted = false;
    while (next < scenario.count) {
      const value = next++;
      const ok = stream.write(value, (error, wasAccepted) => {
        if (!error && wasAccepted) {
          if (value !== accepted) violations.push(`accepted ${value} after ${accepted} others: out of order`);
          accepted++;
        }
      });
      check('after a write');
      if (!restarted && scenario.restartAfter !== null && accepted >= scenario.restartAfter) {
        restarted = true;
        stream.destroy();
        await once(stream, 'close');
        next = accepted; // what was not accepted is written again
        stream = open();
      } else if (!ok) await drainOf(stream);
    }
    stream.end();
    await once(stream, 'finish');
    (stream as unknown as { [kEngine]: { assertBalanced(): void } })[kEngine].assertBalanced();

    const valueOfId = new Map<number, number>();
    const times = new Map<number, number>();
    for (const { value, id } of delivered) {
      const known = valueOfId.get(id);
      if (known !== undefined && known !== value) violations.push(`id ${id} came with ${known} and with ${value}`);
      valueOfId.set(id, value);
      times.set(id, (times.get(id) ?? 0) + 1);
    }
    const seen = new Set([...delivered.map((d) => d.value), ...deadLettered]);
    for (let value = 0; value < scenario.count; value++)
      if (!seen.has(value)) violations.push(`${value} was neither delivered nor dead-lettered`);
    const redelivered = [...times.values()].reduce((sum, n) => sum + n - 1, 0);
    if (!restarted && redelivered > 0) violations.push(`${redelivered} redeliveries without a restart`);
    // A batch in a slot, and up to RECORDING_PER_SLOT per slot whose deliveries were still being recorded.
    const bound = (1 + RECORDING_PER_SLOT) * scenario.slots * scenario.batchSize;
    if (restarted && redelivered > bound)
      violations.push(`${redelivered} redeliveries after one restart (bound ${bound})`);
    if (!restarted && scenario.slots === 1 && deadLettered.length === 0) {
      const values = delivered.map((d) => d.value);
      if (values.some((v, i) => i > 0 && v < (values[i - 1] as number)))
        violations.push('one flush slot delivered out of order');
    }
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
  if (violations.length > 0) throw new Error(violations.slice(0, 5).join('\n'));
}

test(
  'property: disk-backed block keeps order, loses nothing, bounds memory and redeliveries, balances its books',
  async () => {
    await checkProperty(scenarios, scenarioHolds, { runs: RUNS });
  },
  propertyTimeout(RUNS, 500),
);
