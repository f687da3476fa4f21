import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RECORDING_PER_SLOT } from '../../lib/engine/delivery';
import { cleanup, tempDir } from './support/helpers';

/**
 * Real SIGKILLs through the stream. A child process (support/sluice-child.js, on the built package)
 * writes numbers through a disk-backed BlockingWritable (2 flush slots of 20, 50 items of memory,
 * 1 KiB segments) into a sink that records `value id` durably before it resolves. The parent kills
 * it at a random moment (a random number of accepted writes in, or a few milliseconds after the
 * start: during open, recovery or replay), starts it again on the same directory from the number
 * after the last one accepted, and at the end lets a run finish (it replays what the last kill
 * left, even when every number was written). Then:
 * - every number whose write callback reported it accepted was delivered at least once;
 * - nothing was delivered that no run wrote (nothing invented), and a durable id always comes with
 *   the same number;
 * - deliveries of one id beyond its first (sluice's own redeliveries) stay within the documented
 *   bound: per kill, (1 + RECORDING_PER_SLOT) batches per flush slot (5 × 2 × 20): the batch in each
 *   slot and those that left it while their deliveries were being recorded. A number a killed run wrote without
 *   the parent seeing it accepted is written again by the next run, under a new id: that is the
 *   producer's duplicate, not sluice's, and it is not counted against the bound.
 * The assertions hold for any kill time; only how much each iteration covers is random.
 */

const SCRIPT = join(__dirname, 'support', 'sluice-child.js');
const DIST = join(__dirname, '..', '..', 'dist', 'index.js');
const TOTAL = 2000;
const KILLS = 12;
const SLOTS = 2;
const BATCH = 20;

afterEach(cleanup);
beforeAll(() => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` first`);
});

interface Run {
  accepted: number[];
  done: boolean;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the child; kills it after `killAfter` accepted writes, or `killAtMs` after the start. */
function run(
  dir: string,
  delivered: string,
  fsync: string,
  from: number,
  kill: { afterAccepted?: number; atMs?: number } | undefined,
): Promise<Run> {
  const child = spawn(process.execPath, [SCRIPT, dir, delivered, fsync, String(from), String(TOTAL)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const result: Run = { accepted: [], done: false, signal: null, stderr: '' };
  child.stderr.on('data', (chunk: Buffer) => (result.stderr += chunk.toString()));
  const killNow = (): void => void child.kill('SIGKILL');
  const timer = kill?.atMs === undefined ? undefined : setTimeout(killNow, kill.atMs);
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (line.startsWith('a ')) {
      result.accepted.push(Number(line.slice(2)));
      if (kill?.afterAccepted !== undefined && result.accepted.length === kill.afterAccepted) killNow();
    } else if (line === 'done') result.done = true;
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      result.signal = signal;
      resolve(result);
    });
  });
}

test.each(['interval', 'always'])(
  `fsync '%s': ${KILLS} SIGKILLs at random moments, then a run to the end: every accepted item delivered, none invented, duplicates within the bound`,
  async (fsync) => {
    const dir = join(tempDir(), 'queue');
    const delivered = join(tempDir(), 'delivered.txt');
    const accepted = new Set<number>();
    let next = 0;
    let kills = 0;
    for (let i = 0; i < KILLS; i++) {
      const kill = i % 4 === 3 ? { atMs: Math.random() * 40 } : { afterAccepted: 1 + Math.floor(Math.random() * 300) };
      const result = await run(dir, delivered, fsync, next, kill);
      expect(result.stderr).toBe('');
      if (result.signal === 'SIGKILL') kills++;
      for (const n of result.accepted) accepted.add(n);
      next = Math.max(next - 1, ...result.accepted) + 1;
    }
    // The last run is not killed: it replays what the others left (and writes the rest, if any).
    const final = await run(dir, delivered, fsync, next, undefined);
    expect(final).toMatchObject({ done: true, stderr: '' });
    for (const n of final.accepted) accepted.add(n);

    const lines = readFileSync(delivered, 'utf8').trim().split('\n');
    const values = new Set<number>();
    const valueOfId = new Map<number, number>();
    let redelivered = 0;
    for (const line of lines) {
      const [value, id] = line.split(' ').map(Number) as [number, number];
      expect(Number.isInteger(value) && value >= 0 && value < TOTAL).toBe(true);
      values.add(value);
      const known = valueOfId.get(id);
      if (known === undefined) valueOfId.set(id, value);
      else {
        expect({ id, value }).toEqual({ id, value: known });
        redelivered++;
      }
    }
    expect([...accepted].filter((n) => !values.has(n))).toEqual([]);
    expect(accepted.size).toBe(TOTAL);
    expect(kills).toBeGreaterThan(0);
    expect(redelivered).toBeLessThanOrEqual(kills * (1 + RECORDING_PER_SLOT) * SLOTS * BATCH);
  },
  120_000,
);
