import type { BackpressureMetrics } from '../../lib';

/**
 * Shared helpers of the issue-9 regression specs (one spec per defect).
 *
 * The v0.2 flush context `{ signal, attempt }` is declared here rather than
 * imported, so these specs compile against the engine before and after it
 * gains the second argument: a flush function with an optional second
 * parameter fits both signatures.
 */
export interface FlushContext {
  readonly signal: AbortSignal;
  readonly attempt: number;
}

/** One call of a recorded flush function. */
export interface RecordedCall<T> {
  items: T[];
  context: FlushContext | undefined;
  /** Fake time when the call was made. */
  at: number;
  /** Whether its signal was already aborted when the call was made (a retry must get a fresh one). */
  abortedAtCall: boolean | undefined;
}

/** Wraps a flush function so that every call's context (and when it came) is recorded. */
export function recordCalls<T, R>(
  flush: (items: T[]) => R,
): { flush: (items: T[], context?: FlushContext) => R; calls: RecordedCall<T>[] } {
  const calls: RecordedCall<T>[] = [];
  return {
    calls,
    flush: (items: T[], context?: FlushContext): R => {
      calls.push({ items: [...items], context, at: Date.now(), abortedAtCall: context?.signal.aborted });
      return flush(items);
    },
  };
}

/** The `code` of an error-like value, if it has one. */
export function codeOf(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Offered = delivered + dead-lettered + dropped + held + waiting: the contract's accounting identity. */
export function expectBalanced(m: BackpressureMetrics): void {
  expect(m.eventsOffered).toBe(m.eventsFlushed + m.deadLettered + m.eventsDropped + m.bufferSize + m.waitingWrites);
}

/** A process warning as given to `process.emitWarning`, whichever of its signatures was used. */
export interface CapturedWarning {
  message: string;
  code: string | undefined;
}

/** Captures (and silences) process warnings until `restore()`. */
export function captureWarnings(): { warnings: CapturedWarning[]; restore: () => void } {
  const warnings: CapturedWarning[] = [];
  const spy = jest
    .spyOn(process, 'emitWarning')
    .mockImplementation((warning: string | Error, typeOrOptions?: unknown, code?: unknown): void => {
      const message = typeof warning === 'string' ? warning : warning.message;
      let found = codeOf(warning);
      if (typeof typeOrOptions === 'object' && typeOrOptions !== null) found ??= codeOf(typeOrOptions);
      if (typeof code === 'string') found ??= code;
      warnings.push({ message, code: found });
    });
  return { warnings, restore: () => spy.mockRestore() };
}

/**
 * Records the given events of an emitter as `name` or `name:code` (for errors), in order: the
 * trace compared against a native Writable's.
 */
export function traceEvents(
  emitter: { on(event: string, listener: (...args: unknown[]) => void): unknown },
  events: readonly string[] = ['drain', 'error', 'finish', 'close'],
): string[] {
  const trace: string[] = [];
  for (const event of events) {
    emitter.on(event, (arg?: unknown) => {
      const code = event === 'error' ? codeOf(arg) : undefined;
      trace.push(code === undefined ? event : `${event}:${code}`);
    });
  }
  return trace;
}
