import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLOCK_IDS, CLOCK_TABLE_SIZE, type ClockId, clockIdsToMask, maskToClockIds } from '../lib/clocks';
import { TimeSkewError, fromNative, invalid } from '../lib/errors';
import { driftPpmToQ32, parseInstant, q32ToDriftPpm, q32ToRate, rateToQ32 } from '../lib/models';
import { type ModelState, resolveSkew, resolveUpdate, validatePid } from '../lib/options';

const PID = 4242;
const INT64_MAX = (1n << 63n) - 1n;

/** Runs `fn`, expects an EINVAL TimeSkewError for `pid` (null: none) with a hint, and returns it. */
function einval(fn: () => unknown, pid: number | null = PID): TimeSkewError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(TimeSkewError);
  const err = caught as TimeSkewError;
  expect(err.code).toBe('EINVAL');
  expect(err.name).toBe('TimeSkewError');
  expect(err.pid).toBe(pid ?? undefined);
  expect(err.hint).toEqual(expect.any(String));
  expect(err.hint!.length).toBeGreaterThan(0);
  expect(err.message).toMatch(/^EINVAL: /);
  expect(err.message).toContain(`\nhint: ${err.hint}`);
  if (pid !== null) expect(err.message).toContain(`(pid ${pid})`);
  else expect(err.message).not.toContain('(pid');
  return err;
}

const offsetOf = (options: object): bigint => resolveSkew(PID, options).offsetNs;

describe('validatePid', () => {
  it.each([1, 2, 4242, 4_194_303])('accepts %d', (pid) => {
    expect(validatePid(pid)).toBe(pid);
  });

  it.each([0, -1, -4242, 4_194_304, 2 ** 31, Number.MAX_SAFE_INTEGER])('rejects integer %d, naming it', (pid) => {
    einval(() => validatePid(pid), pid);
  });

  it.each([1.5, -0.5, NaN, Infinity, -Infinity])('rejects non-integer %d', (pid) => {
    einval(() => validatePid(pid), null);
  });

  it.each([['4242'], [4242n], [null], [undefined], [{}], [[4242]], [true]])('rejects non-number %s', (pid) => {
    const err = einval(() => validatePid(pid), null);
    expect(err.message).toContain('pid must be a number');
  });
});

