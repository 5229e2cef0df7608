// Self-skew (issue 5, item 7): the test process skews its own clock, as a Jest or Vitest setup file
// would. A process cannot ptrace itself; the engine's helper process (our child) traces its parent.
// The reference clock is read by a freshly exec'ed child (`date`): exec drops the inherited patch.
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { type SkewHandle, inspectClock, restoreClock, skewClock } from '../lib/index';

const HOUR_MS = 3_600_000;
const SECOND_NS = 1_000_000_000n;

/** The real time in ms, read by an unskewed child process. */
function referenceMs(): number {
  return Number(BigInt(execFileSync('date', ['+%s%N'], { encoding: 'utf8' }).trim()) / 1_000_000n);
}

let handle: SkewHandle | undefined;
afterEach(async () => {
  await handle?.restore();
  handle = undefined;
  // Whatever happened, this process must leave with its own clock.
  await restoreClock(process.pid);
});

describe('skewClock(process.pid)', () => {
  it('moves Date.now() and new Date() of this process; a child it starts reads the real time', async () => {
    handle = await skewClock(process.pid, { offset: '-1h' });
    expect(handle.mode.gettimeofday).toBe('trampoline');
    const before = referenceMs();
    const now = Date.now();
    const date = new Date().getTime();
    const after = referenceMs();
    expect(now + HOUR_MS).toBeGreaterThanOrEqual(before - 2);
    expect(now + HOUR_MS).toBeLessThanOrEqual(after + 2);
    expect(date + HOUR_MS).toBeLessThanOrEqual(after + 2);
    expect((await inspectClock(process.pid))?.clocks).toEqual({ CLOCK_REALTIME: -3600n * SECOND_NS });

    await handle.update({ offset: '2h' });
    const later = Date.now() - 2 * HOUR_MS;
    expect(Math.abs(later - referenceMs())).toBeLessThan(1000);

    await handle.restore();
    expect(Math.abs(Date.now() - referenceMs())).toBeLessThan(1000);
    expect(await inspectClock(process.pid)).toBeNull();
  });

  it('with CLOCK_MONOTONIC, performance.now() and process.hrtime jump by the offset; Date.now() does not', async () => {
    // Forward only: libuv's timers run on this clock, and a backward jump would stall them.
    const perf0 = performance.now();
    const hr0 = process.hrtime.bigint();
    handle = await skewClock(process.pid, { offset: '5s', clockIds: ['CLOCK_MONOTONIC'] });
    const perf1 = performance.now();
    const hr1 = process.hrtime.bigint();
    expect(perf1 - perf0).toBeGreaterThanOrEqual(5000);
    expect(perf1 - perf0).toBeLessThan(6000);
    expect(hr1 - hr0).toBeGreaterThanOrEqual(5n * SECOND_NS);
    expect(hr1 - hr0).toBeLessThan(6n * SECOND_NS);
    expect(Math.abs(Date.now() - referenceMs())).toBeLessThan(1000);
    // Timers still work (they fire early after a forward jump, never late).
    await new Promise((r) => setTimeout(r, 20));

    await handle.restore();
    const perf2 = performance.now();
    expect(perf2 - perf1).toBeLessThan(-4000);
  });

  it('installs a rate and an absolute time into itself', async () => {
    handle = await skewClock(process.pid, { at: '2001-02-03T04:05:06Z', rate: 2 });
    const start = Date.now();
    expect(Math.abs(start - Date.parse('2001-02-03T04:05:06Z'))).toBeLessThan(1000);
    const ref0 = referenceMs();
    await new Promise((r) => setTimeout(r, 500));
    const elapsed = Date.now() - start;
    const real = referenceMs() - ref0;
    // Twice as fast (within the few ms that spawning `date` takes).
    expect(elapsed / real).toBeGreaterThan(1.8);
    expect(elapsed / real).toBeLessThan(2.2);
    expect((await inspectClock(process.pid))?.rate).toBe(2);
  });

  // The engine anchors a new table at the REAL "now" (a raw syscall): the caller may be the target
  // itself, whose vDSO clock is skewed, and a rate change must not lose the current skew.
  it('a rate change on a process that skews itself keeps its reading', async () => {
    handle = await skewClock(process.pid, { offset: '-1h' });
    await handle.update({ rate: 2 });
    expect(Math.abs(Date.now() + HOUR_MS - referenceMs())).toBeLessThan(1000);
  });
});
