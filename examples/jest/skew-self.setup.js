// A setup file: the test process skews its own clock before the tests of this project run, and
// restores it after them. Date, new Date() and everything built on gettimeofday/clock_gettime
// (CLOCK_REALTIME) see the offset; timers (CLOCK_MONOTONIC) are not affected.
const { skewClock } = require('timeskew');

let handle;
beforeAll(async () => {
  handle = await skewClock(process.pid, { offset: '-1h' });
});
afterAll(async () => {
  await handle?.restore();
});
