// Issue 3, case 4: extreme offsets.
//
// The documented range is a signed 64-bit count of nanoseconds, ±(2^63 - 1) ns (about ±292
// years): anything within it is accepted, anything beyond is EINVAL. Within it, every selected
// clock must read exactly real + offset, however far that is from now, in whole seconds and a
// normalised tv_nsec in [0, 1e9) (tv_usec in [0, 1e6) for gettimeofday; time() the floor), also
// when the result is negative: before 1970 for CLOCK_REALTIME, below zero for CLOCK_MONOTONIC
// and CLOCK_BOOTTIME, whose real value is only the uptime. The victim prints seconds and
// nanoseconds separately (its `raw` command), so nothing is lost to a 64-bit nanosecond count
// that ends in 2262.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLOCK_IDS, TimeSkewError, skewClock, type ClockId } from '../../lib/index';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { readVdso } from '../support/vdso';
import { closeAllDetached, report, spawnDetached, type Detached } from './support/detached';
import { expectRawClock, parseRaw } from './support/raw';

const NS = 1_000_000_000n;
const YEAR = 365n * 86_400n * NS;
const INT64_MAX = 2n ** 63n - 1n;
/** Every clock a caller can name; the CPU-time clocks and alarms included (reads that fail are skipped). */
const ALL_CLOCKS = Object.keys(CLOCK_IDS) as ClockId[];

let victim: Detached;
let pristine: Buffer;

beforeAll(async () => {
  victim = await spawnDetached(tortureVictimPaths.torture);
  const reference = await spawnDetached(tortureVictimPaths.torture);
  pristine = readVdso(reference.pid);
  await reference.close();
});
afterAll(closeAllDetached);

function uptimeNs(): bigint {
  const [seconds] = readFileSync('/proc/uptime', 'utf8').split(' ');
  return BigInt(Math.ceil(Number(seconds))) * NS;
}

/** Skews every clock by `offset`, checks each one the victim can read, restores. */
async function expectExact(offset: bigint, label: string): Promise<string[]> {
  const handle = await skewClock(victim.pid, { offset, clockIds: ALL_CLOCKS });
  const checked: string[] = [];
  try {
    const raw = parseRaw(await victim.request('raw'));
    for (const [id, reading] of raw.clocks) {
      if ('errno' in reading) continue; // not readable here (invalid id 10, alarms without an RTC)
      expectRawClock(raw, id, offset, `${label}, clock ${id}`);
      checked.push(`${id}:${reading.vsec}`);
    }
  } finally {
    await handle.restore();
  }
  expect(readVdso(victim.pid).equals(pristine), `${label}: not pristine after restore`).toBe(true);
  return checked;
}

it('±200 years: every clock reads exactly real + offset, normalised', async () => {
  for (const offset of [200n * YEAR, -200n * YEAR, 200n * YEAR + 999_999_999n, -200n * YEAR - 1n]) {
    const checked = await expectExact(offset, `offset ${offset}`);
    expect(checked.length).toBeGreaterThanOrEqual(7);
    report(`extreme-offset-${offset}`, checked.join(','));
  }
});

it('the ends of the documented range, ±(2^63 - 1) ns, are exact; one nanosecond beyond is EINVAL', async () => {
  for (const offset of [INT64_MAX, -INT64_MAX]) {
    const checked = await expectExact(offset, `offset ${offset}`);
    report(`extreme-offset-${offset}`, checked.join(','));
  }
  for (const offset of [INT64_MAX + 1n, -INT64_MAX - 1n, 2n ** 64n]) {
    const err = await skewClock(victim.pid, { offset }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TimeSkewError);
    expect((err as TimeSkewError).code).toBe('EINVAL');
    expect((err as TimeSkewError).hint).toMatch(/292|range|±/);
    expect(readVdso(victim.pid).equals(pristine)).toBe(true);
  }
});

it('offsets that make a clock negative: exact and normalised below zero too', async () => {
  // CLOCK_MONOTONIC and CLOCK_BOOTTIME read the uptime: minus (uptime + 1 h) is about -1 h.
  const belowZero = -(uptimeNs() + 3600n * NS) - 123_456_789n;
  const raw1 = await expectExact(belowZero, 'monotonic below zero');
  report('extreme-negative-monotonic', raw1.join(','));
  // CLOCK_REALTIME a day before 1970: time() and gettimeofday() negative as well.
  const before1970 = -(BigInt(Date.now()) * 1_000_000n + 86_400n * NS) - 1n;
  const raw2 = await expectExact(before1970, 'realtime before 1970');
  report('extreme-negative-realtime', raw2.join(','));
});
