// skewClock(), on its own so that the scenarios and groups built on it can import it without a cycle
// through index.ts.

import { SkewHandle } from './handle';
import * as native from './native';
import { type ResolvedSkew, type SkewOptions, resolveSkew, validatePid } from './options';

/**
 * Skews the clocks of process `pid` until the returned handle is restored. `pid` may be
 * process.pid: the calling process then skews itself (through the engine's helper process, since
 * a process cannot trace itself).
 */
export async function skewClock(pid: number, options: SkewOptions): Promise<SkewHandle> {
  const target = validatePid(pid);
  return installResolved(target, resolveSkew(target, options));
}

/** @internal Installs an already resolved (and validated) skew. */
export async function installResolved(pid: number, skew: ResolvedSkew): Promise<SkewHandle> {
  const result = await native.install({
    pid,
    ...skew.table,
    replace: skew.replace,
    forceSyscall: skew.forceSyscall,
  });
  const handle = new SkewHandle(pid, skew, result);
  // An `at` anchors at an absolute time: the skew that makes is only known once it is installed.
  await handle.refresh(skew.unknown);
  return handle;
}
