import { join } from 'node:path';
import { parseDemoArgs, parseIngestArgs, parsePublishArgs } from '../../lib/cli/args';
import { CliError } from '../../lib/cli/errors';
import { criticalCount } from '../../lib/engine';
import { DEFAULT_CONFIG } from '../../lib/index';
import { runCli, summaryOf, tempDir } from './helpers';

/**
 * `--batch-size` against `--max-buffer`. Under block the producer pauses at the critical count (80 % of the
 * bound), so a batch larger than that never fills and goes on the 100 ms flush timer; adaptive batching keeps
 * its sizes at or below critical / 2 (one batch fills while the other is written) but keeps `min` when `min`
 * is above that. So auto's bounds, and a fixed N, must come from what fits.
 */
const critical = (maxBuffer: number): number =>
  criticalCount({ highWatermark: DEFAULT_CONFIG.highWatermark, maxBufferSize: maxBuffer });

const FILE = ['x.ndjson', '--into', 'sqlite:x.db', '--table', 't'];
const BROKER = ['nats://127.0.0.1:4222/S', '--into', 'sqlite:x.db', '--table', 't'];
const PUBLISH = ['x.ndjson', '--into', 'nats://127.0.0.1:4222/events.in'];

/** The usage error a parse throws, as the user sees it. */
function refusal(parse: () => unknown): { code: string; exitCode: number; message: string } {
  try {
    parse();
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    return { code: error.code, exitCode: error.exitCode, message: error.message };
  }
  throw new Error('expected a usage error');
}

