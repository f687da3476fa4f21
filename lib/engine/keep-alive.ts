/**
 * Whether a sluice's timers keep the process alive. They do while someone waits
 * on the sluice (a producer told to wait for `'drain'`, an `end()` awaiting
 * `'finish'`, a `drain()`): otherwise the process could exit with items held and
 * a `pipeline()` never settled. Otherwise they are unref'd: a sluice alone never
 * keeps a process alive. Owns the set of pending timers; knows nothing else.
 */
export class KeepAlive {
  readonly #timers = new Set<NodeJS.Timeout>();
  #awaited = false;

  /** Starts a tracked timer; `callback` runs after it is untracked. */
  setTimeout(callback: () => void, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      callback();
    }, ms);
    if (!this.#awaited) timer.unref();
    this.#timers.add(timer);
    return timer;
  }

  clearTimeout(timer: NodeJS.Timeout | undefined): void {
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#timers.delete(timer);
  }

  clearAll(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  /** Re-applies whether anyone is waiting to every pending timer. */
  set awaited(awaited: boolean) {
    if (awaited === this.#awaited) return;
    this.#awaited = awaited;
    for (const timer of this.#timers) {
      if (awaited) timer.ref();
      else timer.unref();
    }
  }

  get awaited(): boolean {
    return this.#awaited;
  }
}
