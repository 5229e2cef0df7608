// 2. Pause. Targets with 1, 100 and 1,000 threads, sleeping or spinning on the clock, reached
// in-process (not our child) and through the forked helper (our child). Each repetition skews,
// updates and restores; the engine reports how long the target was stopped (first thread stopped
// to last released, and the longest any single thread was stopped). Whether update() stopped the
// target is judged from the target's own threads: a ptrace stop is a voluntary context switch of
// every stopped thread, so the sum over all threads must not move across the updates.
import { skewRetrying } from './retry';
import { type Summary, median, nowNs, sleep, summarize } from './stats';
import { type EnginePath, PLACEMENT_LABELS, type Placement, Victim, threadIds, voluntarySwitches } from './victim';

export type ThreadMode = 'sleep' | 'spin';

export interface PauseConfig {
  threads: number;
  mode: ThreadMode;
  placement: Placement;
  /** At most this many repetitions... */
  reps: number;
  /** ...and no more once this much time went by (never fewer than minReps)... */
  budgetMs: number;
  minReps: number;
  /** ...unless this much went by: then stop anyway, so that the figures arrive before the watchdog. */
  hardBudgetMs: number;
  updatesPerRep: number;
}

export interface OperationSample {
  threads: number;
  movedThreads: number;
  pauseNs: number;
  maxThreadPauseNs: number;
  /** From the call to the settled promise, as seen by the caller. */
  wallNs: number;
  /** Voluntary context switches of the sampled threads caused by the operation, per sampled thread. */
  switchesPerThread: number;
}

export interface PauseConfigResult {
  /** Set when the configuration could not finish (the figures then cover the repetitions done). */
  error?: string;
  /** Set when the engine deadlocked (waiting on zombies) and the bench had to kill its worker. */
  hung?: boolean;
  /** Set when the configuration ran out of time (slow, not proven stuck). */
  timedOut?: boolean;
  /** Set when the target died during the configuration: how. */
  targetDied?: string;
  /** skewClock() calls refused with EBUSY ("a thread was inside the old hook") and retried. */
  busyRetries: number;
  /** Restores that left the (inactive) code in place because a thread was still inside it. */
  codeRetained: number;
  threads: number;
  mode: ThreadMode;
  placement: Placement;
  path: EnginePath;
  reps: number;
  sampledThreads: number;
  skew: OperationSample[];
  restore: OperationSample[];
  /** Latency of each update() as the caller sees it. */
  updateWallNs: number[];
  /** Voluntary switches of the sampled threads across each repetition's updates (0 = never stopped). */
  updateSwitches: number[];
  summary: {
    skew: OperationSummary;
    restore: OperationSummary;
    update: { wallNs: Summary; switchesTotal: number; stopped: boolean };
  };
}

export interface OperationSummary {
  threads: number;
  pauseNs: Summary;
  maxThreadPauseNs: Summary;
  wallNs: Summary;
  /** Median over repetitions of the threads found inside rewritten bytes (moved or stepped out). */
  movedThreads: number;
  switchesPerThread: number;
}

const SAMPLE = 16;

/** Sleeping threads switch once more when they go back to sleep after a release: wait for that. */
async function settledSwitches(pid: number, sample: readonly number[], mode: ThreadMode): Promise<number> {
  let last = voluntarySwitches(pid, sample).voluntary;
  if (mode === 'spin') return last;
  for (let i = 0; i < 50; i++) {
    await sleep(5);
    const next = voluntarySwitches(pid, sample).voluntary;
    if (next === last) return next;
    last = next;
  }
  return last;
}

type Report = { threads: number; movedThreads: number; pauseNs: number; maxThreadPauseNs: number };

function sample(report: Report, wallNs: number, switches: number, sampled: number): OperationSample {
  // A count that went down means the threads died meanwhile (their counters left with them).
  if (switches < 0) switches = Number.NaN;
  return {
    threads: report.threads,
    movedThreads: report.movedThreads,
    pauseNs: report.pauseNs,
    maxThreadPauseNs: report.maxThreadPauseNs,
    wallNs,
    switchesPerThread: switches / sampled,
  };
}

