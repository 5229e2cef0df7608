// Public entry point. Each function validates everything it can before the engine touches the
// target, and every failure, synchronous or not, arrives as a rejected promise of TimeSkewError.

import type { HookMode, HookedFunction } from '../types/native';
import { CLOCK_IDS, type ClockId, maskToClockIds } from './clocks';
import { TimeSkewError } from './errors';
import { SkewHandle } from './handle';
import * as native from './native';
import { type SkewOptions, resolveSkew, validatePid } from './options';

export { CLOCK_IDS, type ClockId };
export { formatDuration, parseDuration } from './duration';
export { TimeSkewError, type TimeSkewErrorCode } from './errors';
export { SkewHandle, type OperationReport } from './handle';
export type { SkewOptions, UpdateOptions } from './options';
export type { HookMode, HookedFunction } from '../types/native';

/** What inspectClock() finds installed in a process. */
export interface ClockStatus {
  pid: number;
  /** timeskew version that installed the skew (possibly another copy than this one). */
  version: string;
  installerPid: number;
  /** false when the skew was restored but its inactive code had to stay in the target. */
  active: boolean;
  /** Offset in nanoseconds for each skewed clock. */
  clocks: Partial<Record<ClockId, bigint>>;
  mode: Record<HookedFunction, HookMode>;
}

/** Skews the clocks of process `pid` until the returned handle is restored. */
export async function skewClock(pid: number, options: SkewOptions): Promise<SkewHandle> {
  const target = validatePid(pid);
  const skew = resolveSkew(target, options);
  const result = await native.install({
    pid: target,
    ...skew.table,
    replace: skew.replace,
    forceSyscall: skew.forceSyscall,
  });
  return new SkewHandle(target, skew, result);
}

/**
 * Removes whatever skew is installed in `pid`, whoever installed it (e.g. a crashed run's leftover).
 * Resolves true when something was removed, false when there was nothing or no such process.
 */
export async function restoreClock(pid: number): Promise<boolean> {
  const target = validatePid(pid);
  try {
    return (await native.restore(target)).restored;
  } catch (err) {
    if (err instanceof TimeSkewError && err.code === 'ESRCH') return false;
    throw err;
  }
}

/** Reads the skew installed in `pid` without stopping it; null when there is none. Rejects ESRCH for no such process. */
export async function inspectClock(pid: number): Promise<ClockStatus | null> {
  const target = validatePid(pid);
  const status = await native.inspect(target);
  if (status === null) return null;
  const clocks: Partial<Record<ClockId, bigint>> = {};
  for (const name of maskToClockIds(status.mask)) {
    const offset = status.offsetsNs[CLOCK_IDS[name]];
    if (offset !== undefined) clocks[name] = offset;
  }
  return {
    pid: target,
    version: status.version,
    installerPid: status.installerPid,
    active: status.active,
    clocks,
    mode: { ...status.modes },
  };
}
