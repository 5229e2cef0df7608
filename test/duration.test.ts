import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../lib/duration';

const NS = 1n;
const US = 1_000n * NS;
const MS = 1_000n * US;
const S = 1_000n * MS;
const M = 60n * S;
const H = 60n * M;
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

describe('parseDuration', () => {
  // Go's own table (src/time/time_test.go, parseDurationTests); the expected values are Go's.
  const goTable: Array<[string, bigint]> = [
    ['0', 0n],
    ['5s', 5n * S],
    ['30s', 30n * S],
    ['1478s', 1478n * S],
    ['-5s', -5n * S],
    ['+5s', 5n * S],
    ['-0', 0n],
    ['+0', 0n],
    ['5.0s', 5n * S],
    ['5.6s', 5n * S + 600n * MS],
    ['5.s', 5n * S],
    ['.5s', 500n * MS],
    ['1.0s', 1n * S],
    ['1.00s', 1n * S],
    ['1.004s', 1n * S + 4n * MS],
    ['1.0040s', 1n * S + 4n * MS],
    ['100.00100s', 100n * S + 1n * MS],
    ['10ns', 10n * NS],
    ['11us', 11n * US],
    ['12\u00b5s', 12n * US],
    ['12\u03bcs', 12n * US],
    ['13ms', 13n * MS],
    ['14s', 14n * S],
    ['15m', 15n * M],
    ['16h', 16n * H],
    ['3h30m', 3n * H + 30n * M],
    ['10.5s4m', 4n * M + 10n * S + 500n * MS],
    ['-2m3.4s', -(2n * M + 3n * S + 400n * MS)],
    ['1h2m3s4ms5us6ns', 1n * H + 2n * M + 3n * S + 4n * MS + 5n * US + 6n * NS],
    ['39h9m14.425s', 39n * H + 9n * M + 14n * S + 425n * MS],
    ['52763797000ns', 52763797000n * NS],
    ['0.3333333333333333333h', 20n * M],
    ['9007199254740993ns', (1n << 53n) + 1n],
    ['9223372036854775807ns', INT64_MAX],
    ['9223372036854775.807us', INT64_MAX],
    ['9223372036s854ms775us807ns', INT64_MAX],
    ['-9223372036854775808ns', INT64_MIN],
    ['-9223372036854775.808us', INT64_MIN],
    ['-9223372036s854ms775us808ns', INT64_MIN],
    ['-2562047h47m16.854775808s', INT64_MIN],
    ['0.100000000000000000000h', 6n * M],
    ['0.830103483285477580700h', 49n * M + 48n * S + 372539827n * NS],
  ];
  it.each(goTable)('parses Go test case %j', (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });

  // The examples from Go's ParseDuration documentation.
  it.each([
    ['300ms', 300n * MS],
    ['-1.5h', -(H + 30n * M)],
    ['2h45m', 2n * H + 45n * M],
    ['10h', 10n * H],
    ['1h10m10s', H + 10n * M + 10n * S],
    ['1\u00b5s', US],
    ['1us', US],
  ])('parses documented example %j', (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });

  it.each([
    ['-10m', -10n * M],
    ['1h30m', H + 30n * M],
    ['-1.5s', -1_500_000_000n],
    ['100ns', 100n],
    ['1.s', S],
    ['0s', 0n],
    ['-0s', 0n],
    ['0.0s', 0n],
    ['000001s', S],
    ['1m1m1m', 3n * M],
    ['1s1h', H + S],
    ['0.5h', 30n * M],
    ['1.5ms', 1_500_000n],
    ['2.25\u03bcs', 2_250n],
  ])('parses %j', (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });

  describe('is exact where a float would not be', () => {
    it('keeps one nanosecond in a fraction of a second', () => {
      expect(parseDuration('0.000000001s')).toBe(1n);
      expect(parseDuration('1.000000001s')).toBe(1_000_000_001n);
      expect(parseDuration('-0.000000001s')).toBe(-1n);
    });
    it('keeps every digit of a large integer part', () => {
      expect(parseDuration('9007199254740993ns')).toBe(9007199254740993n); // 2^53 + 1
      expect(parseDuration('2562047h47m16.854775807s')).toBe(INT64_MAX);
      expect(parseDuration('106751h')).toBe(106751n * H);
    });
    it('keeps a large value with a fraction exact', () => {
      // As a double, 9223372036.854775807 s is 9223372036.854776 s.
      expect(parseDuration('9223372036.854775807s')).toBe(INT64_MAX);
      expect(parseDuration('1000000.123456789s')).toBe(1_000_000_123_456_789n);
    });
    it('truncates below one nanosecond toward zero, per term, like Go', () => {
      expect(parseDuration('1.0000000001s')).toBe(S);
      expect(parseDuration('1.9999999999s')).toBe(S + 999_999_999n);
      expect(parseDuration('-1.9999999999s')).toBe(-(S + 999_999_999n));
      expect(parseDuration('0.0000000009s')).toBe(0n);
      expect(parseDuration('0.9ns')).toBe(0n);
      expect(parseDuration('1.5ns')).toBe(1n);
      // Each term is truncated on its own, so two halves do not make a whole.
      expect(parseDuration('0.5ns0.5ns')).toBe(0n);
      expect(parseDuration('1.0000000005s1.0000000005s')).toBe(2n * S);
    });
    it('ignores fraction digits beyond what Go keeps', () => {
      expect(parseDuration(`1.${'0'.repeat(100)}1s`)).toBe(S);
      expect(parseDuration(`0.5${'0'.repeat(100)}s`)).toBe(500n * MS);
    });
  });

  describe('range', () => {
    it.each([
      '9223372036854775808ns',
      '9223372036854775810ns',
      '-9223372036854775809ns',
      '9223372036854776us',
      '3000000h',
      '9223372036854775.808us',
      '9223372036854ms775us808ns',
      '2562047h47m16.854775808s',
      '-2562047h47m16.854775809s',
      '9223372036854775807ns1ns',
      '99999999999999999999999999999h',
      `${'9'.repeat(1000)}ns`,
    ])('rejects %j as out of range', (text) => {
      expect(() => parseDuration(text)).toThrow(/out of range/);
    });
  });

  describe('malformed input', () => {
    it.each([
      // Go's parseDurationErrorTests
      '',
      '3',
      '-',
      's',
      '.',
      '-.',
      '.s',
      '+.s',
      '1d',
      '\x85\x85',
      '\xffff',
      'hello \xffff world',
      '\uFFFD',
      '\uFFFD hello \uFFFD world',
      // and more
      '+',
      '00',
      '-00',
      '1',
      '1.5',
      '--1s',
      '+-1s',
      '-+1s',
      ' 1s',
      '1s ',
      '1 s',
      '1s 2m',
      '1.2.3s',
      '1..5s',
      '1S',
      '1H',
      '1sec',
      '1min',
      '1hr',
      '1e3s',
      '0x10s',
      '1,5s',
      '1_000ms',
      '1h-30m',
      '1h+30m',
      's1',
      'h',
      '\u00b5s',
      '1\u00b5',
      '1\u00b5S',
      '１s', // fullwidth digit
      'Infinity',
      'NaN',
    ])('rejects %j', (text) => {
      expect(() => parseDuration(text)).toThrow(Error);
    });

    it('names the offending input and unit in the message', () => {
      expect(() => parseDuration('5d')).toThrow('invalid duration "5d": unknown unit "d"');
      expect(() => parseDuration('5')).toThrow('invalid duration "5": missing unit');
    });

    it('rejects a non-string with a TypeError', () => {
      expect(() => parseDuration(5 as unknown as string)).toThrow(TypeError);
      expect(() => parseDuration(undefined as unknown as string)).toThrow(TypeError);
    });
  });
});

