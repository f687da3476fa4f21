/**
 * Adaptive concurrency (`maxConcurrentFlushes: { min, max }`): how many sink calls
 * run at once, steered by how long they take. Pure arithmetic over what it is told
 * (each call's size, time and outcome, and how many batches were in their slots);
 * owns only the limit and its measurements.
 *
 * The model is TCP Vegas's, as Netflix's concurrency-limits applies it to services.
 * A sink that serves C calls at once (a connection pool, an HTTP API's workers)
 * answers in its base time while at most C calls are in flight; past that, calls
 * wait their turn inside it and each takes about base × inFlight / C. So from the
 * limit L and the time calls take (rtt) against the base time, about
 * L × (1 − base / rtt) calls are queued inside the sink, and L × base / rtt is what
 * it serves at once. Throughput grows with L up to C and not past it; latency grows
 * past it. The rule keeps a few calls queued, between queueLow(L) and queueHigh(L):
 * the sink never waits for a call, and calls do not just wait inside it (holding
 * items, adding latency, and adding to what a crash delivers again).
 *
 * How many: Vegas's alpha and beta, 3 and 6 times log10(L) (concurrency-limits'
 * VegasLimit scales them by whole decades of the limit; here the log is
 * continuous), but no more than a quarter and 0.4 of L, and at least 1 and 2. A
 * larger limit needs more slack: each call's time varies by a fraction of itself
 * (timer granularity, the event loop), and the estimate multiplies that by L.
 * With 1 and 2 at every limit, a pool of 8 whose calls took 1.2 ms on timers of
 * 1 ms was cut below its capacity several times a second by that noise alone.
 * The shares bound what the slack costs where they are the smaller term, at
 * limits of about 4 to 20: growth by one goes on while under a quarter of the
 * limit queues (calls under 4/3 of their base time), and cuts start once more
 * than 0.4 of it queues (calls over 5/3 of it). Below, the floors of 1 and 2 calls
 * decide; above, the log terms, which are tighter. So no limit is held above 5/3
 * of the capacity or the capacity plus 2, whichever is more, and a sink of up to
 * four servers keeps one or two calls waiting. Some values (low, high): 1 and 2
 * up to a limit of 4, 2 and 3.2 at 8, 3 and 4.8 at 12, 5.4 and 10.8 at 64; a pool
 * of 8 settles between 11 and 13.
 *
 * - Measure in epochs: max(EPOCH_CALLS, limit) calls of full batches of one size,
 *   as their mean time. The mean, not the median: past its capacity a sink's times
 *   are two-valued (a call is served at once or waits for a server: 8 servers of 10
 *   ms and 11 calls give eight 10s and three 20s), and only the mean grows with the
 *   queue (Little's law). An epoch holds at least as many calls as there are slots,
 *   so one call slowed by a garbage collection moves it little. With adaptive
 *   batching, the size is the one the sizer holds between its probes: the probes'
 *   calls do not count, and the held size's calls on either side of a probe add up
 *   (an epoch that started over at every change of the size would never end once
 *   the limit needs more calls than the sizer holds a size for, about 18). Each
 *   size gathers its own calls, and the first to gather enough ends the epoch.
 *   Partial batches and the calls already in flight when the limit changed do not
 *   count.
 * - base: the lowest epoch mean of the last BASE_EPOCHS epochs of the same batch
 *   size, so a sink that gets faster is followed at once and one that gets slower
 *   for good once its old times are forgotten. Each batch size keeps its own (a
 *   call of another size takes another time); with adaptive batching, whose sizes
 *   are rungs of a ladder, the sizer's probes come back to a size whose base is
 *   known. An epoch at a size with no earlier epoch decides nothing (its own mean
 *   as the base would show no queue, however long the calls wait), and the next one
 *   measures that size at half the limit, as a probe does, then the limit comes
 *   back: a base taken where calls already queue would let the limit grow past the
 *   capacity. At a limit of 1 it decides: no call of ours can wait for another, and
 *   the only move is to grow.
 * - Probe the base (BBR's ProbeRTT): every PROBE_EVERY epochs, one epoch at half
 *   the limit, then back. A limit kept just above the capacity never sees the base
 *   time again: the calls always queue a little. Without the probe, once the old
 *   times are forgotten the base would creep up to the queued time, the queue would
 *   seem empty, and the limit would creep up with it. Half the limit (rounded down)
 *   is at or below the capacity whenever the limit is at most twice it or the
 *   capacity plus 2, which the rule keeps (above). The probe costs about one epoch
 *   of half the throughput in every PROBE_EVERY.
 * - Grow only after an epoch in which every slot was busy at some point (otherwise
 *   the producer or the flush interval is what limits throughput, and the sink's
 *   latency says nothing about more calls), and whose mean was within the target
 *   (another call can only add to it).
 * - queue < queueLow: grow, doubling at first (slow start) and by one once the
 *   sink has shown a queue (QUEUE_LOW calls) or a failure.
 * - queue > queueHigh: down to the estimated capacity plus its queueLow, at least
 *   one less and at most to MAX_CUT of the limit (a cut made on times a stall
 *   inflated anyway costs a little, not half the throughput).
 * - Latency: an epoch mean over `targetLatencyMs` while calls queue (queue over
 *   half a call): down to the estimated capacity, since the wait inside the sink
 *   is the part of the latency a lower limit removes (the rest is the batch size's:
 *   see adaptive batching's latency rule). The limit that was over the target is
 *   then a cap: it is tried again only after CAP_RELAX_EPOCHS epochs within the
 *   target, so a sink that recovers is followed, and one that does not is not
 *   sent a queue over the target every other epoch.
 * - Stalls of the event loop: a call's time also holds whatever kept the loop from
 *   seeing it settle. Measured on the benchmark's pool, a producer that writes a
 *   few thousand items in one synchronous go delays every call in flight by 5-15 ms
 *   at once (a third of the epochs or more), which latency alone cannot tell from
 *   a queue in the sink. So a call the loop may have kept from being seen for more
 *   than STALL_FRACTION of its time (see loop-stalls.ts) is left out of the
 *   epoch: a queue in the sink makes calls wait while the loop goes on, so it
 *   still shows in the calls that count. Unless such calls are the norm: once an
 *   epoch has left out STALLED_PER_CALL times as many calls as it needs, the rest
 *   count (a loop busy for most of every call gives the measure nothing to tell
 *   by, and the limit must still move).
 * - Both cuts need CONFIRM_EPOCHS epochs in a row that call for one, and take the
 *   capacity from the fastest of them: a stall the rule above did not see only
 *   ever adds time, so the fastest of a few epochs is the sink's own, while a
 *   queue shows in all of them.
 * - A call that failed or timed out: the limit × FAILURE_CUT at once, and no slow
 *   start after it: errors are how an overloaded sink says so (HTTP 429 and 503,
 *   an exhausted pool). The other calls in flight then cannot cut it again: their
 *   outcome was decided under the old limit (one cut per round trip, as TCP). What
 *   counts as failed is the scheduler's to say: a call of a whole batch that threw,
 *   rejected, timed out or failed more than OVERLOAD_SHARE of its items (a sink
 *   that throttles per item); fewer failed items are the data's (scheduler.ts).
 * - Bounds: always within [min, max] (validated: max <= maxBufferSize).
 */

