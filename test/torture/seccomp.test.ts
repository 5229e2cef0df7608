// Issue 3, case 3: a target under a seccomp filter that forbids mmap, mprotect and munmap.
//
// The filter kills the whole process (SECCOMP_RET_KILL_PROCESS) on any of the three, in every
// thread (TSYNC): if the engine ever made the target run one (a remote mmap for its code, a
// mprotect to write it), the victim would die on the spot. timeskew's code lives in the vDSO's
// own padding and is written from outside, so the target must keep running, skewed, restored.
import { readFileSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { readVdso } from '../support/vdso';
import { Budget, Problems, skewRestore } from './support/cycles';
import { closeAllDetached, parseSpinStats, report, spawnDetached } from './support/detached';
import { expectRawClock, parseRaw } from './support/raw';

afterAll(closeAllDetached);

const CYCLES = 300;
const A = -600_000_000_000n;
const B = 86_400_000_000_000n;

it(`a target whose seccomp filter kills it on mmap/mprotect/munmap survives ${CYCLES} skew/update/restore cycles`, async () => {
  const started = Date.now();
  const victim = await spawnDetached(tortureVictimPaths.torture);
  const reference = await spawnDetached(tortureVictimPaths.torture);
  // Threads first: creating one needs mmap, which the filter is about to forbid.
  expect(await victim.request(`spin 4 ${A} 8`)).toBe('spinning 4');
  expect(await victim.request(`expect ${B}`)).toBe('ok');
  expect(await victim.request('seccomp')).toBe('seccomp ok');
  expect(readFileSync(`/proc/${victim.pid}/status`, 'utf8')).toMatch(/^Seccomp:\s+2$/m);

  const problems = new Problems();
  const budget = new Budget(30);
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    if (budget.spent(problems, cycle, CYCLES)) break;
    await skewRestore(victim.pid, { offset: A }, problems, `cycle ${cycle}`, async (handle) => {
      if (cycle % 50 === 0) expectRawClock(parseRaw(await victim.request('raw')), 0, A, `cycle ${cycle}, skewed`);
      await handle.update({ offset: B });
    });
  }
  expectRawClock(parseRaw(await victim.request('raw')), 0, 0n, 'restored');
  const stats = parseSpinStats(await victim.request('stop'));
  report('seccomp-cycles', CYCLES);
  report('seccomp-reads', stats.reads);
  report('seccomp-bad', stats.bad);
  report('seccomp-problems', problems.list.length);
  problems.print('seccomp');
  report('seccomp-seconds', ((Date.now() - started) / 1000).toFixed(1));
  expect(victim.exitStatus, 'the victim died (SIGSYS = 31 means the filter caught a forbidden call)').toBeUndefined();
  expect(stats.bad, stats.firstBad).toBe(0n);
  expect(readVdso(victim.pid).equals(readVdso(reference.pid))).toBe(true);
  expect(problems.list).toEqual([]);
});
