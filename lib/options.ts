// Turns what a caller passes into the exact table the native engine writes into the target.
// Everything is checked here, before any process is touched, so a typo can never half-install a skew.

import type { NativeClockTable } from '../types/native';
import { CLOCK_IDS, CLOCK_TABLE_SIZE, type ClockId, clockIdsToMask, isClockId, maskToClockIds } from './clocks';
import { parseDuration } from './duration';
import { invalid } from './errors';
import {
  MAX_DRIFT_PPM,
  MAX_REAL_RATE,
  MIN_DRIFT_PPM,
  MIN_REAL_RATE,
  RATE_FROZEN,
  driftPpmToQ32,
  parseInstant,
  rateToQ32,
} from './models';

/** A duration: Go-style string ('-10m', '1h30m', '1.5s', '100ns') or bigint nanoseconds. */
export type DurationInput = string | bigint;

/** Per-clock offsets: each named clock is skewed by its own duration. */
export type ClockOffsets = Partial<Record<ClockId, DurationInput>>;

/** The clock model options shared by skewClock() and SkewHandle.update(). */
export interface ModelOptions {
  /** Seconds to add; any sign, may be fractional. Combined with `nsec`. */
  sec?: number;
  /** Nanoseconds to add; any sign, integer. Combined with `sec`. */
  nsec?: number;
  /** The whole offset at once: a Go-style duration ('-10m', '1h30m', '1.5s') or bigint nanoseconds. */
  offset?: DurationInput;
  /**
   * One offset per clock, e.g. { CLOCK_REALTIME: '-10m', CLOCK_MONOTONIC: '5s' }: the keys are the
   * clocks to skew. Instead of `sec`/`nsec`/`offset` and `clockIds`.
   */
  offsets?: ClockOffsets;
  /** Clocks to skew. Default ['CLOCK_REALTIME'], which also covers gettimeofday() and time(). */
  clockIds?: ClockId[];
  /**
   * Speed of the skewed clocks relative to the real ones, from the moment of injection (or of the
   * update): 1 = real speed, 1.0005 = 500 ppm fast, 0.5 = half speed, 0 = frozen. Within [0, 4].
   */
  rate?: number;
  /** The same as `rate`, in parts per million: driftPpm 500 is rate 1.0005. Within [-1e6, 3e6]. */
  driftPpm?: number;
  /** true: the skewed clocks stand still (rate 0); false: they run at real speed again (rate 1). */
  freeze?: boolean;
  /**
   * The time CLOCK_REALTIME (and gettimeofday, time, and CLOCK_REALTIME_COARSE/_ALARM when selected)
   * reads at the moment of injection; it runs on from there (at `rate`, if given). A Date, a date
   * string ('2000-01-01T00:00:00Z'; sub-millisecond digits are kept) or bigint ns since the epoch.
   */
  at?: Date | string | bigint;
}

export interface SkewOptions extends ModelOptions {
  /** Replace a skew that is already installed in the process instead of failing with EBUSY. */
  replace?: boolean;
  /** Use the syscall fallback even where the trampoline works (benchmarks, kernels where relocation fails). */
  forceSyscall?: boolean;
}

/**
 * Options for SkewHandle.update(). What is not given stays: an update that only changes the rate
 * (or freezes/unfreezes) keeps every clock's current reading, so the clocks do not jump; clocks
 * given an offset (`offset`, `sec`/`nsec`, `offsets`, `at`) jump to it.
 */
export type UpdateOptions = ModelOptions;

/** What the handle remembers of the model in force, and what resolveUpdate() builds on. */
export interface ModelState {
  /** Selected clocks, in clock id order. */
  clockIds: readonly ClockId[];
  /**
   * The skew (fake - real, ns) each selected clock had when it was last anchored. Missing where it
   * is not known exactly without asking the target (an absolute `at`, or a clock kept while a rate
   * other than 1 was in force).
   */
  offsets: Readonly<Partial<Record<ClockId, bigint>>>;
  /** Q32 rate field (0n = real speed, -(2n ** 32n) = frozen). */
  rateQ32: bigint;
  /** The last single offset given: what update({ clockIds }) gives to the clocks it adds. */
  offsetNs: bigint;
}