describe('resolveSkew: offset forms', () => {
  it.each(([
    [{ sec: 1 }, 1_000_000_000n],
    [{ sec: -600 }, -600_000_000_000n],
    [{ sec: 1.5 }, 1_500_000_000n],
    [{ sec: -1.5 }, -1_500_000_000n],
    [{ sec: 0.3 }, 300_000_000n], // not 299999999: the decimal the caller wrote, not its binary value
    [{ sec: 0.1 }, 100_000_000n],
    [{ sec: 1e-9 }, 1n],
    [{ sec: 1.5e-9 }, 1n], // below 1 ns truncates toward zero
    [{ sec: -1.5e-9 }, -1n],
    [{ sec: 1e-10 }, 0n],
    [{ sec: 123456.789012345 }, 123_456_789_012_345n],
    [{ sec: 1e9 }, 1_000_000_000_000_000_000n],
    [{ sec: 9_000_000_000.5 }, 9_000_000_000_500_000_000n], // sec * 1e9 as a double is 256 ns short
    [{ sec: -9_000_000_000.5 }, -9_000_000_000_500_000_000n],
    [{ nsec: 1 }, 1n],
    [{ nsec: -1 }, -1n],
    [{ nsec: 2_500_000_000 }, 2_500_000_000n],
    [{ sec: 1, nsec: 500_000_000 }, 1_500_000_000n],
    [{ sec: -1, nsec: 500_000_000 }, -500_000_000n],
    [{ sec: 1, nsec: -500_000_000 }, 500_000_000n],
    [{ sec: -1, nsec: -500_000_000 }, -1_500_000_000n],
    [{ sec: 2, nsec: -3_000_000_000 }, -1_000_000_000n],
    [{ sec: 1.5, nsec: 1 }, 1_500_000_001n],
    [{ sec: 0, nsec: 0 }, 0n],
    [{ sec: -0 }, 0n],
    [{ offset: '-10m' }, -600_000_000_000n],
    [{ offset: '1h30m' }, 5_400_000_000_000n],
    [{ offset: '-1.5s' }, -1_500_000_000n],
    [{ offset: '100ns' }, 100n],
    [{ offset: '0' }, 0n],
    [{ offset: 123n }, 123n],
    [{ offset: -123n }, -123n],
    [{ offset: INT64_MAX }, INT64_MAX],
    [{ offset: -INT64_MAX }, -INT64_MAX],
    [{ offset: '2562047h47m16.854775807s' }, INT64_MAX],
  ] as Array<[object, bigint]>).map(([options, expected]) => [`${inspect(options)} → ${expected} ns`, options, expected] as const))('%s', (_label, options, expected) => {
    expect(offsetOf(options)).toBe(expected);
  });

  it('treats options that are present but undefined as absent', () => {
    expect(offsetOf({ sec: 2, offset: undefined, clockIds: undefined, replace: undefined })).toBe(2_000_000_000n);
    expect(offsetOf({ sec: undefined, nsec: undefined, offset: '1s' })).toBe(1_000_000_000n);
  });

  it('rejects both forms at once', () => {
    for (const options of [{ sec: 1, offset: '1s' }, { nsec: 1, offset: 1n }, { sec: 0, nsec: 0, offset: '0' }]) {
      expect(einval(() => resolveSkew(PID, options)).message).toContain('both offset and sec/nsec');
    }
  });

  it('rejects no offset at all', () => {
    for (const options of [{}, { clockIds: ['CLOCK_MONOTONIC'] }, { replace: true }, { sec: undefined }]) {
      expect(einval(() => resolveSkew(PID, options)).message).toContain('no offset given');
    }
  });

  it.each([NaN, Infinity, -Infinity, '1', 1n, null, true, {}])('rejects sec %s', (sec) => {
    expect(einval(() => resolveSkew(PID, { sec })).message).toContain('sec must be a finite number');
  });

  it.each([1.5, -0.1, NaN, Infinity, 2 ** 53, -(2 ** 60), '1', 1n, null])('rejects nsec %s', (nsec) => {
    expect(einval(() => resolveSkew(PID, { sec: 1, nsec })).message).toContain('nsec must be an integer');
  });

  it.each([5, 1.5, null, true, {}, ['1s']])('rejects offset of the wrong type: %j', (offset) => {
    const err = einval(() => resolveSkew(PID, { offset }));
    expect(err.message).toContain('offset must be a string or a bigint');
  });

  it.each(['', '10', '-10 m', '10min', '1d', 'abc', '1h-30m', '--1s'])('rejects malformed duration %j with examples', (offset) => {
    const err = einval(() => resolveSkew(PID, { offset }));
    expect(err.message).toContain('invalid duration');
    for (const example of ["'-10m'", "'1h30m'", "'-1.5s'", "'100ns'"]) expect(err.hint).toContain(example);
  });

  it.each<[string, object]>([
    ['bigint above int64', { offset: INT64_MAX + 1n }],
    ['bigint below -(2^63-1)', { offset: -INT64_MAX - 1n }],
    ['huge bigint', { offset: 10n ** 40n }],
    ['duration at -2^63', { offset: '-9223372036854775808ns' }], // valid for Go, but not symmetric
    ['duration beyond int64', { offset: '3000000h' }],
    ['huge sec', { sec: 1e300 }],
    ['sec just past the edge', { sec: 9_223_372_037 }],
    ['sec + nsec past the edge', { sec: 9_223_372_036, nsec: 854_775_808 }],
    ['negative sec + nsec past the edge', { sec: -9_223_372_036, nsec: -854_775_808 }],
  ])('rejects an offset out of range: %s', (_label, options) => {
    const err = einval(() => resolveSkew(PID, options));
    expect(err.message).toMatch(/out of range/);
  });

  it('accepts the edges of the range through sec + nsec', () => {
    expect(offsetOf({ sec: 9_223_372_036, nsec: 854_775_807 })).toBe(INT64_MAX);
    expect(offsetOf({ sec: -9_223_372_036, nsec: -854_775_807 })).toBe(-INT64_MAX);
  });
});

