import fc from 'fast-check';
import { DiskLog } from '../../lib/disk/log';
import { FaultyFs } from './support/faulty-fs';
import { cleanup, leaveStaleLock, tempDir } from './support/helpers';

/**
 * A crash at any byte: appends (in concurrent groups) and acknowledgements run against a file
 * system that tears one write at a random byte and then fails everything, like a process killed
 * mid-write; reads run beside them (in order, never an acknowledged record). After a reopen (taking over the dead process's lock):
 * - every record whose append resolved is there exactly once, in id order, with its payload,
 *   unless it was acknowledged (an ack that failed may or may not have been recorded);
 * - no acknowledged record comes back;
 * - every record there was appended (a group cut short may leave records whose append failed:
 *   the producer was told so, and gets them as possible duplicates, never as invented data).
 */

const RUNS = Number(process.env.SLUICE_PROPERTY_RUNS ?? 60);

afterEach(cleanup);

const step = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .array(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 12 })
      .map((sizes) => ({ append: sizes })),
  },
  { weight: 1, arbitrary: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }).map((picks) => ({ ack: picks })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 8 }).map((count) => ({ read: count })) },
);

test('after a write torn at any byte, what was confirmed is there once, in order, and nothing invented', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(step, { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 0, max: 4000 }),
      fc.integer({ min: 64, max: 400 }),
      async (steps, tearAt, segmentBytes) => {
        const dir = tempDir();
        const fs = new FaultyFs(tearAt);
        const attempted = new Set<string>();
        const confirmed = new Map<number, string>();
        const acked = new Set<number>();
        /** Ids given to ack(), whether it resolved or not: a rejected ack may still have been recorded. */
        const ackTried = new Set<number>();
        const log = await DiskLog.open({ path: dir, fsync: 'always', segmentBytes, ackCompactBytes: 128, fs }).catch(
          () => undefined,
        );
        let n = 0;
        let lastRead = 0;
        /** A read runs beside the steps after it (appends, acks, deletions), as a consumer would. */
        let reading: Promise<void> = Promise.resolve();
        for (const next of steps) {
          if (log === undefined || fs.crashed) break;
          if ('read' in next) {
            await reading;
            const ackedBefore = new Set(acked);
            reading = log.read(next.read).then(
              (records) => {
                for (const record of records) {
                  expect(record.id).toBeGreaterThan(lastRead);
                  expect(ackedBefore.has(record.id)).toBe(false);
                  expect(attempted.has(record.payload.toString())).toBe(true);
                  lastRead = record.id;
                }
              },
              () => undefined,
            );
          } else if ('append' in next) {
            const group = next.append.map((size) => {
              const payload = `p${n++}`.padEnd(size, '.');
              attempted.add(payload);
              return log.append(Buffer.from(payload)).then((id) => void confirmed.set(id, payload));
            });
            await Promise.allSettled(group);
          } else {
            const ids = [...confirmed.keys()];
            const picks = next.ack.map((pick) => ids[pick % Math.max(ids.length, 1)]).filter((id) => id !== undefined);
            picks.forEach((id) => ackTried.add(id));
            await log.ack(picks).then(
              () => picks.forEach((id) => acked.add(id)),
              () => undefined,
            );
          }
        }
        await reading;
        await fs.release();
        leaveStaleLock(dir);

        const reopened = await DiskLog.open({ path: dir, fsync: 'always', segmentBytes });
        const found: Array<{ id: number; payload: string }> = [];
        for await (const record of reopened.records(5))
          found.push({ id: record.id, payload: record.payload.toString() });
        expect(reopened.stats().recordsHeld).toBe(found.length);
        await reopened.close();

        const ids = found.map((record) => record.id);
        expect(ids).toEqual([...ids].sort((a, b) => a - b));
        expect(new Set(ids).size).toBe(ids.length);
        for (const record of found) {
          expect(attempted.has(record.payload)).toBe(true);
          if (confirmed.has(record.id)) expect(record.payload).toBe(confirmed.get(record.id));
          expect(acked.has(record.id)).toBe(false);
        }
        const expected = [...confirmed.keys()].filter((id) => !ackTried.has(id));
        expect(ids).toEqual(expect.arrayContaining(expected));
      },
    ),
    { numRuns: RUNS },
  );
}, 120_000);
