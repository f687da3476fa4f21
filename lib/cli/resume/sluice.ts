/**
 * `--resumable`: the sluice of a resumable load. One batch at a time, in input order, each committed
 * with the load's progress (ResumableLoad.commit), with the parse rejects that ride among its rows.
 * A refused row is isolated inside the batch's transaction, so the sluice never splits a batch (its
 * halves would commit out of order) and never retries one: a batch that cannot commit, after
 * `--retries` for a failure that may pass, stops the run, and the next run resumes from the last commit.
 */
import { createBackpressureStream } from '../../index';
import { CliError, ExitCode, describe } from '../errors';
import { sleep } from '../sinks/sink';
import type { BackpressureError, BackpressureWritable } from '../../index';
import type { IngestOptions } from '../args';
import type { Row } from '../parse';
import type { RejectEntry, RejectsFile } from '../rejects';
import type { Sink } from '../sinks/sink';
import type { Stopping } from '../stopping';
import type { ResumableLoad } from './load';
import { rowBuffer } from '../row-buffer';

export function resumableSluice(run: {
  options: IngestOptions;
  sink: Sink;
  load: ResumableLoad;
  stopping: Stopping;
  rejects: RejectsFile;
  /** Called at each flush with the rows held (the status line's peak). */
  observe(bufferSize: number): void;
}): BackpressureWritable<Row> {
  const { options, sink, load, stopping, rejects } = run;
  const giveUp = stopping.giveUp.signal;
  const flush = async (items: Row[], { signal }: { signal: AbortSignal }): Promise<undefined> => {
    run.observe(sluice.getMetrics().bufferSize);
    for (let attempt = 0; ; attempt++) {
      if (giveUp.aborted) throw giveUp.reason;
      try {
        await load.commit(items, signal);
        return undefined;
      } catch (error) {
        if (giveUp.aborted) throw error;
        if (!(attempt < options.retries && sink.isTransient(error))) {
          const fatal = sink.isFatal(error);
          stopping.fail(fatal || error instanceof CliError ? error : notCommitted(error), fatal);
          throw error;
        }
      }
      // Full jitter under a doubling bound (50 ms, 100 ms, ... 1 s), as for a load that is not resumable.
      await sleep(Math.random() * Math.min(1000, 50 * 2 ** attempt), giveUp);
    }
  };
  const sluice: BackpressureWritable<Row> = createBackpressureStream<Row>(flush, {
    ...rowBuffer(options),
    // One batch at a time: the progress is a prefix of the input, so batches commit in its order.
    maxConcurrentFlushes: 1,
    retry: { maxRetries: 0 },
    // What the sluice gives up on was not committed: parse rejects go out as such, rows as undelivered
    // (the next run reads them again, and first cuts these lines off the rejects file).
    onDeadLetter: (items, error) => rejects.writeEach(items.map((item) => unsettled(item, causeOf(error)))),
  });
  return sluice;
}

/** A record not committed, as this run's rejects file says it: its parse error, or undelivered. */
export function unsettled(item: Row, why: string): RejectEntry {
  return item.error !== undefined
    ? { stage: 'parse', line: item.line, raw: item.raw, error: item.error }
    : { stage: 'undelivered', line: item.line, raw: item.raw, error: why };
}

function notCommitted(error: unknown): CliError {
  return new CliError(
    ExitCode.FAILED,
    `a batch could not be committed: ${describe(error)}; what was committed before it stays, and the same command resumes from there`,
    error,
  );
}

function causeOf(error: BackpressureError): string {
  return error.cause === undefined ? error.message : describe(error.cause);
}
