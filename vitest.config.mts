import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The torture suite is long and has its own command (npm run test:torture).
    exclude: ['test/torture/**', '**/node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    // Child processes, not worker threads: ptrace and signals act on whole
    // processes, and a worker thread would share its pid with the runner.
    pool: 'forks',
    // Tests ptrace victims and measure elapsed time; parallel files would
    // contend for CPUs and turn timing slack into flakes.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
