import { EventLoopTurns } from '../../lib/cli/sinks/sink';

/**
 * The SQLite sink runs each batch synchronously. Before a batch it makes the event loop turn only when
 * the loop has not turned for `everyMs`: a chain of batches cannot hold signals and the status line up
 * for long, and the turns the loop takes on its own (between the input's chunks) make none necessary.
 */
describe('EventLoopTurns', () => {
  /**
   * Watches for turns of the event loop without causing one: `turned()` says whether the loop turned
   * since the last call (an immediate queued then has run).
   */
  function turnWatch(): { turned(): boolean } {
    let ran = false;
    const arm = (): void => {
      ran = false;
      setImmediate(() => {
        ran = true;
      });
    };
    arm();
    return {
      turned() {
        const result = ran;
        if (result) arm();
        return result;
      },
    };
  }

  it('a chain of batches with no turn between them: one is made once everyMs have passed since the last', async () => {
    let now = 0;
    const turns = new EventLoopTurns(20, () => now);
    const watch = turnWatch();
    await turns.take();
    expect(watch.turned()).toBe(true); // the first batch: no turn seen yet
    const madeAt: number[] = [];
    for (let batch = 1; batch <= 10; batch++) {
      now += 5;
      await turns.take();
      if (watch.turned()) madeAt.push(now);
    }
    expect(madeAt).toEqual([20, 40]);
  });

  it('the turns the loop takes on its own count: the batch after one goes without a turn', async () => {
    let now = 0;
    const turns = new EventLoopTurns(20, () => now);
    await turns.take();
    now = 1_000;
    // The input's next read, say: the loop turns without the sink.
    await new Promise<void>((resolve) => setImmediate(resolve));
    now = 1_010;
    const watch = turnWatch();
    await turns.take();
    expect(watch.turned()).toBe(false);
    now = 1_020;
    await turns.take();
    expect(watch.turned()).toBe(true);
    // And every later turn the loop takes on its own, not only the first.
    now = 2_000;
    await new Promise<void>((resolve) => setImmediate(resolve));
    watch.turned();
    now = 2_010;
    await turns.take();
    expect(watch.turned()).toBe(false);
  });

  it('counts everyMs from the end of a turn it made, so a slow turn does not make the next one due at once', async () => {
    let now = 0;
    const turns = new EventLoopTurns(20, () => now);
    // The clock moves 50 ms while the turn is under way (an immediate queued before take() runs first).
    setImmediate(() => {
      now += 50;
    });
    await turns.take();
    const watch = turnWatch();
    now += 19;
    await turns.take();
    expect(watch.turned()).toBe(false);
    now += 1;
    await turns.take();
    expect(watch.turned()).toBe(true);
  });
});
