// The JS layers above the engine (skewClock, SkewHandle, restoreClock, inspectClock) against a fake
// binding: what reaches the engine, and how its answers and failures come back. No addon needed.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type {
  NativeBinding,
  NativeClockTable,
  NativeInstallRequest,
  NativeInstallResult,
  NativeRestoreResult,
  NativeStatus,
} from '../types/native';
import { SkewHandle, TimeSkewError, inspectClock, jump, restoreClock, skewClock } from '../lib/index';
import { setBindingForTesting } from '../lib/native';

const PID = 31337;

const report = { threads: 3, movedThreads: 0, pauseNs: 1000, maxThreadPauseNs: 900 };
const installResult: NativeInstallResult = {
  ...report,
  modes: { clock_gettime: 'trampoline', gettimeofday: 'trampoline', time: 'syscall' },
};
const restoreResult: NativeRestoreResult = { ...report, restored: true, codeRetained: false };

function nativeError(code: string, message = `${code} from the engine`): Error {
  return Object.assign(new Error(message), { code, pid: PID });
}

function fakeBinding() {
  return {
    arch: 'x64',
    version: '0.1.0-test',
    install: vi.fn(async (_request: NativeInstallRequest): Promise<NativeInstallResult> => installResult),
    update: vi.fn(async (_pid: number, _table: NativeClockTable): Promise<void> => undefined),
    restore: vi.fn(async (_pid: number): Promise<NativeRestoreResult> => restoreResult),
    restoreSync: vi.fn((_pid: number): NativeRestoreResult => restoreResult),
    inspect: vi.fn(async (_pid: number): Promise<NativeStatus | null> => null),
    planImage: vi.fn(),
  };
}

let fake: ReturnType<typeof fakeBinding>;
beforeEach(() => {
  fake = fakeBinding();
  setBindingForTesting(fake as unknown as NativeBinding);
});
afterEach(() => setBindingForTesting(undefined));

async function rejection(promise: Promise<unknown>): Promise<TimeSkewError> {
  const err = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TimeSkewError);
  return err as TimeSkewError;
}

describe('skewClock', () => {
  it('sends the resolved table to install and returns a handle describing it', async () => {
    const handle = await skewClock(PID, { offset: '-10m', clockIds: ['CLOCK_MONOTONIC', 'CLOCK_REALTIME'] });
    expect(fake.install).toHaveBeenCalledTimes(1);
    expect(fake.install.mock.calls[0]![0]).toEqual({
      pid: PID,
      mask: 0b11,
      offsetsNs: [-600_000_000_000n, -600_000_000_000n, ...Array<bigint>(10).fill(0n)],
      rate: 0n,
      keepMask: 0,
      absoluteMask: 0,
      replace: false,
      forceSyscall: false,
    });
    expect(handle.pid).toBe(PID);
    expect(handle.offsetNs).toBe(-600_000_000_000n);
    expect(handle.clockIds).toEqual(['CLOCK_REALTIME', 'CLOCK_MONOTONIC']);
    expect(handle.mode).toEqual(installResult.modes);
    expect(Object.isFrozen(handle.mode)).toBe(true);
    expect(handle.restored).toBe(false);
    expect(handle.lastReport).toBe(installResult);
  });

  it('passes replace and forceSyscall', async () => {
    await skewClock(PID, { sec: 1, replace: true, forceSyscall: true });
    expect(fake.install.mock.calls[0]![0]).toMatchObject({ replace: true, forceSyscall: true });
  });

  it('rejects a bad pid or bad options before touching the engine', async () => {
    expect((await rejection(skewClock(0, { offset: '1s' }))).code).toBe('EINVAL');
    expect((await rejection(skewClock(-1 as number, { sec: Infinity }))).message).toContain('pid');
    expect((await rejection(skewClock(PID, { offset: '1 s' }))).code).toBe('EINVAL');
    expect((await rejection(skewClock(PID, {}))).code).toBe('EINVAL');
    expect(fake.install).not.toHaveBeenCalled();
  });

  it('turns engine failures into TimeSkewError, sync or async', async () => {
    fake.install.mockRejectedValueOnce(nativeError('EBUSY'));
    const busy = await rejection(skewClock(PID, { offset: '1s' }));
    expect(busy.code).toBe('EBUSY');
    expect(busy.pid).toBe(PID);
    expect(busy.cause).toBeInstanceOf(Error);

    fake.install.mockImplementationOnce(() => {
      throw nativeError('ENOSPC');
    });
    expect((await rejection(skewClock(PID, { offset: '1s' }))).code).toBe('ENOSPC');

    fake.install.mockRejectedValueOnce(new TypeError('napi: expected bigint'));
    expect((await rejection(skewClock(PID, { offset: '1s' }))).code).toBe('EUNKNOWN');
  });
});

