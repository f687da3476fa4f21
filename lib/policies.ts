import { BackpressureState, BackpressureStrategy } from './types';
import { belowCritical } from './engine';
import type { AdmissionPolicy, Gate, Settle } from './engine';

/**
 * The four strategies, each one small hook: what to do with an offered item.
 * The stream subclasses and the Transform both take theirs from here.
 */

/** Pauses the producer: `false` from `critical` on; at `blocked`, the write waits for room. */
export class BlockPolicy<T> implements AdmissionPolicy<T> {
  readonly strategy = BackpressureStrategy.BLOCK;
  readonly acceptsWhatFits = true;

  admit(gate: Gate<T>, item: T, size: number, settle: Settle | undefined): boolean {
    // Writes already waiting go first, so a newer write never overtakes an older one.
    if (gate.waiting > 0 || !gate.fits(size)) return gate.wait(item, size, settle);
    gate.accept(item, size, settle);
    return belowCritical(gate.level);
  }
}

/** Never pauses: evicts the oldest queued items until the new one fits. */
export class DropOldestPolicy<T> implements AdmissionPolicy<T> {
  readonly strategy = BackpressureStrategy.DROP_OLDEST;
  readonly acceptsWhatFits = true;

  admit(gate: Gate<T>, item: T, size: number, settle: Settle | undefined): boolean {
    while (!gate.fits(size) && gate.evictOldest());
    if (gate.fits(size)) gate.accept(item, size, settle);
    else gate.evictIncoming(item, settle);
    return true;
  }
}

/** Never pauses: refuses the incoming item when full. */
export class DropNewestPolicy<T> implements AdmissionPolicy<T> {
  readonly strategy = BackpressureStrategy.DROP_NEWEST;
  readonly acceptsWhatFits = true;

  admit(gate: Gate<T>, item: T, size: number, settle: Settle | undefined): boolean {
    if (gate.fits(size)) gate.accept(item, size, settle);
    else gate.drop(item, 'rejected', settle);
    return true;
  }
}

/**
 * Never pauses: outside `normal`, keeps one of every `sampleRate` items offered,
 * counting offers (not acceptances, which the design doc counted and which could
 * stick at a value that drops everything); refuses when full.
 */
export class SamplePolicy<T> implements AdmissionPolicy<T> {
  readonly strategy = BackpressureStrategy.SAMPLE;
  // It counts every offer outside `normal`.
  readonly acceptsWhatFits = false;
  /** Offers since the last kept one, outside `normal`; 0 means keep the next. */
  #sinceKept = 0;

  admit(gate: Gate<T>, item: T, size: number, settle: Settle | undefined): boolean {
    if (gate.level === BackpressureState.NORMAL) this.#sinceKept = 0;
    else {
      const keep = this.#sinceKept === 0;
      this.#sinceKept = (this.#sinceKept + 1) % gate.config.sampleRate;
      if (!keep) {
        gate.drop(item, 'sampled', settle);
        return true;
      }
    }
    if (gate.fits(size)) gate.accept(item, size, settle);
    else gate.drop(item, 'rejected', settle);
    return true;
  }
}

/** A fresh policy for `strategy` (sample keeps a counter, so each stream gets its own). */
export function createPolicy<T>(strategy: BackpressureStrategy): AdmissionPolicy<T> {
  switch (strategy) {
    case BackpressureStrategy.BLOCK:
      return new BlockPolicy();
    case BackpressureStrategy.DROP_OLDEST:
      return new DropOldestPolicy();
    case BackpressureStrategy.DROP_NEWEST:
      return new DropNewestPolicy();
    case BackpressureStrategy.SAMPLE:
      return new SamplePolicy();
  }
}
