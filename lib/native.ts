// The only door to the compiled addon. Loaded lazily, so that `require('timeskew')` works everywhere
// (type imports, formatDuration, option validation) and only an actual skew attempt on an unsupported
// system fails, with ENOTSUP and an explanation rather than a dlopen stack trace at import time.
// Every call is funnelled through fromNative so callers only ever see TimeSkewError.

import path from 'node:path';
import type {
  NativeBinding,
  NativeBlobLocation,
  NativeClockTable,
  NativeFrameRow,
  NativeInstallRequest,
  NativeInstallResult,
  NativePlanReport,
  NativeRestoreResult,
  NativeStatus,
} from '../types/native';
import { debug, describeReport } from './debug';
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
    const root = path.join(__dirname, '..');
    const load = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
    debug('loading the addon %s', load.resolve(root));
    const candidate = load(root) as NativeBinding;
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
  if (!('install' in loaded)) debug('addon unavailable: %s', loaded.message);
  return loaded;
}

function addon(pid: number | undefined): NativeBinding {
  const result = loadOnce();
  if ('install' in result) return result;
  // A fresh error per call, so each one names the pid it was about.
  throw new TimeSkewError('ENOTSUP', result.message, { pid, hint: result.hint, cause: result.cause });
}

/** The raw addon, for lib/launch.ts (launchStopped, waitForExit). Throws ENOTSUP like every call here. */
export function binding(pid?: number): NativeBinding {
  return addon(pid);
}

/** Tests of the layers above use a fake engine; `undefined` goes back to loading the real one. */
export function setBindingForTesting(binding: NativeBinding | undefined): void {
  loaded = binding;
}

// async, so that a synchronous throw from the addon (bad argument, ENOTSUP) becomes a rejection too.
export async function install(request: NativeInstallRequest): Promise<NativeInstallResult> {
  debug('install pid %d: mask=%s replace=%s forceSyscall=%s', request.pid, request.mask.toString(2), request.replace, request.forceSyscall);
  try {
    const result = await addon(request.pid).install(request);
    debug('installed pid %d: %s modes=%j', request.pid, describeReport(result), result.modes);
    return result;
  } catch (err) {
    throw failed('install', fromNative(err, request.pid));
  }
}

export async function update(pid: number, table: NativeClockTable): Promise<void> {
  debug('update pid %d: mask=%s', pid, table.mask.toString(2));
  try {
    await addon(pid).update(pid, table);
    debug('updated pid %d', pid);
  } catch (err) {
    throw failed('update', fromNative(err, pid));
  }
}

/** Whether the engine can update synchronously (the compiled one can; test fakes may not). */
export function canUpdateSync(): boolean {
  const result = loadOnce();
  return 'install' in result && typeof result.updateSync === 'function' && typeof result.locate === 'function';
}

/** Synchronous update at a known location; see NativeBinding.updateSync. Only when canUpdateSync(). */
export function updateSync(pid: number, location: NativeBlobLocation, table: NativeClockTable): bigint[] | undefined {
  debug('update pid %d in place', pid);
  try {
    return addon(pid).updateSync!(pid, location, table);
  } catch (err) {
    throw failed('update', fromNative(err, pid));
  }
}

/** Where the skew installed in `pid` sits; only when canUpdateSync(). */
export function locate(pid: number): NativeBlobLocation {
  debug('locate pid %d', pid);
  try {
    return addon(pid).locate!(pid);
  } catch (err) {
    throw failed('locate', fromNative(err, pid));
  }
}

export async function restore(pid: number): Promise<NativeRestoreResult> {
  debug('restore pid %d', pid);
  try {
    const result = await addon(pid).restore(pid);
    debug('restore pid %d: restored=%s codeRetained=%s %s', pid, result.restored, result.codeRetained, describeReport(result));
    return result;
  } catch (err) {
    throw failed('restore', fromNative(err, pid));
  }
}

export function restoreSync(pid: number): NativeRestoreResult {
  debug('restoreSync pid %d', pid);
  try {
    const result = addon(pid).restoreSync(pid);
    debug('restoreSync pid %d: restored=%s codeRetained=%s %s', pid, result.restored, result.codeRetained, describeReport(result));
    return result;
  } catch (err) {
    throw failed('restoreSync', fromNative(err, pid));
  }
}

export async function inspect(pid: number): Promise<NativeStatus | null> {
  debug('inspect pid %d', pid);
  try {
    const status = await addon(pid).inspect(pid);
    debug('inspect pid %d: %s', pid, status === null ? 'no skew' : `mask=${status.mask.toString(2)} active=${status.active} installer=${status.installerPid} version=${status.version}`);
    return status;
  } catch (err) {
    throw failed('inspect', fromNative(err, pid));
  }
}

function failed(operation: string, err: TimeSkewError): TimeSkewError {
  debug('%s pid %s failed: %s', operation, err.pid ?? '-', err.code);
  return err;
}

export function planImage(image: Uint8Array, forceSyscall: boolean): NativePlanReport {
  try {
    return addon(undefined).planImage(image, forceSyscall);
  } catch (err) {
    throw fromNative(err, undefined);
  }
}

export function frameRows(image: Uint8Array): NativeFrameRow[] {
  try {
    return addon(undefined).frameRows(image);
  } catch (err) {
    throw fromNative(err, undefined);
  }
}
