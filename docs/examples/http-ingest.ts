/**
 * HTTP ingest with load shedding: a `node:http` endpoint that takes JSON events
 * into a `block` sluice and answers `503 Service Unavailable` with `Retry-After`
 * while the sluice is `critical`, `blocked` or `draining`, instead of queueing
 * without bound. Clients back off; the process stays within `maxBufferSize`.
 */
import { request } from 'node:http';
import { finished } from 'node:stream/promises';
import type { AddressInfo } from 'node:net';
// #region ingest
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { BackpressureState, BlockingWritable, type BackpressureWritable, type FlushFunction } from '../../lib';

const SHED = new Set<BackpressureState>([
  BackpressureState.CRITICAL,
  BackpressureState.BLOCKED,
  BackpressureState.DRAINING,
]);

export function createIngestServer<T>(sink: BackpressureWritable<T>): Server {
  return createServer((req, res) => {
    void handle(sink, req, res);
  });
}

async function handle<T>(sink: BackpressureWritable<T>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'POST') return reply(res, 405, { error: 'POST only' });
  if (SHED.has(sink.state)) {
    // Shed load before reading the body: the client retries later, nothing piles up here.
    const seconds = Math.max(1, Math.ceil(sink.getMetrics().currentFlushIntervalMs / 1000));
    res.setHeader('Retry-After', String(seconds));
    req.resume(); // discard the body
    return reply(res, 503, { error: 'busy', state: sink.state });
  }
  let events: T[];
  try {
    events = parse<T>(await readBody(req, 1_000_000));
  } catch {
    return reply(res, 400, { error: 'expected a JSON event or array of events' });
  }
  // Resolves when each event is in the buffer (accepted), not when it reaches the sink.
  const accepted = await Promise.all(events.map((event) => write(sink, event)));
  const dropped = accepted.filter((ok) => !ok).length;
  reply(res, dropped === 0 ? 202 : 503, { accepted: events.length - dropped, dropped });
}

/** Resolves true when the sluice accepted the item, false when it dropped it (block: after maxBlockTimeMs). */
function write<T>(sink: BackpressureWritable<T>, item: T): Promise<boolean> {
  return new Promise((resolve, reject) => {
    sink.write(item, (error, accepted) => (error ? reject(error) : resolve(accepted !== false)));
  });
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > limit) throw new Error('body too large');
  }
  return body;
}

function parse<T>(body: string): T[] {
  const value = JSON.parse(body) as T | T[];
  return Array.isArray(value) ? value : [value];
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
// #endregion ingest

/** A POST with a fresh connection each time (agent: false), so nothing lingers. */
function post(port: number, body: unknown): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ port, method: 'POST', path: '/events', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

export async function main(): Promise<{ statuses: number[]; retryAfter: string | undefined; delivered: number }> {
  // A sink that stalls until `recover()`: a database having a bad minute.
  const delivered: unknown[] = [];
  let recover = (): void => {};
  let stalled: Promise<void> | undefined = new Promise<void>((resolve) => (recover = resolve));
  const flush: FlushFunction<unknown> = async (batch) => {
    if (stalled !== undefined) await stalled;
    delivered.push(...batch);
  };
  // critical from 8 held (0.8 × 10): the 9th event is shed.
  const sink = new BlockingWritable(flush, { maxBufferSize: 10, batchSize: 5 });
  const server = createIngestServer(sink);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const statuses: number[] = [];
  try {
    statuses.push((await post(port, [1, 2, 3, 4, 5, 6, 7, 8])).status); // 202: 8 held, now critical
    const shed = await post(port, { n: 9 }); // 503 + Retry-After
    statuses.push(shed.status);
    stalled = undefined;
    recover(); // the database is back
    await sink.drain(); // resolves once nothing is held
    statuses.push((await post(port, { n: 10 })).status); // 202 again
    sink.end();
    await finished(sink);
    return { statuses, retryAfter: shed.retryAfter, delivered: delivered.length };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

if (require.main === module) main().then(console.log, console.error);