function summarizeOps(samples: OperationSample[]): OperationSummary {
  return {
    threads: samples.length ? samples[0]!.threads : 0,
    pauseNs: summarize(samples.map((s) => s.pauseNs)),
    maxThreadPauseNs: summarize(samples.map((s) => s.maxThreadPauseNs)),
    wallNs: summarize(samples.map((s) => s.wallNs)),
    movedThreads: median(samples.map((s) => s.movedThreads)),
    switchesPerThread: median(samples.map((s) => s.switchesPerThread)),
  };
}

function summarizeConfig(result: PauseConfigResult): PauseConfigResult {
  const switchesTotal = result.updateSwitches.reduce((a, b) => a + b, 0);
  result.summary = {
    skew: summarizeOps(result.skew),
    restore: summarizeOps(result.restore),
    update: { wallNs: summarize(result.updateWallNs), switchesTotal, stopped: switchesTotal > 0 },
  };
  return result;
}

/**
 * `progress` receives the figures so far after every operation: if the engine hangs in the next
 * one, the bench still reports what was measured before.
 */
export async function runPauseConfig(config: PauseConfig, progress?: (partial: PauseConfigResult) => void): Promise<PauseConfigResult> {
  const { threads, mode, placement } = config;
  const { victim } = await Victim.start(['threads', String(threads), mode], { placement });
  const result: PauseConfigResult = {
    threads,
    mode,
    placement,
    path: victim.path,
    reps: 0,
    busyRetries: 0,
    codeRetained: 0,
    sampledThreads: 0,
    skew: [],
    restore: [],
    updateWallNs: [],
    updateSwitches: [],
    summary: undefined as never,
  };
  const began = nowNs();
  try {
    const tids = threadIds(victim.pid);
    if (tids.length !== threads) throw new Error(`victim has ${tids.length} threads, expected ${threads}`);
    const sampled = tids.slice(0, SAMPLE);
    result.sampledThreads = sampled.length;
    // Let a spinning target reach its steady state before the first stop.
    if (mode === 'spin') await sleep(200);
    for (let rep = 0; rep < config.reps; rep++) {
      const elapsedMs = (nowNs() - began) / 1e6;
      if ((rep >= config.minReps && elapsedMs > config.budgetMs) || elapsedMs > config.hardBudgetMs) break;
      let before = await settledSwitches(victim.pid, sampled, mode);
      let t0 = nowNs();
      const retriesBefore = result.busyRetries;
      const handle = await skewRetrying(victim.pid, { offset: '-10m' }, result);
      // A refused attempt is not the operation being measured: time the one that went through.
      let wall = result.busyRetries === retriesBefore ? nowNs() - t0 : Number.NaN;
      let after = await settledSwitches(victim.pid, sampled, mode);
      result.skew.push(sample(handle.lastReport, wall, Number.isNaN(wall) ? Number.NaN : after - before, sampled.length));
      progress?.(summarizeConfig(result));

      before = after;
      for (let i = 0; i < config.updatesPerRep; i++) {
        t0 = nowNs();
        await handle.update({ offset: i % 2 ? '-10m' : '-11m' });
        result.updateWallNs.push(nowNs() - t0);
      }
      after = await settledSwitches(victim.pid, sampled, mode);
      result.updateSwitches.push(after - before);

      before = after;
      t0 = nowNs();
      await handle.restore();
      wall = nowNs() - t0;
      after = await settledSwitches(victim.pid, sampled, mode);
      result.restore.push(sample(handle.lastReport, wall, after - before, sampled.length));
      if ((handle.lastReport as { codeRetained?: boolean }).codeRetained) result.codeRetained++;
      result.reps++;
      progress?.(summarizeConfig(result));
    }
  } catch (err) {
    result.error = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    // Give a dying target a moment to be reaped, then say how it died.
    await sleep(200);
    const death = victim.deathNote();
    if (death) {
      result.error = `${death} (then: ${result.error})`;
      result.targetDied = death;
    }
  } finally {
    await victim.close();
  }
  return summarizeConfig(result);
}

export async function runPause(configs: PauseConfig[], log: (msg: string) => void): Promise<PauseConfigResult[]> {
  const results: PauseConfigResult[] = [];
  for (const config of configs) {
    log(`pause: ${config.threads} ${config.mode === 'spin' ? 'spinning' : 'sleeping'} thread(s), ${PLACEMENT_LABELS[config.placement]}`);
    results.push(await runPauseConfig(config));
  }
  return results;
}