describe('resolveSkew: options object', () => {
  it.each([undefined, null, 5, 'offset', ['1s'], 1n])('rejects options that are not an object: %s', (options) => {
    expect(einval(() => resolveSkew(PID, options)).message).toContain('options must be an object');
  });

  it.each(['offsetNs', 'clockId', 'clocks', 'seconds', 'Replace', 'pid', '__proto__x'])('rejects unknown key %s, naming it', (key) => {
    const err = einval(() => resolveSkew(PID, { offset: '1s', [key]: 1 }));
    expect(err.message).toContain(`"${key}"`);
    expect(err.hint).toContain('clockIds');
  });

  it('rejects an unknown key even when its value is undefined', () => {
    einval(() => resolveSkew(PID, { offset: '1s', clockID: undefined }));
  });

  it('defaults to CLOCK_REALTIME, no replace, no forced syscall', () => {
    const r = resolveSkew(PID, { offset: '-10m' });
    expect(r.clockIds).toEqual(['CLOCK_REALTIME']);
    expect(r.replace).toBe(false);
    expect(r.forceSyscall).toBe(false);
    expect(r.table.mask).toBe(1);
  });

  it('passes replace and forceSyscall through', () => {
    const r = resolveSkew(PID, { offset: '1s', replace: true, forceSyscall: true });
    expect(r.replace).toBe(true);
    expect(r.forceSyscall).toBe(true);
  });

  it.each(['replace', 'forceSyscall'])('rejects a non-boolean %s', (key) => {
    for (const value of [1, 'true', null, {}]) {
      expect(einval(() => resolveSkew(PID, { offset: '1s', [key]: value })).message).toContain(`${key} must be a boolean`);
    }
  });
});

describe('resolveSkew: clocks and the native table', () => {
  const table = (clockIds: ClockId[], offset: bigint = 7n) => resolveSkew(PID, { offset, clockIds });

  it.each<[ClockId[], number, ClockId[]]>([
    [['CLOCK_REALTIME'], 0b1, ['CLOCK_REALTIME']],
    [['CLOCK_MONOTONIC'], 0b10, ['CLOCK_MONOTONIC']],
    [['CLOCK_TAI'], 1 << 11, ['CLOCK_TAI']],
    [['CLOCK_REALTIME', 'CLOCK_MONOTONIC'], 0b11, ['CLOCK_REALTIME', 'CLOCK_MONOTONIC']],
    [['CLOCK_MONOTONIC', 'CLOCK_REALTIME'], 0b11, ['CLOCK_REALTIME', 'CLOCK_MONOTONIC']],
    [['CLOCK_BOOTTIME', 'CLOCK_BOOTTIME', 'CLOCK_BOOTTIME'], 1 << 7, ['CLOCK_BOOTTIME']],
    [
      ['CLOCK_REALTIME_COARSE', 'CLOCK_REALTIME', 'CLOCK_TAI', 'CLOCK_REALTIME_ALARM'],
      (1 << 0) | (1 << 5) | (1 << 8) | (1 << 11),
      ['CLOCK_REALTIME', 'CLOCK_REALTIME_COARSE', 'CLOCK_REALTIME_ALARM', 'CLOCK_TAI'],
    ],
    [Object.keys(CLOCK_IDS) as ClockId[], 0b1011_1111_1111, Object.keys(CLOCK_IDS) as ClockId[]],
  ])('%j → mask %i', (clockIds, mask, canonical) => {
    const r = table(clockIds);
    expect(r.table.mask).toBe(mask);
    expect(r.clockIds).toEqual(canonical);
    expect(r.table.offsetsNs).toHaveLength(CLOCK_TABLE_SIZE);
    r.table.offsetsNs.forEach((offset, id) => {
      expect(offset).toBe((mask & (1 << id)) !== 0 ? 7n : 0n);
    });
  });

  it('fills every selected slot with a negative offset and leaves id 10 empty', () => {
    const r = resolveSkew(PID, { sec: -1, nsec: 500_000_000, clockIds: Object.keys(CLOCK_IDS) as ClockId[] });
    expect(r.table.offsetsNs).toEqual([
      ...Array<bigint>(10).fill(-500_000_000n),
      0n,
      -500_000_000n,
    ]);
  });

  it('does not alias the caller’s array', () => {
    const clockIds: ClockId[] = ['CLOCK_MONOTONIC'];
    const r = resolveSkew(PID, { offset: '1s', clockIds });
    clockIds.push('CLOCK_REALTIME');
    expect(r.clockIds).toEqual(['CLOCK_MONOTONIC']);
  });

  it('rejects an empty list', () => {
    expect(einval(() => resolveSkew(PID, { offset: '1s', clockIds: [] })).message).toContain('clockIds is empty');
  });

  it.each([['CLOCK_SGI_CYCLE'], ['clock_realtime'], ['REALTIME'], [0], ['toString'], ['__proto__'], [null]])(
    'rejects unknown clock %j, listing the valid ones',
    (name) => {
      const err = einval(() => resolveSkew(PID, { offset: '1s', clockIds: ['CLOCK_REALTIME', name] }));
      expect(err.message).toContain('unknown clock id');
      expect(err.hint).toContain('CLOCK_MONOTONIC');
    },
  );

  it.each(['CLOCK_REALTIME', { CLOCK_REALTIME: true }, 1])('rejects clockIds that is not an array: %j', (clockIds) => {
    expect(einval(() => resolveSkew(PID, { offset: '1s', clockIds })).message).toContain('clockIds must be an array');
  });
});

