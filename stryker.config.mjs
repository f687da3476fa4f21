// Mutation testing with Stryker: `npm run test:mutation` (not run in CI; it takes a while on 2 cores).
// Reports: reports/mutation/mutation.html and reports/mutation/mutation.json. Results: docs/quality.md.

// Each mutant reruns the property tests that cover it; fewer runs per property keep a mutation run
// affordable (the default `npm test` uses 2000, the soak 10000). Override with SLUICE_PROPERTY_RUNS.
process.env.SLUICE_PROPERTY_RUNS ??= '15';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'jest',
  checkers: ['typescript'],
  // Only lib/ is type-checked per mutant (the specs and benchmarks are not what is mutated).
  tsconfigFile: 'tsconfig.build.json',
  mutate: ['lib/**/*.ts', '!lib/cli/**'],
  coverageAnalysis: 'perTest',
  // `--incremental` reuses a previous run's results for mutants whose code and covering tests did not change.
  incrementalFile: 'reports/stryker-incremental.json',
  // Stryker gives half of these slots to the type checker, which is idle most of the time: 4 means two jest runners.
  concurrency: 4,
  jest: {
    projectType: 'custom',
    configFile: 'jest.config.js',
    // The library's specs only: the CLI (excluded from mutation) and the docs specs run built code from dist/,
    // as does the exit-warning regression spec (a child process on dist/: it fails in the sandbox unless
    // dist/ was built first, and even then it cannot see a mutant). spec/conformance (581 tests over the hot
    // path) is left out for time: it would add ~20 s to every hot-path mutant's run.
    config: {
      testMatch: [
        '<rootDir>/spec/*.spec.ts',
        '<rootDir>/spec/strategies/**/*.spec.ts',
        '<rootDir>/spec/properties/**/*.spec.ts',
        '<rootDir>/spec/mutants/**/*.spec.ts',
        '<rootDir>/spec/regressions/**/*.spec.ts',
        '<rootDir>/spec/writev/**/*.spec.ts',
        '!**/spec/regressions/exit-warning.spec.ts',
      ],
      // A mutant that leaves a promise pending fails its spec after 3 s instead of reaching Stryker's own
      // timeout, which kills and restarts the jest worker (a few seconds each; hundreds of mutants hang).
      // The slowest spec in this set takes well under a second unmutated; the dry run would fail otherwise.
      testTimeout: 3000,
    },
    enableFindRelatedTests: false,
  },
  // A mutant that hangs a stream is caught by the specs' own liveness checks, so a short timeout is enough.
  timeoutMS: 4000,
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 85, break: null },
};
