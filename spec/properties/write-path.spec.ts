import fc from 'fast-check';
import { BackpressureState, BackpressureStrategy, createBackpressureStream } from '../../lib';
import type { BackpressureWritable } from '../../lib';
import { checkProperty, propertyTimeout } from '../support/property-runner';
import { TestSink, advance, settle, useStreamFakeTimers } from '../support/test-sink';

/**
 * What every single write() must leave behind, whichever path it took through admission (most take
 * the fast lane, which skips the per-item decisions: see Admission.#openLane): the state the
 * utilization gives, block's return value that state implies, and no full batch waiting while a
 * flush slot is free. Checked after every write, including the writes a 'drain' listener makes
 * while a delivery is still being accounted for (the held count has just fallen, possibly below a
 * threshold), or a listener to a falling state, against a sink settled by hand, with cork, uncork and the flush timer in between.
 */

type Op =
  | { kind: 'write'; count: number }
  | { kind: 'settle'; count: number }
  | { kind: 'cork' }
  | { kind: 'uncork' }
  | { kind: 'timer' };

interface Case {
  strategy: BackpressureStrategy;
  maxBufferSize: number;
  batchFraction: number;
  slots: number;
  watermarks: [number, number];
  /** Items a 'drain' listener (block) or a listener to a falling state (the others) writes each time. */
  drainWrites: number;
  ops: Op[];
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  strategy: fc.constantFrom(
    BackpressureStrategy.BLOCK,
    BackpressureStrategy.DROP_OLDEST,
    BackpressureStrategy.DROP_NEWEST,
  ),
  maxBufferSize: fc.integer({ min: 2, max: 40 }),
  batchFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  slots: fc.integer({ min: 1, max: 3 }),
  watermarks: fc.constantFrom<[number, number]>([0.5, 0.8], [0.3, 0.6], [0.1, 0.9], [0.7, 0.75], [0.25, 0.5]),
  drainWrites: fc.integer({ min: 0, max: 6 }),
  ops: fc.array(
    fc.oneof(
      {
        arbitrary: fc.record({ kind: fc.constant('write' as const), count: fc.integer({ min: 1, max: 50 }) }),
        weight: 4,
      },
      {
        arbitrary: fc.record({ kind: fc.constant('settle' as const), count: fc.integer({ min: 1, max: 4 }) }),
        weight: 3,
      },
      { arbitrary: fc.constant({ kind: 'cork' as const }), weight: 1 },
      { arbitrary: fc.constant({ kind: 'uncork' as const }), weight: 1 },
      { arbitrary: fc.constant({ kind: 'timer' as const }), weight: 1 },
    ),
    { maxLength: 30 },
  ),
});

/** How full each state says the buffer is (draining comes only with end(), after the checks). */
const RANK: Record<BackpressureState, number> = {
  [BackpressureState.NORMAL]: 0,
  [BackpressureState.ELEVATED]: 1,
  [BackpressureState.CRITICAL]: 2,
  [BackpressureState.BLOCKED]: 3,
  [BackpressureState.DRAINING]: 4,
};

/** The state the utilization gives, as the README's table states it. */
function expectedState(utilization: number, waiting: number, [low, high]: [number, number]): BackpressureState {
  if (utilization >= 1 || waiting > 0) return BackpressureState.BLOCKED;
  if (utilization >= high) return BackpressureState.CRITICAL;
  return utilization >= low ? BackpressureState.ELEVATED : BackpressureState.NORMAL;
}

async function holds(c: Case): Promise<void> {
  const sink = new TestSink<number>({ kind: 'manual' });
  const batchSize = Math.max(1, Math.ceil(c.batchFraction * c.maxBufferSize));
  const stream: BackpressureWritable<number> = createBackpressureStream<number>(sink.flush, {
    strategy: c.strategy,
    maxBufferSize: c.maxBufferSize,
    batchSize,
    maxConcurrentFlushes: c.slots,
    lowWatermark: c.watermarks[0],
    highWatermark: c.watermarks[1],
    minFlushIntervalMs: 10,
    maxFlushIntervalMs: 10,
  });
  stream.on('drop', () => undefined);
  let next = 0;
  let corks = 0;
  const problems: string[] = [];
  const write = (settled: boolean): void => {
    const item = next++;
    const returned = stream.write(item);
    const m = stream.getMetrics();
    const state = expectedState(m.bufferUtilization, m.waitingWrites, c.watermarks);
    if (m.state !== state) problems.push(`after write ${item}: state ${m.state}, utilization gives ${state}`);
    if (c.strategy === BackpressureStrategy.BLOCK) {
      const open = state === BackpressureState.NORMAL || state === BackpressureState.ELEVATED;
      if (returned !== open) problems.push(`after write ${item}: write() returned ${returned} at ${state}`);
    } else if (!returned) problems.push(`after write ${item}: ${c.strategy} write() returned false`);
    // A 'drain' listener writes while the delivery that freed room is still leaving its slot: only
    // the writes made between turns see every slot's state settled.
    const queued = m.bufferSize - m.inFlight;
    if (settled && corks === 0 && sink.inFlight < m.currentConcurrency && queued >= m.currentBatchSize)
      problems.push(`after write ${item}: ${queued} items queued (batch ${m.currentBatchSize}) and a slot free`);
  };
  let ended = false;
  stream.on('drain', () => {
    for (let i = 0; i < c.drainWrites; i++) write(false);
  });
  // The drop strategies never refuse, so never 'drain': a listener to a falling state writes instead.
  stream.on('state', (next, previous) => {
    if (!ended && c.strategy !== BackpressureStrategy.BLOCK && RANK[next] < RANK[previous])
      for (let i = 0; i < c.drainWrites; i++) write(false);
  });
  for (const op of c.ops) {
    if (op.kind === 'write') for (let i = 0; i < op.count; i++) write(true);
    else if (op.kind === 'settle') {
      for (let i = 0; i < op.count && sink.pendingCalls > 0; i++) sink.resolveNext();
      await settle(3);
    } else if (op.kind === 'cork') {
      stream.cork();
      corks++;
    } else if (op.kind === 'uncork') {
      if (corks > 0) {
        stream.uncork();
        corks--;
        await settle(3);
      }
    } else await advance(10, 10);
    if (problems.length > 0) break;
  }
  if (problems.length > 0) throw new Error(problems.slice(0, 5).join('\n'));
  // The end: everything not dropped is delivered, in write order. (block drops too: a write that
  // finds the wait queue full, as these writes ignore write() returning false.)
  ended = true;
  stream.end();
  for (let turns = 0; !stream.writableFinished; turns++) {
    if (turns === 100) throw new Error(`no 'finish' (state ${stream.state}, ${stream.getMetrics().bufferSize} held)`);
    while (sink.pendingCalls > 0) sink.resolveNext();
    await advance(10, 10);
  }
  const m = stream.getMetrics();
  expect(m.eventsFlushed + m.eventsDropped).toBe(next);
  expect(sink.delivered).toHaveLength(m.eventsFlushed);
  expect(sink.delivered).toEqual([...sink.delivered].sort((a, b) => a - b));
}

describe('property: every write leaves the state, its return value and the flush slots right', () => {
  beforeEach(useStreamFakeTimers);
  afterEach(() => jest.useRealTimers());

  test(
    'random writes, deliveries, corks and flush timers; a drain listener that writes',
    async () => {
      await checkProperty(caseArb, holds);
    },
    propertyTimeout(),
  );
});
