import { runCli, tempDir } from './helpers';

describe('sluice ingest/publish with a broker URL: usage errors exit 2 with one line naming the problem', () => {
  let dir: string;
  let cleanup: () => void;
  beforeAll(() => ({ dir, cleanup } = tempDir()));
  afterAll(() => cleanup());

  const into = ['--into', 'sqlite:x.db', '--table', 't'];
  it.each([
    [
      'a broker URL without a stream',
      ['ingest', 'nats://127.0.0.1:4222/', ...into],
      /must name one stream as its path/,
    ],
    [
      'an unknown URL parameter',
      ['ingest', 'nats://127.0.0.1:4222/S?group=g', ...into],
      /unknown parameter "group" for ingest \(it takes consumer, ack-wait-ms\)/,
    ],
    [
      'a parameter that is not a number',
      ['ingest', 'redis://127.0.0.1:6379/S?db=x', ...into],
      /the parameter "db" must be an integer >= 0. Received "x"/,
    ],
    ['--dedupe with a file', ['ingest', 'x.ndjson', ...into, '--dedupe'], /--dedupe needs a broker as input/],
    ['--idle-exit with a file', ['ingest', 'x.ndjson', ...into, '--idle-exit', '10'], /--idle-exit needs a broker/],
    [
      'a drop strategy from a broker',
      ['ingest', 'redis://127.0.0.1:6379/S', ...into, '--strategy', 'drop_oldest'],
      /From a broker the strategy is block/,
    ],
    ['CSV from a broker', ['ingest', 'amqp://127.0.0.1/q', ...into, '--format', 'csv'], /--format must be ndjson/],
    [
      '--dedupe with COPY',
      [
        'ingest',
        'nats://127.0.0.1/S',
        '--into',
        'postgres://127.0.0.1/test',
        '--table',
        't',
        '--dedupe',
        '--pg-method',
        'copy',
      ],
      /--dedupe needs --pg-method insert/,
    ],
    [
      '--id-column without --dedupe',
      ['ingest', 'nats://127.0.0.1/S', ...into, '--id-column', 'k'],
      /--id-column needs --dedupe/,
    ],
    ['publish without --into', ['publish', 'x.ndjson'], /sluice publish needs --into/],
    [
      'publish into a database',
      ['publish', 'x.ndjson', '--into', 'sqlite:x.db'],
      /must be a nats:\/\/, redis:\/\/ or amqp:\/\/ URL/,
    ],
    [
      'a password in a bad URL is masked',
      ['ingest', 'nats://bob:hunter22@127.0.0.1:4222/S?consumer=a b', ...into],
      /nats:\/\/bob:\*\*\*@127.0.0.1:4222.*consumer name must be/,
    ],
  ])('%s', async (_name, args, message) => {
    const result = await runCli(args, dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toContain('hunter22');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });
});
