// Issue 3, case 3: a thread storm. The victim creates and joins threads without pause (4 at a
// time) while the test skews and restores it. Stopping the world must catch threads born during
// the stop, and the skew must reach every thread, including ones created after it was installed.
//
// The victim checks each new thread against the "phase" in force when the thread was created:
// once skewClock() has resolved the test sets the phase to the offset, and every thread created
// from then on must read exactly real + offset; once restore() has resolved, real time exactly.
// While an operation runs the phase is "any" (real or skewed both fine).
import { afterAll, expect, it } from 'vitest';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { Budget, Problems, skewRestore } from './support/cycles';
import { closeAllDetached, report, spawnDetached, type Detached } from './support/detached';

afterAll(closeAllDetached);

const CYCLES = 300;
const A = -600_000_000_000n;

function parseStorm(line: string): { created: bigint; checked: bigint; bad: bigint; firstBad: string } {
  const m = /created=(\d+) checked=(\d+) bad=(\d+) first_bad=(\S+)/.exec(line);
  if (!m) throw new Error(`unexpected tstats line ${JSON.stringify(line)}`);
  return { created: BigInt(m[1]), checked: BigInt(m[2]), bad: BigInt(m[3]), firstBad: m[4] };
}

/** Waits until at least `n` more threads have been created (so some were born in this phase). */
async function letThreadsBeBorn(victim: Detached, n: bigint): Promise<void> {
  const start = parseStorm(await victim.request('tstats')).created;
  for (;;) {
    const now = parseStorm(await victim.request('tstats')).created;
    if (now >= start + n) return;
    await new Promise((r) => setTimeout(r, 1));
  }
}

it(`every thread, including ones created later, sees the skew (${CYCLES} cycles under a thread storm)`, { timeout: 300_000 }, async () => {
  const started = Date.now();
  const victim = await spawnDetached(tortureVictimPaths.torture);
  expect(await victim.request(`tstorm ${A}`)).toBe('tstorm started');
  let threadsAtMaxStop = 0;
  const problems = new Problems();
  const budget = new Budget(60);
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    if (budget.spent(problems, cycle, CYCLES)) break;
    expect(await victim.request('phase any')).toBe('phase ok');
    const r = await skewRestore(victim.pid, { offset: A }, problems, `cycle ${cycle}`, async () => {
      expect(await victim.request(`phase ${A}`)).toBe('phase ok');
      await letThreadsBeBorn(victim, 8n);
      expect(await victim.request('phase any')).toBe('phase ok');
    });
    threadsAtMaxStop = Math.max(threadsAtMaxStop, r.threads);
    expect(await victim.request('phase 0')).toBe('phase ok');
    await letThreadsBeBorn(victim, 8n);
  }
  const final = parseStorm(await victim.request('tstop'));
  report('thread-storm-cycles', CYCLES);
  report('thread-storm-threads-created', final.created);
  report('thread-storm-readings-checked', final.checked);
  report('thread-storm-bad', final.bad);
  report('thread-storm-most-threads-stopped-at-once', threadsAtMaxStop);
  report('thread-storm-problems', problems.list.length);
  problems.print('thread-storm');
  report('thread-storm-seconds', ((Date.now() - started) / 1000).toFixed(1));
  expect(final.bad, final.firstBad).toBe(0n);
  expect(final.created).toBeGreaterThan(16n);
  expect(victim.exitStatus).toBeUndefined();
  expect(problems.list).toEqual([]);
});