describe('SkewHandle.update', () => {
  it('rewrites the table, keeping what is not given', async () => {
    const handle = await skewClock(PID, { offset: '1s', clockIds: ['CLOCK_BOOTTIME'] });
    await handle.update({ offset: '-2s' });
    expect(fake.update).toHaveBeenLastCalledWith(PID, expect.objectContaining({ mask: 1 << 7 }));
    expect(fake.update.mock.calls[0]![1]).toMatchObject({ offsetsNs: expect.arrayContaining([-2_000_000_000n]) });
    expect(handle.offsetNs).toBe(-2_000_000_000n);
    expect(handle.clockIds).toEqual(['CLOCK_BOOTTIME']);

    await handle.update({ clockIds: ['CLOCK_TAI'] });
    expect(handle.offsetNs).toBe(-2_000_000_000n);
    expect(handle.clockIds).toEqual(['CLOCK_TAI']);
    expect(fake.install).toHaveBeenCalledTimes(1); // no re-injection
  });

  it('runs concurrent updates in order, each on top of the one before', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    const first = handle.update({ offset: '5s' });
    const second = handle.update({ clockIds: ['CLOCK_MONOTONIC'] });
    await Promise.all([first, second]);
    expect(handle.offsetNs).toBe(5_000_000_000n);
    expect(handle.clockIds).toEqual(['CLOCK_MONOTONIC']);
    expect(fake.update.mock.calls[1]![1]).toMatchObject({ mask: 0b10 });
  });

  it('rejects bad options without calling the engine, and keeps the state on failure', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    expect((await rejection(handle.update({ offset: 'later' }))).code).toBe('EINVAL');
    expect((await rejection(handle.update({ replace: true } as object))).code).toBe('EINVAL');
    expect(fake.update).not.toHaveBeenCalled();

    fake.update.mockRejectedValueOnce(nativeError('EIO'));
    expect((await rejection(handle.update({ offset: '9s' }))).code).toBe('EIO');
    expect(handle.offsetNs).toBe(1_000_000_000n);
    await handle.update({ offset: '2s' }); // a failure does not jam the queue
    expect(handle.offsetNs).toBe(2_000_000_000n);
  });

  it('rejects with EINVAL once restored', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    await handle.restore();
    const err = await rejection(handle.update({ offset: '2s' }));
    expect(err.code).toBe('EINVAL');
    expect(err.message).toContain('handle already restored');
  });

  it('marks the handle restored when the target has exited', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    fake.update.mockRejectedValueOnce(nativeError('ESRCH'));
    expect((await rejection(handle.update({ offset: '2s' }))).code).toBe('ESRCH');
    expect(handle.restored).toBe(true);
    await handle.restore();
    expect(fake.restore).not.toHaveBeenCalled();
  });
});

describe('SkewHandle.restore', () => {
  it('restores once, however often and concurrently it is called', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    const a = handle.restore();
    const b = handle.restore();
    expect(b).toBe(a);
    await Promise.all([a, b, handle.restore()]);
    await handle.restore();
    handle.restoreSync();
    expect(fake.restore).toHaveBeenCalledTimes(1);
    expect(fake.restoreSync).not.toHaveBeenCalled();
    expect(handle.restored).toBe(true);
    expect(handle.lastReport).toBe(restoreResult);
  });

  it('waits for queued updates first', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    let finishUpdate!: () => void;
    fake.update.mockImplementationOnce(() => new Promise<void>((resolve) => (finishUpdate = resolve)));
    const updating = handle.update({ offset: '2s' });
    const restoring = handle.restore();
    await new Promise((r) => setTimeout(r, 10));
    expect(fake.restore).not.toHaveBeenCalled();
    finishUpdate();
    await Promise.all([updating, restoring]);
    expect(fake.restore).toHaveBeenCalledTimes(1);
  });

  it('counts a target that has exited as restored', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    fake.restore.mockRejectedValueOnce(nativeError('ESRCH'));
    await handle.restore();
    expect(handle.restored).toBe(true);
  });

  it('can be retried after a failure', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    fake.restore.mockRejectedValueOnce(nativeError('EPERM'));
    expect((await rejection(handle.restore())).code).toBe('EPERM');
    expect(handle.restored).toBe(false);
    await handle.restore();
    expect(handle.restored).toBe(true);
    expect(fake.restore).toHaveBeenCalledTimes(2);
  });

  it('is what await using calls', async () => {
    {
      await using handle = await skewClock(PID, { offset: '1s' });
      expect(handle.restored).toBe(false);
    }
    expect(fake.restore).toHaveBeenCalledTimes(1);
  });
});

