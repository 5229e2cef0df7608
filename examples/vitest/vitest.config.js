import { defineConfig } from 'vitest/config';

// Two projects: `server` tests talk to a server whose clock the global setup skewed; `self` tests
// run with their own process skewed by a setup file. timeskew acts on whole processes, so tests
// run in child processes (the `forks` pool), not worker threads that share the runner's pid.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'server',
          include: ['server.test.js'],
          globalSetup: ['./global-setup.js'],
          pool: 'forks',
        },
      },
      {
        test: {
          name: 'self',
          include: ['self-skew.test.js'],
          setupFiles: ['./skew-self.setup.js'],
          pool: 'forks',
        },
      },
    ],
  },
});
