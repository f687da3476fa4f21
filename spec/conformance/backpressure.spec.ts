import { BLOCKING, BLOCKING_KINDS, HWM, LOW_COUNT, item, likeNative, nativeWritable, run } from './harness';
import { settle, useStreamFakeTimers } from '../support/test-sink';
import type { Subject } from './harness';

/**
 * write() return values, writableLength, writableNeedDrain and 'drain', ported from Node's own tests,
 * for the shapes that pause a producer (block: BlockingWritable and the Transform's writable side).
 * Where sluice differs on purpose ('drain' below the low watermark, an item-counted high-water mark that
 * is the critical count), the test asserts sluice's behaviour and says so.
 */

beforeEach(() => useStreamFakeTimers());
afterEach(() => jest.useRealTimers());

/** Writes until write() returns false; marks how many writes that took and what the stream reports. */
function fillUntilFalse(subject: Subject, t: { mark(label: string): void }): void {
  let writes = 0;
  while (subject.stream.write(item(writes++)) && writes < 100);
  t.mark(`false after ${writes} writes; length ${subject.stream.writableLength}`);
  t.mark(`needDrain: ${subject.stream.writableNeedDrain}`);
}

describe('test-stream2-writable.js (write backpressure)', () => {
  likeNative('write() is true below the high-water mark, false from it on; writableLength counts what is held', {
    scenario: ({ stream }, t) => {
      const returns: string[] = [];
      for (let id = 0; id < 2 * HWM + 2; id++) {
        returns.push(`${stream.write(item(id)) ? 'T' : 'F'}${stream.writableLength}`);
      }
      t.mark(returns.join(' '));
      t.mark(`highWaterMark: ${stream.writableHighWaterMark}`);
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    native: ['T1 T2 T3 T4 T5 T6 T7 F8 F9 F10 F11 F12 F13 F14 F15 F16 F17 F18', `highWaterMark: ${HWM}`],
  });

  const N = 50;
  likeNative('a producer that writes until false and waits for "drain" delivers every item in order, then "finish"', {
    scenario: async (subject, t) => {
      let next = 0;
      let drains = 0;
      const writeSome = (): void => {
        while (next < N) {
          if (!subject.stream.write(item(next++))) return;
        }
        subject.stream.end();
      };
      subject.stream.on('drain', () => {
        drains++;
        writeSome();
      });
      writeSome();
      // The sink completes one item per turn.
      for (let turn = 0; turn < 10 * N && !subject.stream.writableFinished; turn++) {
        if (subject.pending > 0) subject.releaseOne();
        await settle(2);
      }
      subject.releaseAll(); // lets a Transform's reader see the end of the batches
      t.mark(`delivered in order: ${subject.delivered.every((x, i) => (x as { id: number }).id === i)}`);
      t.mark(`delivered: ${subject.delivered.length}; drains > 0: ${drains > 0}`);
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    events: ['finish', 'error'],
    native: ['finish', 'delivered in order: true', `delivered: ${N}; drains > 0: true`],
  });
});

describe('test-stream-writable-needdrain-state.js', () => {
  likeNative('writableNeedDrain: false at first, true once write() returned false, false from "drain" on', {
    scenario: (subject, t) => {
      t.mark(`needDrain at first: ${subject.stream.writableNeedDrain}`);
      fillUntilFalse(subject, t);
      subject.stream.on('drain', () => t.mark(`needDrain in "drain": ${subject.stream.writableNeedDrain}`));
      subject.releaseAll();
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    native: [
      'needDrain at first: false',
      `false after ${HWM} writes; length ${HWM}`,
      'needDrain: true',
      'drain',
      'needDrain in "drain": false',
    ],
  });

  likeNative('writableNeedDrain is false once end() was called', {
    scenario: (subject, t) => {
      fillUntilFalse(subject, t);
      subject.stream.end();
      t.mark(`needDrain after end(): ${subject.stream.writableNeedDrain}`);
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    native: [`false after ${HWM} writes; length ${HWM}`, 'needDrain: true', 'needDrain after end(): false'],
  });
});

describe('test-stream-write-drain.js', () => {
  likeNative('no "drain" once end() was called, even when the writes that returned false complete', {
    scenario: (subject, t) => {
      fillUntilFalse(subject, t);
      subject.stream.end();
      subject.releaseAll();
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    native: [`false after ${HWM} writes; length ${HWM}`, 'needDrain: true', 'finish', 'close'],
  });

  likeNative('no "drain" once end() was called, when the sink completes one item at a time', {
    scenario: async (subject, t) => {
      fillUntilFalse(subject, t);
      subject.stream.end();
      for (let i = 0; i < HWM; i++) {
        subject.releaseOne();
        await settle(3);
      }
      subject.releaseAll();
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    native: [`false after ${HWM} writes; length ${HWM}`, 'needDrain: true', 'finish', 'close'],
  });

  likeNative('no "drain" when write() never returned false, however empty the stream gets', {
    scenario: (subject) => {
      for (let id = 0; id < HWM - 1; id++) subject.stream.write(item(id));
      subject.releaseAll();
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    native: [],
  });
});

describe('intended differences: "drain" and the high-water mark', () => {
  test('native: "drain" comes when the buffer is empty', async () => {
    const trace = await run(nativeWritable('hang'), (subject, t) => {
      fillUntilFalse(subject, t);
      subject.stream.on('drain', () => t.mark(`length at drain: ${subject.stream.writableLength}`));
      for (let i = 0; i < HWM; i++) subject.releaseOne();
    });
    expect(trace).toContain('length at drain: 0');
  });

  test.each(BLOCKING_KINDS)(
    '$name: "drain" comes once as soon as what is held falls below the low watermark, not when empty',
    async (kind) => {
      const subject = kind.make('hang');
      const trace = await run(subject, async (s, t) => {
        fillUntilFalse(s, t);
        s.stream.on('drain', () => t.mark(`length at drain: ${s.stream.writableLength}`));
        for (let i = 0; i < HWM; i++) {
          s.releaseOne();
          await settle(3);
        }
      });
      expect(trace.filter((e) => e.startsWith('length at drain'))).toEqual([`length at drain: ${LOW_COUNT - 1}`]);
      expect(trace.filter((e) => e === 'drain')).toHaveLength(1);
    },
  );

  test.each([
    [{ maxBufferSize: 10 }, 8],
    [{ maxBufferSize: 100, highWatermark: 0.9 }, 90],
    [{ maxBufferSize: 7, highWatermark: 0.5, lowWatermark: 0.2 }, 4],
  ])(
    'writableHighWaterMark of %j is the critical count %i, and write() first says false there',
    async (options, hwm) => {
      for (const kind of BLOCKING_KINDS) {
        const subject = kind.make('hang', options);
        expect(subject.stream.writableHighWaterMark).toBe(hwm);
        let writes = 0;
        while (subject.stream.write(item(writes++)) && writes < 1000);
        expect([kind.name, writes]).toEqual([kind.name, hwm]);
        subject.stream.on('deadletter', () => undefined);
        subject.stream.destroy();
        await settle();
      }
    },
  );

  test('with a byte bound, write() says false at the critical byte level, before the high-water mark in items', async () => {
    const subject = BLOCKING.make('hang', { maxBufferBytes: 100, sizeOf: () => 20 });
    let writes = 0;
    while (subject.stream.write(item(writes++)) && writes < 1000);
    expect(writes).toBe(4); // 80 bytes = 0.8 of 100
    expect(writes).toBeLessThan(subject.stream.writableHighWaterMark);
    subject.stream.on('deadletter', () => undefined);
    subject.stream.destroy();
    await settle();
  });
});

describe("contract differences not in the issue's list (a producer that ignores false; see docs/conformance.md)", () => {
  test('native: a producer that ignores false is buffered without bound', async () => {
    const subject = nativeWritable('hang');
    for (let id = 0; id < 100; id++) subject.stream.write(item(id));
    expect(subject.stream.writableLength).toBe(100);
    subject.stream.destroy();
    await settle();
  });

  test('BlockingWritable: writes past the bound plus highWaterMark waiting writes are dropped ("overflow"), the callback says accepted=false', async () => {
    const subject = BLOCKING.make('hang');
    const drops: string[] = [];
    subject.stream.on('drop', (_item: unknown, reason: string) => drops.push(reason));
    const accepted: (boolean | undefined)[] = [];
    for (let id = 0; id < 100; id++) {
      subject.stream.write(item(id), (error?: Error | null, ok?: boolean) => accepted.push(error ? undefined : ok));
    }
    await settle();
    expect(subject.stream.writableLength).toBe(10 + HWM);
    expect(drops).toEqual(Array(100 - 10 - HWM).fill('overflow'));
    expect(accepted.filter((ok) => ok === false)).toHaveLength(100 - 10 - HWM);
    subject.stream.on('deadletter', () => undefined);
    subject.stream.destroy();
    await settle();
  });
});
