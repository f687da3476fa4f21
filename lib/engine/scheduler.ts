/**
 * When a partial batch may go: the adaptive interval of the design doc
 * (latency above 1.5 × target: × 1.5 up to the max; below 0.5 × target: × 0.8
 * down to the min). It decides only for partial batches: a full batch goes as
 * soon as a flush slot is free, since spacing full batches only throttles a slow
 * sink further while the producer waits. Owns the interval and the last latency.
 */
export interface IntervalConfig {
  readonly targetLatencyMs: number;
  readonly minFlushIntervalMs: number;
  readonly maxFlushIntervalMs: number;
}

export class Scheduler {
  readonly #config: IntervalConfig;
  interval: number;
  lastLatencyMs = 0;

  constructor(config: IntervalConfig) {
    this.#config = config;
    this.interval = config.minFlushIntervalMs;
  }

  recordLatency(latencyMs: number): void {
    const { targetLatencyMs, minFlushIntervalMs, maxFlushIntervalMs } = this.#config;
    this.lastLatencyMs = latencyMs;
    if (latencyMs > targetLatencyMs * 1.5) this.interval = Math.min(this.interval * 1.5, maxFlushIntervalMs);
    else if (latencyMs < targetLatencyMs * 0.5) this.interval = Math.max(this.interval * 0.8, minFlushIntervalMs);
  }

  /** When a partial batch whose oldest item arrived at `arrival` is due. */
  dueAt(arrival: number): number {
    return arrival + this.interval;
  }
}
