// The numbers behind the clock models (rate, drift, freeze, absolute time), converted exactly.
//
// The fake computes fake(t) = t + floor(t * rate / 2^32) + base with integers only, so the rate a
// caller asks for becomes a Q32 fixed-point integer here. It is computed from the decimal digits the
// caller wrote (the shortest form of the number, as for `sec`), with bigint arithmetic: 1.0005 is
// 2^32 * 0.0005 = 2147483.648 -> 2147484, not whatever (1.0005 - 1) * 2^32 happens to give in
// doubles (1.0005 - 1 is 0.0004999999999999449). One Q32 step is 2^-32, about 0.00023 ppm.

/** Q32 of the real rate 1: the value by which the fake's rate term scales the real reading. */
export const Q32_ONE = 1n << 32n;
/** A frozen clock: fake(t) = t - t + base. */
export const RATE_FROZEN = -Q32_ONE;
/** The fastest clock the fake accepts (4x real speed): beyond it, its 64-bit arithmetic could overflow. */
export const RATE_MAX = 3n * Q32_ONE;
/** Real rates (speed of the skewed clock relative to the real one) that the fake accepts. */
export const MIN_REAL_RATE = 0;
export const MAX_REAL_RATE = 4;
/** driftPpm range matching [MIN_REAL_RATE, MAX_REAL_RATE]. */
export const MIN_DRIFT_PPM = -1_000_000;
export const MAX_DRIFT_PPM = 3_000_000;

const INT64_MAX = (1n << 63n) - 1n;
const NS_PER_MS = 1_000_000n;

/** A finite number as digits * 10^exponent, from its shortest decimal form (the digits the caller wrote). */
export function decimalOf(value: number): { digits: bigint; exponent: number } {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(value));
  if (!match) throw new RangeError(`not a finite number: ${String(value)}`);
  const [, sign, whole, fraction = '', exponent = '0'] = match;
  const digits = BigInt(whole + fraction);
  return { digits: sign === '-' ? -digits : digits, exponent: Number(exponent) - fraction.length };
}

/** numerator / denominator rounded to the nearest integer, halves away from zero. denominator > 0. */
function roundDiv(numerator: bigint, denominator: bigint): bigint {
  const magnitude = numerator < 0n ? -numerator : numerator;
  const rounded = (2n * magnitude + denominator) / (2n * denominator);
  return numerator < 0n ? -rounded : rounded;
}

/** digits * 10^exponent * scale, rounded to an integer. */
function scaleDecimal(value: number, scale: bigint): bigint {
  const { digits, exponent } = decimalOf(value);
  if (exponent >= 0) return digits * 10n ** BigInt(exponent) * scale;
  return roundDiv(digits * scale, 10n ** BigInt(-exponent));
}

/**
 * The Q32 rate field for a real rate r (1 = real speed, 0 = frozen): round((r - 1) * 2^32).
 * The caller checks the range [0, 4] first.
 */
export function rateToQ32(rate: number): bigint {
  return scaleDecimal(rate, Q32_ONE) - Q32_ONE;
}

/** The Q32 rate field for a drift in parts per million: round(ppm * 2^32 / 1e6). */
export function driftPpmToQ32(ppm: number): bigint {
  const { digits, exponent } = decimalOf(ppm);
  // ppm * 2^32 / 10^6 = digits * 2^32 * 10^(exponent - 6)
  const shift = exponent - 6;
  if (shift >= 0) return digits * Q32_ONE * 10n ** BigInt(shift);
  return roundDiv(digits * Q32_ONE, 10n ** BigInt(-shift));
}

/** The real rate a Q32 field stands for (1 = real speed), as the nearest double. */
export function q32ToRate(q32: bigint): number {
  // Split so that the double keeps every bit that matters: q32 / 2^32 = whole + fraction.
  const whole = q32 >> 32n; // floor
  const fraction = q32 - (whole << 32n);
  return 1 + Number(whole) + Number(fraction) / 2 ** 32;
}

/** The drift of a Q32 rate, in parts per million (0 = real speed, -1e6 = frozen). */
export function q32ToDriftPpm(q32: bigint): number {
  return (Number(q32) / 2 ** 32) * 1e6;
}

/**
 * A point in time as nanoseconds since the Unix epoch, from a Date, a bigint of nanoseconds, or a
 * string that Date.parse understands ('2000-01-01T00:00:00Z'). Digits of an ISO string beyond the
 * millisecond ('...:00.123456789Z') are kept, which Date.parse alone would drop. Throws a plain
 * Error (callers turn it into EINVAL) when the value is not a valid time.
 */
export function parseInstant(value: unknown): bigint {
  let ns: bigint;
  if (typeof value === 'bigint') {
    ns = value;
  } else if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new Error('the Date is invalid');
    ns = BigInt(ms) * NS_PER_MS;
  } else if (typeof value === 'string') {
    ns = parseInstantString(value);
  } else {
    throw new Error(`expected a Date, a date string or bigint nanoseconds since the epoch, got ${typeof value}`);
  }
  if (ns < 0n || ns > INT64_MAX) {
    throw new Error(`${ns} ns since the epoch is outside the supported range (1970 to 2262)`);
  }
  return ns;
}

function parseInstantString(text: string): bigint {
  // Fractional seconds: Date.parse keeps milliseconds only, so split off the digits beyond them.
  const fraction = /(\d{2}:\d{2}:\d{2})[.,](\d+)/.exec(text);
  let extraNs = 0n;
  let forDate = text;
  if (fraction && fraction[2]!.length > 3) {
    const digits = fraction[2]!;
    if (digits.length > 9) throw new Error(`invalid date ${JSON.stringify(text)}: more than 9 fraction digits`);
    extraNs = BigInt(digits.slice(3).padEnd(6, '0'));
    forDate = text.replace(fraction[0], `${fraction[1]}.${digits.slice(0, 3)}`);
  }
  const ms = Date.parse(forDate);
  if (Number.isNaN(ms)) throw new Error(`invalid date ${JSON.stringify(text)}`);
  // Before 1970 the millisecond is floored, so sub-millisecond digits still count forward.
  return BigInt(ms) * NS_PER_MS + extraNs;
}