/** The fewest calls per measurement (an epoch is max(this, limit) calls); it takes their mean time. */
export const EPOCH_CALLS = 3;
/** Epochs whose lowest mean is the sink's base time (more than PROBE_EVERY: a probe is always among them). */
export const BASE_EPOCHS = 20;
/** Epochs between two probes of the base time. */
export const PROBE_EVERY = 16;
/** The fewest calls {@link queueLow} asks to keep queued inside the sink. */
export const QUEUE_LOW = 1;
/** The fewest calls {@link queueHigh} allows queued inside the sink. */
export const QUEUE_HIGH = 2;
/** Calls kept queued per decade of the limit (Vegas's alpha, log-scaled after concurrency-limits). */
export const QUEUE_LOW_PER_DECADE = 3;
/** Calls allowed queued per decade of the limit (Vegas's beta, log-scaled after concurrency-limits). */
export const QUEUE_HIGH_PER_DECADE = 6;
/** At most this share of the limit kept queued: growth stops once calls take 4/3 of their base time. */
export const QUEUE_LOW_SHARE = 1 / 4;
/** At most this share of the limit allowed queued: past it calls take over 5/3 of their base time, and it is cut. */
export const QUEUE_HIGH_SHARE = 0.4;
/** Epochs in a row that must call for a cut before it is made. */
export const CONFIRM_EPOCHS = 3;
/** Epochs within the target before the limit may rise to the one that was over it. */
export const CAP_RELAX_EPOCHS = 8;
/** The deepest one cut for a queue or the latency target may go: to this fraction of the limit. */
export const MAX_CUT = 0.75;
/** What a failed or timed-out call multiplies the limit by. */
export const FAILURE_CUT = 0.5;
/** A call seen after the event loop was busy for more than this fraction of its time is left out. */
export const STALL_FRACTION = 0.5;
/** Calls left out as stalled, per call an epoch needs, before stalled calls count too. */
export const STALLED_PER_CALL = 2;