describe('SkewHandle.restoreSync', () => {
  it('restores once and makes restore() a no-op', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    handle.restoreSync();
    handle.restoreSync();
    await handle.restore();
    expect(fake.restoreSync).toHaveBeenCalledTimes(1);
    expect(fake.restore).not.toHaveBeenCalled();
    expect(handle.restored).toBe(true);
  });

  it('swallows ESRCH and throws anything else as TimeSkewError', async () => {
    const gone = await skewClock(PID, { offset: '1s' });
    fake.restoreSync.mockImplementationOnce(() => {
      throw nativeError('ESRCH');
    });
    gone.restoreSync();
    expect(gone.restored).toBe(true);

    const stuck = await skewClock(PID, { offset: '1s' });
    fake.restoreSync.mockImplementationOnce(() => {
      throw nativeError('ETIMEDOUT');
    });
    expect(() => stuck.restoreSync()).toThrow(TimeSkewError);
    expect(stuck.restored).toBe(false);
  });

  it('refuses to race an asynchronous restore', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    const restoring = handle.restore();
    expect(() => handle.restoreSync()).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    await restoring;
    handle.restoreSync(); // done by now: a no-op
    expect(fake.restoreSync).not.toHaveBeenCalled();
  });
});

describe('restoreClock', () => {
  it('reports whether something was removed', async () => {
    expect(await restoreClock(PID)).toBe(true);
    fake.restore.mockResolvedValueOnce({ ...restoreResult, restored: false });
    expect(await restoreClock(PID)).toBe(false);
  });

  it('answers false for a process that does not exist', async () => {
    fake.restore.mockRejectedValueOnce(nativeError('ESRCH'));
    expect(await restoreClock(PID)).toBe(false);
  });

  it('rejects other failures and bad pids', async () => {
    fake.restore.mockRejectedValueOnce(nativeError('EPERM'));
    expect((await rejection(restoreClock(PID))).code).toBe('EPERM');
    expect((await rejection(restoreClock(1.5))).code).toBe('EINVAL');
  });
});

describe('inspectClock', () => {
  it('answers null when nothing is installed', async () => {
    expect(await inspectClock(PID)).toBeNull();
  });

  it('names the skewed clocks and their offsets', async () => {
    const offsetsNs = Array<bigint>(12).fill(0n);
    offsetsNs[1] = -5n;
    offsetsNs[11] = 7n;
    offsetsNs[3] = 99n; // not selected by the mask: must not show up
    fake.inspect.mockResolvedValueOnce({
      mask: (1 << 1) | (1 << 11),
      offsetsNs,
      rate: 2n ** 31n,
      version: '0.1.0',
      layout: 1,
      installerPid: 1234,
      modes: installResult.modes,
      active: true,
    });
    expect(await inspectClock(PID)).toEqual({
      pid: PID,
      version: '0.1.0',
      installerPid: 1234,
      active: true,
      clocks: { CLOCK_MONOTONIC: -5n, CLOCK_TAI: 7n },
      rate: 1.5,
      driftPpm: 500_000,
      rateQ32: 2n ** 31n,
      frozen: false,
      mode: installResult.modes,
    });
  });

  it('rejects ESRCH for a process that does not exist', async () => {
    fake.inspect.mockRejectedValueOnce(nativeError('ESRCH'));
    expect((await rejection(inspectClock(PID))).code).toBe('ESRCH');
  });
});

function status(mask: number, skews: Record<number, bigint>, rate = 0n, installerPid = 1234): NativeStatus {
  const offsetsNs = Array<bigint>(12).fill(0n);
  for (const [id, skew] of Object.entries(skews)) offsetsNs[Number(id)] = skew;
  return { mask, offsetsNs, rate, version: '0.1.0', layout: 2, installerPid, modes: installResult.modes, active: true };
}

