// Turns what a caller passes into the exact table the native engine writes into the target.
// Everything is checked here, before any process is touched, so a typo can never half-install a skew.

import type { NativeClockTable } from '../types/native';
import { CLOCK_IDS, CLOCK_TABLE_SIZE, type ClockId, clockIdsToMask, isClockId, maskToClockIds } from './clocks';
import { parseDuration } from './duration';
import { invalid } from './errors';

export interface SkewOptions {
  /** Seconds to add; any sign, may be fractional. Combined with `nsec`. */
  sec?: number;
  /** Nanoseconds to add; any sign, integer. Combined with `sec`. */
  nsec?: number;
  /** The whole offset at once: a Go-style duration ('-10m', '1h30m', '1.5s') or bigint nanoseconds. */
  offset?: string | bigint;
  /** Clocks to skew. Default ['CLOCK_REALTIME'], which also covers gettimeofday() and time(). */
  clockIds?: ClockId[];
  /** Replace a skew that is already installed in the process instead of failing with EBUSY. */
  replace?: boolean;
  /** Use the syscall fallback even where the trampoline works (benchmarks, kernels where relocation fails). */
  forceSyscall?: boolean;
}

/** Options for SkewHandle.update(). An omitted offset or clock list keeps the current one. */
export interface UpdateOptions {
  sec?: number;
  nsec?: number;
  offset?: string | bigint;
  clockIds?: ClockId[];
}

export interface ResolvedClocks {
  offsetNs: bigint;
  /** Distinct, in clock id order (the order the native mask implies, and inspect reports). */
  clockIds: ClockId[];
  table: NativeClockTable;
}

export interface ResolvedSkew extends ResolvedClocks {
  replace: boolean;
  forceSyscall: boolean;
}

// The kernel never hands out a pid >= PID_MAX_LIMIT (4194304 on 64-bit): pids are allocated below pid_max.
const PID_MAX_LIMIT = 4_194_304;
const INT64_MAX = (1n << 63n) - 1n;
const NS_PER_SEC = 1_000_000_000n;
const DEFAULT_CLOCKS: readonly ClockId[] = ['CLOCK_REALTIME'];

const SKEW_KEYS: readonly string[] = ['sec', 'nsec', 'offset', 'clockIds', 'replace', 'forceSyscall'];
const UPDATE_KEYS: readonly string[] = ['sec', 'nsec', 'offset', 'clockIds'];

const DURATION_EXAMPLES = "use a Go-style duration such as '-10m', '1h30m', '-1.5s' or '100ns'";
const OFFSET_FORMS = "pass either { offset: '-10m' } (or bigint nanoseconds) or { sec, nsec }";

export function validatePid(pid: unknown): number {
  const hint = 'pass the numeric pid of a running process, e.g. child.pid';
  if (typeof pid !== 'number') throw invalid(undefined, `pid must be a number, got ${describe(pid)}`, hint);
  if (!Number.isInteger(pid) || pid <= 0 || pid >= PID_MAX_LIMIT) {
    // Only echo the pid into the error's pid field when it could plausibly be one.
    throw invalid(
      Number.isInteger(pid) ? pid : undefined,
      `pid must be an integer from 1 to ${PID_MAX_LIMIT - 1}, got ${pid}`,
      hint,
    );
  }
  return pid;
}

export function resolveSkew(pid: number, options: unknown): ResolvedSkew {
  const o = ownFields(pid, options, SKEW_KEYS, 'skewClock');
  const offsetNs = resolveOffset(pid, o);
  if (offsetNs === undefined) throw invalid(pid, 'no offset given', OFFSET_FORMS);
  const clockIds = resolveClockIds(pid, o.clockIds) ?? [...DEFAULT_CLOCKS];
  return {
    ...resolvedClocks(offsetNs, clockIds),
    replace: resolveFlag(pid, o, 'replace'),
    forceSyscall: resolveFlag(pid, o, 'forceSyscall'),
  };
}

/** Like resolveSkew, but whatever `options` leaves out is taken from `current`. */
export function resolveUpdate(
  pid: number,
  options: unknown,
  current: { offsetNs: bigint; clockIds: readonly ClockId[] },
): ResolvedClocks {
  const o = ownFields(pid, options, UPDATE_KEYS, 'update');
  const offsetNs = resolveOffset(pid, o) ?? current.offsetNs;
  const clockIds = resolveClockIds(pid, o.clockIds) ?? [...current.clockIds];
  return resolvedClocks(offsetNs, clockIds);
}

export function buildTable(offsetNs: bigint, clockIds: readonly ClockId[]): NativeClockTable {
  const offsetsNs = new Array<bigint>(CLOCK_TABLE_SIZE).fill(0n);
  for (const name of clockIds) offsetsNs[CLOCK_IDS[name]] = offsetNs;
  return { mask: clockIdsToMask(clockIds), offsetsNs };
}

