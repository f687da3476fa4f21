import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { runHonouring } from './workload';
import type { Item, SinkSpec } from '../common';
import type { Workload } from './workload';

const ITEMS = 1_000_000;
const BATCH_SIZE = 1000;

/** A file database in the temp directory (WAL, synchronous=NORMAL); one transaction per batch. */
function sqliteSink(Database: typeof BetterSqlite3, file: string): SinkSpec {
  return {
    name: 'sqlite',
    create: (delivery) => {
      const db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec('CREATE TABLE events (id INTEGER NOT NULL, payload TEXT NOT NULL)');
      const insert = db.prepare<[number, string]>('INSERT INTO events (id, payload) VALUES (?, ?)');
      const insertAll = db.transaction((batch: Item[]) => {
        for (const item of batch) insert.run(item.id, item.payload);
      });
      return (batch) => {
        insertAll(batch);
        delivery.record(batch);
      };
    },
  };
}

export const sqliteWorkload: Workload = {
  name: 'sqlite',
  title: 'SQLite: a real sink',
  description: `${ITEMS.toLocaleString('en')} rows (quick: a tenth) into a \`better-sqlite3\` file database (WAL, synchronous=NORMAL), one transaction per batch of ${BATCH_SIZE}. \`for-loop\` is the hand-written batched-transaction loop.`,
  contenders: ['for-loop', 'native', 'sluice-block', 'sluice-transform'],
  async run(contender, scale) {
    const { default: Database } = await import('better-sqlite3'); // loaded only here: every child pays its imports
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-'));
    try {
      return await runHonouring(
        contender,
        scale.quick ? ITEMS / 10 : ITEMS,
        sqliteSink(Database, path.join(dir, 'bench.db')),
        {
          batchSize: BATCH_SIZE,
        },
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
