// Starting a program whose clock is skewed from its very first instruction (the CLI's `run`): the
// addon forks and execs it under ptrace, so it stops right after execve with its new vDSO mapped,
// then leaves it group-stopped (SIGSTOP) and untraced. The caller skews it, sends SIGCONT, and
// reaps it with waitForExit (libuv does not know the child, so nobody else will).

import { debug } from './debug';
import { TimeSkewError, fromNative } from './errors';
import * as native from './native';

/** How a program started by launchStopped ended: `code` when it exited, `signal` (> 0) when killed. */
export interface ExitStatus {
  code: number | null;
  signal: number;
}

/**
 * Starts `file` (looked up in PATH from `env`) with `argv` (argv[0] included) and the environment
 * `env`, and returns its pid while it is stopped before its first instruction. Throws EINVAL with
 * `errno` ENOENT when there is no such program, and with the exec errno (EACCES, ENOEXEC, ...) when
 * it cannot be executed.
 */
export function launchStopped(file: string, argv: readonly string[], env: NodeJS.ProcessEnv | readonly string[]): number {
  if (typeof file !== 'string' || file === '') {
    throw new TimeSkewError('EINVAL', 'no program to run', { hint: 'name a program, e.g. `date`' });
  }
  const envList = Array.isArray(env)
    ? [...(env as readonly string[])]
    : Object.entries(env as NodeJS.ProcessEnv)
        .filter((entry): entry is [string, string] => entry[1] !== undefined)
        .map(([key, value]) => `${key}=${value}`);
  debug('launchStopped %s argv=%j (%d environment entries)', file, argv, envList.length);
  let pid: number;
  try {
    pid = native.binding().launchStopped(file, [...argv], envList);
  } catch (err) {
    const raw = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
    if (raw.code === 'ENOENT' || raw.code === 'EINVAL') {
      // Not a timeskew failure but a command that cannot run: keep the errno so a CLI can tell
      // "not found" (127) from "cannot execute" (126), as shells do.
      const message = err instanceof Error ? err.message : String(raw.message ?? err);
      debug('launchStopped %s failed: %s errno=%s', file, raw.code, raw.errno);
      throw new TimeSkewError('EINVAL', message.replace(/^(ENOENT|EINVAL): /, ''), {
        errno: typeof raw.errno === 'number' ? raw.errno : undefined,
        syscall: typeof raw.syscall === 'string' ? raw.syscall : undefined,
        hint: typeof raw.hint === 'string' && raw.hint !== '' ? raw.hint : 'check the command name and the PATH',
        cause: err,
      });
    }
    throw fromNative(err, undefined);
  }
  debug('launchStopped %s: pid %d, stopped before its first instruction', file, pid);
  return pid;
}

/** Waits for a program started by launchStopped to exit, and reaps it. */
export async function waitForExit(pid: number): Promise<ExitStatus> {
  try {
    const status = await native.binding(pid).waitForExit(pid);
    debug('pid %d exited: code=%s signal=%d', pid, status.code, status.signal);
    return status;
  } catch (err) {
    throw fromNative(err, pid);
  }
}
