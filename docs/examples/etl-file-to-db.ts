/**
 * ETL: an NDJSON file → parse → a `block` sluice → SQLite (better-sqlite3), in one
 * `pipeline`. Batches are inserted in one transaction each; a bad row fails its
 * batch, the retries fail too, `fallbackToSequential` isolates it and
 * `onDeadLetter` keeps it for a later look. Everything else lands.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// #region etl
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import { BlockingWritable, type BackpressureError } from '../../lib';

interface Order {
  id: number;
  customer: string | null;
  total: number;
}

/** Splits a text stream into lines and parses each as JSON. Honours backpressure: it is an async generator. */
async function* ndjson(chunks: AsyncIterable<string>): AsyncGenerator<Order> {
  let rest = '';
  for await (const chunk of chunks) {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') yield JSON.parse(line) as Order;
  }
  if (rest.trim() !== '') yield JSON.parse(rest) as Order;
}

export async function loadOrders(
  file: string,
  db: Database.Database,
): Promise<{ rejected: { order: Order; code: string }[] }> {
  db.exec('CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total REAL NOT NULL)');
  const insert = db.prepare('INSERT INTO orders (id, customer, total) VALUES (@id, @customer, @total)');
  // One transaction per batch: all rows of a batch land, or none do (so a retry cannot duplicate).
  const insertBatch = db.transaction((rows: Order[]) => {
    for (const row of rows) insert.run(row);
  });

  const rejected: { order: Order; code: string }[] = [];
  const sink = new BlockingWritable<Order>((rows) => insertBatch(rows), {
    maxBufferSize: 5_000,
    batchSize: 500,
    retry: { maxRetries: 2, initialDelayMs: 10, maxDelayMs: 100 },
    fallbackToSequential: true, // after the retries, try the rows one by one to find the bad ones
    onDeadLetter: (rows: Order[], error: BackpressureError) => {
      // Here error.code is 'ERR_FLUSH_FAILED' and error.cause is SQLite's own error. Awaited: 'finish' waits for it.
      for (const order of rows) rejected.push({ order, code: error.code });
    },
  });

  await pipeline(createReadStream(file, { encoding: 'utf8' }), ndjson, sink);
  return { rejected };
}
// #endregion etl

export async function main(): Promise<{ inserted: number; rejected: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-etl-'));
  const file = join(dir, 'orders.ndjson');
  const orders: Order[] = Array.from({ length: 2_000 }, (_, i) => ({
    id: i + 1,
    customer: i === 1234 ? null : `c${i % 50}`, // one bad row: customer is NOT NULL
    total: i * 1.5,
  }));
  await writeFile(file, orders.map((order) => JSON.stringify(order)).join('\n'));
  const db = new Database(':memory:');
  try {
    const { rejected } = await loadOrders(file, db);
    const { n } = db.prepare('SELECT count(*) AS n FROM orders').get() as { n: number };
    return { inserted: n, rejected: rejected.map(({ order, code }) => `${order.id} ${code}`) };
  } finally {
    db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (require.main === module) main().then(console.log, console.error);
