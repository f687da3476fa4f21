/**
 * Adaptive batching: the batch size that gives the sink's best throughput,
 * under the latency target. Pure arithmetic over what it is told (the items and
 * sink time of each settled call); owns only the size and its search state.
 *
 * Real sinks have a per-call overhead (tiny batches waste it) and a superlinear
 * cost past some size (huge batches waste it too), so items/s over the batch
 * size is a hill whose top nobody knows in advance and which moves with the
 * sink. It is rarely a smooth hill: a sink's time comes in steps (timer ticks,
 * pages, packets), which makes every slope a saw of small local tops. The rule
 * searches a fixed ladder of sizes instead of following a gradient:
 *
 * - The ladder: min, then each rung GRID_RATIO (2^⅕, +15 %) above the last,
 *   then max. Sizes are always rungs; the top of a smooth hill is flat enough
 *   that the nearest rung loses under 1 % to it.
 * - Measure in epochs: EPOCH_CALLS calls of exactly the rung being measured,
 *   as items / their median sink time. The median, because a call's time also
 *   holds whatever else kept the event loop busy meanwhile (a garbage collection,
 *   the producer's own work): measured, one call in five or so took 3-8 times
 *   its sink's time, and one such call must not decide a comparison. Calls of
 *   another size (cut before a change, retries, partial batches, failures) do
 *   not count.
 * - Climb first (TCP's slow start): from min, CLIMB_RUNGS rungs (×2) at a time,
 *   until CLIMB_MISSES measurements in a row fail to beat the best so far (one
 *   miss may be noise) or the top is reached; then settle on the best rung the
 *   climb measured. Doubling steps over the saw's small tops.
 * - Then hold and probe: measure the settled rung HOLD_EPOCHS times, then one
 *   epoch on the rung beside it, alternating up and down. A neighbour better
 *   than the settled rung's last measurement by more than WIN (1 %) becomes the
 *   settled rung, and the next rung the same way is probed at once (so a top
 *   that moved is followed a rung per epoch). One within NOISE (2 %) below, or
 *   WIN above, is no answer: the rung beyond it decides instead.
 * - A changed sink: two hold measurements in a row more than CHANGE (10 %) away
 *   from the one before them (one may be noise) start the probes at once, and
 *   a failed one is followed at once by one on the other side.
 * - Look further: the climb decided on one epoch per rung, early in the run
 *   when the JIT and the first collections slow calls down, and on a saw every
 *   tooth's top is a local best for its neighbours, so a misjudged rung would
 *   never be seen again. So every FAR_EVERY-th probe after a hold goes a factor
 *   of 2 away instead of one rung, and before a probe, a rung within a factor
 *   of 2 measured in the last REMEMBER_EPOCHS that did better than the settled
 *   one by more than NOISE is measured again. Either kind of probe is judged as
 *   a neighbour is: better by more than WIN, it is settled on (and the next rung
 *   the same way probed at once); else it is remembered at its new rate, and not
 *   tried again unless the settled rung falls below that. Unlike a neighbour's,
 *   their failure does not turn the next probe the other way. A change of the
 *   sink keeps what was measured (a rung measured before it may be far worse
 *   now: one epoch there is the price); a latency cut forgets it, unless it
 *   ends the climb (a step of the climb over the target: the sink did not
 *   change, and a rung measured under the cut may be better than the cut rung).
 * - Latency: a call over `targetLatencyMs` cuts the size at once to the highest
 *   rung under what would have met the target (items × target / latency ×
 *   LATENCY_MARGIN) and caps every size below the one that was too slow; the cap
 *   rises by CAP_RELAX_STEP after CAP_RELAX_CALLS calls within the target, so a
 *   sink that recovers is followed. Where a smaller size was just measured
 *   within the target, the cut is also no higher than a line through the two
 *   says (see #fittingLine: a fixed cost per call). A late call over the cap
 *   lowers it only to what it would have met; one of a size asked for before
 *   (RECENT_SIZES) is whole. A partial batch over the target cuts the same way
 *   but sets no cap, and the climb starts again from the cut rung: a few items
 *   that took a stall's time say little of what the size costs.
 * - Failures: FAILURES_TO_CUT failed calls of a whole batch in a row cap the size
 *   under theirs and send it back (see {@link BatchSizer.failed}).
 * - Bounds: always within [min, max] (validated: max <= maxBufferSize), and at or
 *   under what a byte bound leaves room for (see {@link BatchSizer.fit}).
 */

