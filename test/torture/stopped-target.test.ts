// Issue 3, case 3: a target stopped with SIGSTOP (job control) before the operation.
//
// timeskew stops threads with PTRACE_SEIZE + PTRACE_INTERRUPT, never SIGSTOP, and must hand a
// group-stopped process back group-stopped: after skewClock (and after restore) every thread is
// still in state T, nobody traces it, the skew is installed, and only our SIGCONT resumes it; its
// threads then read the skewed clock (and never a wrong value).
//
// A restore while stopped may find a thread parked inside the hook code (it was stopped there by
// SIGSTOP); the engine then leaves the code in place as an inactive pass-through, as documented:
// no clock is skewed any more, and the next operation, once the thread has left, removes it.
// That is asserted (no skew in force; one restoreClock after SIGCONT leaves the vDSO pristine)
// and counted.
import { afterAll, expect, it } from 'vitest';
import { inspectClock, restoreClock, skewClock } from '../../lib/index';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { readVdso } from '../support/vdso';
import {
  closeAllDetached,
  parseSpinStats,
  report,
  spawnDetached,
  threadStates,
  tracers,
  waitFor,
  type Detached,
} from './support/detached';
import { describeDiff, expectRawClock, parseRaw } from './support/raw';

afterAll(closeAllDetached);

const A = -600_000_000_000n;
const ROUNDS = 20;
const THREADS = 4;

const allStopped = (pid: number) => [...threadStates(pid).values()].every((s) => s === 'T');
const noneStopped = (pid: number) => [...threadStates(pid).values()].every((s) => s !== 'T' && s !== 't');

async function stop(v: Detached): Promise<void> {
  process.kill(v.pid, 'SIGSTOP');
  await waitFor('every thread group-stopped', () => allStopped(v.pid));
}

/** Still group-stopped, untraced, a while after the operation returned. */
async function expectStillStopped(v: Detached, label: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 20));
  expect([...threadStates(v.pid).values()], label).toEqual(new Array(THREADS + 1).fill('T'));
  expect(tracers(v.pid), label).toEqual(new Array(THREADS + 1).fill(0));
}

it(`a SIGSTOPped target stays stopped through skew and restore, ${ROUNDS} times; SIGCONT resumes it skewed`, async () => {
  const started = Date.now();
  const victim = await spawnDetached(tortureVictimPaths.torture);
  const reference = await spawnDetached(tortureVictimPaths.torture);
  expect(await victim.request(`spin ${THREADS} ${A} 8`)).toBe(`spinning ${THREADS}`);
  const pristine = readVdso(reference.pid);
  let retained = 0;

  for (let round = 0; round < ROUNDS; round++) {
    await stop(victim);
    const handle = await skewClock(victim.pid, { offset: A });
    await expectStillStopped(victim, `round ${round}, after skewClock`);
    expect((await inspectClock(victim.pid))?.clocks.CLOCK_REALTIME).toBe(A);
    expect(readVdso(victim.pid).equals(pristine)).toBe(false);

    process.kill(victim.pid, 'SIGCONT');
    await waitFor('resumed', () => noneStopped(victim.pid));
    expectRawClock(parseRaw(await victim.request('raw')), 0, A, `round ${round}, resumed`);

    await stop(victim);
    await handle.restore();
    await expectStillStopped(victim, `round ${round}, after restore`);
    const left = await inspectClock(victim.pid);
    if (left !== null) {
      retained++;
      expect(left.active, `round ${round}: restore left an active skew`).toBe(false);
      expect(left.clocks).toEqual({});
    }
    process.kill(victim.pid, 'SIGCONT');
    await waitFor('resumed', () => noneStopped(victim.pid));
    expectRawClock(parseRaw(await victim.request('raw')), 0, 0n, `round ${round}, restored`);
    if (left !== null) await restoreClock(victim.pid);
    const now = readVdso(victim.pid);
    const now2 = await inspectClock(victim.pid);
    const why = `round ${round} (inspect after restore: ${left === null ? 'null' : `active=${left.active}`}, now: ${now2 === null ? 'null' : `active=${now2.active}`})`;
    expect(describeDiff(now, pristine), why).toBe('identical');
  }
  const stats = parseSpinStats(await victim.request('stop'));
  expect(stats.bad, stats.firstBad).toBe(0n);
  expect(victim.exitStatus).toBeUndefined();
  expect(await restoreClock(victim.pid)).toBe(false);
  report('stopped-target-rounds', ROUNDS);
  report('stopped-target-reads', stats.reads);
  report('stopped-target-restores-leaving-inactive-code', `${retained}/${ROUNDS}`);
  report('stopped-target-seconds', ((Date.now() - started) / 1000).toFixed(1));
});
