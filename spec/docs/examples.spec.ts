/**
 * Every file in docs/examples compiles (ts-jest type-checks it) and runs here, so
 * the guide and recipes that embed them cannot rot. Each run must leave no
 * handle behind that would keep a process alive.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createNoopMeter, type BatchObservableCallback, type Meter, type Observable } from '@opentelemetry/api';
import { main as batchingTransform } from '../../docs/examples/batching-transform';
import { main as controller } from '../../docs/examples/controller';
import { main as etl } from '../../docs/examples/etl-file-to-db';
import { main as forAwait } from '../../docs/examples/for-await-producer';
import { main as httpIngest } from '../../docs/examples/http-ingest';
import { main as migrateWritable } from '../../docs/examples/migrate-writable';
import { main as otel } from '../../docs/examples/metrics-opentelemetry';
import { main as prometheus } from '../../docs/examples/metrics-prometheus';
import { main as quickStart } from '../../docs/examples/quick-start';
import { main as shutdown } from '../../docs/examples/shutdown';
import { main as telemetry } from '../../docs/examples/telemetry-drop-oldest';

const EXAMPLES = join(__dirname, '../../docs/examples');

/** Handles that keep the event loop alive (unref'd timers are not listed). */
function liveHandles(): string[] {
  return process.getActiveResourcesInfo().filter((kind) => kind !== 'FSReqPromise');
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Runs `run`, then checks it left no more live handles of any kind than there were before. */
async function runClean<R>(run: () => Promise<R>): Promise<R> {
  await settle();
  const before = count(liveHandles());
  const result = await run();
  // Sockets and their timers close a few turns after the example's promise settles: give them
  // those turns (a bounded number, not a clock), then any handle still open is a leak.
  let after = count(liveHandles());
  for (let turn = 0; turn < 40 && !noMoreThan(after, before); turn++) {
    await settle();
    after = count(liveHandles());
  }
  for (const [kind, n] of after) expect({ kind, n }).toEqual({ kind, n: Math.min(n, before.get(kind) ?? 0) });
  return result;
}

function noMoreThan(after: Map<string, number>, before: Map<string, number>): boolean {
  return [...after].every(([kind, n]) => n <= (before.get(kind) ?? 0));
}

function count(kinds: string[]): Map<string, number> {
  const map = new Map<string, number>();
  for (const kind of kinds) map.set(kind, (map.get(kind) ?? 0) + 1);
  return map;
}

describe('docs/examples', () => {
  it('has a test below for every example file', () => {
    const files = readdirSync(EXAMPLES).filter((file) => file.endsWith('.ts'));
    const tested = [
      'batching-transform.ts',
      'controller.ts',
      'etl-file-to-db.ts',
      'for-await-producer.ts',
      'http-ingest.ts',
      'metrics-opentelemetry.ts',
      'metrics-prometheus.ts',
      'migrate-writable.ts',
      'quick-start.ts',
      'shutdown.ts',
      'telemetry-drop-oldest.ts',
    ];
    expect(files.sort()).toEqual(tested);
  });

  it('quick-start: pipeline into block delivers every item within maxBufferSize', async () => {
    const result = await runClean(quickStart);
    expect(result.delivered).toBe(5_000);
    expect(result.batches).toBe(50);
    expect(result.maxHeld).toBeLessThanOrEqual(1_000);
  });

  it('etl-file-to-db: every good row lands, the one bad row is dead-lettered', async () => {
    await expect(runClean(etl)).resolves.toEqual({ inserted: 1_999, rejected: ['1235 ERR_FLUSH_FAILED'] });
  });

  it('http-ingest: 202 while normal, 503 + Retry-After while critical, 202 after recovery', async () => {
    const result = await runClean(httpIngest);
    expect(result.statuses).toEqual([202, 503, 202]);
    expect(Number(result.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(result.delivered).toBe(9);
  });

  it('telemetry-drop-oldest: never blocks, evicts the oldest, sends the newest, the books balance', async () => {
    const result = await runClean(telemetry);
    expect(result.offered).toBe(10_000);
    expect(result.evicted).toBeGreaterThan(0);
    expect(result.sent + result.evicted).toBe(10_000);
    expect(result.sent).toBeLessThanOrEqual(1_000 + 250);
    expect(result.newestSent).toBe(true);
  });

  it('for-await-producer: pauses on false, resumes on drain, loses nothing', async () => {
    const result = await runClean(forAwait);
    expect(result).toMatchObject({ written: 3_000, delivered: 3_000 });
    expect(result.pauses).toBeGreaterThan(0);
    expect(result.maxHeld).toBeLessThanOrEqual(500);
  });

  it("controller: the design doc's usage runs unchanged", async () => {
    await expect(runClean(controller)).resolves.toEqual({ stored: 1_000, accepted: 1_000, state: 'normal' });
  });

  it('metrics-prometheus: exports counters, gauges and drops by reason', async () => {
    const text = await runClean(prometheus);
    expect(text).toContain('sluice_events_offered_total{sluice="ingest"} 250');
    expect(text).toContain('sluice_events_flushed_total{sluice="ingest"} 100');
    expect(text).toContain('sluice_events_dropped_total{sluice="ingest",reason="rejected"} 150');
    expect(text).toContain('sluice_buffer_items{sluice="ingest"} 0');
    expect(text).toContain('sluice_state{sluice="ingest",state="normal"} 1');
    expect(text).toMatch(/# TYPE sluice_events_offered_total counter/);
  });

  it('metrics-opentelemetry: observes every instrument from one snapshot', async () => {
    const observed = new Map<string, number>();
    const callbacks: BatchObservableCallback[] = [];
    const collect = async (): Promise<void> => {
      for (const callback of callbacks) {
        await callback({
          observe: (instrument: Observable, value: number, attributes?: Record<string, unknown>) => {
            const name = (instrument as unknown as { name: string }).name;
            const reason = attributes?.['sluice.drop.reason'] as string | undefined;
            const state = attributes?.['sluice.state'] as string | undefined;
            const key = [name, reason, state].filter((part) => part !== undefined).join(':');
            observed.set(key, value);
          },
        });
      }
    };
    const instrument = (name: string): Observable => ({ name, addCallback() {}, removeCallback() {} }) as Observable;
    const meter: Meter = Object.assign(Object.create(createNoopMeter()) as Meter, {
      createObservableGauge: instrument,
      createObservableCounter: instrument,
      createObservableUpDownCounter: instrument,
      addBatchObservableCallback: (callback: BatchObservableCallback) => void callbacks.push(callback),
      // Collect once more as the exporter would on shutdown, then forget the callback.
      removeBatchObservableCallback: () => void collect().then(() => callbacks.splice(0)),
    });
    await runClean(() => otel(meter));
    await settle();
    expect(observed.get('sluice.events.offered')).toBe(42);
    expect(observed.get('sluice.events.flushed')).toBe(42);
    expect(observed.get('sluice.buffer.items')).toBe(0);
    expect(observed.get('sluice.events.dropped:evicted')).toBe(0);
    const states = [...observed].filter(([key, value]) => key.startsWith('sluice.state:') && value === 1);
    expect(states).toHaveLength(1);
    expect(callbacks).toHaveLength(0);
  });

  it('metrics-opentelemetry: runs against the no-op global meter', async () => {
    await expect(runClean(() => otel())).resolves.toBeUndefined();
  });

  it('shutdown: resolves what it could not deliver, spools it, and dead-letters it', async () => {
    await expect(runClean(shutdown)).resolves.toEqual({
      left: 70,
      spooled: 70,
      deadLetterCodes: ['ERR_SHUTDOWN_TIMEOUT'],
      destroyed: true,
    });
  });

  it('migrate-writable: the same _writev body, a sluice base class: every row in order, in batches of exactly batchSize', async () => {
    const { before, after, afterBatchSizes } = await runClean(() => migrateWritable(2_050));
    expect(before).toMatchObject({ stored: 2_050, inOrder: true });
    expect(before.largestBatch).toBeLessThanOrEqual(16); // Node's writev: what piled up under highWaterMark 16
    expect(after).toEqual({ stored: 2_050, inOrder: true, largestBatch: 100, batches: 21 });
    expect(afterBatchSizes).toEqual([...Array<number>(20).fill(100), 50]);
  });

  it('batching-transform: emits batches of batchSize, then the rest', async () => {
    const result = await runClean(batchingTransform);
    expect(result).toEqual({ batches: 5, rows: 2_100, sizes: [500, 500, 500, 500, 100] });
  });
});
