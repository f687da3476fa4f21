import { randomInt } from 'node:crypto';
import fc from 'fast-check';

/**
 * How sluice's property tests are run: how many cases, which seed, and how a
 * failure names what is needed to replay it.
 *
 * - `SLUICE_PROPERTY_RUNS`: cases per property (default {@link DEFAULT_RUNS}; the soak run sets 10000,
 *   Stryker 15).
 * - `SLUICE_PROPERTY_SEED`: the fast-check seed (default: a fresh random one per property).
 * - `SLUICE_PROPERTY_PATH`: with the seed, replays one shrunk counterexample directly (the path is in the
 *   failure message).
 *
 * - `SLUICE_PROPERTY_IGNORE`: a regular expression; violations whose text matches it are not recorded. For
 *   hunting one defect while others are known and open (never set in CI): e.g.
 *   `SLUICE_PROPERTY_IGNORE="'drain' after end|sizeOf was called"`.
 *
 * Every property prints its seed as it starts, and a failure message starts with the command that replays it.
 */

/** Cases per property when SLUICE_PROPERTY_RUNS is not set: what CI runs (see docs/quality.md for the timing). */
export const DEFAULT_RUNS = 2000;

function integerFromEnv(name: string, min: number): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min)
    throw new RangeError(`${name} must be an integer >= ${min}. Received ${raw}`);
  return value;
}

/** Runs per property: `SLUICE_PROPERTY_RUNS`, default {@link DEFAULT_RUNS}. */
export const PROPERTY_RUNS: number = integerFromEnv('SLUICE_PROPERTY_RUNS', 1) ?? DEFAULT_RUNS;

/** A fixed seed from `SLUICE_PROPERTY_SEED` (any 32-bit integer), or undefined for a fresh one per property. */
const FIXED_SEED: number | undefined = integerFromEnv('SLUICE_PROPERTY_SEED', -(2 ** 31));
const FIXED_PATH: string | undefined = process.env.SLUICE_PROPERTY_PATH || undefined;

/** Violations not to record (`SLUICE_PROPERTY_IGNORE`), or undefined. */
export const IGNORED_VIOLATIONS: RegExp | undefined = process.env.SLUICE_PROPERTY_IGNORE
  ? new RegExp(process.env.SLUICE_PROPERTY_IGNORE)
  : undefined;

/** The violations that count: all of them unless SLUICE_PROPERTY_IGNORE masks some. */
export function counted(violations: string[]): string[] {
  const ignored = IGNORED_VIOLATIONS;
  return ignored === undefined ? violations : violations.filter((v) => !ignored.test(v));
}

/** Jest timeout for one property test: generous, and growing with the number of runs. */
export function propertyTimeout(runs: number = PROPERTY_RUNS, msPerRun = 60): number {
  return 60_000 + runs * msPerRun;
}

/**
 * Checks `predicate` (which throws to fail) on `runs` cases drawn from `arbitrary`, with a printed seed.
 * On failure, throws fast-check's report (counterexample, shrunk) preceded by the replay command.
 */
export async function checkProperty<T>(
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void>,
  { runs = PROPERTY_RUNS }: { runs?: number } = {},
): Promise<void> {
  const { currentTestName, testPath } = expect.getState();
  const name = currentTestName ?? 'property';
  const file = testPath === undefined ? '' : testPath.slice(testPath.lastIndexOf('spec/'));
  const seed = FIXED_SEED ?? randomSeed();
  const ignoring =
    IGNORED_VIOLATIONS === undefined ? '' : `SLUICE_PROPERTY_IGNORE=${shellQuote(IGNORED_VIOLATIONS.source)} `;
  const replay = `${ignoring}SLUICE_PROPERTY_SEED=${seed} npx jest ${file} -t ${JSON.stringify(escapeRegExp(name))}`;
  const masked =
    IGNORED_VIOLATIONS === undefined ? '' : `\n  ignoring violations matching ${String(IGNORED_VIOLATIONS)}`;
  console.log(`property "${name}": seed ${seed}, ${runs} runs\n  replay: ${replay}${masked}`);
  const details = await fc.check(fc.asyncProperty(arbitrary, predicate), {
    seed,
    numRuns: runs,
    ...(FIXED_PATH === undefined ? {} : { path: FIXED_PATH }),
  });
  if (!details.failed) return;
  const report = (await fc.asyncDefaultReportMessage(details)) ?? 'property failed';
  const error = details.errorInstance;
  const why = error instanceof Error ? error.message : String(error);
  const path = details.counterexamplePath ?? '';
  throw new Error(
    `property failed with seed ${seed}\n  replay: ${replay}\n  only the shrunk counterexample: SLUICE_PROPERTY_PATH=${JSON.stringify(path)} SLUICE_PROPERTY_RUNS=1 ${replay}\n\n${why}\n\n${report}`,
  );
}

/** A seed independent of Math.random (which the runs stub). */
function randomSeed(): number {
  return randomInt(-(2 ** 31), 2 ** 31);
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