function resolvedClocks(offsetNs: bigint, clockIds: readonly ClockId[]): ResolvedClocks {
  // Collapse duplicates and fix the order by going through the mask, the form the engine keeps.
  const canonical = maskToClockIds(clockIdsToMask(clockIds));
  return { offsetNs, clockIds: canonical, table: buildTable(offsetNs, canonical) };
}

/** The option values that were actually given; `undefined` counts as not given. */
function ownFields(pid: number, options: unknown, allowed: readonly string[], what: string): Record<string, unknown> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw invalid(pid, `${what} options must be an object, got ${describe(options)}`, OFFSET_FORMS);
  }
  // No prototype, so `'sec' in fields` below can only mean the caller gave sec.
  const fields: Record<string, unknown> = Object.create(null);
  for (const [key, value] of Object.entries(options)) {
    if (!allowed.includes(key)) {
      throw invalid(pid, `unknown ${what} option ${JSON.stringify(key)}`, `valid options: ${allowed.join(', ')}`);
    }
    if (value !== undefined) fields[key] = value;
  }
  return fields;
}

function resolveOffset(pid: number, o: Record<string, unknown>): bigint | undefined {
  const hasParts = 'sec' in o || 'nsec' in o;
  if (hasParts && 'offset' in o) throw invalid(pid, 'both offset and sec/nsec given', OFFSET_FORMS);

  let offsetNs: bigint;
  if ('offset' in o) offsetNs = offsetFromValue(pid, o.offset);
  else if (hasParts) offsetNs = secondsToNs(pid, o.sec) + nanosecondsOf(pid, o.nsec);
  else return undefined;

  if (offsetNs > INT64_MAX || offsetNs < -INT64_MAX) {
    throw invalid(pid, `offset ${offsetNs} ns is out of range`, `the offset must be within ±${INT64_MAX} ns (about ±292 years)`);
  }
  return offsetNs;
}

function offsetFromValue(pid: number, value: unknown): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value !== 'string') {
    throw invalid(pid, `offset must be a string or a bigint, got ${describe(value)}`, `${DURATION_EXAMPLES}, or bigint nanoseconds, or { sec, nsec }`);
  }
  try {
    return parseDuration(value);
  } catch (err) {
    throw invalid(pid, `offset: ${(err as Error).message}`, DURATION_EXAMPLES);
  }
}

/**
 * Seconds to nanoseconds, truncating below 1 ns toward zero (as Go does for durations).
 * Fractions go through the number's shortest decimal form, the digits the caller actually wrote:
 * the binary value of 0.3 is 0.29999999999999998889..., which would otherwise become 299999999 ns.
 */
function secondsToNs(pid: number, sec: unknown): bigint {
  if (sec === undefined) return 0n;
  if (typeof sec !== 'number' || !Number.isFinite(sec)) {
    throw invalid(pid, `sec must be a finite number, got ${describe(sec)}`, 'e.g. { sec: -600 } or { sec: 1.5 }');
  }
  if (Number.isInteger(sec)) return BigInt(sec) * NS_PER_SEC;

  const match = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(sec));
  if (!match) throw new Error(`unexpected number format ${String(sec)}`); // not reachable for finite numbers
  const [, sign, whole, fraction = '', exponent = '0'] = match;
  const digits = BigInt(whole + fraction);
  const shift = Number(exponent) - fraction.length + 9; // value in ns = digits * 10^shift
  const magnitude = shift >= 0 ? digits * 10n ** BigInt(shift) : digits / 10n ** BigInt(-shift);
  return sign === '-' ? -magnitude : magnitude;
}

function nanosecondsOf(pid: number, nsec: unknown): bigint {
  if (nsec === undefined) return 0n;
  // Safe integers only: beyond 2^53 the number the caller typed may already have been rounded.
  if (typeof nsec !== 'number' || !Number.isSafeInteger(nsec)) {
    throw invalid(pid, `nsec must be an integer, got ${describe(nsec)}`, 'put whole seconds in sec, or pass offset as a bigint of nanoseconds');
  }
  return BigInt(nsec);
}

function resolveClockIds(pid: number, value: unknown): ClockId[] | undefined {
  if (value === undefined) return undefined;
  const hint = `valid clocks: ${Object.keys(CLOCK_IDS).join(', ')}`;
  if (!Array.isArray(value)) throw invalid(pid, `clockIds must be an array, got ${describe(value)}`, hint);
  if (value.length === 0) throw invalid(pid, 'clockIds is empty', `name at least one clock; ${hint}`);
  for (const name of value) {
    if (!isClockId(name)) throw invalid(pid, `unknown clock id ${describe(name)}`, hint);
  }
  return value as ClockId[];
}

function resolveFlag(pid: number, o: Record<string, unknown>, key: 'replace' | 'forceSyscall'): boolean {
  const value = o[key];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalid(pid, `${key} must be a boolean, got ${describe(value)}`, `e.g. { ${key}: true }`);
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  return String(value);
}