describe('resolveUpdate', () => {
  const current: ModelState = {
    offsetNs: -600_000_000_000n,
    clockIds: ['CLOCK_REALTIME', 'CLOCK_MONOTONIC'],
    offsets: { CLOCK_REALTIME: -600_000_000_000n, CLOCK_MONOTONIC: -600_000_000_000n },
    rateQ32: 0n,
  };

  it('keeps every clock where it is when nothing is given (keepMask), at the same rate', () => {
    const r = resolveUpdate(PID, {}, current);
    expect(r.offsetNs).toBe(current.offsetNs);
    expect(r.clockIds).toEqual(current.clockIds);
    expect(r.offsets).toEqual(current.offsets);
    expect(r.unknown).toEqual([]);
    expect(r.table).toEqual({
      mask: 0b11,
      keepMask: 0b11,
      absoluteMask: 0,
      rate: 0n,
      offsetsNs: [-600_000_000_000n, -600_000_000_000n, ...Array<bigint>(10).fill(0n)],
    });
  });

  it('replaces only what is given', () => {
    expect(resolveUpdate(PID, { offset: '1s' }, current)).toMatchObject({
      offsetNs: 1_000_000_000n,
      clockIds: ['CLOCK_REALTIME', 'CLOCK_MONOTONIC'],
      table: { keepMask: 0 },
    });
    expect(resolveUpdate(PID, { sec: -1, nsec: 1 }, current).offsetNs).toBe(-999_999_999n);
    const clocksOnly = resolveUpdate(PID, { clockIds: ['CLOCK_BOOTTIME', 'CLOCK_BOOTTIME'] }, current);
    expect(clocksOnly.offsetNs).toBe(current.offsetNs);
    expect(clocksOnly.clockIds).toEqual(['CLOCK_BOOTTIME']);
    expect(clocksOnly.table.mask).toBe(1 << 7);
    expect(clocksOnly.table.keepMask).toBe(0); // a new clock: it gets offsetNs
    expect(clocksOnly.table.offsetsNs[7]).toBe(current.offsetNs);
    expect(clocksOnly.table.offsetsNs[0]).toBe(0n);
    // A clock that stays keeps its skew; the one added gets offsetNs.
    const more = resolveUpdate(PID, { clockIds: ['CLOCK_REALTIME', 'CLOCK_TAI'] }, current);
    expect(more.table).toMatchObject({ mask: 1 | (1 << 11), keepMask: 1 });
    expect(more.offsets).toEqual({ CLOCK_REALTIME: -600_000_000_000n, CLOCK_TAI: -600_000_000_000n });
  });

  it('a rate change alone keeps every clock (no jump); with an offset the clocks re-anchor', () => {
    const rateOnly = resolveUpdate(PID, { rate: 1.5 }, current);
    expect(rateOnly.table).toMatchObject({ keepMask: 0b11, rate: 2n ** 31n });
    expect(rateOnly.offsets).toEqual(current.offsets); // known: the skew was constant until now
    const frozen = resolveUpdate(PID, { freeze: true }, current);
    expect(frozen.table).toMatchObject({ keepMask: 0b11, rate: -(2n ** 32n) });
    const both = resolveUpdate(PID, { rate: 2, offset: '1h' }, current);
    expect(both.table).toMatchObject({ keepMask: 0, rate: 2n ** 32n });
    expect(both.offsets).toEqual({ CLOCK_REALTIME: 3_600_000_000_000n, CLOCK_MONOTONIC: 3_600_000_000_000n });
  });

  it('a clock kept while a rate is in force has a skew only the target knows', () => {
    const drifting: ModelState = { ...current, rateQ32: 2n ** 31n };
    const r = resolveUpdate(PID, { freeze: false }, drifting);
    expect(r.table).toMatchObject({ keepMask: 0b11, rate: 0n });
    expect(r.offsets).toEqual({});
    expect(r.unknown).toEqual(['CLOCK_REALTIME', 'CLOCK_MONOTONIC']);
    // Unchanged rate when not given.
    expect(resolveUpdate(PID, { offset: '1s' }, drifting).table.rate).toBe(2n ** 31n);
  });

  it('per-clock offsets re-anchor the named clocks, add new ones, and keep the others', () => {
    const r = resolveUpdate(PID, { offsets: { CLOCK_MONOTONIC: '5s', CLOCK_BOOTTIME: -1n } }, current);
    expect(r.clockIds).toEqual(['CLOCK_REALTIME', 'CLOCK_MONOTONIC', 'CLOCK_BOOTTIME']);
    expect(r.table).toMatchObject({ mask: 0b1000_0011, keepMask: 1 });
    expect(r.offsets).toEqual({ CLOCK_REALTIME: -600_000_000_000n, CLOCK_MONOTONIC: 5_000_000_000n, CLOCK_BOOTTIME: -1n });
    expect(r.offsetNs).toBe(current.offsetNs);
  });

  it('at re-anchors the realtime clocks to an absolute time and keeps the others', () => {
    const r = resolveUpdate(PID, { at: 946_684_800_000_000_000n }, current);
    expect(r.table).toMatchObject({ mask: 0b11, keepMask: 0b10, absoluteMask: 0b01 });
    expect(r.table.offsetsNs[0]).toBe(946_684_800_000_000_000n);
    expect(r.unknown).toEqual(['CLOCK_REALTIME']);
  });

  it('applies the same rules as resolveSkew', () => {
    einval(() => resolveUpdate(PID, { sec: 1, offset: '1s' }, current));
    einval(() => resolveUpdate(PID, { offset: 'soon' }, current));
    einval(() => resolveUpdate(PID, { offset: INT64_MAX + 1n }, current));
    einval(() => resolveUpdate(PID, { clockIds: [] }, current));
    einval(() => resolveUpdate(PID, null, current));
    einval(() => resolveUpdate(PID, { rate: 5 }, current));
    einval(() => resolveUpdate(PID, { freeze: true, rate: 1 }, current));
    einval(() => resolveUpdate(PID, { offsets: { CLOCK_TAI: '1s' }, clockIds: ['CLOCK_TAI'] }, current));
  });

  it.each(['replace', 'forceSyscall', 'pid'])('rejects %s, which only skewClock takes', (key) => {
    expect(einval(() => resolveUpdate(PID, { [key]: true }, current)).message).toContain(`"${key}"`);
  });
});

