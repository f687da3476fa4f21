import fc from 'fast-check';
import { BackpressureStrategy } from '../../lib';
import {
  checkProperty,
  propertyTimeout,
  Run,
  configArb,
  explain,
  inFakeWorld,
  stepArb,
  terminalViolations,
} from '../support/property-harness';
import type { ConfigConstraints, Scenario } from '../support/property-harness';

/**
 * block with a producer that honours backpressure (`pipeline(Readable.from(...))`):
 * whatever the sink does, nothing is dropped, and every item offered is
 * delivered or dead-lettered; the pipeline settles (resolves, or rejects with
 * the BackpressureError when there is no dead-letter path).
 */
function honouringScenarios(constraints: ConfigConstraints): fc.Arbitrary<{ scenario: Scenario; count: number }> {
  return fc.record({
    scenario: fc.record({
      config: configArb({ ...constraints, strategies: [BackpressureStrategy.BLOCK] }),
      deadLetter: fc.constantFrom('handler' as const, 'event' as const, 'none' as const),
      handlerDelayMs: fc.constantFrom(0, 35),
      listenDrop: fc.constant(true),
      script: fc.array(stepArb, { maxLength: 10 }),
      poison: fc.option(fc.integer({ min: 0, max: 4 }), { nil: null, freq: 3 }),
      producer: fc.constant('honour' as const),
      ops: fc.constant([]),
      ending: fc.constant({ kind: 'end' as const }),
      lateSettle: fc.constant(false),
      seed: fc.integer(),
    }),
    count: fc.integer({ min: 1, max: 60 }),
  });
}

async function honoured({ scenario, count }: { scenario: Scenario; count: number }): Promise<void> {
  await inFakeWorld(scenario.seed, async (warnings) => {
    const run = new Run(scenario);
    run.obs.warnings = warnings;
    const outcome = await run.pipeFrom(count);
    const { obs } = run;
    const violations = terminalViolations(run);
    const m = obs.stream.getMetrics();
    if (m.eventsDropped !== 0)
      violations.push(
        `an honouring producer lost ${m.eventsDropped} item(s) to drops: ${JSON.stringify(m.droppedByReason)}`,
      );
    if (outcome === 'resolved' && obs.written.length !== count)
      violations.push(`the pipeline resolved after ${obs.written.length} of ${count} writes`);
    if (outcome === 'resolved' && m.eventsFlushed + m.deadLettered !== count)
      violations.push(`resolved with ${m.eventsFlushed} delivered + ${m.deadLettered} dead-lettered of ${count}`);
    if (outcome === 'rejected' && scenario.deadLetter !== 'none')
      violations.push('the pipeline rejected although there is a dead-letter path');
    if (violations.length > 0)
      throw new Error(explain(scenario, [`count ${count}, outcome ${outcome}`, ...violations]));
  });
}

describe('property: block never drops from an honouring producer', () => {
  test(
    'pipeline(Readable.from(items), BlockingWritable), item bound only',
    async () => {
      await checkProperty(honouringScenarios({ byteBound: false }), honoured);
    },
    propertyTimeout(),
  );

  test(
    'with a byte bound too',
    async () => {
      await checkProperty(honouringScenarios({ byteBound: true }), honoured);
    },
    propertyTimeout(),
  );

  // Regression for B4 (docs/quality.md): with a byte bound one write can take utilization from below highWatermark
  // to over 1, so an honouring producer's write was held at `blocked` and dropped after maxBlockTimeMs.
  test(
    'with a byte bound, a short maxBlockTimeMs and a slow first flush — B4',
    async () => {
      const scenarios = honouringScenarios({ byteBound: true }).map(({ scenario, count }) => ({
        count,
        scenario: {
          ...scenario,
          config: { ...scenario.config, maxBufferBytes: 4, maxBlockTimeMs: 25 },
          script: [{ kind: 'delay' as const, ms: 120 }, ...scenario.script],
        },
      }));
      await checkProperty(scenarios, honoured);
    },
    propertyTimeout(),
  );
});
