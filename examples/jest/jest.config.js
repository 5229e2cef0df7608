// Two projects: `server` tests talk to a server whose clock the global setup skewed; `self` tests
// run with their own process skewed by a setup file.
module.exports = {
  globalSetup: '<rootDir>/global-setup.js',
  globalTeardown: '<rootDir>/global-teardown.js',
  projects: [
    {
      displayName: 'server',
      testEnvironment: 'node',
      testMatch: ['<rootDir>/server.test.js'],
    },
    {
      displayName: 'self',
      testEnvironment: 'node',
      testMatch: ['<rootDir>/self-skew.test.js'],
      setupFilesAfterEnv: ['<rootDir>/skew-self.setup.js'],
    },
  ],
};
