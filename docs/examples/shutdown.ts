/**
 * Graceful shutdown: on SIGTERM, stop taking new work, then give the sluice a
 * deadline to flush. What it could not deliver by then comes back from
 * `shutdown()` (and went down the dead-letter path with reason
 * `shutdown_timeout`), so you can spool it to disk before the process exits.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockingWritable } from '../../lib';
// #region shutdown
import { appendFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { BackpressureWritable } from '../../lib';

/** Stops `server`, flushes `sink` for at most `timeoutMs`, spools what is left to `spoolFile`. */
export async function gracefulShutdown<T>(
  sink: BackpressureWritable<T>,
  options: { timeoutMs: number; spoolFile: string; server?: Server },
): Promise<number> {
  options.server?.close(); // no new requests; in-flight ones finish
  const { undelivered } = await sink.shutdown({ timeoutMs: options.timeoutMs });
  // Synchronous on purpose: the process is about to exit.
  if (undelivered.length > 0)
    appendFileSync(options.spoolFile, undelivered.map((item) => JSON.stringify(item) + '\n').join(''));
  return undelivered.length;
}

// Wire it once, at startup:
//   process.once('SIGTERM', () => {
//     gracefulShutdown(sink, { timeoutMs: 10_000, spoolFile: '/var/spool/app/undelivered.ndjson', server })
//       .then((left) => { process.exitCode = left === 0 ? 0 : 1; });
//   });
// #endregion shutdown

export async function main(): Promise<{
  left: number;
  spooled: number;
  deadLetterCodes: string[];
  destroyed: boolean;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-shutdown-'));
  const spoolFile = join(dir, 'undelivered.ndjson');
  const deadLetterCodes: string[] = [];
  // The database accepts the first batch, then stops answering.
  let calls = 0;
  const sink = new BlockingWritable<{ id: number }>(
    () => (calls++ === 0 ? Promise.resolve() : new Promise<void>(() => {})),
    {
      batchSize: 50,
      onDeadLetter: (_items, error) => {
        deadLetterCodes.push(error.code); // 'ERR_SHUTDOWN_TIMEOUT', reason 'shutdown_timeout'
      },
    },
  );
  for (let id = 0; id < 120; id++) sink.write({ id });
  try {
    const left = await gracefulShutdown(sink, { timeoutMs: 50, spoolFile });
    const spooled = (await readFile(spoolFile, 'utf8')).trim().split('\n').length;
    return { left, spooled, deadLetterCodes, destroyed: sink.destroyed };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (require.main === module) main().then(console.log, console.error);
