import fc from 'fast-check';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { BackpressureController, BackpressureError, BackpressureStrategy, createBackpressureStream } from '../../lib';
import type { BackpressureMetrics, BackpressureOptions, BackpressureWritable, DropReason } from '../../lib';
import { ModelSink } from './property-sink';
import type { SinkCall, Step } from './property-sink';
import { settle, useStreamFakeTimers } from './test-sink';

import { explain, terminalViolations } from './property-checks';
import { IGNORED_VIOLATIONS } from './property-runner';

export { PROPERTY_RUNS, checkProperty, propertyTimeout } from './property-runner';
export type { Step } from './property-sink';

/**
 * A model-based driver for sluice's property tests: a random configuration, a
 * scripted faulty sink (property-sink.ts), a random producer (honouring or
 * ignoring `write()`'s return value, through the stream or a
 * BackpressureController), random interleavings of write, end, drain(),
 * destroy, shutdown and abort, listeners that act on the same stream from
 * inside its events, and dead-letter handlers that fail. It records what every
 * observer saw and checks the contract's invariants after every operation
 * (synchronously, inside listeners too) and at every quiet point; the checks at
 * the end are in property-checks.ts.
 *
 * Everything runs on fake timers, one timer at a time with the real event loop
 * drained in between (so promise chains run between timers, as in Node), and
 * with `Math.random` seeded (retry jitter), so a run is reproducible from its
 * fast-check seed and shrinks to a deterministic counterexample.
 */

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

export type Op =
  | { kind: 'write'; n: number }
  /** Several control operations in the same tick (e.g. end() then destroy(): no 'finish' may follow). */
  | { kind: 'same-tick'; ops: ControlOp[] }
  | { kind: 'tick'; ms: number }
  /** end(), or end(chunk); after end() the chunk must be refused with ERR_STREAM_WRITE_AFTER_END. */
  | { kind: 'end'; chunk: boolean }
  | { kind: 'drain' }
  | { kind: 'destroy'; withError: boolean }
  | { kind: 'shutdown'; timeoutMs: number }
  /** Aborts the AbortSignal given in the options (only with `signal: true`). */
  | { kind: 'abort' }
  /** BackpressureController only. */
  | { kind: 'stop' }
  | { kind: 'start' };

/** Operations that end, flush or stop a stream; `same-tick` runs two or three of them in one synchronous turn. */
export type ControlOp = Extract<Op, { kind: 'end' | 'drain' | 'destroy' | 'shutdown' | 'abort' }>;

export type Ending =
  { kind: 'end' } | { kind: 'shutdown'; timeoutMs: number } | { kind: 'destroy'; withError: boolean };

export type ListenedEvent = 'drop' | 'drain' | 'state' | 'deadletter';

export type ReentryAction = { kind: 'write'; n: number } | { kind: 'end' } | { kind: 'destroy'; withError: boolean };

/** A listener that acts on its own stream from inside an event: from the `nth` emission on, `times` times. */
export interface Reentry {
  event: ListenedEvent;
  action: ReentryAction;
  nth: number;
  times: number;
}

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
  /**
   * Adaptive concurrency between 1 and `maxConcurrentFlushes` (capped at maxBufferSize, as validated); the
   * checks keep using `maxConcurrentFlushes`, which bounds the slots either way.
   */
  adaptiveSlots: boolean;
  /**
   * Adaptive batching between `batchSize` and `maxBufferSize` (absent in scenarios saved before it: fixed). No sink
   * call may then carry more than `maxBufferSize` items; with a fixed size, more than `batchSize`.
   */
  adaptiveBatch?: boolean;
  flushTimeoutMs: number;
  retry: { maxRetries: number; initialDelayMs: number; maxDelayMs: number };
  fallbackToSequential: boolean;
}

export interface Scenario {
  config: StreamConfig;
  /** Where dead letters go: an `onDeadLetter` handler, a `'deadletter'` listener, or nowhere (the stream errors). */
  deadLetter: 'handler' | 'event' | 'none';
  /** `onDeadLetter` settles after this many ms (0: synchronously). */
  handlerDelayMs: number;
  /** `onDeadLetter` fails: throws (synchronously) or rejects (after handlerDelayMs). */
  handlerFails?: 'throw' | 'reject';
  listenDrop: boolean;
  script: Step[];
  /** Items with `id % 5 === poison` fail in every call after the script (null: none). */
  poison: number | null;
  producer: 'ignore' | 'honour';
  ops: Op[];
  /** How the run ends if the operations did not end it. */
  ending: Ending;
  /**
   * Let a timed-out call settle late (a `delay` longer than flushTimeoutMs). When false such a delay becomes a
   * `hang`: the engine sees the same timeout, but the call never comes back (see B2 in docs/quality.md).
   */
  lateSettle: boolean;
  seed: number;
  /** Write `id % duplicates` instead of `id`, so equal values repeat (undefined: every item distinct). */
  duplicates?: number;
  /** Listeners that write to, end or destroy the same stream from inside its events. */
  reentry?: Reentry[];
  /** Produce through a BackpressureController (push, stop, start, drain) instead of the stream's write(). */
  api?: 'stream' | 'controller';
  /** Give the stream an AbortSignal (the 'abort' operation aborts it). */
  signal?: boolean;
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
      adaptiveSlots: fc.boolean(),
      adaptiveBatch: fc.boolean(),
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
      adaptiveSlots: r.adaptiveSlots,
      adaptiveBatch: r.adaptiveBatch,
      flushTimeoutMs: r.flushTimeoutMs,
      retry: { maxRetries: r.maxRetries, initialDelayMs: r.initialDelayMs, maxDelayMs: r.initialDelayMs + r.delaySpan },
      fallbackToSequential: r.fallbackToSequential,
    }));
}

