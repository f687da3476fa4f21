import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackpressureStrategy, BackpressureTransform, BlockingWritable, createBackpressureStream } from '../lib';
import type { WriteCallback } from '../lib';

interface Row {
  id: number;
}

// These checks happen at compile time (ts-jest type-checks specs); the runtime parts keep them honest.
describe('public types', () => {
  test('a typed sluice fits pipeline() and still refuses other chunk types', async () => {
    const rows: Row[] = [];
    const sink = new BlockingWritable<Row>(async (batch) => void rows.push(...batch));
    await pipeline(Readable.from([{ id: 1 }, { id: 2 }]), sink);
    expect(rows).toEqual([{ id: 1 }, { id: 2 }]);

    const other = new BlockingWritable<Row>(async () => undefined);
    // @ts-expect-error a BlockingWritable<Row> takes rows, not strings
    other.write('not a row');
    const callback: WriteCallback = () => undefined;
    other.write({ id: 3 }, callback);
    await new Promise((resolve) => other.end(resolve));
  });

  test('strategy takes the enum or its string value', () => {
    expect(createBackpressureStream(async () => undefined, { strategy: 'block' })).toBeInstanceOf(BlockingWritable);
    expect(new BackpressureTransform({ strategy: BackpressureStrategy.SAMPLE }).getMetrics().state).toBe('normal');
  });
});
