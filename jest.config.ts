import type { Config } from 'jest';

const config: Config = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/test/unit/**/*.test.ts', '**/test/integration/**/*.test.ts'],
  // Benchmarks are run by `npm run bench`, never by `npm test`.
  testPathIgnorePatterns: ['/node_modules/', '/test/bench/'],
  // Transpile only: types are checked once for the whole project by `npm run typecheck` (CI runs it before the tests).
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', isolatedModules: true }] },
  testTimeout: 20_000,
  reporters: ['default', '<rootDir>/test/summary-reporter.js'],
  // Integration suites start real servers; two workers suit the 2-core machines this runs on.
  maxWorkers: 2,
};

export default config;