const variant = fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const);

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'ok' as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('delay' as const), ms: fc.constantFrom(3, 30, 120, 700) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'reject' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'throw' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'hang' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fail-some' as const), mod: fc.constantFrom(2, 3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('malformed' as const), variant }) },
);

/** The sink steps of the fault properties: more hangs, calls that honour their AbortSignal, ordinary values. */
export const faultStepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: stepArb },
  { weight: 1, arbitrary: fc.constant({ kind: 'hang' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'abortable' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ordinary' as const), variant }) },
);

const writeOp = fc.record({ kind: fc.constant('write' as const), n: fc.integer({ min: 1, max: 8 }) });

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: writeOp },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.constantFrom(1, 20, 100, 600, 3000) }),
  },
);

const controlOpArb: fc.Arbitrary<ControlOp> = fc.oneof(
  fc.record({ kind: fc.constant('end' as const), chunk: fc.boolean() }),
  fc.constant({ kind: 'drain' as const }),
  fc.record({ kind: fc.constant('destroy' as const), withError: fc.boolean() }),
  fc.record({ kind: fc.constant('shutdown' as const), timeoutMs: fc.constantFrom(0, 50, 500, 60000) }),
  fc.constant({ kind: 'abort' as const }),
);

/**
 * Operations of the fault properties: writes and pauses, interleaved with every way to end or flush. Ending ones are
 * rare enough that a run usually writes a dozen items or more before the first of them.
 */
export function faultOpArb(api: 'stream' | 'controller'): fc.Arbitrary<Op> {
  const common = [
    { weight: 20, arbitrary: opArb },
    { weight: 2, arbitrary: fc.constant({ kind: 'drain' as const }) },
    { weight: 4, arbitrary: controlOpArb },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('same-tick' as const),
        ops: fc.array(controlOpArb, { minLength: 2, maxLength: 3 }),
      }),
    },
  ];
  if (api === 'stream') return fc.oneof(...common);
  return fc.oneof(
    ...common,
    { weight: 3, arbitrary: fc.constant({ kind: 'stop' as const }) },
    { weight: 3, arbitrary: fc.constant({ kind: 'start' as const }) },
  );
}

export const endingArb: fc.Arbitrary<Ending> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'end' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('shutdown' as const), timeoutMs: fc.constantFrom(0, 50, 500, 60000) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), withError: fc.boolean() }) },
);

export const reentryArb: fc.Arbitrary<Reentry> = fc.record({
  event: fc.constantFrom<ListenedEvent>('drop', 'drain', 'state', 'deadletter'),
  action: fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), n: fc.integer({ min: 1, max: 3 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'end' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('destroy' as const), withError: fc.boolean() }) },
  ),
  nth: fc.integer({ min: 1, max: 3 }),
  times: fc.integer({ min: 1, max: 2 }),
});

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

export interface FaultConstraints extends ConfigConstraints {
  api?: 'stream' | 'controller';
  /** Always at least one re-entrant listener (default: zero to three). */
  reentry?: 'always' | 'sometimes';
  /** Let onDeadLetter throw or reject (default true). */
  failingHandlers?: boolean;
  /** Sink steps (default {@link faultStepArb}). */
  steps?: fc.Arbitrary<Step>;
}

/**
 * Scenarios with every fault class of issue 9 (defect 16): interleaved end/drain/destroy/shutdown/abort,
 * re-entrant listeners, failing dead-letter handlers, hanging and abortable sink calls.
 */
export function faultScenarioArb(constraints: FaultConstraints = {}): fc.Arbitrary<Scenario> {
  const api = constraints.api ?? 'stream';
  const reentries = fc.array(reentryArb, { minLength: constraints.reentry === 'always' ? 1 : 0, maxLength: 3 });
  return fc
    .record({
      config: configArb(constraints),
      deadLetter: fc.constantFrom('handler' as const, 'handler' as const, 'event' as const, 'none' as const),
      handlerDelayMs: fc.constantFrom(0, 0, 35),
      handlerFails:
        constraints.failingHandlers === false
          ? fc.constant(undefined)
          : fc.constantFrom(undefined, undefined, 'throw' as const, 'reject' as const),
      listenDrop: fc.constantFrom(true, true, true, false),
      script: fc.array(constraints.steps ?? faultStepArb, { maxLength: 10 }),
      poison: fc.option(fc.integer({ min: 0, max: 4 }), { nil: null, freq: 3 }),
      producer: fc.constantFrom('ignore' as const, 'honour' as const),
      ops: fc.array(faultOpArb(api), { minLength: 1, maxLength: 20, size: 'medium' }),
      ending: endingArb,
      lateSettle: fc.constant(constraints.lateSettle ?? true),
      seed: fc.integer(),
      reentry: reentries,
      api: fc.constant(api),
      signal: fc.constant(true),
    })
    .map((s) => ({
      ...s,
      // A 'drop' listener that acts is a listener: its drops are heard, so they are recorded too.
      listenDrop: s.listenDrop || s.reentry.some((r) => r.event === 'drop'),
      // A 'deadletter' listener would be a dead-letter path; without one, the stream must fail instead.
      reentry: s.deadLetter === 'none' ? s.reentry.filter((r) => r.event !== 'deadletter') : s.reentry,
      ...(s.deadLetter === 'handler' ? {} : { handlerFails: undefined }),
    }));
}

