// A setup file: the test process (a forks-pool child) skews its own clock before the tests of
// this project run, and restores it after them. Date and everything built on
// gettimeofday/clock_gettime(CLOCK_REALTIME) see the offset; timers (CLOCK_MONOTONIC) do not.
import { afterAll, beforeAll } from 'vitest';
import { skewClock } from 'timeskew';

let handle;
beforeAll(async () => {
  handle = await skewClock(process.pid, { offset: '-1h' });
});
afterAll(async () => {
  await handle?.restore();
});