describe('--batch-size auto: bounds that a full batch can reach', () => {
  it.each([
    [10_000, { min: 100, max: 4000 }],
    [100_000, { min: 100, max: 10_000 }],
    [1000, { min: 100, max: 400 }],
    [300, { min: 100, max: 120 }],
    [50, { min: 20, max: 20 }],
    [2, { min: 1, max: 1 }],
    [1, { min: 1, max: 1 }],
  ])('--max-buffer %d: %o, for files, brokers and the demo', (maxBuffer, bounds) => {
    const flags = maxBuffer === 10_000 ? [] : ['--max-buffer', String(maxBuffer)];
    expect(parseIngestArgs([...FILE, ...flags])?.batchSize).toEqual(bounds);
    expect(parseIngestArgs([...FILE, ...flags, '--batch-size', 'auto'])?.batchSize).toEqual(bounds);
    expect(parseIngestArgs([...BROKER, ...flags])?.batchSize).toEqual(bounds);
    expect(parseDemoArgs(flags)?.batchSize).toEqual(bounds);
  });

  it('stays at or below critical / 2 for every --max-buffer from 1 to 3000, min never above max', () => {
    const wrong: string[] = [];
    for (let maxBuffer = 1; maxBuffer <= 3000; maxBuffer++) {
      const bounds = parseIngestArgs([...FILE, '--max-buffer', String(maxBuffer)])?.batchSize as {
        min: number;
        max: number;
      };
      const fits = Math.max(1, Math.floor(critical(maxBuffer) / 2));
      if (!(bounds.min >= 1 && bounds.min <= bounds.max && bounds.max <= fits)) {
        wrong.push(`${maxBuffer}: ${JSON.stringify(bounds)} (fits ${fits})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('sluice publish: 500 by default, less where 500 would not fill', () => {
    expect(parsePublishArgs(PUBLISH)?.batchSize).toBe(500);
    expect(parsePublishArgs([...PUBLISH, '--batch-size', 'auto'])?.batchSize).toBe(500);
    expect(parsePublishArgs([...PUBLISH, '--max-buffer', '1000'])?.batchSize).toBe(400);
    expect(parsePublishArgs([...PUBLISH, '--max-buffer', '50'])?.batchSize).toBe(20);
    expect(parsePublishArgs([...PUBLISH, '--max-buffer', '1'])?.batchSize).toBe(1);
  });

  describe('end to end', () => {
    let dir: string;
    let cleanup: () => void;
    beforeAll(() => ({ dir, cleanup } = tempDir()));
    afterAll(() => cleanup());

    // Before: batches of 50 under a producer paused at 40, one batch per 100 ms timer: about 400 rows/s, 12 s.
    // (Its speed is a benchmark's business, not a test's: the bounds it runs with are pinned above.)
    it('sluice demo --max-buffer 50 delivers every event', async () => {
      const db = join(dir, 'small-buffer.db');
      const result = await runCli(['demo', '--events', '5000', '--max-buffer', '50', '--db', db, '--json', '-q'], dir);
      expect(result.code).toBe(0);
      const summary = summaryOf(result) as unknown as Record<string, number>;
      expect(summary).toMatchObject({ delivered: 5000, rowsInDatabase: 5000, maxBuffer: 50 });
    }, 30_000);
  });
});

describe('--batch-size N: at most the critical count under block, at most --max-buffer otherwise', () => {
  it('block (the default): 8000 of 10,000 is accepted, 8001 is a usage error naming the flag, the value, the limit and why', () => {
    expect(parseIngestArgs([...FILE, '--batch-size', '8000'])?.batchSize).toBe(8000);
    expect(refusal(() => parseIngestArgs([...FILE, '--batch-size', '8001']))).toEqual({
      code: 'ERR_CLI_USAGE',
      exitCode: 2,
      message:
        'The option --batch-size must be at most 8000 with the block strategy: the input pauses at 80% of --max-buffer (10000), so a larger batch would never fill. Received 8001',
    });
  });

  it.each([
    [50, 40],
    [500, 400],
    [1, 1],
    [7, 6],
  ])('block, --max-buffer %d: at most %d', (maxBuffer, most) => {
    expect(critical(maxBuffer)).toBe(most);
    const flags = [...FILE, '--max-buffer', String(maxBuffer)];
    expect(parseIngestArgs([...flags, '--batch-size', String(most)])?.batchSize).toBe(most);
    expect(refusal(() => parseIngestArgs([...flags, '--batch-size', String(most + 1)])).message).toMatch(
      new RegExp(`--batch-size must be at most ${most} .*--max-buffer \\(${maxBuffer}\\).*Received ${most + 1}$`),
    );
  });

  it.each(['drop_oldest', 'drop_newest', 'sample'])('%s never pauses the input: up to --max-buffer', (strategy) => {
    const flags = [...FILE, '--strategy', strategy];
    expect(parseIngestArgs([...flags, '--batch-size', '10000'])?.batchSize).toBe(10_000);
    expect(refusal(() => parseIngestArgs([...flags, '--batch-size', '10001'])).message).toBe(
      'The option --batch-size must be at most --max-buffer (10000). Received 10001',
    );
  });

  it('--disk: the pause follows the log, so up to --max-buffer', () => {
    const stdin = ['-', '--into', 'sqlite:x.db', '--table', 't', '--disk', 'log'];
    expect(parseIngestArgs([...stdin, '--batch-size', '10000'])?.batchSize).toBe(10_000);
    expect(refusal(() => parseIngestArgs([...stdin, '--batch-size', '10001'])).message).toMatch(
      /at most --max-buffer \(10000\)/,
    );
  });

  it.each([
    ['ingest from a broker', (n: string) => parseIngestArgs([...BROKER, '--batch-size', n])],
    ['publish', (n: string) => parsePublishArgs([...PUBLISH, '--batch-size', n])],
    ['demo', (n: string) => parseDemoArgs(['--batch-size', n])],
  ])('%s (always block): the same limit', (_what, parse) => {
    expect(parse('8000')?.batchSize).toBe(8000);
    expect(refusal(() => parse('9000'))).toMatchObject({
      code: 'ERR_CLI_USAGE',
      message: expect.stringMatching(/--batch-size must be at most 8000 .*Received 9000$/) as unknown,
    });
  });

  it('from a broker, N between half and 80 % of --max-buffer is used as given (no silent clamp)', () => {
    expect(parseIngestArgs([...BROKER, '--max-buffer', '200', '--batch-size', '150'])?.batchSize).toBe(150);
  });
});
