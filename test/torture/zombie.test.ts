// Issue 3, case 3: zombie targets.
//
// 1. A process that has exited and waits for its parent to reap it: every call gets a clear
//    error (ESRCH saying it is a zombie, with a hint), restoreClock says there is nothing, and
//    the zombie is left exactly as it was: its parent then reaps it with its true exit status.
// 2. The other kind of "zombie" in /proc: a live process whose main thread has exited
//    (pthread_exit) while its other threads run on. /proc/PID/stat shows Z for it and
//    /proc/PID/maps is empty (both describe the dead leader), yet it is a running program whose
//    threads read the clock. It must not be mistaken for a dead one: either it is skewed like
//    any process (its threads then read the skew), or the call fails with a documented code
//    other than ESRCH ("no such process" would be false) and a hint, leaving it untouched.
//    Which one it is, is reported.
import { readdirSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { TimeSkewError, inspectClock, restoreClock, skewClock } from '../../lib/index';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { readVdso } from '../support/vdso';
import { closeAllDetached, procState, report, spawnDetached } from './support/detached';
import { expectRawClock, parseRaw } from './support/raw';

afterAll(closeAllDetached);

const A = -600_000_000_000n;
const DOCUMENTED = ['ESRCH', 'EPERM', 'EINVAL', 'ENOTSUP', 'EBUSY', 'EIO'];

async function rejection(promise: Promise<unknown>): Promise<TimeSkewError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof TimeSkewError)) throw new Error(`expected a TimeSkewError, got ${String(err)}`);
  return err;
}

it('a zombie gets a clear ESRCH from every call and is left for its parent to reap', async () => {
  const parent = await spawnDetached(tortureVictimPaths.torture);
  const m = /^zombie (\d+)$/.exec(await parent.request('zombie'));
  expect(m).not.toBeNull();
  const zombie = Number(m![1]);
  for (let i = 0; i < 200 && procState(zombie) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 5));
  expect(procState(zombie)).toBe('Z');

  const err = await rejection(skewClock(zombie, { offset: A }));
  expect(err.code).toBe('ESRCH');
  expect(err.message).toMatch(/zombie/);
  expect(err.hint ?? '').not.toBe('');
  expect(err.pid).toBe(zombie);
  expect(await restoreClock(zombie)).toBe(false);
  expect((await rejection(inspectClock(zombie))).code).toBe('ESRCH');

  // Untouched: still a zombie, and its parent reaps it with the status it exited with (3).
  expect(procState(zombie)).toBe('Z');
  expect(await parent.request(`reap ${zombie}`)).toBe(`reaped ${zombie} 3`);
  expect(procState(zombie)).toBeUndefined();
  report('zombie-error', JSON.stringify({ code: err.code, message: err.message.split('\n')[0], hint: err.hint }));
});

it('a live process whose main thread has exited is skewed, or refused with a documented code', async () => {
  const victim = await spawnDetached(tortureVictimPaths.torture);
  const reference = await spawnDetached(tortureVictimPaths.torture);
  expect(await victim.request('leader_exit')).toBe('leader exiting');
  for (let i = 0; i < 200 && procState(victim.pid) !== 'Z'; i++) await new Promise((r) => setTimeout(r, 5));
  expect(procState(victim.pid)).toBe('Z');
  expect(await victim.request(`spin 2 ${A}`)).toBe('spinning 2'); // alive: it answers
  // Its memory through a live thread: the leader's /proc entries show no mappings any more.
  const liveThread = Number(readdirSync(`/proc/${victim.pid}/task`).find((tid) => Number(tid) !== victim.pid));
  const vdso = () => readVdso(liveThread);

  const before = vdso();
  const result = await skewClock(victim.pid, { offset: A }).then(
    (handle) => ({ handle, err: undefined }),
    (err: unknown) => ({ handle: undefined, err }),
  );
  if (result.handle) {
    expectRawClock(parseRaw(await victim.request('raw')), 0, A, 'skewed, leader gone');
    await result.handle.restore();
    expectRawClock(parseRaw(await victim.request('raw')), 0, 0n, 'restored, leader gone');
    expect(vdso().equals(readVdso(reference.pid))).toBe(true);
    report('zombie-leader', 'skewed and restored');
  } else {
    const err = result.err;
    expect(err).toBeInstanceOf(TimeSkewError);
    const e = err as TimeSkewError;
    report('zombie-leader', `refused: ${e.code}: ${e.message.split('\n')[0]} | hint: ${e.hint}`);
    expect(DOCUMENTED).toContain(e.code);
    expect(e.code, 'the process is alive: ESRCH would be false').not.toBe('ESRCH');
    expect(e.hint ?? '').not.toBe('');
    expect(vdso().equals(before)).toBe(true);
  }
  const stats = await victim.request('stop');
  expect(stats).toMatch(/ bad=0 /);
  expect(victim.exitStatus).toBeUndefined();
});
