// Public entry point. Each function validates everything it can before the engine touches the
// target, and every failure, synchronous or not, arrives as a rejected promise of TimeSkewError.

import { CLOCK_IDS, type ClockId } from './clocks';
import { TimeSkewError } from './errors';
import * as native from './native';
import { validatePid } from './options';
import { type ClockStatus, inspectPid } from './status';

export { CLOCK_IDS, type ClockId };
export { formatDuration, parseDuration } from './duration';
export { TimeSkewError, type TimeSkewErrorCode } from './errors';
export { SkewHandle, type ClockModel, type OperationReport } from './handle';
export type { ClockOffsets, DurationInput, ModelOptions, SkewOptions, UpdateOptions } from './options';
export type { ClockStatus } from './status';
export type { HookMode, HookedFunction } from '../types/native';
export { skewClock } from './skew';
export { StrobeHandle, jump, strobe, type JumpOptions, type StrobeOptions } from './scenarios';
export {
  SkewGroup,
  skewProcesses,
  type GroupOptions,
  type ProcessResult,
  type ProcessTarget,
} from './group';

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

/**
 * Reads the skew installed in `pid` without stopping it: each clock's skew at the time of the call,
 * and the rate. null when there is none. Rejects ESRCH for no such process.
 */
export async function inspectClock(pid: number): Promise<ClockStatus | null> {
  return inspectPid(validatePid(pid));
}
