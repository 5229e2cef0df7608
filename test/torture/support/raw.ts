// The torture victim's `raw` reply: for each clock id, the vDSO reading and a raw syscall reading
// taken just before it, as separate seconds and nanoseconds, so that a negative time, a time past
// 2262 (beyond int64 nanoseconds) and tv_nsec normalisation can all be checked exactly.
import { expect } from 'vitest';

const NS = 1_000_000_000n;

export interface RawClock {
  vsec: bigint;
  vnsec: bigint;
  rsec: bigint;
  rnsec: bigint;
}

export interface RawReadings {
  clocks: Map<number, RawClock | { errno: number }>;
  gtod: { sec: bigint; usec: bigint; rsec: bigint; rnsec: bigint };
  time: { t: bigint; rsec: bigint };
}

export function parseRaw(line: string): RawReadings {
  const clocks = new Map<number, RawClock | { errno: number }>();
  let gtod: RawReadings['gtod'] | undefined;
  let time: RawReadings['time'] | undefined;
  for (const token of line.trim().split(/\s+/)) {
    let m = /^c(\d+)=err:(\d+)$/.exec(token);
    if (m) {
      clocks.set(Number(m[1]), { errno: Number(m[2]) });
      continue;
    }
    m = /^c(\d+)=(-?\d+):(\d+):(-?\d+):(\d+)$/.exec(token);
    if (m) {
      clocks.set(Number(m[1]), { vsec: BigInt(m[2]), vnsec: BigInt(m[3]), rsec: BigInt(m[4]), rnsec: BigInt(m[5]) });
      continue;
    }
    m = /^gtod=(-?\d+):(-?\d+):(-?\d+):(\d+)$/.exec(token);
    if (m) {
      gtod = { sec: BigInt(m[1]), usec: BigInt(m[2]), rsec: BigInt(m[3]), rnsec: BigInt(m[4]) };
      continue;
    }
    m = /^time=(-?\d+):(-?\d+)$/.exec(token);
    if (m) {
      time = { t: BigInt(m[1]), rsec: BigInt(m[2]) };
      continue;
    }
    throw new Error(`unexpected token ${JSON.stringify(token)} in raw readings ${JSON.stringify(line)}`);
  }
  if (!gtod || !time) throw new Error(`incomplete raw readings: ${JSON.stringify(line)}`);
  return { clocks, gtod, time };
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && a < 0n !== b < 0n) ? q - 1n : q;
}

/**
 * Checks clock `id`: the vDSO reading (taken just after the raw one) is raw + offset, within
 * [0, slack], and normalised (tv_nsec in [0, 1e9)). For CLOCK_REALTIME (0), gettimeofday and
 * time() are checked too: tv_usec in [0, 1e6), and time() = floor((raw + offset) / 1 s), give or
 * take a second (it reads the coarse clock).
 */
export function expectRawClock(raw: RawReadings, id: number, offsetNs: bigint, label: string, slackNs = 50_000_000n): void {
  const c = raw.clocks.get(id);
  if (!c || 'errno' in c) throw new Error(`${label}: clock ${id} failed: ${JSON.stringify(c)}`);
  expect(c.vnsec >= 0n && c.vnsec < NS, `${label}: clock ${id} tv_nsec ${c.vnsec} not in [0, 1e9)`).toBe(true);
  const diff = c.vsec * NS + c.vnsec - (c.rsec * NS + c.rnsec) - offsetNs;
  expect(diff >= 0n && diff <= slackNs, `${label}: clock ${id} reads raw ${offsetNs >= 0n ? '+' : ''}${offsetNs} ns ${diff >= 0n ? '+' : ''}${diff} ns`).toBe(true);
  if (id !== 0) return;
  const g = raw.gtod;
  expect(g.usec >= 0n && g.usec < 1_000_000n, `${label}: tv_usec ${g.usec} not in [0, 1e6)`).toBe(true);
  const gdiff = g.sec * NS + g.usec * 1000n - (g.rsec * NS + g.rnsec) - offsetNs;
  // gettimeofday has microseconds only, and the fake adds the offset's whole microseconds to the
  // real reading's whole microseconds: each part drops up to 999 ns, so the result may lie up to
  // 1,998 ns below the exact real + offset (one microsecond below its exact truncation).
  expect(gdiff >= -1998n && gdiff <= slackNs, `${label}: gettimeofday reads raw + offset ${gdiff} ns`).toBe(true);
  const expected = floorDiv(raw.time.rsec * NS + offsetNs, NS);
  expect(raw.time.t >= expected - 1n && raw.time.t <= expected + 1n, `${label}: time() ${raw.time.t}, expected ${expected}`).toBe(true);
}

/** Where two vDSO images differ, for failure messages: "<count> bytes in [0x<first>, 0x<last>]". */
export function describeDiff(a: Buffer, b: Buffer): string {
  if (a.length !== b.length) return `sizes differ: ${a.length} vs ${b.length}`;
  let count = 0;
  let first = -1;
  let last = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    count++;
    if (first < 0) first = i;
    last = i;
  }
  return count === 0 ? 'identical' : `${count} bytes differ in [0x${first.toString(16)}, 0x${last.toString(16)}]`;
}
