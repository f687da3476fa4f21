import { spawnSync } from 'node:child_process';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isolatedTempDir } from '../support/isolated-dir';

/**
 * The broker subpaths as an installed package sees them: `sluice` copied (built dist/ and
 * package.json) into a temporary node_modules with no broker client beside it. Importing a
 * subpath must load no client; building an edge must fail with ERR_BROKER_CLIENT_MISSING and
 * say what to install. `npm test` builds dist/ first.
 */
const ROOT = join(__dirname, '..', '..');

describe('sluice/nats, sluice/redis, sluice/amqp without their clients', () => {
  let dir: string;
  beforeAll(() => {
    dir = isolatedTempDir(['ioredis', 'amqplib', '@nats-io/transport-node'], 'sluice-peers-');
    const installed = join(dir, 'node_modules', 'sluice');
    cpSync(join(ROOT, 'dist'), join(installed, 'dist'), { recursive: true });
    cpSync(join(ROOT, 'package.json'), join(installed, 'package.json'));
    writeFileSync(join(dir, 'package.json'), '{"name":"consumer","private":true}');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs `script` in the temporary project; it prints one JSON line. */
  function run(script: string): unknown {
    const result = spawnSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8', timeout: 20_000 });
    expect(result.stderr).toBe('');
    return JSON.parse(result.stdout) as unknown;
  }

  it('imports every subpath and the root without loading a broker client', () => {
    const loaded = run(`
      const before = new Set(Object.keys(require.cache));
      const subpaths = ['sluice', 'sluice/nats', 'sluice/redis', 'sluice/amqp'].map((name) => Object.keys(require(name)).sort());
      const foreign = Object.keys(require.cache).filter((file) => !before.has(file) && !file.includes('/sluice/dist/'));
      console.log(JSON.stringify({ subpaths, foreign }));`);
    expect(loaded).toEqual({
      subpaths: [
        expect.arrayContaining(['BlockingWritable', 'BackpressureError']),
        expect.arrayContaining(['natsSink', 'JetStreamSource', 'endToEnd', 'BrokerSource', 'BrokerError']),
        expect.arrayContaining(['redisStreamSink', 'RedisStreamSource', 'endToEnd', 'BrokerSource', 'BrokerError']),
        expect.arrayContaining(['amqpSink', 'AmqpSource', 'endToEnd', 'BrokerSource', 'BrokerError']),
      ],
      foreign: [],
    });
  });

  const REDIS_INSTALL = 'sluice/redis needs the "ioredis" package: npm install ioredis';
  const AMQP_INSTALL = 'sluice/amqp needs the "amqplib" package: npm install amqplib';
  const NATS_INSTALL =
    'sluice/nats needs the "@nats-io/transport-node" and "@nats-io/jetstream" packages: npm install @nats-io/transport-node @nats-io/jetstream';
  it.each([
    ['sluice/redis', `edges.redisStreamSink({ stream: 'events' })`, REDIS_INSTALL],
    ['sluice/redis', `new edges.RedisStreamSource({ stream: 'events', group: 'g', consumer: 'c' })`, REDIS_INSTALL],
    ['sluice/nats', `edges.natsSink({ subject: 'events' })`, NATS_INSTALL],
    ['sluice/nats', `new edges.JetStreamSource({ stream: 'EVENTS', consumer: 'c' })`, NATS_INSTALL],
    ['sluice/amqp', `edges.amqpSink({ routingKey: 'events' })`, AMQP_INSTALL],
    ['sluice/amqp', `new edges.AmqpSource({ queue: 'events' })`, AMQP_INSTALL],
  ])('%s: %s fails with ERR_BROKER_CLIENT_MISSING naming the install', (subpath, build, message) => {
    const outcome = run(`
      const edges = require('${subpath}');
      try { ${build}; console.log(JSON.stringify({ built: true })); }
      catch (error) { console.log(JSON.stringify({ name: error.name, code: error.code, message: error.message, isBrokerError: error instanceof edges.BrokerError })); }`);
    expect(outcome).toEqual({ name: 'BrokerError', code: 'ERR_BROKER_CLIENT_MISSING', message, isBrokerError: true });
  });
});