// ---- running one -------------------------------------------------------------

/** Byte size of an item when a byte bound is on: 1 to 3, fixed per item. */
export const sizeOf = (id: number): number => (id % 3) + 1;

export interface DeadLetterRecord {
  ids: number[];
  error: BackpressureError<number>;
  /** Handler still running: the engine may count these items as held or as dead-lettered. */
  pending: boolean;
}

export interface Observations {
  scenario: Scenario;
  stream: BackpressureWritable<number>;
  controller: BackpressureController<number> | undefined;
  sink: ModelSink;
  /** Ids offered (given to write()/push()/end(chunk) while the stream was writable), in order. */
  written: number[];
  /** Calls of each write callback: [error, accepted]. */
  callbacks: Map<number, { error: Error | null | undefined; accepted: boolean | undefined }[]>;
  /** What each controller push() settled with (controller runs). */
  pushes: Map<number, 'pending' | 'accepted' | 'dropped' | 'rejected'>;
  dropped: { id: number; reason: DropReason }[];
  deadLettered: DeadLetterRecord[];
  /** Errors the dead-letter handler threw or rejected with. */
  handlerErrors: Error[];
  streamErrors: Error[];
  warnings: CapturedWarning[];
  finish: { metrics: BackpressureMetrics; sinkUnsettled: number } | undefined;
  closed: boolean;
  drains: number;
  /** What `finished(stream)` settled with. */
  finished: 'pending' | 'resolved' | { error: unknown };
  /** drain() calls and how each settled. */
  drainCalls: { settled: boolean; error: unknown }[];
  shutdown: { heardBefore: number; settled: boolean; undelivered: number[] | undefined; error: unknown } | undefined;
  /** The first destroy of the stream, when this run caused it (not the engine). */
  firstDestroy:
    | { kind: 'destroy'; error: Error | undefined }
    | { kind: 'abort' }
    | { kind: 'write-after-end'; callbackErrors: (Error | null | undefined)[] }
    | undefined;
  /** Every violation, with where it happened. */
  violations: string[];
}

export interface CapturedWarning {
  code: string | undefined;
  message: string;
  warning: unknown;
}

/** A run that needs more timer firings than this is stuck in a loop: a finding. */
const MAX_TIMERS_PER_WAIT = 20000;
/** Re-entrant writes per run, so that a listener writing on every event cannot recurse without end. */
const REENTRANT_WRITE_BUDGET = 12;
/** More violations than this are not recorded: the first ones say what broke. */
const MAX_VIOLATIONS = 20;

export class Run {
  readonly obs: Observations;
  #nextId = 0;
  /** Ids offered and not yet gone (dropped, delivered by the engine, dead-lettered). */
  readonly #live = new Set<number>();
  /** How often sizeOf() saw each value. */
  readonly #sized = new Map<number, number>();
  /**
   * block: when each write, if held, must be dropped at the latest (engine-api 3): maxBlockTimeMs after it reached
   * the stream, for writes made while the producer had been told to wait (a false and no 'drain' since).
   */
  readonly #deadlines = new Map<number, number>();
  /** Items the engine should count as delivered: what non-abandoned calls stored. */
  #engineDelivered = 0;
  /** A write() returned false and no 'drain' has fired since. */
  #falseSinceDrain = false;
  readonly #abort = new AbortController();
  /** Controller runs: flushing stopped (the controller starts stopped). */
  #stopped: boolean;
  /** `batches` when flushing was last seen stopped with nothing urgent; no new batch may be cut meanwhile. */
  #batchesWhileStopped: number | undefined;
  #reentrantWrites = 0;
  /** Fake time when the run began: violations say when they happened relative to it. */
  readonly #t0 = jest.now();
  readonly #reentry: (Reentry & { seen: number; fired: number })[];

