// The only door to the compiled addon. Loaded lazily, so that `require('timeskew')` works everywhere
// (type imports, formatDuration, option validation) and only an actual skew attempt on an unsupported
// system fails, with ENOTSUP and an explanation rather than a dlopen stack trace at import time.
// Every call is funnelled through fromNative so callers only ever see TimeSkewError.

import path from 'node:path';
import type {
  NativeBinding,
  NativeClockTable,
  NativeInstallRequest,
  NativeInstallResult,
  NativePlanReport,
  NativeRestoreResult,
  NativeStatus,
} from '../types/native';
import { TimeSkewError, fromNative } from './errors';

interface LoadFailure {
  message: string;
  hint: string;
  cause?: unknown;
}

let loaded: NativeBinding | LoadFailure | undefined;

function loadOnce(): NativeBinding | LoadFailure {
  if (loaded) return loaded;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    loaded = {
      message: `timeskew does not support ${process.platform}/${process.arch}`,
      hint: 'only Linux on x86_64 is supported for now: the engine rewrites x86_64 machine code in the vDSO',
    };
    return loaded;
  }
  try {
    // Resolved from the package root (one level above dist/ or lib/), where build/ and prebuilds/ live.
    const candidate = require('node-gyp-build')(path.join(__dirname, '..')) as NativeBinding;
    loaded =
      candidate.arch === 'x64'
        ? candidate
        : { message: `the native addon was built for ${candidate.arch}`, hint: 'only x86_64 is supported for now' };
  } catch (err) {
    loaded = {
      // First line only: Node appends the whole require stack, which is in `cause` anyway.
      message: `the native addon could not be loaded: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`,
      hint: 'rebuild it with `npm rebuild timeskew` (needs python3, make and a C++17 compiler)',
      cause: err,
    };
  }
  return loaded;
}

function addon(pid: number | undefined): NativeBinding {
  const result = loadOnce();
  if ('install' in result) return result;
  // A fresh error per call, so each one names the pid it was about.
  throw new TimeSkewError('ENOTSUP', result.message, { pid, hint: result.hint, cause: result.cause });
}

/** Tests of the layers above use a fake engine; `undefined` goes back to loading the real one. */
export function setBindingForTesting(binding: NativeBinding | undefined): void {
  loaded = binding;
}

// async, so that a synchronous throw from the addon (bad argument, ENOTSUP) becomes a rejection too.
export async function install(request: NativeInstallRequest): Promise<NativeInstallResult> {
  try {
    return await addon(request.pid).install(request);
  } catch (err) {
    throw fromNative(err, request.pid);
  }
}

export async function update(pid: number, table: NativeClockTable): Promise<void> {
  try {
    await addon(pid).update(pid, table);
  } catch (err) {
    throw fromNative(err, pid);
  }
}

export async function restore(pid: number): Promise<NativeRestoreResult> {
  try {
    return await addon(pid).restore(pid);
  } catch (err) {
    throw fromNative(err, pid);
  }
}

export function restoreSync(pid: number): NativeRestoreResult {
  try {
    return addon(pid).restoreSync(pid);
  } catch (err) {
    throw fromNative(err, pid);
  }
}

export async function inspect(pid: number): Promise<NativeStatus | null> {
  try {
    return await addon(pid).inspect(pid);
  } catch (err) {
    throw fromNative(err, pid);
  }
}

export function planImage(image: Uint8Array, forceSyscall: boolean): NativePlanReport {
  try {
    return addon(undefined).planImage(image, forceSyscall);
  } catch (err) {
    throw fromNative(err, undefined);
  }
}
