import { checkProperty, faultScenarioArb, holdsAtEnd, propertyTimeout } from '../support/property-harness';

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
      await checkProperty(faultScenarioArb({ api: 'controller' }), holdsAtEnd);
    },
    propertyTimeout(),
  );
});
