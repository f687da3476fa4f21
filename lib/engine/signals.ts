import { BackpressureState } from '../types';
import type { EventHost } from './dead-letter';
import type { KeepAlive } from './keep-alive';

/**
 * What a sluice tells the outside about its fill: the `'state'` events, the
 * `'drain'` hysteresis, Node's `needDrain`, and whether anyone is waiting on it
 * (which decides whether its timers keep the process alive). Each change and its
 * announcement happen in one method, so they cannot drift apart. Counts nothing.
 */

export interface SignalHost extends EventHost {
  /** Mirrors `needDrain` into Node's own state, which `pipe()`'s cleanup reads. */
  setNeedDrain(needDrain: boolean): void;
}

export class Signals {
  readonly #host: SignalHost;
  readonly #keepAlive: KeepAlive;
  /** Items held plus writes waiting, read when deciding whether the state is `draining`. */
  readonly #length: () => number;
  /** The state utilization gives (never `draining`). */
  level = BackpressureState.NORMAL;
  /** The state shown: `level`, or `draining` while an end() or drain() waits on held items. */
  state = BackpressureState.NORMAL;
  /** write() returned false and 'drain' has not fired since. */
  needDrain = false;
  ending = false;
  drainRequested = false;
  /** ending || drainRequested: flush everything now (read per item by the scheduler). */
  urgent = false;
  /** No event of any kind after destroy. */
  destroyed = false;

  constructor(host: SignalHost, keepAlive: KeepAlive, length: () => number) {
    this.#host = host;
    this.#keepAlive = keepAlive;
    this.#length = length;
  }

  setLevel(level: BackpressureState): void {
    if (level === this.level) return;
    this.level = level;
    this.show();
  }

  /** Emits 'state' if the shown state changed. */
  show(): void {
    if (this.destroyed) return;
    const draining = (this.ending || this.drainRequested) && this.#length() > 0;
    const next = draining ? BackpressureState.DRAINING : this.level;
    if (next === this.state) return;
    const previous = this.state;
    this.state = next;
    this.#host.emit('state', next, previous);
  }

  /** write() returned false. */
  refused(): void {
    if (this.needDrain) return;
    this.#setNeedDrain(true);
  }

  /**
   * Room was freed: the producer resumes below the low watermark (hysteresis), never once ending.
   * `belowCritical`: a refusal that was not the level's (the disk log's writer caught up with the
   * producer) ends as soon as the level would let a write through.
   */
  maybeDrain(belowCritical = false): void {
    if (!this.needDrain || this.destroyed || this.ending) return;
    const level = this.level;
    const open = belowCritical
      ? level === BackpressureState.NORMAL || level === BackpressureState.ELEVATED
      : level === BackpressureState.NORMAL;
    if (!open) return;
    this.#setNeedDrain(false);
    this.#host.emit('drain');
  }

  setEnding(): void {
    this.ending = true;
    this.urgent = true;
    // Node: no 'drain' once ending; the producer has nothing left to write.
    if (this.needDrain) this.#setNeedDrain(false);
    this.#refreshAwaited();
    this.show();
  }

  setDrainRequested(requested: boolean): void {
    this.drainRequested = requested;
    this.urgent = this.ending || requested;
    this.#refreshAwaited();
    this.show();
  }

  #setNeedDrain(needDrain: boolean): void {
    this.needDrain = needDrain;
    this.#host.setNeedDrain(needDrain);
    this.#refreshAwaited();
  }

  #refreshAwaited(): void {
    this.#keepAlive.awaited = this.needDrain || this.ending || this.drainRequested;
  }
}
