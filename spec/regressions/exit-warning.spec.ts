import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * Issue 9, defect 13: held items died silently at exit. Five writes and no end(): the process
 * exited 0 with 5 items held, nothing flushed or warned. At exit with items held, a process warning
 * with code SLUICE_ITEMS_HELD_AT_EXIT names how many. Checked in a real child process
 * (fixtures/held-at-exit.js) that runs the built package: `npm run build` first (`npm test` does).
 */

const FIXTURE = join(__dirname, 'fixtures', 'held-at-exit.js');
const DIST = join(__dirname, '..', '..', 'dist', 'index.js');

interface Warning {
  name: string;
  code: string | undefined;
  message: string;
}

interface Outcome {
  warnings: Warning[];
  finished: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Runs the fixture to its natural exit and collects what it printed. */
function runFixture(count: number, mode: 'held' | 'ended'): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, String(count), mode], { stdio: ['ignore', 'pipe', 'ignore'] });
    const outcome: Outcome = { warnings: [], finished: false, code: null, signal: null };
    createInterface({ input: child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as { warning?: Warning; finished?: boolean };
      if (message.warning !== undefined) outcome.warnings.push(message.warning);
      if (message.finished === true) outcome.finished = true;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ ...outcome, code, signal }));
  });
}

describe('defect 13: items held at exit are reported', () => {
  beforeAll(() => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` (npm test does it first)`);
  });

  test.each([5, 12])(
    'defect 13: %i writes, no end(), natural exit: one SLUICE_ITEMS_HELD_AT_EXIT warning that names the count',
    async (count) => {
      const outcome = await runFixture(count, 'held');
      expect(outcome.signal).toBeNull();
      expect(outcome.finished).toBe(false);
      const held = outcome.warnings.filter((warning) => warning.code === 'SLUICE_ITEMS_HELD_AT_EXIT');
      expect(held).toHaveLength(1);
      expect(held[0]?.message).toMatch(new RegExp(`\\b${count}\\b`));
    },
  );

  test('defect 13 (control): end() and everything delivered before exit: no such warning', async () => {
    const outcome = await runFixture(5, 'ended');
    expect(outcome).toMatchObject({ finished: true, code: 0, signal: null });
    expect(outcome.warnings.filter((warning) => warning.code === 'SLUICE_ITEMS_HELD_AT_EXIT')).toEqual([]);
  });
});
