import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type * as Log from '../lib/disk/log';
import type { FsyncMode } from '../lib/disk/options';
import { median } from './common';
import { distDir } from './sluice';

/**
 * Append throughput of the disk log (lib/disk, the storage layer of issue 13), per fsync mode,
 * with 100-byte records. Not part of `npm run bench` (the log is not wired into sluice yet).
 *
 *   npm run build && npx tsc -p benchmarks && node node_modules/.cache/sluice-bench/benchmarks/disk-log.js [--seconds S] [--runs N]
 *
 * Two producers: "grouped" appends 100 records per turn with up to 1,000 appends in flight (what
 * a stream's burst of writes looks like); "one by one" awaits each append before the next (the
 * worst case for 'always': one fsync per record). Each run writes into a fresh temporary
 * directory for S seconds (default 1); the table gives the median of N runs (default 5).
 */

const { DiskLog } = createRequire(__filename)(path.join(distDir, 'disk', 'log.js')) as typeof Log;

const RECORD_BYTES = 100;
const PER_TURN = 100;
const MAX_IN_FLIGHT = 1000;

interface Run {
  records: number;
  seconds: number;
}

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
}

async function grouped(log: Log.DiskLog, payload: Buffer, deadline: number): Promise<number> {
  let done = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const settled = (): void => {
    done++;
    inFlight--;
    if (inFlight <= MAX_IN_FLIGHT - PER_TURN) wake?.();
  };
  while (performance.now() < deadline) {
    for (let i = 0; i < PER_TURN; i++) {
      inFlight++;
      void log.append(payload).then(settled);
    }
    if (inFlight > MAX_IN_FLIGHT - PER_TURN) await new Promise<void>((resolve) => (wake = resolve));
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }
  while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
  return done;
}

async function oneByOne(log: Log.DiskLog, payload: Buffer, deadline: number): Promise<number> {
  let done = 0;
  while (performance.now() < deadline) {
    await log.append(payload);
    done++;
  }
  return done;
}

async function once(fsync: FsyncMode, producer: typeof grouped, seconds: number): Promise<Run> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-disk-bench-'));
  try {
    const log = await DiskLog.open({ path: dir, fsync });
    const payload = Buffer.alloc(RECORD_BYTES, 'x');
    const start = performance.now();
    const records = await producer(log, payload, start + seconds * 1000);
    const elapsed = (performance.now() - start) / 1000;
    await log.close();
    return { records, seconds: elapsed };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const seconds = option('--seconds', 1);
  const runs = option('--runs', 5);
  const rows: string[] = [];
  for (const [name, producer] of [
    ['grouped', grouped],
    ['one by one', oneByOne],
  ] as const) {
    for (const fsync of ['always', 'interval', 'never'] as const) {
      const rates: number[] = [];
      for (let run = 0; run < runs; run++) {
        const result = await once(fsync, producer, seconds);
        rates.push(result.records / result.seconds);
      }
      const rate = median(rates);
      const mbps = (rate * RECORD_BYTES) / 1e6;
      rows.push(
        `| ${name} | \`${fsync}\` | ${Math.round(rate).toLocaleString('en-US')} | ${mbps.toFixed(1)} | ${Math.round(Math.min(...rates)).toLocaleString('en-US')}–${Math.round(Math.max(...rates)).toLocaleString('en-US')} |`,
      );
    }
  }
  console.log(
    `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${tmpdir()}; ${RECORD_BYTES}-byte records, ${seconds} s per run, median of ${runs}`,
  );
  console.log('');
  console.log('| producer | fsync | records/s | MB/s (payload) | min–max records/s |');
  console.log('| --- | --- | ---: | ---: | ---: |');
  for (const row of rows) console.log(row);
}

void main();
