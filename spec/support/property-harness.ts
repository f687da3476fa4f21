import fc from 'fast-check';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackpressureError, BackpressureStrategy, createBackpressureStream } from '../../lib';
import type { BackpressureMetrics, BackpressureOptions, BackpressureWritable, DropReason } from '../../lib';
import { TestSink, settle, useStreamFakeTimers } from './test-sink';
import type { SinkBehaviour } from './test-sink';

/**
 * A model-based driver for sluice's property tests: a random configuration, a
 * scripted faulty sink, a random producer (honouring or ignoring `write()`'s
 * return value) and a random ending (end, shutdown, destroy). It records what
 * every observer saw (sink, 'drop', dead letters, write callbacks, errors) and
 * checks the contract's invariants at every quiet point and at the end.
 *
 * Everything runs on fake timers, one timer at a time with the real event loop
 * drained in between (so promise chains run between timers, as in Node), and
 * with `Math.random` seeded (retry jitter), so a run is reproducible from its
 * fast-check seed and shrinks to a deterministic counterexample.
 */

/** Runs per property: `SLUICE_PROPERTY_RUNS` (the soak run sets 10000), default 200. */
export const PROPERTY_RUNS: number = (() => {
  const raw = process.env.SLUICE_PROPERTY_RUNS;
  if (raw === undefined || raw === '') return 200;
  const runs = Number(raw);
  if (!Number.isSafeInteger(runs) || runs < 1)
    throw new RangeError(`SLUICE_PROPERTY_RUNS must be an integer >= 1. Received ${raw}`);
  return runs;
})();

/** A 32-bit seeded PRNG (mulberry32), standing in for Math.random during a run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- what a scenario is ------------------------------------------------------

/** One scripted sink call. `hang` needs a finite flushTimeoutMs (else it is a `reject`). */
export type Step =
  | { kind: 'ok' }
  | { kind: 'delay'; ms: number }
  | { kind: 'reject' }
  | { kind: 'throw' }
  | { kind: 'hang' }
  | { kind: 'fail-some'; mod: number }
  | { kind: 'malformed'; variant: 0 | 1 | 2 | 3 };

export type Op = { kind: 'write'; n: number } | { kind: 'tick'; ms: number };

export type Ending =
  { kind: 'end' } | { kind: 'shutdown'; timeoutMs: number } | { kind: 'destroy'; withError: boolean };

export interface StreamConfig {
  strategy: BackpressureStrategy;
  maxBufferSize: number;
  batchSize: number;
  highWatermark: number;
  lowWatermark: number;
  sampleRate: number;
  maxBlockTimeMs: number;
  minFlushIntervalMs: number;
  maxFlushIntervalMs: number;
  targetLatencyMs: number;
  maxBufferBytes: number;
  maxConcurrentFlushes: number;
  flushTimeoutMs: number;
  retry: { maxRetries: number; initialDelayMs: number; maxDelayMs: number };
  fallbackToSequential: boolean;
}

export interface Scenario {
  config: StreamConfig;
  /** Where dead letters go: an `onDeadLetter` handler, a `'deadletter'` listener, or nowhere (the stream errors). */
  deadLetter: 'handler' | 'event' | 'none';
  /** `onDeadLetter` resolves after this many ms (0: synchronous). */
  handlerDelayMs: number;
  listenDrop: boolean;
  script: Step[];
  /** Items with `id % 5 === poison` fail in every call after the script (null: none). */
  poison: number | null;
  producer: 'ignore' | 'honour';
  ops: Op[];
  ending: Ending;
  /**
   * Let a timed-out call settle late (a `delay` longer than flushTimeoutMs). When false such a delay becomes a
   * `hang`: the engine sees the same timeout, but the call never comes back (see B2 in docs/quality.md).
   */
  lateSettle: boolean;
  seed: number;
  /** Write `id % duplicates` instead of `id`, so equal values repeat (undefined: every item distinct). */
  duplicates?: number;
}

// ---- generators --------------------------------------------------------------

const watermarks = fc
  .record({ high: fc.constantFrom(0.3, 0.5, 0.8, 1), low: fc.constantFrom(0.1, 0.25, 0.5, 0.75) })
  .filter(({ high, low }) => low < high);

export interface ConfigConstraints {
  strategies?: BackpressureStrategy[];
  /** With a byte bound, let held writes time out (default true; an honouring producer then loses items, see B4). */
  blockTimeoutWithBytes?: boolean;
  /** Let maxBufferBytes be finite. */
  byteBound?: boolean;
  /** Let timed-out calls settle late (default true). */
  lateSettle?: boolean;
  /** Let a destroy or shutdown deadline fall while an async onDeadLetter is pending (default true; see B3). */
  destroyDuringAsyncHandler?: boolean;
}

