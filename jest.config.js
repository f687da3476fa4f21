const { availableParallelism } = require('node:os');

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/spec'],
  testMatch: ['**/*.spec.ts'],
  // ts-jest transpiles each file on its own (tsconfig.json sets isolatedModules): type errors are
  // `npm run typecheck`'s job, which covers spec/ too, and .ci/run runs it before the tests.
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
  },
  // The slow suites mostly wait on child processes and brokers, so at least two workers even on two
  // cores, where jest's default (cores - 1) would run every suite in band. Test names and resources
  // are unique per process (spec/brokers/support.ts uniqueName, spec/cli/pg-server.ts uniqueTable).
  maxWorkers: Math.max(2, availableParallelism() - 1),
  // Sinks and timers are faked per test; a real hang should fail fast, not stall CI.
  testTimeout: 20000,
};
