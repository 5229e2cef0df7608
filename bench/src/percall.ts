// 1. Per-call cost. One C victim times its own calls; the SAME process is measured native, skewed
// through the fast path, and skewed with forceSyscall (restored in between), round after round, so
// that every ratio compares two figures of one round on one machine. A second victim, started with
// libfaketime preloaded, is measured in the same rounds.
import { existsSync, readFileSync } from 'node:fs';
import type { HookMode, HookedFunction } from '../../dist/index';
import { skewRetrying } from './retry';
import { type Summary, median, summarize } from './stats';
import { type EnginePath, Victim } from './victim';

export const COST_FNS = ['realtime', 'monotonic', 'gettimeofday', 'time'] as const;
export type CostFn = (typeof COST_FNS)[number];
export const COST_MODES = ['native', 'fast', 'syscall', 'libfaketime'] as const;
export type CostMode = (typeof COST_MODES)[number];
export type SkewedMode = Exclude<CostMode, 'native'>;

export const COST_LABELS: Record<CostFn, string> = {
  realtime: 'clock_gettime(CLOCK_REALTIME)',
  monotonic: 'clock_gettime(CLOCK_MONOTONIC), only REALTIME skewed',
  gettimeofday: 'gettimeofday',
  time: 'time',
};

export const LIBFAKETIME_CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/libfaketime.so.1',
];

const OFFSET_NS = -600_000_000_000n; // -10m, the same offset for timeskew and libfaketime

export interface PerCallOptions {
  rounds: number;
  reps: number;
  /** Target duration of one repetition of the calibrated loop. */
  repMs: number;
}

export interface LibfaketimeInfo {
  present: boolean;
  path?: string;
  version?: string;
  env?: Record<string, string>;
}

export interface Verification {
  ok: boolean;
  /** Offsets the victim actually read, in seconds (reading minus raw syscall reading). */
  realtimeSec: number;
  monotonicSec: number;
  gettimeofdaySec: number;
  timeSec: number;
}

export interface PerCallResult {
  options: PerCallOptions;
  busyRetries: number;
  path: EnginePath;
  libfaketime: LibfaketimeInfo;
  hookModes: { fast?: Record<HookedFunction, HookMode>; syscall?: Record<HookedFunction, HookMode> };
  verification: Partial<Record<CostMode, Verification>>;
  callsPerRep: Partial<Record<CostMode, Partial<Record<CostFn, number>>>>;
  /** Per round: the median ns/call of that round's repetitions, from the thread's CPU time. */
  roundNs: Partial<Record<CostMode, Record<CostFn, number[]>>>;
  /** The same from wall time (includes time the victim was preempted by other tenants). */
  roundWallNs: Partial<Record<CostMode, Record<CostFn, number[]>>>;
  /** Per round: mode ns / native ns of the same round. */
  roundRatio: Partial<Record<SkewedMode, Record<CostFn, number[]>>>;
  ns: Partial<Record<CostMode, Record<CostFn, Summary>>>;
  ratio: Partial<Record<SkewedMode, Record<CostFn, Summary>>>;
}

