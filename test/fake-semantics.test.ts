// What the fakes must preserve beyond the offset: the original return values, NULL arguments,
// and clocks that are not selected (CPU-time clocks, dynamic negative ids) passing through.
import { afterEach, expect, it } from 'vitest';
import { skewClock } from '../lib/index';
import { closeAllVictims, parseReadings, realNowNs, spawnVictim } from './support/victim';

afterEach(closeAllVictims);

const SECOND = 1_000_000_000n;
const EINVAL = 22n;

it('keeps return values, NULL handling and unselected clocks exactly as the original', async () => {
  const victim = await spawnVictim('c');
  const handle = await skewClock(victim.pid, {
    sec: -86_400,
    clockIds: ['CLOCK_REALTIME', 'CLOCK_MONOTONIC', 'CLOCK_BOOTTIME'],
  });
  const before = realNowNs();
  const edge = parseReadings(await victim.request('edge'));
  // An invalid clock id still fails with EINVAL through the original code.
  expect(edge.bad_clock_ret).toBe(-1n);
  expect(edge.bad_clock_errno).toBe(EINVAL);
  // gettimeofday(NULL, &tz) succeeds and fills tz, as the original does.
  expect(edge.gtod_null_tv_ret).toBe(0n);
  expect(edge.tz_minuteswest).toBe(0n);
  // time() returns and stores the same skewed value, also with a NULL pointer.
  for (const key of ['time_ret', 'time_stored', 'time_null']) {
    expect(edge[key] + 86_400n * SECOND).toBeGreaterThanOrEqual(before - 2n * SECOND);
    expect(edge[key] + 86_400n * SECOND).toBeLessThanOrEqual(realNowNs() + SECOND);
  }
  expect(edge.time_ret).toBe(edge.time_stored);
  // CPU-time clocks are not selected: a fresh process has used well under a day of CPU.
  expect(edge.process_cputime).toBeGreaterThanOrEqual(0n);
  expect(edge.process_cputime).toBeLessThan(60n * SECOND);
  expect(edge.thread_cputime).toBeGreaterThanOrEqual(0n);
  expect(edge.dynamic_clock_id).toBeLessThan(0n);
  expect(edge.dynamic_cputime).toBeGreaterThanOrEqual(0n);
  expect(edge.dynamic_cputime).toBeLessThan(60n * SECOND);

  // Selecting the process CPU clock skews it, while the dynamic id for the same clock is untouched.
  await handle.update({ clockIds: ['CLOCK_PROCESS_CPUTIME_ID'] });
  const skewed = parseReadings(await victim.request('edge'));
  expect(skewed.process_cputime).toBeLessThan(0n);
  expect(skewed.dynamic_cputime).toBeGreaterThanOrEqual(0n);
  await handle.restore();
});
