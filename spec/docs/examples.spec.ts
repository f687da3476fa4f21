/**
 * Every file in docs/examples compiles (type-checked with the project's tsconfig) and
 * runs here, so the guide and recipes that embed them cannot rot.
 *
 * Each example runs in a process of its own (spec/docs/fixtures/run-example.js) that
 * must exit on its own, with code 0, after printing what the example's `main()`
 * resolved: a handle the example leaves open keeps that process alive, and the test
 * fails with the handles that were still open. Counting handles inside the Jest
 * process instead was flaky (issue 9, defect 15): it also counted Jest's own timers
 * (the reporter's debounce), and gave closing sockets a bounded number of turns,
 * which a loaded machine can exceed. Nothing here depends on how fast the machine is:
 * the only clock is a generous limit for a process that never exits.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ts from 'typescript';
import type { main as BatchingTransform } from '../../docs/examples/batching-transform';
import type { main as Controller } from '../../docs/examples/controller';
import type { main as DurableQueue } from '../../docs/examples/durable-queue';
import type { main as Etl } from '../../docs/examples/etl-file-to-db';
import type { main as ForAwait } from '../../docs/examples/for-await-producer';
import type { main as HttpIngest } from '../../docs/examples/http-ingest';
import type { main as MigrateWritable } from '../../docs/examples/migrate-writable';
import type { main as Otel } from '../../docs/examples/metrics-opentelemetry';
import type { main as Prometheus } from '../../docs/examples/metrics-prometheus';
import type { main as QuickStart } from '../../docs/examples/quick-start';
import type { main as Shutdown } from '../../docs/examples/shutdown';
import type { main as Telemetry } from '../../docs/examples/telemetry-drop-oldest';

const ROOT = join(__dirname, '../..');
const EXAMPLES = join(ROOT, 'docs/examples');
const RUNNER = join(__dirname, 'fixtures/run-example.js');
/** A process still running after this long is not going to exit on its own (a run takes well under a second). */
const EXIT_LIMIT_MS = 60_000;
const TEST_TIMEOUT_MS = EXIT_LIMIT_MS + 30_000;

let outDir = '';

/** Compiles docs/examples (and lib/, which they import) into `outDir`; throws with the diagnostics if any. */
function compileExamples(into: string): void {
  const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    },
  });
  if (config === undefined) throw new Error('tsconfig.json could not be read');
  const files = readdirSync(EXAMPLES)
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(EXAMPLES, file));
  const program = ts.createProgram(files, {
    ...config.options,
    outDir: into,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    noEmitOnError: true,
  });
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...program.emit().diagnostics];
  if (diagnostics.length > 0) {
    throw new Error(
      ts.formatDiagnostics(diagnostics, {
        getCanonicalFileName: (name) => name,
        getCurrentDirectory: () => ROOT,
        getNewLine: () => '\n',
      }),
    );
  }
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  result: unknown;
  stdout: string;
  stderr: string;
}