describe('formatDuration', () => {
  // Expected strings are Go's Duration.String() (src/time/time_test.go, durationTests, and more).
  it.each<[bigint, string]>([
    [0n, '0s'],
    [1n, '1ns'],
    [1100n, '1.1\u00b5s'],
    [2200n * US, '2.2ms'],
    [3300n * MS, '3.3s'],
    [4n * M + 5n * S, '4m5s'],
    [4n * M + 5001n * MS, '4m5.001s'],
    [5n * H + 6n * M + 7001n * MS, '5h6m7.001s'],
    [8n * M + 1n, '8m0.000000001s'],
    [INT64_MAX, '2562047h47m16.854775807s'],
    [INT64_MIN, '-2562047h47m16.854775808s'],
    [H + 30n * M, '1h30m0s'],
    [-10n * M, '-10m0s'],
    [-10n * M - 100n, '-10m0.0000001s'],
    [1_500_000_000n, '1.5s'],
    [100n, '100ns'],
    [-100n, '-100ns'],
    [1500n, '1.5\u00b5s'],
    [999n, '999ns'],
    [1000n, '1\u00b5s'],
    [999_999n, '999.999\u00b5s'],
    [MS, '1ms'],
    [999_999_999n, '999.999999ms'],
    [S, '1s'],
    [M, '1m0s'],
    [H, '1h0m0s'],
    [H + S, '1h0m1s'],
    [10n * H, '10h0m0s'],
    [-1n, '-1ns'],
    [-S, '-1s'],
    [-1_500_000n, '-1.5ms'],
  ])('formats %s ns as %j', (ns, text) => {
    expect(formatDuration(ns)).toBe(text);
  });

  it('uses the micro sign U+00B5, as Go does', () => {
    expect(formatDuration(5n * US).codePointAt(1)).toBe(0xb5);
  });

  it('rejects values outside int64 and non-bigints', () => {
    expect(() => formatDuration(INT64_MAX + 1n)).toThrow(RangeError);
    expect(() => formatDuration(INT64_MIN - 1n)).toThrow(RangeError);
    expect(() => formatDuration(5 as unknown as bigint)).toThrow(TypeError);
  });
});

describe('round trip', () => {
  // Deterministic pseudo-random values over every magnitude, plus the edges.
  const values: bigint[] = [0n, 1n, -1n, INT64_MAX, INT64_MIN, 999n, 1000n, 999_999_999n, S, M, H, H - 1n];
  let seed = 0x2545f491n;
  for (let i = 0; i < 2000; i++) {
    seed = (seed * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
    const digits = 1n + (seed % 19n);
    const value = (seed >> 3n) % 10n ** digits;
    values.push(seed & 1n ? -value : value);
  }

  it('parseDuration(formatDuration(ns)) === ns for every int64 magnitude', () => {
    for (const ns of values) expect(parseDuration(formatDuration(ns))).toBe(ns);
  });

  it('formatDuration(parseDuration(text)) is the canonical form', () => {
    expect(formatDuration(parseDuration('90m'))).toBe('1h30m0s');
    expect(formatDuration(parseDuration('-600s'))).toBe('-10m0s');
    expect(formatDuration(parseDuration('1500ms'))).toBe('1.5s');
    expect(formatDuration(parseDuration('1.5us'))).toBe('1.5\u00b5s');
    expect(formatDuration(parseDuration('-0'))).toBe('0s');
  });
});