/** Calls of the current size per measurement; it takes their median sink time. */
export const EPOCH_CALLS = 3;
/** From one rung of the ladder to the next. */
export const GRID_RATIO = 2 ** 0.2;
/** Rungs per step while climbing (5: doubling). */
export const CLIMB_RUNGS = 5;
/** Epochs on the settled rung between two probes of a neighbour. */
export const HOLD_EPOCHS = 6;
/** A probe this close below the settled rung's rate is inconclusive: the next rung beyond it is tried. */
export const NOISE = 0.02;
/** A probe must beat the settled rung's rate by this much to take its place (a hair's difference is noise). */
export const WIN = 0.01;
/** A settled rung whose rate moved by more than this since its last measurement: the sink changed. */
export const CHANGE = 0.1;
/** Every this many probes after a hold, the probe goes a factor of 2 (CLIMB_RUNGS rungs) away instead of one rung. */
export const FAR_EVERY = 2;
/** How many epochs a rung's measurement is remembered as a place to come back to. */
export const REMEMBER_EPOCHS = 100;
/** Climbing measurements in a row that may fail to beat the best before the climb ends. */
export const CLIMB_MISSES = 2;
/** A cut for latency aims this far below what would just meet the target. */
export const LATENCY_MARGIN = 0.8;
/** Calls within the target before the latency cap rises by CAP_RELAX_STEP. */
export const CAP_RELAX_CALLS = 8;
/** The factor the latency cap rises by. */
export const CAP_RELAX_STEP = 1.1;
/** Failed calls in a row, with no call of at least the size delivered between, that make the size go back. */
export const FAILURES_TO_CUT = 2;
/** A failed call at or under the settled size cuts the size to this fraction of the call's. */
export const FAILURE_CUT = 0.5;
/** A failed call over the settled size (a probe) multiplies the calls per step of the cap's rise by this. */
export const FAILURE_BACKOFF = 2;
/** The calls per step of the cap's rise go no higher than CAP_RELAX_CALLS times this. */
export const MAX_FAILURE_BACKOFF = 64;
/** How many earlier sizes a call may have been cut at and still count as a whole batch (see #tooSlow). */
export const RECENT_SIZES = 4;

type Mode = 'climb' | 'hold' | 'probe';

/** The sizes the search moves between: min, each GRID_RATIO above the last (rounded, strictly rising), max. */
export function ladder(min: number, max: number): number[] {
  const rungs = [min];
  for (let exact = min * GRID_RATIO; ; exact *= GRID_RATIO) {
    const last = rungs[rungs.length - 1] as number;
    const next = Math.max(last + 1, Math.round(exact));
    if (next >= max) break;
    rungs.push(next);
  }
  if (max > min) rungs.push(max);
  return rungs;
}

