// Issue 3, case 3: a child_process of this very Node process exits, or is killed, during the
// operation. For its own children the engine works from a forked helper process, so that libuv
// (which reaps children on SIGCHLD) never sees a ptrace stop; the child's death must still reach
// Node exactly once, as the truth. Asserted per trial:
//  - the operation completes or rejects with ESRCH, nothing else, no hang;
//  - Node's 'exit' event fires exactly once, with the true code (5) or signal (SIGKILL), and the
//    child is gone from /proc (no zombie).
import { readFileSync, readdirSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { TimeSkewError, restoreClock, skewClock } from '../../lib/index';
import { closeAllVictims, spawnVictim } from '../support/victim';
import { Budget, ENGINE_DEADLINE_MS, EngineHang, Problems, diagnoseHang, withDeadline } from './support/cycles';
import { procState, report } from './support/detached';

/**
 * After an engine hang, a forked helper (our child, a copy of this process) may still hold a dead
 * victim as its tracee, so that nobody can reap it. Kill such helpers, by pid, then close.
 */
afterEach(async () => {
  const ours = readFileSync('/proc/self/cmdline');
  for (const tid of readdirSync('/proc/self/task')) {
    for (const child of readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
      try {
        if (readFileSync(`/proc/${child}/cmdline`).equals(ours)) process.kill(Number(child), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  await Promise.race([closeAllVictims(), new Promise((r) => setTimeout(r, 15_000))]);
});

const A = -600_000_000_000n;
const CHILD_TRIALS = 24;

function classify(result: PromiseSettledResult<unknown>): string {
  if (result.status === 'fulfilled') return 'completed';
  const err = result.reason;
  if (err instanceof EngineHang) throw err;
  if (err instanceof TimeSkewError && err.code === 'ESRCH') return 'ESRCH';
  return `rejected with ${err instanceof TimeSkewError ? err.code : ''} ${(err as Error).message?.split('\n')[0]}`;
}

it(`a child_process that exits or is killed mid-operation: one true 'exit' event (${CHILD_TRIALS} trials)`, { timeout: 300_000 }, async () => {
  const started = Date.now();
  const outcomes = new Map<string, number>();
  const failures: string[] = [];
  const budget = new Budget(90);
  const budgetProblems = new Problems();
  for (let trial = 0; trial < CHILD_TRIALS; trial++) {
    if (budget.spent(budgetProblems, trial, CHILD_TRIALS, 'trials')) {
      failures.push(...budgetProblems.list);
      break;
    }
    const op = trial % 2 === 0 ? 'install' : 'restore';
    const how = trial % 4 < 2 ? 'exit' : 'kill';
    const victim = await spawnVictim('c');
    const exits: Array<[number | null, NodeJS.Signals | null]> = [];
    victim.child.on('exit', (code, signal) => exits.push([code, signal]));
    await victim.request(`spin 4 ${A}`);
    if (op === 'restore') await skewClock(victim.pid, { offset: A });
    // Operations on our own child go through a forked helper: tens of milliseconds.
    const delayMs = Math.random() * 40;
    const label = `child trial ${trial} (${op}, ${how} after ${delayMs.toFixed(1)} ms)`;
    const operation: Promise<unknown> = op === 'install' ? skewClock(victim.pid, { offset: A, replace: true }) : restoreClock(victim.pid);
    await new Promise((r) => setTimeout(r, delayMs));
    if (how === 'exit') victim.child.stdin!.write('exit 5\n');
    else victim.child.kill('SIGKILL');
    const [settled] = await Promise.allSettled([withDeadline(operation, `${label}: ${op}`, ENGINE_DEADLINE_MS, () => diagnoseHang(victim.pid))]);
    const outcome = classify(settled);
    outcomes.set(`${op}:${outcome}`, (outcomes.get(`${op}:${outcome}`) ?? 0) + 1);
    if (outcome !== 'completed' && outcome !== 'ESRCH') failures.push(`${label}: ${outcome}`);
    const code = await Promise.race([victim.exitCode(), new Promise<'none'>((r) => setTimeout(() => r('none'), 5_000))]);
    if (code === 'none') failures.push(`${label}: no 'exit' event within 5 s (state ${procState(victim.pid)})`);
    await new Promise((r) => setTimeout(r, 200)); // a second, false 'exit' would come now
    const expected = how === 'exit' ? [[5, null]] : [[null, 'SIGKILL']];
    if (JSON.stringify(exits) !== JSON.stringify(expected)) failures.push(`${label}: 'exit' events ${JSON.stringify(exits)}`);
    if (procState(victim.pid) !== undefined) failures.push(`${label}: still in /proc (state ${procState(victim.pid)})`);
  }
  report('target-exits-child-trials', CHILD_TRIALS);
  report('target-exits-child-outcomes', [...outcomes].map(([k, n]) => `${k}=${n}`).join(','));
  report('target-exits-child-failures', failures.length);
  for (const f of failures.slice(0, 10)) console.log(`torture: target-exits-child-failure ${f}`);
  report('target-exits-child-seconds', ((Date.now() - started) / 1000).toFixed(1));
  expect(failures).toEqual([]);
});
