import fc from 'fast-check';
import { PROPERTY_RUNS, explain, runScenario, scenarioArb, terminalViolations } from '../support/property-harness';
import type { Scenario } from '../support/property-harness';

async function holds(scenario: Scenario): Promise<void> {
  const { run } = await runScenario(scenario);
  const violations = terminalViolations(run);
  if (violations.length > 0) throw new Error(explain(scenario, violations));
}

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
  test('random writes, sinks, configurations and endings (timed-out calls never come back)', async () => {
    const scenarios = scenarioArb({ lateSettle: false, destroyDuringAsyncHandler: false });
    await fc.assert(fc.asyncProperty(scenarios, holds), { numRuns: PROPERTY_RUNS });
  });

  // B3 (docs/quality.md): destroy() or a shutdown deadline while an async onDeadLetter is pending hands the same
  // items to the dead-letter path a second time. Flip to `test` once lib/engine.ts is fixed.
  test.failing('destroy or shutdown while an async dead-letter handler is pending — B3', async () => {
    const scenarios = scenarioArb({ lateSettle: false, endings: fc.constantFrom({ kind: 'destroy' as const, withError: false }, { kind: 'shutdown' as const, timeoutMs: 0 }) })
      .map((s) => ({ ...s, deadLetter: 'handler' as const, handlerDelayMs: 35 }));
    await fc.assert(fc.asyncProperty(scenarios, holds), { numRuns: PROPERTY_RUNS });
  });

  // B2 (docs/quality.md): a timed-out call that settles late clears the timer of the batch's next wait, so the
  // retry (or the next timeout) never fires and the stream never finishes. Flip to `test` once lib/engine.ts is fixed.
  test.failing('random writes, sinks, configurations and endings (timed-out calls settle late) — B2', async () => {
    await fc.assert(fc.asyncProperty(scenarioArb({ lateSettle: true }), holds), { numRuns: PROPERTY_RUNS });
  });
});
