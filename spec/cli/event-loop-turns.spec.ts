import { EventLoopTurns } from '../../lib/cli/sinks/sink';

/**
 * The SQLite sink runs each batch synchronously and lets the event loop turn before a batch only once
 * `everyMs` have passed since the last turn: often enough for signals and the status line, rarely
 * enough that the input does not get a chunk in for every batch committed.
 */
describe('EventLoopTurns', () => {
  /** Whether `take()` let the event loop turn: an immediate queued before it has run by the time it resolves. */
  async function turned(turns: EventLoopTurns): Promise<boolean> {
    let ran = false;
    setImmediate(() => {
      ran = true;
    });
    await turns.take();
    const result = ran;
    // Let the immediate run before the next check, whatever this one found.
    await new Promise<void>((resolve) => setImmediate(resolve));
    return result;
  }

  it('turns at the first take(), then not again until everyMs have passed since that turn', async () => {
    let now = 1_000;
    const turns = new EventLoopTurns(20, () => now);
    expect(await turned(turns)).toBe(true);
    expect(await turned(turns)).toBe(false);
    now += 19.9;
    expect(await turned(turns)).toBe(false);
    now += 0.1;
    expect(await turned(turns)).toBe(true);
    expect(await turned(turns)).toBe(false);
  });

  it('counts everyMs from the end of the turn, so a slow turn does not make the next one due at once', async () => {
    let now = 0;
    const turns = new EventLoopTurns(20, () => now);
    // The clock moves 50 ms while the turn is under way (an immediate queued before take() runs first).
    setImmediate(() => {
      now += 50;
    });
    await turns.take();
    now += 19;
    expect(await turned(turns)).toBe(false);
    now += 1;
    expect(await turned(turns)).toBe(true);
  });

  it('many batches within everyMs: one turn in all, however many take() calls', async () => {
    const now = 0;
    const turns = new EventLoopTurns(20, () => now);
    let turnsSeen = 0;
    for (let batch = 0; batch < 100; batch++) if (await turned(turns)) turnsSeen++;
    expect(turnsSeen).toBe(1);
  });
});
