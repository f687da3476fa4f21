/**
 * Shared by the broker specs, which run against the real local servers (never mocks):
 * NATS with JetStream (127.0.0.1:4222), Redis (6379), RabbitMQ (5672, guest/guest).
 *
 * A suite whose server is unreachable is skipped with a message saying so; with
 * SLUICE_REQUIRE_BROKERS=1 (CI, see .ci/run) its availability test fails instead.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

export const REDIS_URL = process.env.SLUICE_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const NATS_URL = process.env.SLUICE_NATS_URL ?? 'nats://127.0.0.1:4222';
export const AMQP_URL = process.env.SLUICE_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

const REQUIRED = process.env.SLUICE_REQUIRE_BROKERS === '1';

/** Whether a TCP connection to `url`'s host and port opens, asked in a child so that it can run at load time. */
function probe(url: string): string {
  const { hostname, port } = new URL(url);
  const script = `require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) })
    .setTimeout(3000, function () { this.destroy(new Error('timed out')); })
    .on('connect', function () { this.end(); process.exit(0); })
    .on('error', (e) => { console.error(e.code || e.message); process.exit(1); });`;
  const result = spawnSync(process.execPath, ['-e', script, hostname, port], { encoding: 'utf8', timeout: 10_000 });
  return result.status === 0 ? '' : `${hostname}:${port}: ${result.stderr.trim() || 'no answer'}`;
}

/**
 * `describe` for a suite that needs `name`'s server at `url`: skipped, with a warning, when it
 * is unreachable, unless SLUICE_REQUIRE_BROKERS=1, where an availability test fails instead.
 */
export function describeBroker(name: string, url: string, suite: () => void): void {
  const why = probe(url);
  if (why !== '' && !REQUIRED) {
    console.warn(
      `SKIPPING the ${name} tests: ${name} is unreachable (${why}). Set SLUICE_REQUIRE_BROKERS=1 to make this a failure.`,
    );
  }
  describe(`${name} availability`, () => {
    (REQUIRED ? it : it.skip)('is reachable when SLUICE_REQUIRE_BROKERS=1', () => {
      expect({ reachable: why === '', why }).toEqual({ reachable: true, why: '' });
    });
  });
  (why === '' ? describe : describe.skip)(name, suite);
}

let counter = 0;
/** A name no other test (or run) uses, for streams, groups, queues and subjects. */
export function uniqueName(prefix: string): string {
  return `sluice_${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`;
}

/**
 * Polls `check` until it returns a value other than undefined/false; fails after `timeoutMs`.
 * A bounded wait on a real server, not a timing assertion: the test asserts what it returns.
 */
export async function waitFor<R>(
  what: string,
  check: () => R | Promise<R>,
  timeoutMs = 15_000,
): Promise<Exclude<R, false | undefined>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as Exclude<R, false | undefined>;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A promise with its resolve function, for sinks a test releases by hand. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A TCP proxy to a real server that a test can cut (every connection destroyed, new ones refused
 * at once) and restore: a broker lost mid-run, without stopping the broker other tests use.
 */
export class CuttableProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #down = false;
  #muted = false;
  /** While held: what the server sent, per client socket, to pass on at release(). */
  #held: Map<Socket, Buffer[]> | undefined;
  /** Connections accepted (and passed on to the server). */
  accepted = 0;
  /** Connections refused while down: the client is trying to reconnect. */
  refused = 0;

  constructor(target: { host: string; port: number }) {
    this.#server = createServer((client) => {
      if (this.#down) {
        this.refused++;
        client.destroy();
        return;
      }
      this.accepted++;
      const upstream = netConnect(target.port, target.host);
      for (const [from, to] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.#sockets.add(from);
        from.on('error', () => to.destroy());
        from.on('close', () => {
          this.#sockets.delete(from);
          to.destroy();
        });
        // While muted, what the server sends is dropped: the client waits for replies that never come.
        // While held, it is kept and passed on at release(): a network that stalls, then recovers.
        from.on('data', (chunk: Buffer) => {
          if (from !== upstream) to.write(chunk);
          else if (this.#held !== undefined) this.#held.set(to, [...(this.#held.get(to) ?? []), chunk]);
          else if (!this.#muted) to.write(chunk);
        });
      }
    });
  }

  /** Listens on a free local port; returns it. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as { port: number }).port;
  }

  /** `url` (of the target server) with its port replaced by the proxy's. */
  via(url: string): string {
    const rewritten = new URL(url);
    rewritten.port = String((this.#server.address() as { port: number }).port);
    return rewritten.toString().replace(/\/$/, '');
  }

  /** From now on, drops what the server sends (the client's requests still reach it). */
  mute(): void {
    this.#muted = true;
  }

  /** From now on, keeps what the server sends until release() (the client's requests still reach it). */
  hold(): void {
    this.#held ??= new Map();
  }

  /** Passes on what was held, in order, and stops holding. */
  release(): void {
    const held = this.#held;
    this.#held = undefined;
    for (const [client, chunks] of held ?? []) for (const chunk of chunks) if (!client.destroyed) client.write(chunk);
  }

  cut(): void {
    this.#down = true;
    this.#muted = false;
    this.#held = undefined;
    for (const socket of this.#sockets) socket.destroy();
  }

  restore(): void {
    this.#down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Runs `test` with a listening {@link CuttableProxy} to the server at `url`; closes the proxy afterwards. */
export async function withProxy<R>(url: string, test: (proxy: CuttableProxy) => Promise<R>): Promise<R> {
  const { hostname, port } = new URL(url);
  const proxy = new CuttableProxy({ host: hostname, port: Number(port) });
  await proxy.listen();
  try {
    return await test(proxy);
  } finally {
    await proxy.close();
  }
}

/** What a doomed consumer (spec/brokers/fixtures) printed before it was killed: the batch it hung on, and how many it acked. */
export interface DoomedReport {
  hung: number[];
  acked: number;
}

/**
 * Runs a consumer fixture (`node fixture ...args`) until it prints its report line, then kills it
 * with SIGKILL, as a crash would, and resolves the report once the process is gone. Fails, with
 * the child killed, if it exits, writes to stderr or has not reported within `timeoutMs`.
 */
export async function killAfterReport(fixture: string, args: string[], timeoutMs = 15_000): Promise<DoomedReport> {
  const child = spawn(process.execPath, [fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once('exit', (_code, signal) => resolve(signal)),
  );
  let line: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    line = await Promise.race([
      (async () => {
        for await (const text of createInterface({ input: child.stdout })) return text;
        return undefined;
      })(),
      exited.then(() => undefined),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs))),
    ]);
    expect({ line: line !== undefined, stderr }).toEqual({ line: true, stderr: '' });
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
  }
  expect(await exited).toBe('SIGKILL');
  return JSON.parse(line as string) as DoomedReport;
}
