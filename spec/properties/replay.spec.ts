import { countViolations, runScenario, terminalViolations } from '../support/property-harness';
import type { Scenario } from '../support/property-harness';

/**
 * Replays one scenario printed by a failing property (the `scenario: {...}` line of its message, or any Scenario as
 * JSON, `"Infinity"` for ∞) and prints every violation it finds, not only the first:
 *
 *   SLUICE_PROPERTY_SCENARIO='{"config":{...},...}' npx jest spec/properties/replay.spec.ts
 *
 * Skipped when SLUICE_PROPERTY_SCENARIO is not set.
 */
const json = process.env.SLUICE_PROPERTY_SCENARIO;

(json === undefined ? describe.skip : describe)('replay one scenario (SLUICE_PROPERTY_SCENARIO)', () => {
  test('its violations', async () => {
    const scenario = JSON.parse(json ?? '{}', (_key, value: unknown) =>
      value === 'Infinity' ? Infinity : value,
    ) as Scenario;
    const { run } = await runScenario(scenario);
    const violations = scenario.duplicates === undefined ? terminalViolations(run) : countViolations(run);
    console.log(violations.length === 0 ? 'no violation' : violations.join('\n'));
    expect(violations).toEqual([]);
  });
});
