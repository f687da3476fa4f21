import { Writable } from 'node:stream';
import {
  BackpressureTransform,
  BlockingWritable,
  DropNewestWritable,
  DropOldestWritable,
  SamplingWritable,
} from '../../lib';
import { TestSink, settle } from '../support/test-sink';
import type { BackpressureMetrics, BackpressureOptions, FlushFunction } from '../../lib';

/**
 * The conformance harness: the same scenario runs on a native object-mode `Writable` (Node itself, the
 * oracle) and on a sluice, and the two traces of Node-visible events are compared.
 *
 * Both sides get the same kind of sink:
 * - `ok`: every item is taken at once (native: `write(c, e, cb) { cb() }`; sluice: a sink that resolves);
 * - `hang`: nothing completes until `releaseOne()` (native: the write callback is held; sluice: a manual
 *   flush call, or nobody reading the Transform's readable side);
 * - `fail`: every delivery fails (native: `cb(error)`; sluice: the flush rejects, no retries).
 *
 * A sluice flushes one item per batch here (`batchSize: 1`), so, like a native Writable, it starts
 * delivering an item as soon as it has one and delivers one at a time. `maxBufferSize: 10` gives a
 * `writableHighWaterMark` (the critical count) of 8; the native Writable gets the same `highWaterMark`.
 */

export interface Item {
  id: number;
}

export type SinkMode = 'ok' | 'hang' | 'fail';

/** A stream under test and a handle on its sink. */
export interface Subject {
  readonly stream: Writable;
  /** Items the sink took, in order. */
  readonly delivered: unknown[];
  /** Completes the oldest delivery still pending (`hang`). */
  releaseOne(): void;
  /** Deliveries started and not completed (`hang`). */
  readonly pending: number;
  /** From now on the sink takes everything at once, pending deliveries included. */
  releaseAll(): void;
  /** Counters of a sluice; undefined for the native Writable. */
  metrics(): BackpressureMetrics | undefined;
}

export const SINK_ERROR_MESSAGE = 'sink failed';

/** Options every sluice in this suite gets: one item per batch, a small bound, failures not retried. */
export const SLUICE_OPTIONS = {
  batchSize: 1,
  maxBufferSize: 10,
  retry: { maxRetries: 0 },
} as const satisfies BackpressureOptions;

/** `writableHighWaterMark` of a sluice with {@link SLUICE_OPTIONS} (the critical count: 0.8 × 10). */
export const HWM = 8;
/** Held count below which a sluice with {@link SLUICE_OPTIONS} emits 'drain' (0.5 × 10). */
export const LOW_COUNT = 5;

/** The oracle: a plain object-mode Writable with the sink `mode`. */
export function nativeWritable(
  mode: SinkMode,
  options: { highWaterMark?: number; signal?: AbortSignal } = {},
): Subject {
  const delivered: unknown[] = [];
  const held: (() => void)[] = [];
  let sinkMode = mode;
  const stream = new Writable({
    objectMode: true,
    highWaterMark: options.highWaterMark ?? HWM,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    write(chunk: unknown, _encoding, callback) {
      if (sinkMode === 'ok') {
        delivered.push(chunk);
        callback();
      } else if (sinkMode === 'fail') {
        callback(new Error(SINK_ERROR_MESSAGE));
      } else {
        held.push(() => {
          delivered.push(chunk);
          callback();
        });
      }
    },
  });
  return {
    stream,
    delivered,
    releaseOne: () => {
      const next = held.shift();
      if (next === undefined) throw new Error('nativeWritable: nothing pending');
      next();
    },
    get pending() {
      return held.length;
    },
    releaseAll: () => {
      sinkMode = 'ok';
      for (const next of held.splice(0)) next();
    },
    metrics: () => undefined,
  };
}

type WritableClass = new (
  flush: FlushFunction<unknown>,
  options?: BackpressureOptions<unknown>,
) => Writable & {
  getMetrics(): BackpressureMetrics;
};

/** One shape of sluice: a strategy class, or the Transform's writable side. */
export interface Kind {
  readonly name: string;
  /** `write()` returns `false` under pressure (block), as a native Writable does. */
  readonly blocks: boolean;
  /** Its sink can fail (the Transform pushes downstream, which cannot fail). */
  readonly canFail: boolean;
  make(mode: SinkMode, options?: BackpressureOptions<unknown>): Subject;
}

function strategyKind(name: string, Class: WritableClass, blocks: boolean): Kind {
  return {
    name,
    blocks,
    canFail: true,
    make(mode, options = {}) {
      const sink = new TestSink<unknown>(
        mode === 'ok'
          ? { kind: 'ok' }
          : mode === 'hang'
            ? { kind: 'manual' }
            : { kind: 'reject', error: new Error(SINK_ERROR_MESSAGE) },
      );
      const stream = new Class(sink.flush, { ...SLUICE_OPTIONS, ...options });
      return {
        stream,
        delivered: sink.delivered,
        releaseOne: () => sink.resolveNext(),
        get pending() {
          return sink.pendingCalls;
        },
        releaseAll: () => {
          sink.otherwise({ kind: 'ok' });
          while (sink.pendingCalls > 0) sink.resolveNext();
        },
        metrics: () => stream.getMetrics(),
      };
    },
  };
}

