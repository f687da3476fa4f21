/**
 * Migrating from a plain `Writable`: a sink written Node's way, `_writev(chunks, callback)`, becomes
 * a sluice by changing its base class. The class body stays as it is; the stream gains a hard memory
 * bound, graded states, batches of exactly `batchSize`, retries and dead letters.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlockingWritable } from '../../lib';

interface Row {
  id: number;
}

/** A database whose batch insert takes a millisecond. */
class Database {
  readonly rows: Row[] = [];
  readonly batchSizes: number[] = [];

  async insertMany(rows: Row[]): Promise<void> {
    await sleep(1);
    this.rows.push(...rows);
    this.batchSizes.push(rows.length);
  }
}

// #region before
class RowWriter extends Writable {
  readonly #db: Database;

  constructor(db: Database) {
    super({ objectMode: true });
    this.#db = db;
  }

  override _writev(chunks: { chunk: Row; encoding: BufferEncoding }[], callback: (error?: Error | null) => void): void {
    this.#db.insertMany(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }
}
// #endregion before

// #region after
class RowSink extends BlockingWritable<Row> {
  readonly #db: Database;

  constructor(db: Database) {
    super({ objectMode: true }); // sluice options go here too: { batchSize: 500, retry: { maxRetries: 5 }, ... }
    this.#db = db;
  }

  override _writev(chunks: { chunk: Row; encoding: BufferEncoding }[], callback: (error?: Error | null) => void): void {
    this.#db.insertMany(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }
}
// #endregion after

function* rows(count: number): Generator<Row> {
  for (let id = 0; id < count; id++) yield { id };
}

interface Run {
  stored: number;
  inOrder: boolean;
  largestBatch: number;
  batches: number;
}

function summary(db: Database, count: number): Run {
  return {
    stored: db.rows.length,
    inOrder: db.rows.length === count && db.rows.every((row, i) => row.id === i),
    largestBatch: Math.max(...db.batchSizes),
    batches: db.batchSizes.length,
  };
}

export async function main(count = 2_050): Promise<{ before: Run; after: Run; afterBatchSizes: number[] }> {
  const plainDb = new Database();
  await pipeline(Readable.from(rows(count)), new RowWriter(plainDb)); // batches: whatever piled up
  const sluiceDb = new Database();
  await pipeline(Readable.from(rows(count)), new RowSink(sluiceDb)); // batches: exactly batchSize (100)
  return { before: summary(plainDb, count), after: summary(sluiceDb, count), afterBatchSizes: sluiceDb.batchSizes };
}

if (require.main === module) main().then(console.log, console.error);