/** Fewer calls than this queued inside the sink at `limit`: it may be waiting for calls, so the limit grows. */
export function queueLow(limit: number): number {
  return Math.max(QUEUE_LOW, Math.min(QUEUE_LOW_PER_DECADE * Math.log10(limit), limit * QUEUE_LOW_SHARE));
}

/** More calls than this queued inside the sink at `limit`: they only wait there, so the limit shrinks. */
export function queueHigh(limit: number): number {
  return Math.max(QUEUE_HIGH, Math.min(QUEUE_HIGH_PER_DECADE * Math.log10(limit), limit * QUEUE_HIGH_SHARE));
}

export class ConcurrencyLimiter {
  readonly #min: number;
  readonly #max: number;
  readonly #targetLatencyMs: number;
  /** Calls allowed in flight now. */
  limit: number;
  /**
   * This epoch's calls so far, per batch size: how many were measured, their total time, and how
   * many were left out because the event loop stalled them. The first size to gather an epoch's
   * calls decides. Per size, not only the size in force: with adaptive batching the size changes for
   * a probe every few calls, and an epoch that started over at each change would never end once the
   * limit needs more calls than the sizer holds a size for (about 18).
   */
  readonly #epoch = new Map<number, { calls: number; totalMs: number; stalled: number }>();
  /** Every slot was busy at some point of this epoch. */
  #saturated = false;
  /** Calls still to leave out: they were in flight when the limit changed. */
  #skip = 0;
  /** Epoch means per batch size, oldest first, at most BASE_EPOCHS each. */
  readonly #means = new Map<number, number[]>();
  /** Doubling until the sink shows a queue or a call fails. */
  #slowStart = true;
  /** Epochs since the last probe. */
  #sinceProbe = 0;
  /** During a probe epoch: the limit to go back to. */
  #probing: number | undefined;
  /** Epochs in a row that called for a cut (CONFIRM_EPOCHS make it), and the fastest mean of them. */
  #suspects = 0;
  #fastestSuspect = Infinity;
  /** Below the lowest limit that was over the latency target, until CAP_RELAX_EPOCHS epochs within it. */
  #cap: number;
  #withinTarget = 0;

  constructor(min: number, max: number, targetLatencyMs: number) {
    this.#min = min;
    this.#max = max;
    this.#targetLatencyMs = targetLatencyMs;
    this.limit = min;
    this.#cap = max;
  }

  /** A batch went into a slot; `inFlight` batches are in their slots now, counting it. */
  started(inFlight: number): void {
    if (inFlight >= this.limit) this.#saturated = true;
  }

  /**
   * A call delivered `items` items in `latencyMs`; `full`: it is a full batch of the size batches
   * are cut at (with adaptive batching, the size held between probes), not a partial one, which
   * takes less time and would read as a faster sink; `inFlight` the batches in their slots,
   * counting this call's, and `stalledMs` how long the event loop may have kept the call from being
   * seen to settle (see loop-stalls.ts).
   */
  delivered(items: number, latencyMs: number, full: boolean, inFlight: number, stalledMs = 0): void {
    if (this.#skip > 0) {
      this.#skip--;
      return;
    }
    if (!full) return;
    let epoch = this.#epoch.get(items);
    if (epoch === undefined) this.#epoch.set(items, (epoch = { calls: 0, totalMs: 0, stalled: 0 }));
    const needed = Math.max(EPOCH_CALLS, this.limit);
    if (stalledMs > latencyMs * STALL_FRACTION && epoch.stalled < needed * STALLED_PER_CALL) {
      epoch.stalled++;
      return;
    }
    epoch.calls++;
    epoch.totalMs += latencyMs;
    if (epoch.calls < needed) return;
    this.#decide(epoch.totalMs / epoch.calls, inFlight, items);
  }