export function configArb(constraints: ConfigConstraints = {}): fc.Arbitrary<StreamConfig> {
  const strategies = constraints.strategies ?? Object.values(BackpressureStrategy);
  return fc
    .record({
      strategy: fc.constantFrom(...strategies),
      maxBufferSize: fc.integer({ min: 1, max: 10 }),
      batchSize: fc.integer({ min: 1, max: 6 }),
      marks: watermarks,
      sampleRate: fc.integer({ min: 1, max: 4 }),
      maxBlockTimeMs: fc.constantFrom(Infinity, 25, 400),
      minFlushIntervalMs: fc.constantFrom(0, 10, 60),
      intervalSpan: fc.constantFrom(0, 100, 2000),
      targetLatencyMs: fc.constantFrom(5, 50, 500),
      maxBufferBytes:
        constraints.byteBound === false ? fc.constant(Infinity) : fc.constantFrom(Infinity, Infinity, 4, 9),
      maxConcurrentFlushes: fc.integer({ min: 1, max: 3 }),
      flushTimeoutMs: fc.constantFrom(Infinity, 45, 300),
      maxRetries: fc.integer({ min: 0, max: 3 }),
      initialDelayMs: fc.constantFrom(0, 7, 40),
      delaySpan: fc.constantFrom(0, 150),
      fallbackToSequential: fc.boolean(),
    })
    .map((r) => ({
      strategy: r.strategy,
      maxBufferSize: r.maxBufferSize,
      batchSize: Math.min(r.batchSize, r.maxBufferSize),
      highWatermark: r.marks.high,
      lowWatermark: r.marks.low,
      sampleRate: r.sampleRate,
      maxBlockTimeMs:
        constraints.blockTimeoutWithBytes === false && r.maxBufferBytes !== Infinity ? Infinity : r.maxBlockTimeMs,
      minFlushIntervalMs: r.minFlushIntervalMs,
      maxFlushIntervalMs: r.minFlushIntervalMs + r.intervalSpan,
      targetLatencyMs: r.targetLatencyMs,
      maxBufferBytes: r.maxBufferBytes,
      maxConcurrentFlushes: r.maxConcurrentFlushes,
      flushTimeoutMs: r.flushTimeoutMs,
      retry: { maxRetries: r.maxRetries, initialDelayMs: r.initialDelayMs, maxDelayMs: r.initialDelayMs + r.delaySpan },
      fallbackToSequential: r.fallbackToSequential,
    }));
}

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'ok' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delay' as const), ms: fc.constantFrom(3, 30, 120, 700) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'reject' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'throw' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'hang' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fail-some' as const), mod: fc.constantFrom(2, 3) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('malformed' as const),
      variant: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const),
    }),
  },
);

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), n: fc.integer({ min: 1, max: 8 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.constantFrom(1, 20, 100, 600, 3000) }),
  },
);

export const endingArb: fc.Arbitrary<Ending> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'end' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('shutdown' as const), timeoutMs: fc.constantFrom(0, 50, 500, 60000) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), withError: fc.boolean() }) },
);

export function scenarioArb(
  constraints: ConfigConstraints & { producer?: 'ignore' | 'honour'; endings?: fc.Arbitrary<Ending> } = {},
): fc.Arbitrary<Scenario> {
  const scenarios = fc.record({
    config: configArb(constraints),
    deadLetter: fc.constantFrom('handler' as const, 'event' as const, 'none' as const),
    handlerDelayMs: fc.constantFrom(0, 0, 35),
    listenDrop: fc.boolean(),
    script: fc.array(stepArb, { maxLength: 10 }),
    poison: fc.option(fc.integer({ min: 0, max: 4 }), { nil: null, freq: 3 }),
    producer:
      constraints.producer === undefined
        ? fc.constantFrom('ignore' as const, 'honour' as const)
        : fc.constant(constraints.producer),
    ops: fc.array(opArb, { minLength: 1, maxLength: 12 }),
    ending: constraints.endings ?? endingArb,
    lateSettle: fc.constant(constraints.lateSettle ?? true),
    seed: fc.integer(),
  });
  if (constraints.destroyDuringAsyncHandler ?? true) return scenarios;
  // An async handler only with end(): without a handler failure nothing destroys the stream then.
  return scenarios.map((s) => (s.ending.kind === 'end' ? s : { ...s, handlerDelayMs: 0 }));
}

// ---- running one -------------------------------------------------------------

/** Byte size of an item when a byte bound is on: 1 to 3, fixed per item. */
export const sizeOf = (id: number): number => (id % 3) + 1;

const isPoison =
  (poison: number | null) =>
  (id: number): boolean =>
    poison !== null && id % 5 === poison;

