// Issue 3, case 1: the injector is SIGKILLed at random instants.
//
// A separate Node process (support/injector.js) installs, updates or restores a skew in a victim
// whose 8 threads read the clock without pause, and is SIGKILLed after a random delay spread over
// the whole duration of the operation (measured first, per operation). After every kill:
//  - the victim is alive, and none of its threads is left stopped or traced;
//  - its threads have read only real or real+offset values (they check every value themselves);
//  - whatever is left is a consistent skew (inspectClock: nothing, an active skew with one of
//    the offsets, or inactive code left by a restore killed while it waited for threads to leave
//    the hook: then every entry is original again, only the padding differs), and restoreClock from this process, which never held any state about it,
//    leaves the vDSO byte-identical to that of a fresh process.
//
// The spinners make 32 rounds of vDSO calls between two raw syscalls, so they are nearly always
// inside the vDSO or the hook code: kills then land while the engine moves threads out of
// rewritten bytes or waits for them to leave the hook, the riskiest moments to die.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TimeSkewError, inspectClock, restoreClock, skewClock } from '../../lib/index';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { readVdso } from '../support/vdso';
import {
  closeAllDetached,
  parseSpinStats,
  procState,
  report,
  spawnDetached,
  threadStates,
  trace,
  tracers,
  waitFor,
  type Detached,
} from './support/detached';
import { ENGINE_DEADLINE_MS, diagnoseHang, withDeadline } from './support/cycles';
import { killAllInjectors, parseOpLines, startInjector, type Injector, type Op } from './support/injectors';

const TRIALS = 500;
const CALIBRATION_RUNS = 15;
const OPS: Op[] = ['install', 'update', 'restore'];
const A = -600_000_000_000n; // -10 min
const B = 259_200_000_000_000n; // +3 days
const BUDGET_SECONDS = 240;
const POOL = 2; // injectors started ahead, so that Node's start-up time overlaps the checks

let victim: Detached;
let reference: Detached;
let pristine: Buffer;
let pool: Pool | undefined;

async function startVictim(): Promise<Detached> {
  const v = await spawnDetached(tortureVictimPaths.torture);
  expect(await v.request(`spin 8 ${A} 32`)).toBe('spinning 8');
  expect(await v.request(`expect ${B}`)).toBe('ok');
  return v;
}

beforeAll(async () => {
  victim = await startVictim();
  reference = await spawnDetached(tortureVictimPaths.torture);
  pristine = readVdso(reference.pid);
  expect(readVdso(victim.pid).equals(pristine)).toBe(true);
});

afterAll(async () => {
  await pool?.close();
  await killAllInjectors();
  if (victim && !victim.exitStatus) await restoreClock(victim.pid).catch(() => undefined);
  await closeAllDetached();
});

const failures: string[] = [];
let inactiveLeftovers = 0;

/**
 * restoreClock until nothing is left. One call must be enough (checked by victimProblem()); this
 * is only so that one failure does not cascade into every later trial.
 */
async function cleanUp(label: string): Promise<void> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    await withDeadline(restoreClock(victim.pid), `${label}: restoreClock`, ENGINE_DEADLINE_MS, () => diagnoseHang(victim.pid));
    if ((await inspectClock(victim.pid)) === null) {
      if (attempt > 1) failures.push(`${label}: restoreClock left timeskew's code in the target ${attempt - 1} time(s)`);
      return;
    }
  }
  failures.push(`${label}: 5 restoreClock calls could not remove timeskew's code`);
}

/** Puts the victim in the state the operation starts from: pristine for install, skewed by A otherwise. */
async function prepare(op: Op, label: string): Promise<void> {
  await cleanUp(`${label}, preparing`);
  if (op !== 'install') {
    await withDeadline(skewClock(victim.pid, { offset: A }), `${label}: skewClock`, ENGINE_DEADLINE_MS, () => diagnoseHang(victim.pid));
  }
}

function request(op: Op): [Op, bigint] {
  return [op, op === 'update' ? B : A];
}

function busyWaitUntil(t: bigint): void {
  while (process.hrtime.bigint() < t) {
    // spin: a timer would add milliseconds of jitter to a sub-millisecond schedule
  }
}

