import fc from 'fast-check';
import { checkProperty, countViolations, holdsBy, propertyTimeout, scenarioArb } from '../support/property-harness';

const balances = holdsBy(countViolations);

/**
 * Items need not be distinct: a producer may write the same string or number
 * twice. With values drawn from a tiny set (so batches hold equal items, and
 * partial failures, sequential fallback, destroy and shutdown meet them), the
 * books must still balance exactly and nothing may stay held.
 */
describe('property: equal items are counted one by one', () => {
  test(
    'random scenarios writing values from {0, 1, 2}',
    async () => {
      const scenarios = scenarioArb().map((s) => ({ ...s, duplicates: 3 }));
      await checkProperty(scenarios, balances);
    },
    propertyTimeout(),
  );

  // Regression for B5 (docs/quality.md): sequential fallback removed a delivered item from its batch by value, taking
  // every equal item with it; a destroy (or shutdown deadline, or stream error) then lost the equal item in flight.
  test(
    'sequential fallback over equal items, destroyed mid-way — B5',
    async () => {
      const endings = fc.constantFrom(
        { kind: 'destroy' as const, withError: false },
        { kind: 'shutdown' as const, timeoutMs: 0 },
      );
      const scenarios = scenarioArb({ endings }).map((s) => ({
        ...s,
        duplicates: 2,
        config: {
          ...s.config,
          batchSize: Math.max(2, s.config.batchSize),
          maxBufferSize: Math.max(2, s.config.maxBufferSize, s.config.batchSize),
          fallbackToSequential: true,
          retry: { ...s.config.retry, maxRetries: 0 },
        },
        script: [
          { kind: 'reject' as const },
          { kind: 'ok' as const },
          { kind: 'delay' as const, ms: 700 },
          ...s.script,
        ],
        ops: [
          { kind: 'write' as const, n: 4 },
          { kind: 'tick' as const, ms: 1 },
        ],
      }));
      await checkProperty(scenarios, balances);
    },
    propertyTimeout(),
  );
});
