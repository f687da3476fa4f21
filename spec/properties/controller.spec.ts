import {
  checkProperty,
  explain,
  faultScenarioArb,
  propertyTimeout,
  runScenario,
  terminalViolations,
} from '../support/property-harness';
import type { Scenario } from '../support/property-harness';

async function holds(scenario: Scenario): Promise<void> {
  const { run } = await runScenario(scenario);
  const violations = terminalViolations(run);
  if (violations.length > 0) throw new Error(explain(scenario, violations));
}

/**
 * BackpressureController: push() (awaited by an honouring producer, or not), stop() and start() at random,
 * drain(), shutdown(), destroy and abort, with the same faulty sinks, re-entrant listeners and failing dead-letter
 * handlers as the stream properties, and the same checks after every operation. Besides: while stopped (and no
 * end(), drain() or shutdown() in progress) no batch is cut; every push() settles, true exactly when the item was
 * accepted.
 */
describe('property: BackpressureController under faults', () => {
  test(
    'push, stop, start, drain, shutdown, destroy and abort interleaved',
    async () => {
      await checkProperty(faultScenarioArb({ api: 'controller' }), holds);
    },
    propertyTimeout(),
  );
});
