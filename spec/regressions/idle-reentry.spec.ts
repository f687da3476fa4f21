import { runScenario, terminalViolations } from '../support/property-harness';
import type { Scenario } from '../support/property-harness';

/**
 * Found by spec/properties/faults.spec.ts in CI (seed -713204055, shrunk): when nothing was held any more,
 * the engine left 'draining' and then took its list of idle callbacks (drain()'s, end()'s). Leaving
 * 'draining' emits 'state', and re-entrant listeners wrote two items and called end() from it: end()'s
 * callback joined the list with items held and ran at once, so 'finish' came (and finished() resolved)
 * while an item was undelivered ("bufferSize 1 at 'finish'"). Idle callbacks now run only if nothing is
 * held after those listeners. The scenario, as the property printed it:
 */
const SCENARIO = {
  config: {
    strategy: 'block',
    maxBufferSize: 2,
    batchSize: 1,
    highWatermark: 1,
    lowWatermark: 0.75,
    sampleRate: 1,
    maxBlockTimeMs: Infinity,
    minFlushIntervalMs: 0,
    maxFlushIntervalMs: 0,
    targetLatencyMs: 5,
    maxBufferBytes: Infinity,
    maxConcurrentFlushes: 1,
    flushTimeoutMs: Infinity,
    retry: { maxRetries: 1, initialDelayMs: 0, maxDelayMs: 0 },
    fallbackToSequential: false,
  },
  deadLetter: 'handler',
  handlerDelayMs: 0,
  listenDrop: true,
  script: [],
  poison: 0,
  producer: 'ignore',
  ops: [{ kind: 'write', n: 1 }, { kind: 'drain' }, { kind: 'write', n: 1 }, { kind: 'tick', ms: 1 }],
  ending: { kind: 'end' },
  lateSettle: true,
  seed: 0,
  reentry: [
    { event: 'state', action: { kind: 'write', n: 2 }, nth: 1, times: 2 },
    { event: 'state', action: { kind: 'end' }, nth: 2, times: 1 },
  ],
  api: 'stream',
  signal: true,
} as unknown as Scenario;

test("re-entrant 'state' listeners that write and end while drain() completes: no 'finish' with items held", async () => {
  const { run } = await runScenario(SCENARIO);
  expect(terminalViolations(run)).toEqual([]);
});
