import { contender, removeTempDirs } from './contenders';
import { workload } from './workloads/index';

/**
 * One run of one (workload, contender) pair, in a fresh process started by run.ts:
 * `node --expose-gc child.js <workload> <contender> [--quick]`. Prints one JSON line.
 */
async function main(): Promise<void> {
  const [workloadName, contenderName, ...flags] = process.argv.slice(2);
  if (workloadName === undefined || contenderName === undefined)
    throw new Error('usage: child <workload> <contender> [--quick]');
  try {
    const result = await workload(workloadName).run(contender(contenderName), { quick: flags.includes('--quick') });
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    // The disk contenders' logs: after the timed part, and also when the run failed.
    removeTempDirs();
  }
}

// run.js kills a run that exceeds its time limit with SIGTERM: remove its logs all the same.
process.on('SIGTERM', () => {
  removeTempDirs();
  process.exit(143);
});

main().then(
  // The reference controller leaves polling timers behind; a run is over when its result is out.
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
