// The private shape of the compiled addon (build/Release/timeskew.node), loaded by lib/native.ts.
// Everything here is internal: the public API is lib/index.ts.

/** The vDSO entry points that timeskew hooks. */
export type HookedFunction = 'clock_gettime' | 'gettimeofday' | 'time';

/** How a fake obtains the real time: by running the original vDSO code, or by a raw syscall. */
export type HookMode = 'trampoline' | 'syscall';

/**
 * The clock model for clock ids 0..11. `mask` bit i selects clock id i; bit 0 also drives
 * gettimeofday and time. Each selected clock reads `real + offset` at the moment the table is
 * published and from then on runs at (1 + rate / 2^32) times real speed.
 */
export interface NativeClockTable {
  mask: number;
  /** 12 entries, nanoseconds, one per clock id 0..11 (ignored where the mask bit is clear). */
  offsetsNs: bigint[];
  /** Q32 fixed point: 0n real speed, -(2n ** 32n) frozen, within [-(2^32), 3 * 2^32]. Default 0n. */
  rate?: bigint;
  /** Clocks that keep the skew they show now (offsetsNs ignored): a rate change without a jump. */
  keepMask?: number;
  /** Clocks whose offsetsNs entry is the absolute value (ns since the clock's epoch) to read now. */
  absoluteMask?: number;
}

export interface NativeInstallRequest extends NativeClockTable {
  pid: number;
  /** Replace a skew that is already installed instead of failing with EBUSY. */
  replace: boolean;
  /** Use the syscall fallback even where the trampoline would work (benchmarks, broken kernels). */
  forceSyscall: boolean;
}

export interface NativeOperationReport {
  /** Threads that were stopped. */
  threads: number;
  /** Threads found inside rewritten bytes and moved (install) or stepped out (restore). */
  movedThreads: number;
  /** First thread stopped to last thread released, nanoseconds. */
  pauseNs: number;
  /** Longest time any single thread was stopped, nanoseconds. */
  maxThreadPauseNs: number;
}

export interface NativeInstallResult extends NativeOperationReport {
  modes: Record<HookedFunction, HookMode>;
  /** Where the skew was installed, for updateSync (absent from engines that cannot update that way). */
  location?: NativeBlobLocation;
}

/** Identifies one installed skew in a target: where its state sits, and who installed it. */
export interface NativeBlobLocation {
  /** Start of the target's [vdso] mapping (exact: user-space addresses stay below 2^53). */
  vdsoStart: number;
  /** Offset of timeskew's state from the vDSO start. */
  blobOffset: number;
  /** The installer's pid, as recorded in the state: another value there means another skew. */
  installerPid: number;
}

export interface NativeRestoreResult extends NativeOperationReport {
  /** false when there was no skew installed. */
  restored: boolean;
  /** true when a thread could not be stepped out of the hook code, so the (inactive) code was left in place. */
  codeRetained: boolean;
}

export interface NativeStatus extends NativeClockTable {
  /** The rate in force (Q32, see NativeClockTable). offsetsNs are the skews at the time of the call. */
  rate: bigint;
  /** timeskew version that installed the skew. */
  version: string;
  /** Layout version of the in-target state. */
  layout: number;
  installerPid: number;
  modes: Record<HookedFunction, HookMode>;
  /** false when restored but the inactive hook code had to stay (see NativeRestoreResult.codeRetained). */
  active: boolean;
}

/** Result of planning hooks on a vDSO image without touching any process (unit tests, diagnostics). */
export interface NativePlanReport {
  ok: boolean;
  error?: string;
  /** Zero bytes available at the end of the image for timeskew's code and state. */
  freeBytes: number;
  /** Bytes timeskew needs there. */
  neededBytes: number;
  functions: Array<{
    name: HookedFunction;
    symbol: string;
    offset: number;
    /** Size of the function's symbol, in bytes. */
    size: number;
    /** Offset of the 5-byte jump from the function start (4 when the function starts with endbr64). */
    patchOffset: number;
    /** Bytes of original code displaced into the trampoline. */
    displacedLength: number;
    mode: HookMode;
    /** Why the syscall fallback was chosen, when it was. */
    reason?: string;
    /** Number of RIP-relative operands and relative branches that were re-targeted. */
    relocations: number;
    /** time(): whether the whole original function was copied into the fake (no call). */
    inlined: boolean;
    /** Why it was not, when the fake has an inline region. */
    inlineReason?: string;
    /** The copied code, as written into the inline region. */
    inlineCode?: Buffer;
  }>;
}

/**
 * One run of vDSO code offsets [start, end) that share a call frame rule, from the image's
 * .eh_frame (tests compare it with readelf). Registers are DWARF numbers (x86_64: 6 rbp, 7 rsp).
 */
export interface NativeFrameRow {
  start: number;
  end: number;
  /** false: a rule the engine does not interpret (expression, value moved to a register, ...). */
  known: boolean;
  /** -1 when not known. CFA = register + cfaOffset. */
  cfaRegister: number;
  cfaOffset: number;
  /** Present when the return address is saved at CFA + returnOffset. */
  returnOffset?: number;
  /** Present when the caller's frame pointer is saved at CFA + framePointerOffset. */
  framePointerOffset?: number;
}

export interface NativeError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  pid?: number;
  hint?: string;
}

export interface NativeBinding {
  /** Machine architecture the addon was built for ('x64'); other architectures report ENOTSUP. */
  readonly arch: string;
  readonly version: string;
  install(request: NativeInstallRequest): Promise<NativeInstallResult>;
  /** Rewrites offsets and mask in place without stopping the target. */
  update(pid: number, table: NativeClockTable): Promise<void>;
  /**
   * The same, on the calling thread, at a known location: reads the state once (process_vm_readv)
   * and writes the new slot through /proc/PID/mem. ESRCH when the state there is not the one located.
   * For a table with keepMask or absoluteMask, returns every clock's skew (ns) right after the
   * change (what only the target knows); otherwise undefined.
   */
  updateSync?(pid: number, location: NativeBlobLocation, table: NativeClockTable): bigint[] | undefined;
  /** Finds the skew installed in `pid` (for a handle that did not install it). ESRCH when there is none. */
  locate?(pid: number): NativeBlobLocation;
  restore(pid: number): Promise<NativeRestoreResult>;
  restoreSync(pid: number): NativeRestoreResult;
  inspect(pid: number): Promise<NativeStatus | null>;
  planImage(image: Uint8Array, forceSyscall: boolean): NativePlanReport;
  /** For tests: the call frame rows of an x86_64 vDSO image. Throws EINVAL on a malformed image. */
  frameRows(image: Uint8Array): NativeFrameRow[];
  /**
   * Starts a program stopped right after its execve (before its first instruction), left
   * group-stopped (SIGSTOP) and untraced: skew it, then SIGCONT it. Throws ENOENT/EINVAL when the
   * program cannot be executed. `file` is looked up in PATH (from `env`).
   */
  launchStopped(file: string, argv: string[], env: string[]): number;
  /** Waits for a program started by launchStopped (nobody else reaps it). */
  waitForExit(pid: number): Promise<{ code: number | null; signal: number }>;
}
