import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * The SIGTERM recipe (docs/failure-handling.md) in a real child process with a
 * real signal: a steady producer piped into a BlockingWritable; on SIGTERM the
 * fixture stops reading, calls shutdown({ timeoutMs }) and prints its books.
 * Nothing may be lost: offered = delivered + undelivered + dropped, where
 * "delivered" is what the sink itself confirmed and "offered" what reached
 * write(). The fixture runs the built package (`npm test` builds dist/ first).
 */

const FIXTURE = join(__dirname, 'fixtures', 'sigterm-producer.js');
const DIST = join(__dirname, '..', '..', 'dist', 'index.js');

interface Summary {
  offered: number;
  delivered: number;
  undelivered: number;
  dropped: number;
  deadLettered: number;
  deadLetterReasons: Record<string, number>;
  metrics: {
    eventsOffered: number;
    eventsFlushed: number;
    deadLettered: number;
    eventsDropped: number;
    bufferSize: number;
  };
  undeliveredIdsUnique: boolean;
  destroyed: boolean;
}

interface Outcome {
  summary: Summary | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Spawns the fixture, sends SIGTERM once it reports it is running, and collects its summary and exit. */
function runFixture(sink: 'slow' | 'stall', timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, sink, String(timeoutMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let summary: Summary | undefined;
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as { running?: boolean } & Summary;
      if (message.running === true) child.kill('SIGTERM');
      else summary = message;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ summary, code, signal, stderr }));
  });
}

function expectNothingLost(outcome: Outcome): Summary {
  expect(outcome.stderr).toBe('');
  expect(outcome.signal).toBeNull();
  expect(outcome.code).toBe(143);
  const summary = outcome.summary;
  if (summary === undefined) throw new Error('the fixture printed no summary');
  expect(summary.offered).toBeGreaterThan(0);
  expect(summary.offered).toBe(summary.delivered + summary.undelivered + summary.dropped);
  // The sink's own count, sluice's books and the dead-letter handler agree.
  expect(summary.metrics).toEqual({
    eventsOffered: summary.offered,
    eventsFlushed: summary.delivered,
    deadLettered: summary.undelivered,
    eventsDropped: summary.dropped,
    bufferSize: 0,
  });
  expect(summary.deadLettered).toBe(summary.undelivered);
  expect(summary.deadLetterReasons).toEqual(summary.undelivered === 0 ? {} : { shutdown_timeout: summary.undelivered });
  expect(summary.undeliveredIdsUnique).toBe(true);
  expect(summary.destroyed).toBe(true);
  // block with a producer that honours backpressure: nothing dropped.
  expect(summary.dropped).toBe(0);
  return summary;
}

describe('SIGTERM recipe, in a child process', () => {
  beforeAll(() => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` (npm test does it first)`);
  });

  test('a slow but healthy sink: shutdown flushes everything before its deadline', async () => {
    const summary = expectNothingLost(await runFixture('slow', 15_000));
    expect(summary.undelivered).toBe(0);
    expect(summary.delivered).toBe(summary.offered);
  });

  test('a sink that never answers: everything held comes back undelivered at the deadline', async () => {
    const summary = expectNothingLost(await runFixture('stall', 50));
    expect(summary.delivered).toBe(0);
    expect(summary.undelivered).toBe(summary.offered);
  });

  test('a deadline of 0: whatever was not confirmed is undelivered, nothing is lost', async () => {
    expectNothingLost(await runFixture('slow', 0));
  });
});