  constructor(scenario: Scenario) {
    const { config } = scenario;
    const sink = new ModelSink(scenario.script, scenario.poison, config, scenario.lateSettle);
    const obs: Observations = {
      scenario,
      stream: undefined as unknown as BackpressureWritable<number>,
      controller: undefined,
      sink,
      written: [],
      callbacks: new Map(),
      pushes: new Map(),
      dropped: [],
      deadLettered: [],
      handlerErrors: [],
      streamErrors: [],
      warnings: [],
      finish: undefined,
      closed: false,
      drains: 0,
      finished: 'pending',
      drainCalls: [],
      shutdown: undefined,
      firstDestroy: undefined,
      violations: [],
    };
    this.obs = obs;
    this.#stopped = scenario.api === 'controller';
    this.#reentry = (scenario.reentry ?? []).map((r) => ({ ...r, seen: 0, fired: 0 }));

    const { adaptiveSlots, adaptiveBatch, ...fixed } = config;
    const options: BackpressureOptions<number> = {
      ...fixed,
      batchSize: adaptiveBatch === true ? { min: config.batchSize, max: config.maxBufferSize } : config.batchSize,
      maxConcurrentFlushes: adaptiveSlots
        ? { min: 1, max: Math.min(config.maxConcurrentFlushes, config.maxBufferSize) }
        : config.maxConcurrentFlushes,
      retry: { ...config.retry },
      sizeOf: (value: number) => {
        this.#sized.set(value, (this.#sized.get(value) ?? 0) + 1);
        return sizeOf(value);
      },
      ...(scenario.signal === true ? { signal: this.#abort.signal } : {}),
      ...(scenario.deadLetter === 'handler' ? { onDeadLetter: this.#onDeadLetter } : {}),
    };
    if (scenario.api === 'controller') {
      obs.controller = new BackpressureController<number>(sink.fn, options);
      obs.stream = obs.controller.stream;
    } else {
      obs.stream = createBackpressureStream<number>(sink.fn, options);
    }
    const { stream } = obs;
    sink.onCall = this.#onSinkCall;
    sink.onSettle = this.#onSinkSettle;

    // Observers first, so that they see each event before a re-entrant listener acts on it.
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = (...args: unknown[]): boolean => {
      const ok = write(...args);
      if (!ok) this.#falseSinceDrain = true;
      return ok;
    };
    if (scenario.deadLetter === 'event') {
      stream.on('deadletter', (items: number[], error: BackpressureError<number>) => {
        this.#heard(items, error, false);
      });
    }
    if (scenario.listenDrop) {
      stream.on('drop', (id: number, reason: DropReason) => {
        obs.dropped.push({ id, reason });
        this.#live.delete(id);
      });
    }
    stream.on('error', (error) => obs.streamErrors.push(error));
    stream.on('drain', this.#onDrain);
    stream.on('finish', () => {
      if (stream.destroyed) this.#violation("'finish'", "'finish' after destroy()");
      obs.finish = { metrics: stream.getMetrics(), sinkUnsettled: sink.unsettled };
    });
    stream.on('close', () => {
      obs.closed = true;
    });
    finished(stream).then(
      () => (obs.finished = 'resolved'),
      (error: unknown) => (obs.finished = { error }),
    );
    for (const rule of this.#reentry) {
      if (rule.event === 'drop' && !scenario.listenDrop) continue;
      stream.on(rule.event, () => this.#react(rule));
    }
  }

  get stream(): BackpressureWritable<number> {
    return this.obs.stream;
  }

  /** Any sink call so far that may have outlived flushTimeoutMs. */
  get anyTimeout(): boolean {
    return this.obs.sink.calls.some((call) => call.mayOutliveTimeout);
  }

  /** Items of calls that may have outlived flushTimeoutMs (they may be delivered twice). */
  timeoutTainted(): Set<number> {
    const tainted = new Set<number>();
    for (const call of this.obs.sink.calls) if (call.mayOutliveTimeout) for (const id of call.items) tainted.add(id);
    return tainted;
  }

  // ---- observers --------------------------------------------------------------

  #violation(where: string, what: string): void {
    if (this.obs.violations.length >= MAX_VIOLATIONS || IGNORED_VIOLATIONS?.test(what) === true) return;
    const m = this.stream.getMetrics();
    this.obs.violations.push(`${where} @${jest.now() - this.#t0}ms: ${what} — metrics ${JSON.stringify(m)}`);
  }

  readonly #onDrain = (): void => {
    this.obs.drains++;
    const { stream } = this;
    const m = stream.getMetrics();
    const low = this.obs.scenario.config.lowWatermark;
    if (!this.#falseSinceDrain)
      this.#violation("'drain'", "'drain' without a write() that returned false since the last one");
    if (!(m.bufferUtilization < low))
      this.#violation("'drain'", `'drain' at utilization ${m.bufferUtilization}, not below lowWatermark ${low}`);
    if (stream.writableEnded) this.#violation("'drain'", "'drain' after end()");
    if (stream.destroyed) this.#violation("'drain'", "'drain' after destroy()");
    this.#falseSinceDrain = false;
  };

  readonly #onDeadLetter = (items: number[], error: BackpressureError<number>): Promise<void> | undefined => {
    const { handlerDelayMs, handlerFails } = this.obs.scenario;
    const failure = new Error('dead-letter store down');
    if (handlerFails === 'throw') {
      this.#heard(items, error, false);
      this.obs.handlerErrors.push(failure);
      throw failure;
    }
    if (handlerDelayMs === 0) {
      this.#heard(items, error, false);
      if (handlerFails !== 'reject') return undefined;
      this.obs.handlerErrors.push(failure);
      return Promise.reject(failure);
    }
    const record = this.#heard(items, error, true);
    return new Promise<void>((resolve, reject) =>
      setTimeout(() => {
        record.pending = false;
        for (const id of record.ids) this.#live.delete(id);
        if (handlerFails !== 'reject') return resolve();
        this.obs.handlerErrors.push(failure);
        reject(failure);
      }, handlerDelayMs),
    );
  };

  #heard(items: number[], error: BackpressureError<number>, pending: boolean): DeadLetterRecord {
    const record: DeadLetterRecord = { ids: [...items], error, pending };
    this.obs.deadLettered.push(record);
    if (!pending) for (const id of items) this.#live.delete(id);
    return record;
  }

  readonly #onSinkCall = (call: SinkCall): void => {
    const { config } = this.obs.scenario;
    const limit = 2 * config.maxConcurrentFlushes;
    if (this.obs.sink.unsettled > limit)
      this.#violation(
        `sink call ${call.index}`,
        `${this.obs.sink.unsettled} sink calls unsettled, more than 2 × maxConcurrentFlushes = ${limit}`,
      );
    const largest = config.adaptiveBatch === true ? config.maxBufferSize : config.batchSize;
    if (call.items.length > largest)
      this.#violation(`sink call ${call.index}`, `${call.items.length} items in one call, more than ${largest}`);
    const context = call.context;
    if (context === undefined) return;
    if (context.signal?.aborted === true)
      this.#violation(`sink call ${call.index}`, 'the flush context signal was already aborted when the call started');
    if (!(Number.isSafeInteger(context.attempt) && (context.attempt as number) >= 1))
      this.#violation(
        `sink call ${call.index}`,
        `flush context attempt ${String(context.attempt)} is not an integer >= 1`,
      );
    // With a timeout, a batch's first tries may find no free call slot (every slot held by an abandoned call):
    // its items then reach the sink first in an isolation call, which goes on counting.
    else if (call.fresh && context.attempt !== 1 && config.flushTimeoutMs === Infinity)
      this.#violation(`sink call ${call.index}`, `a freshly cut batch was called with attempt ${context.attempt}`);
  };

