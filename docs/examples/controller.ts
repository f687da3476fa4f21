/**
 * The design document's controller, for code that is not stream-shaped: call
 * `push()` where events happen, `drain()` on shutdown. The usage block below is
 * the design doc's, unchanged.
 */
import { BackpressureController, BackpressureStrategy } from '../../lib';

interface Event {
  type: string;
  at: number;
}

/** Stands in for your database client. */
const rows: unknown[] = [];
const db = {
  async batchInsert(_table: string, items: unknown[]): Promise<{ inserted: number }> {
    rows.push(...items);
    return { inserted: items.length };
  },
};

export async function main(): Promise<{ stored: number; accepted: number; state: string }> {
  rows.length = 0;
  const events: Event[] = Array.from({ length: 1_000 }, (_, i) => ({ type: 'click', at: i }));
  let accepted = 0;

  // #region controller
  // Create controller
  const controller = new BackpressureController(
    async (items) => {
      const result = await db.batchInsert('events', items);
      return { success: result.inserted, failed: 0, errors: [] };
    },
    {
      strategy: BackpressureStrategy.DROP_OLDEST,
      maxBufferSize: 10000,
      batchSize: 100,
    },
  );

  // Start processing
  controller.start();

  // Push events
  for (const event of events) {
    if (await controller.push(event)) accepted++; // false: the strategy dropped it
  }

  // On shutdown
  await controller.drain();
  controller.stop();
  // #endregion controller

  return { stored: rows.length, accepted, state: controller.getMetrics().state };
}

if (require.main === module) main().then(console.log, console.error);
