import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type * as Log from '../lib/disk/log';
import { median } from './common';
import { distDir } from './sluice';

/**
 * Reopening a large disk log (issue 13): how long a restart after a crash with a big backlog
 * waits before the first item flows, and what it costs meanwhile. Writes `--records` records of
 * `--payload` bytes (default 1,000,000 of 1,000: about 1 GB) with fsync 'never', then opens the
 * log `--runs` times (default 5), each in a fresh process, and prints the medians: time to open,
 * CPU time, the longest event-loop stall during the open, and peak RSS.
 *
 *   npm run bench:disk-reopen -- [--records N] [--payload BYTES] [--runs N] [--dir DIR]
 *
 * `SLUICE_DIST=<another build's dist/>` measures another build on the same log. The log goes in a
 * fresh directory under `--dir` (default: the OS's temp), deleted at the end. Reads come from the
 * page cache (the log was just written): on a cold disk, the read time adds to every row.
 */

const { DiskLog } = createRequire(__filename)(path.join(distDir, 'disk', 'log.js')) as typeof Log;

interface Opened {
  openMs: number;
  cpuMs: number;
  maxStallMs: number;
  peakRssMB: number;
  records: number;
}

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : (process.argv[at + 1] as string);
}

/** In the child: one open, measured; prints one JSON line. */
async function openOnce(dir: string): Promise<void> {
  const stalls = monitorEventLoopDelay({ resolution: 5 });
  stalls.enable();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const log = await DiskLog.open({ path: dir, fsync: 'never' });
  const openMs = performance.now() - started;
  stalls.disable();
  const used = process.cpuUsage(cpu);
  const opened: Opened = {
    openMs,
    cpuMs: (used.user + used.system) / 1000,
    maxStallMs: stalls.max / 1e6,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    records: log.stats().recordsHeld,
  };
  await log.close();
  process.stdout.write(`${JSON.stringify(opened)}\n`);
}

async function fill(dir: string, records: number, payloadBytes: number): Promise<void> {
  const log = await DiskLog.open({ path: dir, fsync: 'never' });
  const group = Array.from({ length: 1000 }, () => Buffer.alloc(payloadBytes, 'x'));
  for (let written = 0; written < records; written += group.length) {
    await log.appendGroup(group.slice(0, Math.min(group.length, records - written)));
  }
  await log.close();
}

async function main(): Promise<void> {
  const child = process.argv.indexOf('--child');
  if (child >= 0) return openOnce(process.argv[child + 1] as string);
  const records = Number(option('--records', '1000000'));
  const payload = Number(option('--payload', '1000'));
  const runs = Number(option('--runs', '5'));
  const dir = mkdtempSync(path.join(option('--dir', tmpdir()), 'sluice-reopen-'));
  try {
    await fill(dir, records, payload);
    const opened: Opened[] = [];
    for (let run = 0; run < runs; run++) {
      const result = spawnSync(process.execPath, [__filename, '--child', dir], { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`the open failed: ${result.stderr}`);
      opened.push(JSON.parse(result.stdout) as Opened);
    }
    const column = (pick: (o: Opened) => number): string =>
      `${median(opened.map(pick)).toFixed(0)} (${Math.min(...opened.map(pick)).toFixed(0)}–${Math.max(...opened.map(pick)).toFixed(0)})`;
    const gigabytes = ((records * (payload + 16)) / 1e9).toFixed(2);
    console.log(`Reopening a log of ${records.toLocaleString('en')} records of ${payload} bytes (${gigabytes} GB)`);
    console.log(`sluice from ${distDir}; Node ${process.version}; ${cpus().length} × ${cpus()[0]?.model ?? '?'}`);
    console.log(`medians of ${runs} opens (min–max), each in a fresh process:\n`);
    console.log('| open ms | CPU ms | longest event-loop stall ms | peak RSS MB | records found |');
    console.log('| --- | --- | --- | --- | --- |');
    console.log(
      `| ${column((o) => o.openMs)} | ${column((o) => o.cpuMs)} | ${column((o) => o.maxStallMs)} | ${column((o) => o.peakRssMB)} | ${median(opened.map((o) => o.records)).toLocaleString('en')} |`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
