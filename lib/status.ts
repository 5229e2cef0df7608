// What inspectClock() reports, shared by the public function and SkewHandle.inspect().

import type { HookMode, HookedFunction, NativeStatus } from '../types/native';
import { CLOCK_IDS, type ClockId, maskToClockIds } from './clocks';
import { RATE_FROZEN, q32ToDriftPpm, q32ToRate } from './models';
import * as native from './native';

/** What inspectClock() finds installed in a process. */
export interface ClockStatus {
  pid: number;
  /** timeskew version that installed the skew (possibly another copy than this one). */
  version: string;
  installerPid: number;
  /** false when the skew was restored but its inactive code had to stay in the target. */
  active: boolean;
  /**
   * The skew (fake - real, ns) of each skewed clock at the time of the call. With a rate other than
   * 1 it changes from there by (rate - 1) ns per real ns.
   */
  clocks: Partial<Record<ClockId, bigint>>;
  /** Speed of the skewed clocks relative to the real ones: 1 real speed, 0 frozen. */
  rate: number;
  /** The same as `rate`, in parts per million (0 real speed, -1e6 frozen). */
  driftPpm: number;
  /** The rate as the fake holds it: Q32 fixed point, 0n real speed, -(2n ** 32n) frozen. */
  rateQ32: bigint;
  /** true when the skewed clocks stand still. */
  frozen: boolean;
  mode: Record<HookedFunction, HookMode>;
}

export function toClockStatus(pid: number, status: NativeStatus): ClockStatus {
  const clocks: Partial<Record<ClockId, bigint>> = {};
  for (const name of maskToClockIds(status.mask)) {
    const offset = status.offsetsNs[CLOCK_IDS[name]];
    if (offset !== undefined) clocks[name] = offset;
  }
  // An addon older than the rate field reports none: that was real speed.
  const rateQ32 = typeof status.rate === 'bigint' ? status.rate : 0n;
  return {
    pid,
    version: status.version,
    installerPid: status.installerPid,
    active: status.active,
    clocks,
    rate: q32ToRate(rateQ32),
    driftPpm: q32ToDriftPpm(rateQ32),
    rateQ32,
    frozen: rateQ32 === RATE_FROZEN,
    mode: { ...status.modes },
  };
}

/** inspectClock() for an already validated pid. */
export async function inspectPid(pid: number): Promise<ClockStatus | null> {
  const status = await native.inspect(pid);
  return status === null ? null : toClockStatus(pid, status);
}
