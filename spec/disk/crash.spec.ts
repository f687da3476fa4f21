import { DiskLog } from '../../lib/disk/log';
import { assertBuilt, startChild } from './support/child';
import { cleanup, tempDir } from './support/helpers';

/**
 * Real SIGKILLs. A child process (support/disk-child.js, on the built package) opens the log in
 * 'always' mode, replays it, acknowledges about half of what it replayed, then appends forever,
 * printing each payload before its append and each id after its append resolved. The parent kills
 * it at a random moment (after a random number of confirmed appends, or a random few milliseconds
 * after the start: during open, recovery or replay), reopens the log itself and checks:
 * - every id confirmed and not acknowledged is there, with its payload, exactly once, in id order;
 * - no id whose acknowledgement was confirmed is there;
 * - every record there was attempted by some run (nothing invented);
 * - what the next child replays is what the parent found (its replay lines are a prefix of it).
 * The assertions hold for any kill time; only how much each iteration covers is random.
 */

const ITERATIONS = 25;

afterEach(cleanup);
beforeAll(assertBuilt);

interface Found {
  id: number;
  payload: string;
}

async function readBack(dir: string): Promise<Found[]> {
  const log = await DiskLog.open({ path: dir, fsync: 'always', segmentBytes: 2048 });
  const found: Found[] = [];
  for await (const record of log.records(64)) found.push({ id: record.id, payload: record.payload.toString() });
  await log.close();
  return found;
}

test(`${ITERATIONS} SIGKILLs at random moments: every confirmed record survives, once, in order; nothing invented`, async () => {
  const dir = tempDir();
  const attempted = new Set<string>();
  const confirmed = new Map<number, string>();
  const ackConfirmed = new Set<number>();
  const ackTried = new Set<number>();
  let previous: Found[] = [];
  let totalConfirmed = 0;

  for (let iteration = 0; iteration < ITERATIONS; iteration++) {
    const child = startChild('crash', dir);
    const killAfter = Math.floor(Math.random() * 150);
    const kill = (): void => void child.process.kill('SIGKILL');
    if (iteration % 4 === 3) {
      setTimeout(kill, Math.random() * 30); // early: during open, recovery, replay or the acks
    } else {
      let seen = 0;
      void child.waitFor((line) => 'a' in line && ++seen > killAfter).then(kill, () => undefined);
    }
    const { signal, stderr } = await child.closed;
    expect({ iteration, signal, stderr }).toEqual({ iteration, signal: 'SIGKILL', stderr: '' });

    const replayed = child.lines.filter((line) => 'r' in line).map((line) => line.r as number);
    expect(replayed).toEqual(previous.slice(0, replayed.length).map((record) => record.id));
    for (const line of child.lines) {
      if ('w' in line) attempted.add(line.w as string);
      if ('a' in line) confirmed.set(line.a as number, line.p as string);
      if ('a' in line) totalConfirmed++;
      if ('k' in line) (line.k as number[]).forEach((id) => ackConfirmed.add(id));
      // An ack() that was called but not confirmed may or may not have been recorded when the kill
      // came: its ids are neither required nor forbidden afterwards.
      if ('t' in line) (line.t as number[]).forEach((id) => ackTried.add(id));
    }

    const found = await readBack(dir);
    const ids = found.map((record) => record.id);
    expect(ids).toEqual([...new Set(ids)].sort((a, b) => a - b));
    for (const record of found) {
      expect(attempted.has(record.payload)).toBe(true);
      if (confirmed.has(record.id))
        expect({ id: record.id, payload: record.payload }).toEqual({
          id: record.id,
          payload: confirmed.get(record.id),
        });
      expect(ackConfirmed.has(record.id)).toBe(false);
    }
    const required = [...confirmed.keys()].filter((id) => !ackTried.has(id));
    expect(ids).toEqual(expect.arrayContaining(required));
    previous = found;
  }
  // The iterations did real work: appends were confirmed and acknowledgements recorded.
  expect(totalConfirmed).toBeGreaterThan(ITERATIONS);
  expect(ackConfirmed.size).toBeGreaterThan(0);
}, 90_000);