  /** A call failed or timed out; `inFlight` as for {@link delivered}. */
  failed(inFlight: number): void {
    this.#slowStart = false;
    if (this.#skip > 0) {
      this.#skip--;
      return;
    }
    // During a probe, from the limit it would have gone back to (half of it is no cut).
    const from = this.#probing ?? this.limit;
    this.#probing = undefined;
    this.#clearSuspects();
    this.#set(Math.floor(from * FAILURE_CUT), inFlight);
  }

  #decide(rtt: number, inFlight: number, size: number): void {
    let means = this.#means.get(size);
    if (means === undefined) this.#means.set(size, (means = []));
    const known = means.length > 0;
    means.push(rtt);
    if (means.length > BASE_EPOCHS) means.shift();
    const base = Math.min(...means);
    if (this.#probing !== undefined) {
      // The probe only measured; the limit before it stands.
      const back = this.#probing;
      this.#probing = undefined;
      this.#set(back, inFlight);
      return;
    }
    if (!known && this.limit > 1) {
      // Its calls may already queue at this limit, so this mean is no base: the next epoch measures
      // this size at half the limit, as a probe does, and the limit comes back after it.
      this.#set(this.#probeFrom(this.limit), inFlight);
      return;
    }
    const queue = rtt > 0 ? this.limit * (1 - base / rtt) : 0;
    const low = queueLow(this.limit);
    let next = this.limit;
    if (queue >= QUEUE_LOW) this.#slowStart = false;
    const overTarget = queue > QUEUE_LOW / 2 && rtt > this.#targetLatencyMs;
    if (rtt > this.#targetLatencyMs) this.#withinTarget = 0;
    else if (++this.#withinTarget >= CAP_RELAX_EPOCHS) {
      this.#withinTarget = 0;
      this.#cap = this.#max;
    }
    if (overTarget || queue > queueHigh(this.limit)) {
      this.#fastestSuspect = Math.min(this.#fastestSuspect, rtt);
      if (++this.#suspects >= CONFIRM_EPOCHS) {
        const fastest = this.#fastestSuspect;
        this.#clearSuspects();
        const capacity = fastest > 0 ? (this.limit * base) / fastest : this.limit;
        const aim = Math.floor(capacity + (overTarget ? 0 : queueLow(capacity)));
        next = Math.min(this.limit - 1, Math.max(aim, Math.floor(this.limit * MAX_CUT)));
        if (overTarget) this.#cap = Math.min(this.#cap, this.limit - 1);
      }
    } else {
      this.#clearSuspects();
      if (queue < low && this.#saturated && rtt <= this.#targetLatencyMs) {
        next = Math.max(this.limit, Math.min(this.#cap, this.#slowStart ? this.limit * 2 : this.limit + 1));
      }
    }
    next = Math.max(this.#min, Math.min(this.#max, next));
    this.#set(++this.#sinceProbe >= PROBE_EVERY ? this.#probeFrom(next) : next, inFlight);
  }

  /**
   * Starts a probe of the base time: the limit for one epoch, half of `limit`, after which it goes
   * back to `limit`. `limit` itself (no probe) where half of it is not below it (at `min`).
   */
  #probeFrom(limit: number): number {
    const half = Math.max(this.#min, Math.floor(limit / 2));
    if (half >= limit) return limit;
    this.#sinceProbe = 0;
    this.#probing = limit;
    return half;
  }

  #clearSuspects(): void {
    this.#suspects = 0;
    this.#fastestSuspect = Infinity;
  }

  /** Sets the limit within the bounds and starts a new epoch. */
  #set(next: number, inFlight: number): void {
    const limit = Math.max(this.#min, Math.min(this.#max, next));
    this.#epoch.clear();
    this.#saturated = false;
    if (limit === this.limit) return;
    this.limit = limit;
    this.#clearSuspects();
    // The other calls in flight were started under the old limit: their times tell nothing of this one.
    this.#skip = Math.max(0, inFlight - 1);
  }
}