export class BatchSizer {
  readonly #rungs: readonly number[];
  readonly #targetMs: number;
  /** The size batches are cut at now: the settled rung or a probe beside it. */
  size: number;
  /** The rung being measured, and the settled one (they differ during a probe or the climb). */
  #rung = 0;
  #settled = 0;
  #mode: Mode = 'climb';
  /** The last measured rate (items/ms) of each rung, NaN until measured, and the epoch it was measured in. */
  readonly #rates: Float64Array;
  readonly #measuredAt: Float64Array;
  #epochs = 0;
  /** The best rate the climb has measured, and how many measurements since did not beat it. */
  #climbBest = 0;
  #climbMisses = 0;
  #holdLeft = HOLD_EPOCHS;
  /** The way the next probe goes: +1 up, -1 down. */
  #direction = 1;
  /** The sink changed: probe both sides before holding again. And whether one side has failed since. */
  #searching = false;
  #failedOnce = false;
  /** Whether the probe being measured is a neighbour (or the rung beyond one), not a far or remembered rung. */
  #near = true;
  /** Holds ended so far (every FAR_EVERY-th is followed by a probe a factor of 2 away). */
  #holdsEnded = 0;
  /** The last hold measurement was off by more than CHANGE: the next one decides whether the sink changed. */
  #suspect = false;
  /** Sink times (ms) of this epoch's calls so far. */
  readonly #epoch: number[] = [];
  /** Every size stays at or below this; lowered by a call over the target or a failed one. */
  #cap: number;
  #callsWithinTarget = 0;
  /** Calls within the target per rise of the cap: CAP_RELAX_CALLS, more after failed probes. */
  #relaxEvery = CAP_RELAX_CALLS;
  /** The size of the last probe that failed (Infinity for none): one that delivers at it ends the backoff. */
  #failedProbe = Infinity;
  /** Failed calls in a row: FAILURES_TO_CUT make the size go back; a call of at least the size delivered resets it. */
  #failures = 0;
  /** Every size stays at or below this too: what the byte bound leaves room for (see {@link fit}). */
  #fit = Infinity;
  /**
   * The last RECENT_SIZES sizes before this one, newest first: with more than one flush slot, whole batches
   * cut at one of them may still be in flight, and a call of one is whole, not a partial batch.
   */
  readonly #recent: number[] = [];

  constructor(min: number, max: number, targetLatencyMs: number) {
    this.#rungs = ladder(min, max);
    this.#rates = new Float64Array(this.#rungs.length).fill(Number.NaN);
    this.#measuredAt = new Float64Array(this.#rungs.length).fill(Number.NEGATIVE_INFINITY);
    this.#targetMs = targetLatencyMs;
    this.size = min;
    this.#cap = max;
  }

  /**
   * The size the search holds between probes (during a climb, the rung it started from): most batches
   * are cut at it, so a measure that needs many calls of one size (adaptive concurrency's) takes its calls.
   */
  get settledSize(): number {
    return this.#rungs[this.#settled] as number;
  }

  /** A call of `items` items took `latencyMs` of sink time and delivered them. */
  observe(items: number, latencyMs: number): void {
    if (items >= this.size) this.#failures = 0;
    if (latencyMs > this.#targetMs) {
      this.#tooSlow(items, latencyMs);
      return;
    }
    const max = this.#rungs[this.#rungs.length - 1] as number;
    if (items >= this.#failedProbe) {
      // The size that failed delivers now: the sink's limit moved, and the cap may rise at its own pace again.
      this.#failedProbe = Infinity;
      this.#relaxEvery = CAP_RELAX_CALLS;
    }
    if (++this.#callsWithinTarget >= this.#relaxEvery && this.#cap < max) {
      this.#callsWithinTarget = 0;
      this.#cap = Math.min(max, Math.ceil(this.#cap * CAP_RELAX_STEP));
    }
    if (items !== this.size) return;
    const epoch = this.#epoch;
    epoch.push(latencyMs);
    if (epoch.length < EPOCH_CALLS) return;
    epoch.sort((a, b) => a - b);
    const median = epoch[EPOCH_CALLS >> 1] as number;
    epoch.length = 0;
    // A sink faster than the clock's resolution: count it as 1 µs per call, so the rate stays finite.
    this.#measured(items / Math.max(median, 0.001));
  }