function toBehaviour(step: Step, config: StreamConfig, lateSettle: boolean): SinkBehaviour<number> {
  switch (step.kind) {
    case 'ok':
    case 'reject':
    case 'throw':
      return { kind: step.kind };
    case 'delay':
      return !lateSettle && step.ms >= config.flushTimeoutMs ? { kind: 'hang' } : { kind: 'delay', ms: step.ms };
    case 'hang':
      return config.flushTimeoutMs === Infinity ? { kind: 'reject' } : { kind: 'hang' };
    case 'fail-some':
      return { kind: 'fail-items', predicate: (id) => id % step.mod === 0 };
    case 'malformed':
      switch (step.variant) {
        case 0:
          return { kind: 'result', result: { success: -1, failed: 0, errors: [] } };
        case 1:
          return { kind: 'result', result: { success: 0, failed: 0, errors: [] } };
        case 2:
          return {
            kind: 'result-for',
            make: (batch) => ({ success: batch.length - 1, failed: 1, errors: [], failedItems: [-1] }),
          };
        case 3:
          return { kind: 'result-for', make: (batch) => ({ success: batch.length, failed: 0.5, errors: [] }) };
      }
  }
}

/** A sink call that may outlive `flushTimeoutMs`: its items may be delivered late, after a retry or a dead letter. */
function mayTimeOut(behaviour: SinkBehaviour<number>, flushTimeoutMs: number): boolean {
  return behaviour.kind === 'hang' || (behaviour.kind === 'delay' && behaviour.ms >= flushTimeoutMs);
}

export interface Observations {
  scenario: Scenario;
  stream: BackpressureWritable<number>;
  sink: TestSink<number>;
  /** Ids given to write() while the stream was writable, in order. */
  written: number[];
  /** Calls of each write callback: [error, accepted]. */
  callbacks: Map<number, { error: Error | null | undefined; accepted: boolean | undefined }[]>;
  dropped: { id: number; reason: DropReason }[];
  deadLettered: { ids: number[]; error: BackpressureError<number> }[];
  streamErrors: Error[];
  warnings: { code: string | undefined; message?: string }[];
  finish: { metrics: BackpressureMetrics; sinkInFlight: number } | undefined;
  closed: boolean;
  drains: number;
  undelivered: number[] | undefined;
  shutdownError: unknown;
  /** Items of sink calls still open when the stream gave up on them (shutdown deadline, destroy). */
  openAtAbandon: Set<number>;
  /** Every quiet-point violation, with where it happened. */
  violations: string[];
}

const CHECK_EVERY_TIMER = true;
/** A run that needs more timer firings than this is stuck in a loop: a finding. */
const MAX_TIMERS_PER_WAIT = 20000;

export class Run {
  readonly obs: Observations;
  #nextId = 0;

  constructor(scenario: Scenario) {
    const { config } = scenario;
    const sink = new TestSink<number>({ kind: 'fail-items', predicate: isPoison(scenario.poison) });
    for (const step of scenario.script) sink.script(toBehaviour(step, config, scenario.lateSettle));
    const obs: Observations = {
      scenario,
      stream: undefined as unknown as BackpressureWritable<number>,
      sink,
      written: [],
      callbacks: new Map(),
      dropped: [],
      deadLettered: [],
      streamErrors: [],
      warnings: [],
      finish: undefined,
      closed: false,
      drains: 0,
      undelivered: undefined,
      shutdownError: undefined,
      openAtAbandon: new Set(),
      violations: [],
    };
    this.obs = obs;
    const recordDeadLetter = (items: number[], error: BackpressureError<number>): void => {
      obs.deadLettered.push({ ids: [...items], error });
      if (error.reason === 'shutdown_timeout' || error.reason === 'destroyed') {
        for (const batch of sink.openBatches()) for (const id of batch) obs.openAtAbandon.add(id);
      }
    };
    const options: BackpressureOptions<number> = {
      ...config,
      retry: { ...config.retry },
      sizeOf,
      ...(scenario.deadLetter === 'handler'
        ? {
            onDeadLetter: (items: number[], error: BackpressureError<number>) => {
              recordDeadLetter(items, error);
              if (scenario.handlerDelayMs === 0) return undefined;
              return new Promise<void>((resolve) => setTimeout(resolve, scenario.handlerDelayMs));
            },
          }
        : {}),
    };
    const stream = createBackpressureStream<number>(sink.flush, options);
    obs.stream = stream;
    if (scenario.deadLetter === 'event') stream.on('deadletter', recordDeadLetter);
    if (scenario.listenDrop) stream.on('drop', (id: number, reason: DropReason) => obs.dropped.push({ id, reason }));
    stream.on('error', (error) => obs.streamErrors.push(error));
    stream.on('drain', () => obs.drains++);
    stream.on('finish', () => {
      obs.finish = { metrics: stream.getMetrics(), sinkInFlight: sink.inFlight };
    });
    stream.on('close', () => {
      obs.closed = true;
    });
  }

  /** Any sink call so far that may have outlived flushTimeoutMs. */
  get anyTimeout(): boolean {
    const { sink, scenario } = this.obs;
    return sink.behaviours.some((b) => mayTimeOut(b, scenario.config.flushTimeoutMs));
  }