describe('clock models through the handle', () => {
  it('exposes the model installed', async () => {
    const handle = await skewClock(PID, { offsets: { CLOCK_REALTIME: '-10m', CLOCK_MONOTONIC: '5s' }, driftPpm: 500 });
    expect(fake.install.mock.calls[0]![0]).toMatchObject({ mask: 0b11, rate: 2147484n, keepMask: 0, absoluteMask: 0 });
    expect(handle.model).toEqual({
      clockIds: ['CLOCK_REALTIME', 'CLOCK_MONOTONIC'],
      offsets: { CLOCK_REALTIME: -600_000_000_000n, CLOCK_MONOTONIC: 5_000_000_000n },
      rate: 1 + 2147484 / 2 ** 32,
      driftPpm: expect.closeTo(500, 3),
      rateQ32: 2147484n,
      frozen: false,
    });
    expect(Object.isFrozen(handle.model.offsets)).toBe(true);
    expect(handle.offsetNs).toBe(-600_000_000_000n);
    expect(fake.inspect).not.toHaveBeenCalled(); // every skew was known
  });

  it('reads back the skew of an `at` install from the target', async () => {
    fake.inspect.mockResolvedValueOnce(status(1, { 0: -123n }));
    const handle = await skewClock(PID, { at: '2000-01-01T00:00:00Z', freeze: true });
    expect(fake.install.mock.calls[0]![0]).toMatchObject({ mask: 1, absoluteMask: 1, rate: -(2n ** 32n) });
    expect(fake.install.mock.calls[0]![0].offsetsNs[0]).toBe(946_684_800_000_000_000n);
    expect(handle.offsets).toEqual({ CLOCK_REALTIME: -123n });
    expect(handle.frozen).toBe(true);
    expect(handle.rate).toBe(0);
  });

  it('a rate-only update keeps every clock; the handle re-reads the skews of clocks that drifted', async () => {
    const handle = await skewClock(PID, { offset: '1h', clockIds: ['CLOCK_REALTIME', 'CLOCK_BOOTTIME'] });
    await handle.update({ rate: 2 });
    expect(fake.update.mock.calls[0]![1]).toMatchObject({ mask: 0b1000_0001, keepMask: 0b1000_0001, rate: 2n ** 32n, absoluteMask: 0 });
    expect(fake.inspect).not.toHaveBeenCalled(); // rate was 1 until now: the skews are still 1 h
    expect(handle.offsets).toEqual({ CLOCK_REALTIME: 3_600_000_000_000n, CLOCK_BOOTTIME: 3_600_000_000_000n });

    fake.inspect.mockResolvedValueOnce(status(0b1000_0001, { 0: 3_601_000_000_000n, 7: 3_601_000_000_001n }, 0n));
    await handle.update({ freeze: false });
    expect(fake.update.mock.calls[1]![1]).toMatchObject({ keepMask: 0b1000_0001, rate: 0n });
    expect(handle.offsets).toEqual({ CLOCK_REALTIME: 3_601_000_000_000n, CLOCK_BOOTTIME: 3_601_000_000_001n });
    expect(handle.rate).toBe(1);
  });

  it('jump() adds `by` to the known skews at rate 1, without reading the target', async () => {
    const handle = await skewClock(PID, { offsets: { CLOCK_REALTIME: '1s', CLOCK_MONOTONIC: '2s' } });
    await handle.jump('-500ms');
    expect(fake.inspect).not.toHaveBeenCalled();
    expect(fake.update.mock.calls[0]![1]).toMatchObject({ keepMask: 0, rate: 0n });
    expect(handle.offsets).toEqual({ CLOCK_REALTIME: 500_000_000n, CLOCK_MONOTONIC: 1_500_000_000n });
    await handle.jump(1n, ['CLOCK_TAI']);
    expect(handle.offsets).toEqual({ CLOCK_REALTIME: 500_000_000n, CLOCK_MONOTONIC: 1_500_000_000n, CLOCK_TAI: 1n });
    expect(fake.update.mock.calls[1]![1]).toMatchObject({ keepMask: 0b11 });
    expect((await rejection(handle.jump('later'))).code).toBe('EINVAL');
  });

  it('jump() reads the current skew from the target while a rate is in force', async () => {
    const handle = await skewClock(PID, { offset: '1s', rate: 3 });
    fake.inspect.mockResolvedValueOnce(status(1, { 0: 7_000_000_000n }, 2n ** 33n));
    await handle.jump('1s');
    expect(fake.update.mock.calls[0]![1]).toMatchObject({ keepMask: 0, rate: 2n ** 33n });
    expect(fake.update.mock.calls[0]![1].offsetsNs[0]).toBe(8_000_000_000n);
  });

  it('jump(pid) installs when the process has no skew and adopts the one it has', async () => {
    const installed = await jump(PID, { by: '10m' });
    expect(fake.install.mock.calls[0]![0]).toMatchObject({ mask: 1, offsetsNs: expect.arrayContaining([600_000_000_000n]) });
    expect(installed.offsetNs).toBe(600_000_000_000n);

    fake.inspect.mockResolvedValueOnce(status(0b11, { 0: 5n, 1: 6n }));
    const adopted = await jump(PID, { by: 10n });
    expect(adopted).toBeInstanceOf(SkewHandle);
    expect(fake.install).toHaveBeenCalledTimes(1);
    expect(fake.update.mock.calls[0]![1]).toMatchObject({ mask: 0b11, keepMask: 0 });
    expect(adopted.offsets).toEqual({ CLOCK_REALTIME: 15n, CLOCK_MONOTONIC: 16n });
    await adopted.restore();
    expect(fake.restore).toHaveBeenCalledWith(PID);
  });
});

