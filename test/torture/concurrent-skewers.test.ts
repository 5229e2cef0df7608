// Issue 3, case 3: two processes skew the same pid at once, 200 times.
//
// Two long-lived injector processes (support/injector.js) get their install requests at the same
// moment (each after its own random delay of up to 2 ms, so the overlap varies from total to
// none), with different offsets. Half the rounds without `replace`, half with it. Asserted:
//  - each call either succeeds or fails with EBUSY (the other one holds the target, or has
//    installed first): nothing else, no hang;
//  - the final state is exactly one consistent skew: inspectClock shows an active skew with one
//    of the two offsets, and the victim reads that very offset through clock_gettime,
//    gettimeofday and time (no mix of the two installs); without `replace` that is the single
//    call that succeeded;
//  - meanwhile the victim's spinning threads never read anything but real, or real + one of the
//    offsets;
//  - restoreClock clears it: the vDSO is byte-identical to a fresh process's again.
import { afterAll, expect, it } from 'vitest';
import { inspectClock, restoreClock } from '../../lib/index';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { readVdso } from '../support/vdso';
import { Budget, ENGINE_DEADLINE_MS, Problems, diagnoseHang, withDeadline } from './support/cycles';
import { closeAllDetached, parseSpinStats, report, spawnDetached } from './support/detached';
import { killAllInjectors, startInjector, type OpResult } from './support/injectors';
import { describeDiff, expectRawClock, parseRaw } from './support/raw';

afterAll(async () => {
  await killAllInjectors();
  await closeAllDetached();
});

const ROUNDS = 200;
const OFFSETS: readonly bigint[] = [-600_000_000_000n, 259_200_000_000_000n];

it(`two processes skewing the same pid at once, ${ROUNDS} times: EBUSY or success, then exactly one consistent skew`, { timeout: 300_000 }, async () => {
  const started = Date.now();
  const victim = await spawnDetached(tortureVictimPaths.torture);
  const reference = await spawnDetached(tortureVictimPaths.torture);
  const pristine = readVdso(reference.pid);
  expect(await victim.request(`spin 4 ${OFFSETS[0]} 8`)).toBe('spinning 4');
  expect(await victim.request(`expect ${OFFSETS[1]}`)).toBe('ok');
  const injectors = [await startInjector(), await startInjector()];

  const tally = { bothOk: 0, oneOk: 0, noneOk: 0 };
  const failures: string[] = [];
  const budget = new Budget(60); // healthy: ~5 s
  const budgetProblems = new Problems();
  for (let round = 0; round < ROUNDS; round++) {
    if (budget.spent(budgetProblems, round, ROUNDS, 'rounds')) {
      failures.push(...budgetProblems.list);
      break;
    }
    const replace = round % 2 === 1;
    const label = `round ${round} (replace: ${replace})`;
    const results: OpResult[] = await withDeadline(
      Promise.all(injectors.map((inj, i) => inj.run('install', victim.pid, OFFSETS[i], replace, Math.random() * 2000))),
      `${label}: the two installs`,
      ENGINE_DEADLINE_MS,
      () => diagnoseHang(victim.pid, injectors.map((i) => i.pid)),
    );
    for (const [i, r] of results.entries()) {
      if (!r.ok && r.code !== 'EBUSY') failures.push(`${label}: injector ${i}: ${r.code}: ${r.message}`);
    }
    const ok = results.filter((r) => r.ok).length;
    if (ok === 2) tally.bothOk++;
    else if (ok === 1) tally.oneOk++;
    else tally.noneOk++;
    if (!replace && ok === 2) failures.push(`${label}: both installs succeeded without replace`);

    const status = await inspectClock(victim.pid);
    if (status === null) {
      failures.push(`${label}: no skew installed in the end (results: ${results.map((r) => r.code ?? 'ok').join(', ')})`);
    } else {
      const offset = status.clocks.CLOCK_REALTIME;
      if (!status.active || !OFFSETS.includes(offset!)) {
        failures.push(`${label}: inconsistent final state ${JSON.stringify({ active: status.active, offset: `${offset}` })}`);
      } else {
        if (!replace && ok === 1 && offset !== OFFSETS[results.findIndex((r) => r.ok)]) {
          failures.push(`${label}: the skew in force (${offset}) is not the one that succeeded`);
        }
        try {
          expectRawClock(parseRaw(await victim.request('raw')), 0, offset!, label);
        } catch (err) {
          failures.push((err as Error).message.split('\n')[0]);
        }
      }
    }
    const removed = await restoreClock(victim.pid);
    const diff = describeDiff(readVdso(victim.pid), pristine);
    if (diff !== 'identical') failures.push(`${label}: after restoreClock (returned ${removed}) the vDSO is not pristine: ${diff}`);
    if (diff !== 'identical' || removed === false) {
      for (let i = 0; i < 5 && (await inspectClock(victim.pid)) !== null; i++) await restoreClock(victim.pid);
    }
  }
  const stats = parseSpinStats(await victim.request('stop'));
  report('concurrent-rounds', ROUNDS);
  report('concurrent-both-succeeded', tally.bothOk);
  report('concurrent-one-succeeded', tally.oneOk);
  report('concurrent-none-succeeded', tally.noneOk);
  report('concurrent-spinner-reads', stats.reads);
  report('concurrent-failures', failures.length);
  for (const f of failures.slice(0, 10)) console.log(`torture: concurrent-failure ${f}`);
  report('concurrent-seconds', ((Date.now() - started) / 1000).toFixed(1));
  expect(stats.bad, stats.firstBad).toBe(0n);
  expect(failures).toEqual([]);
});
