// This process was skewed by skew-self.setup.js. The reference is a fresh `date` process: a
// program started with exec gets a fresh vDSO, so it reads the real time.
const { execFileSync } = require('node:child_process');

const HOUR_MS = 60 * 60 * 1000;
const realNowMs = () => Number(execFileSync('date', ['+%s%3N'], { encoding: 'utf8' }).trim());

test('Date.now() in this process is one hour behind the real time', () => {
  const real = realNowMs();
  expect(Math.abs(Date.now() - (real - HOUR_MS))).toBeLessThan(2000);
});

test('new Date() agrees', () => {
  const real = realNowMs();
  expect(Math.abs(new Date().getTime() - (real - HOUR_MS))).toBeLessThan(2000);
});

test('timers still run on time (CLOCK_MONOTONIC is not skewed)', async () => {
  const start = performance.now();
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(performance.now() - start).toBeGreaterThanOrEqual(95);
  expect(performance.now() - start).toBeLessThan(5000);
});