  /** Whether the engine has given up on an open or just-settled call (its result does not count). */
  #abandoned(call: SinkCall): boolean {
    return (
      call.context?.signal?.aborted === true ||
      jest.now() - call.startedAt >= this.obs.scenario.config.flushTimeoutMs ||
      this.stream.destroyed
    );
  }

  readonly #onSinkSettle = (call: SinkCall): void => {
    if (this.#abandoned(call)) {
      const reason = call.context?.signal?.reason as unknown;
      if (call.context?.signal?.aborted === true && !isAbortReason(reason))
        this.#violation(
          `sink call ${call.index}`,
          `signal.reason is not a BackpressureError with code ERR_FLUSH_TIMEOUT, ERR_STREAM_DESTROYED or ERR_SHUTDOWN_TIMEOUT: ${String(reason)}`,
        );
      return;
    }
    this.#engineDelivered += call.stored.length;
    for (const id of call.stored) this.#live.delete(id);
  };

  /** A re-entrant listener: acts on the stream from inside the event, checking the bounds before and after. */
  #react(rule: Reentry & { seen: number; fired: number }): void {
    rule.seen++;
    if (rule.seen < rule.nth || rule.fired >= rule.times) return;
    rule.fired++;
    const where = `in a '${rule.event}' listener`;
    this.checkBounds(`${where}, before it acts`);
    const { action } = rule;
    if (action.kind === 'write') {
      for (let k = 0; k < action.n && this.#reentrantWrites < REENTRANT_WRITE_BUDGET; k++) {
        this.#reentrantWrites++;
        if (this.write() === undefined) break;
        this.checkBounds(`${where}, after its write()`);
      }
    } else if (action.kind === 'end') {
      this.#end(false);
    } else {
      this.#destroy(action.withError);
    }
    this.checkBounds(`${where}, after it acted`);
  }

  // ---- operations ---------------------------------------------------------------

  /** Offers the next id (write() or push()); undefined when the stream no longer takes writes. */
  write(): boolean | undefined {
    const { stream, controller } = this.obs;
    if (!stream.writable) return undefined;
    const id = this.#offer();
    const value = this.#value(id);
    if (controller !== undefined) {
      this.obs.pushes.set(id, 'pending');
      controller.push(value).then(
        (accepted) => {
          this.obs.pushes.set(id, accepted ? 'accepted' : 'dropped');
          if (accepted) this.#admittedInTime(id);
        },
        () => this.obs.pushes.set(id, 'rejected'),
      );
      return true;
    }
    this.obs.callbacks.set(id, []);
    return stream.write(value, (error, accepted) => {
      this.obs.callbacks.get(id)?.push({ error, accepted });
      if (error == null && accepted === true) this.#admittedInTime(id);
    });
  }

  /** A held write is admitted no later than its maxBlockTimeMs deadline (else it is dropped with 'timeout'). */
  #admittedInTime(id: number): void {
    const deadline = this.#deadlines.get(id);
    if (deadline !== undefined && jest.now() > deadline)
      this.#violation(
        `write ${id} accepted`,
        `write ${id} was accepted ${jest.now() - deadline} ms after its maxBlockTimeMs deadline`,
      );
  }

  #offer(): number {
    const id = this.#nextId++;
    this.#offered(id);
    return id;
  }

  #offered(id: number): void {
    this.obs.written.push(id);
    this.#live.add(id);
    const { maxBlockTimeMs } = this.obs.scenario.config;
    if (this.#falseSinceDrain && maxBlockTimeMs !== Infinity) this.#deadlines.set(id, jest.now() + maxBlockTimeMs);
  }

  #value(id: number): number {
    const { duplicates } = this.obs.scenario;
    return duplicates === undefined ? id : id % duplicates;
  }

  #end(chunk: boolean): void {
    const { stream } = this;
    if (stream.writable) {
      if (chunk) stream.end(this.#value(this.#offer()));
      else stream.end();
      return;
    }
    if (!chunk) {
      stream.end();
      return;
    }
    // end(chunk) after end(): the chunk is not offered; Node's rule is ERR_STREAM_WRITE_AFTER_END to the callback
    // and as 'error' (engine-api 6).
    const refused = this.#nextId++;
    const callbackErrors: (Error | null | undefined)[] = [];
    if (stream.writableEnded && !stream.destroyed && this.obs.firstDestroy === undefined)
      this.obs.firstDestroy = { kind: 'write-after-end', callbackErrors };
    stream.end(this.#value(refused), (error?: Error | null) => callbackErrors.push(error));
  }

  #destroy(withError: boolean): void {
    const { stream } = this;
    const error = withError ? new Error('destroyed by the producer') : undefined;
    if (!stream.destroyed) this.obs.firstDestroy ??= { kind: 'destroy', error };
    stream.destroy(error);
  }

  #abortSignal(): void {
    if (this.obs.scenario.signal !== true || this.#abort.signal.aborted) return;
    if (!this.stream.destroyed) this.obs.firstDestroy ??= { kind: 'abort' };
    this.#abort.abort(new Error('aborted by the producer'));
  }

  #drain(): void {
    const { stream, controller } = this.obs;
    const record = { settled: false, error: undefined as unknown };
    this.obs.drainCalls.push(record);
    (controller ?? stream).drain().then(
      () => (record.settled = true),
      (error: unknown) => {
        record.settled = true;
        record.error = error ?? new Error('drain() rejected with nothing');
      },
    );
  }

  #shutdown(timeoutMs: number): void {
    const { stream, controller } = this.obs;
    const first = this.obs.shutdown === undefined;
    const record = this.obs.shutdown ?? {
      heardBefore: this.obs.deadLettered.length,
      settled: false,
      undelivered: undefined,
      error: undefined,
    };
    this.obs.shutdown = record;
    (controller ?? stream).shutdown({ timeoutMs }).then(
      ({ undelivered }) => {
        record.settled = true;
        if (!first) return;
        record.undelivered = [...undelivered];
      },
      (error: unknown) => {
        record.settled = true;
        if (first) record.error = error;
      },
    );
  }

  /** Fires timers one at a time (draining the event loop after each) until `ms` of fake time passed. */
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

  /**
   * Fires timers one at a time until `done()`; false if nothing is left to fire and it still is not done. A sink
   * call that never answers holds the stream up legitimately once the engine has given up on as many calls as it
   * may leave unsettled (maxConcurrentFlushes, engine-api 1): then the oldest such call answers late, and the
   * wait goes on.
   */
  async until(done: () => boolean, where: string): Promise<boolean> {
    await this.#quiet(where);
    for (let fired = 0; fired < MAX_TIMERS_PER_WAIT; fired++) {
      if (done()) return true;
      if (jest.getTimerCount() === 0) {
        await settle(4);
        if (done()) return true;
        if (!this.#releaseStalledCall()) return false;
        await this.#quiet(`${where} (a stalled sink call answered late)`);
        continue;
      }
      jest.advanceTimersToNextTimer();
      await this.#quiet(where);
    }
    return done();
  }

  #releaseStalledCall(): boolean {
    const open = this.obs.sink.open().filter((call) => call.release !== undefined);
    const abandoned = open.filter((call) => this.#abandoned(call));
    if (!this.stream.destroyed && abandoned.length < this.obs.scenario.config.maxConcurrentFlushes) return false;
    const call = abandoned[0] ?? open[0];
    if (call?.release === undefined) return false;
    call.release();
    return true;
  }

  async #quiet(where: string): Promise<void> {
    await settle(2);
    this.checkAll(where, true);
  }

  // ---- invariants -----------------------------------------------------------------

  /** What must hold at every instant, even inside a listener in the middle of an admission. */
  checkBounds(where: string): void {
    const { stream, sink, scenario } = this.obs;
    const { config } = scenario;
    const m = stream.getMetrics();
    if (!(m.bufferSize <= config.maxBufferSize))
      this.#violation(where, `bufferSize ${m.bufferSize} > maxBufferSize ${config.maxBufferSize}`);
    if (!(m.bufferBytes <= config.maxBufferBytes))
      this.#violation(where, `bufferBytes ${m.bufferBytes} > maxBufferBytes ${config.maxBufferBytes}`);
    if (!(m.waitingWrites <= stream.writableHighWaterMark))
      this.#violation(
        where,
        `waitingWrites ${m.waitingWrites} > writableHighWaterMark ${stream.writableHighWaterMark}`,
      );
    const limit = 2 * config.maxConcurrentFlushes;
    if (sink.unsettled > limit)
      this.#violation(where, `${sink.unsettled} sink calls unsettled, more than 2 × maxConcurrentFlushes = ${limit}`);
  }

  /**
   * The invariants after every operation (synchronously) and at every quiet point (`quiet`: the event loop has
   * been drained, so errors and late handler results have been seen too).
   */
  checkAll(where: string, quiet: boolean): void {
    this.checkBounds(where);
    const { stream, scenario, written } = this.obs;
    const m = stream.getMetrics();
    const fail = (what: string): void => this.#violation(where, what);
    if (!(m.inFlight >= 0 && m.inFlight <= m.bufferSize)) fail(`inFlight ${m.inFlight} outside [0, bufferSize]`);
    if (m.eventsOffered !== written.length)
      fail(`eventsOffered ${m.eventsOffered} !== items offered ${written.length}`);
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
    if (quiet && scenario.deadLetter !== 'none' && this.obs.handlerErrors.length === 0) {
      const heard = this.obs.deadLettered.reduce((n, d) => n + d.ids.length, 0);
      // A dead letter may be counted when its handler has settled; the handler hears it first.
      if (!(heard >= m.deadLettered)) fail(`dead-letter path heard ${heard} items, deadLettered ${m.deadLettered}`);
    }
    // The engine counts as delivered exactly what the sink stored in calls it had not given up on.
    if (!stream.destroyed && m.eventsFlushed !== this.#engineDelivered)
      fail(
        `eventsFlushed ${m.eventsFlushed} !== items the sink stored in calls the engine listened to ${this.#engineDelivered}`,
      );
    if (stream.destroyed && (m.bufferSize !== 0 || m.bufferBytes !== 0 || m.waitingWrites !== 0))
      fail(`destroyed, yet holds ${m.bufferSize} items (${m.bufferBytes} bytes), ${m.waitingWrites} waiting`);
    this.#checkHeldModel(m, fail);
    this.#checkStopped(m, fail);
  }

  /**
   * bufferSize and bufferBytes against the model of what is held: every item offered that was not dropped,
   * delivered (in a call the engine listened to) or dead-lettered, minus the newest `waitingWrites` of them (block
   * admits waiting writes oldest first). Items whose async dead-letter handler is still running may be counted
   * either way. Needs every drop to be heard and distinct items.
   */
  #checkHeldModel(m: BackpressureMetrics, fail: (what: string) => void): void {
    const { scenario, stream, written } = this.obs;
    const finiteBytes = scenario.config.maxBufferBytes !== Infinity;
    if (scenario.duplicates !== undefined) return;
    if (finiteBytes) {
      for (const [value, n] of this.#sized) if (n > 1) fail(`sizeOf was called ${n} times for item ${value}`);
    }
    if (!scenario.listenDrop || stream.destroyed) return;
    const live = written.filter((id) => this.#live.has(id));
    const held = live.slice(0, Math.max(0, live.length - m.waitingWrites));
    for (const id of live.slice(held.length)) {
      const deadline = this.#deadlines.get(id);
      if (deadline !== undefined && jest.now() > deadline)
        fail(`write ${id} still waits ${jest.now() - deadline} ms past its maxBlockTimeMs deadline`);
    }
    const pending = this.obs.deadLettered.filter((d) => d.pending).map((d) => d.ids);
    const heldBytes = held.reduce((sum, id) => sum + sizeOf(id), 0);
    const options = pendingSplits(pending);
    const fits = options.some(
      (o) => m.bufferSize === held.length + o.count && (!finiteBytes || m.bufferBytes === heldBytes + o.bytes),
    );
    if (!fits) {
      fail(
        `held ${m.bufferSize} items / ${m.bufferBytes} bytes, but the items offered and not yet dropped, delivered or dead-lettered are ${JSON.stringify(held)} (${held.length} items / ${heldBytes} bytes)` +
          (pending.length > 0 ? `, plus ${JSON.stringify(pending)} with a dead-letter handler still running` : ''),
      );
    }
    if (finiteBytes) for (const id of held) if (!this.#sized.has(id)) fail(`held item ${id} was never sized`);
  }

  /** Controller: while stopped and nothing urgent (end, drain(), shutdown) is in progress, no new batch is cut. */
  #checkStopped(m: BackpressureMetrics, fail: (what: string) => void): void {
    if (this.obs.controller === undefined) return;
    const { stream } = this;
    const urgent =
      stream.writableEnded ||
      stream.destroyed ||
      this.obs.drainCalls.some((d) => !d.settled) ||
      (this.obs.shutdown !== undefined && !this.obs.shutdown.settled);
    if (!this.#stopped || urgent) {
      this.#batchesWhileStopped = undefined;
      return;
    }
    this.#batchesWhileStopped ??= m.batches;
    if (m.batches !== this.#batchesWhileStopped)
      fail(`a batch was cut while the controller was stopped (batches ${this.#batchesWhileStopped} → ${m.batches})`);
  }

  // ---- playing a scenario -------------------------------------------------------

  /** Plays the producer's operations, checking after each one. */
  async play(): Promise<void> {
    const { scenario } = this.obs;
    for (const op of scenario.ops) {
      if (this.obs.violations.length > 0) return;
      if (op.kind === 'tick') {
        await this.tick(op.ms);
        continue;
      }
      if (op.kind === 'write') {
        if (!(await this.#writeMany(op.n))) return;
      } else {
        this.#apply(op);
        this.checkAll(`after ${op.kind}`, false);
      }
      await this.#quiet(`after ${op.kind} op`);
    }
  }

  #apply(op: Exclude<Op, { kind: 'write' } | { kind: 'tick' }>): void {
    switch (op.kind) {
      case 'end':
        return this.#end(op.chunk);
      case 'drain':
        return this.#drain();
      case 'destroy':
        return this.#destroy(op.withError);
      case 'shutdown':
        return this.#shutdown(op.timeoutMs);
      case 'abort':
        return this.#abortSignal();
      case 'stop':
        this.#stopped = true;
        return this.obs.controller?.stop();
      case 'start':
        this.#stopped = false;
        return this.obs.controller?.start();
      case 'same-tick':
        for (const inner of op.ops) {
          this.#apply(inner);
          this.checkAll(`after ${inner.kind} (same tick)`, false);
        }
    }
  }

  /** Writes `n` items; an honouring producer waits for 'drain' after a false (a controller one, for each push). */
  async #writeMany(n: number): Promise<boolean> {
    const { scenario } = this.obs;
    for (let k = 0; k < n; k++) {
      const id = this.#nextId;
      const ok = this.write();
      if (ok === undefined) break;
      this.checkAll('after write()', false);
      if (scenario.producer === 'ignore') continue;
      if (this.obs.controller !== undefined) {
        const settled = await this.until(() => this.obs.pushes.get(id) !== 'pending', 'awaiting push()');
        if (!settled && !this.#stopped) {
          this.#violation('awaiting push()', `push() never settled (state ${this.stream.state})`);
          return false;
        }
        continue;
      }
      if (ok) continue;
      const drainsBefore = this.obs.drains;
      const resumed = await this.until(() => this.obs.drains > drainsBefore || !this.stream.writable, 'awaiting drain');
      if (!resumed) {
        this.#violation(
          'awaiting drain',
          `liveness: write() returned false and 'drain' never came (state ${this.stream.state})`,
        );
        return false;
      }
    }
    return true;
  }

  /**
   * An honouring producer: `pipeline(Readable.from(ids), stream)`, which waits for 'drain' after every `false`.
   * Records what reaches `write()`. Returns how the pipeline settled, or 'stuck' if it never did.
   */
  async pipeFrom(count: number): Promise<'resolved' | 'rejected' | 'stuck'> {
    const { stream } = this;
    const write = stream.write.bind(stream) as (chunk: number, ...rest: unknown[]) => boolean;
    stream.write = (chunk: number, ...rest: unknown[]) => {
      if (stream.writable) this.#offered(chunk);
      const ok = write(chunk, ...rest);
      this.checkAll('after a piped write()', false);
      return ok;
    };
    const ids = Array.from({ length: count }, (_, i) => i);
    let outcome: 'resolved' | 'rejected' | undefined;
    pipeline(Readable.from(ids), stream).then(
      () => (outcome = 'resolved'),
      () => (outcome = 'rejected'),
    );
    const settled = await this.until(() => outcome !== undefined, 'pipeline');
    if (!settled) {
      this.#violation(
        'pipeline',
        `liveness: the pipeline never settled (written ${this.obs.written.length} of ${count}, state ${stream.state})`,
      );
      return 'stuck';
    }
    await this.until(() => this.obs.closed, 'after pipeline');
    await this.until(() => false, 'after close');
    return outcome ?? 'stuck';
  }

  /** Ends the run as the scenario says (unless the operations already did) and waits for 'close'. */
  async finish(): Promise<void> {
    const { stream, scenario } = this.obs;
    const { ending } = scenario;
    const untouched = !stream.destroyed && !stream.writableEnded && this.obs.shutdown === undefined;
    if (untouched && ending.kind === 'end') this.#end(false);
    else if (untouched && ending.kind === 'shutdown') this.#shutdown(ending.timeoutMs);
    else if (untouched && ending.kind === 'destroy') this.#destroy(ending.withError);
    this.checkAll(`after the ending (${ending.kind})`, false);
    const shutdown = this.obs.shutdown;
    if (shutdown !== undefined && !(await this.until(() => shutdown.settled, 'shutdown')))
      this.#violation('shutdown', 'liveness: shutdown() never settled');
    if (!(await this.until(() => this.obs.closed, 'ending'))) {
      this.#violation(
        'ending',
        `liveness: no 'close' after ${untouched ? ending.kind : 'the operations'} (state ${stream.state})`,
      );
      return;
    }
    // Late calls (hangs are never released; delays finish) must not change the books.
    await this.until(() => false, 'after close');
    for (const [i, call] of this.obs.drainCalls.entries())
      if (!call.settled) this.#violation('end', `liveness: drain() call ${i} never settled`);
    for (const [id, outcome] of this.obs.pushes)
      if (outcome === 'pending') this.#violation('end', `liveness: push() of item ${id} never settled`);
  }
}

