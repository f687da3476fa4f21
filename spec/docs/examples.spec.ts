import { main as quickStart } from '../../docs/examples/quick-start';

describe('docs/examples', () => {
  it('quick-start delivers every item with memory bounded', async () => {
    const result = await quickStart();
    expect(result.delivered).toBe(5_000);
    expect(result.maxHeld).toBeLessThanOrEqual(1_000);
  });
});
import { main as etl } from '../../docs/examples/etl-file-to-db';
describe('etl', () => {
  it('x', async () => {
    console.log(await etl());
  });
});
