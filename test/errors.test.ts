// Bad input gets a TimeSkewError with a code, the pid and a hint, and the target is left exactly
// as it was (its vDSO bytes are compared before and after).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TimeSkewError, inspectClock, restoreClock, skewClock, type SkewOptions } from '../lib/index';
import { closeAllVictims, spawnVictim } from './support/victim';
import { readVdso } from './support/vdso';

afterEach(closeAllVictims);

async function expectCode(promise: Promise<unknown>, code: string, pid?: number): Promise<TimeSkewError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TimeSkewError);
  const error = err as TimeSkewError;
  expect(error.code, error.message).toBe(code);
  if (pid !== undefined) expect(error.pid).toBe(pid);
  expect(error.hint ?? '').not.toBe('');
  return error;
}

function unusedPid(): number {
  for (let pid = 4_000_000; pid > 1000; pid -= 7919) {
    if (!existsSync(`/proc/${pid}`)) return pid;
  }
  throw new Error('no unused pid found');
}

describe('pids', () => {
  it('a pid that does not exist is ESRCH', async () => {
    const pid = unusedPid();
    await expectCode(skewClock(pid, { sec: 1 }), 'ESRCH', pid);
    await expectCode(inspectClock(pid), 'ESRCH', pid);
    expect(await restoreClock(pid)).toBe(false);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '123', null, undefined, 2 ** 40])(
    'pid %s is EINVAL',
    async (pid) => {
      await expectCode(skewClock(pid as number, { sec: 1 }), 'EINVAL');
      await expectCode(restoreClock(pid as number), 'EINVAL');
      await expectCode(inspectClock(pid as number), 'EINVAL');
    },
  );

  it('a kernel thread (pid 2, kthreadd) is ENOTSUP: it has no vDSO', async () => {
    await expectCode(skewClock(2, { sec: 1 }), 'ENOTSUP', 2);
  });

  it('a zombie is ESRCH', async () => {
    const victim = await spawnVictim('c');
    // Stop reading its exit status: Node reaps children only through libuv's SIGCHLD handler,
    // which runs on this thread, so until we yield the exited victim stays a zombie.
    const pid = victim.pid;
    victim.child.stdin!.write('exit 0\n');
    const deadline = Date.now() + 10_000;
    // Busy-wait without yielding to the event loop (yielding would let libuv reap it).
    while (Date.now() < deadline) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) break;
    }
    const error = await expectCode(skewClock(pid, { sec: 1 }), 'ESRCH', pid);
    expect(error.message).toMatch(/zombie|exited/);
  });
});

describe('options', () => {
  const bad: Array<[string, unknown]> = [
    ['an unknown clock name', { sec: 1, clockIds: ['CLOCK_WALL'] }],
    ['an empty clock list', { sec: 1, clockIds: [] }],
    ['a malformed duration', { offset: '10 minutes' }],
    ['a duration without a unit', { offset: '10' }],
    ['both offset forms', { sec: 1, offset: '1s' }],
    ['no offset at all', {}],
    ['an unknown option', { sec: 1, speed: 2 }],
    ['a non-integer nsec', { nsec: 0.5 }],
    ['an offset beyond the int64 range', { offset: 2n ** 63n }],
    ['options that are not an object', 'fast'],
  ];

  it.each(bad)('%s is EINVAL and leaves the target untouched', async (_what, options) => {
    const victim = await spawnVictim('c');
    const before = readVdso(victim.pid);
    await expectCode(skewClock(victim.pid, options as SkewOptions), 'EINVAL', victim.pid);
    expect(readVdso(victim.pid).equals(before)).toBe(true);
    expect(await inspectClock(victim.pid)).toBeNull();
  });
});

describe('a process that is already skewed', () => {
  it('is EBUSY without replace, and keeps its skew untouched', async () => {
    const victim = await spawnVictim('c');
    const handle = await skewClock(victim.pid, { sec: -600 });
    const before = readVdso(victim.pid);
    const error = await expectCode(skewClock(victim.pid, { sec: 5 }), 'EBUSY', victim.pid);
    expect(error.hint).toMatch(/replace/);
    expect(readVdso(victim.pid).equals(before)).toBe(true);
    expect((await inspectClock(victim.pid))?.clocks).toEqual({ CLOCK_REALTIME: -600_000_000_000n });
    await handle.restore();
  });

  it('update() after restore is rejected', async () => {
    const victim = await spawnVictim('c');
    const handle = await skewClock(victim.pid, { sec: -600 });
    await handle.restore();
    await handle.restore();
    await expect(handle.update({ sec: 1 })).rejects.toBeInstanceOf(TimeSkewError);
  });

  it('update() of a skew that was removed, or removed and installed anew by another process, is ESRCH', async () => {
    const victim = await spawnVictim('c');
    const handle = await skewClock(victim.pid, { sec: -600 });
    expect(await restoreClock(victim.pid)).toBe(true);
    expect(await handle.update({ sec: 1 }).catch((e: unknown) => e)).toMatchObject({ code: 'ESRCH', pid: victim.pid });
    expect(handle.restored).toBe(true);

    // The state is back at the same place, with the same layout, but another process put it there.
    const mine = await skewClock(victim.pid, { sec: -60 });
    expect(await restoreClock(victim.pid)).toBe(true);
    const other = spawn(process.execPath, [path.join(__dirname, 'support', 'skewer.js'), String(victim.pid)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(other.stdout!, 'data')) as [Buffer];
      expect(line.toString()).toMatch(/^skewed /);
      expect(() => mine.updateSync({ sec: -120 })).toThrow(expect.objectContaining({ code: 'ESRCH' }));
      expect((await inspectClock(victim.pid))?.clocks).toEqual({ CLOCK_REALTIME: -600_000_000_000n });
    } finally {
      other.stdin!.end();
      await once(other, 'exit');
      await restoreClock(victim.pid);
    }
  });
});