export function findLibfaketime(): LibfaketimeInfo {
  const path = LIBFAKETIME_CANDIDATES.find((p) => existsSync(p));
  if (!path) return { present: false };
  let version: string | undefined;
  try {
    // Debian records the package version; other installs simply go without it.
    const status = readFileSync('/var/lib/dpkg/status', 'utf8');
    const block = status.split('\n\n').find((b) => /^Package: libfaketime$/m.test(b));
    version = block ? /^Version: (.*)$/m.exec(block)?.[1] : undefined;
  } catch {
    version = undefined;
  }
  return {
    present: true,
    path,
    version,
    env: { LD_PRELOAD: path, FAKETIME: '-10m', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
  };
}

/** ns/call from the thread's CPU time (time preempted by other tenants excluded), and from wall time. */
function parseCost(line: string): { cpu: number[]; wall: number[] } {
  const match = /^cost \S+ (\S+) wall (\S+)$/.exec(line);
  if (!match) throw new Error(`bad cost reply: ${line}`);
  return { cpu: match[1]!.split(',').map(Number), wall: match[2]!.split(',').map(Number) };
}

async function verify(victim: Victim, skewed: boolean): Promise<Verification> {
  const line = await victim.request('now');
  const v: Record<string, number> = {};
  for (const [, key, value] of line.matchAll(/(\w+)=(-?\d+)/g)) v[key!] = Number(value);
  const rawRt = v.raw_realtime!;
  const result: Verification = {
    ok: false,
    realtimeSec: (v.realtime! - rawRt) / 1e9,
    monotonicSec: (v.monotonic! - v.raw_monotonic!) / 1e9,
    gettimeofdaySec: (v.gettimeofday! - rawRt) / 1e9,
    timeSec: v.time! - rawRt / 1e9,
  };
  const want = skewed ? Number(OFFSET_NS) / 1e9 : 0;
  result.ok =
    Math.abs(result.realtimeSec - want) < 0.5 &&
    Math.abs(result.gettimeofdaySec - want) < 0.5 &&
    Math.abs(result.timeSec - want) < 2 &&
    Math.abs(result.monotonicSec) < 0.5;
  return result;
}

export async function runPerCall(options: PerCallOptions, log: (msg: string) => void): Promise<PerCallResult> {
  const libfaketime = findLibfaketime();
  const { victim } = await Victim.start(['serve'], { placement: 'grandchild' });
  let faked: Victim | undefined;
  if (libfaketime.present) {
    ({ victim: faked } = await Victim.start(['serve'], { placement: 'grandchild', env: { ...process.env, ...libfaketime.env } }));
  }
  const result: PerCallResult = {
    options,
    busyRetries: 0,
    path: victim.path,
    libfaketime,
    hookModes: {},
    verification: {},
    callsPerRep: {},
    roundNs: {},
    roundWallNs: {},
    roundRatio: {},
    ns: {},
    ratio: {},
  };
  const calls = (mode: CostMode): Partial<Record<CostFn, number>> => (result.callsPerRep[mode] ??= {});

  async function measureAll(mode: CostMode, target: Victim): Promise<void> {
    const perFn = (result.roundNs[mode] ??= { realtime: [], monotonic: [], gettimeofday: [], time: [] });
    for (const fn of COST_FNS) {
      let n = calls(mode)[fn];
      if (n === undefined) {
        // Calibrate in the state being measured: ~repMs per repetition, 50k..5M calls.
        const probe = median(parseCost(await target.request(`cost ${fn} 200000 3`)).wall);
        n = Math.round(Math.min(5_000_000, Math.max(50_000, (options.repMs * 1e6) / probe)));
        calls(mode)[fn] = n;
      }
      const cost = parseCost(await target.request(`cost ${fn} ${n} ${options.reps}`));
      perFn[fn].push(median(cost.cpu));
      (result.roundWallNs[mode] ??= { realtime: [], monotonic: [], gettimeofday: [], time: [] })[fn].push(median(cost.wall));
    }
  }

  async function skewed(mode: 'fast' | 'syscall'): Promise<void> {
    const handle = await skewRetrying(
      victim.pid,
      { offset: OFFSET_NS, clockIds: ['CLOCK_REALTIME'], forceSyscall: mode === 'syscall' },
      result,
    );
    try {
      result.hookModes[mode] ??= { ...handle.mode };
      result.verification[mode] ??= await verify(victim, true);
      await measureAll(mode, victim);
    } finally {
      await handle.restore();
    }
  }

  try {
    result.verification.native = await verify(victim, false);
    if (faked) result.verification.libfaketime = await verify(faked, true);
    const steps: Array<() => Promise<void>> = [
      () => measureAll('native', victim),
      () => skewed('fast'),
      () => skewed('syscall'),
    ];
    if (faked) steps.push(() => measureAll('libfaketime', faked!));
    for (let round = 0; round < options.rounds; round++) {
      log(`per-call cost: round ${round + 1}/${options.rounds}`);
      // Rotate the order so that a slow drift of the machine favours no mode.
      for (let i = 0; i < steps.length; i++) await steps[(i + round) % steps.length]!();
    }
  } finally {
    await victim.close();
    await faked?.close();
  }

  for (const mode of COST_MODES) {
    const rounds = result.roundNs[mode];
    if (!rounds) continue;
    result.ns[mode] = mapFns((fn) => summarize(rounds[fn]));
    if (mode === 'native') continue;
    const native = result.roundNs.native!;
    const ratios = mapFns((fn) => rounds[fn].map((ns, i) => ns / native[fn][i]!));
    result.roundRatio[mode] = ratios;
    result.ratio[mode] = mapFns((fn) => summarize(ratios[fn]));
  }
  return result;
}

function mapFns<T>(f: (fn: CostFn) => T): Record<CostFn, T> {
  return { realtime: f('realtime'), monotonic: f('monotonic'), gettimeofday: f('gettimeofday'), time: f('time') };
}