describe('SkewHandle.update on an engine that updates synchronously', () => {
  const location = { vdsoStart: 0x7fff0000_0000, blobOffset: 6720, installerPid: 4242 };
  let sync: ReturnType<typeof fakeBinding> & {
    updateSync: ReturnType<typeof vi.fn>;
    locate: ReturnType<typeof vi.fn>;
  };
  beforeEach(() => {
    sync = Object.assign(fakeBinding(), {
      updateSync: vi.fn((_pid: number, _where: unknown, _table: NativeClockTable): bigint[] | undefined => undefined),
      locate: vi.fn((_pid: number) => location),
    });
    sync.install.mockResolvedValue({ ...installResult, location });
    setBindingForTesting(sync as unknown as NativeBinding);
  });

  it('is done before update() returns, at the location the install reported', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    const done = handle.update({ offset: '2s' });
    expect(sync.updateSync).toHaveBeenCalledTimes(1);
    expect(sync.updateSync.mock.calls[0]![1]).toEqual(location);
    expect(handle.offsetNs).toBe(2_000_000_000n);
    await done;
    handle.updateSync({ offset: '3s' });
    expect(handle.offsetNs).toBe(3_000_000_000n);
    expect(sync.update).not.toHaveBeenCalled();
    expect(sync.locate).not.toHaveBeenCalled();
  });

  it('locates the skew once for a handle that did not install it', async () => {
    sync.install.mockResolvedValue(installResult);
    const handle = await skewClock(PID, { offset: '1s' });
    handle.updateSync({ offset: '2s' });
    handle.updateSync({ offset: '3s' });
    expect(sync.locate).toHaveBeenCalledTimes(1);
  });

  it('takes the skews of kept clocks from the engine, without an inspect', async () => {
    const handle = await skewClock(PID, { offset: '1s', rate: 2 });
    const skews = new Array<bigint>(12).fill(0n);
    skews[0] = 5_000_000_000n;
    sync.updateSync.mockReturnValueOnce(skews);
    await handle.update({ rate: 1 });
    expect(handle.offsets).toEqual({ CLOCK_REALTIME: 5_000_000_000n });
    expect(sync.inspect).not.toHaveBeenCalled();
  });

  it('updateSync() refuses to overtake pending work (EBUSY); update() queues behind it', async () => {
    const handle = await skewClock(PID, { offset: '1s', rate: 2 });
    sync.inspect.mockResolvedValueOnce(null);
    const jumping = handle.jump('1s'); // reads the target first: stays pending
    expect(() => handle.updateSync({ offset: '5s' })).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    const queued = handle.update({ offset: '6s' });
    await jumping;
    await queued;
    expect(handle.offsetNs).toBe(6_000_000_000n);
    handle.updateSync({ offset: '7s' }); // idle again
  });

  it('an ESRCH from the engine marks the handle restored', async () => {
    const handle = await skewClock(PID, { offset: '1s' });
    sync.updateSync.mockImplementationOnce(() => {
      throw nativeError('ESRCH');
    });
    expect((await rejection(handle.update({ offset: '2s' }))).code).toBe('ESRCH');
    expect(handle.restored).toBe(true);
    expect(() => handle.updateSync({ offset: '3s' })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
