/**
 * Quick start: a producer that outpaces its sink, piped into a `block` sluice.
 * `pipeline` honours `write() === false` and `'drain'`, so nothing is lost and
 * memory stays under `maxBufferSize`, however slow the sink.
 */
// #region quick-start
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlockingWritable } from '../../lib';

interface Reading {
  sensor: string;
  value: number;
}

async function* readings(count: number): AsyncGenerator<Reading> {
  for (let i = 0; i < count; i++) yield { sensor: `s${i % 8}`, value: i };
}

export async function main(): Promise<{ delivered: number; batches: number; maxHeld: number }> {
  const stored: Reading[] = [];
  let maxHeld = 0;

  const sink = new BlockingWritable<Reading>(
    async (batch) => {
      await sleep(1); // a slow database
      stored.push(...batch);
    },
    { maxBufferSize: 1_000, batchSize: 100 },
  );
  sink.on('state', () => (maxHeld = Math.max(maxHeld, sink.getMetrics().bufferSize)));

  await pipeline(Readable.from(readings(5_000)), sink); // resolves after the last flush

  const metrics = sink.getMetrics();
  return { delivered: stored.length, batches: metrics.batches, maxHeld };
}
// #endregion quick-start

if (require.main === module) main().then(console.log, console.error);