describe('rate conversion (lib/models)', () => {
  it.each<[number, bigint]>([
    [1, 0n],
    [0, -(2n ** 32n)],
    [2, 2n ** 32n],
    [4, 3n * 2n ** 32n],
    [1.5, 2n ** 31n],
    [0.5, -(2n ** 31n)],
    [1.0005, 2147484n], // 0.0005 * 2^32 = 2147483.648, from the decimal digits, not 1.0005 - 1 in doubles
    [0.9995, -2147484n],
    [1.000001, 4295n], // 4294.967296
    [1 + 1e-9, 4n], // 4.294967296
    [1.00000000011641532, 0n], // just below half a step
    [0.1, -3865470566n], // -0.9 * 2^32 = -3865470566.4
  ])('rate %d → Q32 %d', (rate, q32) => {
    expect(rateToQ32(rate)).toBe(q32);
  });

  it.each<[number, bigint]>([
    [0, 0n],
    [500, 2147484n],
    [-250, -1073742n], // -1073741.824
    [1, 4295n],
    [0.001, 4n], // 4.294967296
    [-1e6, -(2n ** 32n)],
    [3e6, 3n * 2n ** 32n],
    [1e-7, 0n],
  ])('driftPpm %d → Q32 %d', (ppm, q32) => {
    expect(driftPpmToQ32(ppm)).toBe(q32);
  });

  it('gives back the real rate and drift of a Q32 value', () => {
    expect(q32ToRate(0n)).toBe(1);
    expect(q32ToRate(-(2n ** 32n))).toBe(0);
    expect(q32ToRate(2n ** 31n)).toBe(1.5);
    expect(q32ToRate(-1n)).toBe(1 - 2 ** -32);
    expect(q32ToRate(3n * 2n ** 32n)).toBe(4);
    expect(q32ToRate(2147484n)).toBeCloseTo(1.0005, 9);
    expect(q32ToDriftPpm(2147484n)).toBeCloseTo(500, 3);
    // Round trip through the real number is exact for every Q32 value.
    for (const q of [1n, -1n, 123456789n, -(2n ** 32n) + 1n, 3n * 2n ** 32n - 1n]) expect(rateToQ32(q32ToRate(q))).toBe(q);
  });
});

