// Go-style durations ("-10m", "1h30m", "1.5s"), because that is the notation people already use
// for clock offsets in CLIs and config files. Parsing and formatting are bit-compatible with Go's
// time.ParseDuration and Duration.String(), so a value copied from a Go tool means the same here.

const NS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n], // micro sign
  ['\u03bcs', 1_000n], // Greek small letter mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN_MAGNITUDE = 1n << 63n;

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

/**
 * Parses a duration such as "300ms", "-1.5h" or "2h45m" into nanoseconds.
 * Accepts exactly what Go's time.ParseDuration accepts and returns the same value; throws a plain
 * Error (callers turn it into EINVAL) for anything else, including values outside int64.
 */
export function parseDuration(text: string): bigint {
  if (typeof text !== 'string') throw new TypeError(`duration must be a string, got ${typeof text}`);
  const fail = (why: string): Error => new Error(`invalid duration ${JSON.stringify(text)}: ${why}`);

  let s = text;
  let negative = false;
  if (s[0] === '-' || s[0] === '+') {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  // A bare zero is the one number that needs no unit, as in Go.
  if (s === '0') return 0n;
  if (s === '') throw fail('no number');

  const limit = negative ? INT64_MIN_MAGNITUDE : INT64_MAX;
  let total = 0n;
  let i = 0;
  while (i < s.length) {
    if (!(isDigit(s[i]) || s[i] === '.')) throw fail(`unexpected ${JSON.stringify(s[i])}`);

    const intStart = i;
    while (isDigit(s[i])) i++;
    const intDigits = s.slice(intStart, i);
    let fracDigits = '';
    if (s[i] === '.') {
      const fracStart = ++i;
      while (isDigit(s[i])) i++;
      fracDigits = s.slice(fracStart, i);
    }
    if (intDigits === '' && fracDigits === '') throw fail('a number needs digits');

    // Like Go, the unit is everything up to the next number, so "1 s" is an unknown unit " s".
    const unitStart = i;
    while (i < s.length && !isDigit(s[i]) && s[i] !== '.') i++;
    const unit = s.slice(unitStart, i);
    if (unit === '') throw fail('missing unit');
    const unitNs = NS_PER_UNIT.get(unit);
    if (unitNs === undefined) throw fail(`unknown unit ${JSON.stringify(unit)} (use ns, us, µs, ms, s, m, h)`);

    total += BigInt(intDigits || '0') * unitNs + fractionNs(fracDigits, unitNs);
    // Checked per term, not only at the end, so a huge input fails fast instead of growing a bigint.
    if (total > limit) throw fail('value out of range (int64 nanoseconds)');
  }
  return negative ? -total : total;
}

/**
 * Nanoseconds contributed by the digits after the decimal point, truncated toward zero.
 *
 * This deliberately reproduces Go's arithmetic (leadingFraction plus one float64 multiply) rather
 * than exact decimal arithmetic. The integer part above is exact bigint math; only this term, which
 * is always below one unit (<= 3.6e12 ns), goes through a double. The two differ only for inputs with
 * more than ~15 significant fraction digits that land within a rounding error of a whole nanosecond:
 * Go's own test suite pins "0.3333333333333333333h" to exactly 20m, which exact math would make
 * 19m59.999999999s. IEEE-754 doubles behave identically in V8 and Go, so the result is bit-for-bit Go's.
 */
function fractionNs(digits: string, unitNs: bigint): bigint {
  let numerator = 0n;
  let scale = 1;
  for (const c of digits) {
    // Go stops accumulating once the numerator would leave uint64 territory and ignores the rest.
    if (numerator > INT64_MAX / 10n) break;
    const next = numerator * 10n + BigInt(c.charCodeAt(0) - 48);
    if (next > INT64_MIN_MAGNITUDE) break;
    numerator = next;
    scale *= 10;
  }
  if (numerator === 0n) return 0n;
  return BigInt(Math.trunc(Number(numerator) * (Number(unitNs) / scale)));
}

/**
 * Formats nanoseconds the way Go's Duration.String() does: "1h30m0s", "-10m0s", "1.5s", "1.5µs",
 * "100ns", "0s". Throws RangeError outside int64, where Go has no such duration.
 */
export function formatDuration(ns: bigint): string {
  if (typeof ns !== 'bigint') throw new TypeError(`nanoseconds must be a bigint, got ${typeof ns}`);
  if (ns > INT64_MAX || ns < -INT64_MIN_MAGNITUDE) throw new RangeError(`${ns} ns is outside the int64 range`);
  if (ns === 0n) return '0s';

  const sign = ns < 0n ? '-' : '';
  const u = ns < 0n ? -ns : ns;

  // Below one second Go switches to the largest unit that keeps an integer part: 1.5ms, 1.5µs, 100ns.
  if (u < 1_000n) return `${sign}${u}ns`;
  if (u < 1_000_000n) return `${sign}${decimal(u, 3)}\u00b5s`;
  if (u < 1_000_000_000n) return `${sign}${decimal(u, 6)}ms`;

  // From one second up: hours and minutes as integers, seconds with their fraction. Zero minutes and
  // seconds are still printed ("1h0m0s") whenever a larger unit is present, exactly as Go does.
  const seconds = decimal(u % 60_000_000_000n, 9);
  const totalMinutes = u / 60_000_000_000n;
  if (totalMinutes === 0n) return `${sign}${seconds}s`;
  const hours = totalMinutes / 60n;
  const minutes = totalMinutes % 60n;
  return hours === 0n ? `${sign}${minutes}m${seconds}s` : `${sign}${hours}h${minutes}m${seconds}s`;
}

/** value / 10^places as a decimal string, without trailing fractional zeros or a bare point. */
function decimal(value: bigint, places: number): string {
  const divisor = 10n ** BigInt(places);
  const whole = value / divisor;
  const fraction = (value % divisor).toString().padStart(places, '0').replace(/0+$/, '');
  return fraction === '' ? `${whole}` : `${whole}.${fraction}`;
}
