// 4. Scale. 1,000 idle processes are skewed, then restored: one after the other (each awaited),
// and all at once (Promise.all; the engine then runs as many at a time as libuv's thread pool has
// threads). Done for targets that are not our children (in-process engine) and for our own
// children (through the engine's helper process, forked once and kept).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { restoreClock } from '../../dist/index';
import { type RetryCounter, skewRetrying } from './retry';
import { type Summary, nowNs, sleep, summarize } from './stats';
import { type EnginePath, VICTIM, Victim, safeKill } from './victim';

export interface ScaleOptions {
  processes: number;
  reps: number;
  paths: EnginePath[];
}

export interface ScaleRun {
  skewNs: number;
  restoreNs: number;
}

/** Operations that had not settled when the watchdog fired, and what it found. */
export interface Stall {
  mode: 'sequential' | 'concurrent';
  operation: 'skew' | 'restore';
  settled: number;
  total: number;
  /** Helper processes (forked by the engine) found blocked, and killed to unblock the bench. */
  helpersKilled: number;
  helperState: string[];
}

export interface ScaleResult {
  path: EnginePath;
  processes: number;
  threadPoolSize: number;
  sequential: ScaleRun[];
  concurrent: ScaleRun[];
  busyRetries: number;
  /** Set when operations hung: the bench then killed the stuck helpers and stopped this mode. */
  stalls: Stall[];
  /** Operations that failed (after a stall, or otherwise), by error code. */
  failures: Record<string, number>;
  /** Per-operation pause reported by the engine, over all sequential skews. */
  pauseNs: Summary;
  summary: {
    sequential: { skewNs: Summary; restoreNs: Summary; totalNs: Summary };
    concurrent: { skewNs: Summary; restoreNs: Summary; totalNs: Summary };
  };
}

function state(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2);
  } catch {
    return '?';
  }
}

/** Waits until every process sleeps (started and idle), so that no skew lands in its start-up. */
async function allIdle(pids: number[]): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (pids.every((pid) => state(pid) === 'S')) return;
    await sleep(20);
  }
  throw new Error('idle victims did not settle');
}

const STALL_MS = 60_000;

/** The engine's helper processes: our children running our own command line. */
function helperProcesses(): number[] {
  const ours = readFileSync('/proc/self/cmdline', 'latin1');
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'latin1') === ours) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * Runs `ops` one after the other or all at once. If they have not all settled after STALL_MS, the
 * engine's helper processes still alive are recorded (state and wait channel) and killed, which
 * makes the stuck operations fail, and the stall is reported instead of hanging the bench.
 */
async function runAll<T>(
  ops: Array<() => Promise<T>>,
  concurrent: boolean,
  stall: Omit<Stall, 'settled' | 'total' | 'helpersKilled' | 'helperState'>,
  stalls: Stall[],
  failures: Record<string, number>,
): Promise<{ values: T[]; ns: number; stalled: boolean }> {
  let settled = 0;
  const values: T[] = [];
  const one = async (op: () => Promise<T>): Promise<void> => {
    try {
      values.push(await op());
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'error';
      failures[code] = (failures[code] ?? 0) + 1;
    } finally {
      settled++;
    }
  };
  const t0 = nowNs();
  const all = concurrent ? Promise.all(ops.map(one)).then(() => undefined) : (async () => { for (const op of ops) await one(op); })();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    all.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), STALL_MS);
    }),
  ]);
  clearTimeout(timer);
  const ns = nowNs() - t0;
  if (!timedOut) return { values, ns, stalled: false };
  const helpers = helperProcesses();
  const helperState = helpers.map((pid) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const wchan = readFileSync(`/proc/${pid}/wchan`, 'utf8');
    return `helper ${pid}: state ${stat.charAt(stat.lastIndexOf(')') + 2)}, waiting in ${wchan || '?'}`;
  });
  stalls.push({ ...stall, settled, total: ops.length, helpersKilled: helpers.length, helperState });
  for (const pid of helpers) safeKill(pid);
  await all;
  return { values, ns: Number.NaN, stalled: true };
}

export async function runScale(path: EnginePath, options: ScaleOptions, log: (msg: string) => void): Promise<ScaleResult> {
  log(`scale: ${options.processes} idle processes, ${path}, ${options.reps} reps`);
  let farm: Victim | undefined;
  const children: ChildProcess[] = [];
  let pids: number[];
  try {
    if (path === 'in-process') {
      const started = await Victim.start(['farm', String(options.processes)], { placement: 'grandchild', readyTimeoutMs: 120_000 });
      farm = started.victim;
      pids = started.pids;
    } else {
      for (let i = 0; i < options.processes; i++) {
        const child = spawn(VICTIM, ['idle'], { stdio: 'ignore' });
        child.on('error', () => undefined);
        children.push(child);
      }
      pids = children.map((c) => c.pid!);
    }
    if (pids.length !== options.processes) throw new Error(`started ${pids.length} of ${options.processes} processes`);
    await allIdle(pids);
    const actual = Victim.pathOf(pids[0]!);
    if (actual !== path) throw new Error(`expected ${path} targets, got ${actual}`);

    const sequential: ScaleRun[] = [];
    const concurrent: ScaleRun[] = [];
    const pauses: number[] = [];
    const counter: RetryCounter = { busyRetries: 0 };
    const stalls: Stall[] = [];
    const failures: Record<string, number> = {};
    const stalledModes = new Set<string>();
    for (let rep = 0; rep < options.reps; rep++) {
      for (const isConcurrent of [false, true]) {
        const mode = isConcurrent ? 'concurrent' : 'sequential';
        if (stalledModes.has(mode)) continue;
        const skew = await runAll(
          pids.map((pid) => () => skewRetrying(pid, { offset: '-10m' }, counter)),
          isConcurrent,
          { mode, operation: 'skew' },
          stalls,
          failures,
        );
        if (!isConcurrent) for (const h of skew.values) pauses.push(h.lastReport.pauseNs);
        const restore = await runAll(
          skew.values.map((h) => () => h.restore()),
          isConcurrent,
          { mode, operation: 'restore' },
          stalls,
          failures,
        );
        if (skew.stalled || restore.stalled) {
          stalledModes.add(mode);
          // Whatever the stall left skewed is put back (one at a time) before the next run.
          for (const pid of pids) await restoreClock(pid).catch(() => false);
        }
        (isConcurrent ? concurrent : sequential).push({ skewNs: skew.ns, restoreNs: restore.ns });
      }
    }
    const sum = (runs: ScaleRun[]) => ({
      skewNs: summarize(runs.map((r) => r.skewNs)),
      restoreNs: summarize(runs.map((r) => r.restoreNs)),
      totalNs: summarize(runs.map((r) => r.skewNs + r.restoreNs)),
    });
    return {
      path,
      processes: options.processes,
      threadPoolSize: Number(process.env.UV_THREADPOOL_SIZE) || 4,
      sequential,
      concurrent,
      pauseNs: summarize(pauses),
      busyRetries: counter.busyRetries,
      stalls,
      failures,
      summary: { sequential: sum(sequential), concurrent: sum(concurrent) },
    };
  } finally {
    await farm?.close();
    for (const child of children) if (child.pid !== undefined) safeKill(child.pid);
    await Promise.all(
      children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))),
    );
  }
}
