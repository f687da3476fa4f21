import { EventLoopTurns } from '../../lib/cli/sinks/sink';

/**
 * The SQLite sink runs each batch synchronously. Before a batch it makes the event loop turn only once
 * the batches run since the loop last turned have taken `everyMs`: a chain of batches cannot hold signals
 * and the status line up for long, and the turns the loop takes on its own (between the input's chunks)
 * make none necessary. The clock is injected; the turns are real `setImmediate`s, which run in order.
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

  /** The loop turns without the sink (the input's next read, say). */
  const loopTurns = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

  it('a chain of batches with no turn between them: one is made each time the chain has run everyMs', async () => {
    let now = 0;
    const turns = new EventLoopTurns(20, () => now);
    const watch = turnWatch();
    const madeAt: number[] = [];
    for (let batch = 0; batch <= 10; batch++) {
      await turns.take();
      if (watch.turned()) madeAt.push(now);
      now += 5;
    }
    // The stretch starts at the first batch (0), and again after each turn made (20, 40).
    expect(madeAt).toEqual([20, 40]);
  });

  it('after a turn the loop takes on its own, the next batch starts a new stretch, however long ago the last one was', async () => {
    let now = 0;
    const turns = new EventLoopTurns(20, () => now);
    await turns.take();
    now = 5;
    await loopTurns();
    // Long after, with other turns in between that nothing watched: still a fresh stretch.
    now = 100;
    await loopTurns();
    const watch = turnWatch();
    await turns.take();
    expect(watch.turned()).toBe(false);
    now = 110;
    await turns.take();
    expect(watch.turned()).toBe(false);
    now = 120;
    await turns.take();
    expect(watch.turned()).toBe(true);
    // And every later turn of the loop is seen, not only the first.
    now = 2_000;
    await loopTurns();
    watch.turned();
    now = 2_010;
    await turns.take();
    expect(watch.turned()).toBe(false);
  });

  it('a stretch that follows a turn it made starts when that turn ends, so a slow turn does not make the next one due at once', async () => {
    let now = 0;
    const turns = new EventLoopTurns(20, () => now);
    await turns.take();
    now = 20;
    // The clock moves 50 ms while the turn is under way (an immediate queued before take()'s runs first).
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