describe('resolveSkew: clock models', () => {
  it('rate, driftPpm and freeze set the Q32 rate of the selected clocks, with no offset needed', () => {
    expect(resolveSkew(PID, { rate: 1.0005 })).toMatchObject({
      clockIds: ['CLOCK_REALTIME'],
      rateQ32: 2147484n,
      offsets: { CLOCK_REALTIME: 0n },
      table: { mask: 1, rate: 2147484n, keepMask: 0, absoluteMask: 0 },
    });
    expect(resolveSkew(PID, { driftPpm: 500, clockIds: ['CLOCK_MONOTONIC'] }).table).toMatchObject({ mask: 2, rate: 2147484n });
    expect(resolveSkew(PID, { freeze: true }).table.rate).toBe(-(2n ** 32n));
    expect(resolveSkew(PID, { freeze: false }).table.rate).toBe(0n);
    expect(resolveSkew(PID, { rate: 0 }).table.rate).toBe(-(2n ** 32n));
    expect(resolveSkew(PID, { offset: '1s', rate: 2 }).table).toMatchObject({ rate: 2n ** 32n, offsetsNs: expect.arrayContaining([1_000_000_000n]) });
    expect(resolveSkew(PID, { offset: '1s' }).table).toMatchObject({ rate: 0n, keepMask: 0, absoluteMask: 0 });
  });

  it.each<[string, object, string]>([
    ['rate above 4', { rate: 4.000001 }, 'out of range'],
    ['negative rate', { rate: -0.1 }, 'out of range'],
    ['NaN rate', { rate: NaN }, 'finite number'],
    ['string rate', { rate: '2' }, 'finite number'],
    ['driftPpm below -1e6', { driftPpm: -1_000_001 }, 'out of range'],
    ['driftPpm above 3e6', { driftPpm: 3_000_001 }, 'out of range'],
    ['Infinity driftPpm', { driftPpm: Infinity }, 'finite number'],
    ['rate and driftPpm', { rate: 1, driftPpm: 0 }, 'both rate and driftPpm'],
    ['freeze and rate', { freeze: true, rate: 1 }, 'both freeze and rate'],
    ['freeze and driftPpm', { freeze: false, driftPpm: 5 }, 'both freeze and driftPpm'],
    ['non-boolean freeze', { freeze: 1 }, 'freeze must be a boolean'],
  ])('rejects %s', (_label, options, message) => {
    const err = einval(() => resolveSkew(PID, options));
    expect(err.message).toContain(message);
  });

  it('names the valid range in the hint', () => {
    expect(einval(() => resolveSkew(PID, { rate: 10 })).hint).toMatch(/\[0, 4\]/);
    expect(einval(() => resolveSkew(PID, { driftPpm: 1e7 })).hint).toMatch(/500 = rate 1\.0005/);
  });
});

