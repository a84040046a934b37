// Two projects: `unit` (pure, fast, no services) and `integration` (real Redis, S3 server, ffmpeg,
// pocketsphinx, browsers; the global setup starts private Redis + S3 servers on free ports).
const tsJest = ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }];
const moduleNameMapper = {
  '^@scribe-fleet/core$': '<rootDir>/packages/core/src/index.ts',
  '^@scribe-fleet/core/(.*)$': '<rootDir>/packages/core/src/$1',
  '^@scribe-fleet/worker$': '<rootDir>/apps/worker/src/index.ts',
  '^@scribe-fleet/producer$': '<rootDir>/apps/producer/src/index.ts',
  '^@scribe-fleet/infra-local$': '<rootDir>/infra/local/src/index.ts',
  '^@scribe-fleet/emulators$': '<rootDir>/packages/emulators/src/index.ts',
};
const common = { rootDir: __dirname, testEnvironment: 'node', transform: { '^.+\\.ts$': tsJest }, moduleNameMapper };

module.exports = {
  // Jest 30 reads testTimeout only at the top level.
  testTimeout: 120000,
  reporters: ['default', '<rootDir>/test/helpers/summary-reporter.js'],
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/packages/*/test/**/*.test.ts', '<rootDir>/apps/*/test/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      globalSetup: '<rootDir>/test/helpers/global-setup.ts',
      globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
    },
    // The chaos suite: worlds of real processes of its own (Redis, S3 server, workers, emulators),
    // killed and restarted. Smaller counts here; `npm run chaos` (CHAOS_FULL=1) runs the full ones.
    { ...common, displayName: 'chaos', testMatch: ['<rootDir>/test/chaos/**/*.chaos.ts'] },
  ],
};
