import { join } from 'node:path';
import { collect, ndjsonLines, readRejects, startCli, summaryOf, tempDir, waitForStderr } from './helpers';
import { selectAll } from './sqlite-db';
import { existsSync } from 'node:fs';

describe('sluice ingest stopped by a signal: nothing read is lost', () => {
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => ({ dir, cleanup } = tempDir()));
  afterEach(() => cleanup());

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    '%s mid-run: stops reading, flushes, exits %i with inserted + rejected = lines read',
    async (signal, exitCode) => {
      const db = join(dir, 'out.db');
      const rejectsPath = join(dir, 'rejects.ndjson');
      const child = startCli(
        [
          'ingest',
          '-',
          '--into',
          `sqlite:${db}`,
          '--table',
          't',
          '--rejects',
          rejectsPath,
          '--json',
          '--status-interval',
          '100',
          '--batch-size',
          '64',
        ],
        dir,
      );
      const result = collect(child);
      // stdin stays open: the CLI has read everything written and waits for more when it is signalled.
      child.stdin.write(ndjsonLines(1, 3000, 250));
      await waitForStderr(child, /read=3000 /);
      child.kill(signal);
      const done = await result;

      expect(done.code).toBe(exitCode);
      const summary = summaryOf(done);
      expect(summary).toMatchObject({ status: 'interrupted', signal, read: 3000 });
      const inserted = selectAll<{ id: number }>(db, 'SELECT id FROM t ORDER BY id').map((row) => row.id);
      const rejected = existsSync(rejectsPath) ? readRejects(rejectsPath) : [];
      expect(inserted.length).toBe(summary.inserted);
      expect(rejected.length).toBe(summary.rejected);
      expect(inserted.length + rejected.length).toBe(3000);
      // Every line accounted for exactly once: ids inserted plus line numbers rejected cover 1..3000.
      const seen = new Set([...inserted, ...rejected.map((r) => r.line)]);
      expect(seen.size).toBe(3000);
      expect(rejected.every((r) => r.stage === 'parse' && r.line % 250 === 0)).toBe(true);
    },
  );
});