function percentile(samples: bigint[], p: number): bigint {
  const sorted = [...samples].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

class Pool {
  private readonly ready: Array<Promise<Injector>> = [];
  constructor(size: number) {
    for (let i = 0; i < size; i++) this.spawn();
  }
  private spawn(): void {
    const p = startInjector();
    p.catch(() => undefined); // reported by take(), if ever taken
    this.ready.push(p);
  }
  /** The next injector; a replacement starts at once, to overlap the checks that follow a trial. */
  take(): Promise<Injector> {
    this.spawn();
    return this.ready.shift()!;
  }
  /**
   * Resolves once every pooled injector has finished starting: a Node start-up takes a CPU for
   * ~100 ms, and one running on the side would stretch the operation about to be killed.
   */
  async idle(): Promise<void> {
    await Promise.all(this.ready.map((p) => p.catch(() => undefined)));
  }
  async close(): Promise<void> {
    for (const p of this.ready.splice(0)) await (await p.catch(() => undefined))?.kill();
  }
}

/** Why the victim is not healthy after a trial, or undefined if it is. */
async function victimProblem(): Promise<string | undefined> {
  const state = procState(victim.pid);
  if (victim.exitStatus || state === undefined || state === 'Z' || state === 'X') {
    const status = await Promise.race([victim.exited, new Promise((r) => setTimeout(() => r('no status'), 2_000))]);
    return `the victim died: ${JSON.stringify(status)}`;
  }
  // The dead injector's ptrace links are gone with it: every thread runs again, untraced.
  try {
    await waitFor('no thread traced', () => tracers(victim.pid).every((t) => t === 0), 5_000);
    await waitFor('no thread stopped', () => [...threadStates(victim.pid).values()].every((s) => s !== 't' && s !== 'T'), 5_000);
  } catch (err) {
    return (err as Error).message;
  }
  let stats;
  try {
    stats = parseSpinStats(await victim.request('stats'));
  } catch (err) {
    // It died while we asked (the status, once the launcher has it, says how).
    const status = await Promise.race([victim.exited, new Promise((r) => setTimeout(() => r('no status'), 2_000))]);
    return `the victim stopped answering: ${(err as Error).message.split(';')[0]}; status ${JSON.stringify(status)}`;
  }
  if (stats.bad !== 0n) return `${stats.bad} bad values, first ${stats.firstBad}`;
  // What the kill left is one consistent state: nothing, an active skew with A or B, or inactive
  // code behind original entries.
  try {
    const status = await inspectClock(victim.pid);
    const describe = () => JSON.stringify(status, (_k, v) => (typeof v === 'bigint' ? `${v}` : v));
    if (status !== null && status.active && ![A, B].includes(status.clocks.CLOCK_REALTIME!)) {
      return `inconsistent leftover ${describe()}`;
    }
    if (status !== null && !status.active) {
      inactiveLeftovers++;
      const now = readVdso(victim.pid);
      const elfEnd = pristine.findLastIndex((b) => b !== 0) + 1;
      for (let i = 0; i < elfEnd; i++) {
        if (now[i] !== pristine[i]) return `inactive leftover, but vDSO byte ${i} is not original: ${describe()}`;
      }
    }
    const removed = await withDeadline(restoreClock(victim.pid), 'restoreClock after the kill', ENGINE_DEADLINE_MS, () => diagnoseHang(victim.pid));
    if (!readVdso(victim.pid).equals(pristine)) {
      const left = await inspectClock(victim.pid);
      return `vDSO differs from a fresh process's after restoreClock (returned ${removed}, inspectClock: active=${left?.active})`;
    }
  } catch (err) {
    if (!(err instanceof TimeSkewError)) throw err;
    // ESRCH here means it died between our checks: say how.
    const status = await Promise.race([victim.exited, new Promise((r) => setTimeout(() => r('no status'), 2_000))]);
    return `${err.code}: ${err.message.split('\n')[0]}; exit status ${JSON.stringify(status)}`;
  }
  return undefined;
}

it(`survives ${TRIALS} injectors SIGKILLed at random instants of install, update and restore`, { timeout: 600_000 }, async () => {
  const started = Date.now();
  pool = new Pool(POOL);

  // Calibration, unkilled: when after the request each operation starts (t0) and ends (t1).
  const windowNs: Record<string, [bigint, bigint]> = {};
  for (const op of OPS) {
    const starts: bigint[] = [];
    const ends: bigint[] = [];
    for (let i = 0; i < CALIBRATION_RUNS; i++) {
      const inj = await pool.take();
      await prepare(op, `${op} calibration ${i}`);
      await pool.idle();
      const [o, offset] = request(op);
      const tGo = process.hrtime.bigint();
      inj.send(o, victim.pid, offset);
      const lines = [await inj.lines.next(30_000), await inj.lines.next(30_000)];
      await inj.kill();
      const seen = parseOpLines(lines);
      if (!seen.ok) {
        failures.push(`${op} calibration ${i}: ${lines.join(' / ')}`);
        continue;
      }
      starts.push(seen.t0! - tGo);
      ends.push(seen.t1! - tGo);
    }
    // Kills from the earliest start to the 90th percentile end: mostly inside, some before and after.
    windowNs[op] = [percentile(starts, 0), percentile(ends, 0.9)];
    report(`kill-injector-${op}-duration-p50-us`, (percentile(ends, 0.5) - percentile(starts, 0.5)) / 1000n);
  }

  const counts = { before: 0, inside: 0, after: 0 };
  const insideByOp: Record<string, number> = { install: 0, update: 0, restore: 0 };
  let trials = 0;
  for (let trial = 0; trial < TRIALS; trial++, trials++) {
    // Healthy, 500 trials take 100-180 s here; an engine that pauses for long must not stall the
    // suite: the case then fails with the number of trials it managed.
    if (Date.now() - started > BUDGET_SECONDS * 1000) {
      failures.push(`time budget of ${BUDGET_SECONDS} s spent after ${trial} of ${TRIALS} trials`);
      break;
    }
    const op = OPS[trial % OPS.length];
    trace(`trial ${trial} ${op}: take`);
    const inj = await pool.take();
    trace(`trial ${trial} ${op}: prepare`);
    await prepare(op, `trial ${trial} (${op})`);
    trace(`trial ${trial} ${op}: idle`);
    await pool.idle();
    trace(`trial ${trial} ${op}: go`);
    const [lo, hi] = windowNs[op];
    const delay = lo + BigInt(Math.floor(Math.random() * Number(hi - lo)));
    const [o, offset] = request(op);
    const tGo = process.hrtime.bigint();
    inj.send(o, victim.pid, offset);
    busyWaitUntil(tGo + delay);
    inj.child.kill('SIGKILL');
    await inj.exited;
    const seen = inj.collect();
    const when = seen.t0 === undefined ? 'before' : seen.t1 === undefined ? 'inside' : 'after';
    counts[when]++;
    if (when === 'inside') insideByOp[op]++;
    const label = `trial ${trial} (${op}, killed ${when} the operation, ${delay / 1000n} us after the request)`;
    if (seen.t1 !== undefined && !seen.ok) failures.push(`${label}: completed with ${seen.code}: ${seen.message}`);
    trace(`trial ${trial} ${op}: killed ${when}; checking`);
    const problem = await victimProblem();
    if (problem) {
      failures.push(`${label}: ${problem}`);
      if (victim.exitStatus || procState(victim.pid) === undefined) {
        await victim.close(1_000);
        victim = await startVictim();
      } else {
        await cleanUp(`${label}, cleaning up`);
      }
    }
  }

  const final = parseSpinStats(await victim.request('stop'));
  report('kill-injector-trials', trials);
  report('kills-inside-operation', `${counts.inside}/${trials}`);
  report('kills-inside-by-op', `install:${insideByOp.install},update:${insideByOp.update},restore:${insideByOp.restore}`);
  report('kills-before-start', counts.before);
  report('kills-after-end', counts.after);
  report('kill-injector-failures', failures.length);
  report('kill-inactive-leftovers', inactiveLeftovers);
  for (const f of failures.slice(0, 20)) console.log(`torture: kill-injector-failure ${f}`);
  report('kill-victim-reads', final.reads);
  report('kill-injector-seconds', ((Date.now() - started) / 1000).toFixed(1));
  expect(failures).toEqual([]);
  expect(final.bad, final.firstBad).toBe(0n);
  expect(final.reads).toBeGreaterThan(1_000_000n);
  expect(readVdso(victim.pid).equals(readVdso(reference.pid))).toBe(true);
});
