import { join } from 'node:path';
import { runCli, summaryOf, tempDir } from './helpers';
import { selectAll } from './sqlite-db';

describe('sluice demo', () => {
  let dir: string;
  let cleanup: () => void;
  beforeAll(() => ({ dir, cleanup } = tempDir()));
  afterAll(() => cleanup());

  it('sends N events through a block sluice into SQLite; the row count equals delivered', async () => {
    const db = join(dir, 'demo.db');
    const result = await runCli(['demo', '--events', '30000', '--db', db, '--json', '--quiet'], dir);
    expect(result.code).toBe(0);
    const summary = summaryOf(result) as unknown as Record<string, number>;
    expect(summary).toMatchObject({
      offered: 30000,
      delivered: 30000,
      dropped: 0,
      deadLettered: 0,
      rowsInDatabase: 30000,
    });
    expect(summary.peakBuffer).toBeGreaterThan(0);
    expect(summary.peakBuffer).toBeLessThanOrEqual(10000);
    expect(selectAll(db, 'SELECT count(*) AS n, count(DISTINCT id) AS d FROM events')).toEqual([
      { n: 30000, d: 30000 },
    ]);
  });

  it('prints the human summary with the count check', async () => {
    const result = await runCli(['demo', '--events', '5000', '--db', join(dir, 'small.db'), '--quiet'], dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/offered 5,000, delivered 5,000, dropped 0, dead-lettered 0/);
    expect(result.stdout).toMatch(/peak buffer [\d,]+\/10,000, peak RSS [\d.]+ MiB/);
    expect(result.stdout).toMatch(/rows in the database: 5,000 = delivered/);
  });
});