describe('resolveSkew: per-clock offsets', () => {
  it('selects the named clocks, each with its own offset', () => {
    const r = resolveSkew(PID, { offsets: { CLOCK_MONOTONIC: '5s', CLOCK_REALTIME: '-10m', CLOCK_TAI: 7n } });
    expect(r.clockIds).toEqual(['CLOCK_REALTIME', 'CLOCK_MONOTONIC', 'CLOCK_TAI']);
    expect(r.table.mask).toBe(0b11 | (1 << 11));
    expect(r.table.offsetsNs[0]).toBe(-600_000_000_000n);
    expect(r.table.offsetsNs[1]).toBe(5_000_000_000n);
    expect(r.table.offsetsNs[11]).toBe(7n);
    expect(r.offsets).toEqual({ CLOCK_REALTIME: -600_000_000_000n, CLOCK_MONOTONIC: 5_000_000_000n, CLOCK_TAI: 7n });
    expect(r.offsetNs).toBe(-600_000_000_000n); // the first clock's, in id order
  });

  it.each<[string, unknown, string]>([
    ['with offset', { offsets: { CLOCK_REALTIME: '1s' }, offset: '1s' }, 'both offsets and offset/sec/nsec'],
    ['with sec', { offsets: { CLOCK_REALTIME: '1s' }, sec: 1 }, 'both offsets and offset/sec/nsec'],
    ['with clockIds', { offsets: { CLOCK_REALTIME: '1s' }, clockIds: ['CLOCK_REALTIME'] }, 'both offsets and clockIds'],
    ['empty', { offsets: {} }, 'offsets is empty'],
    ['an array', { offsets: ['1s'] }, 'offsets must be an object'],
    ['an unknown clock', { offsets: { CLOCK_WALL: '1s' } }, 'unknown clock id "CLOCK_WALL"'],
    ['an inherited name', { offsets: { toString: '1s' } }, 'unknown clock id'],
    ['a malformed duration', { offsets: { CLOCK_REALTIME: '1 s' } }, 'offsets.CLOCK_REALTIME'],
    ['a number', { offsets: { CLOCK_REALTIME: 5 } }, 'offsets.CLOCK_REALTIME must be a string or a bigint'],
    ['out of range', { offsets: { CLOCK_REALTIME: 2n ** 63n } }, 'out of range'],
  ])('rejects offsets %s', (_label, options, message) => {
    expect(einval(() => resolveSkew(PID, options)).message).toContain(message);
  });
});

describe('resolveSkew: absolute time (at)', () => {
  const Y2K = 946_684_800_000_000_000n;

  it('makes CLOCK_REALTIME read `at` (absoluteMask), selecting it', () => {
    const r = resolveSkew(PID, { at: new Date('2000-01-01T00:00:00Z') });
    expect(r.clockIds).toEqual(['CLOCK_REALTIME']);
    expect(r.table).toMatchObject({ mask: 1, absoluteMask: 1, keepMask: 0, rate: 0n });
    expect(r.table.offsetsNs[0]).toBe(Y2K);
    expect(r.unknown).toEqual(['CLOCK_REALTIME']);
    expect(r.offsets).toEqual({});
  });

  it.each<[string, unknown, bigint]>([
    ['a Date', new Date('2000-01-01T00:00:00.123Z'), Y2K + 123_000_000n],
    ['an ISO string', '2000-01-01T00:00:00Z', Y2K],
    ['an ISO string with ns', '2000-01-01T00:00:00.123456789Z', Y2K + 123_456_789n],
    ['an ISO string with µs', '2000-01-01T00:00:00.000001Z', Y2K + 1_000n],
    ['an ISO string with an offset', '2000-01-01T01:00:00.5+01:00', Y2K + 500_000_000n],
    ['bigint ns', Y2K + 1n, Y2K + 1n],
    ['the epoch', 0n, 0n],
  ])('accepts %s', (_label, at, ns) => {
    expect(parseInstant(at)).toBe(ns);
    expect(resolveSkew(PID, { at }).table.offsetsNs[0]).toBe(ns);
  });

  it('combines with freeze (frozen at `at`), a rate, and offsets for other clocks', () => {
    expect(resolveSkew(PID, { at: Y2K, freeze: true }).table).toMatchObject({ absoluteMask: 1, rate: -(2n ** 32n) });
    const r = resolveSkew(PID, { at: Y2K, rate: 2, offset: '5s', clockIds: ['CLOCK_MONOTONIC', 'CLOCK_REALTIME_COARSE', 'CLOCK_TAI'] });
    expect(r.clockIds).toEqual(['CLOCK_REALTIME', 'CLOCK_MONOTONIC', 'CLOCK_REALTIME_COARSE', 'CLOCK_TAI']);
    expect(r.table.absoluteMask).toBe(1 | (1 << 5)); // the realtime clocks read `at`; TAI takes the offset
    expect(r.table.offsetsNs[5]).toBe(Y2K);
    expect(r.table.offsetsNs[1]).toBe(5_000_000_000n);
    expect(r.table.offsetsNs[11]).toBe(5_000_000_000n);
    const withOffsets = resolveSkew(PID, { at: Y2K, offsets: { CLOCK_MONOTONIC: '1s' } });
    expect(withOffsets.clockIds).toEqual(['CLOCK_REALTIME', 'CLOCK_MONOTONIC']);
    expect(withOffsets.table).toMatchObject({ absoluteMask: 1 });
  });

  it.each<[string, unknown, string]>([
    ['a number', { at: 946684800000 }, 'at must be a Date, a string or a bigint'],
    ['an invalid Date', { at: new Date('nope') }, 'the Date is invalid'],
    ['a bad string', { at: 'yesterday' }, 'invalid date'],
    ['too many fraction digits', { at: '2000-01-01T00:00:00.1234567891Z' }, 'more than 9 fraction digits'],
    ['before 1970', { at: -1n }, 'outside the supported range'],
    ['after 2262', { at: 2n ** 63n }, 'outside the supported range'],
    ['an offset for no clock', { at: Y2K, offset: '1s' }, 'applies to no clock'],
    ['an offset for CLOCK_REALTIME too', { at: Y2K, offsets: { CLOCK_REALTIME: '1s' } }, 'both at and an offset for CLOCK_REALTIME'],
  ])('rejects %s', (_label, options, message) => {
    expect(einval(() => resolveSkew(PID, options)).message).toContain(message);
  });
});

