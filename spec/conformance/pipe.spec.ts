import { PassThrough, Readable } from 'node:stream';
import { ALL_KINDS, BLOCKING_KINDS, item, likeNative, nativeWritable } from './harness';
import { settle, useStreamFakeTimers } from '../support/test-sink';
import type { Kind, Subject } from './harness';

/**
 * pipe() and unpipe() into a sluice, ported from Node's own tests. Native first (trace pinned), then every
 * sluice shape against it. Node's pipe() reads the destination's write() return value, 'drain' and
 * writableNeedDrain, and on unpipe() its internal needDrain state: a sluice has to answer all of them.
 */

beforeEach(() => useStreamFakeTimers());
afterEach(() => jest.useRealTimers());

/** A destination that returns false at its first write: a native Writable with highWaterMark 1, a sluice of one item. */
const oneItem = {
  makeNative: (): Subject => nativeWritable('hang', { highWaterMark: 1 }),
  make: (kind: Kind): Subject => kind.make('hang', { maxBufferSize: 1 }),
};

function ids(items: unknown[]): string {
  return items.map((x) => (x as { id: number }).id).join(',');
}

/** An object-mode source that pushes a new item on every read. */
function endless(): Readable {
  let next = 100;
  return new Readable({
    objectMode: true,
    highWaterMark: 1,
    read() {
      this.push(item(next++));
    },
  });
}

describe('test-stream-pipe-flow-after-unpipe.js', () => {
  likeNative('after unpipe() from a destination that returned false, the source flows again', {
    scenario: async (subject, t) => {
      const source = endless();
      let chunks = 0;
      source.on('data', () => {
        if (++chunks >= 20) source.pause();
      });
      source.pipe(subject.stream);
      await settle();
      t.mark(`needDrain: ${subject.stream.writableNeedDrain}; data so far: ${chunks}`);
      source.unpipe(subject.stream);
      await settle(30);
      t.mark(`data after unpipe reached 20: ${chunks >= 20}`);
    },
    ...oneItem,
    kinds: BLOCKING_KINDS,
    quietDeadLetters: true,
    native: ['needDrain: true; data so far: 1', 'data after unpipe reached 20: true'],
  });
});

describe('test-stream-pipe-cleanup-pause.js', () => {
  likeNative('unpipe() from a destination that returned false, then pipe() to another: the other gets what follows', {
    scenario: async (subject, t) => {
      const reader = new Readable({ objectMode: true, read() {} });
      const writer2 = nativeWritable('ok');
      reader.pipe(subject.stream);
      reader.push(item(1));
      await settle();
      reader.unpipe(subject.stream);
      reader.pipe(writer2.stream);
      for (const id of [2, 3, 4]) {
        reader.push(item(id));
        await settle();
      }
      t.mark(`first got: ${ids(subject.delivered)}/${subject.pending} pending; second got: ${ids(writer2.delivered)}`);
    },
    ...oneItem,
    kinds: BLOCKING_KINDS,
    native: ['first got: /1 pending; second got: 2,3,4'],
  });
});