  /** Items of calls that may have outlived flushTimeoutMs. */
  timeoutTainted(): Set<number> {
    const { sink, scenario } = this.obs;
    const tainted = new Set<number>();
    sink.behaviours.forEach((behaviour, i) => {
      if (mayTimeOut(behaviour, scenario.config.flushTimeoutMs)) for (const id of sink.calls[i] ?? []) tainted.add(id);
    });
    return tainted;
  }

  write(): boolean | undefined {
    const { stream, written, callbacks } = this.obs;
    if (!stream.writable) return undefined;
    const id = this.#nextId++;
    written.push(id);
    callbacks.set(id, []);
    const value = this.obs.scenario.duplicates === undefined ? id : id % this.obs.scenario.duplicates;
    return stream.write(value, (error, accepted) => {
      callbacks.get(id)?.push({ error, accepted });
    });
  }

  /** Fires timers one at a time (draining the event loop after each) until `done()` or `ms` of fake time passed. */
  async tick(ms: number): Promise<void> {
    const target = jest.now() + ms;
    await this.#quiet('tick');
    for (let fired = 0; jest.now() < target && fired < MAX_TIMERS_PER_WAIT; fired++) {
      if (jest.getTimerCount() === 0) {
        jest.advanceTimersByTime(target - jest.now());
        break;
      }
      jest.advanceTimersToNextTimer();
      await this.#quiet('timer');
    }
    await this.#quiet('tick end');
  }

  /** Fires timers one at a time until `done()`; false if nothing is left to fire and it still is not done. */
  async until(done: () => boolean, where: string): Promise<boolean> {
    await this.#quiet(where);
    for (let fired = 0; fired < MAX_TIMERS_PER_WAIT; fired++) {
      if (done()) return true;
      if (jest.getTimerCount() === 0) {
        await settle(4);
        return done();
      }
      jest.advanceTimersToNextTimer();
      await this.#quiet(where);
    }
    return done();
  }

