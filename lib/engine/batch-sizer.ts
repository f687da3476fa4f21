/**
 * Adaptive batching: the batch size that gives the sink's best throughput,
 * under the latency target. Pure arithmetic over what it is told (the items and
 * sink time of each settled call); owns only the size and its search state.
 *
 * Real sinks have a per-call overhead (tiny batches waste it) and a superlinear
 * cost past some size (huge batches waste it too), so items/s over the batch
 * size is a hill whose top nobody knows in advance and which moves with the
 * sink. The rule is perturb-and-observe around a centre, with a multiplicative
 * step, and a multiplicative decrease on latency (AIMD's "MD"):
 *
 * - Measure in epochs: EPOCH_CALLS calls of exactly the size being measured,
 *   as items / sink time. Calls of another size (cut before a change, retries,
 *   partial batches, failures) do not count.
 * - A cycle measures the centre c, then c × step, then c / step (a side that a
 *   bound clamps onto c is skipped). The better side, if better than the
 *   centre, becomes the centre; moving the same way twice in a row with a gain
 *   beyond NOISE widens the step (squared, up to MAX_STEP), so a far top is
 *   reached in a few cycles. If the centre is best, the step narrows (square
 *   root, down to MIN_STEP). Every
 *   cycle measures afresh, and the step never falls below MIN_STEP, so the
 *   probes keep following a sink that gets faster or slower.
 * - Latency: a call over `targetLatencyMs` cuts the size at once to what would
 *   have met the target (items × target / latency × LATENCY_MARGIN) and caps
 *   every size below the one that was too slow; the cap rises by MIN_STEP after
 *   CAP_RELAX_CALLS calls within the target, so a sink that recovers is followed.
 * - Bounds: always within [min, max] (validated: max <= maxBufferSize).
 */

/** Calls of the current size per measurement. */
export const EPOCH_CALLS = 2;
/** Relative gain below which a move does not widen the step. */
export const NOISE = 0.03;
/** Largest multiplicative step (the first climb doubles). */
export const MAX_STEP = 2;
/** Smallest step: the probing amplitude around the top. */
export const MIN_STEP = 1.1;
/** A cut for latency aims this far below what would just meet the target. */
export const LATENCY_MARGIN = 0.8;
/** Calls within the target before the latency cap rises by one MIN_STEP. */
export const CAP_RELAX_CALLS = 8;

type Phase = 'centre' | 'up' | 'down';

export class BatchSizer {
  readonly #min: number;
  readonly #max: number;
  readonly #targetMs: number;
  /** The size batches are cut at now: the centre or a probe beside it. */
  size: number;
  #centre: number;
  #step = MAX_STEP;
  #phase: Phase = 'centre';
  /** Throughputs (items/ms) measured in this cycle. */
  #centreRate = 0;
  #upRate: number | undefined;
  #downRate: number | undefined;
  /** +1 or -1 when the last cycle moved the centre that way, 0 when it stayed. */
  #lastMove = 0;
  #epochItems = 0;
  #epochMs = 0;
  #epochCalls = 0;
  /** Every size stays at or below this; lowered by a call over the target. */
  #cap: number;
  #callsWithinTarget = 0;

  constructor(min: number, max: number, targetLatencyMs: number) {
    this.#min = min;
    this.#max = max;
    this.#targetMs = targetLatencyMs;
    this.size = min;
    this.#centre = min;
    this.#cap = max;
  }

  /** A call of `items` items took `latencyMs` of sink time and delivered them. */
  observe(items: number, latencyMs: number): void {
    if (latencyMs > this.#targetMs) {
      this.#tooSlow(items, latencyMs);
      return;
    }
    if (++this.#callsWithinTarget >= CAP_RELAX_CALLS && this.#cap < this.#max) {
      this.#callsWithinTarget = 0;
      this.#cap = Math.min(this.#max, Math.ceil(this.#cap * MIN_STEP));
    }
    if (items !== this.size) return;
    this.#epochItems += items;
    this.#epochMs += latencyMs;
    if (++this.#epochCalls < EPOCH_CALLS) return;
    // A sink faster than the clock's resolution: count it as 1 µs per call, so the rate stays finite.
    const rate = this.#epochItems / Math.max(this.#epochMs, 0.001 * this.#epochCalls);
    this.#resetEpoch();
    this.#measured(rate);
  }

  #measured(rate: number): void {
    if (this.#phase === 'centre') {
      this.#centreRate = rate;
      this.#upRate = undefined;
      this.#downRate = undefined;
      if (this.#probe('up', this.#centre * this.#step)) return;
      if (this.#probe('down', this.#centre / this.#step)) return;
    } else if (this.#phase === 'up') {
      this.#upRate = rate;
      if (this.#probe('down', this.#centre / this.#step)) return;
    } else {
      this.#downRate = rate;
    }
    this.#decide();
  }

  /** Measures `size` next, unless the bounds clamp it onto the centre. */
  #probe(phase: Phase, size: number): boolean {
    const clamped = this.#clamp(
      size > this.#centre ? Math.max(this.#centre + 1, Math.round(size)) : Math.min(this.#centre - 1, Math.round(size)),
    );
    if (clamped === this.#centre) return false;
    this.#phase = phase;
    this.size = clamped;
    return true;
  }

  #decide(): void {
    const centre = this.#centreRate;
    const up = this.#upRate ?? 0;
    const down = this.#downRate ?? 0;
    let move = 0;
    if (up > centre && up >= down) move = 1;
    else if (down > centre) move = -1;
    if (move === 0) this.#step = Math.max(MIN_STEP, Math.sqrt(this.#step));
    else {
      // Only a clear gain (beyond NOISE), twice the same way, widens the step; a small one just moves.
      const gain = Math.max(up, down) / centre - 1;
      if (move === this.#lastMove && gain > NOISE) this.#step = Math.min(MAX_STEP, this.#step * this.#step);
      const next = move > 0 ? this.#centre * this.#step : this.#centre / this.#step;
      this.#centre = this.#clamp(Math.round(next));
    }
    this.#lastMove = move;
    this.#phase = 'centre';
    this.size = this.#centre;
  }

  #tooSlow(items: number, latencyMs: number): void {
    this.#callsWithinTarget = 0;
    const fitting = Math.floor(((items * this.#targetMs) / latencyMs) * LATENCY_MARGIN);
    if (items >= this.size) this.#cap = Math.max(this.#min, Math.min(this.#cap, this.size - 1, fitting));
    if (Math.min(fitting, this.#cap) < this.size) {
      // A new start at what fits, under the cap: measure afresh from there, with a gentle step. (A late call
      // larger than the size can lower the cap below the size without the size itself being too slow.)
      this.#centre = this.#clamp(fitting);
      this.size = this.#centre;
      this.#phase = 'centre';
      this.#step = MIN_STEP;
      this.#lastMove = 0;
      this.#resetEpoch();
    }
  }

  #resetEpoch(): void {
    this.#epochItems = 0;
    this.#epochMs = 0;
    this.#epochCalls = 0;
  }

  #clamp(size: number): number {
    return Math.max(this.#min, Math.min(this.#max, this.#cap, size));
  }
}
