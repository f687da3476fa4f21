import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable, type Writable } from 'node:stream';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { sluice } from './sluice';
import type { BackpressureWritable } from '../lib/index';

/**
 * A burst far larger than RAM into a disk-backed sluice (issue 13): does RSS stay flat while the
 * log grows to gigabytes? A producer writes `--items` items of `--payload` bytes (default 5,000,000
 * of 1 KiB: about 5 GiB of records) as fast as it can through a disk-backed `BlockingWritable`
 * (sluice-block's settings: batchSize 100, maxBufferSize 10,000; disk.maxBytes 8 GiB) into a sink
 * whose flush does not resolve until the burst is over. RSS, heap and the log's bytes on disk are
 * sampled every 250 ms. Then the sink is released and the log drains (completely, or for at most
 * `--drain-seconds`); the items delivered are checked to be the items written, in order.
 *
 *   npm run bench:disk-burst -- [--items N] [--payload BYTES] [--fsync never|interval|always]
 *     [--producer yielding|pipeline] [--drain-seconds S] [--dir DIR]
 *
 * `yielding` (default) honours `write()`/'drain' and yields to the event loop every 1,000 items;
 * `pipeline` is `pipeline(Readable.from(generator), sluice)`, which writes synchronously for as
 * long as `write()` returns true. The log goes in a fresh directory under `--dir` (default: the
 * OS's temp), deleted at the end; the run refuses to start without room for it plus 2 GiB.
 */

interface Args {
  items: number;
  payload: number;
  fsync: 'never' | 'interval' | 'always';
  producer: 'yielding' | 'pipeline';
  drainSeconds: number;
  dir: string;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    items: 5_000_000,
    payload: 1024,
    fsync: 'interval',
    producer: 'yielding',
    drainSeconds: Infinity,
    dir: os.tmpdir(),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--items') args.items = Number(value);
    else if (flag === '--payload') args.payload = Number(value);
    else if (flag === '--drain-seconds') args.drainSeconds = Number(value);
    else if (flag === '--dir') args.dir = value;
    else if (flag === '--fsync' && (value === 'never' || value === 'interval' || value === 'always'))
      args.fsync = value;
    else if (flag === '--producer' && (value === 'yielding' || value === 'pipeline')) args.producer = value;
    else throw new Error(`unknown flag or value: ${flag} ${value}`);
  }
  if (!Number.isInteger(args.items) || args.items < 1) throw new Error('--items must be an integer >= 1');
  if (!Number.isInteger(args.payload) || args.payload < 16) throw new Error('--payload must be an integer >= 16');
  if (!(args.drainSeconds > 0)) throw new Error('--drain-seconds must be > 0');
  return args;
}

interface BurstItem {
  id: number;
  payload: string;
}

/** One sample of the process and the log. */
interface Sample {
  /** ms since the burst started */
  t: number;
  phase: 'burst' | 'drain';
  rss: number;
  heapUsed: number;
  /** The heap's reserved size: what of RSS the heap takes, garbage and free space included. */
  heapTotal: number;
  /** Buffers' memory (outside the heap, inside RSS). */
  arrayBuffers: number;
  /** Bytes of the files in the log's directory. */
  logBytes: number;
  /** Items given to write() so far. */
  written: number;
  /** Items whose write callback ran (appended to the log). */
  appended: number;
  delivered: number;
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const MAX_BYTES = 8 * GiB;
const SAMPLE_MS = 250;
const YIELD_EVERY = 1000;

function directoryBytes(dir: string): number {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    try {
      total += fs.statSync(path.join(dir, name)).size;
    } catch {
      // A segment deleted between readdir and stat (all delivered): it holds nothing any more.
    }
  }
  return total;
}

/** The bytes one record takes in the log: its JSON (the default codec) plus the 16-byte header. */
function recordBytes(item: BurstItem): number {
  return Buffer.byteLength(JSON.stringify(item)) + 16;
}

