import { BackpressureState } from '../types';

/**
 * Level maths: which state a held count (and byte count) gives. Pure: owns no
 * counter, emits nothing. The item thresholds are computed once as counts, so
 * the hot path compares integers and no float edge disagrees with utilization.
 */

/** Smallest n with n / capacity >= fraction, computed the way utilization is. */
export function countAtLeast(fraction: number, capacity: number): number {
  let n = Math.ceil(fraction * capacity);
  while (n > 0 && (n - 1) / capacity >= fraction) n--;
  while (n / capacity < fraction) n++;
  return n;
}

/** The write-queue bound of block and the stream's `highWaterMark`: the held count where `critical` starts. */
export function criticalCount(config: { readonly highWatermark: number; readonly maxBufferSize: number }): number {
  return Math.max(1, countAtLeast(config.highWatermark, config.maxBufferSize));
}

/**
 * The largest batch that can fill while every flush slot's batch is in flight: a block producer
 * waits at the critical count, so the next batch fills only in what the slots' batches leave of it.
 */
export function fillingBatchSize(config: {
  readonly highWatermark: number;
  readonly maxBufferSize: number;
  readonly maxConcurrentFlushes: number;
}): number {
  return Math.floor(criticalCount(config) / (config.maxConcurrentFlushes + 1));
}

/** What block's `write()` returns after an accept at `level`: the producer may go on below `critical`. */
export function belowCritical(level: BackpressureState): boolean {
  return level !== BackpressureState.CRITICAL && level !== BackpressureState.BLOCKED;
}

export interface ThresholdConfig {
  readonly maxBufferSize: number;
  readonly maxBufferBytes: number;
  readonly lowWatermark: number;
  readonly highWatermark: number;
}

export class Thresholds {
  readonly #config: ThresholdConfig;
  /** Held count where `elevated` starts. */
  readonly lowCount: number;
  /** Held count where `critical` starts. */
  readonly highCount: number;
  /** Whether bytes are bounded too (then every change may move the level). */
  readonly bytesBounded: boolean;

  constructor(config: ThresholdConfig) {
    this.#config = config;
    this.lowCount = countAtLeast(config.lowWatermark, config.maxBufferSize);
    this.highCount = criticalCount(config);
    this.bytesBounded = config.maxBufferBytes !== Infinity;
  }

  /** The item bound (`Infinity` with a disk log: there the bytes bound). */
  get maxItems(): number {
    return this.#config.maxBufferSize;
  }

  get maxBytes(): number {
    return this.#config.maxBufferBytes;
  }

  /** Whether one more item, making `held`, may raise the level (the hot path skips the rest). */
  isEdge(held: number): boolean {
    return (
      this.bytesBounded || held === this.lowCount || held === this.highCount || held === this.#config.maxBufferSize
    );
  }

  /**
   * How many items may be accepted from `held` on before one could raise the level: accepts up to
   * the next count {@link isEdge} names leave it as it is. None with a byte bound (there every
   * item may) or at the item bound.
   */
  steadyRoom(held: number): number {
    if (this.bytesBounded) return 0;
    const edge =
      held < this.lowCount ? this.lowCount : held < this.highCount ? this.highCount : this.#config.maxBufferSize;
    return Math.max(0, edge - 1 - held);
  }

  utilization(held: number, bytes: number): number {
    const items = held / this.#config.maxBufferSize;
    return this.bytesBounded ? Math.max(items, bytes / this.#config.maxBufferBytes) : items;
  }

  /** The state utilization gives (never `draining`); any waiting write means `blocked`. */
  level(held: number, bytes: number, waiting: number): BackpressureState {
    const config = this.#config;
    if (!this.bytesBounded) {
      if (held >= config.maxBufferSize || waiting > 0) return BackpressureState.BLOCKED;
      if (held >= this.highCount) return BackpressureState.CRITICAL;
      return held >= this.lowCount ? BackpressureState.ELEVATED : BackpressureState.NORMAL;
    }
    const utilization = this.utilization(held, bytes);
    if (utilization >= 1 || waiting > 0) return BackpressureState.BLOCKED;
    if (utilization >= config.highWatermark) return BackpressureState.CRITICAL;
    return utilization >= config.lowWatermark ? BackpressureState.ELEVATED : BackpressureState.NORMAL;
  }
}