export interface ResolvedClocks extends ModelState {
  clockIds: ClockId[];
  /** Clocks whose skew is only known once the table is published (absolute or kept while drifting). */
  unknown: ClockId[];
  table: Required<NativeClockTable>;
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
/** The clocks that count Unix time, and so read `at`. CLOCK_TAI is offset from them by leap seconds: not included. */
export const AT_CLOCKS: readonly ClockId[] = ['CLOCK_REALTIME', 'CLOCK_REALTIME_COARSE', 'CLOCK_REALTIME_ALARM'];

const MODEL_KEYS: readonly string[] = ['sec', 'nsec', 'offset', 'offsets', 'clockIds', 'rate', 'driftPpm', 'freeze', 'at'];
const SKEW_KEYS: readonly string[] = [...MODEL_KEYS, 'replace', 'forceSyscall'];
const UPDATE_KEYS: readonly string[] = MODEL_KEYS;

const DURATION_EXAMPLES = "use a Go-style duration such as '-10m', '1h30m', '-1.5s' or '100ns'";
const OFFSET_FORMS =
  "pass either { offset: '-10m' } (or bigint nanoseconds) or { sec, nsec }, per-clock { offsets: { CLOCK_REALTIME: '-10m' } }, " +
  "{ at: new Date('2000-01-01T00:00:00Z') }, or a rate ({ rate: 1.0005 }, { driftPpm: 500 }, { freeze: true })";
const RATE_HINT =
  'rate is the speed of the skewed clock relative to the real one: 1 = real speed, 1.0005 = 500 ppm fast, ' +
  `0.5 = half speed, 0 = frozen (or { freeze: true }); it must lie within [${MIN_REAL_RATE}, ${MAX_REAL_RATE}]`;
const AT_HINT =
  "pass a Date, a date string such as '2000-01-01T00:00:00Z', or bigint nanoseconds since the Unix epoch";

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

export function resolveSkew(pid: number | undefined, options: unknown): ResolvedSkew {
  const o = ownFields(pid, options, SKEW_KEYS, 'skewClock');
  return {
    ...resolveModel(pid, o, undefined),
    replace: resolveFlag(pid, o, 'replace'),
    forceSyscall: resolveFlag(pid, o, 'forceSyscall'),
  };
}

/**
 * Like resolveSkew, but on top of the model in force (`current`): what `options` leaves out stays.
 * Clocks given an offset (offset/sec/nsec for every selected clock, `offsets` for the named ones,
 * `at` for the realtime clocks) are re-anchored to it; every other clock that stays selected keeps
 * the skew it shows at the moment of the update (keepMask), so a rate change alone never makes a
 * clock jump; clocks that `clockIds` adds get `current.offsetNs`.
 */
export function resolveUpdate(pid: number | undefined, options: unknown, current: ModelState): ResolvedClocks {
  const o = ownFields(pid, options, UPDATE_KEYS, 'update');
  return resolveModel(pid, o, current);
}

function resolveModel(pid: number | undefined, o: Record<string, unknown>, current: ModelState | undefined): ResolvedClocks {
  const rateQ32 = resolveRate(pid, o);
  const at = 'at' in o ? instantOf(pid, o.at) : undefined;
  const offsetNs = resolveOffset(pid, o);
  const perClock = resolveClockOffsets(pid, o.offsets);
  const listed = resolveClockIds(pid, o.clockIds);

  if (perClock && offsetNs !== undefined) {
    throw invalid(pid, 'both offsets and offset/sec/nsec given', 'use per-clock offsets, or one offset for the clocks in clockIds, not both');
  }
  if (perClock && listed) {
    throw invalid(pid, 'both offsets and clockIds given', 'the keys of offsets are the clocks to skew: drop clockIds');
  }
  if (!current && offsetNs === undefined && !perClock && at === undefined && rateQ32 === undefined) {
    throw invalid(pid, 'no offset given', OFFSET_FORMS);
  }

  const selected = new Set<ClockId>(perClock ? [...(current?.clockIds ?? []), ...perClock.keys()] : listed ?? current?.clockIds ?? DEFAULT_CLOCKS);
  if (at !== undefined) selected.add('CLOCK_REALTIME');
  // Collapse duplicates and fix the order by going through the mask, the form the engine keeps.
  const clockIds = maskToClockIds(clockIdsToMask([...selected]));
  const readsAt = (clock: ClockId): boolean => at !== undefined && AT_CLOCKS.includes(clock);

  if (at !== undefined && perClock) {
    const clash = [...perClock.keys()].find(readsAt);
    if (clash) throw invalid(pid, `both at and an offset for ${clash} given`, `at sets ${AT_CLOCKS.join(', ')}: drop ${clash} from offsets`);
  }
  if (at !== undefined && offsetNs !== undefined && clockIds.every(readsAt)) {
    throw invalid(
      pid,
      'the offset applies to no clock: at sets CLOCK_REALTIME',
      "name the other clocks the offset is for, e.g. { at, offset: '5s', clockIds: ['CLOCK_MONOTONIC'] }",
    );
  }

  const commonOffset = offsetNs ?? (current ? current.offsetNs : perClock?.values().next().value ?? 0n);
  const table: Required<NativeClockTable> = {
    mask: clockIdsToMask(clockIds),
    offsetsNs: new Array<bigint>(CLOCK_TABLE_SIZE).fill(0n),
    rate: rateQ32 ?? current?.rateQ32 ?? 0n,
    keepMask: 0,
    absoluteMask: 0,
  };
  const offsets: Partial<Record<ClockId, bigint>> = {};
  const unknown: ClockId[] = [];
  for (const clock of clockIds) {
    const id = CLOCK_IDS[clock];
    let value: bigint | undefined;
    if (readsAt(clock)) {
      table.absoluteMask |= 1 << id;
      table.offsetsNs[id] = at!;
    } else if (perClock?.has(clock)) {
      value = perClock.get(clock)!;
    } else if (offsetNs !== undefined) {
      value = offsetNs;
    } else if (current?.clockIds.includes(clock)) {
      // Kept: it reads on from where it is. Its skew is constant, hence known, only at rate 1.
      table.keepMask |= 1 << id;
      const known = current.rateQ32 === 0n ? current.offsets[clock] : undefined;
      table.offsetsNs[id] = known ?? 0n;
      if (known !== undefined) offsets[clock] = known;
    } else {
      value = current ? current.offsetNs : 0n;
    }
    if (value !== undefined) {
      table.offsetsNs[id] = value;
      offsets[clock] = value;
    }
    if (offsets[clock] === undefined) unknown.push(clock);
  }
  return { clockIds, offsets, unknown, rateQ32: table.rate, offsetNs: commonOffset, table };
}

function resolveRate(pid: number | undefined, o: Record<string, unknown>): bigint | undefined {
  if ('rate' in o && 'driftPpm' in o) {
    throw invalid(pid, 'both rate and driftPpm given', 'they are two forms of one setting (driftPpm 500 is rate 1.0005): pass one');
  }
  if ('freeze' in o && ('rate' in o || 'driftPpm' in o)) {
    throw invalid(pid, `both freeze and ${'rate' in o ? 'rate' : 'driftPpm'} given`, 'freeze: true is rate 0 and freeze: false is rate 1: pass one of them');
  }
  if ('rate' in o) {
    const rate = o.rate;
    if (typeof rate !== 'number' || !Number.isFinite(rate)) throw invalid(pid, `rate must be a finite number, got ${describe(rate)}`, RATE_HINT);
    if (rate < MIN_REAL_RATE || rate > MAX_REAL_RATE) throw invalid(pid, `rate ${rate} is out of range`, RATE_HINT);
    return rateToQ32(rate);
  }
  if ('driftPpm' in o) {
    const ppm = o.driftPpm;
    const hint = `driftPpm is how many ns the clock gains per second of real time, in ppm (500 = rate 1.0005, -1e6 = frozen); it must lie within [${MIN_DRIFT_PPM}, ${MAX_DRIFT_PPM}]`;
    if (typeof ppm !== 'number' || !Number.isFinite(ppm)) throw invalid(pid, `driftPpm must be a finite number, got ${describe(ppm)}`, hint);
    if (ppm < MIN_DRIFT_PPM || ppm > MAX_DRIFT_PPM) throw invalid(pid, `driftPpm ${ppm} is out of range`, hint);
    return driftPpmToQ32(ppm);
  }
  if ('freeze' in o) {
    if (typeof o.freeze !== 'boolean') throw invalid(pid, `freeze must be a boolean, got ${describe(o.freeze)}`, 'e.g. { freeze: true }, and later update({ freeze: false })');
    return o.freeze ? RATE_FROZEN : 0n;
  }
  return undefined;
}

function instantOf(pid: number | undefined, value: unknown): bigint {
  if (typeof value === 'number') {
    throw invalid(pid, `at must be a Date, a string or a bigint, got the number ${value}`, `${AT_HINT} (for milliseconds, new Date(ms))`);
  }
  try {
    return parseInstant(value);
  } catch (err) {
    throw invalid(pid, `at: ${(err as Error).message}`, AT_HINT);
  }
}

function resolveClockOffsets(pid: number | undefined, value: unknown): Map<ClockId, bigint> | undefined {
  if (value === undefined) return undefined;
  const hint = `e.g. { offsets: { CLOCK_REALTIME: '-10m', CLOCK_MONOTONIC: '5s' } }; valid clocks: ${Object.keys(CLOCK_IDS).join(', ')}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(pid, `offsets must be an object of clock name to offset, got ${describe(value)}`, hint);
  }
  const byId = new Map<ClockId, bigint>();
  for (const [name, offset] of Object.entries(value)) {
    if (!isClockId(name)) throw invalid(pid, `unknown clock id ${describe(name)} in offsets`, hint);
    if (offset === undefined) continue;
    byId.set(name, checkRange(pid, offsetFromValue(pid, offset, `offsets.${name}`)));
  }
  if (byId.size === 0) throw invalid(pid, 'offsets is empty', `name at least one clock; ${hint}`);
  // In clock id order, like everything derived from the mask.
  return new Map(maskToClockIds(clockIdsToMask([...byId.keys()])).map((name) => [name, byId.get(name)!]));
}

/** The option values that were actually given; `undefined` counts as not given. */
function ownFields(pid: number | undefined, options: unknown, allowed: readonly string[], what: string): Record<string, unknown> {
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

function resolveOffset(pid: number | undefined, o: Record<string, unknown>): bigint | undefined {
  const hasParts = 'sec' in o || 'nsec' in o;
  if (hasParts && 'offset' in o) throw invalid(pid, 'both offset and sec/nsec given', OFFSET_FORMS);

  let offsetNs: bigint;
  if ('offset' in o) offsetNs = offsetFromValue(pid, o.offset);
  else if (hasParts) offsetNs = secondsToNs(pid, o.sec) + nanosecondsOf(pid, o.nsec);
  else return undefined;

  return checkRange(pid, offsetNs);
}

function checkRange(pid: number | undefined, offsetNs: bigint): bigint {
  if (offsetNs > INT64_MAX || offsetNs < -INT64_MAX) {
    throw invalid(pid, `offset ${offsetNs} ns is out of range`, `the offset must be within ±${INT64_MAX} ns (about ±292 years)`);
  }
  return offsetNs;
}

/** A duration given as a Go-style string or bigint nanoseconds; `what` names it in errors. */
export function durationFromValue(pid: number | undefined, value: unknown, what: string): bigint {
  return offsetFromValue(pid, value, what);
}

function offsetFromValue(pid: number | undefined, value: unknown, what = 'offset'): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value !== 'string') {
    const forms = what === 'offset' ? ', or { sec, nsec }' : '';
    throw invalid(pid, `${what} must be a string or a bigint, got ${describe(value)}`, `${DURATION_EXAMPLES}, or bigint nanoseconds${forms}`);
  }
  try {
    return parseDuration(value);
  } catch (err) {
    throw invalid(pid, `${what}: ${(err as Error).message}`, DURATION_EXAMPLES);
  }
}

/**
 * Seconds to nanoseconds, truncating below 1 ns toward zero (as Go does for durations).
 * Fractions go through the number's shortest decimal form, the digits the caller actually wrote:
 * the binary value of 0.3 is 0.29999999999999998889..., which would otherwise become 299999999 ns.
 */
function secondsToNs(pid: number | undefined, sec: unknown): bigint {
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

function nanosecondsOf(pid: number | undefined, nsec: unknown): bigint {
  if (nsec === undefined) return 0n;
  // Safe integers only: beyond 2^53 the number the caller typed may already have been rounded.
  if (typeof nsec !== 'number' || !Number.isSafeInteger(nsec)) {
    throw invalid(pid, `nsec must be an integer, got ${describe(nsec)}`, 'put whole seconds in sec, or pass offset as a bigint of nanoseconds');
  }
  return BigInt(nsec);
}

export function resolveClockIds(pid: number | undefined, value: unknown): ClockId[] | undefined {
  if (value === undefined) return undefined;
  const hint = `valid clocks: ${Object.keys(CLOCK_IDS).join(', ')}`;
  if (!Array.isArray(value)) throw invalid(pid, `clockIds must be an array, got ${describe(value)}`, hint);
  if (value.length === 0) throw invalid(pid, 'clockIds is empty', `name at least one clock; ${hint}`);
  for (const name of value) {
    if (!isClockId(name)) throw invalid(pid, `unknown clock id ${describe(name)}`, hint);
  }
  return value as ClockId[];
}

function resolveFlag(pid: number | undefined, o: Record<string, unknown>, key: 'replace' | 'forceSyscall'): boolean {
  const value = o[key];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalid(pid, `${key} must be a boolean, got ${describe(value)}`, `e.g. { ${key}: true }`);
  return value;
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'function') return 'a function';
  return String(value);
}