  async #quiet(where: string): Promise<void> {
    await settle(2);
    if (CHECK_EVERY_TIMER) this.checkQuiet(where);
  }

  /** The invariants that hold at every quiet point. */
  checkQuiet(where: string): void {
    const { stream, sink, scenario, written, violations } = this.obs;
    const { config } = scenario;
    const m = stream.getMetrics();
    const fail = (what: string): void => {
      violations.push(`${where} @${jest.now()}ms: ${what} — metrics ${JSON.stringify(m)}`);
    };
    if (!(m.bufferSize <= config.maxBufferSize))
      fail(`bufferSize ${m.bufferSize} > maxBufferSize ${config.maxBufferSize}`);
    if (!(m.bufferBytes <= config.maxBufferBytes))
      fail(`bufferBytes ${m.bufferBytes} > maxBufferBytes ${config.maxBufferBytes}`);
    if (!(m.waitingWrites <= stream.writableHighWaterMark))
      fail(`waitingWrites ${m.waitingWrites} > writableHighWaterMark ${stream.writableHighWaterMark}`);
    if (!(m.inFlight >= 0 && m.inFlight <= m.bufferSize)) fail(`inFlight ${m.inFlight} outside [0, bufferSize]`);
    if (m.eventsOffered !== written.length)
      fail(`eventsOffered ${m.eventsOffered} !== items written ${written.length}`);
    const byReason = Object.values(m.droppedByReason).reduce((a, b) => a + b, 0);
    if (byReason !== m.eventsDropped) fail(`droppedByReason sums to ${byReason}, eventsDropped ${m.eventsDropped}`);
    const offeredSide = m.eventsFlushed + m.deadLettered + m.eventsDropped + m.bufferSize + m.waitingWrites;
    if (m.eventsOffered !== offeredSide)
      fail(`offered ${m.eventsOffered} !== flushed + deadLettered + dropped + held + waiting = ${offeredSide}`);
    const acceptedSide = m.eventsFlushed + m.deadLettered + m.droppedByReason.evicted + m.bufferSize;
    if (m.eventsAccepted !== acceptedSide)
      fail(`accepted ${m.eventsAccepted} !== flushed + deadLettered + evicted + held = ${acceptedSide}`);
    if (scenario.listenDrop && this.obs.dropped.length !== m.eventsDropped)
      fail(`'drop' events ${this.obs.dropped.length} !== eventsDropped ${m.eventsDropped}`);
    if (scenario.deadLetter !== 'none') {
      const heard = this.obs.deadLettered.reduce((n, d) => n + d.ids.length, 0);
      // A dead letter is counted when its handler has settled; the handler hears it first.
      if (!(heard >= m.deadLettered)) fail(`dead-letter path heard ${heard} items, deadLettered ${m.deadLettered}`);
    }
    // The sink's own record of deliveries agrees with the engine's, unless a call may have outlived its timeout
    // or the stream gave up on open calls (their late results are ignored by design).
    if (
      !this.anyTimeout &&
      this.obs.openAtAbandon.size === 0 &&
      !stream.destroyed &&
      m.eventsFlushed !== sink.delivered.length
    ) {
      fail(`eventsFlushed ${m.eventsFlushed} !== items the sink delivered ${sink.delivered.length}`);
    }
  }

  /** Plays the producer's operations. */
  async play(): Promise<void> {
    const { scenario } = this.obs;
    for (const op of scenario.ops) {
      if (op.kind === 'tick') {
        await this.tick(op.ms);
        continue;
      }
      for (let k = 0; k < op.n; k++) {
        const ok = this.write();
        if (ok === undefined) break;
        if (ok || scenario.producer === 'ignore') continue;
        const drainsBefore = this.obs.drains;
        const resumed = await this.until(
          () => this.obs.drains > drainsBefore || !this.obs.stream.writable,
          'awaiting drain',
        );
        if (!resumed) {
          this.obs.violations.push(
            `liveness: write() returned false and 'drain' never came (metrics ${JSON.stringify(this.obs.stream.getMetrics())}, state ${this.obs.stream.state})`,
          );
          return;
        }
      }
      await this.#quiet('after write op');
    }
  }

  /**
   * An honouring producer: `pipeline(Readable.from(ids), stream)`, which waits for 'drain' after every `false`.
   * Records what reaches `write()`. Returns how the pipeline settled, or 'stuck' if it never did.
   */
  async pipeFrom(count: number): Promise<'resolved' | 'rejected' | 'stuck'> {
    const { stream, written } = this.obs;
    const write = stream.write.bind(stream) as (chunk: number, ...rest: unknown[]) => boolean;
    stream.write = (chunk: number, ...rest: unknown[]) => {
      if (stream.writable) written.push(chunk);
      return write(chunk, ...rest);
    };
    const ids = Array.from({ length: count }, (_, i) => i);
    let outcome: 'resolved' | 'rejected' | undefined;
    pipeline(Readable.from(ids), stream).then(
      () => (outcome = 'resolved'),
      () => (outcome = 'rejected'),
    );
    const settled = await this.until(() => outcome !== undefined, 'pipeline');
    if (!settled) {
      this.obs.violations.push(
        `liveness: the pipeline never settled (written ${written.length} of ${count}, metrics ${JSON.stringify(stream.getMetrics())}, state ${stream.state})`,
      );
      return 'stuck';
    }
    await this.until(() => this.obs.closed, 'after pipeline');
    await this.until(() => false, 'after close');
    return outcome ?? 'stuck';
  }

  /** Ends the run as the scenario says and waits for 'close'. */
  async finish(): Promise<void> {
    const { stream, sink, scenario } = this.obs;
    const { ending } = scenario;
    if (ending.kind === 'end') {
      stream.end();
    } else if (ending.kind === 'shutdown') {
      let settled = false;
      stream.shutdown({ timeoutMs: ending.timeoutMs }).then(
        ({ undelivered }) => {
          settled = true;
          this.obs.undelivered = undelivered;
          for (const batch of sink.openBatches())
            for (const id of batch) if (undelivered.includes(id)) this.obs.openAtAbandon.add(id);
        },
        (error: unknown) => {
          settled = true;
          this.obs.shutdownError = error;
        },
      );
      if (!(await this.until(() => settled, 'shutdown')))
        this.obs.violations.push('liveness: shutdown() never settled');
    } else {
      for (const batch of sink.openBatches()) for (const id of batch) this.obs.openAtAbandon.add(id);
      stream.destroy(ending.withError ? new Error('boom') : undefined);
    }
    if (!(await this.until(() => this.obs.closed, 'ending'))) {
      this.obs.violations.push(
        `liveness: no 'close' after ${ending.kind} (metrics ${JSON.stringify(stream.getMetrics())}, state ${stream.state})`,
      );
      return;
    }
    // Late calls (hangs are never released; delays finish) must not change the books.
    await this.until(() => false, 'after close');
  }
}

/** Runs `body` with fake timers, a seeded Math.random and captured process warnings. */
export async function inFakeWorld<R>(
  seed: number,
  body: (warnings: { code: string | undefined; message?: string }[]) => Promise<R>,
): Promise<R> {
  useStreamFakeTimers();
  const random = jest.spyOn(Math, 'random').mockImplementation(seededRandom(seed));
  const warnings: { code: string | undefined; message?: string }[] = [];
  const warn = jest.spyOn(process, 'emitWarning').mockImplementation((warning: unknown, options?: unknown) => {
    const code = typeof options === 'object' && options !== null ? (options as { code?: string }).code : undefined;
    const message = typeof warning === 'string' ? warning : String((warning as { message?: string }).message);
    warnings.push({ code: code ?? (warning as { code?: string }).code, message });
  });
  try {
    return await body(warnings);
  } finally {
    warn.mockRestore();
    random.mockRestore();
    jest.clearAllTimers();
    jest.useRealTimers();
  }
}