const mb = (bytes: number): string => (bytes / MiB).toFixed(0);
const gib = (bytes: number): string => (bytes / GiB).toFixed(2);
const k = (items: number): string => (items / 1000).toFixed(0);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // A shared filler and a unique suffix: a fresh string per item, as parsed input would be.
  const filler = 'x'.repeat(args.payload - 10);
  const makeItem = (id: number): BurstItem => ({ id, payload: `${filler}${String(id).padStart(10, '0')}` });
  const perRecord = recordBytes(makeItem(args.items - 1));
  const expectedBytes = args.items * perRecord;

  const { bavail, bsize } = fs.statfsSync(args.dir);
  const free = bavail * bsize;
  if (free < expectedBytes + 2 * GiB) {
    throw new Error(
      `${args.dir} has ${gib(free)} GiB free; the log needs about ${gib(expectedBytes)} GiB plus 2 GiB of margin: pass fewer --items or another --dir`,
    );
  }
  const dir = fs.mkdtempSync(path.join(args.dir, 'sluice-disk-burst-'));
  console.log(
    `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? '?'}, load ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; log in ${dir} (${gib(free)} GiB free)`,
  );
  console.log(
    `${args.items.toLocaleString('en')} items of ${args.payload} B (${gib(expectedBytes)} GiB of records), fsync '${args.fsync}', producer '${args.producer}', drain ${Number.isFinite(args.drainSeconds) ? `at most ${args.drainSeconds} s` : 'to the end'}`,
  );

  let gateOpen: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (gateOpen = resolve));
  let delivered = 0;
  let inOrder = true;
  const stream: BackpressureWritable<BurstItem> = new sluice.BlockingWritable<BurstItem>(
    async (batch) => {
      await gate;
      if (batch[0]?.id !== delivered) inOrder = false;
      delivered += batch.length;
    },
    {
      batchSize: 100,
      maxBufferSize: 10_000,
      maxBlockTimeMs: Infinity,
      disk: { path: dir, maxBytes: MAX_BYTES, fsync: args.fsync },
    },
  );
  const writable: Writable = stream;

  const samples: Sample[] = [];
  let phase: Sample['phase'] = 'burst';
  let written = 0;
  let appended = 0;
  const onAppended = (error: Error | null | undefined, accepted?: boolean): void => {
    if (error === null || error === undefined) {
      if (accepted === true) appended++;
    }
  };
  (globalThis as { gc?: () => void }).gc?.();
  const baseRss = process.memoryUsage().rss;
  const started = performance.now();
  const sample = (): void => {
    const { rss, heapUsed, heapTotal, arrayBuffers } = process.memoryUsage();
    const logBytes = directoryBytes(dir);
    samples.push({
      t: performance.now() - started,
      phase,
      rss,
      heapUsed,
      heapTotal,
      arrayBuffers,
      logBytes,
      written,
      // pipe() passes no write callbacks: estimated from the log's bytes then.
      appended: args.producer === 'pipeline' ? Math.min(written, Math.floor(logBytes / perRecord)) : appended,
      delivered,
    });
  };
  sample();
  const sampler = setInterval(sample, SAMPLE_MS);

  try {
    // ---- the burst: everything written and appended while the sink is stalled
    if (args.producer === 'pipeline') {
      const source = Readable.from(
        (function* () {
          for (let i = 0; i < args.items; i++) {
            written++;
            yield makeItem(i);
          }
        })(),
      );
      // pipeline() would end the stream (and wait for the stalled sink): pipe without ending instead.
      source.pipe(writable, { end: false });
      await once(source, 'end');
    } else {
      for (let i = 0; i < args.items; i++) {
        written++;
        if (!stream.write(makeItem(i), onAppended)) await once(writable, 'drain');
        else if (i % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop();
      }
    }
    // The last item's callback runs once everything before it is in the log.
    await new Promise<void>((resolve, reject) =>
      stream.write(makeItem(args.items), (error) => (error ? reject(error) : resolve())),
    );
    written++;
    sample();
    const burstMs = performance.now() - started;
    const burstEnd = samples[samples.length - 1] as Sample;

    // ---- the drain: the sink is released
    phase = 'drain';
    gateOpen();
    const drainStarted = performance.now();
    const ended = new Promise<void>((resolve, reject) => {
      stream.once('finish', resolve);
      stream.once('error', reject);
    });
    stream.end();
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<'limit'>((resolve) => {
      if (Number.isFinite(args.drainSeconds)) timer = setTimeout(() => resolve('limit'), args.drainSeconds * 1000);
    });
    const how = await Promise.race([ended.then(() => 'finished' as const), limit]);
    clearTimeout(timer);
    sample();
    const drainMs = performance.now() - drainStarted;
    const drainedTo = samples[samples.length - 1] as Sample;
    if (how === 'limit') {
      // Undelivered items stay in the log (for a next run); this one deletes it.
      stream.destroy();
      await once(writable, 'close');
    }
    clearInterval(sampler);
    report(args, samples, { baseRss, burstMs, burstEnd, drainMs, drainedTo, how, inOrder, total: written });
  } finally {
    clearInterval(sampler);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Outcome {
  baseRss: number;
  burstMs: number;
  burstEnd: Sample;
  drainMs: number;
  drainedTo: Sample;
  how: 'finished' | 'limit';
  inOrder: boolean;
  total: number;
}

function report(args: Args, samples: Sample[], o: Outcome): void {
  const burst = samples.filter((s) => s.phase === 'burst');
  const drain = samples.filter((s) => s.phase === 'drain');
  const peak = (list: Sample[], key: 'rss' | 'heapUsed' | 'heapTotal' | 'arrayBuffers' | 'logBytes'): number =>
    Math.max(...list.map((s) => s[key]));
  // The first sample at which a quarter, half, ... of the items had been appended to the log.
  const at = (fraction: number): Sample =>
    burst.find((s) => s.appended >= fraction * o.total) ?? (burst[burst.length - 1] as Sample);
  const rows: string[][] = [
    ['baseline (before the burst)', '0', '0', mb(o.baseRss), '–', '–', '–'],
    ...[0.25, 0.5, 0.75].map((f) => {
      const s = at(f);
      return [
        `${f * 100} % appended`,
        (s.t / 1000).toFixed(1),
        gib(s.logBytes),
        mb(s.rss),
        `${mb(s.heapUsed)} / ${mb(s.heapTotal)}`,
        mb(s.arrayBuffers),
        k(s.written - s.appended),
      ];
    }),
    [
      'end of the burst',
      (o.burstEnd.t / 1000).toFixed(1),
      gib(o.burstEnd.logBytes),
      mb(o.burstEnd.rss),
      `${mb(o.burstEnd.heapUsed)} / ${mb(o.burstEnd.heapTotal)}`,
      mb(o.burstEnd.arrayBuffers),
      k(o.burstEnd.written - o.burstEnd.appended),
    ],
    [
      'peak during the burst',
      '–',
      gib(peak(burst, 'logBytes')),
      mb(peak(burst, 'rss')),
      `${mb(peak(burst, 'heapUsed'))} / ${mb(peak(burst, 'heapTotal'))}`,
      mb(peak(burst, 'arrayBuffers')),
      '–',
    ],
    [
      o.how === 'finished' ? 'end of the drain' : `drain stopped after ${args.drainSeconds} s`,
      (o.drainedTo.t / 1000).toFixed(1),
      gib(o.drainedTo.logBytes),
      mb(o.drainedTo.rss),
      `${mb(o.drainedTo.heapUsed)} / ${mb(o.drainedTo.heapTotal)}`,
      mb(o.drainedTo.arrayBuffers),
      '–',
    ],
    [
      'peak during the drain',
      '–',
      '–',
      mb(peak(drain, 'rss')),
      `${mb(peak(drain, 'heapUsed'))} / ${mb(peak(drain, 'heapTotal'))}`,
      mb(peak(drain, 'arrayBuffers')),
      '–',
    ],
  ];
  const header = [
    'moment',
    'time s',
    'log on disk GiB',
    'RSS MiB',
    'heap used / total MiB',
    'buffers MiB',
    'written, not yet appended (k items)',
  ];
  console.log('');
  console.log(`| ${header.join(' | ')} |`);
  console.log(`| ${header.map(() => '---').join(' | ')} |`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  const burstSeconds = o.burstMs / 1000;
  const drainSeconds = o.drainMs / 1000;
  const logBytes = o.burstEnd.logBytes;
  console.log('');
  console.log(
    `burst: ${o.total.toLocaleString('en')} items, ${gib(logBytes)} GiB in the log in ${burstSeconds.toFixed(1)} s: ${Math.round(o.total / burstSeconds).toLocaleString('en')} items/s, ${(logBytes / MiB / burstSeconds).toFixed(0)} MiB/s; peak RSS ${mb(peak(burst, 'rss'))} MiB (baseline ${mb(o.baseRss)} MiB)`,
  );
  console.log(
    `drain: ${o.drainedTo.delivered.toLocaleString('en')} of ${o.total.toLocaleString('en')} items delivered (${o.how === 'finished' ? 'all' : 'stopped at the limit'}) in ${drainSeconds.toFixed(1)} s: ${Math.round(o.drainedTo.delivered / drainSeconds).toLocaleString('en')} items/s; in order: ${o.inOrder ? 'yes' : 'NO'}; peak RSS ${mb(peak(drain, 'rss'))} MiB`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