/** The Transform's writable side; its "sink" is whoever reads the batches (`hang`: nobody, until released). */
const transformKind: Kind = {
  name: 'BackpressureTransform',
  blocks: true,
  canFail: false,
  make(mode, options = {}) {
    if (mode === 'fail') throw new Error('a BackpressureTransform cannot fail to deliver');
    const { retry: _retry, ...rest } = { ...SLUICE_OPTIONS, ...options };
    const stream = new BackpressureTransform<unknown>({ strategy: 'block', ...rest });
    const delivered: unknown[] = [];
    if (mode === 'ok') stream.on('data', (batch: unknown[]) => delivered.push(...batch));
    return {
      stream,
      delivered,
      releaseOne: () => {
        const batch = stream.read();
        if (batch === null) throw new Error('transform: nothing pending');
        delivered.push(...batch);
      },
      get pending() {
        return stream.readableLength;
      },
      releaseAll: () => {
        stream.on('data', (batch: unknown[]) => delivered.push(...batch));
      },
      metrics: () => stream.getMetrics(),
    };
  },
};

export const BLOCKING: Kind = strategyKind('BlockingWritable', BlockingWritable, true);

/** Every shape whose lifecycle (write errors, end, finish, close, destroy) must follow Node. */
export const ALL_KINDS: readonly Kind[] = [
  BLOCKING,
  strategyKind('DropOldestWritable', DropOldestWritable, false),
  strategyKind('DropNewestWritable', DropNewestWritable, false),
  strategyKind('SamplingWritable', SamplingWritable, false),
  transformKind,
];

/** The shapes that pause a producer: their `write()`/`'drain'`/`writableNeedDrain` face Node's pipe(). */
export const BLOCKING_KINDS: readonly Kind[] = ALL_KINDS.filter((kind) => kind.blocks);

/** The shapes whose sink can fail. */
export const FAILING_KINDS: readonly Kind[] = ALL_KINDS.filter((kind) => kind.canFail);

/** How an error shows in a trace: its `code`, else its name. */
export function errorLabel(error: unknown): string {
  if (error === null || error === undefined) return 'ok';
  if (typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.name : typeof error;
}

/**
 * The events a trace records unless told otherwise. Not 'prefinish': a native Writable whose sink takes an
 * item synchronously emits it from inside end(), a sluice (whose sink is always asynchronous) once the last
 * flush settled, so its timing says when the sink completes, not how the stream behaves.
 */
export const DEFAULT_EVENTS: readonly string[] = ['drain', 'finish', 'close', 'error'];

/** With 'prefinish', for the tests that are about it. */
export const WITH_PREFINISH: readonly string[] = ['prefinish', ...DEFAULT_EVENTS];

/** Node-visible events of a Writable, and the callbacks a scenario hands out, in the order they happen. */
export class Trace {
  readonly events: string[] = [];

  constructor(stream: Writable, names: readonly string[] = DEFAULT_EVENTS) {
    for (const name of names) {
      stream.on(name, (arg: unknown) => this.events.push(name === 'error' ? `error:${errorLabel(arg)}` : name));
    }
  }

  /** A callback that records `label:<code>` (or `label:ok`) when called. */
  cb(label: string): (error?: Error | null) => void {
    return (error) => {
      this.events.push(`${label}:${errorLabel(error)}`);
    };
  }

  mark(label: string): void {
    this.events.push(label);
  }
}

/** The flags Node's own tests read, as one comparable string. */
export function flags(stream: Writable): string {
  const on = (name: string, value: boolean | null): string => (value === true ? name : `!${name}`);
  return [
    on('writable', stream.writable),
    on('ended', stream.writableEnded),
    on('finished', stream.writableFinished),
    on('destroyed', stream.destroyed),
    on('closed', stream.closed),
    on('errored', stream.errored !== null),
  ].join(' ');
}

export type Scenario = (subject: Subject, trace: Trace) => void | Promise<void>;

/** Runs `scenario` on `subject`, lets the streams settle, and returns the trace. */
export async function run(subject: Subject, scenario: Scenario, events?: readonly string[]): Promise<string[]> {
  const trace = new Trace(subject.stream, events);
  await scenario(subject, trace);
  await settle(20);
  return trace.events;
}

export function item(id: number): Item {
  return { id };
}

export interface Conformance {
  scenario: Scenario;
  /** The sink both sides get (default `ok`). */
  mode?: SinkMode;
  /** What Node does: the native Writable's trace, pinned. */
  native: string[];
  /** The sluice shapes that must do the same (default: all). */
  kinds?: readonly Kind[];
  /** The events to record (default {@link DEFAULT_EVENTS}). */
  events?: readonly string[];
  /** Builds the native subject (default `nativeWritable(mode)`). */
  makeNative?: () => Subject;
  /** Builds a sluice subject (default `kind.make(mode)`). */
  make?: (kind: Kind) => Subject;
  /** Gives the sluice a 'deadletter' listener, so items held at destroy() are not what is looked at. */
  quietDeadLetters?: boolean;
  /**
   * Where a sluice differs on purpose (one of the documented differences): its trace, and which
   * difference it is. The native trace is still pinned.
   */
  intended?: { difference: string; sluice: string[] };
}

/**
 * Defines the tests of one scenario: Node's trace (pinned), then one test per sluice shape that must
 * give the same trace.
 */
export function likeNative(title: string, spec: Conformance): void {
  const mode = spec.mode ?? 'ok';
  const makeNative = spec.makeNative ?? ((): Subject => nativeWritable(mode));
  const make = spec.make ?? ((kind: Kind): Subject => kind.make(mode));
  test(`native: ${title}`, async () => {
    expect(await run(makeNative(), spec.scenario, spec.events)).toEqual(spec.native);
  });
  const kinds = spec.kinds ?? ALL_KINDS;
  if (kinds.length === 0) return;
  const { intended } = spec;
  const how = intended === undefined ? 'as native' : `intended difference: ${intended.difference}`;
  test.each(kinds)(`$name: ${title}, ${how}`, async (kind) => {
    const subject = make(kind);
    if (spec.quietDeadLetters === true) subject.stream.on('deadletter', () => undefined);
    expect(await run(subject, spec.scenario, spec.events)).toEqual(intended?.sluice ?? spec.native);
  });
}
