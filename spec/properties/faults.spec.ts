import fc from 'fast-check';
import { BackpressureStrategy } from '../../lib';
import {
  checkProperty,
  faultScenarioArb,
  faultStepArb,
  holdsAtEnd,
  propertyTimeout,
} from '../support/property-harness';
import type { Step } from '../support/property-harness';

/**
 * The fault classes that hid the defects of issue 9 (defect 16). Every run checks, after every operation (inside
 * listeners too) and at every quiet point: bufferSize <= maxBufferSize, bufferBytes <= maxBufferBytes,
 * waitingWrites <= writableHighWaterMark, at most 2 × maxConcurrentFlushes sink calls unsettled, the accounting
 * identity, bufferBytes = the sum of sizeOf over what the model says is held, and the 'drain' hysteresis ('drain'
 * only after a false, below lowWatermark, never after end() or destroy, once per false); at the end, everything
 * terminalViolations() checks, including how destroy, abort, shutdown, drain() and finished() reported the end.
 */
describe('property: faults never break the bounds or the books', () => {
  test(
    'interleaved write, end, drain(), destroy, shutdown and abort, with faulty sinks',
    async () => {
      await checkProperty(faultScenarioArb(), holdsAtEnd);
    },
    propertyTimeout(),
  );

  test(
    "re-entrant 'drop', 'drain', 'state' and 'deadletter' listeners write, end or destroy the same stream",
    async () => {
      await checkProperty(faultScenarioArb({ reentry: 'always' }), holdsAtEnd);
    },
    propertyTimeout(),
  );

  test(
    "a byte bound with 'drop' listeners that write during an eviction",
    async () => {
      const scenarios = faultScenarioArb({ strategies: [BackpressureStrategy.DROP_OLDEST], byteBound: true }).map(
        (s) => ({
          ...s,
          config: { ...s.config, maxBufferBytes: s.config.maxBufferBytes === Infinity ? 9 : s.config.maxBufferBytes },
          listenDrop: true,
          reentry: [
            { event: 'drop' as const, action: { kind: 'write' as const, n: 2 }, nth: 1, times: 2 },
            ...(s.reentry ?? []),
          ],
        }),
      );
      await checkProperty(scenarios, holdsAtEnd);
    },
    propertyTimeout(),
  );

  test(
    'dead-letter handlers that throw or reject',
    async () => {
      const scenarios = faultScenarioArb().chain((s) =>
        fc.constantFrom('throw' as const, 'reject' as const).map((handlerFails) => ({
          ...s,
          deadLetter: 'handler' as const,
          handlerFails,
          // Something must fail for the handler to be called: retries run out quickly.
          config: { ...s.config, retry: { ...s.config.retry, maxRetries: Math.min(1, s.config.retry.maxRetries) } },
        })),
      );
      await checkProperty(scenarios, holdsAtEnd);
    },
    propertyTimeout(),
  );

  test(
    'block: each held write keeps its own maxBlockTimeMs deadline',
    async () => {
      // A byte bound lets one write go from below highWatermark to blocked, so it waits with no deadline (the producer
      // was not told to wait); the writes behind it must still time out on their own deadlines (engine-api 3).
      const scenarios = faultScenarioArb({ strategies: [BackpressureStrategy.BLOCK], byteBound: true }).map((s) => ({
        ...s,
        config: {
          ...s.config,
          maxBufferBytes: s.config.maxBufferBytes === Infinity ? 4 : s.config.maxBufferBytes,
          maxBlockTimeMs: 25,
        },
        producer: 'ignore' as const,
        listenDrop: true,
      }));
      await checkProperty(scenarios, holdsAtEnd);
    },
    propertyTimeout(),
  );

  test(
    'sink calls that hang, ignore or honour their AbortSignal, or answer after flushTimeoutMs',
    async () => {
      const slowSteps: fc.Arbitrary<Step> = fc.oneof(
        { weight: 2, arbitrary: fc.constant({ kind: 'hang' as const }) },
        { weight: 2, arbitrary: fc.constant({ kind: 'abortable' as const }) },
        { weight: 1, arbitrary: fc.constant({ kind: 'delay' as const, ms: 700 }) },
        { weight: 2, arbitrary: faultStepArb },
      );
      const scenarios = faultScenarioArb({ steps: slowSteps }).map((s) => ({
        ...s,
        config: { ...s.config, flushTimeoutMs: s.config.flushTimeoutMs === Infinity ? 45 : s.config.flushTimeoutMs },
      }));
      await checkProperty(scenarios, holdsAtEnd);
    },
    propertyTimeout(),
  );
});
