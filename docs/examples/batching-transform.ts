/**
 * `BackpressureTransform`: items in, `T[]` batches out, for when the sink is
 * the next stage of a pipeline rather than a function. A slow reader counts
 * as a slow sink: its backpressure fills the buffer and the strategy engages.
 */
import { setTimeout as sleep } from 'node:timers/promises';
// #region transform
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackpressureStrategy, BackpressureTransform } from '../../lib';

interface Row {
  id: number;
}

export async function copyInBatches(source: Readable, insert: (rows: Row[]) => Promise<void>): Promise<number> {
  const batcher = new BackpressureTransform<Row>({
    strategy: BackpressureStrategy.BLOCK, // pause the source rather than drop
    maxBufferSize: 2_000,
    batchSize: 500,
  });
  let batches = 0;
  await pipeline(source, batcher, async function (batchesIn: AsyncIterable<Row[]>) {
    for await (const rows of batchesIn) {
      await insert(rows); // one round trip per batch
      batches++;
    }
  });
  return batches;
}
// #endregion transform

export async function main(): Promise<{ batches: number; rows: number; sizes: number[] }> {
  const sizes: number[] = [];
  const source = Readable.from(Array.from({ length: 2_100 }, (_, id) => ({ id })));
  const batches = await copyInBatches(source, async (rows) => {
    await sleep(1);
    sizes.push(rows.length);
  });
  return { batches, rows: sizes.reduce((a, b) => a + b, 0), sizes };
}

if (require.main === module) main().then(console.log, console.error);
