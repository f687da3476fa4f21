import { BackpressureError } from '../../lib';
import type { DropReason } from '../../lib';
import { counted } from './property-runner';
import type { ModelSink } from './property-sink';
import type { Observations, Run, Scenario } from './property-harness';

/**
 * The end-of-run checks of the property tests (the run itself, and the checks
 * after every operation, are in property-harness.ts): nothing held, every item
 * offered delivered, dead-lettered or dropped and told, order, duplicates,
 * callbacks, warnings, and how destroy/abort/shutdown/drain()/finished()
 * reported the end.
 */

function count<T>(values: Iterable<T>): Map<T, number> {
  const counts = new Map<T, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

/** Items a BackpressureError stream error carries (the stream failed with them). */
function errorItems(obs: Observations): number[] {
  const ids: number[] = [];
  for (const error of obs.streamErrors) if (error instanceof BackpressureError) ids.push(...(error.items as number[]));
  return ids;
}

/**
 * Items reported discarded by SLUICE_ITEMS_DISCARDED warnings (destroy() with no dead-letter path, engine-api 12): the
 * count the message names ("5 item(s)", "5 held items"); NaN, so a check fails, if it names none.
 */
export function discardedCount(obs: Observations): number {
  return obs.warnings
    .filter((w) => w.code === 'SLUICE_ITEMS_DISCARDED')
    .reduce((n, w) => n + Number(/(\d+) (?:[a-z]+ )?item/i.exec(w.message)?.[1] ?? NaN), 0);
}

/**
 * Dead-lettered ids: what the handler/listener heard, plus what the stream failed with and did not hand to it (a
 * failing handler), or without a path, the stream errors' items and shutdown's undelivered.
 */
export function deadLetteredIds(obs: Observations): number[] {
  const heard = obs.scenario.deadLetter === 'none' ? [] : obs.deadLettered.flatMap((d) => d.ids);
  const ids = [...heard];
  const seen = new Set(heard);
  const carried = [
    ...errorItems(obs),
    ...(obs.scenario.deadLetter === 'none' ? (obs.shutdown?.undelivered ?? []) : []),
  ];
  for (const id of carried) {
    if (obs.scenario.duplicates === undefined && seen.has(id)) continue;
    seen.add(id);
    ids.push(id);
  }
  return ids;
}

/** Items that the last sink call containing them stored. */
function storedByLastCall(sink: ModelSink): Set<number> {
  const last = new Map<number, boolean>();
  for (const call of sink.calls) {
    const stored = new Set(call.stored);
    for (const id of call.items) last.set(id, stored.has(id));
  }
  return new Set([...last].filter(([, ok]) => ok).map(([id]) => id));
}

/** Items some call held when the stream took everything back (destroy, shutdown deadline). */
function takenAtClose(obs: Observations): boolean {
  if (obs.deadLettered.some((d) => d.error.reason === 'destroyed' || d.error.reason === 'shutdown_timeout'))
    return true;
  if ((obs.shutdown?.undelivered?.length ?? 0) > 0 || discardedCount(obs) > 0) return true;
  return obs.streamErrors.some(
    (e) =>
      e instanceof BackpressureError &&
      (e.reason === 'destroyed' || e.reason === 'shutdown_timeout') &&
      e.items.length > 0,
  );
}

/** How the stream reported its end: destroy/abort errors, write after end, a failing handler, drain(), shutdown(), finished(). */
function endingViolations(obs: Observations, fail: (what: string) => void): void {
  const errors = obs.streamErrors;
  const codes = errors.map((e) => (e as { code?: unknown }).code ?? e.message);
  const first = obs.firstDestroy;
  if (first?.kind === 'destroy' && first.error === undefined && errors.length > 0)
    fail(`destroy() without an error emitted 'error': ${JSON.stringify(codes)}`);
  if (first?.kind === 'destroy' && first.error !== undefined && !(errors.length === 1 && errors[0] === first.error))
    fail(`destroy(err) emitted ${JSON.stringify(codes)}, not exactly err`);
  if (first?.kind === 'abort' && !(errors.length === 1 && (errors[0] as { code?: string }).code === 'ABORT_ERR'))
    fail(`an aborted signal emitted ${JSON.stringify(codes)}, not one AbortError (ABORT_ERR)`);
  if (first?.kind === 'write-after-end') {
    if (!(errors.length === 1 && (errors[0] as { code?: string }).code === 'ERR_STREAM_WRITE_AFTER_END'))
      fail(`end(chunk) after end() emitted ${JSON.stringify(codes)}, not one ERR_STREAM_WRITE_AFTER_END`);
    const callbackCodes = first.callbackErrors.map((e) => (e as { code?: string } | null | undefined)?.code ?? null);
    if (JSON.stringify(callbackCodes) !== JSON.stringify(['ERR_STREAM_WRITE_AFTER_END']))
      fail(`the callback of end(chunk) after end() got ${JSON.stringify(callbackCodes)}`);
  }
  // A failing dead-letter handler is reported: the stream fails with it as the cause, or a coded warning.
  for (const handlerError of obs.handlerErrors) {
    const inError = errors.some((e) => e.cause === handlerError);
    const warned = obs.warnings.some(
      (w) =>
        w.code === 'SLUICE_DEAD_LETTER_FAILED' &&
        (w.warning as { cause?: unknown } | undefined)?.cause === handlerError,
    );
    if (!inError && !warned) fail('a dead-letter handler failed and nothing reported it (no stream error, no warning)');
  }
  obs.drainCalls.forEach((call, i) => {
    const coded = typeof (call.error as { code?: unknown } | undefined)?.code === 'string';
    if (call.error !== undefined && !coded && !errors.includes(call.error as Error))
      fail(`drain() call ${i} rejected with neither a code nor the stream's error: ${describeValue(call.error)}`);
  });
  const shutdown = obs.shutdown;
  if (shutdown?.error !== undefined && !errors.includes(shutdown.error as Error))
    fail(`shutdown() rejected with something the stream did not fail with: ${describeValue(shutdown.error)}`);
  if (shutdown?.undelivered !== undefined && obs.scenario.deadLetter !== 'none') {
    // Every item it did not deliver (engine-api 10): what the deadline or a destroy during it took back; it may
    // also name items whose retries ran out meanwhile.
    const after = obs.deadLettered.slice(shutdown.heardBefore);
    const taken = after.filter((d) => d.error.reason === 'shutdown_timeout' || d.error.reason === 'destroyed');
    const mustHave = count(taken.flatMap((d) => d.ids));
    const mayHave = count(after.flatMap((d) => d.ids));
    const got = count(shutdown.undelivered);
    const missing = [...mustHave].filter(([id, n]) => (got.get(id) ?? 0) < n).map(([id]) => id);
    const extra = [...got].filter(([id, n]) => n > (mayHave.get(id) ?? 0)).map(([id]) => id);
    if (missing.length > 0 || extra.length > 0)
      fail(
        `shutdown() resolved undelivered ${JSON.stringify(shutdown.undelivered)}: missing ${JSON.stringify(missing)} (taken back after it began), extra ${JSON.stringify(extra)} (not dead-lettered after it began)`,
      );
  }
  if (obs.finish !== undefined && obs.finished !== 'resolved')
    fail(`'finish' fired but finished(stream) did not resolve (${describeOutcome(obs.finished)})`);
  if (takenAtClose(obs) && obs.finished === 'resolved')
    fail('finished(stream) resolved although items were still undelivered when the stream was destroyed or shut down');
}

function describeValue(value: unknown): string {
  return value instanceof Error ? `${value.name}: ${value.message}` : JSON.stringify(value);
}

function describeOutcome(outcome: Observations['finished']): string {
  if (typeof outcome === 'string') return outcome;
  const error = outcome.error as { code?: string; message?: string };
  return `rejected: ${error.code ?? error.message ?? String(outcome.error)}`;
}

/**
 * The terminal invariants: nothing held, every offered item delivered, dead-lettered or dropped (and told), order,
 * duplicates, callbacks, warnings, and how the end was reported. Returns the violations (empty when all hold).
 */
export function terminalViolations(run: Run): string[] {
  const { obs } = run;
  const { stream, sink, scenario, written } = obs;
  const { config } = scenario;
  const out: string[] = [...obs.violations];
  if (out.length > 0) return out;
  const m = stream.getMetrics();
  const fail = (what: string): void => {
    out.push(`${what} — metrics ${JSON.stringify(m)}`);
  };
  if (!obs.closed) fail("no 'close'");
  if (m.bufferSize !== 0 || m.waitingWrites !== 0 || m.inFlight !== 0)
    fail(`held ${m.bufferSize}, waiting ${m.waitingWrites}, inFlight ${m.inFlight} after 'close'`);
  if (m.bufferBytes !== 0) fail(`bufferBytes ${m.bufferBytes} after 'close'`);
  if (m.eventsOffered !== m.eventsFlushed + m.deadLettered + m.eventsDropped)
    fail('offered !== flushed + deadLettered + dropped at the end');
  if (obs.finish !== undefined) {
    if (obs.finish.metrics.bufferSize !== 0) fail(`bufferSize ${obs.finish.metrics.bufferSize} at 'finish'`);
    if (!run.anyTimeout && obs.finish.sinkUnsettled !== 0)
      fail(`'finish' while ${obs.finish.sinkUnsettled} sink call(s) had not settled`);
  }
  endingViolations(obs, fail);

  const tainted = run.timeoutTainted();
  const writtenSet = new Set(written);
  const delivered = sink.stored;
  const deliveredCounts = count(delivered);
  const dl = deadLetteredIds(obs);
  const dlCounts = count(dl);
  const dlSet = new Set(dl);
  const deliveredSet = new Set(delivered);
  const discarded = discardedCount(obs);

  for (const id of deliveredSet) if (!writtenSet.has(id)) fail(`the sink got ${id}, which was never offered`);
  for (const [id, n] of deliveredCounts)
    if (n > 1 && !tainted.has(id)) fail(`item ${id} delivered ${n} times with no timeout involved`);
  for (const [id, n] of dlCounts) if (n > 1) fail(`item ${id} dead-lettered ${n} times`);
  if (dl.length + discarded !== m.deadLettered)
    fail(
      `dead-letter path got ${dl.length} items (+ ${discarded} discarded with a warning), deadLettered ${m.deadLettered}`,
    );
  // Delivered and dead-lettered: only after a timeout, or when the stream gave up (destroy, error, shutdown
  // deadline) on a call whose result it had not processed yet, i.e. the item's last call delivered it.
  const abandoned = stream.destroyed;
  const lastCallDelivered = storedByLastCall(sink);
  for (const id of dlSet) {
    if (!writtenSet.has(id)) fail(`item ${id} dead-lettered but never offered`);
    if (deliveredSet.has(id) && !tainted.has(id) && !(abandoned && lastCallDelivered.has(id))) {
      fail(`item ${id} both delivered and dead-lettered with no timeout or abandoned call`);
    }
  }
  for (const d of obs.deadLettered) {
    if (!(d.error instanceof BackpressureError) || !d.error.code.startsWith('ERR_') || d.error.reason === undefined)
      fail(`dead letter without a coded BackpressureError: ${String(d.error)}`);
  }

  const droppedIds = new Map(obs.dropped.map((d) => [d.id, d.reason]));
  let lost: number[] = [];
  if (scenario.listenDrop) {
    const droppedCounts = count(obs.dropped.map((d) => d.id));
    for (const [id, n] of droppedCounts) if (n > 1) fail(`item ${id} dropped ${n} times`);
    for (const { id } of obs.dropped) {
      if (deliveredSet.has(id)) fail(`item ${id} dropped and delivered`);
      if (dlSet.has(id)) fail(`item ${id} dropped and dead-lettered`);
    }
    const byReason = count(obs.dropped.map((d) => d.reason));
    for (const [reason, n] of Object.entries(m.droppedByReason)) {
      if ((byReason.get(reason as DropReason) ?? 0) !== n)
        fail(`droppedByReason.${reason} ${n}, 'drop' events ${byReason.get(reason as DropReason) ?? 0}`);
    }
    lost = written.filter((id) => !deliveredSet.has(id) && !dlSet.has(id) && !droppedIds.has(id));
    // A discarded item may still have been delivered by the call the destroy() gave up on.
    if (lost.length > discarded)
      fail(`lost silently: ${JSON.stringify(lost)} (${discarded} reported discarded by a warning)`);
  } else {
    const unaccounted = written.filter((id) => !deliveredSet.has(id) && !dlSet.has(id)).length;
    if (unaccounted < m.eventsDropped || unaccounted > m.eventsDropped + discarded)
      fail(
        `${unaccounted} items neither delivered nor dead-lettered, eventsDropped ${m.eventsDropped} + ${discarded} discarded`,
      );
  }

  // Warnings: one aggregated drop warning when nobody listened, none otherwise.
  const dropWarnings = obs.warnings.filter((w) => w.code === 'SLUICE_ITEMS_DROPPED').length;
  const expectWarnings = !scenario.listenDrop && m.eventsDropped > 0 ? 1 : 0;
  if (dropWarnings !== expectWarnings) fail(`${dropWarnings} drop warning(s), expected ${expectWarnings}`);

  // Write callbacks: each exactly once; `accepted === false` exactly for items dropped at the door.
  for (const id of written) {
    const calls = obs.callbacks.get(id);
    if (calls === undefined) continue; // written by pipe(), end(chunk) or push(), which pass no callback of ours
    if (calls.length !== 1) {
      fail(`write callback of ${id} called ${calls.length} times`);
      continue;
    }
    const [call] = calls;
    if (call === undefined) continue;
    if (call.error != null) {
      if (!dlSet.has(id) && !(discarded > 0 && !deliveredSet.has(id)))
        fail(`write callback of ${id} got an error but the item was not dead-lettered`);
    } else if (scenario.listenDrop) {
      const reason = droppedIds.get(id);
      if (call.accepted === false && reason === undefined)
        fail(`write callback of ${id} said not accepted, but no 'drop' for it`);
      if (call.accepted === true && reason !== undefined && reason !== 'evicted')
        fail(`write callback of ${id} said accepted, but it was dropped (${reason})`);
    }
  }
  // push(): true = accepted, false = dropped.
  if (scenario.listenDrop) {
    for (const [id, outcome] of obs.pushes) {
      const reason = droppedIds.get(id);
      if (outcome === 'accepted' && reason !== undefined && reason !== 'evicted')
        fail(`push() of ${id} resolved true, but it was dropped (${reason})`);
      // An item accepted and evicted at once (drop_oldest with everything else in flight) may be told either way.
      if (outcome === 'dropped' && reason === undefined) fail(`push() of ${id} resolved false, but it was not dropped`);
    }
  }

  // Order: each call in write order; fresh batches cut in write order; one slot delivers batch by batch.
  const seen = new Set<number>();
  const batchOf = new Map<number, number>();
  let lastFresh = -1;
  sink.calls.forEach(({ items: call }, i) => {
    for (let k = 1; k < call.length; k++) {
      if (!((call[k - 1] as number) < (call[k] as number)))
        fail(`sink call ${i} out of write order: ${JSON.stringify(call)}`);
    }
    const fresh = call.filter((id) => !seen.has(id));
    if (fresh.length > 0 && fresh.length !== call.length)
      fail(`sink call ${i} mixes new and retried items: ${JSON.stringify(call)}`);
    for (const id of fresh) {
      // Batches are cut in write order; with several flush slots, one whose first try timed out waiting for a
      // call slot (then backed off) may reach the sink after a later batch: order is per slot.
      if (!(id > lastFresh) && !(run.anyTimeout && config.maxConcurrentFlushes > 1))
        fail(`batch ${i} (${JSON.stringify(call)}) cut out of write order`);
      lastFresh = id;
      seen.add(id);
      batchOf.set(id, i);
    }
  });
  if (config.maxConcurrentFlushes === 1) {
    let lastBatch = -1;
    const firstDelivery = new Set<number>();
    for (const id of delivered) {
      if (firstDelivery.has(id) || tainted.has(id)) continue;
      firstDelivery.add(id);
      const batch = batchOf.get(id) ?? -1;
      if (batch < lastBatch)
        fail(`with one flush slot, ${id} (batch ${batch}) delivered after an item of batch ${lastBatch}`);
      lastBatch = Math.max(lastBatch, batch);
    }
  }
  // Every batch cut is one fresh sink call: the batch metrics count exactly those.
  const freshCalls = sink.calls.filter(({ items }, i) => items.some((id) => batchOf.get(id) === i));
  const freshItems = freshCalls.reduce((n, call) => n + call.items.length, 0);
  // With timeouts, a batch's first tries may find every call slot held by an abandoned call: it may then
  // reach the sink only in isolation calls (several fresh calls), or not at all.
  if (!run.anyTimeout && m.batches !== freshCalls.length)
    fail(`batches ${m.batches}, fresh sink calls ${freshCalls.length}`);
  const average = freshCalls.length === 0 ? 0 : freshItems / freshCalls.length;
  if (!run.anyTimeout && !(Math.abs(m.averageBatchSize - average) < 1e-9))
    fail(`averageBatchSize ${m.averageBatchSize}, expected ${average}`);
  for (const d of obs.deadLettered) if (d.ids.length === 0) fail(`an empty dead letter (${d.error.code})`);
  if (!run.anyTimeout && sink.maxUnsettled > config.maxConcurrentFlushes)
    fail(`${sink.maxUnsettled} sink calls at once, maxConcurrentFlushes ${config.maxConcurrentFlushes}`);
  if (sink.maxUnsettled > 2 * config.maxConcurrentFlushes)
    fail(`${sink.maxUnsettled} sink calls unsettled at once, more than 2 × maxConcurrentFlushes`);
  return counted(out);
}

/**
 * The end-of-run checks that hold even when items repeat (no per-item identity): nothing held, the books
 * balance, the dead-letter path heard exactly what was counted, every write callback once.
 */
export function countViolations(run: Run): string[] {
  const { obs } = run;
  const out: string[] = [...obs.violations];
  if (out.length > 0) return out;
  const m = obs.stream.getMetrics();
  const fail = (what: string): void => {
    out.push(`${what} — metrics ${JSON.stringify(m)}`);
  };
  if (!obs.closed) fail("no 'close'");
  if (m.bufferSize !== 0 || m.waitingWrites !== 0 || m.inFlight !== 0)
    fail(`held ${m.bufferSize}, waiting ${m.waitingWrites}, inFlight ${m.inFlight} after 'close'`);
  if (m.eventsOffered !== obs.written.length) fail(`eventsOffered ${m.eventsOffered}, written ${obs.written.length}`);
  if (m.eventsOffered !== m.eventsFlushed + m.deadLettered + m.eventsDropped)
    fail('offered !== flushed + deadLettered + dropped at the end');
  if (m.eventsAccepted !== m.eventsFlushed + m.deadLettered + m.droppedByReason.evicted)
    fail('accepted !== flushed + deadLettered + evicted at the end');
  const dl = deadLetteredIds(obs);
  const discarded = discardedCount(obs);
  if (dl.length + discarded !== m.deadLettered)
    fail(
      `dead-letter path got ${dl.length} items (+ ${discarded} discarded with a warning), deadLettered ${m.deadLettered}`,
    );
  if (obs.scenario.listenDrop && obs.dropped.length !== m.eventsDropped)
    fail(`'drop' events ${obs.dropped.length}, eventsDropped ${m.eventsDropped}`);
  for (const [id, calls] of obs.callbacks)
    if (calls.length !== 1) fail(`write callback of write #${id} called ${calls.length} times`);
  return counted(out);
}

/** Formats a failure for fast-check's report. */
export function explain(scenario: Scenario, violations: string[]): string {
  return `${violations.slice(0, 5).join('\n')}\nscenario: ${JSON.stringify(scenario, (_k, v: unknown) => (v === Infinity ? 'Infinity' : v))}`;
}
