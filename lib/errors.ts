// The one error type the public API throws or rejects with, so callers can branch on `code`
// without caring whether a failure was found in JS validation or deep inside the native engine.

export type TimeSkewErrorCode =
  | 'ESRCH'
  | 'EPERM'
  | 'EINVAL'
  | 'ENOTSUP'
  | 'EBUSY'
  | 'EIO'
  | 'ENOSPC'
  | 'EFAULT'
  | 'EINTR'
  | 'ETIMEDOUT'
  | 'EUNKNOWN';

const KNOWN_CODES: ReadonlySet<string> = new Set<TimeSkewErrorCode>([
  'ESRCH', 'EPERM', 'EINVAL', 'ENOTSUP', 'EBUSY', 'EIO', 'ENOSPC', 'EFAULT', 'EINTR', 'ETIMEDOUT', 'EUNKNOWN',
]);

// Codes that mean the same thing to a caller as one of ours. Opening /proc/<pid>/mem fails with
// EACCES where ptrace itself says EPERM; callers should not have to handle both.
const CODE_ALIASES: Readonly<Record<string, TimeSkewErrorCode>> = { EACCES: 'EPERM' };

// Used only when the addon gives no hint of its own: these are the failures a user can fix.
const DEFAULT_HINTS: Partial<Record<TimeSkewErrorCode, string>> = {
  EPERM:
    'tracing another process needs root or CAP_SYS_PTRACE (containers: --cap-add=SYS_PTRACE), or the ' +
    'same uid with kernel.yama.ptrace_scope 0 (at 1 only ancestors may trace, and your own child is ' +
    'traced from a helper process that is not its ancestor)',
  EBUSY: 'a skew is already installed in that process: pass { replace: true } or call restoreClock(pid) first',
};

export interface TimeSkewErrorDetails {
  errno?: number;
  syscall?: string;
  pid?: number;
  hint?: string;
  cause?: unknown;
}

export class TimeSkewError extends Error {
  readonly code: TimeSkewErrorCode;
  // `declare`d so that absent details are absent keys, not own properties holding undefined.
  declare readonly errno?: number;
  declare readonly syscall?: string;
  declare readonly pid?: number;
  declare readonly hint?: string;

  constructor(code: TimeSkewErrorCode, message: string, details: TimeSkewErrorDetails = {}) {
    // The code and pid go into the message too, because most people only ever see `err.message`
    // in a log line, and "which process, and what kind of failure" is what they need from it.
    const where = details.pid === undefined ? '' : ` (pid ${details.pid})`;
    const hint = details.hint ? `\nhint: ${details.hint}` : '';
    super(`${code}: ${message}${where}${hint}`, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'TimeSkewError';
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.pid !== undefined) this.pid = details.pid;
    if (details.hint) this.hint = details.hint;
  }
}

/** An EINVAL for a bad argument. Always has a hint: the caller can fix an EINVAL, so say how. */
export function invalid(pid: number | undefined, message: string, hint: string): TimeSkewError {
  return new TimeSkewError('EINVAL', message, { pid, hint });
}

/** Converts whatever the addon threw or rejected with into a TimeSkewError, keeping it as `cause`. */
export function fromNative(err: unknown, pid: number | undefined): TimeSkewError {
  if (err instanceof TimeSkewError) return err;

  const props = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
  const rawCode = typeof props.code === 'string' ? props.code : '';
  const code: TimeSkewErrorCode = KNOWN_CODES.has(rawCode)
    ? (rawCode as TimeSkewErrorCode)
    : CODE_ALIASES[rawCode] ?? 'EUNKNOWN';

  let message = err instanceof Error ? err.message : typeof props.message === 'string' ? props.message : String(err);
  // The constructor prefixes the code; do not print it twice if the addon already did.
  if (rawCode && message.startsWith(`${rawCode}: `)) message = message.slice(rawCode.length + 2);
  if (code === 'EUNKNOWN' && rawCode) message = `${message} [${rawCode}]`;

  const nativePid = typeof props.pid === 'number' ? props.pid : undefined;
  const nativeHint = typeof props.hint === 'string' && props.hint !== '' ? props.hint : undefined;
  return new TimeSkewError(code, message, {
    errno: typeof props.errno === 'number' ? props.errno : undefined,
    syscall: typeof props.syscall === 'string' ? props.syscall : undefined,
    pid: nativePid ?? pid,
    hint: nativeHint ?? DEFAULT_HINTS[code],
    cause: err,
  });
}