describe('clock helpers', () => {
  it('maps every name to its Linux id', () => {
    expect(CLOCK_IDS).toEqual({
      CLOCK_REALTIME: 0,
      CLOCK_MONOTONIC: 1,
      CLOCK_PROCESS_CPUTIME_ID: 2,
      CLOCK_THREAD_CPUTIME_ID: 3,
      CLOCK_MONOTONIC_RAW: 4,
      CLOCK_REALTIME_COARSE: 5,
      CLOCK_MONOTONIC_COARSE: 6,
      CLOCK_BOOTTIME: 7,
      CLOCK_REALTIME_ALARM: 8,
      CLOCK_BOOTTIME_ALARM: 9,
      CLOCK_TAI: 11,
    });
    expect(Object.isFrozen(CLOCK_IDS)).toBe(true);
  });

  it('round-trips lists and masks', () => {
    expect(clockIdsToMask([])).toBe(0);
    expect(maskToClockIds(0)).toEqual([]);
    expect(maskToClockIds(1 << 10)).toEqual([]); // no clock 10
    expect(maskToClockIds(clockIdsToMask(['CLOCK_TAI', 'CLOCK_MONOTONIC']))).toEqual(['CLOCK_MONOTONIC', 'CLOCK_TAI']);
  });
});

describe('errors', () => {
  it('formats code, message, pid and hint', () => {
    const err = invalid(12, 'bad thing', 'do the other thing');
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe('EINVAL: bad thing (pid 12)\nhint: do the other thing');
    expect(err.name).toBe('TimeSkewError');
    expect(String(err)).toMatch(/^TimeSkewError: EINVAL: bad thing/);
  });

  it('converts a native error, keeping it as cause', () => {
    const nativeErr = Object.assign(new Error('ptrace(PTRACE_SEIZE) failed'), {
      code: 'EPERM',
      errno: 1,
      syscall: 'ptrace',
      pid: 77,
      hint: 'run as root',
    });
    const err = fromNative(nativeErr, 99);
    expect(err).toBeInstanceOf(TimeSkewError);
    expect(err).toMatchObject({ code: 'EPERM', errno: 1, syscall: 'ptrace', pid: 77, hint: 'run as root' });
    expect(err.cause).toBe(nativeErr);
    expect(err.message).toBe('EPERM: ptrace(PTRACE_SEIZE) failed (pid 77)\nhint: run as root');
  });

  it('falls back to the caller’s pid, EUNKNOWN and a default hint', () => {
    const err = fromNative(Object.assign(new Error('weird'), { code: 'EWHATEVER' }), 5);
    expect(err).toMatchObject({ code: 'EUNKNOWN', pid: 5 });
    expect(err.message).toContain('weird');
    expect(fromNative(Object.assign(new Error('no'), { code: 'EPERM' }), 5).hint).toContain('ptrace_scope');
    expect(fromNative('a string', 5)).toMatchObject({ code: 'EUNKNOWN', pid: 5 });
    expect(fromNative(Object.assign(new Error('x'), { code: 'EACCES' }), 5).code).toBe('EPERM');
  });

  it('passes a TimeSkewError through untouched', () => {
    const err = invalid(1, 'x', 'y');
    expect(fromNative(err, 2)).toBe(err);
  });
});
