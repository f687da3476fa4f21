import { parseIngestArgs } from '../../lib/cli/args';
import { runCli, tempDir } from './helpers';

describe('sluice command line: usage errors exit 2 with one line naming the problem', () => {
  let dir: string;
  let cleanup: () => void;
  beforeAll(() => ({ dir, cleanup } = tempDir()));
  afterAll(() => cleanup());

  it.each([
    [
      'an unknown flag',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--bogus'],
      /Unknown option '--bogus'/,
    ],
    ['a missing --into', ['ingest', 'x.ndjson', '--table', 't'], /needs --into/],
    ['a missing --table', ['ingest', 'x.ndjson', '--into', 'sqlite:x.db'], /needs --table/],
    [
      'a table name that is not an identifier',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 'drop table;'],
      /--table must be an identifier.*"drop table;"/,
    ],
    [
      'an --into that is neither sqlite: nor postgres://',
      ['ingest', 'x.ndjson', '--into', 'mysql://h/db', '--table', 't'],
      /--into must be sqlite:PATH or postgres:\/\/URL/,
    ],
    [
      'a batch size of 0',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--batch-size', '0'],
      /--batch-size must be 'auto' or an integer >= 1. Received "0"/,
    ],
    [
      'a batch size that is neither auto nor a number',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--batch-size', 'adaptive'],
      /--batch-size must be 'auto' or an integer >= 1. Received "adaptive"/,
    ],
    [
      'a batch size above the buffer (a drop strategy)',
      [
        'ingest',
        'x.ndjson',
        '--into',
        'sqlite:x.db',
        '--table',
        't',
        '--strategy',
        'drop_oldest',
        '--max-buffer',
        '500',
        '--batch-size',
        '600',
      ],
      /--batch-size must be at most --max-buffer \(500\). Received 600/,
    ],
    [
      'a batch size above the critical count under block, which could never fill',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--batch-size', '9000'],
      /--batch-size must be at most 8000 with the block strategy: the input pauses at 80% of --max-buffer \(10000\), so a larger batch would never fill. Received 9000/,
    ],
    [
      'a batch size above the critical count for sluice publish',
      ['publish', 'x.ndjson', '--into', 'nats://127.0.0.1:4222/events.in', '--max-buffer', '100', '--batch-size', '90'],
      /--batch-size must be at most 80 with the block strategy.*--max-buffer \(100\).*Received 90/,
    ],
    [
      'a batch size above the critical count from a broker',
      ['ingest', 'nats://127.0.0.1:4222/S', '--into', 'sqlite:x.db', '--table', 't', '--batch-size', '9000'],
      /--batch-size must be at most 8000 with the block strategy.*Received 9000/,
    ],
    [
      'a negative batch size, echoed',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--batch-size', '-1'],
      /^sluice: The option --batch-size must be 'auto' or an integer >= 1. Received "-1"$/m,
    ],
    [
      'a negative number for another numeric flag, echoed',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--max-buffer', '-5'],
      /^sluice: The option --max-buffer must be an integer >= 1. Received "-5"$/m,
    ],
    [
      "a flag where a value should be: still parseArgs' own message",
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--retries', '-q'],
      /Option '--retries' argument is ambiguous/,
    ],
    [
      'a separator that does not group thousands (1,5 is not 15)',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--max-buffer', '1,5'],
      /^sluice: The option --max-buffer must be an integer >= 1. Received "1,5"$/m,
    ],
    [
      'a batch size with a separator that does not group thousands',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--batch-size', '1__0'],
      /--batch-size must be 'auto' or an integer >= 1. Received "1__0"/,
    ],
    [
      'a number too large to be exact',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--max-buffer', '9007199254740993'],
      /--max-buffer must be at most 9,007,199,254,740,991. Received "9007199254740993"/,
    ],
    [
      'an unknown strategy',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--strategy', 'fast'],
      /--strategy must be one of block, drop_oldest/,
    ],
    [
      'an unknown format',
      ['ingest', 'x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--format', 'xml'],
      /--format must be ndjson or csv/,
    ],
    ['an unknown command', ['ingestt'], /unknown command "ingestt"/],
    [
      'a missing input file',
      ['ingest', 'missing.ndjson', '--into', 'sqlite:x.db', '--table', 't'],
      /cannot read missing.ndjson: ENOENT/,
    ],
  ])('%s', async (_name, args, message) => {
    const result = await runCli(args, dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('prints the help on --help and exits 0', async () => {
    const result = await runCli(['ingest', '--help'], dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/sluice ingest \[FILE\|-\] --into/);
  });
});

describe('numbers', () => {
  it('take thousands separators that group by three: 10,000 and 10_000 are 10000', () => {
    for (const typed of ['10000', '10,000', '10_000', '1,000']) {
      const options = parseIngestArgs(['x.ndjson', '--into', 'sqlite:x.db', '--table', 't', '--max-buffer', typed]);
      expect({ typed, maxBuffer: options?.maxBuffer }).toEqual({
        typed,
        maxBuffer: Number(typed.replace(/[_,]/g, '')),
      });
    }
  });
});
