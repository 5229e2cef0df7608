// `npm run test:torture`: the torture suite of issue 3 (test/torture/). Slow on purpose (tens of
// thousands of operations on real victims); bounded to well under 15 minutes on 2 cores. Not part
// of `npm test`: vitest.config.mts excludes test/torture/**.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/torture/**/*.test.ts'],
    // The common victims (C, Go) and the torture suite's own programs.
    globalSetup: ['test/support/global-setup.ts', 'test/support/build-torture-victims.ts'],
    // Child processes, not worker threads: ptrace and signals act on whole processes.
    pool: 'forks',
    // One file at a time: the cases measure timing and hammer both cores; running two at once
    // would turn the budget into flakes.
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
    // Counts are printed with console.log (`torture: name=value`); show them even on success.
    silent: false,
  },
});
