import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PEER_RANGES } from '../../lib/cli/errors';
import { isolatedTempDir } from '../support/isolated-dir';

/**
 * The CLI as an installed package sees it without its optional peers: `sluice` copied (built dist/,
 * package.json) into a temporary node_modules with no driver or broker client beside it. Each command
 * that needs one fails with ERR_CLI_CLIENT_MISSING (exit 2, docs/cli.md "Exit codes") and the
 * `npm install` to run, with the version range package.json's peerDependencies gives.
 */
const ROOT = join(__dirname, '..', '..');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  peerDependencies: Record<string, string>;
};

it('PEER_RANGES are package.json peerDependencies', () => {
  expect(PEER_RANGES).toEqual(PACKAGE.peerDependencies);
});

describe('sluice without its optional peers', () => {
  let dir: string;
  let main: string;
  beforeAll(() => {
    dir = isolatedTempDir(Object.keys(PACKAGE.peerDependencies), 'sluice-cli-peers-');
    const installed = join(dir, 'node_modules', 'sluice');
    cpSync(join(ROOT, 'dist'), join(installed, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(installed, 'package.json'));
    writeFileSync(join(dir, 'package.json'), '{"name":"consumer","private":true}');
    writeFileSync(join(dir, 'in.ndjson'), '{"a":1}\n');
    main = join(installed, 'dist', 'cli', 'main.js');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs main() in a child process: what it throws (code, exit code, message). */
  function thrown(args: string[]): unknown {
    const script = `
      const io = { out: process.stdout, err: process.stderr, stdin: process.stdin };
      require(${JSON.stringify(main)}).main(${JSON.stringify(args)}, io).then(
        (code) => { console.log('RESULT ' + JSON.stringify({ returned: code })); process.exit(0); },
        (error) => { console.log('RESULT ' + JSON.stringify({ code: error.code, exitCode: error.exitCode, message: error.message })); process.exit(0); });`;
    const result = spawnSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8', timeout: 20_000 });
    const line = result.stdout.split('\n').find((text) => text.startsWith('RESULT '));
    if (line === undefined) throw new Error(`no result: ${result.stdout}${result.stderr}`);
    return JSON.parse(line.slice('RESULT '.length)) as unknown;
  }

  it.each([
    [
      'ingest into SQLite',
      ['ingest', 'in.ndjson', '--into', 'sqlite:out.db', '--table', 't', '-q'],
      'Writing to SQLite needs the "better-sqlite3" package: npm install better-sqlite3@">=12 <13"',
    ],
    [
      'ingest into PostgreSQL',
      ['ingest', 'in.ndjson', '--into', 'postgres://127.0.0.1:1/db', '--table', 't', '-q'],
      'Writing to PostgreSQL needs the "pg" package: npm install pg@"^8"',
    ],
    [
      'the demo',
      ['demo', '--events', '10', '-q'],
      'The demo needs the "better-sqlite3" package: npm install better-sqlite3@">=12 <13"',
    ],
    [
      'publish to Redis',
      ['publish', 'in.ndjson', '--into', 'redis://127.0.0.1:1/events', '-q'],
      'sluice publish to redis:// needs the "ioredis" package: npm install ioredis@">=5 <7"',
    ],
    [
      'publish to RabbitMQ',
      ['publish', 'in.ndjson', '--into', 'amqp://127.0.0.1:1/events', '-q'],
      'sluice publish to amqp:// needs the "amqplib" package: npm install amqplib@">=0.10 <3"',
    ],
    [
      'publish to NATS',
      ['publish', 'in.ndjson', '--into', 'nats://127.0.0.1:1/events.in', '-q'],
      'sluice publish to nats:// needs the "@nats-io/transport-node" and "@nats-io/jetstream" packages: npm install @nats-io/transport-node@"^3" @nats-io/jetstream@"^3"',
    ],
  ])('%s: ERR_CLI_CLIENT_MISSING, exit 2, the install with its range', (_what, args, message) => {
    expect(thrown(args)).toEqual({ code: 'ERR_CLI_CLIENT_MISSING', exitCode: 2, message });
  });

  it('the command exits 2 with that one line', () => {
    const result = spawnSync(process.execPath, [main, 'demo', '--events', '10', '-q'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(
      'sluice: The demo needs the "better-sqlite3" package: npm install better-sqlite3@">=12 <13"\n',
    );
  });
});