describe('test-stream-pipe-needDrain.js', () => {
  likeNative('pipe() into a destination that already needs drain: the source waits for "drain", then ends it', {
    scenario: async (subject, t) => {
      let writes = 0;
      while (subject.stream.write(item(writes++)));
      const source = Readable.from([item(100), item(101)]);
      source.on('end', () => t.mark('source end'));
      source.pipe(subject.stream);
      await settle();
      t.mark(`source paused: ${source.isPaused()}; written from it: ${subject.stream.writableLength - writes}`);
      subject.releaseAll();
      await settle();
      t.mark(`delivered: ${subject.delivered.length}`);
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    native: ['source paused: true; written from it: 0', 'drain', 'source end', 'finish', 'close', 'delivered: 10'],
  });
});

describe('test-stream-pipe-unpipe-streams.js', () => {
  likeNative('unpipe(): one "unpipe" per pipe, none for a second unpipe(), no listener left behind, source paused', {
    scenario: (subject, t) => {
      const source = new Readable({ objectMode: true, read() {} });
      const names = ['close', 'finish', 'drain', 'error', 'unpipe'];
      const count = (): string => names.map((name) => subject.stream.listenerCount(name)).join(',');
      const before = count();
      source.pipe(subject.stream);
      const piped = count();
      subject.stream.on('unpipe', () => t.mark('unpipe'));
      source.unpipe(subject.stream);
      source.unpipe(subject.stream);
      subject.stream.removeAllListeners('unpipe');
      t.mark(`pipe added listeners: ${piped !== before}; all removed: ${count() === before}`);
      t.mark(`source flowing: ${source.readableFlowing}`);
    },
    native: ['unpipe', 'pipe added listeners: true; all removed: true', 'source flowing: false'],
  });

  likeNative('two destinations unpiped in reverse order', {
    scenario: (subject, t) => {
      const source = new Readable({ objectMode: true, read() {} });
      const other = nativeWritable('ok');
      source.pipe(other.stream);
      source.pipe(subject.stream);
      subject.stream.on('unpipe', () => t.mark('unpipe'));
      other.stream.on('unpipe', () => t.mark('other unpipe'));
      source.unpipe(subject.stream);
      source.unpipe(other.stream);
    },
    native: ['unpipe', 'other unpipe'],
  });
});

describe('test-stream-unpipe-event.js', () => {
  const quick = (): Readable => new Readable({ objectMode: true, read: () => quickPush() });
  let quickPush = (): void => undefined;
  const cases: [string, () => Readable, { end?: boolean }, boolean][] = [
    ['a source that ends', quick, {}, false],
    ['a source that never ends', () => new Readable({ objectMode: true, read() {} }), {}, false],
    ['a source that never ends, then unpipe()', () => new Readable({ objectMode: true, read() {} }), {}, true],
    ['a source that ends, { end: false }', quick, { end: false }, false],
    [
      'a source that never ends, { end: false }',
      () => new Readable({ objectMode: true, read() {} }),
      { end: false },
      false,
    ],
    [
      'a source that never ends, { end: false }, then unpipe()',
      () => new Readable({ objectMode: true, read() {} }),
      { end: false },
      true,
    ],
  ];
  const expected = [
    ['pipe', 'finish', 'unpipe', 'close'],
    ['pipe'],
    ['pipe', 'unpipe'],
    ['pipe', 'unpipe'],
    ['pipe'],
    ['pipe', 'unpipe'],
  ];
  cases.forEach(([title, makeSource, options, unpipe], i) => {
    likeNative(`"pipe" and "unpipe" events: ${title}`, {
      scenario: ({ stream }) => {
        const source = makeSource();
        quickPush = () => source.push(null);
        source.pipe(stream, options);
        if (unpipe) source.unpipe(stream);
      },
      events: ['pipe', 'unpipe', 'finish', 'close', 'error'],
      native: expected[i] as string[],
    });
  });
});

describe('test-stream-pipe-after-end.js', () => {
  likeNative('pipe() from a source that has already ended: the destination finishes', {
    scenario: async ({ stream }) => {
      const ended = new Readable({
        objectMode: true,
        read() {
          this.push(null);
        },
      });
      ended.read();
      await settle();
      ended.pipe(stream);
    },
    native: ['finish', 'close'],
  });
});

describe('test-stream-pipe-deadlock.js', () => {
  likeNative('an ended, paused source with buffered data piped into a destination that needs drain: "finish"', {
    scenario: async (subject) => {
      const source = new Readable({ objectMode: true, read() {} });
      source.push(item(100));
      source.push(null);
      source.pause();
      await settle();
      while (subject.stream.write(item(0)));
      source.pipe(subject.stream);
      await settle();
      subject.releaseAll();
    },
    mode: 'hang',
    kinds: BLOCKING_KINDS,
    native: ['drain', 'finish', 'close'],
  });
});

describe('test-stream-pipe-await-drain.js', () => {
  likeNative('one source, two destinations: the source waits for the one that returned false', {
    scenario: async (subject, t) => {
      const fast = nativeWritable('ok');
      const reader = new Readable({ objectMode: true, read() {} });
      reader.pipe(fast.stream);
      reader.pipe(subject.stream);
      reader.push(item(1));
      await settle();
      reader.push(item(2));
      await settle();
      t.mark(`the fast one got ${ids(fast.delivered)} while the slow one needs drain`);
      subject.releaseAll();
      await settle();
      t.mark(`the fast one got ${ids(fast.delivered)} after "drain"`);
    },
    ...oneItem,
    kinds: BLOCKING_KINDS,
    // Not 'drain': when the slow one's sink takes the second item synchronously, Node's write() returns true;
    // a sluice's sink is always asynchronous, so it says false again and emits a second 'drain'.
    events: ['finish', 'close', 'error'],
    native: ['the fast one got 1 while the slow one needs drain', 'the fast one got 1,2 after "drain"'],
  });
});

describe('test-stream-pipe-multiple-pipes.js', () => {
  async function scenario(make: () => Subject): Promise<string> {
    const readable = new Readable({ objectMode: true, read() {} });
    const targets = Array.from({ length: 5 }, make);
    const events: string[] = [];
    for (const [i, target] of targets.entries()) {
      target.stream.on('pipe', () => events.push(`pipe${i}`));
      target.stream.on('unpipe', () => events.push(`unpipe${i}`));
      readable.pipe(target.stream);
    }
    readable.push(item(1));
    await settle();
    for (const target of targets) readable.unpipe(target.stream);
    readable.push(item(2));
    readable.push(null);
    readable.resume();
    await settle();
    return `${events.join(' ')} | ${targets.map((target) => ids(target.delivered)).join(' ')}`;
  }

  test('native: every destination gets the item pushed before unpipe(), none the one after', async () => {
    expect(await scenario(() => nativeWritable('ok'))).toBe(
      'pipe0 pipe1 pipe2 pipe3 pipe4 unpipe0 unpipe1 unpipe2 unpipe3 unpipe4 | 1 1 1 1 1',
    );
  });

  test.each(ALL_KINDS)('$name: as native', async (kind) => {
    expect(await scenario(() => kind.make('ok'))).toBe(await scenario(() => nativeWritable('ok')));
  });
});

describe('test-stream-pipe-same-destination-twice.js', () => {
  likeNative('piped twice to the same destination: each item twice; after one unpipe(), once', {
    scenario: async (subject, t) => {
      const pass = new PassThrough({ objectMode: true });
      pass.pipe(subject.stream);
      pass.pipe(subject.stream);
      pass.write(item(1));
      await settle();
      pass.unpipe(subject.stream);
      pass.write(item(2));
      await settle();
      t.mark(`delivered: ${ids(subject.delivered)}`);
    },
    native: ['delivered: 1,1,2'],
  });
});

describe('test-stream2-finish-pipe-error.js', () => {
  likeNative('end() on a destination a live pipe still writes to: "error" with ERR_STREAM_WRITE_AFTER_END', {
    scenario: async ({ stream }) => {
      const source = endless();
      source.pipe(stream);
      stream.end();
      await settle();
      source.destroy();
    },
    quietDeadLetters: true,
    native: ['error:ERR_STREAM_WRITE_AFTER_END', 'close'],
  });
});

describe('test-stream-pipe-manual-resume.js, test-stream-backpressure.js', () => {
  const N = 200;
  for (const [how, poke] of [
    ['read()', (source: Readable) => void source.read()],
    ['resume()', (source: Readable) => void source.resume()],
    ['nothing', () => undefined],
  ] as const) {
    likeNative(`a pipe through a slow destination delivers everything in order, with ${how} called meanwhile`, {
      scenario: async (subject, t) => {
        const source = Readable.from(Array.from({ length: N }, (_, id) => item(id)));
        source.pipe(subject.stream);
        await settle();
        poke(source);
        for (let turn = 0; turn < 10 * N && !subject.stream.writableFinished; turn++) {
          if (subject.pending > 0) subject.releaseOne();
          await settle(2);
        }
        subject.releaseAll();
        t.mark(`in order: ${subject.delivered.every((x, i) => (x as { id: number }).id === i)}`);
        t.mark(`delivered: ${subject.delivered.length}`);
      },
      mode: 'hang',
      kinds: BLOCKING_KINDS,
      events: ['finish', 'error'],
      native: ['finish', 'in order: true', `delivered: ${N}`],
    });
  }
});
