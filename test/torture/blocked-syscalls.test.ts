// Issue 3, case 3: threads blocked in system calls while the target is skewed and restored.
//
// test/victims/blocker.c parks six threads in read() on a pipe, nanosleep(), epoll_wait() with a
// timeout, a timed futex wait, an untimed futex wait and accept(), then wakes the event-driven ones
// (a byte, a FUTEX_WAKE, a connection) after the same delay. Meanwhile the test skews and restores
// the process as fast as it can, so each call is interrupted by ptrace many times. Every call must
// return exactly what it would have returned untouched: the timed ones after their full timeout
// (0, or ETIMEDOUT for the futex), the others with their event, after the waker acted, and none
// with EINTR. (The untimed futex may also return EAGAIN once the word has changed: futex's own
// contract, see blocker.c.) The victim measures and judges (raw CLOCK_MONOTONIC) per call.
import { afterAll, expect, it } from 'vitest';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { Problems, skewRestore } from './support/cycles';
import { closeAllDetached, report, spawnDetached } from './support/detached';

afterAll(closeAllDetached);

const ROUNDS = 12;
const BLOCK_MS = 400;
const A = -600_000_000_000n;

it(`blocked read, nanosleep, epoll_wait, futex and accept neither return early nor fail with EINTR (${ROUNDS} rounds)`, async () => {
  const started = Date.now();
  const victim = await spawnDetached(tortureVictimPaths.blocker);
  const bad: string[] = [];
  const problems = new Problems();
  let operations = 0;
  const verdicts = new Map<string, Map<string, number>>();
  for (let round = 0; round < ROUNDS; round++) {
    expect(await victim.request(`block ${BLOCK_MS}`)).toBe('blocking');
    // Skew and restore until the calls are due (and a little beyond, to catch the wake-ups).
    const until = Date.now() + BLOCK_MS + 50;
    while (Date.now() < until) {
      await skewRestore(victim.pid, { offset: A }, problems, `round ${round}`);
      operations += 2;
    }
    const line = await victim.request('result', 10_000);
    expect(line).toMatch(/^blocked /);
    for (const item of line.slice('blocked '.length).split(' ')) {
      const at = item.indexOf('=');
      const call = item.slice(0, at);
      const verdict = item.slice(at + 1);
      const kind = verdict.split(':')[0];
      const counts = verdicts.get(call) ?? new Map<string, number>();
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
      verdicts.set(call, counts);
      if (kind !== 'ok') bad.push(`round ${round}: ${call}=${verdict}`);
    }
  }
  report('blocked-syscalls-rounds', ROUNDS);
  report('blocked-syscalls-operations', operations);
  for (const [call, counts] of verdicts) {
    report(`blocked-syscalls-${call}`, [...counts].map(([k, n]) => `${k}:${n}`).join(','));
  }
  for (const b of bad.slice(0, 12)) console.log(`torture: blocked-syscalls-bad ${b}`);
  report('blocked-syscalls-problems', problems.list.length);
  problems.print('blocked-syscalls');
  report('blocked-syscalls-seconds', ((Date.now() - started) / 1000).toFixed(1));
  expect(victim.exitStatus).toBeUndefined();
  expect(bad).toEqual([]);
  expect(problems.list).toEqual([]);
});