/** Runs one example in a child process and waits for it to exit on its own. */
function runExample(name: string, mode?: 'otel-meter'): Promise<Exit> {
  const compiled = join(outDir, 'docs/examples', `${name}.js`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUNNER, compiled, ...(mode === undefined ? [] : [mode])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // The compiled examples live outside the repository: let them find its dependencies.
      env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const limit = setTimeout(() => {
      child.kill('SIGKILL');
      const handles = /^HANDLES (.*)$/m.exec(stdout)?.[1] ?? 'unknown (main() never resolved)';
      reject(
        new Error(
          `${name} did not exit on its own within ${EXIT_LIMIT_MS} ms: it leaves a handle open. ` +
            `Live handles after main() resolved: ${handles}\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, EXIT_LIMIT_MS);
    child.on('error', (error) => {
      clearTimeout(limit);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      const line = /^RESULT (.*)$/m.exec(stdout)?.[1];
      resolve({ code, signal, result: line === undefined ? undefined : JSON.parse(line), stdout, stderr });
    });
  });
}

/**
 * Runs an example and expects a clean exit (code 0, nothing on stderr); returns what its main() resolved (as JSON:
 * `undefined` comes back as `null`). `Main` is the example's `main`, imported as a type only (it never runs here).
 */
async function runClean<Main extends (...args: never[]) => Promise<unknown>>(
  name: string,
  mode?: 'otel-meter',
): Promise<Awaited<ReturnType<Main>>> {
  const exit = await runExample(name, mode);
  expect({ code: exit.code, signal: exit.signal, stderr: exit.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
  expect(exit.stdout).toMatch(/^RESULT /m);
  return exit.result as Awaited<ReturnType<Main>>;
}

beforeAll(() => {
  outDir = mkdtempSync(join(tmpdir(), 'sluice-examples-'));
  compileExamples(outDir);
}, 120_000);

afterAll(() => {
  if (outDir !== '') rmSync(outDir, { recursive: true, force: true });
});

describe('docs/examples', () => {
  it('has a test below for every example file', () => {
    const files = readdirSync(EXAMPLES).filter((file) => file.endsWith('.ts'));
    const tested = [
      'batching-transform.ts',
      'controller.ts',
      'durable-queue.ts',
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

  it(
    'quick-start: pipeline into block delivers every item within maxBufferSize',
    async () => {
      const result = await runClean<typeof QuickStart>('quick-start');
      expect(result.delivered).toBe(5_000);
      expect(result.batches).toBe(50);
      expect(result.maxHeld).toBeLessThanOrEqual(1_000);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'durable-queue: what a dead run accepted is replayed by the next one and stored once',
    async () => {
      await expect(runClean<typeof DurableQueue>('durable-queue')).resolves.toEqual({
        accepted: 5_001,
        replayed: 5_001,
        stored: 5_002,
        duplicates: 0,
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'etl-file-to-db: every good row lands, the one bad row is dead-lettered',
    async () => {
      await expect(runClean<typeof Etl>('etl-file-to-db')).resolves.toEqual({
        inserted: 1_999,
        rejected: ['1235 ERR_FLUSH_FAILED'],
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'http-ingest: 202 while normal, 503 + Retry-After while critical, 202 after recovery',
    async () => {
      const result = await runClean<typeof HttpIngest>('http-ingest');
      expect(result.statuses).toEqual([202, 503, 202]);
      expect(Number(result.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(result.delivered).toBe(9);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'telemetry-drop-oldest: never blocks, evicts the oldest, sends the newest, the books balance',
    async () => {
      const result = await runClean<typeof Telemetry>('telemetry-drop-oldest');
      expect(result.offered).toBe(10_000);
      expect(result.evicted).toBeGreaterThan(0);
      expect(result.sent + result.evicted).toBe(10_000);
      expect(result.sent).toBeLessThanOrEqual(1_000 + 250);
      expect(result.newestSent).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'for-await-producer: pauses on false, resumes on drain, loses nothing',
    async () => {
      const result = await runClean<typeof ForAwait>('for-await-producer');
      expect(result).toMatchObject({ written: 3_000, delivered: 3_000 });
      expect(result.pauses).toBeGreaterThan(0);
      expect(result.maxHeld).toBeLessThanOrEqual(500);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "controller: the design doc's usage runs unchanged",
    async () => {
      await expect(runClean<typeof Controller>('controller')).resolves.toEqual({
        stored: 1_000,
        accepted: 1_000,
        state: 'normal',
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'metrics-prometheus: exports counters, gauges and drops by reason',
    async () => {
      const text = await runClean<typeof Prometheus>('metrics-prometheus');
      expect(text).toContain('sluice_events_offered_total{sluice="ingest"} 250');
      expect(text).toContain('sluice_events_flushed_total{sluice="ingest"} 100');
      expect(text).toContain('sluice_events_dropped_total{sluice="ingest",reason="rejected"} 150');
      expect(text).toContain('sluice_buffer_items{sluice="ingest"} 0');
      expect(text).toContain('sluice_state{sluice="ingest",state="normal"} 1');
      expect(text).toMatch(/# TYPE sluice_events_offered_total counter/);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'metrics-opentelemetry: observes every instrument from one snapshot',
    async () => {
      // The child gives main() a recording meter (see fixtures/run-example.js) and reports what it observed,
      // including the last collection made when the example unregistered its callback.
      const { observed, callbacksLeft } = (await runClean('metrics-opentelemetry', 'otel-meter')) as unknown as {
        observed: Record<string, number>;
        callbacksLeft: number;
      };
      expect(observed['sluice.events.offered']).toBe(42);
      expect(observed['sluice.events.flushed']).toBe(42);
      expect(observed['sluice.buffer.items']).toBe(0);
      expect(observed['sluice.events.dropped:evicted']).toBe(0);
      const states = Object.entries(observed).filter(([key, value]) => key.startsWith('sluice.state:') && value === 1);
      expect(states).toHaveLength(1);
      expect(callbacksLeft).toBe(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'metrics-opentelemetry: runs against the no-op global meter',
    async () => {
      await expect(runClean<typeof Otel>('metrics-opentelemetry')).resolves.toBeNull();
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'shutdown: resolves what it could not deliver, spools it, and dead-letters it',
    async () => {
      await expect(runClean<typeof Shutdown>('shutdown')).resolves.toEqual({
        left: 70,
        spooled: 70,
        deadLetterCodes: ['ERR_SHUTDOWN_TIMEOUT'],
        destroyed: true,
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'migrate-writable: the same _writev body, a sluice base class: every row in order, in batches of exactly batchSize',
    async () => {
      const { before, after, afterBatchSizes } = await runClean<typeof MigrateWritable>('migrate-writable');
      expect(before).toMatchObject({ stored: 2_050, inOrder: true });
      expect(before.largestBatch).toBeLessThanOrEqual(16); // Node's writev: what piled up under highWaterMark 16
      expect(after).toEqual({ stored: 2_050, inOrder: true, largestBatch: 100, batches: 21 });
      expect(afterBatchSizes).toEqual([...Array<number>(20).fill(100), 50]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'batching-transform: emits batches of batchSize, then the rest',
    async () => {
      const result = await runClean<typeof BatchingTransform>('batching-transform');
      expect(result).toEqual({ batches: 5, rows: 2_100, sizes: [500, 500, 500, 500, 100] });
    },
    TEST_TIMEOUT_MS,
  );
});