/** The (count, bytes) the engine may count for dead-letter batches whose handler is still running: any subset. */
function pendingSplits(pending: number[][]): { count: number; bytes: number }[] {
  let splits = [{ count: 0, bytes: 0 }];
  for (const ids of pending.slice(0, 8)) {
    const bytes = ids.reduce((sum, id) => sum + sizeOf(id), 0);
    splits = [...splits, ...splits.map((s) => ({ count: s.count + ids.length, bytes: s.bytes + bytes }))];
  }
  return splits;
}

function isAbortReason(reason: unknown): boolean {
  return (
    reason instanceof BackpressureError &&
    ['ERR_FLUSH_TIMEOUT', 'ERR_STREAM_DESTROYED', 'ERR_SHUTDOWN_TIMEOUT'].includes(reason.code)
  );
}

/** Runs `body` with fake timers, a seeded Math.random and captured process warnings. */
export async function inFakeWorld<R>(seed: number, body: (warnings: CapturedWarning[]) => Promise<R>): Promise<R> {
  useStreamFakeTimers();
  const random = jest.spyOn(Math, 'random').mockImplementation(seededRandom(seed));
  const warnings: CapturedWarning[] = [];
  const warn = jest.spyOn(process, 'emitWarning').mockImplementation((warning: unknown, options?: unknown) => {
    const code = typeof options === 'object' && options !== null ? (options as { code?: string }).code : undefined;
    const message = warning instanceof Error ? warning.message : String(warning);
    warnings.push({ code: code ?? (warning as { code?: string }).code, message, warning });
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

/**
 * A property's predicate: runs the scenario and throws, with the scenario explained, if `check`
 * finds violations in the finished run.
 */
export function holdsBy(check: (run: Run) => string[]): (scenario: Scenario) => Promise<void> {
  return async (scenario) => {
    const { run } = await runScenario(scenario);
    const violations = check(run);
    if (violations.length > 0) throw new Error(explain(scenario, violations));
  };
}

/** Every check at the end of a run (terminalViolations): the predicate of most properties. */
export const holdsAtEnd = holdsBy(terminalViolations);

export { countViolations, deadLetteredIds, explain, terminalViolations } from './property-checks';