  /**
   * A call of a whole batch, `items` items, failed: it threw, rejected, timed out, or failed more
   * than OVERLOAD_SHARE of its items (scheduler.ts). A sink that refuses a size (a request over its
   * limit, too many parameters in one statement) or cannot finish one in time never delivers a call
   * of it, so without this the size would stay where the sink fails every call, and every batch would
   * go to its retries.
   *
   * Calls under the size (partial batches) and over the cap (cut before an earlier cut) tell nothing
   * new. One failure is no answer: a sink that fails a call in thirty at random (a connection reset,
   * a 503) must not halve its batches each time. A refused size fails again, its batch's retry
   * included, so FAILURES_TO_CUT in a row, with no call of at least the size delivered between,
   * decide. Then the cap goes under the call's size, and the size goes back: to the settled rung if
   * the call was a probe above it or a step of the climb (to the best the climb measured under it),
   * or to FAILURE_CUT of the call's size if it was at or under the settled size (the sink got worse,
   * or fails whatever the size: it then ends at min until it recovers). A failed probe also doubles
   * the calls it takes the cap to rise a step (FAILURE_BACKOFF, up to MAX_FAILURE_BACKOFF): a sink
   * with a hard limit is probed over it ever more rarely, where each probe costs a batch its retries.
   */
  failed(items: number): void {
    if (items < this.size || items > this.#cap) return;
    this.#callsWithinTarget = 0;
    if (++this.#failures < FAILURES_TO_CUT) return;
    this.#failures = 0;
    const min = this.#rungs[0] as number;
    const probe = items > (this.#rungs[this.#settled] as number);
    this.#cap = Math.max(min, items - 1);
    if (probe) {
      this.#failedProbe = items;
      this.#relaxEvery = Math.min(this.#relaxEvery * FAILURE_BACKOFF, CAP_RELAX_CALLS * MAX_FAILURE_BACKOFF);
    }
    this.#epoch.length = 0;
    if (this.#mode === 'climb') this.#settle(this.#bestClimbed(this.#highestAtMost(items - 1)));
    else if (probe) this.#settle(this.#settled);
    else this.#settle(this.#highestAtMost(Math.floor(items * FAILURE_CUT)));
  }

  /**
   * No batch of more than `items` items can fill now (a byte bound leaves room for about that many
   * of the items seen so far): sizes stay at or below it, as under the cap. A size above it would
   * never be measured again (only full batches are), so a settled or probed rung above it moves
   * down at once. Never below min.
   */
  fit(items: number): void {
    if (items === this.#fit) return;
    this.#fit = items;
    const top = this.#topRung();
    if (this.#rung <= top && this.#settled <= top) return;
    this.#epoch.length = 0;
    this.#settle(this.#mode === 'climb' ? this.#bestClimbed(top) : Math.min(this.#settled, top));
  }

  #measured(rate: number): void {
    const rung = this.#rung;
    const before = this.#rates[rung] as number;
    this.#rates[rung] = rate;
    this.#measuredAt[rung] = ++this.#epochs;
    if (this.#mode === 'climb') {
      if (rate > this.#climbBest) {
        this.#climbBest = rate;
        this.#climbMisses = 0;
      } else this.#climbMisses++;
      const next = Math.min(rung + CLIMB_RUNGS, this.#topRung());
      if (this.#climbMisses < CLIMB_MISSES && next > rung) {
        this.#measure(next);
        return;
      }
      this.#settle(this.#bestClimbed(rung));
      return;
    }
    if (this.#mode === 'hold') {
      // NaN before (the first measurement after a latency cut) is no change. One measurement off by more
      // than CHANGE is a suspicion (a noisy epoch), measured again against the same reference; two are a change.
      const deviates = Math.abs(rate / before - 1) > CHANGE;
      if (deviates && !this.#suspect) {
        this.#suspect = true;
        this.#rates[rung] = before;
        return;
      }
      this.#suspect = false;
      if (deviates) {
        this.#searching = true;
        this.#failedOnce = false;
      } else if (--this.#holdLeft > 0) return;
      const back = this.#searching ? undefined : this.#remembered();
      if (back !== undefined) {
        this.#direction = back > this.#settled ? 1 : -1;
        this.#startProbe(back, false);
      } else if (this.#searching || ++this.#holdsEnded % FAR_EVERY !== 0 || !this.#probeFar()) this.#probe();
      return;
    }
    // A probe: a neighbour that beat the settled rung's last measurement becomes it, and the next
    // rung the same way is probed at once; otherwise the next probe goes the other way.
    const settledRate = this.#rates[this.#settled] as number;
    if (rate > settledRate * (1 + WIN)) {
      this.#settled = rung;
      this.#failedOnce = false;
      this.#probe();
      return;
    }
    // A neighbour within NOISE below it (or within WIN above) is no answer: on a flat top the sink's own
    // jitter decides, and on a saw it may be one small tooth. The rung beyond it, the same way, decides instead.
    const beyond = rung + this.#direction;
    if (rung === this.#settled + this.#direction && rate >= settledRate * (1 - NOISE) && this.#holds(beyond)) {
      this.#measure(beyond);
      return;
    }
    // A neighbour that failed sends the next probe the other way; a far probe or a remembered rung that
    // failed leaves the way as it was (else far probes and near ones would keep to opposite sides).
    if (this.#near) this.#direction = -this.#direction;
    if (this.#searching && !this.#failedOnce) {
      this.#failedOnce = true;
      this.#probe();
      return;
    }
    this.#settle(this.#settled);
  }

  /** Measures the rung beside the settled one, in this.#direction if there is one there. */
  #probe(): void {
    let next = this.#settled + this.#direction;
    if (!this.#holds(next)) {
      this.#direction = -this.#direction;
      next = this.#settled + this.#direction;
    }
    if (!this.#holds(next)) {
      // A single rung under the cap: nothing beside it to try.
      this.#settle(this.#settled);
      return;
    }
    this.#startProbe(next, true);
  }

  #startProbe(rung: number, near: boolean): void {
    this.#mode = 'probe';
    this.#near = near;
    this.#measure(rung);
  }

  /** Measures the rung a factor of 2 from the settled one, in this.#direction if there is one there. */
  #probeFar(): boolean {
    let next = this.#settled + this.#direction * CLIMB_RUNGS;
    if (!this.#holds(next)) next = this.#settled - this.#direction * CLIMB_RUNGS;
    if (!this.#holds(next)) return false;
    this.#direction = next > this.#settled ? 1 : -1;
    this.#startProbe(next, false);
    return true;
  }

  #settle(rung: number): void {
    this.#settled = Math.min(rung, this.#topRung());
    this.#mode = 'hold';
    this.#searching = false;
    this.#holdLeft = HOLD_EPOCHS;
    this.#suspect = false;
    this.#measure(this.#settled);
  }

  #measure(rung: number): void {
    this.#rung = rung;
    const size = this.#rungs[rung] as number;
    if (size === this.size) return;
    const recent = this.#recent;
    recent.unshift(this.size);
    if (recent.length > RECENT_SIZES) recent.pop();
    this.size = size;
  }

  /**
   * The best rate the climb measured, from `last` down (the climb measured every CLIMB_RUNGS-th rung);
   * `last` itself if none of them was measured.
   */
  #bestClimbed(last: number): number {
    let best = last;
    let bestRate = Number.NEGATIVE_INFINITY;
    for (let rung = last; rung >= 0; rung--) {
      const rate = this.#rates[rung] as number;
      if (rate > bestRate) {
        best = rung;
        bestRate = rate;
      }
    }
    return best;
  }

  /**
   * The best rung within CLIMB_RUNGS of the settled one (a factor of 2) measured within REMEMBER_EPOCHS that did
   * better than the settled one by more than NOISE.
   */
  #remembered(): number | undefined {
    const settledRate = this.#rates[this.#settled] as number;
    let best: number | undefined;
    const lowest = Math.max(0, this.#settled - CLIMB_RUNGS);
    for (let rung = Math.min(this.#topRung(), this.#settled + CLIMB_RUNGS); rung >= lowest; rung--) {
      const rate = this.#rates[rung] as number;
      if (this.#epochs - (this.#measuredAt[rung] as number) > REMEMBER_EPOCHS) continue;
      if (rate > settledRate * (1 + NOISE) && (best === undefined || rate > (this.#rates[best] as number))) best = rung;
    }
    return best;
  }

  #forget(): void {
    this.#rates.fill(Number.NaN);
    this.#measuredAt.fill(Number.NEGATIVE_INFINITY);
  }

  /** Whether `rung` is on the ladder and under the cap. */
  #holds(rung: number): boolean {
    return rung >= 0 && rung <= this.#topRung();
  }

  /** The highest rung at or below the cap and the fit. */
  #topRung(): number {
    return this.#highestAtMost(Math.min(this.#cap, this.#fit));
  }

  /** The highest rung at or below `limit`; the lowest (min) if none is. */
  #highestAtMost(limit: number): number {
    let rung = this.#rungs.length - 1;
    while (rung > 0 && (this.#rungs[rung] as number) > limit) rung--;
    return rung;
  }

  #tooSlow(items: number, latencyMs: number): void {
    this.#callsWithinTarget = 0;
    const min = this.#rungs[0] as number;
    const fitting = Math.min(
      Math.floor(((items * this.#targetMs) / latencyMs) * LATENCY_MARGIN),
      this.#fittingLine(items, latencyMs),
    );
    if (items > this.#cap) {
      // A late call cut before an earlier cut put the cap under its size: the same news, unless it was slower.
      this.#cap = Math.max(min, Math.min(this.#cap, fitting));
      if (this.size > this.#cap) this.#settle(this.#highestAtMost(this.#cap));
      return;
    }
    // A batch cut at the size or at one it had before (more than one slot: batches of an older size are in
    // flight) is whole; one cut short (on the flush timer, in a lull) is partial.
    const whole = items >= this.size || this.#recent.includes(items);
    if (whole) this.#cap = Math.max(min, Math.min(this.#cap, this.size - 1, fitting));
    // Always a new start, lower: `fitting` is under 0.8 × items, and a call of at least the size put the cap under
    // it. It starts on the highest rung that fits, under the cap. What was measured no longer holds, unless the
    // call was a step of the climb: then the sink did not change, the climb went past the target, and a rung it
    // measured under the cut may be better than the cut rung (the hold goes back to it, see #remembered).
    if (!(whole && this.#mode === 'climb')) this.#forget();
    this.#epoch.length = 0;
    const rung = this.#highestAtMost(Math.min(fitting, this.#cap));
    if (whole) this.#settle(rung);
    else this.#climbFrom(rung);
  }

  /**
   * What a straight line through the call and a smaller size measured within the target says would meet
   * the target (LATENCY_MARGIN of the way from that size); Infinity without one. The smaller size is one
   * measured in the same conditions: during the climb, the highest rung it measured under the call; during
   * a probe, the settled rung, measured in the hold just before. The cut takes the lower of this and the
   * cut in proportion to the call's items, which assumes the sink's time is all per item: a sink with a
   * fixed cost per call takes longer than its items alone explain, so that one alone overshoots the target
   * again after a large step (70 ms + 0.25 ms per item against a target of 100, met up to 120 items: 211
   * items, 123 ms, cut to 137, whose rung, 121, takes 100.25 ms; the line through 106, 96.5 ms, gives 117,
   * the rung 106). The line alone overshoots where the sink's time jumps between the two sizes.
   */
  #fittingLine(items: number, latencyMs: number): number {
    let rung = -1;
    if (this.#mode === 'probe') rung = this.#settled;
    else if (this.#mode === 'climb') {
      rung = this.#rung - 1;
      while (rung >= 0 && !((this.#rates[rung] as number) > 0)) rung--;
    }
    const rate = rung >= 0 ? (this.#rates[rung] as number) : Number.NaN;
    if (!(rate > 0)) return Infinity;
    const size = this.#rungs[rung] as number;
    const ms = size / rate;
    if (size >= items || ms > this.#targetMs || ms >= latencyMs) return Infinity;
    const msPerItem = (latencyMs - ms) / (items - size);
    return Math.floor(size + ((this.#targetMs - ms) / msPerItem) * LATENCY_MARGIN);
  }

  /**
   * A partial batch was too slow: the sink is slow now, but a call under the size says little of what
   * the size costs (a few items that took a stall's time extrapolate to next to nothing). So instead of
   * holding the cut size and probing back up a rung per epoch (105 calls from 10 back to 1,000 on a sink
   * faster per item at every larger size; 21 now), the climb starts again from it, doubling as at the
   * start, up to the cap, which a call of a whole batch over the target lowers as always.
   */
  #climbFrom(rung: number): void {
    this.#mode = 'climb';
    this.#climbBest = 0;
    this.#climbMisses = 0;
    this.#settled = rung;
    this.#suspect = false;
    this.#measure(rung);
  }
}