/** Runs one scenario to its end; returns the observations (violations included). */
export async function runScenario(scenario: Scenario): Promise<{ run: Run; obs: Observations }> {
  return inFakeWorld(scenario.seed, async (warnings) => {
    const run = new Run(scenario);
    run.obs.warnings = warnings;
    await run.play();
    if (run.obs.violations.length === 0) await run.finish();
    return { run, obs: run.obs };
  });
}

// ---- end-of-run checks -------------------------------------------------------

function count<T>(values: Iterable<T>): Map<T, number> {
  const counts = new Map<T, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

/** Items a plain destroy() discarded for want of a dead-letter path, as its warnings count them. */
export function discardedCount(obs: Observations): number {
  let n = 0;
  for (const w of obs.warnings) {
    if (w.code !== 'SLUICE_ITEMS_DISCARDED') continue;
    n += Number(/held (\d+) item/.exec(w.message ?? '')?.[1] ?? NaN);
  }
  return n;
}

/** Dead-lettered ids, from the handler/listener or, without one, from the stream error and shutdown's result. */
export function deadLetteredIds(obs: Observations): number[] {
  if (obs.scenario.deadLetter !== 'none') return obs.deadLettered.flatMap((d) => d.ids);
  const ids: number[] = [];
  for (const error of obs.streamErrors) if (error instanceof BackpressureError) ids.push(...(error.items as number[]));
  if (obs.shutdownError instanceof BackpressureError) {
    // shutdown() rejected with the stream's own error: already counted above.
  }
  if (obs.undelivered !== undefined) ids.push(...obs.undelivered);
  return ids;
}

/**
 * The terminal invariants: nothing held, every offered item delivered,
 * dead-lettered or dropped (and told), order, duplicates, callbacks, warnings.
 * Returns the violations (empty when all hold).
 */
export function terminalViolations(run: Run): string[] {
  const { obs } = run;
  const { stream, sink, scenario, written } = obs;
  const { config } = scenario;
  const out: string[] = [...obs.violations];
  if (out.length > 0) return out;
  const m = stream.getMetrics();
  const fail = (what: string): void => {
    out.push(`${what} — metrics ${JSON.stringify(m)}`);
  };
  if (!obs.closed) fail("no 'close'");
  if (m.bufferSize !== 0 || m.waitingWrites !== 0 || m.inFlight !== 0)
    fail(`held ${m.bufferSize}, waiting ${m.waitingWrites}, inFlight ${m.inFlight} after 'close'`);
  if (m.bufferBytes !== 0) fail(`bufferBytes ${m.bufferBytes} after 'close'`);
  if (m.eventsOffered !== m.eventsFlushed + m.deadLettered + m.eventsDropped)
    fail('offered !== flushed + deadLettered + dropped at the end');
  if (obs.finish !== undefined) {
    if (obs.finish.metrics.bufferSize !== 0) fail(`bufferSize ${obs.finish.metrics.bufferSize} at 'finish'`);
    if (!run.anyTimeout && obs.finish.sinkInFlight !== 0)
      fail(`'finish' while ${obs.finish.sinkInFlight} sink call(s) had not settled`);
  }

  const tainted = run.timeoutTainted();
  const writtenSet = new Set(written);
  const delivered = sink.delivered;
  const deliveredCounts = count(delivered);
  const dl = deadLetteredIds(obs);
  const dlCounts = count(dl);
  const dlSet = new Set(dl);
  const deliveredSet = new Set(delivered);

  for (const id of deliveredSet) if (!writtenSet.has(id)) fail(`the sink got ${id}, which was never offered`);
  for (const [id, n] of deliveredCounts)
    if (n > 1 && !tainted.has(id)) fail(`item ${id} delivered ${n} times with no timeout involved`);
  for (const [id, n] of dlCounts) if (n > 1) fail(`item ${id} dead-lettered ${n} times`);
  // A plain destroy() with no dead-letter path discards what is held, counted in a warning (no ids).
  const discarded = discardedCount(obs);
  if (dl.length + discarded !== m.deadLettered)
    fail(`dead-letter path got ${dl.length} items (+${discarded} discarded), deadLettered ${m.deadLettered}`);
  if (obs.undelivered !== undefined && scenario.deadLetter !== 'none') {
    const shutdownDl = obs.deadLettered.filter((d) => d.error.reason === 'shutdown_timeout').flatMap((d) => d.ids);
    if (
      JSON.stringify([...shutdownDl].sort((a, b) => a - b)) !==
      JSON.stringify([...obs.undelivered].sort((a, b) => a - b))
    ) {
      fail(
        `shutdown resolved undelivered ${JSON.stringify(obs.undelivered)} but dead-lettered ${JSON.stringify(shutdownDl)} with shutdown_timeout`,
      );
    }
  }
  // Delivered and dead-lettered: only after a timeout, or when the stream gave up (destroy, error, shutdown
  // deadline) on a call whose result it had not processed yet, i.e. the item's last call delivered it.
  const abandoned = stream.destroyed;
  const lastCallDelivered = deliveredByLastCall(sink);
  for (const id of dlSet) {
    if (!writtenSet.has(id)) fail(`item ${id} dead-lettered but never offered`);
    if (deliveredSet.has(id) && !tainted.has(id) && !(abandoned && lastCallDelivered.has(id))) {
      fail(`item ${id} both delivered and dead-lettered with no timeout or abandoned call`);
    }
  }
  for (const d of obs.deadLettered) {
    if (!(d.error instanceof BackpressureError) || !d.error.code.startsWith('ERR_') || d.error.reason === undefined)
      fail(`dead letter without a coded BackpressureError: ${String(d.error)}`);
  }

  if (scenario.listenDrop) {
    const droppedCounts = count(obs.dropped.map((d) => d.id));
    for (const [id, n] of droppedCounts) if (n > 1) fail(`item ${id} dropped ${n} times`);
    for (const { id } of obs.dropped) {
      if (deliveredSet.has(id)) fail(`item ${id} dropped and delivered`);
      if (dlSet.has(id)) fail(`item ${id} dropped and dead-lettered`);
    }
    const byReason = count(obs.dropped.map((d) => d.reason));
    for (const [reason, n] of Object.entries(m.droppedByReason)) {
      if ((byReason.get(reason as DropReason) ?? 0) !== n)
        fail(`droppedByReason.${reason} ${n}, 'drop' events ${byReason.get(reason as DropReason) ?? 0}`);
    }
    const droppedSet = new Set(droppedCounts.keys());
    const lost = written.filter((id) => !deliveredSet.has(id) && !dlSet.has(id) && !droppedSet.has(id));
    // A discarded item may still have been delivered by the call the destroy() abandoned.
    if (lost.length > discarded) fail(`lost silently: ${JSON.stringify(lost)} (${discarded} discarded with a warning)`);
  } else {
    const unaccounted = written.filter((id) => !deliveredSet.has(id) && !dlSet.has(id)).length;
    if (unaccounted < m.eventsDropped || unaccounted > m.eventsDropped + discarded)
      fail(`${unaccounted} items neither delivered nor dead-lettered, eventsDropped ${m.eventsDropped}`);
  }

  // Warnings: one aggregated drop warning when nobody listened, none otherwise.
  const dropWarnings = obs.warnings.filter((w) => w.code === 'SLUICE_ITEMS_DROPPED').length;
  const expectWarnings = !scenario.listenDrop && m.eventsDropped > 0 ? 1 : 0;
  if (dropWarnings !== expectWarnings) fail(`${dropWarnings} drop warning(s), expected ${expectWarnings}`);

  // Write callbacks: each exactly once; `accepted === false` exactly for items dropped at the door.
  const droppedIds = new Map(obs.dropped.map((d) => [d.id, d.reason]));
  for (const id of written) {
    const calls = obs.callbacks.get(id);
    if (calls === undefined) continue; // written by pipe(), which passes no callback
    if (calls.length !== 1) {
      fail(`write callback of ${id} called ${calls.length} times`);
      continue;
    }
    const [call] = calls;
    if (call === undefined) continue;
    if (call.error != null) {
      if (!dlSet.has(id) && discarded === 0)
        fail(`write callback of ${id} got an error but the item was not dead-lettered`);
    } else if (scenario.listenDrop) {
      const reason = droppedIds.get(id);
      if (call.accepted === false && reason === undefined)
        fail(`write callback of ${id} said not accepted, but no 'drop' for it`);
      if (call.accepted === true && reason !== undefined && reason !== 'evicted')
        fail(`write callback of ${id} said accepted, but it was dropped (${reason})`);
    }
  }

  // Order: each call in write order; fresh batches cut in write order; one slot delivers batch by batch.
  const seen = new Set<number>();
  const batchOf = new Map<number, number>();
  let lastFresh = -1;
  sink.calls.forEach((call, i) => {
    for (let k = 1; k < call.length; k++) {
      if (!((call[k - 1] as number) < (call[k] as number)))
        fail(`sink call ${i} out of write order: ${JSON.stringify(call)}`);
    }
    const fresh = call.filter((id) => !seen.has(id));
    if (fresh.length > 0 && fresh.length !== call.length)
      fail(`sink call ${i} mixes new and retried items: ${JSON.stringify(call)}`);
    for (const id of fresh) {
      if (!(id > lastFresh)) fail(`batch ${i} (${JSON.stringify(call)}) cut out of write order`);
      lastFresh = id;
      seen.add(id);
      batchOf.set(id, i);
    }
  });
  if (config.maxConcurrentFlushes === 1) {
    let lastBatch = -1;
    const firstDelivery = new Set<number>();
    for (const id of delivered) {
      if (firstDelivery.has(id) || tainted.has(id)) continue;
      firstDelivery.add(id);
      const batch = batchOf.get(id) ?? -1;
      if (batch < lastBatch)
        fail(`with one flush slot, ${id} (batch ${batch}) delivered after an item of batch ${lastBatch}`);
      lastBatch = Math.max(lastBatch, batch);
    }
  }
  // Every batch cut is one fresh sink call: the batch metrics count exactly those.
  const freshCalls = sink.calls.filter((call, i) => call.some((id) => batchOf.get(id) === i));
  const freshItems = freshCalls.reduce((n, call) => n + call.length, 0);
  // With timeouts, a batch may fail before its first call: every call slot held by an abandoned call.
  if (run.anyTimeout ? m.batches < freshCalls.length : m.batches !== freshCalls.length)
    fail(`batches ${m.batches}, fresh sink calls ${freshCalls.length}`);
  const average = freshCalls.length === 0 ? 0 : freshItems / freshCalls.length;
  if (!run.anyTimeout && !(Math.abs(m.averageBatchSize - average) < 1e-9))
    fail(`averageBatchSize ${m.averageBatchSize}, expected ${average}`);
  if (sink.maxInFlight > 2 * config.maxConcurrentFlushes)
    fail(`${sink.maxInFlight} sink calls at once, over 2 × maxConcurrentFlushes (${config.maxConcurrentFlushes})`);
  for (const d of obs.deadLettered) if (d.ids.length === 0) fail(`an empty dead letter (${d.error.code})`);
  if (!run.anyTimeout && sink.maxInFlight > config.maxConcurrentFlushes)
    fail(`${sink.maxInFlight} sink calls at once, maxConcurrentFlushes ${config.maxConcurrentFlushes}`);
  return out;
}

/** Items that the last sink call containing them delivered (as the sink recorded it). */
function deliveredByLastCall(sink: TestSink<number>): Set<number> {
  const last = new Map<number, boolean>();
  sink.calls.forEach((call, i) => {
    const behaviour = sink.behaviours[i];
    for (const id of call) {
      let ok = false;
      if (behaviour?.kind === 'ok' || behaviour?.kind === 'delay') ok = true;
      else if (behaviour?.kind === 'fail-items') ok = !behaviour.predicate(id);
      last.set(id, ok);
    }
  });
  return new Set([...last].filter(([, ok]) => ok).map(([id]) => id));
}

/**
 * The end-of-run checks that hold even when items repeat (no per-item identity): nothing held, the books
 * balance, the dead-letter path heard exactly what was counted, every write callback once.
 */
export function countViolations(run: Run): string[] {
  const { obs } = run;
  const out: string[] = [...obs.violations];
  if (out.length > 0) return out;
  const m = obs.stream.getMetrics();
  const fail = (what: string): void => {
    out.push(`${what} — metrics ${JSON.stringify(m)}`);
  };
  if (!obs.closed) fail("no 'close'");
  if (m.bufferSize !== 0 || m.waitingWrites !== 0 || m.inFlight !== 0)
    fail(`held ${m.bufferSize}, waiting ${m.waitingWrites}, inFlight ${m.inFlight} after 'close'`);
  if (m.eventsOffered !== obs.written.length) fail(`eventsOffered ${m.eventsOffered}, written ${obs.written.length}`);
  if (m.eventsOffered !== m.eventsFlushed + m.deadLettered + m.eventsDropped)
    fail('offered !== flushed + deadLettered + dropped at the end');
  if (m.eventsAccepted !== m.eventsFlushed + m.deadLettered + m.droppedByReason.evicted)
    fail('accepted !== flushed + deadLettered + evicted at the end');
  const dl = deadLetteredIds(obs);
  const discarded = discardedCount(obs);
  if (dl.length + discarded !== m.deadLettered)
    fail(`dead-letter path got ${dl.length} items (+${discarded} discarded), deadLettered ${m.deadLettered}`);
  if (obs.scenario.listenDrop && obs.dropped.length !== m.eventsDropped)
    fail(`'drop' events ${obs.dropped.length}, eventsDropped ${m.eventsDropped}`);
  for (const [id, calls] of obs.callbacks)
    if (calls.length !== 1) fail(`write callback of write #${id} called ${calls.length} times`);
  return out;
}

/** Formats a failure for fast-check's report. */
export function explain(scenario: Scenario, violations: string[]): string {
  return `${violations.slice(0, 5).join('\n')}\nscenario: ${JSON.stringify(scenario, (_k, v: unknown) => (v === Infinity ? 'Infinity' : v))}`;
}
