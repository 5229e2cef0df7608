// Issue 3, case 3: the target exits, or is killed, during the operation (a target that is not our
// child; see child-exits.test.ts for a child_process of this Node process).
//
// Each trial starts an install or a restore on a victim whose threads spin on the clock, and makes
// the victim die at a random instant within the operation's duration: it calls _exit(7) itself
// (from a thread armed beforehand), or the test SIGKILLs it. Asserted:
//  - the operation either completes or rejects with ESRCH: a clean "no such process", never EIO
//    or EPERM or a hang;
//  - no zombie is left behind: while a tracer holds a dead thread, its parent cannot reap it, so
//    the real parent (test/victims/launcher.c) must get the true exit status, once, and
//    /proc/PID must vanish.
import { performance } from 'node:perf_hooks';
import { afterAll, expect, it } from 'vitest';
import { TimeSkewError, restoreClock, skewClock } from '../../lib/index';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { Budget, ENGINE_DEADLINE_MS, EngineHang, Problems, diagnoseHang, withDeadline } from './support/cycles';
import { closeAllDetached, procState, report, spawnDetached, tracers, waitFor } from './support/detached';

afterAll(closeAllDetached);

const A = -600_000_000_000n;
const DETACHED_TRIALS = 60;

type Outcome = 'completed' | 'ESRCH';

function classify(result: PromiseSettledResult<unknown>): Outcome | string {
  if (result.status === 'fulfilled') return 'completed';
  const err = result.reason;
  if (err instanceof EngineHang) throw err;
  if (err instanceof TimeSkewError && err.code === 'ESRCH') return 'ESRCH';
  return `rejected with ${err instanceof TimeSkewError ? err.code : ''} ${(err as Error).message?.split('\n')[0]}`;
}

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin: the operation runs on a libuv worker thread meanwhile
  }
}

/** How long an install and a restore take here, to spread the deaths over them. */
async function measureOperations(): Promise<{ install: number; restore: number }> {
  const v = await spawnDetached(tortureVictimPaths.torture);
  await v.request(`spin 4 ${A} 8`);
  let install = 0;
  let restore = 0;
  for (let i = 0; i < 10; i++) {
    let t = performance.now();
    const h = await skewClock(v.pid, { offset: A });
    install = Math.max(install, performance.now() - t);
    t = performance.now();
    await h.restore();
    restore = Math.max(restore, performance.now() - t);
  }
  await v.close();
  return { install, restore };
}

it(`a detached target that exits or is killed mid-operation: ESRCH or success, no zombie (${DETACHED_TRIALS} trials)`, { timeout: 300_000 }, async () => {
  const started = Date.now();
  const durations = await measureOperations();
  const outcomes = new Map<string, number>();
  const failures: string[] = [];
  const budget = new Budget(90);
  const budgetProblems = new Problems();
  for (let trial = 0; trial < DETACHED_TRIALS; trial++) {
    if (budget.spent(budgetProblems, trial, DETACHED_TRIALS, 'trials')) {
      failures.push(...budgetProblems.list);
      break;
    }
    const op = trial % 2 === 0 ? 'install' : 'restore';
    const how = trial % 4 < 2 ? 'exit' : 'kill';
    const victim = await spawnDetached(tortureVictimPaths.torture);
    await victim.request(`spin 4 ${A} 8`);
    if (op === 'restore') await skewClock(victim.pid, { offset: A });
    const delayMs = Math.random() * durations[op];
    const label = `trial ${trial} (${op}, ${how} after ${delayMs.toFixed(2)} ms)`;

    if (how === 'exit') victim.send(`exit_in ${Math.round(delayMs * 1000)} 7`);
    const operation: Promise<unknown> = op === 'install' ? skewClock(victim.pid, { offset: A, replace: true }) : restoreClock(victim.pid);
    if (how === 'kill') {
      busyWait(delayMs);
      process.kill(victim.pid, 'SIGKILL');
    }
    const [settled] = await Promise.allSettled([withDeadline(operation, `${label}: ${op}`, ENGINE_DEADLINE_MS, () => diagnoseHang(victim.pid))]);
    const outcome = classify(settled);
    outcomes.set(`${op}:${outcome}`, (outcomes.get(`${op}:${outcome}`) ?? 0) + 1);
    if (outcome !== 'completed' && outcome !== 'ESRCH') failures.push(`${label}: ${outcome}`);

    // The real parent (the launcher) reaps it and reports the true status; then it is gone.
    const status = await Promise.race([victim.exited, new Promise<'none'>((r) => setTimeout(() => r('none'), 5_000))]);
    if (status === 'none') {
      const state = procState(victim.pid);
      let tracer = '';
      try {
        tracer = ` traced by ${tracers(victim.pid).join(',')} (this process: ${process.pid})`;
      } catch {
        // gone meanwhile
      }
      failures.push(`${label}: not reaped after 5 s, state ${state}${tracer}`);
    } else {
      const expected = how === 'exit' ? { code: 7, signal: null } : { code: null, signal: 9 };
      if (JSON.stringify(status) !== JSON.stringify(expected)) failures.push(`${label}: exit status ${JSON.stringify(status)}`);
      try {
        await waitFor(`${label}: /proc entry gone`, () => procState(victim.pid) === undefined, 2_000);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    await victim.close(1_000);
  }
  report('target-exits-detached-trials', DETACHED_TRIALS);
  report('target-exits-detached-outcomes', [...outcomes].map(([k, n]) => `${k}=${n}`).join(','));
  report('target-exits-detached-failures', failures.length);
  for (const f of failures.slice(0, 10)) console.log(`torture: target-exits-failure ${f}`);
  report('target-exits-detached-seconds', ((Date.now() - started) / 1000).toFixed(1));
  expect(failures).toEqual([]);
});
