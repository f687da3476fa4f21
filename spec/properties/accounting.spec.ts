import fc from 'fast-check';
import { checkProperty, holdsAtEnd, propertyTimeout, scenarioArb } from '../support/property-harness';

/**
 * The model-based property: a random configuration (every strategy, small
 * bounds, 1–3 flush slots, 0–3 retries, sequential fallback on/off, byte bound
 * on/off), a random faulty sink (ok, delay, reject, throw, hang past
 * flushTimeoutMs, partial failure, malformed result, poison items), a random
 * producer (honouring or ignoring `write()`'s return value, with pauses) and a
 * random ending (end, shutdown with a deadline, destroy). At every quiet point:
 * the memory bound and both accounting identities; at the end: nothing held,
 * nothing lost silently, order kept, no duplicate without a timeout, every
 * write callback once, one aggregated warning for unheard drops.
 */
describe('property: nothing is lost silently, memory stays bounded', () => {
  test(
    'random writes, sinks, configurations and endings',
    async () => {
      await checkProperty(scenarioArb(), holdsAtEnd);
    },
    propertyTimeout(),
  );

  // Regression for B2 (docs/quality.md): a timed-out call settling late cleared the timer of the batch's next wait.
  test(
    'timed-out calls that settle late never stall a retry — B2',
    async () => {
      const scenarios = scenarioArb({ lateSettle: true }).map((s) => ({
        ...s,
        config: {
          ...s.config,
          flushTimeoutMs: 45,
          retry: { ...s.config.retry, maxRetries: Math.max(1, s.config.retry.maxRetries) },
        },
        script: [{ kind: 'delay' as const, ms: 120 }, ...s.script],
      }));
      await checkProperty(scenarios, holdsAtEnd);
    },
    propertyTimeout(),
  );

  // Regression for B3 (docs/quality.md): destroy() or a shutdown deadline while an async onDeadLetter was pending
  // handed the same items to the dead-letter path a second time.
  test(
    'destroy or shutdown while an async dead-letter handler is pending — B3',
    async () => {
      const endings = fc.constantFrom(
        { kind: 'destroy' as const, withError: false },
        { kind: 'shutdown' as const, timeoutMs: 0 },
      );
      const scenarios = scenarioArb({ endings }).map((s) => ({
        ...s,
        deadLetter: 'handler' as const,
        handlerDelayMs: 35,
      }));
      await checkProperty(scenarios, holdsAtEnd);
    },
    propertyTimeout(),
  );
});
