import { BlockingWritable } from '../../lib';
import { Ledger } from '../../lib/engine/ledger';
import { kEngine } from '../../lib/stream-shell';
import type { SluiceStream } from '../../lib/stream-shell';
import { TestSink, settle, useStreamFakeTimers } from '../support/test-sink';

/**
 * Two internal parts that no public-API spec reaches in-process (docs/quality.md):
 * the ledger's own identity check (the property tests check the identity through
 * getMetrics(); this is the check an engine can make of itself) and the exit
 * watch (spec/regressions/exit-warning.spec.ts proves it in a child process,
 * where a mutant is out of Stryker's sight).
 */

/** The process's 'exit' listeners before any sluice of this file was made (the watch installs its own with the first). */
const exitListenersBefore = new Set(process.listeners('exit'));

describe('Ledger.assertBalanced(): offered = delivered + dead-lettered + dropped + held + waiting', () => {
  /** A ledger that went through every transition once: offered 9, delivered 2, dead-lettered 1, dropped 3, held 2, waiting 1. */
  function busyLedger(): Ledger {
    const ledger = new Ledger();
    ledger.offered = 9;
    for (let i = 0; i < 6; i++) ledger.accept(2); // held 6, 12 bytes
    ledger.acceptEvicted(); // accepted 7, dropped 1 (evicted)
    ledger.evict(2); // held 5, 10 bytes
    ledger.drop('evicted'); // dropped 2
    ledger.drop('rejected'); // dropped 3: an item never accepted
    ledger.cut(4); // in flight 4
    ledger.deliver(2, 4); // held 3, 6 bytes, in flight 2
    ledger.deadLetter(1, 2); // held 2, 4 bytes, in flight 1
    return ledger;
  }

  test('a ledger whose books add up passes, with the waiting writes counted', () => {
    const ledger = busyLedger();
    expect([ledger.delivered, ledger.deadLettered, ledger.dropped, ledger.held, ledger.heldBytes]).toEqual([
      2, 1, 3, 2, 4,
    ]);
    expect(ledger.inFlight).toBe(1);
    expect(() => ledger.assertBalanced(1)).not.toThrow();
  });

  test('an empty ledger is balanced', () => {
    expect(() => new Ledger().assertBalanced(0)).not.toThrow();
  });

  test.each([
    ['one more offered than accounted for', (l: Ledger) => l.offered++, 1],
    ['one fewer offered than accounted for', (l: Ledger) => l.offered--, 1],
    ['a waiting write too many', () => undefined, 2],
    ['a waiting write too few', () => undefined, 0],
  ])('%s: throws', (_name, unbalance, waiting) => {
    const ledger = busyLedger();
    unbalance(ledger);
    expect(() => ledger.assertBalanced(waiting)).toThrow(/sluice ledger out of balance/);
  });

  test.each([
    ['held', (l: Ledger) => (l.held = -1)],
    ['heldBytes', (l: Ledger) => (l.heldBytes = -1)],
    ['inFlight', (l: Ledger) => (l.inFlight = -1)],
  ])('a negative %s throws even when the sum adds up', (_name, corrupt) => {
    const ledger = new Ledger();
    corrupt(ledger);
    ledger.offered = ledger.held; // keeps offered = held (+ 0 elsewhere)
    expect(() => ledger.assertBalanced(0)).toThrow(/sluice ledger out of balance/);
  });

  test('the message names every counter with its value', () => {
    const ledger = busyLedger();
    ledger.offered = 10;
    expect(() => ledger.assertBalanced(1)).toThrow(
      'sluice ledger out of balance: offered 10, delivered 2, dead-lettered 1, dropped 3, held 2, waiting 1, bytes 4, in flight 1',
    );
  });

  test('takeAll(): the held items and the waiting writes become accepted and dead-lettered', () => {
    const ledger = busyLedger();
    ledger.takeAll(1);
    expect([ledger.accepted, ledger.deadLettered, ledger.held, ledger.heldBytes, ledger.inFlight]).toEqual([
      8, 4, 0, 0, 0,
    ]);
    expect(() => ledger.assertBalanced(0)).not.toThrow();
  });

  test('a live engine keeps its books balanced through writes, deliveries and a destroy()', async () => {
    useStreamFakeTimers();
    try {
      const sink = new TestSink<number>({ kind: 'manual' });
      const stream = new BlockingWritable<number>(sink.flush, { maxBufferSize: 4, batchSize: 2 });
      const engine = (stream as unknown as SluiceStream<number>)[kEngine];
      stream.on('error', () => {});
      stream.on('deadletter', () => {});
      for (let i = 0; i < 6; i++) stream.write(i); // 4 held, 2 waiting
      expect(stream.getMetrics().waitingWrites).toBe(2);
      expect(() => engine.assertBalanced()).not.toThrow();
      sink.resolveNext();
      await settle();
      expect(() => engine.assertBalanced()).not.toThrow();
      stream.destroy();
      await settle();
      expect(() => engine.assertBalanced()).not.toThrow();
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('the exit watch', () => {
  /** The listener the exit watch installed on the first watched sluice, called as 'exit' would. */
  let exitListener: () => void;
  const warnings: (Error & { code?: string })[] = [];
  const onWarning = (warning: Error): void => {
    warnings.push(warning);
  };

  beforeAll(async () => {
    const { watchForExit } = await import('../../lib/engine/exit-watch');
    watchForExit({ length: 0, className: 'Installer' });
    watchForExit({ length: 0, className: 'Second' });
    const added = process.listeners('exit').filter((listener) => !exitListenersBefore.has(listener));
    expect(added).toHaveLength(1); // installed once, with the first sluice, for all of them
    exitListener = added[0] as () => void;
  });

  beforeEach(() => {
    warnings.length = 0;
    // Replaces Node's printing listener for the test, so the expected warnings stay out of the output.
    process.prependListener('warning', onWarning);
  });
  afterEach(() => {
    process.off('warning', onWarning);
  });

  async function watch(...sluices: { length: number; className: string }[]): Promise<void> {
    const { watchForExit } = await import('../../lib/engine/exit-watch');
    for (const sluice of sluices) watchForExit(sluice);
  }

  test('one SLUICE_ITEMS_HELD_AT_EXIT warning per sluice that holds items, none for an empty one', async () => {
    await watch({ length: 3, className: 'DropOldestWritable' }, { length: 0, className: 'Empty' });
    await watch({ length: 1, className: 'BlockingWritable' });
    exitListener();
    expect(warnings.map((w) => [w.name, w.code, w.message])).toEqual([
      [
        'SluiceWarning',
        'SLUICE_ITEMS_HELD_AT_EXIT',
        "DropOldestWritable still held 3 item(s) when the process exited: they were neither delivered nor dead-lettered. End the stream and wait for 'finish' (or await pipeline()), or call shutdown(), before exiting.",
      ],
      ['SluiceWarning', 'SLUICE_ITEMS_HELD_AT_EXIT', expect.stringMatching(/^BlockingWritable still held 1 item\(s\)/)],
    ]);
  });

  test("the watch is emptied at 'exit': a second call warns no more", async () => {
    await watch({ length: 2, className: 'A' });
    exitListener();
    expect(warnings).toHaveLength(1);
    exitListener();
    expect(warnings).toHaveLength(1);
  });

  test('pruning the collected entries keeps every live sluice', async () => {
    // Past 64 entries the set is pruned of collected ones; every entry here is alive.
    const sluices = Array.from({ length: 150 }, (_, i) => ({ length: 1, className: `S${i}` }));
    await watch(...sluices);
    exitListener();
    expect(warnings.map((w) => w.message.split(' ')[0])).toEqual(sluices.map((s) => s.className));
  });

  test('a real sluice is watched from construction, with its class name and held count', async () => {
    const sink = new TestSink<number>({ kind: 'hang' });
    const stream = new BlockingWritable<number>(sink.flush, {
      maxBufferSize: 10,
      batchSize: 10,
      minFlushIntervalMs: 60_000,
      maxFlushIntervalMs: 60_000,
    });
    stream.write(1);
    stream.write(2);
    exitListener();
    // Every sluice made in this file is watched by the same module instance.
    expect(warnings.map((w) => w.message)).toContainEqual(
      expect.stringMatching(/^BlockingWritable still held 2 item\(s\) when the process exited/),
    );
    stream.on('error', () => {});
    stream.destroy();
    await settle();
  });
});
