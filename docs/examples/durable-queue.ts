/**
 * A disk-backed sluice: every accepted event is in a write-ahead log before its write callback
 * runs, so a crash (here a destroy() stands in for `kill -9`) loses nothing that was accepted. The
 * next run replays what was not delivered, first and in order, with the same durable ids, and the
 * sink uses those ids to make delivery idempotent.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
// #region durable
import { BlockingWritable, type FlushContext } from '../../lib';

interface Event {
  user: string;
  action: string;
}

/** Stands in for a table with a unique key on the durable id: a replayed event is stored once. */
const table = new Map<number, Event>();

function openQueue(path: string, send: (events: Event[], ids: readonly number[]) => Promise<void>) {
  return new BlockingWritable<Event>(
    async (events: Event[], { ids }: FlushContext) => {
      // `ids[i]` is `events[i]`'s durable id: the same after a restart (INSERT ... ON CONFLICT DO NOTHING).
      await send(events, ids as readonly number[]);
    },
    {
      batchSize: 200,
      maxBufferSize: 1_000, // memory holds at most this many; the rest wait in the log
      disk: { path, fsync: 'always', maxBytes: 512 * 2 ** 20 },
    },
  );
}
// #endregion durable

export async function main(): Promise<{ accepted: number; replayed: number; stored: number; duplicates: number }> {
  const path = await mkdtemp(join(tmpdir(), 'sluice-durable-'));
  let duplicates = 0;
  const store = async (events: Event[], ids: readonly number[]): Promise<void> => {
    events.forEach((event, i) => {
      if (table.has(ids[i] as number)) duplicates++;
      table.set(ids[i] as number, event);
    });
  };
  try {
    // Run 1: the database is down, 5,000 events are accepted, then the process "dies".
    const down = openQueue(path, () => new Promise<void>(() => {}));
    let accepted = 0;
    for (let n = 0; n < 5_000; n++) {
      const event = { user: `u${n % 50}`, action: 'click' };
      if (!down.write(event, (error) => void (error ? undefined : accepted++))) await once(down, 'drain');
    }
    await new Promise<void>((resolve) => down.write({ user: 'last', action: 'click' }, () => resolve()));
    accepted++;
    down.destroy();
    await once(down, 'close');

    // Run 2: the database is back. The log's events come first, then the new ones.
    const up = openQueue(path, store);
    let replayed = 0;
    up.on('replay', (count) => (replayed = count));
    await pipeline(Readable.from([{ user: 'new', action: 'login' }]), up);
    return { accepted, replayed, stored: table.size, duplicates };
  } finally {
    await rm(path, { recursive: true, force: true });
  }
}
